//! The template-sync Lambda: wiring only. Configuration and clients are built once per cold start.

use lambda_runtime::{service_fn, Error};
use wahook::config::{Env, SecretResolver, TemplateSyncConfig};
use wahook::sync::TemplateSync;
use wahook::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_logging();
    let sdk = wahook::aws::sdk_config().await;
    let config = telemetry::startup(
        "configuration",
        TemplateSyncConfig::load(&Env::process(), &SecretResolver::new(sdk.clone())).await,
    )?;
    let sync = telemetry::startup(
        "the template sync's clients",
        TemplateSync::from_config(&config, &sdk),
    )?;
    lambda_runtime::run(service_fn(|event| {
        wahook_template_sync::handle(&sync, event)
    }))
    .await
}
