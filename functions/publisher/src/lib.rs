//! The publisher Lambda's adapter: a DynamoDB stream batch in, the first record not fully published
//! out (`ReportBatchItemFailures`). No rule lives here; see `wahook::publish`.

use lambda_runtime::{Error, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wahook::publish::Publisher;

/// Lambda's DynamoDB stream event. Records stay raw JSON here: each is read on its own, so one that
/// cannot be read names itself instead of failing the whole batch.
#[derive(Debug, Default, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<Value>,
}

/// `{"batchItemFailures": [{"itemIdentifier": "<sequence number>"}]}`: for a stream, Lambda resumes
/// the shard from the lowest one named.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StreamBatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BatchItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

pub async fn handle(
    publisher: &Publisher,
    event: LambdaEvent<StreamEvent>,
) -> Result<StreamBatchResponse, Error> {
    let records = publisher.read_records(&event.payload.records);
    let deadline = wahook::retry::deadline_from_epoch_ms(event.context.deadline);
    let outcome = publisher.publish(records, deadline).await;
    let mut response = StreamBatchResponse::default();
    if let Some(sequence) = outcome.failed_from {
        // Lambda treats an empty identifier as a failure of the whole batch, which is the safe side
        // for a record we could not even place.
        response.batch_item_failures.push(BatchItemFailure {
            item_identifier: sequence.unwrap_or_default(),
        });
    }
    Ok(response)
}
