//! What the inbound path hands to storage: a user's message with what it contains, and an authentic
//! part of a delivery kept raw. Meta's JSON is read into these in `payload` and `inbound::plan`; the
//! store writes them. They live here so neither of those layers depends on the other.

use std::borrow::Cow;
use std::fmt;

use super::ids::{PhoneNumberId, UserRef, Wamid};
use super::time::UnixTime;

/// A message a user sent us.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage<'a> {
    pub wamid: Wamid,
    pub number: PhoneNumberId,
    /// Who sent it; `None` if the payload named nobody we can parse (kept, but on no timeline).
    pub user: Option<UserRef>,
    /// The payload's timestamp; `None` if absent or malformed.
    pub at: Option<UnixTime>,
    /// Meta's `type`, as sent (`"unknown"` when absent); borrowed from the body unless escaped.
    pub kind: Cow<'a, str>,
    /// What it contains, read for every documented type.
    pub content: MessageContent,
    /// Our message this one replies to, if it names a valid wamid.
    pub reply_to: Option<Wamid>,
    /// The exact JSON of the message item.
    pub raw: &'a str,
}

/// Something authentic we keep as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent<'a> {
    pub kind: EventKind,
    pub number: Option<PhoneNumberId>,
    pub waba_id: Option<String>,
    /// Why it was not processed, for [`EventKind::Unparsed`].
    pub reason: Option<String>,
    /// The payload time if the event carries one.
    pub at: Option<UnixTime>,
    pub raw: &'a [u8],
}

impl RawEvent<'_> {
    pub fn is_unparsed(&self) -> bool {
        matches!(self.kind, EventKind::Unparsed(_))
    }
}

/// What a kept event is. Stored (and hashed into its id) as its [`fmt::Display`] form:
/// `field:<name>`, `messages_errors`, `user_preferences`, `unparsed_<level>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Another webhook field (template, quality, account updates…); the name is kept short and
    /// printable whatever Meta sends.
    Field(String),
    /// `value.errors[]`: system- or app-level errors Meta reports asynchronously.
    MessagesErrors,
    /// `user_preferences[]`: the user's own stop/resume, kept as proof.
    UserPreferences,
    /// A part we could not read, at this level of the payload.
    Unparsed(Level),
    /// A change for a business number that is not ours (the inbound number filter): kept, not acted on.
    OtherNumber,
}

/// Where in a delivery a part could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Payload,
    Entry,
    Change,
    Message,
    Status,
    Preference,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Payload => "payload",
            Level::Entry => "entry",
            Level::Change => "change",
            Level::Message => "message",
            Level::Status => "status",
            Level::Preference => "preference",
        }
    }
}

impl EventKind {
    /// A webhook field's event kind, its name reduced to at most 64 of `[A-Za-z0-9_]`.
    pub fn field(name: &str) -> EventKind {
        let s: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        EventKind::Field(if s.is_empty() { "unnamed".into() } else { s })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Field(name) => write!(f, "field:{name}"),
            EventKind::MessagesErrors => f.write_str("messages_errors"),
            EventKind::UserPreferences => f.write_str("user_preferences"),
            EventKind::Unparsed(level) => write!(f, "unparsed_{}", level.as_str()),
            EventKind::OtherNumber => f.write_str("other_number"),
        }
    }
}

impl PartialEq<&str> for EventKind {
    fn eq(&self, other: &&str) -> bool {
        match self {
            EventKind::Field(name) => other.strip_prefix("field:") == Some(name.as_str()),
            EventKind::Unparsed(level) => other.strip_prefix("unparsed_") == Some(level.as_str()),
            EventKind::MessagesErrors => *other == "messages_errors",
            EventKind::UserPreferences => *other == "user_preferences",
            EventKind::OtherNumber => *other == "other_number",
        }
    }
}

/// A message's content, by `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageContent {
    Text {
        body: String,
    },
    /// `image`, `video`, `audio`, `document`, `sticker`: the media id is what a later download needs
    /// (valid for 7 days).
    Media {
        kind: MediaKind,
        id: Option<String>,
        mime_type: Option<String>,
        caption: Option<String>,
        filename: Option<String>,
        /// Meta's SHA-256 of the file, as Meta wrote it (see `domain::media::Sha256Digest`).
        sha256: Option<String>,
        /// Audio recorded as a voice note.
        voice: bool,
    },
    Location {
        latitude: Option<f64>,
        longitude: Option<f64>,
        name: Option<String>,
        address: Option<String>,
    },
    /// Shared contact cards.
    Contacts {
        count: usize,
    },
    /// A tap on a reply button, a list row, or a Flow / address form submission.
    Interactive {
        kind: String,
        id: Option<String>,
        title: Option<String>,
    },
    /// A template quick-reply tap.
    Button {
        text: Option<String>,
        payload: Option<String>,
    },
    /// A reaction to one of our messages; no emoji means the reaction was removed.
    Reaction {
        /// Our message reacted to, when it names a valid wamid.
        message_id: Option<Wamid>,
        emoji: Option<String>,
    },
    Order {
        catalog_id: Option<String>,
        items: usize,
    },
    /// A notice from WhatsApp (number changed, identity changed, user id changed).
    System {
        kind: Option<String>,
        body: Option<String>,
        /// A number change's new number, as Meta wrote it (`wa_id`, or the older `new_wa_id`).
        new_wa_id: Option<String>,
        /// A BSUID change's new BSUID.
        new_user_id: Option<String>,
    },
    /// A type Cloud API does not support (Meta says which in `unsupported.type`).
    Unsupported {
        original_type: Option<String>,
    },
    /// The user opened the chat for the first time.
    RequestWelcome,
    /// A type we do not know yet, or a known type whose content could not be read.
    Unknown {
        kind: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
    Sticker,
}

impl MessageContent {
    /// A one-line description without the user's words, for timelines and logs: `[image]`,
    /// `[reaction 👍]`… Text itself is never included here.
    pub fn label(&self) -> String {
        match self {
            MessageContent::Text { body } => format!("[text, {} chars]", body.chars().count()),
            MessageContent::Media { kind, voice, .. } => match (kind, voice) {
                (MediaKind::Audio, true) => "[voice note]".into(),
                _ => format!("[{}]", format!("{kind:?}").to_lowercase()),
            },
            MessageContent::Location { .. } => "[location]".into(),
            MessageContent::Contacts { count } => format!("[{count} contact card(s)]"),
            MessageContent::Interactive { kind, .. } => format!("[interactive {kind}]"),
            MessageContent::Button { .. } => "[quick reply]".into(),
            MessageContent::Reaction { emoji: Some(e), .. } => format!("[reaction {e}]"),
            MessageContent::Reaction { emoji: None, .. } => "[reaction removed]".into(),
            MessageContent::Order { items, .. } => format!("[order, {items} item(s)]"),
            MessageContent::System { kind, .. } => {
                format!("[system {}]", kind.as_deref().unwrap_or("notice"))
            }
            MessageContent::Unsupported { original_type } => {
                format!(
                    "[unsupported {}]",
                    original_type.as_deref().unwrap_or("type")
                )
            }
            MessageContent::RequestWelcome => "[opened the chat]".into(),
            MessageContent::Unknown { kind } => format!("[{kind}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_are_stored_as_before() {
        assert_eq!(
            EventKind::field("message_template_status_update").to_string(),
            "field:message_template_status_update"
        );
        assert_eq!(EventKind::field("a b/../c").to_string(), "field:abc");
        assert_eq!(EventKind::field("**").to_string(), "field:unnamed");
        assert_eq!(
            EventKind::Unparsed(Level::Payload).to_string(),
            "unparsed_payload"
        );
        assert_eq!(EventKind::MessagesErrors, "messages_errors");
        assert_eq!(EventKind::UserPreferences.to_string(), "user_preferences");
    }
}
