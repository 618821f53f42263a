//! The send request producers put on the sends queue (DESIGN §5, version 1), parsed at the edge.
//!
//! A request that does not parse never reaches Meta: [`SendRequest::parse`] reports every problem at
//! once, each naming the field and what it should be, so a producer fixes them in one go. The JSON
//! Schema in `schemas/send-request.v1.json` says the same, and a test keeps the two in agreement.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ids::{Bsuid, Phone, PhoneNumberId, UserId, Wamid};
use super::inbound::MediaKind;
use super::preferences::Category;
use super::time::UnixTime;

pub const SEND_REQUEST_VERSION: u64 = 1;
/// What the sender puts in Meta's `biz_opaque_callback_data`: Meta echoes it in every status webhook,
/// which is how a status finds its send even when Meta's answer to the send was lost.
pub const CALLBACK_PREFIX: &str = "wahook:";
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;
pub const MAX_TEXT_CHARS: usize = 4096;
pub const MAX_CALLBACK_DATA_CHARS: usize = 512;
pub const MAX_TEMPLATE_NAME_CHARS: usize = 512;
/// Meta's limit on a media caption.
pub const MAX_CAPTION_CHARS: usize = 1024;
pub const MAX_FILENAME_CHARS: usize = 240;
/// S3 keys are at most 1024 bytes; the schema can count characters only, so both count those.
pub const MAX_S3_KEY_CHARS: usize = 1024;

/// The key a producer chooses so that a request is sent at most once: 1–128 of `A-Z a-z 0-9 - _ . : / = + @`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// How logs name the key: producers embed phone and account numbers in keys, and logs must not
    /// carry them. The first 16 hex digits of its SHA-256; `scripts/dev.sh` and the README show how to
    /// compute it for a key a producer names (`printf %s KEY | sha256sum | cut -c1-16`).
    pub fn hashed(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        hex::encode(&digest[..8])
    }

    /// The `biz_opaque_callback_data` a send under this key carries.
    pub fn callback_marker(&self) -> String {
        format!("{CALLBACK_PREFIX}{}", self.0)
    }

    /// The key a status' callback data names, if it is one of ours.
    pub fn from_callback(data: &str) -> Option<IdempotencyKey> {
        data.strip_prefix(CALLBACK_PREFIX)
            .and_then(|k| IdempotencyKey::parse(k).ok())
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidKey> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_.:/=+@".contains(c);
        if raw.is_empty() || raw.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS {
            return Err(InvalidKey::Length);
        }
        if let Some(bad) = raw.chars().find(|c| !ok_char(*c)) {
            return Err(InvalidKey::Character(bad));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a string is not an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKey {
    #[error("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters")]
    Length,
    #[error("contains {0:?}: use only letters, digits and - _ . : / = + @")]
    Character(char),
}

/// An approved template to send: name, language, and Meta's components passed through as given.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub name: String,
    pub language: String,
    pub components: Vec<Value>,
}

/// What to send.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboundMessage {
    Template(Template),
    /// Free-form text: only inside the customer service window.
    Text {
        body: String,
        preview_url: bool,
    },
    /// A file from S3 (free-form, like text: only inside the window).
    Media(MediaMessage),
}

/// An S3 object a producer names as `s3://bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Object {
    pub bucket: String,
    pub key: String,
}

impl S3Object {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let rest = raw
            .strip_prefix("s3://")
            .ok_or("must be an S3 URI: s3://bucket/key")?;
        let (bucket, key) = rest
            .split_once('/')
            .ok_or("must name a key after the bucket: s3://bucket/key")?;
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && !bucket.starts_with(['.', '-'])
            && !bucket.ends_with(['.', '-']);
        if !bucket_ok {
            return Err("names no valid bucket: 3–63 lowercase letters, digits, dots and hyphens");
        }
        if key.is_empty() || key.chars().count() > MAX_S3_KEY_CHARS {
            return Err("must name a key of 1–1024 characters after the bucket");
        }
        if key.chars().any(char::is_control) {
            return Err("names a key with a control character");
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }
}

impl S3Object {
    /// How reasons and logs name the object: producers put phone numbers and names in keys, and
    /// logs must not carry them. The bucket, and the first 12 hex digits of the key's SHA-256
    /// (`printf %s KEY | sha256sum | cut -c1-12`).
    pub fn redacted(&self) -> String {
        let digest = Sha256::digest(self.key.as_bytes());
        format!(
            "s3://{}/… (key sha256 {})",
            self.bucket,
            &hex::encode(digest)[..12]
        )
    }
}

impl std::fmt::Display for S3Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// A file to send: its kind, where it is, and what Meta shows with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaMessage {
    pub kind: MediaKind,
    pub object: S3Object,
    /// image, video and document only.
    pub caption: Option<String>,
    /// document only.
    pub filename: Option<String>,
}

/// The fields of a media object, per kind: what Meta accepts with each.
pub fn media_fields(kind: MediaKind) -> &'static [&'static str] {
    match kind {
        MediaKind::Image | MediaKind::Video => &["s3", "caption"],
        MediaKind::Document => &["s3", "caption", "filename"],
        MediaKind::Audio | MediaKind::Sticker => &["s3"],
    }
}

pub const MEDIA_KINDS: [MediaKind; 5] = [
    MediaKind::Image,
    MediaKind::Video,
    MediaKind::Audio,
    MediaKind::Document,
    MediaKind::Sticker,
];

impl OutboundMessage {
    pub fn kind(&self) -> &'static str {
        match self {
            OutboundMessage::Template(_) => "template",
            OutboundMessage::Text { .. } => "text",
            OutboundMessage::Media(m) => m.kind.as_str(),
        }
    }

    /// Text or a file: Meta takes it only inside the customer service window.
    pub fn is_free_form(&self) -> bool {
        !matches!(self, OutboundMessage::Template(_))
    }

    pub fn template_name(&self) -> Option<&str> {
        match self {
            OutboundMessage::Template(t) => Some(&t.name),
            OutboundMessage::Text { .. } | OutboundMessage::Media(_) => None,
        }
    }

    pub fn template_language(&self) -> Option<&str> {
        match self {
            OutboundMessage::Template(t) => Some(&t.language),
            OutboundMessage::Text { .. } | OutboundMessage::Media(_) => None,
        }
    }
}

/// A valid send request.
#[derive(Debug, Clone, PartialEq)]
pub struct SendRequest {
    pub idempotency_key: IdempotencyKey,
    pub to: UserId,
    /// The business number to send from; `None` means the configured default.
    pub from: Option<PhoneNumberId>,
    /// The category the message is sent (and billed, and opted out) as. `service` for free-form text.
    pub category: Category,
    pub message: OutboundMessage,
    /// For a text message: what to send instead when the window is closed.
    pub fallback_template: Option<Template>,
    pub not_after: Option<UnixTime>,
    pub callback_data: Option<String>,
    pub reply_to: Option<Wamid>,
    /// SHA-256 of the request's canonical JSON: tells a redelivery from a key reused for another message.
    pub fingerprint: String,
}

/// One thing wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    pub message: String,
}

/// At most this many problems are named in a refusal: a body of thousands of unknown keys still
/// dead-letters with a readable reason (and fits an SQS attribute and a ledger item).
pub const MAX_PROBLEMS_NAMED: usize = 20;
/// And at most this many bytes of them.
pub const MAX_REASON_BYTES: usize = 1024;

/// A reason cut at [`MAX_REASON_BYTES`] on a character boundary (an SQS attribute and a ledger item
/// must hold it, whatever Meta or a producer wrote).
pub fn cap_reason(mut text: String) -> String {
    if text.len() > MAX_REASON_BYTES {
        let mut cut = MAX_REASON_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// The problems as one line: the first [`MAX_PROBLEMS_NAMED`], cut at [`MAX_REASON_BYTES`] on a
/// character boundary, and how many more there were.
pub fn summarize(problems: &[Problem]) -> String {
    let mut text = problems
        .iter()
        .take(MAX_PROBLEMS_NAMED)
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect::<Vec<_>>()
        .join("; ");
    text = cap_reason(text);
    if problems.len() > MAX_PROBLEMS_NAMED {
        text.push_str(&format!(
            " (and {} more problems)",
            problems.len() - MAX_PROBLEMS_NAMED
        ));
    }
    text
}

/// Why a request was refused: every problem found, so the producer can fix them at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid send request: {}", summarize(.problems))]
pub struct InvalidSendRequest {
    pub problems: Vec<Problem>,
    /// The idempotency key, when it was readable: lets the refusal be recorded under it.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// The fields of a version 1 request (the JSON Schema lists the same; a test keeps them equal).
pub const FIELDS: &[&str] = &[
    "v",
    "kind",
    "idempotency_key",
    "to",
    "from",
    "category",
    "template",
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "fallback_template",
    "not_after",
    "callback_data",
    "reply_to",
];
/// The fields of `template` and `fallback_template`.
pub const TEMPLATE_FIELDS: &[&str] = &["name", "language", "components"];
/// The fields of `text`.
pub const TEXT_FIELDS: &[&str] = &["body", "preview_url"];

type Object = serde_json::Map<String, Value>;

impl SendRequest {
    /// Parses an SQS message body.
    pub fn parse(body: &str) -> Result<SendRequest, InvalidSendRequest> {
        let refuse = |message: String| InvalidSendRequest {
            problems: vec![Problem {
                field: "body",
                message,
            }],
            idempotency_key: None,
        };
        let value: Value = serde_json::from_str(body)
            .map_err(|e| refuse(format!("not a version 1 send request: not JSON ({e})")))?;
        let Value::Object(obj) = &value else {
            return Err(refuse(
                "not a version 1 send request: expected a JSON object".into(),
            ));
        };
        let fingerprint = hex::encode(Sha256::digest(canonical_json(&value)));
        let mut p = Problems::default();
        p.unknown_fields(obj, FIELDS, "body");

        match obj.get("v") {
            Some(Value::Number(n)) if n.as_f64() == Some(SEND_REQUEST_VERSION as f64) => {}
            None => p.add(
                "v",
                format!("is required; this sender reads version {SEND_REQUEST_VERSION}"),
            ),
            Some(other) => p.add(
                "v",
                format!(
                    "{other} is not supported; this sender reads version {SEND_REQUEST_VERSION}"
                ),
            ),
        }
        match p.string(obj, "kind") {
            None | Some("send") => {}
            Some(other) => p.add(
                "kind",
                format!("{other:?} is not a kind this sender reads: send (the default) or consent"),
            ),
        }
        let key = match p.string(obj, "idempotency_key") {
            None => p.none(
                "idempotency_key",
                "is required: a key unique to this message, e.g. order-1234-shipped",
            ),
            Some(k) => p.check("idempotency_key", IdempotencyKey::parse(k)),
        };
        let to = match p.string(obj, "to") {
            None if obj.contains_key("to") => None,
            None => p.none("to", "is required"),
            Some(t) => p.check("to", parse_recipient(t)),
        };
        let from = p.string(obj, "from").and_then(|f| {
            p.check(
                "from",
                PhoneNumberId::parse(f).map_err(|_| "must be Meta's numeric phone number id"),
            )
        });
        let template = p.object(obj, "template");
        let text = p.object(obj, "text");
        let fallback = p.object(obj, "fallback_template");
        let has = |k: &str| obj.contains_key(k);
        let kinds: Vec<&'static str> = ["template", "text"]
            .into_iter()
            .chain(MEDIA_KINDS.map(MediaKind::as_str))
            .filter(|k| has(k))
            .collect();
        let message = match kinds.as_slice() {
            [] => p.none(
                "template",
                "or text, image, video, audio, document or sticker is required",
            ),
            [_, _, ..] => {
                p.add(
                    "template",
                    format!("{} are all set: send exactly one of them", kinds.join(", ")),
                );
                None
            }
            ["template"] => template
                .and_then(|t| parse_template(t, "template", &mut p))
                .map(OutboundMessage::Template),
            ["text"] => text.and_then(|t| parse_text(t, &mut p)),
            [kind] => {
                let media = MediaKind::parse(kind).expect("one of MEDIA_KINDS");
                p.object(obj, kind)
                    .and_then(|m| parse_media(media, m, &mut p))
            }
        };
        let free_form = !kinds.is_empty() && !has("template");
        let fallback_template = match (has("fallback_template"), has("template")) {
            (true, true) => p.none(
                "fallback_template",
                "only applies to text or a file (a template can always be sent)",
            ),
            (true, false) => fallback.and_then(|t| parse_template(t, "fallback_template", &mut p)),
            (false, _) => None,
        };
        let category = parse_category(obj, free_form, has("fallback_template"), &mut p);
        let not_after = p.string(obj, "not_after").and_then(|n| {
            p.check(
                "not_after",
                UnixTime::parse_rfc3339(n)
                    .ok_or("must be an RFC 3339 time with a zone, e.g. 2026-11-23T12:00:00Z"),
            )
        });
        let callback_data = p.string(obj, "callback_data").map(str::to_owned);
        if callback_data
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_CALLBACK_DATA_CHARS)
        {
            p.add(
                "callback_data",
                format!("must be at most {MAX_CALLBACK_DATA_CHARS} characters"),
            );
        }
        let reply_to = p.string(obj, "reply_to").and_then(|r| {
            p.check(
                "reply_to",
                Wamid::parse(r).map_err(|_| "must be the wamid of the message replied to"),
            )
        });

        match (p.0.is_empty(), key.clone(), to, category, message) {
            (true, Some(idempotency_key), Some(to), Some(category), Some(message)) => {
                Ok(SendRequest {
                    idempotency_key,
                    to,
                    from,
                    category,
                    message,
                    fallback_template,
                    not_after,
                    callback_data,
                    reply_to,
                    fingerprint,
                })
            }
            _ => Err(InvalidSendRequest {
                problems: p.0,
                idempotency_key: key,
            }),
        }
    }
}

#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(Problem {
            field,
            message: message.into(),
        });
    }

    pub(super) fn none<T>(&mut self, field: &'static str, message: &str) -> Option<T> {
        self.add(field, message);
        None
    }

    pub(super) fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &'static str,
        r: Result<T, E>,
    ) -> Option<T> {
        r.map_err(|m| self.add(field, m.to_string())).ok()
    }

    /// Keys other than `allowed`, named so a typo is obvious.
    pub(super) fn unknown_fields(&mut self, obj: &Object, allowed: &[&str], field: &'static str) {
        for key in obj.keys().filter(|k| !allowed.contains(&k.as_str())) {
            self.add(
                field,
                format!(
                    "unknown field {key:?}: expected one of {}",
                    allowed.join(", ")
                ),
            );
        }
    }

    /// An optional string field: absent is `None`, anything but a string (null included) a problem.
    pub(super) fn string<'o>(&mut self, obj: &'o Object, field: &'static str) -> Option<&'o str> {
        match obj.get(field) {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(Value::Null) => self.none(field, "is null: omit the field instead"),
            Some(other) => {
                self.add(field, format!("must be a string, not {}", json_type(other)));
                None
            }
        }
    }

    /// An optional object field, like [`Problems::string`].
    pub(super) fn object<'o>(
        &mut self,
        obj: &'o Object,
        field: &'static str,
    ) -> Option<&'o Object> {
        match obj.get(field) {
            None => None,
            Some(Value::Object(o)) => Some(o),
            Some(Value::Null) => self.none(field, "is null: omit the field instead"),
            Some(other) => {
                self.add(
                    field,
                    format!("must be an object, not {}", json_type(other)),
                );
                None
            }
        }
    }
}

pub(super) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A phone in E.164 with its `+` (so Meta never guesses a country), or a BSUID.
pub(super) fn parse_recipient(raw: &str) -> Result<UserId, String> {
    const EXPECTED: &str = "must be a phone number in E.164 with its leading + (e.g. +5215512345678) or a business-scoped user id (e.g. MX.1310418412279093)";
    if raw.starts_with('+') {
        Phone::parse(raw)
            .map(UserId::Phone)
            .map_err(|_| EXPECTED.into())
    } else if raw.as_bytes().get(2) == Some(&b'.') {
        Bsuid::parse(raw)
            .map(UserId::Bsuid)
            .map_err(|_| EXPECTED.into())
    } else {
        Err(EXPECTED.into())
    }
}

fn parse_template(t: &Object, field: &'static str, p: &mut Problems) -> Option<Template> {
    p.unknown_fields(t, TEMPLATE_FIELDS, field);
    let name = match t.get("name") {
        None => p.none(field, "needs a name"),
        Some(Value::String(n)) if is_template_name(n) => Some(n.clone()),
        Some(_) => p.none(
            field,
            "name must be the approved template's name: lowercase letters, digits and _",
        ),
    };
    let language = match t.get("language") {
        None => p.none(field, "needs a language, e.g. en_US or es_MX"),
        Some(Value::String(l)) if is_language_code(l) => Some(l.clone()),
        Some(_) => p.none(
            field,
            "language must be a code like en, en_US or pt_BR, as approved for the template",
        ),
    };
    let components = match t.get("components") {
        None => Some(Vec::new()),
        Some(Value::Array(items))
            if items.iter().all(|c| {
                c.as_object()
                    .and_then(|o| o.get("type"))
                    .is_some_and(Value::is_string)
            }) =>
        {
            Some(items.clone())
        }
        Some(_) => p.none(
            field,
            "components must be an array of Meta's component objects, each with a \"type\" (header, body, button…)",
        ),
    };
    Some(Template {
        name: name?,
        language: language?,
        components: components?,
    })
}

/// A template name as Meta allows it: lowercase letters, digits and `_`, at most 512.
pub fn is_template_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_TEMPLATE_NAME_CHARS
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A template language code: `en`, `en_US`, `pt_BR`.
pub fn is_language_code(l: &str) -> bool {
    let (lang, region) = l.split_once('_').map_or((l, None), |(a, b)| (a, Some(b)));
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
}

fn parse_text(t: &Object, p: &mut Problems) -> Option<OutboundMessage> {
    p.unknown_fields(t, TEXT_FIELDS, "text");
    let preview_url = match t.get("preview_url") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return p.none("text", "preview_url must be true or false"),
    };
    match t.get("body") {
        None => p.none("text", "needs a body"),
        Some(Value::String(b)) if b.trim().is_empty() => p.none("text", "body is empty"),
        Some(Value::String(b)) if b.chars().count() > MAX_TEXT_CHARS => p.none(
            "text",
            &format!(
                "body is {} characters; WhatsApp allows at most {MAX_TEXT_CHARS}",
                b.chars().count()
            ),
        ),
        Some(Value::String(b)) => Some(OutboundMessage::Text {
            body: b.clone(),
            preview_url,
        }),
        Some(_) => p.none("text", "body must be a string"),
    }
}

fn parse_media(kind: MediaKind, m: &Object, p: &mut Problems) -> Option<OutboundMessage> {
    let field = kind.as_str();
    p.unknown_fields(m, media_fields(kind), field);
    let mut text_field = |name: &str, max: usize| match m.get(name) {
        None => None,
        Some(Value::String(v)) if v.trim().is_empty() => p.none(field, &format!("{name} is empty")),
        Some(Value::String(v)) if v.chars().count() > max => p.none(
            field,
            &format!(
                "{name} is {} characters; WhatsApp allows at most {max}",
                v.chars().count()
            ),
        ),
        Some(Value::String(v)) => Some(v.clone()),
        Some(_) => p.none(field, &format!("{name} must be a string")),
    };
    let caption = text_field("caption", MAX_CAPTION_CHARS);
    let filename = text_field("filename", MAX_FILENAME_CHARS);
    let object = match m.get("s3") {
        None => p.none(field, "needs s3: the file as s3://bucket/key"),
        Some(Value::String(uri)) => match S3Object::parse(uri) {
            Ok(o) => Some(o),
            Err(e) => p.none(field, &format!("s3 {e}")),
        },
        Some(_) => p.none(field, "s3 must be a string: s3://bucket/key"),
    }?;
    Some(OutboundMessage::Media(MediaMessage {
        kind,
        object,
        caption,
        filename,
    }))
}

/// Templates name their category; free-form text or a file is `service` unless a fallback template is given,
/// in which case the category is the fallback's (what Meta bills and what opt-outs apply to).
fn parse_category(
    obj: &Object,
    free_form: bool,
    has_fallback: bool,
    p: &mut Problems,
) -> Option<Category> {
    let parsed = match p.string(obj, "category") {
        None if obj.contains_key("category") => return None,
        None if free_form && !has_fallback => return Some(Category::Service),
        None => {
            return p.none(
                "category",
                "is required for a template: marketing, utility or authentication",
            )
        }
        Some(c) => p.check("category", c.parse::<Category>().map_err(|e| e.to_string()))?,
    };
    let template_sent = !free_form || has_fallback;
    if template_sent && parsed == Category::Service {
        return p.none(
            "category",
            "service is for free-form text; a template is marketing, utility or authentication",
        );
    }
    Some(parsed)
}

/// Compact JSON with every object's keys sorted by their bytes: the text a request's fingerprint
/// hashes, so formatting and key order do not change it. It sorts itself rather than trust
/// `serde_json::Map` to be sorted: any crate in the build that turns on serde_json's
/// `preserve_order` would otherwise change every fingerprint in the ledger. The output is the same
/// as `Value::to_string` with a sorted map, which is what fingerprints were before.
fn canonical_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (key, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    write(item, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_name_a_key_by_a_hash_that_does_not_show_it() {
        let key = IdempotencyKey::parse("order-5215512345678-77").unwrap();
        let h = key.hashed();
        assert_eq!(h.len(), 16);
        assert!(!h.contains("5512345678"));
        assert_eq!(
            h,
            IdempotencyKey::parse("order-5215512345678-77")
                .unwrap()
                .hashed()
        );
        // `printf %s order-1 | sha256sum | cut -c1-16`
        assert_eq!(IdempotencyKey::parse("order-1").unwrap().hashed(), {
            let d = Sha256::digest(b"order-1");
            hex::encode(&d[..8])
        });
    }

    fn parse(json: &str) -> Result<SendRequest, InvalidSendRequest> {
        SendRequest::parse(json)
    }

    fn problems(json: &str) -> Vec<(&'static str, String)> {
        parse(json)
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| (p.field, p.message))
            .collect()
    }

    const TEMPLATE: &str = r#"{"v":1,"idempotency_key":"order-1234-shipped","to":"+5215512345678","from":"106540352242922","category":"utility",
        "template":{"name":"order_shipped","language":"es_MX","components":[{"type":"body","parameters":[{"type":"text","text":"Ana"}]}]},
        "not_after":"2026-11-23T12:00:00Z","callback_data":"order-1234","reply_to":"wamid.HBgL"}"#;

    #[test]
    fn the_design_example_parses_into_domain_types() {
        let r = parse(TEMPLATE).unwrap();
        assert_eq!(r.idempotency_key.as_str(), "order-1234-shipped");
        assert!(matches!(&r.to, UserId::Phone(p) if p.e164() == "+5215512345678"));
        assert_eq!(r.category, Category::Utility);
        assert_eq!(r.message.template_name(), Some("order_shipped"));
        assert_eq!(r.not_after.unwrap().to_rfc3339(), "2026-11-23T12:00:00Z");
        assert_eq!(r.reply_to.unwrap().as_str(), "wamid.HBgL");
    }

    #[test]
    fn text_defaults_to_service_and_may_carry_a_fallback() {
        let r = parse(
            r#"{"v":1,"idempotency_key":"k1","to":"MX.1310418412279093","text":{"body":"Hola"}}"#,
        )
        .unwrap();
        assert_eq!(r.category, Category::Service);
        assert!(matches!(r.to, UserId::Bsuid(_)));
        let r = parse(
            r#"{"v":1,"idempotency_key":"k2","to":"+15551234567","category":"utility","text":{"body":"Your order shipped","preview_url":true},
                "fallback_template":{"name":"order_update","language":"en_US"}}"#,
        )
        .unwrap();
        assert_eq!(r.fallback_template.unwrap().name, "order_update");
        assert!(matches!(
            r.message,
            OutboundMessage::Text {
                preview_url: true,
                ..
            }
        ));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_the_field_and_the_fix() {
        let got = problems(
            r#"{"v":1,"idempotency_key":"bad key!","to":"5215512345678","category":"promo",
                "template":{"name":"Order Shipped","language":"spanish","components":["body"]},"not_after":"tomorrow","callback_data":"x"}"#,
        );
        let fields: Vec<&str> = got.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            [
                "idempotency_key",
                "to",
                "template",
                "template",
                "template",
                "category",
                "not_after"
            ]
        );
        assert!(got[1].1.contains("leading +"), "{got:?}");
        assert!(got[5].1.contains("expected one of marketing"), "{got:?}");
    }

    #[test]
    fn version_exactly_one_of_and_required_fields() {
        assert!(problems(
            r#"{"v":2,"idempotency_key":"k","to":"+15551234567","text":{"body":"x"}}"#
        )[0]
        .1
        .contains("2 is not supported"));
        assert_eq!(
            problems(r#"{"idempotency_key":"k","to":"+15551234567","text":{"body":"x"}}"#)[0].0,
            "v"
        );
        let both = problems(
            r#"{"v":1,"idempotency_key":"k","to":"+15551234567","category":"utility","text":{"body":"x"},"template":{"name":"a","language":"en"}}"#,
        );
        assert!(both[0].1.contains("are all set"), "{both:?}");
        assert!(
            problems(r#"{"v":1,"idempotency_key":"k","to":"+15551234567"}"#)[0]
                .1
                .contains("or text, image, video, audio, document or sticker is required")
        );
        let missing = problems(r#"{"v":1,"text":{"body":"x"}}"#);
        assert_eq!(
            missing.iter().map(|p| p.0).collect::<Vec<_>>(),
            ["idempotency_key", "to"]
        );
    }

    #[test]
    fn limits_from_meta_are_enforced() {
        let long = "a".repeat(MAX_TEXT_CHARS + 1);
        let got = problems(&format!(
            r#"{{"v":1,"idempotency_key":"k","to":"+15551234567","text":{{"body":"{long}"}}}}"#
        ));
        assert!(got[0].1.contains("at most 4096"), "{got:?}");
        let exactly = "é".repeat(MAX_TEXT_CHARS);
        assert!(parse(&format!(
            r#"{{"v":1,"idempotency_key":"k","to":"+15551234567","text":{{"body":"{exactly}"}}}}"#
        ))
        .is_ok());
        let cb = "c".repeat(MAX_CALLBACK_DATA_CHARS + 1);
        let got = problems(&format!(
            r#"{{"v":1,"idempotency_key":"k","to":"+15551234567","text":{{"body":"x"}},"callback_data":"{cb}"}}"#
        ));
        assert_eq!(got[0].0, "callback_data");
        let key = "k".repeat(MAX_IDEMPOTENCY_KEY_CHARS + 1);
        let got = problems(&format!(
            r#"{{"v":1,"idempotency_key":"{key}","to":"+15551234567","text":{{"body":"x"}}}}"#
        ));
        assert_eq!(got[0].0, "idempotency_key");
    }

    #[test]
    fn a_body_of_thousands_of_unknown_keys_gets_a_short_reason() {
        let keys: String = (0..5_000).map(|i| format!(r#","junk_{i}é":1"#)).collect();
        let body = format!(
            r#"{{"v":1,"idempotency_key":"k","to":"+15551234567","text":{{"body":"x"}}{keys}}}"#
        );
        let reason = SendRequest::parse(&body).unwrap_err().to_string();
        assert!(reason.len() < 1_200, "{} bytes", reason.len());
        assert!(reason.contains("and 4980 more problems"), "{reason}");
        assert!(reason.contains("unknown field"), "{reason}");
    }

    #[test]
    fn unknown_fields_and_non_json_are_refused_by_name() {
        let got = problems(r#"{"v":1,"idempotency_key":"k","to":"+15551234567","templete":{}}"#);
        assert!(
            got[0]
                .1
                .contains("unknown field \"templete\": expected one of v, kind, idempotency_key"),
            "{got:?}"
        );
        assert_eq!(problems("not json")[0].0, "body");
        assert!(parse("[1,2]").is_err());
    }

    #[test]
    fn a_template_category_is_required_and_service_is_only_for_text() {
        let got = problems(
            r#"{"v":1,"idempotency_key":"k","to":"+15551234567","template":{"name":"a","language":"en"}}"#,
        );
        assert_eq!(got[0].0, "category");
        let got = problems(
            r#"{"v":1,"idempotency_key":"k","to":"+15551234567","category":"service","template":{"name":"a","language":"en"}}"#,
        );
        assert!(
            got[0].1.contains("service is for free-form text"),
            "{got:?}"
        );
        let got = problems(
            r#"{"v":1,"idempotency_key":"k","to":"+15551234567","text":{"body":"x"},"fallback_template":{"name":"a","language":"en"}}"#,
        );
        assert_eq!(
            got[0].0, "category",
            "a fallback template needs its category"
        );
    }

    #[test]
    fn wrong_types_and_nulls_are_named_by_field_with_the_other_problems() {
        let got = problems(
            r#"{"v":1,"idempotency_key":"k","to":15551234567,"from":null,"text":{"body":"x","preview_url":"yes"},"callback_data":7}"#,
        );
        let shown: Vec<String> = got.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        assert_eq!(
            shown,
            [
                "to: must be a string, not a number",
                "from: is null: omit the field instead",
                "text: preview_url must be true or false",
                "callback_data: must be a string, not a number",
            ]
        );
    }

    #[test]
    fn the_key_survives_other_problems_so_the_refusal_can_be_recorded() {
        let err = parse(r#"{"v":1,"idempotency_key":"order-9","to":"nobody","text":{"body":"x"}}"#)
            .unwrap_err();
        assert_eq!(err.idempotency_key.as_ref().unwrap().as_str(), "order-9");
        assert!(err
            .to_string()
            .starts_with("invalid send request: to: must be"));
    }

    #[test]
    fn the_callback_marker_names_the_key() {
        let k = IdempotencyKey::parse("order-1234-shipped").unwrap();
        assert_eq!(k.callback_marker(), "wahook:order-1234-shipped");
        assert_eq!(IdempotencyKey::from_callback(&k.callback_marker()), Some(k));
        assert_eq!(IdempotencyKey::from_callback("order-1234"), None);
    }

    #[test]
    fn the_fingerprint_ignores_formatting_but_not_content() {
        let a = parse(r#"{"v":1,"idempotency_key":"k","to":"+15551234567","text":{"body":"x"}}"#)
            .unwrap();
        let b = parse("{ \"text\": {\"body\": \"x\"}, \"to\": \"+15551234567\", \"idempotency_key\": \"k\", \"v\": 1 }").unwrap();
        let c = parse(r#"{"v":1,"idempotency_key":"k","to":"+15551234567","text":{"body":"y"}}"#)
            .unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
        // The ledger holds fingerprints made before canonical_json existed (serde_json's sorted
        // map): a changed hash would refuse every in-flight key's redelivery as reused.
        assert_eq!(
            a.fingerprint,
            hex::encode(Sha256::digest(
                r#"{"idempotency_key":"k","text":{"body":"x"},"to":"+15551234567","v":1}"#
            ))
        );
    }

    #[test]
    fn canonical_json_sorts_nested_keys_and_keeps_arrays_in_order() {
        let v: Value =
            serde_json::from_str(r#"{"b":[{"z":1,"a":"é\n"},2],"a":{"y":null,"x":true},"é":1.5}"#)
                .unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"x":true,"y":null},"b":[{"a":"é\n","z":1},2],"é":1.5}"#
        );
    }

    #[test]
    fn a_file_is_named_by_its_s3_uri_and_each_problem_is_said() {
        let ok = SendRequest::parse(
            r#"{"v":1,"idempotency_key":"k","to":"+5215512345678","document":{"s3":"s3://my-bucket/outbound/inv 9.pdf","filename":"factura.pdf","caption":"Factura"}}"#,
        )
        .unwrap();
        let OutboundMessage::Media(m) = &ok.message else {
            panic!("a media message: {:?}", ok.message)
        };
        assert_eq!(m.kind, MediaKind::Document);
        assert_eq!(m.object.to_string(), "s3://my-bucket/outbound/inv 9.pdf");
        let named = m.object.redacted();
        assert!(
            named.starts_with("s3://my-bucket/… (key sha256 "),
            "{named}"
        );
        assert!(!named.contains("inv"), "the key is not shown: {named}");
        assert_eq!(m.filename.as_deref(), Some("factura.pdf"));
        assert!(ok.message.is_free_form());
        assert_eq!(ok.category, Category::Service);
        assert_eq!(ok.message.kind(), "document");

        let problems = |body: &str| SendRequest::parse(body).unwrap_err().to_string();
        let e = problems(
            r#"{"v":1,"idempotency_key":"k","to":"+5215512345678","image":{"s3":"https://x/y.jpg","filename":"y.jpg"}}"#,
        );
        assert!(e.contains("image: unknown field \"filename\""), "{e}");
        assert!(e.contains("s3 must be an S3 URI"), "{e}");
        let e = problems(
            r#"{"v":1,"idempotency_key":"k","to":"+5215512345678","audio":{"s3":"s3://Bad_Bucket/a.ogg"}}"#,
        );
        assert!(e.contains("names no valid bucket"), "{e}");
        let e = problems(
            r#"{"v":1,"idempotency_key":"k","to":"+5215512345678","sticker":{"s3":"s3://bucket/s.webp"},"text":{"body":"x"}}"#,
        );
        assert!(
            e.contains("text, sticker are all set: send exactly one of them"),
            "{e}"
        );
        let e = problems(r#"{"v":1,"idempotency_key":"k","to":"+5215512345678"}"#);
        assert!(
            e.contains("or text, image, video, audio, document or sticker is required"),
            "{e}"
        );
    }
}
