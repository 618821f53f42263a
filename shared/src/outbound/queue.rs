//! The sends queue as the sender sees it: one record of a batch, the dead-letter queue for requests
//! that must never be retried, and per-record backoff through the visibility timeout.

use aws_sdk_sqs::types::MessageAttributeValue;

use crate::domain::time::UnixTime;

/// One SQS record of a batch, as the Lambda event gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedSend {
    pub message_id: String,
    pub receipt_handle: Option<String>,
    pub body: String,
    /// `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
}

/// SQS caps a message's delay at 15 minutes.
pub const MAX_DELAY_SECS: u32 = 900;

/// SQS caps the visibility timeout at 12 hours.
pub const MAX_VISIBILITY_SECS: u32 = 43_200;

/// The sends queue and its DLQ, defined once: the local stack creates them from this and the IaC
/// check holds `infra/template.yaml` to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDef {
    /// Six times the sender's function timeout (30 s) plus the largest batching window (20 s), as AWS
    /// recommends.
    pub visibility_timeout_secs: u32,
    /// Deliveries before SQS moves a message to the DLQ (the template's default).
    pub max_receive_count: u32,
    /// 14 days, the most SQS keeps, on both queues.
    pub retention_secs: u32,
}

pub const SENDS_QUEUE: QueueDef = QueueDef {
    visibility_timeout_secs: 200,
    max_receive_count: crate::config::sender::DEFAULT_MAX_RECEIVE_COUNT,
    retention_secs: 1_209_600,
};

/// Why a record goes to the DLQ at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// A short machine-readable code: `invalid_request`, `key_reused`, `no_sender_number`.
    pub code: &'static str,
    /// What was wrong and what to do, for the humans reading the DLQ.
    pub reason: String,
}

/// The queue and its DLQ.
#[derive(Debug, Clone)]
pub struct SendQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    dlq_url: String,
}

impl SendQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: String, dlq_url: String) -> Self {
        Self {
            client,
            queue_url,
            dlq_url,
        }
    }

    /// Copies the record to the DLQ with its reason as message attributes (`wahook-error`,
    /// `wahook-reason`, `wahook-source-message-id`, `wahook-failed-at`).
    pub async fn dead_letter(
        &self,
        record: &QueuedSend,
        letter: &DeadLetter,
        now: UnixTime,
    ) -> Result<(), QueueError> {
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .expect("type and value are set")
        };
        // An empty body cannot be sent to SQS; say so instead of losing the record.
        let body = if record.body.is_empty() {
            "(empty body)"
        } else {
            &record.body
        };
        self.client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(body)
            .message_attributes("wahook-error", attr(letter.code))
            .message_attributes("wahook-reason", attr(&letter.reason))
            .message_attributes("wahook-source-message-id", attr(&record.message_id))
            .message_attributes("wahook-failed-at", attr(&now.to_rfc3339()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError::Sqs {
                operation: "SendMessage (to the DLQ)",
                message: aws_sdk_sqs::Error::from(e).to_string(),
            })
    }

    /// Puts a fresh copy of the record on the sends queue, visible in `secs` (at most SQS's 15
    /// minutes): a held send that has used its receives starts counting again instead of reaching
    /// the DLQ during an account outage. The ledger keeps the copy and any leftover original from
    /// both being sent.
    pub async fn requeue(&self, record: &QueuedSend, secs: u32) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&record.body)
            .delay_seconds(secs.min(MAX_DELAY_SECS) as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError::Sqs {
                operation: "SendMessage (requeue a held send)",
                message: aws_sdk_sqs::Error::from(e).to_string(),
            })
    }

    /// Makes the record visible again in `secs` (its own backoff, independent of its neighbours').
    pub async fn delay(&self, record: &QueuedSend, secs: u32) -> Result<(), QueueError> {
        let Some(handle) = &record.receipt_handle else {
            return Err(QueueError::NoReceiptHandle);
        };
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(handle)
            .visibility_timeout(secs.min(MAX_VISIBILITY_SECS) as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError::Sqs {
                operation: "ChangeMessageVisibility",
                message: aws_sdk_sqs::Error::from(e).to_string(),
            })
    }
}

/// A queue call that failed: the record is retried (or comes back after its visibility timeout).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("SQS {operation} failed: {message}")]
    Sqs {
        operation: &'static str,
        message: String,
    },
    #[error("the record has no receipt handle, so its visibility cannot be changed")]
    NoReceiptHandle,
}
