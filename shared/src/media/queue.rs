//! The media queue, from the webhook's side: one job per stored message whose media is not queued
//! yet, sent in batches of ten before the webhook answers Meta.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::domain::ids::Wamid;
use crate::domain::media::MediaJob;

#[derive(Debug, Clone)]
pub struct MediaQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl MediaQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// Queues one job per wamid. `Err` names what failed; the caller answers Meta 503, and the
    /// redelivery queues whatever is still `pending`.
    pub async fn enqueue(&self, wamids: &[&Wamid]) -> Result<(), String> {
        for chunk in wamids.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(MediaJob::new(w).to_json())
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "SQS SendMessageBatch to the media queue failed: {}",
                        aws_sdk_sqs::Error::from(e)
                    )
                })?;
            if let Some(failed) = out.failed.first() {
                return Err(format!(
                    "SQS refused {} media job(s), e.g. {}: {}",
                    out.failed.len(),
                    failed.code,
                    failed.message.as_deref().unwrap_or("no message")
                ));
            }
        }
        Ok(())
    }
}
