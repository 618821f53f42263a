//! The media path: a queued job names a stored message; its media is located at Meta, streamed into S3
//! while hashed, checked against Meta's SHA-256, and the outcome recorded on the message. See
//! `docs/media.md`.
//!
//! Each job ends in one of: done (stored, too large, checksum mismatch, gone: all recorded, all
//! final), skipped (already final, or a message without media), or retry (the lease is given back and
//! the queue redelivers; after `maxReceiveCount` the job is dead-lettered).

pub mod queue;
mod upload;

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub use queue::MediaQueue;
pub use upload::PART_BYTES;

use crate::config::MediaConfig;
use crate::domain::ids::Wamid;
use crate::domain::media::{
    content_type, object_key, MediaCaps, MediaJob, MediaState, Sha256Digest,
};
use crate::domain::time::UnixTime;
use crate::graph::media::{MediaClient, MediaFetchError, MediaLocation};
use crate::graph::{GraphClient, GraphSetupError};
use crate::store::media::{MediaClaim, MediaOutcome, MediaRecord, StoredMedia};
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;
use upload::ObjectUpload;

/// One record of an SQS batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    pub message_id: String,
    pub body: String,
}

/// How one job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaReport {
    /// This job recorded a final outcome.
    Done(MediaState),
    /// Nothing to do: already final, no media, or no such message.
    Skipped(Option<MediaState>),
    /// This attempt outlived its lease; another took the media over and records it.
    LeaseLost,
}

/// Time kept back from the invocation to record the outcome (or give the claim back).
const RECORD_MARGIN: Duration = Duration::from_secs(15);

/// Meta keeps a webhook's media id for 7 days.
const MEDIA_ID_LIFETIME_SECS: i64 = 7 * 24 * 60 * 60;

/// Why a job is to be tried again.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "another worker holds this media until {lease_until} (Unix seconds); the job comes back"
    )]
    Busy { lease_until: i64 },
    #[error("{0}; the job comes back")]
    Retry(String),
}

#[derive(Debug, Clone)]
pub struct MediaService {
    store: Store,
    client: MediaClient,
    s3: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    caps: MediaCaps,
    lease_secs: i64,
    metrics: Metrics,
}

impl MediaService {
    pub fn new(
        config: &MediaConfig,
        store: Store,
        client: MediaClient,
        s3: aws_sdk_s3::Client,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            client,
            s3,
            bucket: config.bucket.clone(),
            prefix: config.prefix.clone(),
            caps: config.caps,
            lease_secs: config.lease.as_secs() as i64,
            metrics,
        }
    }

    /// Builds every client from the function's configuration, within its deadlines.
    pub fn from_config(
        config: &MediaConfig,
        sdk: &aws_config::SdkConfig,
        metrics: Metrics,
    ) -> Result<Self, GraphSetupError> {
        let sdk = &config.deadlines.apply(sdk);
        let store = config.storage.store(aws_sdk_dynamodb::Client::new(sdk));
        let graph = GraphClient::new(config.graph.clone(), config.access_token.clone())?;
        let client = MediaClient::new(graph, config.download.clone())?;
        let s3 = crate::aws::s3_client(sdk);
        Ok(Self::new(config, store, client, s3, metrics))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// One SQS batch: each job on its own, one at a time (a download uses the bandwidth; a batch of
    /// one is what the stack configures), each ending before `deadline` (the invocation's). Returns
    /// the message ids to retry.
    pub async fn handle_batch(
        &self,
        jobs: Vec<QueuedJob>,
        deadline: Option<Instant>,
    ) -> Vec<String> {
        let mut failures = Vec::new();
        for job in jobs {
            let wamid = match MediaJob::parse(&job.body) {
                Ok(w) => w,
                Err(problem) => {
                    // Kept failing, so SQS moves it to the DLQ where a person can read it.
                    tracing::error!(event = "media_job_unreadable", message_id = %job.message_id, problem = %problem, "a media job could not be read; it goes to the DLQ after maxReceiveCount");
                    failures.push(job.message_id);
                    continue;
                }
            };
            if let Err(e) = self.process(&wamid, deadline).await {
                tracing::warn!(event = "media_job_retry", wamid = %wamid, error = %e, "media job failed: {e}");
                failures.push(job.message_id);
            }
        }
        failures
    }

    /// Fetches the media of one stored message, once, and records how it ended before `deadline`
    /// (less a margin to record it).
    pub async fn process(
        &self,
        wamid: &Wamid,
        deadline: Option<Instant>,
    ) -> Result<MediaReport, MediaError> {
        let Some(record) = self.store.media_record(wamid).await? else {
            tracing::warn!(event = "media_job_without_media", wamid = %wamid, "a media job names a message that is not stored or has no media id; dropped");
            return Ok(MediaReport::Skipped(None));
        };
        // A token only this attempt knows: an attempt that outlived its lease cannot overwrite the
        // work of the one that took over.
        let claim = uuid::Uuid::new_v4().to_string();
        match self
            .store
            .claim_media(wamid, &claim, UnixTime::now(), self.lease_secs)
            .await?
        {
            MediaClaim::Claimed => {}
            MediaClaim::Done(state) => return Ok(MediaReport::Skipped(state)),
            MediaClaim::Missing => return Ok(MediaReport::Skipped(None)),
            MediaClaim::Busy { lease_until } => return Err(MediaError::Busy { lease_until }),
        }
        let started = Instant::now();
        // Inside the lease, and inside the invocation with time left to record the outcome.
        let mut budget = Duration::from_secs(self.lease_secs.max(60) as u64 - 30);
        if let Some(d) = deadline {
            budget = budget.min(
                d.saturating_duration_since(started)
                    .saturating_sub(RECORD_MARGIN),
            );
        }
        let fetched = match tokio::time::timeout(budget, self.fetch(&record)).await {
            Ok(fetched) => fetched,
            Err(_) => Err(format!(
                "the download did not finish within {} s (the function's time, less {} s to record this); a slow host or a large file: the job comes back, and a longer function timeout helps",
                budget.as_secs(),
                RECORD_MARGIN.as_secs()
            )),
        };
        let outcome = match fetched {
            Ok(outcome) => outcome,
            Err(problem) => {
                tracing::warn!(event = "media_retry", wamid = %wamid, kind = record.kind.as_str(), problem = %problem, "media not fetched this time: {problem}");
                self.metrics.emit(&[("MediaRetries", 1)]);
                if !self.store.release_media(wamid, &claim, &problem).await? {
                    tracing::warn!(event = "media_lease_lost", wamid = %wamid, "another attempt took this media over after our lease ended");
                }
                return Err(MediaError::Retry(problem));
            }
        };
        let state = match &outcome {
            MediaOutcome::Stored(_) => MediaState::Stored,
            MediaOutcome::TooLarge { .. } => MediaState::TooLarge,
            MediaOutcome::Mismatch { .. } => MediaState::Mismatch,
            MediaOutcome::Gone { .. } => MediaState::Gone,
        };
        if !self
            .store
            .finish_media(wamid, &claim, &outcome, UnixTime::now())
            .await?
        {
            // The object (if any) is the same bytes under the same key the other attempt writes.
            tracing::warn!(event = "media_lease_lost", wamid = %wamid, state = state.as_str(), "this attempt outlived its lease and another took over; its outcome is not recorded");
            return Ok(MediaReport::LeaseLost);
        }
        let size = match &outcome {
            MediaOutcome::Stored(m) => m.size,
            _ => 0,
        };
        // Names, sizes and states only: the file's content and caption never reach the log.
        tracing::info!(event = "media_done", wamid = %wamid, kind = record.kind.as_str(), state = state.as_str(), bytes = size, ms = started.elapsed().as_millis() as u64, "media {}", state.as_str());
        let metric = match state {
            MediaState::Stored => "MediaStored",
            MediaState::TooLarge => "MediaTooLarge",
            MediaState::Mismatch => "MediaHashMismatch",
            _ => "MediaGone",
        };
        self.metrics.emit(&[(metric, 1), ("MediaBytes", size)]);
        Ok(MediaReport::Done(state))
    }

    /// Locate, download, check. `Err` is a problem worth a later try.
    async fn fetch(&self, record: &MediaRecord) -> Result<MediaOutcome, String> {
        let cap = self.caps.of(record.kind);
        let mut location = match self.locate(record).await? {
            Ok(l) => l,
            Err(gone) => return Ok(gone),
        };
        // A URL lasts five minutes: one refused download earns one fresh URL, then the queue retries.
        let mut fresh_url_left = true;
        loop {
            if let Some(size) = location.file_size.filter(|s| *s > cap) {
                return Ok(MediaOutcome::TooLarge {
                    size,
                    cap,
                    announced: true,
                });
            }
            match self.download(record, &location, cap).await {
                Ok(outcome) => return Ok(outcome),
                Err(MediaFetchError::Expired(why)) if fresh_url_left => {
                    tracing::info!(event = "media_url_refused", wamid = %record.wamid, why = %why, "asking Meta for a fresh download URL");
                    fresh_url_left = false;
                    location = match self.locate(record).await? {
                        Ok(l) => l,
                        Err(gone) => return Ok(gone),
                    };
                }
                Err(MediaFetchError::Expired(why)) => {
                    return Err(format!("the download URL was refused twice ({why})"))
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// `Ok(Err(outcome))`: Meta says the media is gone, which is final.
    async fn locate(
        &self,
        record: &MediaRecord,
    ) -> Result<Result<MediaLocation, MediaOutcome>, String> {
        match self
            .client
            .locate(&record.media_id, record.number.as_str())
            .await
        {
            Ok(l) => Ok(Ok(l)),
            Err(MediaFetchError::Gone(reason)) => Ok(Err(MediaOutcome::Gone { reason })),
            // Code 100 is what an expired id gets, and what a token without access to the number
            // gets: only the first is final, so only past the id's lifetime.
            Err(MediaFetchError::Unavailable(reason)) => {
                let age = record.at.map(|at| UnixTime::now().secs() - at.secs());
                if age.is_some_and(|a| a > MEDIA_ID_LIFETIME_SECS) {
                    Ok(Err(MediaOutcome::Gone { reason }))
                } else {
                    Err(format!(
                        "{reason}. The message is younger than the 7 days Meta keeps media, so the access token may lack access to this number (its system user must be assigned to the WhatsApp account)"
                    ))
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Streams the bytes into S3 while hashing them; nothing is kept unless they match.
    async fn download(
        &self,
        record: &MediaRecord,
        location: &MediaLocation,
        cap: u64,
    ) -> Result<MediaOutcome, MediaFetchError> {
        // Which checksum to hold the bytes to, decided before any byte is read: the webhook's
        // first (it came signed), Meta's media answer's when the webhook's is absent or unreadable.
        let claimed: Vec<&str> = [record.sha256.as_deref(), location.sha256.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let expected = claimed.iter().find_map(|raw| Sha256Digest::parse(raw));
        if expected.is_none() && !claimed.is_empty() {
            tracing::error!(event = "media_checksum_unreadable", wamid = %record.wamid, "Meta's SHA-256 reads as neither hex nor base64; nothing is downloaded until it does (see domain::media::Sha256Digest)");
            return Err(MediaFetchError::Retry(format!(
                "Meta's SHA-256 ({}…) reads as neither hex nor base64",
                claimed[0].chars().take(12).collect::<String>()
            )));
        }
        let mut body = self.client.open(&location.url).await?;
        if let Some(size) = body.length().filter(|s| *s > cap) {
            return Ok(MediaOutcome::TooLarge {
                size,
                cap,
                announced: true,
            });
        }
        let mime_type = [
            record.mime_type.clone(),
            location.mime_type.clone(),
            body.content_type(),
        ]
        .into_iter()
        .flatten()
        .find_map(|m| content_type(&m));
        let key = object_key(&self.prefix, &record.number, &record.wamid);
        let mut upload = ObjectUpload::new(&self.s3, &self.bucket, &key, mime_type.clone());
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        loop {
            let chunk = match body.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    upload.abort().await;
                    return Err(e);
                }
            };
            size += chunk.len() as u64;
            if size > cap {
                // The host sent more than the cap (or more than it announced): stop reading.
                upload.abort().await;
                return Ok(MediaOutcome::TooLarge {
                    size,
                    cap,
                    announced: false,
                });
            }
            hasher.update(&chunk);
            if let Err(e) = upload.write(&chunk).await {
                upload.abort().await;
                return Err(MediaFetchError::Retry(e));
            }
        }
        let got = Sha256Digest::from_bytes(hasher.finalize().into());
        match expected {
            Some(want) if want != got => {
                upload.abort().await;
                return Ok(MediaOutcome::Mismatch {
                    expected_hex: want.to_hex(),
                    got_hex: got.to_hex(),
                });
            }
            Some(_) => {}
            None => {
                tracing::warn!(event = "media_unchecked", wamid = %record.wamid, "Meta gave no SHA-256 for this media; stored with media_unchecked = true");
            }
        }
        upload.complete().await.map_err(MediaFetchError::Retry)?;
        Ok(MediaOutcome::Stored(StoredMedia {
            bucket: self.bucket.clone(),
            key,
            size,
            mime_type,
            sha256_hex: got.to_hex(),
            verified: expected.is_some(),
        }))
    }
}
