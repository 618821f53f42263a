//! The sender Lambda's adapter: an SQS batch in, the per-record failures out. No rule lives here; see
//! `wahook::outbound`.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use wahook::outbound::{QueuedSend, Sender};

/// Handles one batch. Records are read one by one (never as a typed batch, so one malformed body
/// cannot fail its neighbours); each failure is reported by message id.
pub async fn handle(
    sender: &Sender,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let records: Vec<QueuedSend> = event
        .payload
        .records
        .into_iter()
        .map(|m| QueuedSend {
            receive_count: m
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            message_id: m.message_id.unwrap_or_default(),
            receipt_handle: m.receipt_handle,
            body: m.body.unwrap_or_default(),
        })
        .collect();
    let result = sender
        .handle_batch_before(
            records,
            wahook::retry::deadline_from_epoch_ms(event.context.deadline),
        )
        .await;
    let mut response = SqsBatchResponse::default();
    for id in result.failures {
        // Lambda treats an empty identifier as a failure of the whole batch, which is the safe side.
        response.add_failure(id);
    }
    Ok(response)
}
