//! The media Lambda's adapter: an SQS batch of media jobs in, the per-record failures out. No rule
//! lives here; see `wahook::media`.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use wahook::media::{MediaService, QueuedJob};

pub async fn handle(
    service: &MediaService,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let deadline = wahook::retry::deadline_from_epoch_ms(event.context.deadline);
    let jobs = event
        .payload
        .records
        .into_iter()
        .map(|m| QueuedJob {
            message_id: m.message_id.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
        })
        .collect();
    let mut response = SqsBatchResponse::default();
    for id in service.handle_batch(jobs, deadline).await {
        // Lambda treats an empty identifier as a failure of the whole batch, which is the safe side.
        response.add_failure(id);
    }
    Ok(response)
}
