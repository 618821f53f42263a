//! Media as Meta serves it: `GET /{version}/{media_id}` answers a URL that expires, and `GET` on that
//! URL with the bearer token gives the bytes (whatsapp-platform.md §10). Files are registered with
//! `POST /_sim/media` (or `MetaSim::add_media`); a generated file of any size costs no memory.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{meta_error, token_ok, SimState};

/// How long a download URL lasts: Meta's is five minutes.
pub const MEDIA_URL_TTL: Duration = Duration::from_secs(300);

/// What a media file is made of.
#[derive(Debug, Clone)]
pub enum SimContent {
    Bytes(Arc<Vec<u8>>),
    /// `len` bytes of a fixed pattern, generated as they are served.
    Pattern {
        len: u64,
    },
}

impl SimContent {
    pub fn len(&self) -> u64 {
        match self {
            SimContent::Bytes(b) => b.len() as u64,
            SimContent::Pattern { len } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn chunk(&self, offset: u64, max: usize) -> Bytes {
        match self {
            SimContent::Bytes(b) => {
                let start = offset as usize;
                let end = (start + max).min(b.len());
                Bytes::copy_from_slice(&b[start..end])
            }
            SimContent::Pattern { len } => {
                let n = (*len - offset).min(max as u64) as usize;
                Bytes::from(
                    (0..n)
                        .map(|i| pattern_byte(offset + i as u64))
                        .collect::<Vec<u8>>(),
                )
            }
        }
    }

    /// SHA-256 of the whole content, base64 as in webhooks.
    pub fn sha256_base64(&self) -> String {
        let mut hasher = Sha256::new();
        let mut offset = 0;
        while offset < self.len() {
            let chunk = self.chunk(offset, 1 << 20);
            offset += chunk.len() as u64;
            hasher.update(&chunk);
        }
        base64::engine::general_purpose::STANDARD.encode(hasher.finalize())
    }
}

fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(31).wrapping_add(i >> 13) & 0xFF) as u8
}

/// A file Meta holds for a user's message.
#[derive(Debug, Clone)]
pub struct SimMedia {
    pub mime_type: String,
    pub content: SimContent,
    /// What webhooks and `GET /{media_id}` say the SHA-256 is; `None`: the true one.
    pub claimed_sha256: Option<String>,
    /// What `GET /{media_id}` says the size is; `None`: the true one. When set, the download is
    /// sent without `Content-Length` (chunked), so only its bytes tell the real size.
    pub claimed_size: Option<u64>,
    /// Neither the webhook nor `GET /{media_id}` carries a SHA-256.
    pub no_sha256: bool,
}

impl SimMedia {
    pub fn bytes(mime_type: &str, bytes: Vec<u8>) -> Self {
        Self {
            mime_type: mime_type.into(),
            content: SimContent::Bytes(Arc::new(bytes)),
            claimed_sha256: None,
            claimed_size: None,
            no_sha256: false,
        }
    }

    pub fn generated(mime_type: &str, len: u64) -> Self {
        Self {
            mime_type: mime_type.into(),
            content: SimContent::Pattern { len },
            claimed_sha256: None,
            claimed_size: None,
            no_sha256: false,
        }
    }
}

/// A registered file, with its checksum computed once.
#[derive(Debug, Clone)]
pub(crate) struct StoredMedia {
    pub media: SimMedia,
    pub sha256: String,
    pub deleted: bool,
}

impl StoredMedia {
    pub fn new(media: SimMedia) -> Self {
        let sha256 = media
            .claimed_sha256
            .clone()
            .unwrap_or_else(|| media.content.sha256_base64());
        Self {
            media,
            sha256,
            deleted: false,
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct MediaRequest {
    mime_type: String,
    /// The file, base64.
    base64: Option<String>,
    /// Or a generated file of this many bytes.
    generated_bytes: Option<u64>,
    sha256: Option<String>,
    file_size: Option<u64>,
}

/// `POST /_sim/media`: registers a file; answers its id and the SHA-256 webhooks will carry.
pub(crate) async fn post_media(
    State(state): State<Arc<SimState>>,
    Json(req): Json<MediaRequest>,
) -> Response {
    let content = match (req.base64, req.generated_bytes) {
        (Some(b), None) => match base64::engine::general_purpose::STANDARD.decode(b.trim()) {
            Ok(bytes) => SimContent::Bytes(Arc::new(bytes)),
            Err(e) => return (StatusCode::BAD_REQUEST, format!("base64: {e}")).into_response(),
        },
        (None, Some(len)) => SimContent::Pattern { len },
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "give exactly one of base64 or generated_bytes",
            )
                .into_response()
        }
    };
    let media = SimMedia {
        mime_type: req.mime_type,
        content,
        claimed_sha256: req.sha256,
        claimed_size: req.file_size,
        no_sha256: false,
    };
    let (id, sha256) = state.add_media(media);
    Json(json!({ "id": id, "sha256": sha256 })).into_response()
}

/// `GET /{version}/{media_id}`: the URL (fresh, or already expired when a fault says so).
pub(crate) fn lookup(state: &SimState, media_id: &str, headers: &HeaderMap) -> Option<Response> {
    let stored = state.media.lock().unwrap().get(media_id).cloned()?;
    state.media_lookups.fetch_add(1, Ordering::SeqCst);
    let config = state.config();
    if !token_ok(&config, headers) {
        return Some(meta_error(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token",
            "",
        ));
    }
    if stored.deleted {
        return Some(meta_error(
            StatusCode::NOT_FOUND,
            100,
            "Unsupported get request. Object with ID does not exist",
            "",
        ));
    }
    let expired = state
        .expire_media_urls
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let token = format!(
        "{:016x}{:08x}",
        state.counter.fetch_add(1, Ordering::SeqCst),
        std::process::id()
    );
    let expires = if expired {
        Instant::now()
    } else {
        Instant::now() + MEDIA_URL_TTL
    };
    state
        .media_urls
        .lock()
        .unwrap()
        .insert(token.clone(), (media_id.to_owned(), expires));
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let mut answer = json!({
        "messaging_product": "whatsapp",
        "url": format!("http://{host}/_sim/media/{token}"),
        "mime_type": stored.media.mime_type,
        "file_size": stored.media.claimed_size.unwrap_or(stored.media.content.len()),
        "id": media_id,
    });
    if !stored.media.no_sha256 {
        answer["sha256"] = json!(stored.sha256);
    }
    Some(Json(answer).into_response())
}

/// `GET /_sim/media/{token}`: the bytes, with the bearer token, while the URL lasts.
pub(crate) async fn download(
    State(state): State<Arc<SimState>>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !token_ok(&state.config(), &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let found = state.media_urls.lock().unwrap().get(&token).cloned();
    let Some((media_id, expires)) = found.filter(|(_, e)| Instant::now() < *e) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(stored) = state.media.lock().unwrap().get(&media_id).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    state.media_downloads.fetch_add(1, Ordering::SeqCst);
    let _ = expires;
    let content = stored.media.content.clone();
    let len = content.len();
    let stream = futures::stream::unfold(0u64, move |offset| {
        let content = content.clone();
        async move {
            (offset < len).then(|| {
                let chunk = content.chunk(offset, 64 * 1024);
                let next = offset + chunk.len() as u64;
                (Ok::<_, std::io::Error>(chunk), next)
            })
        }
    });
    let mut response = (
        [(header::CONTENT_TYPE, stored.media.mime_type.clone())],
        Body::from_stream(stream),
    )
        .into_response();
    if stored.media.claimed_size.is_none() {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, len.into());
    }
    response
}

/// A file uploaded for sending (`POST /{version}/{number}/media`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedMedia {
    pub id: String,
    pub phone_number_id: String,
    pub mime_type: String,
    pub filename: Option<String>,
    pub bytes: Vec<u8>,
}

/// `POST /{version}/{number}/media`: multipart `messaging_product`, `type` and `file`, as Meta takes
/// it; answers `{"id"}`.
pub(crate) async fn upload(
    State(state): State<Arc<SimState>>,
    Path((_version, number)): Path<(String, String)>,
    headers: HeaderMap,
    mut form: axum::extract::Multipart,
) -> Response {
    if !token_ok(&state.config(), &headers) {
        return meta_error(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token",
            "",
        );
    }
    let (mut product, mut kind, mut file) = (None, None, None);
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return meta_error(
                    StatusCode::BAD_REQUEST,
                    100,
                    "Invalid multipart body",
                    &e.to_string(),
                )
            }
        };
        match field.name().unwrap_or_default() {
            "messaging_product" => product = field.text().await.ok(),
            "type" => kind = field.text().await.ok(),
            "file" => {
                let filename = field.file_name().map(str::to_owned);
                let mime = field.content_type().map(str::to_owned);
                match field.bytes().await {
                    Ok(b) => file = Some((filename, mime, b.to_vec())),
                    Err(e) => {
                        return meta_error(
                            StatusCode::BAD_REQUEST,
                            100,
                            "Invalid file",
                            &e.to_string(),
                        )
                    }
                }
            }
            _ => {}
        }
    }
    // A broken account refuses uploads as it refuses sends, once the request is read (as Meta does).
    if let Some(code) = *state.account_fault.lock().unwrap() {
        return meta_error(
            StatusCode::BAD_REQUEST,
            code,
            "The account cannot upload media",
            "simulated account fault",
        );
    }
    let (Some("whatsapp"), Some(kind), Some((filename, _, bytes))) =
        (product.as_deref(), kind, file)
    else {
        return meta_error(
            StatusCode::BAD_REQUEST,
            100,
            "(#100) The parameter messaging_product is required.",
            "messaging_product=whatsapp, type and file are required",
        );
    };
    let id = format!(
        "{}{:06}",
        8_000_000_000u64 + u64::from(std::process::id()),
        state.counter.fetch_add(1, Ordering::SeqCst) + 1
    );
    state.uploads.lock().unwrap().push(UploadedMedia {
        id: id.clone(),
        phone_number_id: number,
        mime_type: kind,
        filename,
        bytes,
    });
    Json(json!({ "id": id })).into_response()
}

/// A send naming a media id must name one uploaded for the same number (Meta's 131053 otherwise, as
/// when it cannot use the media).
pub(crate) fn check_media_send(
    state: &SimState,
    number: &str,
    kind: &str,
    object: &serde_json::Value,
) -> Option<Response> {
    let Some(id) = object["id"].as_str() else {
        return Some(meta_error(
            StatusCode::BAD_REQUEST,
            131_008,
            "Required parameter is missing",
            &format!("{kind}.id (or link) is required"),
        ));
    };
    let known = state
        .uploads
        .lock()
        .unwrap()
        .iter()
        .any(|u| u.id == id && u.phone_number_id == number);
    (!known).then(|| {
        meta_error(
            StatusCode::BAD_REQUEST,
            131_053,
            "Media upload error",
            &format!("media id {id} was not uploaded for this number"),
        )
    })
}
