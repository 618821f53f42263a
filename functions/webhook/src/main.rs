//! The webhook Lambda: wiring only. Configuration and clients are built once per cold start.

use lambda_http::{service_fn, Error};
use wahook::config::{Env, SecretResolver, WebhookConfig};
use wahook::media::MediaQueue;
use wahook::telemetry::{self, Metrics};
use wahook::webhook::WebhookService;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_logging();
    let sdk = wahook::aws::sdk_config().await;
    let config = telemetry::startup(
        "configuration",
        WebhookConfig::load(&Env::process(), &SecretResolver::new(sdk.clone())).await,
    )?;
    // Every DynamoDB call within the configured deadlines (checked against the function timeout), so
    // a stalled table answers 503 in time and Meta redelivers.
    let client = aws_sdk_dynamodb::Client::new(&config.deadlines.apply(&sdk));
    let mut service = telemetry::startup(
        "the webhook service",
        WebhookService::new(&config, client, Metrics::for_service("webhook")),
    )?;
    if let Some(url) = &config.media_queue_url {
        let sqs = aws_sdk_sqs::Client::new(&config.deadlines.apply(&sdk));
        service = service.with_media_queue(MediaQueue::new(sqs, url.clone()));
    }
    lambda_http::run(service_fn(|req| wahook_webhook::handle(&service, req))).await
}
