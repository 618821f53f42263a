//! Streams bytes into one S3 object without holding the file: up to one part in memory. A file that
//! fits in one part is a single `PutObject`; a bigger one a multipart upload. Nothing is visible in
//! the bucket until `complete`, so a file that fails its checksum is `abort`ed and never kept.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;

/// S3's smallest part (but the last) is 5 MiB; 8 MiB keeps the part count of a 100 MB document low
/// and the memory bounded.
pub const PART_BYTES: usize = 8 * 1024 * 1024;

pub struct ObjectUpload<'c> {
    client: &'c Client,
    bucket: String,
    key: String,
    content_type: Option<String>,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
}

fn s3_error(what: &str, e: impl std::error::Error + 'static) -> String {
    format!("S3 {what} failed: {}", crate::telemetry::error_chain(&e))
}

impl<'c> ObjectUpload<'c> {
    pub fn new(client: &'c Client, bucket: &str, key: &str, content_type: Option<String>) -> Self {
        Self {
            client,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            content_type,
            buffer: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
        }
    }

    /// Takes the next bytes; sends a part whenever one is full.
    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            let room = PART_BYTES - self.buffer.len();
            let take = room.min(bytes.len());
            if self.buffer.capacity() == 0 {
                // The first part grows with the file (most files are small); once a part has been
                // sent the file is big, and each part takes its whole buffer at once.
                let want = if self.parts.is_empty() {
                    bytes.len().max(64 * 1024)
                } else {
                    PART_BYTES
                };
                self.buffer.reserve_exact(want.min(PART_BYTES));
            }
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buffer.len() == PART_BYTES {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    async fn send_part(&mut self) -> Result<(), String> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .set_content_type(self.content_type.clone())
                    .send()
                    .await
                    .map_err(|e| s3_error("CreateMultipartUpload", e))?;
                let id = created
                    .upload_id
                    .ok_or("S3 CreateMultipartUpload answered without an upload id")?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.parts.len() as i32 + 1;
        let body = std::mem::take(&mut self.buffer);
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| s3_error("UploadPart", e))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag)
                .build(),
        );
        Ok(())
    }

    /// Makes the object visible.
    pub async fn complete(mut self) -> Result<(), String> {
        let Some(upload_id) = self.upload_id.clone() else {
            let body = std::mem::take(&mut self.buffer);
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .set_content_type(self.content_type.clone())
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| s3_error("PutObject", e))?;
            return Ok(());
        };
        if !self.buffer.is_empty() {
            self.send_part().await?;
        }
        let parts = std::mem::take(&mut self.parts);
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error("CompleteMultipartUpload", e))?;
        Ok(())
    }

    /// Drops what was sent. Best effort: the bucket's lifecycle rule also ends stale uploads.
    pub async fn abort(self) {
        if let Some(upload_id) = self.upload_id {
            if let Err(e) = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(upload_id)
                .send()
                .await
            {
                tracing::warn!(event = "media_abort_failed", error = %s3_error("AbortMultipartUpload", e), "an aborted media upload may linger until the bucket's lifecycle rule ends it");
            }
        }
    }
}
