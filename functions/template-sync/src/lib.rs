//! The template-sync Lambda's adapter: any event (EventBridge's schedule, or a manual
//! `aws lambda invoke`) runs one sync. No rule lives here; see `wahook::sync`.

use std::time::{Duration, SystemTime};

use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;
use wahook::domain::time::UnixTime;
use wahook::sync::TemplateSync;

/// Time kept back from the invocation's deadline to log and answer.
const MARGIN: Duration = Duration::from_secs(5);

/// Runs one sync and answers its report. A failed sync fails the invocation, so Lambda's own
/// `Errors` metric (and its alarm) sees it; the next schedule tries again, and every write is
/// conditional on its time, so a retry or an overlap changes nothing twice. A sync that would run
/// past the function's timeout stops just before it, with an error that says so, rather than
/// being killed without a word.
pub async fn handle(sync: &TemplateSync, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let run = sync.run(UnixTime::now());
    let report = match time_left(&event.context) {
        Some(left) => tokio::time::timeout(left.saturating_sub(MARGIN), run)
            .await
            .map_err(|_| {
                tracing::error!(event = "template_sync_failed", error = "out of time", "template sync stopped before the function's timeout; what was read is written, and the next run starts over");
                Error::from("the template sync ran out of the function's time; what was read is written. Raise the function's Timeout (and WAHOOK_FUNCTION_TIMEOUT_SECONDS) if it keeps happening")
            })??,
        None => run.await?,
    };
    Ok(serde_json::to_value(report)?)
}

/// What is left of the invocation; `None` when the runtime gave no deadline.
fn time_left(context: &lambda_runtime::Context) -> Option<Duration> {
    if context.deadline == 0 {
        return None;
    }
    Some(
        context
            .deadline()
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    )
}
