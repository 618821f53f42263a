//! The media Lambda: wiring only. Configuration and clients are built once per cold start.

use lambda_runtime::{service_fn, Error};
use wahook::config::{Env, MediaConfig, SecretResolver};
use wahook::media::MediaService;
use wahook::telemetry::{self, Metrics};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_logging();
    let sdk = wahook::aws::sdk_config().await;
    let config = telemetry::startup(
        "configuration",
        MediaConfig::load(&Env::process(), &SecretResolver::new(sdk.clone())).await,
    )?;
    let service = telemetry::startup(
        "the media service's clients",
        MediaService::from_config(&config, &sdk, Metrics::for_service("media")),
    )?;
    lambda_runtime::run(service_fn(|event| wahook_media::handle(&service, event))).await
}
