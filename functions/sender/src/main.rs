//! The sender Lambda: wiring only. Configuration and clients are built once per cold start.

use lambda_runtime::{service_fn, Error};
use wahook::config::{Env, SecretResolver, SenderConfig};
use wahook::outbound::Sender;
use wahook::telemetry::{self, Metrics};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_logging();
    let sdk = wahook::aws::sdk_config().await;
    let config = match SenderConfig::load(&Env::process(), &SecretResolver::new(sdk.clone())).await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(event = "startup_failed", error = %e, "configuration error: {e}");
            return Err(e.into());
        }
    };
    let sender = Sender::from_config(&config, &sdk, Metrics::for_service("sender"))?;
    lambda_runtime::run(service_fn(|event| wahook_sender::handle(&sender, event))).await
}
