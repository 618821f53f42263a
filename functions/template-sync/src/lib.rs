//! The template-sync Lambda's adapter: any event (EventBridge's schedule, or a manual
//! `aws lambda invoke`) runs one sync. No rule lives here; see `wahook::sync`.

use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;
use wahook::domain::time::UnixTime;
use wahook::sync::TemplateSync;

/// Runs one sync and answers its report. A failed sync fails the invocation, so Lambda's own
/// `Errors` metric (and its alarm) sees it; the next schedule tries again, and every write is
/// conditional on its time, so a retry or an overlap changes nothing twice.
pub async fn handle(sync: &TemplateSync, _event: LambdaEvent<Value>) -> Result<Value, Error> {
    let report = sync.run(UnixTime::now()).await?;
    Ok(serde_json::to_value(report)?)
}
