//! A world for the sender's tests: moto's DynamoDB and SQS, the Meta simulator and the webhook both on
//! real HTTP (so the simulator's status webhooks are stored), and the sender fed by the SQS poller
//! exactly as Lambda's event source mapping would feed it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use wahook::config::sender::AccountSettings;
use wahook::config::{SecretRef, SecretResolver, TemplateSettings};
use wahook::domain::ledger::{LedgerEntry, LedgerSettings};
use wahook::domain::policy::PolicyConfig;
use wahook::domain::send_request::IdempotencyKey;
use wahook::graph::media::MediaDownloadConfig;
use wahook::graph::{GraphClient, GraphConfig};
use wahook::outbound::{MediaUploads, Pacer, SendQueue, Sender, SenderSettings, TokenSource};
use wahook::secret::SecretString;
use wahook::telemetry::Metrics;
use wahook_local::{PollReport, SqsPoller};
use wahook_meta_sim::{MetaSim, SimConfig, WebhookTarget};

use crate::fixtures::{FIXTURE_APP_SECRET, NUMBER, WABA};
use crate::{sdk_config, unique_prefix, Harness};

pub const ACCESS_TOKEN: &str = "EAAG-sim-access-token";

/// What a test may change about its world.
#[derive(Debug, Clone)]
pub struct WorldOptions {
    pub graph_timeout: Duration,
    pub reconcile_wait_secs: i64,
    /// Whether the simulator posts status webhooks to the webhook.
    pub status_webhooks: bool,
    pub status_delays: [Duration; 3],
    pub rate_per_second: f64,
    pub burst: u32,
    pub policy: PolicyConfig,
    /// The simulator's scripted `wa_id`s (digits as sent → Meta's `wa_id`).
    pub wa_ids: std::collections::HashMap<String, String>,
    pub account: AccountSettings,
    pub max_receive_count: u32,
    /// The token the sender starts with (the simulator accepts [`ACCESS_TOKEN`]).
    pub token: String,
    /// A Secrets Manager secret (in moto) the sender reads the token again from when Meta refuses
    /// it, with no rate limit.
    pub token_secret: Option<String>,
    /// How the sender reads the template registry (by default under the fixtures' WABA).
    pub templates: TemplateSettings,
    /// The per-person marketing cap (none by default).
    pub marketing_cap: Option<wahook::domain::frequency::FrequencyCap>,
    /// What the simulator says of the account's Marketing Messages onboarding.
    pub marketing_onboarding: Option<String>,
}

impl Default for WorldOptions {
    fn default() -> Self {
        Self {
            graph_timeout: Duration::from_millis(1_500),
            reconcile_wait_secs: 2,
            status_webhooks: true,
            status_delays: [
                Duration::from_millis(20),
                Duration::from_millis(40),
                Duration::from_millis(60),
            ],
            rate_per_second: 500.0,
            burst: 50,
            policy: PolicyConfig::default(),
            wa_ids: Default::default(),
            account: AccountSettings::default(),
            max_receive_count: 10,
            token: ACCESS_TOKEN.into(),
            token_secret: None,
            templates: TemplateSettings {
                waba_id: Some(WABA.into()),
                ..Default::default()
            },
            marketing_cap: None,
            marketing_onboarding: None,
        }
    }
}

pub struct World {
    pub harness: Harness,
    pub options: WorldOptions,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
    pub sim: MetaSim,
    pub sender: Arc<Sender>,
    pub poller: SqsPoller,
    pub webhook_url: String,
    webhook_task: tokio::task::JoinHandle<()>,
}

/// A DLQ message with its wahook attributes.
#[derive(Debug, Clone)]
pub struct DeadLettered {
    pub body: String,
    pub attributes: BTreeMap<String, String>,
}

impl World {
    pub async fn new(name: &str) -> Self {
        Self::with(name, |_| {}).await
    }

    pub async fn with(name: &str, tweak: impl FnOnce(&mut WorldOptions)) -> Self {
        let mut options = WorldOptions::default();
        tweak(&mut options);
        let harness = Harness::new(name).await;
        let sdk = sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let prefix = unique_prefix(name);
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("{prefix}-sends-dlq"))
            .send()
            .await
            .expect("create the DLQ")
            .queue_url
            .unwrap();
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{prefix}-sends"))
            .attributes(QueueAttributeName::VisibilityTimeout, "30")
            .send()
            .await
            .expect("create the sends queue")
            .queue_url
            .unwrap();

        // The webhook on real HTTP, for the simulator's status webhooks.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let webhook_url = format!("http://{}/webhook", listener.local_addr().unwrap());
        let service = Arc::new(harness.service.clone());
        let webhook_task = tokio::spawn(async move {
            let _ = wahook_local::serve_webhook(service, listener).await;
        });

        let sim = MetaSim::start(
            "127.0.0.1:0".parse().unwrap(),
            SimConfig {
                access_token: Some(ACCESS_TOKEN.into()),
                webhook: options.status_webhooks.then(|| WebhookTarget {
                    url: webhook_url.clone(),
                    app_secret: FIXTURE_APP_SECRET.into(),
                }),
                status_delays: options.status_delays,
                wa_ids: options.wa_ids.clone(),
                marketing_onboarding: options.marketing_onboarding.clone(),
                ..SimConfig::default()
            },
        )
        .await
        .expect("start the Meta simulator");

        let sender = Arc::new(make_sender(
            &sdk,
            &harness,
            &sqs,
            &queue_url,
            &dlq_url,
            &sim.url(),
            &options,
            10,
        ));
        let poller = SqsPoller::new(
            sqs.clone(),
            queue_url.clone(),
            "us-east-1".into(),
            sender.clone(),
        );
        harness.counter.reset();
        Self {
            harness,
            options,
            sqs,
            queue_url,
            dlq_url,
            sim,
            sender,
            poller,
            webhook_url,
            webhook_task,
        }
    }

    /// The same sender, one record at a time (for comparison in the benchmark).
    pub async fn sequential_sender(&self) -> Arc<Sender> {
        Arc::new(make_sender(
            &sdk_config().await,
            &self.harness,
            &self.sqs,
            &self.queue_url,
            &self.dlq_url,
            &self.sim.url(),
            &self.options,
            1,
        ))
    }

    /// Puts a send request (JSON text) on the sends queue.
    pub async fn enqueue(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .expect("send to the sends queue");
    }

    /// One batch through the sender, as Lambda would run it.
    pub async fn run(&self) -> PollReport {
        self.poller
            .poll_once(0)
            .await
            .expect("poll the sends queue")
    }

    /// Makes the failed records of `report` visible now, as if their backoff had passed.
    pub async fn expedite(&self, report: &PollReport) {
        for handle in &report.failed_handles {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.queue_url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await
                .expect("make a record visible again");
        }
    }

    pub async fn ledger(&self, key: &str) -> Option<LedgerEntry> {
        self.harness
            .store()
            .get_send(&IdempotencyKey::parse(key).unwrap())
            .await
            .unwrap()
    }

    /// Everything on the DLQ, with its attributes.
    pub async fn dead_letters(&self) -> Vec<DeadLettered> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.dlq_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| DeadLettered {
                body: m.body.clone().unwrap_or_default(),
                attributes: m
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| {
                                (k.clone(), v.string_value().unwrap_or_default().to_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// The send request bodies the simulator accepted.
    pub fn sent(&self) -> Vec<Value> {
        self.sim.accepted().into_iter().map(|m| m.body).collect()
    }

    /// Waits until `check` holds (status webhooks travel asynchronously), up to 5 s.
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..100 {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// A user writes to the business through the simulator's signed inbound webhook.
    /// A user writes, named by phone, BSUID or both, as Meta's 2026 webhooks do.
    pub async fn user_writes_as(&self, phone: Option<&str>, bsuid: Option<&str>, text: &str) {
        let body = serde_json::json!({
            "from": phone, "from_user_id": bsuid, "text": text, "phone_number_id": NUMBER, "name": "Test User"
        });
        let status = reqwest_post(&format!("{}/_sim/inbound", self.sim.url()), &body).await;
        assert_eq!(status, 200, "the simulator posted the inbound message");
    }

    pub async fn user_writes(&self, phone: &str, text: &str, referral: bool) {
        let body = serde_json::json!({
            "from": phone, "text": text, "referral": referral, "phone_number_id": NUMBER, "name": "Test User"
        });
        let status = reqwest_post(&format!("{}/_sim/inbound", self.sim.url()), &body).await;
        assert_eq!(status, 200, "the simulator posted the inbound message");
    }
}

#[allow(clippy::too_many_arguments)] // a test world's parts, passed once
fn make_sender(
    sdk: &aws_config::SdkConfig,
    harness: &Harness,
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    dlq_url: &str,
    sim_url: &str,
    options: &WorldOptions,
    concurrency: usize,
) -> Sender {
    let graph = GraphClient::new(
        GraphConfig {
            base_url: sim_url.to_owned(),
            api_version: "v25.0".into(),
            timeout: options.graph_timeout,
            connect_timeout: Duration::from_millis(500),
        },
        SecretString::new(options.token.clone()),
    )
    .unwrap();
    // Files from moto's S3, uploaded to the simulator (the deployed sender's S3 client and caps).
    let media = MediaUploads::new(
        graph.clone(),
        MediaDownloadConfig::default(),
        wahook::aws::s3_client(sdk),
        wahook::domain::media::MediaCaps::outbound(),
    );
    let sender = Sender::new(
        harness.store().clone(),
        graph,
        SendQueue::new(sqs.clone(), queue_url.to_owned(), dlq_url.to_owned()),
        Pacer::new(options.rate_per_second, options.burst),
        SenderSettings {
            default_from: Some(wahook::domain::ids::PhoneNumberId::parse(NUMBER).unwrap()),
            policy: options.policy.clone(),
            concurrency,
            ledger: LedgerSettings {
                lease_secs: 30,
                reconcile_wait_secs: options.reconcile_wait_secs,
            },
            allowed_from: vec![wahook::domain::ids::PhoneNumberId::parse(NUMBER).unwrap()],
            account: options.account,
            max_receive_count: options.max_receive_count,
            record_budget: options.graph_timeout + Duration::from_secs(2),
            templates: options.templates.clone(),
            marketing_cap: options.marketing_cap,
        },
        Metrics::disabled("sender"),
    )
    .with_media(media);
    match &options.token_secret {
        None => sender,
        Some(arn) => sender.with_token_source(TokenSource::new(
            "WAHOOK_ACCESS_TOKEN",
            SecretRef::SecretsManager(arn.clone()),
            SecretResolver::new(sdk.clone()),
            Duration::ZERO,
        )),
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.webhook_task.abort();
    }
}

async fn reqwest_post(url: &str, body: &Value) -> u16 {
    let client = wahook::tls::https_client_builder().build().unwrap();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("reach the simulator");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let webhook: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status == 200 {
        assert_eq!(
            webhook["webhook_status"], 200,
            "the webhook accepted the simulator's delivery: {text}"
        );
    }
    status
}
