//! The sender Lambda: wiring only. Configuration and clients are built once per cold start.

use lambda_runtime::{service_fn, Error};
use wahook::config::{Env, SecretResolver, SenderConfig};
use wahook::outbound::Sender;
use wahook::telemetry::{self, Metrics};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_logging();
    let sdk = wahook::aws::sdk_config().await;
    let config = telemetry::startup(
        "configuration",
        SenderConfig::load(&Env::process(), &SecretResolver::new(sdk.clone())).await,
    )?;
    let sender = telemetry::startup(
        "the sender's clients",
        Sender::from_config(&config, &sdk, Metrics::for_service("sender")),
    )?;
    lambda_runtime::run(service_fn(|event| wahook_sender::handle(&sender, event))).await
}
