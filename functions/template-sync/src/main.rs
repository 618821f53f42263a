//! The template-sync Lambda: wiring only. Configuration and clients are built once per cold start.

use lambda_runtime::{service_fn, Error};
use wahook::config::{Env, SecretResolver, TemplateSyncConfig};
use wahook::sync::TemplateSync;
use wahook::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_logging();
    let sdk = wahook::aws::sdk_config().await;
    let config =
        match TemplateSyncConfig::load(&Env::process(), &SecretResolver::new(sdk.clone())).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(event = "startup_failed", error = %e, "configuration error: {e}");
                return Err(e.into());
            }
        };
    let sync = TemplateSync::from_config(&config, &sdk)?;
    lambda_runtime::run(service_fn(|event| {
        wahook_template_sync::handle(&sync, event)
    }))
    .await
}
