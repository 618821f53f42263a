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
        .handle_batch_before(records, invocation_deadline(&event.context))
        .await;
    let mut response = SqsBatchResponse::default();
    for id in result.failures {
        // Lambda treats an empty identifier as a failure of the whole batch, which is the safe side.
        response.add_failure(id);
    }
    Ok(response)
}

/// The invocation's deadline as an `Instant`; `None` when the runtime gave none (a zero `deadline`).
fn invocation_deadline(context: &lambda_runtime::Context) -> Option<std::time::Instant> {
    if context.deadline == 0 {
        return None;
    }
    let left = context
        .deadline()
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Some(std::time::Instant::now() + left)
}
