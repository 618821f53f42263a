//! A file from S3 for a media send: uploaded to Meta (`POST /{phone_number_id}/media`), streamed from
//! S3, and its media id reused for the same object version and number while Meta keeps it. Why an
//! upload and not a presigned link: docs/media.md, "Outbound media".
//!
//! Everything here happens before the message call, so every failure is one the send can be retried
//! or refused on: nothing reached the person yet.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::domain::ids::PhoneNumberId;
use crate::domain::inbound::MediaKind;
use crate::domain::media::{content_type, mime_for_name, MediaCaps};
use crate::domain::send_request::{MediaMessage, S3Object};
use crate::graph::media::{MediaClient, MediaDownloadConfig};
use crate::graph::{ErrorClass, GraphClient, GraphError, MetaApiError};

/// Meta keeps an uploaded id 30 days; one is reused for 29.
const REUSE_FOR: Duration = Duration::from_secs(29 * 24 * 60 * 60);
/// At most this many ids are remembered (a few hundred bytes each): per-person files (invoices)
/// would otherwise grow the cache for the life of the instance.
const MAX_REMEMBERED: usize = 10_000;

/// The MIME types Meta takes for each kind (whatsapp-platform.md §10); a document may be any file.
fn mime_fits(kind: MediaKind, mime: &str) -> bool {
    let allowed: &[&str] = match kind {
        MediaKind::Image => &["image/jpeg", "image/png"],
        MediaKind::Video => &["video/mp4", "video/3gpp"],
        MediaKind::Audio => &[
            "audio/aac",
            "audio/amr",
            "audio/mpeg",
            "audio/mp4",
            "audio/ogg",
        ],
        MediaKind::Sticker => &["image/webp"],
        MediaKind::Document => return true,
    };
    allowed.contains(&mime)
}

/// An upload's identity: the number it is for, the object and its version (ETag).
type UploadKey = (PhoneNumberId, S3Object, String);
/// Meta's media id, and when it was uploaded.
type Uploaded = HashMap<UploadKey, (String, Instant)>;

/// Uploads and the ids they gave, per (number, object, ETag).
pub struct MediaUploads {
    graph: GraphClient,
    download: MediaDownloadConfig,
    /// Built at the first media send, not at start-up: a second HTTP client (its TLS set-up) is cold
    /// start time every sender would pay, most of which never send a file.
    client: OnceLock<Result<MediaClient, String>>,
    s3: aws_sdk_s3::Client,
    caps: MediaCaps,
    uploaded: Mutex<Uploaded>,
}

impl std::fmt::Debug for MediaUploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaUploads")
            .field("caps", &self.caps)
            .finish_non_exhaustive()
    }
}

/// A refusal on the request's own terms: the producer must fix the file or its URI.
pub(super) fn refuse(http_status: u16, message: String) -> GraphError {
    GraphError::Meta(MetaApiError {
        http_status,
        code: None,
        message,
        details: None,
        fbtrace_id: None,
        class: ErrorClass::FixRequest,
    })
}

/// What S3 said, as a send's outcome: a missing object or a denied read is the request's to fix; any
/// other failure (throttling, a timeout) is worth another try, and nothing was sent.
fn s3_failure<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &str,
    object: &S3Object,
    err: SdkError<E, HttpResponse>,
) -> GraphError {
    // Keys may carry personal data (a phone, a name): reasons and logs name the object by a hash.
    let object = object.redacted();
    // A HEAD's 404 has no body to name a code in: the status says it.
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err
        .as_service_error()
        .and_then(|e| e.code())
        .map(str::to_owned);
    match (status, code.as_deref()) {
        (Some(404), _) | (_, Some("NoSuchKey" | "NoSuchBucket" | "NotFound")) => refuse(
            404,
            format!("{object} does not exist (S3 {operation}): put the file there first, or fix the s3 URI"),
        ),
        // Denied is the stack's to fix (a bucket or prefix outside the role, a KMS key it may not
        // use), not the request's: retried, and dead-lettered with this reason if it stays so.
        (Some(403), _) | (_, Some("AccessDenied")) => GraphError::NotSent(format!(
            "the sender may not read {object} (S3 {operation}: access denied): files go under outbound/ of the stack's MediaBucket, readable by the sender's role (with a KMS key, the role needs kms:Decrypt too)"
        )),
        (Some(412), _) => GraphError::NotSent(format!(
            "{object} changed while it was being read; it is read again on the retry"
        )),
        // Any other 4xx is about the request (a bucket name S3 refuses, another region, SSE-C).
        (Some(s @ 400..=499), c) if s != 408 && s != 429 => refuse(
            s,
            format!(
                "S3 refused {operation} of {object}: HTTP {s}{}",
                c.map(|c| format!(" {c}")).unwrap_or_default()
            ),
        ),
        _ => GraphError::NotSent(format!(
            "reading {object} failed (S3 {operation}): {}",
            crate::telemetry::error_chain(&err)
        )),
    }
}

impl MediaUploads {
    pub fn new(
        graph: GraphClient,
        download: MediaDownloadConfig,
        s3: aws_sdk_s3::Client,
        caps: MediaCaps,
    ) -> Self {
        Self {
            graph,
            download,
            client: OnceLock::new(),
            s3,
            caps,
            uploaded: Mutex::new(HashMap::new()),
        }
    }

    /// The media id for sending `media` from `from`: one uploaded earlier for the same object version
    /// and number, or a fresh upload streamed from S3.
    pub async fn media_id(
        &self,
        from: &PhoneNumberId,
        media: &MediaMessage,
    ) -> Result<String, GraphError> {
        let object = &media.object;
        // Keys may carry personal data (a phone, a name): reasons and logs name the object by a hash.
        let named = object.redacted();
        let head = self
            .s3
            .head_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .send()
            .await
            .map_err(|e| s3_failure("HeadObject", object, e))?;
        let etag = head.e_tag().unwrap_or_default().to_owned();
        let Some(size) = head.content_length().filter(|l| *l >= 0).map(|l| l as u64) else {
            return Err(GraphError::NotSent(format!(
                "S3 gave no size for {named}; it is read again on the retry"
            )));
        };
        let cap = self.caps.of(media.kind);
        if size > cap {
            return Err(refuse(
                413,
                format!(
                    "{named} is {size} bytes; WhatsApp takes at most {cap} for a {} (whatsapp-platform.md §10)",
                    media.kind.as_str()
                ),
            ));
        }
        let cache_key = (from.clone(), object.clone(), etag.clone());
        // Without an ETag there is no telling versions apart: such an object is uploaded each time.
        if !etag.is_empty() {
            if let Some((id, at)) = self.lock().get(&cache_key) {
                if at.elapsed() < REUSE_FOR {
                    return Ok(id.clone());
                }
            }
        }
        let name = object.key.rsplit('/').next().unwrap_or(&object.key);
        let mime_type = head
            .content_type()
            .and_then(content_type)
            .filter(|m| m != "application/octet-stream" && m != "binary/octet-stream")
            .or_else(|| mime_for_name(name).map(str::to_owned))
            .ok_or_else(|| {
                refuse(
                    415,
                    format!("{named} has no usable Content-Type and its name says no type WhatsApp takes: set the object's Content-Type (e.g. image/jpeg)"),
                )
            })?;
        // Meta takes the bare type; parameters (`; codecs=opus`) stay out of the upload's `type`.
        let mime_type = mime_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        if !mime_fits(media.kind, &mime_type) {
            return Err(refuse(
                415,
                format!(
                    "{named} is {mime_type}, which WhatsApp does not take for {} (whatsapp-platform.md §10): send it as a document, or convert it",
                    media.kind.as_str()
                ),
            ));
        }
        // The version just checked, or a retry: never another file under the same name.
        let mut get = self.s3.get_object().bucket(&object.bucket).key(&object.key);
        if !etag.is_empty() {
            get = get.if_match(&etag);
        }
        let out = get
            .send()
            .await
            .map_err(|e| s3_failure("GetObject", object, e))?;
        let stream = futures::stream::unfold(out.body, |mut body| async move {
            body.next().await.map(|chunk| (chunk, body))
        });
        let filename = media.filename.as_deref().unwrap_or(name);
        let client = self
            .client
            .get_or_init(|| {
                MediaClient::new(self.graph.clone(), self.download.clone())
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| GraphError::NotSent(e.clone()))?;
        let id = client
            .upload(
                from,
                &mime_type,
                filename,
                size,
                reqwest::Body::wrap_stream(stream),
            )
            .await?;
        tracing::info!(
            event = "media_uploaded",
            kind = media.kind.as_str(),
            bytes = size,
            "a file was uploaded to Meta for sending; its id is reused for the same object version"
        );
        if !etag.is_empty() {
            let mut uploaded = self.lock();
            if uploaded.len() >= MAX_REMEMBERED {
                uploaded.retain(|_, (_, at)| at.elapsed() < REUSE_FOR);
                if uploaded.len() >= MAX_REMEMBERED {
                    uploaded.clear();
                }
            }
            uploaded.insert(cache_key, (id.clone(), Instant::now()));
        }
        Ok(id)
    }

    /// Forgets the ids of `object` for `from`: Meta refused one at send time.
    pub fn forget(&self, from: &PhoneNumberId, object: &S3Object) {
        self.lock()
            .retain(|(n, o, _), _| !(n == from && o == object));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Uploaded> {
        self.uploaded.lock().unwrap_or_else(|p| p.into_inner())
    }
}
