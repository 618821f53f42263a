//! Test harness for the integration tests: moto's DynamoDB (started by `scripts/test.sh`), per-test
//! tables, the real webhook adapter fed with API Gateway v2 events, and SDK interceptors that count
//! DynamoDB requests or inject a storage failure.

pub mod dynamo;
pub mod fixtures;
pub mod local_stack;
pub mod media;
pub mod mutate;
pub mod sender;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::Client;
use lambda_http::Body;
use wahook::config::{Deadlines, Env, Function, StorageConfig, WebhookConfig};
use wahook::domain::keywords::KeywordRules;
use wahook::secret::SecretString;
use wahook::store::tables::{create_all_tables_with, Streams, TableNames};
use wahook::store::Store;
use wahook::telemetry::Metrics;
use wahook::webhook::WebhookService;

pub use dynamo::{FaultInjector, RequestCounter, StoredState};
pub use fixtures::{FIXTURE_APP_SECRET, FIXTURE_VERIFY_TOKEN};

/// The emulator's endpoint, as exported by `scripts/test.sh`.
pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set: the integration tests need moto's DynamoDB. \
             Run them with scripts/test.sh, which installs moto, starts it on 127.0.0.1 and sets it."
        )
    })
}

/// An SDK configuration pointed at moto, with dummy credentials.
pub async fn sdk_config() -> SdkConfig {
    sdk_config_at(&endpoint()).await
}

/// An SDK configuration pointed at a moto at `endpoint` (a test's own, to pause it).
pub async fn sdk_config_at(endpoint: &str) -> SdkConfig {
    wahook::aws::sdk_loader()
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await
}

/// The service's JSON logs, captured per test and shown when a test fails.
pub fn init_test_logging() {
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_target(false)
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
}

/// A unique table prefix per test, so tests run in parallel against one moto.
pub fn unique_prefix(name: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("t-{name}-{}", &id[..12])
}

/// One test's world: its own tables, a client with counters, and the webhook service over them.
pub struct Harness {
    pub client: Client,
    pub tables: TableNames,
    pub counter: Arc<RequestCounter>,
    pub fault: Arc<FaultInjector>,
    pub service: WebhookService,
}

/// The answer of the webhook function, read back from `lambda_http`'s response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

impl Harness {
    pub async fn new(name: &str) -> Self {
        Self::with_config(name, |_| {}).await
    }

    /// Like [`Harness::new`], with a chance to change the configuration first.
    pub async fn with_config(name: &str, tweak: impl FnOnce(&mut WebhookConfig)) -> Self {
        Self::build(name, &endpoint(), false, tweak).await
    }

    /// A harness over the moto at `endpoint`; with `deadlines`, the SDK gets the configuration's
    /// timeouts exactly as the webhook function applies them.
    pub async fn build(
        name: &str,
        endpoint: &str,
        deadlines: bool,
        tweak: impl FnOnce(&mut WebhookConfig),
    ) -> Self {
        Self::build_with(name, endpoint, deadlines, Streams::Off, tweak).await
    }

    /// A harness whose tables have their streams, for the publisher's tests.
    pub async fn with_streams(name: &str) -> Self {
        Self::build_with(name, &endpoint(), false, Streams::NewAndOldImages, |_| {}).await
    }

    async fn build_with(
        name: &str,
        endpoint: &str,
        deadlines: bool,
        streams: Streams,
        tweak: impl FnOnce(&mut WebhookConfig),
    ) -> Self {
        init_test_logging();
        let sdk = sdk_config_at(endpoint).await;
        let counter = Arc::new(RequestCounter::default());
        let fault = Arc::new(FaultInjector::default());
        let tables = TableNames::with_prefix(&unique_prefix(name));
        let mut config = WebhookConfig {
            app_secrets: vec![SecretString::new(FIXTURE_APP_SECRET)],
            verify_token: SecretString::new(FIXTURE_VERIFY_TOKEN),
            storage: StorageConfig {
                tables: tables.clone(),
                retention_days: 90,
            },
            keywords: KeywordRules::default(),
            inbound_numbers: None,
            write_concurrency: 16,
            deadlines: Deadlines::load(&Env::from_pairs::<&str, &str>([]), Function::Webhook)
                .expect("default deadlines"),
            // moto serialises DynamoDB requests and this machine is shared: a 1000-status delivery
            // can take longer here than Lambda's 8 s. The deadline's own tests set theirs.
            delivery_deadline: std::time::Duration::from_secs(60),
            media_queue_url: None,
        };
        tweak(&mut config);
        // The tables are set up without the deadlines: creating five tables in a busy moto is not
        // what a test of the webhook's deadline measures.
        create_all_tables_with(&Client::new(&sdk), &tables, streams)
            .await
            .expect("create the test tables in moto");
        let sdk = if deadlines {
            config.deadlines.apply(&sdk)
        } else {
            sdk
        };
        let conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(dynamo::CountingInterceptor(counter.clone()))
            .interceptor(dynamo::FaultInterceptor(fault.clone()))
            .build();
        let client = Client::from_conf(conf);
        let service = WebhookService::new(&config, client.clone(), Metrics::disabled("webhook"))
            .expect("valid test configuration");
        counter.reset();
        Self {
            client,
            tables,
            counter,
            fault,
            service,
        }
    }

    pub fn store(&self) -> &Store {
        self.service.store()
    }

    /// The same webhook, queueing media jobs on `queue`.
    pub fn with_media_queue(mut self, queue: wahook::media::MediaQueue) -> Self {
        self.service = self.service.with_media_queue(queue);
        self
    }

    /// Invokes the webhook function's handler with a raw API Gateway v2 event (JSON text).
    pub async fn invoke(&self, event_json: &str) -> Reply {
        let request =
            lambda_http::request::from_str(event_json).expect("a valid API Gateway v2 event");
        let response = wahook_webhook::handle(&self.service, request)
            .await
            .expect("the handler never fails the invocation");
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = match response.body() {
            Body::Text(t) => t.clone(),
            Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        Reply {
            status: response.status().as_u16(),
            content_type,
            body,
        }
    }

    /// Signs `body` as Meta would and POSTs it.
    pub async fn deliver(&self, body: &[u8]) -> Reply {
        let event = fixtures::post_event(body, Some(&fixtures::sign(body)), false);
        self.invoke(&event).await
    }

    /// Signs and POSTs a fixture payload from `events/payloads/`.
    pub async fn deliver_fixture(&self, name: &str) -> Reply {
        self.deliver(&fixtures::payload(name)).await
    }

    /// Everything stored in this test's tables, without bookkeeping attributes.
    pub async fn state(&self) -> StoredState {
        dynamo::dump(&self.client, &self.tables).await
    }

    /// The contact item under `key`, as attribute name → rendered value.
    pub async fn contact_item(&self, key: &str) -> Option<BTreeMap<String, String>> {
        dynamo::get_item(&self.client, &self.tables.contacts, "contact", key).await
    }

    /// The message item for `wamid`.
    pub async fn message_item(&self, wamid: &str) -> Option<BTreeMap<String, String>> {
        dynamo::get_item(&self.client, &self.tables.messages, "wamid", wamid).await
    }
}
