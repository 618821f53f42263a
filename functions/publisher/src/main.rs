//! The publisher Lambda: wiring only. Configuration and clients are built once per cold start.

use lambda_runtime::{service_fn, Error};
use wahook::config::{Env, PublisherConfig};
use wahook::publish::Publisher;
use wahook::telemetry::{self, Metrics};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_logging();
    let sdk = wahook::aws::sdk_config().await;
    let config = telemetry::startup("configuration", PublisherConfig::load(&Env::process()))?;
    let publisher = Publisher::from_config(&config, &sdk, Metrics::for_service("publisher"));
    lambda_runtime::run(service_fn(|event| {
        wahook_publisher::handle(&publisher, event)
    }))
    .await
}
