//! Inbound media (the photo, voice note or PDF a user sent): how big each kind may be, how Meta's
//! checksum is read, where the bytes go in S3, the job that fetches them and what came of it.
//!
//! The webhook carries only a media id; `GET /{media_id}` gives a URL that expires within minutes, so
//! the bytes are fetched by a job, soon after the message is stored (whatsapp-platform.md §10).

use std::fmt;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::ids::{PhoneNumberId, Wamid};
use super::inbound::MediaKind;

const MIB: u64 = 1024 * 1024;

/// The most we download of each kind. Defaults are Meta's own maxima (§10): a larger file is not
/// one Meta delivers, so it is recorded as too large and never fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaCaps {
    pub image: u64,
    pub video: u64,
    pub audio: u64,
    pub document: u64,
    pub sticker: u64,
}

impl Default for MediaCaps {
    fn default() -> Self {
        Self {
            image: 5 * MIB,
            video: 16 * MIB,
            audio: 16 * MIB,
            document: 100 * MIB,
            // Animated stickers reach 500 KB; a little room for Meta's rounding.
            sticker: MIB,
        }
    }
}

impl MediaCaps {
    /// What Meta takes in a send (§10): the inbound maxima, but a sticker is at most 500 KB.
    pub fn outbound() -> Self {
        Self {
            sticker: 500 * 1024,
            ..Self::default()
        }
    }

    pub fn of(&self, kind: MediaKind) -> u64 {
        match kind {
            MediaKind::Image => self.image,
            MediaKind::Video => self.video,
            MediaKind::Audio => self.audio,
            MediaKind::Document => self.document,
            MediaKind::Sticker => self.sticker,
        }
    }
}

impl MediaKind {
    /// Meta's `type` for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Document => "document",
            MediaKind::Sticker => "sticker",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "image" => MediaKind::Image,
            "video" => MediaKind::Video,
            "audio" => MediaKind::Audio,
            "document" => MediaKind::Document,
            "sticker" => MediaKind::Sticker,
            _ => return None,
        })
    }
}

/// A SHA-256 digest as Meta writes it. UNSURE which spelling each place uses: webhook examples show
/// base64, `GET /{media_id}` answers have been seen in hex. Both are read; they compare as bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// 64 hex digits, or base64 (standard or URL-safe, padded or not) of 32 bytes.
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let mut out = [0u8; 32];
        if raw.len() == 64 && hex::decode_to_slice(raw, &mut out).is_ok() {
            return Some(Self(out));
        }
        let unpadded = raw.trim_end_matches('=');
        let decoded = if unpadded.contains(['-', '_']) {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(unpadded)
        } else {
            base64::engine::general_purpose::STANDARD_NO_PAD.decode(unpadded)
        };
        let bytes: [u8; 32] = decoded.ok()?.try_into().ok()?;
        Some(Self(bytes))
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

/// A MIME type fit for S3's `Content-Type`: `type/subtype` in token characters (parameters kept only
/// when they are plain too). Anything else is stored as bytes.
pub fn content_type(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let (essence, params) = raw.split_once(';').unwrap_or((raw, ""));
    let (kind, sub) = essence.trim().split_once('/')?;
    if !token(kind) || !token(sub) {
        return None;
    }
    let plain_params = params.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    Some(if params.trim().is_empty() || !plain_params {
        format!("{}/{}", kind.to_ascii_lowercase(), sub.to_ascii_lowercase())
    } else {
        format!(
            "{}/{}; {}",
            kind.to_ascii_lowercase(),
            sub.to_ascii_lowercase(),
            params.trim()
        )
    })
}

/// The MIME type Meta expects for a file, by its name's extension (Meta's supported types, §10).
pub fn mime_for_name(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "3gp" => "video/3gpp",
        "ogg" | "opus" => "audio/ogg",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "amr" => "audio/amr",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt" => "application/vnd.ms-powerpoint",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => return None,
    })
}

/// Where a message's media goes: `{prefix}{number}/{wamid}`, the wamid escaped so that no character
/// of it makes another folder or an ambiguous key. One key per message, so a second download of the
/// same message overwrites the same object with the same bytes.
pub fn object_key(prefix: &str, number: &PhoneNumberId, wamid: &Wamid) -> String {
    let mut key = String::with_capacity(prefix.len() + 24 + wamid.as_str().len());
    key.push_str(prefix);
    key.push_str(number.as_str());
    key.push('/');
    for b in wamid.as_str().bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'=') {
            key.push(b as char);
        } else {
            key.push_str(&format!("%{b:02X}"));
        }
    }
    key
}

/// What goes on the media queue: which stored message to fetch the media of. Everything else (the
/// media id, its checksum, the number) is read from the stored record, so a job cannot ask for
/// media the webhook did not store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaJob {
    pub v: u32,
    pub wamid: String,
}

pub const MEDIA_JOB_VERSION: u32 = 1;

impl MediaJob {
    pub fn new(wamid: &Wamid) -> Self {
        Self {
            v: MEDIA_JOB_VERSION,
            wamid: wamid.as_str().to_owned(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a media job serializes")
    }

    /// Reads a queued job; the error says what is wrong with it.
    pub fn parse(body: &str) -> Result<Wamid, String> {
        let job: MediaJob = serde_json::from_str(body).map_err(|e| {
            format!("not a media job ({e}); expected {{\"v\":1,\"wamid\":\"wamid.…\"}}")
        })?;
        if job.v != MEDIA_JOB_VERSION {
            return Err(format!(
                "media job version {} is not known (this build reads version {MEDIA_JOB_VERSION})",
                job.v
            ));
        }
        Wamid::parse(&job.wamid).map_err(|e| format!("media job names no valid wamid: {e}"))
    }
}

/// Where a message's media stands, stored on the message record as `media_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaState {
    /// Stored by the webhook; its job is not known to be on the queue yet.
    Pending,
    /// Its job is on the queue.
    Queued,
    /// A worker holds it until `media_lease_until`.
    Fetching,
    /// In S3, checksum verified.
    Stored,
    /// Meta's size (or the bytes as they came) is over the cap for its kind: not downloaded.
    TooLarge,
    /// The bytes did not match Meta's SHA-256: nothing kept (the upload is aborted).
    Mismatch,
    /// Meta no longer has it (deleted, or past the 7 days media ids last).
    Gone,
}

impl MediaState {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaState::Pending => "pending",
            MediaState::Queued => "queued",
            MediaState::Fetching => "fetching",
            MediaState::Stored => "stored",
            MediaState::TooLarge => "too_large",
            MediaState::Mismatch => "sha256_mismatch",
            MediaState::Gone => "gone",
        }
    }

    pub const ALL: [MediaState; 7] = [
        MediaState::Pending,
        MediaState::Queued,
        MediaState::Fetching,
        MediaState::Stored,
        MediaState::TooLarge,
        MediaState::Mismatch,
        MediaState::Gone,
    ];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Nothing more will be done for it: a second job for the same message is a no-op.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            MediaState::Stored | MediaState::TooLarge | MediaState::Mismatch | MediaState::Gone
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn meta_checksums_read_alike_in_hex_and_base64() {
        let bytes: [u8; 32] = Sha256::digest(b"a photo").into();
        let hex = hex::encode(bytes);
        let std = base64::engine::general_purpose::STANDARD.encode(bytes);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let want = Some(Sha256Digest::from_bytes(bytes));
        for spelling in [&hex, &hex.to_uppercase(), &std, &url, &format!(" {std} ")] {
            assert_eq!(Sha256Digest::parse(spelling), want, "{spelling}");
        }
        for bad in ["", "x", &hex[..63], "not base64 at all!", &std[..20]] {
            assert_eq!(Sha256Digest::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn content_types_are_kept_only_when_plain() {
        assert_eq!(content_type("image/JPEG").as_deref(), Some("image/jpeg"));
        assert_eq!(
            content_type("audio/ogg; codecs=opus").as_deref(),
            Some("audio/ogg; codecs=opus")
        );
        for bad in [
            "",
            "jpeg",
            "image/",
            "/png",
            "text/html\r\nX: y",
            "image/jp eg",
        ] {
            assert_eq!(content_type(bad), None, "{bad:?}");
        }
        // Parameters that are not plain are dropped, the type kept.
        assert_eq!(content_type("a/b; c=\u{7f}").as_deref(), Some("a/b"));
        assert_eq!(mime_for_name("Invoice.PDF"), Some("application/pdf"));
        assert_eq!(mime_for_name("noext"), None);
    }

    #[test]
    fn each_message_has_one_key_and_no_wamid_makes_another_folder() {
        let number = PhoneNumberId::parse("106540352242922").unwrap();
        let a = Wamid::parse("wamid.HBgL/a+b=").unwrap();
        let b = Wamid::parse("wamid.HBgL%2Fa+b=").unwrap();
        let key = object_key("inbound/", &number, &a);
        assert_eq!(key, "inbound/106540352242922/wamid.HBgL%2Fa%2Bb=");
        assert_ne!(
            key,
            object_key("inbound/", &number, &b),
            "escapes do not collide"
        );
        assert_eq!(key.matches('/').count(), 2);
    }

    #[test]
    fn a_job_names_a_message_and_a_bad_one_says_what_is_wrong() {
        let wamid = Wamid::parse("wamid.A1").unwrap();
        let job = MediaJob::new(&wamid).to_json();
        assert_eq!(MediaJob::parse(&job), Ok(wamid));
        assert!(MediaJob::parse("{}")
            .unwrap_err()
            .contains("not a media job"));
        assert!(MediaJob::parse(r#"{"v":2,"wamid":"wamid.A"}"#)
            .unwrap_err()
            .contains("version 2"));
        assert!(MediaJob::parse(r#"{"v":1,"wamid":""}"#)
            .unwrap_err()
            .contains("no valid wamid"));
    }

    #[test]
    fn states_round_trip_and_the_final_ones_end_the_work() {
        for s in MediaState::ALL {
            assert_eq!(MediaState::parse(s.as_str()), Some(s));
        }
        assert!(MediaState::Stored.is_final() && !MediaState::Queued.is_final());
        assert_eq!(MediaCaps::default().of(MediaKind::Document), 100 * MIB);
    }
}
