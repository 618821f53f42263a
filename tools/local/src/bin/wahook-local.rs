//! `wahook-local`: the webhook, the sender, the media function and the publisher on one machine, with
//! the handlers Lambda runs.
//!
//! Configuration is the functions' own (`WebhookConfig`, `SenderConfig`, … from the environment, as in
//! Lambda), plus `WAHOOK_WEBHOOK_PORT`. The webhook listens on 127.0.0.1; the sender polls the sends
//! queue and runs each batch through `wahook_sender::handle`; the publisher reads the tables' streams
//! and runs each batch through `wahook_publisher::handle`. Stops on SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use wahook::config::{
    Env, MediaConfig, PublisherConfig, SecretResolver, SenderConfig, WebhookConfig,
};
use wahook::media::{MediaQueue, MediaService};
use wahook::outbound::Sender;
use wahook::publish::Publisher;
use wahook::telemetry::{self, Metrics};
use wahook::webhook::WebhookService;
use wahook_local::streams::StreamPoller;
use wahook_local::{serve_webhook, SqsPoller};

#[tokio::main]
async fn main() -> Result<(), String> {
    telemetry::init_logging();
    let sdk = wahook::aws::sdk_config().await;
    let env = Env::process();
    let resolver = SecretResolver::new(sdk.clone());
    let webhook_config = WebhookConfig::load(&env, &resolver)
        .await
        .map_err(|e| e.to_string())?;
    let sender_config = SenderConfig::load(&env, &resolver)
        .await
        .map_err(|e| e.to_string())?;
    let port: u16 = env
        .get("WAHOOK_WEBHOOK_PORT")
        .ok_or("WAHOOK_WEBHOOK_PORT is not set: the port the local webhook listens on")?
        .parse()
        .map_err(|_| "WAHOOK_WEBHOOK_PORT is not a port number")?;

    let region = sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    let mut service = WebhookService::new(
        &webhook_config,
        aws_sdk_dynamodb::Client::new(&webhook_config.deadlines.apply(&sdk)),
        Metrics::disabled("webhook"),
    )
    .map_err(|e| e.to_string())?;
    // Inbound media, as deployed: the webhook queues jobs, the media function drains them.
    let media_poller = match &webhook_config.media_queue_url {
        Some(url) => {
            let media_config = MediaConfig::load(&env, &resolver)
                .await
                .map_err(|e| e.to_string())?;
            // As deployed: the webhook's SQS calls within its deadlines.
            let sqs = aws_sdk_sqs::Client::new(&webhook_config.deadlines.apply(&sdk));
            service = service.with_media_queue(MediaQueue::new(sqs, url.clone()));
            let media = MediaService::from_config(&media_config, &sdk, Metrics::disabled("media"))
                .map_err(|e| e.to_string())?;
            Some(
                SqsPoller::for_media(
                    aws_sdk_sqs::Client::new(&sdk),
                    url.clone(),
                    region.clone(),
                    Arc::new(media),
                )
                .with_function_timeout(media_config.deadlines.function_timeout),
            )
        }
        None => None,
    };
    let service = Arc::new(service);
    let sender = Arc::new(
        Sender::from_config(&sender_config, &sdk, Metrics::disabled("sender"))
            .map_err(|e| e.to_string())?,
    );
    let poller = SqsPoller::new(
        aws_sdk_sqs::Client::new(&sdk),
        sender_config.queue_url.clone(),
        region,
        sender,
    )
    .with_function_timeout(sender_config.deadlines.function_timeout);
    let publisher_config = PublisherConfig::load(&env).map_err(|e| e.to_string())?;
    let streams = StreamPoller::new(
        &sdk,
        &publisher_config.storage.tables,
        Arc::new(Publisher::from_config(
            &publisher_config,
            &sdk,
            Metrics::disabled("publisher"),
        )),
    )
    .with_function_timeout(publisher_config.deadlines.function_timeout);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}. Another stack may be running (scripts/dev.sh down), or choose another WAHOOK_WEBHOOK_PORT"))?;
    println!(
        "wahook-local: webhook on http://127.0.0.1:{port}/webhook, sender draining {}",
        sender_config.queue_url
    );

    tokio::select! {
        served = serve_webhook(service, listener) => served.map_err(|e| format!("the webhook server stopped: {e}")),
        () = poll_forever(poller, "sends") => Ok(()),
        () = poll_media(media_poller) => Ok(()),
        () = publish_forever(streams) => Ok(()),
        () = shutdown() => {
            tracing::info!(event = "shutdown", "stopping");
            Ok(())
        }
    }
}

async fn poll_media(poller: Option<SqsPoller>) {
    match poller {
        Some(p) => poll_forever(p, "media").await,
        None => std::future::pending().await,
    }
}

async fn poll_forever(poller: SqsPoller, queue: &'static str) {
    loop {
        match poller.poll_once(2).await {
            Ok(report) if report.received > 0 => tracing::info!(
                event = "batch_done",
                queue,
                received = report.received,
                failed = report.failed,
                deleted = report.deleted,
                "a batch from the {queue} queue went through its function"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(event = "poll_failed", queue, error = %e, "could not poll the {queue} queue; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Lambda polls a stream about four times a second; half a second keeps moto's load low.
async fn publish_forever(poller: StreamPoller) {
    loop {
        match poller.poll_once().await {
            Ok(report) if report.records > 0 => tracing::info!(
                event = "stream_batch_done",
                records = report.records,
                failed_batches = report.failed_batches,
                "stream records went through the publisher"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(event = "stream_poll_failed", error = %e, "could not read the tables' streams; retrying");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
