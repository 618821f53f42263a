//! Meta's webhook JSON, read leniently.
//!
//! Meta adds fields, types and statuses without notice, and the same body may batch up to 1000 updates
//! across `entry[] × changes[] × messages[]/statuses[]`. So every level is read on its own: the envelope
//! lists its entries as raw JSON, an entry its changes, a change its items. A level that does not parse
//! is kept raw by the caller and the rest goes on. Fields we do not read are ignored, a field of an
//! unexpected type reads as absent, and each item keeps its exact bytes (`&RawValue`, borrowed from the
//! body that was signed) so nothing is ever re-serialised.

pub mod content;
mod lenient;
pub(crate) mod scan;

pub use content::{MediaKind, MessageContent};

use std::borrow::Cow;

use serde::de::Deserializer;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::domain::status::{
    pricing_word, StatusError, StatusFacts, StatusObservation, StatusPricing,
};
use crate::domain::time::UnixTime;

pub(crate) use lenient::{
    lenient, lenient_bool, lenient_i64, lenient_list, lenient_str, lenient_string,
    lenient_timestamp,
};

/// The top level: `{ "object": "whatsapp_business_account", "entry": [...] }`.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    #[serde(default, deserialize_with = "lenient_string")]
    pub object: Option<String>,
    #[serde(borrow, default, deserialize_with = "raw_list")]
    pub entry: Vec<&'a RawValue>,
}

/// One WhatsApp Business Account's part of a delivery.
#[derive(Debug, Deserialize)]
pub struct Entry<'a> {
    /// The WABA id.
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    /// Present on account, template and quality fields (not on `messages`).
    #[serde(default, deserialize_with = "lenient_timestamp")]
    pub time: Option<UnixTime>,
    #[serde(borrow, default, deserialize_with = "raw_list")]
    pub changes: Vec<&'a RawValue>,
}

/// One subscribed field's update: `messages`, `user_preferences`, `message_template_status_update`…
#[derive(Debug, Deserialize)]
pub struct Change<'a> {
    #[serde(default, deserialize_with = "lenient_string")]
    pub field: Option<String>,
    #[serde(borrow, default)]
    pub value: Option<&'a RawValue>,
}

/// The `value` of the template fields (`message_template_status_update`, `template_category_update`,
/// `message_template_quality_update`): only what the registry needs, each field lenient.
#[derive(Debug, Default, Deserialize)]
pub struct TemplateValue {
    #[serde(default, deserialize_with = "lenient_string")]
    pub message_template_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub message_template_language: Option<String>,
    /// The status word (`APPROVED`, `PAUSED`…).
    #[serde(default, deserialize_with = "lenient_string")]
    pub event: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub message_template_category: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub new_category: Option<String>,
    /// Only on an impending category change.
    #[serde(default, deserialize_with = "lenient_string")]
    pub correct_category: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub new_quality_score: Option<String>,
}

/// The `value` of a `messages` or `user_preferences` change.
#[derive(Debug, Deserialize)]
pub struct ChangeValue<'a> {
    #[serde(default, deserialize_with = "lenient")]
    pub metadata: Option<Metadata>,
    #[serde(borrow, default, deserialize_with = "lenient_list")]
    pub contacts: Vec<ValueContact<'a>>,
    #[serde(borrow, default, deserialize_with = "raw_list")]
    pub messages: Vec<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_list")]
    pub statuses: Vec<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_list")]
    pub errors: Vec<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_list")]
    pub user_preferences: Vec<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct Metadata {
    #[serde(default, deserialize_with = "lenient_string")]
    pub display_phone_number: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub phone_number_id: Option<String>,
}

/// `value.contacts[]`: who the messages are from, with the profile name and both identities.
#[derive(Debug, Default, Deserialize)]
pub struct ValueContact<'a> {
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub wa_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub user_id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient")]
    pub profile: Option<Profile>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Profile {
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: Option<String>,
}

/// The scanner's reading of `metadata` for the one pass, which needs only the business number: what
/// [`lenient`] reads as [`Metadata`]'s `phone_number_id`, without copying either field.
pub(crate) fn scan_phone_number_id<'a>(
    s: &mut scan::Scanner<'a>,
) -> scan::Scan<Option<Cow<'a, str>>> {
    let read = scan_struct(s, |s, seen, id: &mut Option<Cow<'a, str>>, key| {
        match key {
            "display_phone_number" => {
                seen.once(0)?;
                scan_text(s)?;
            }
            "phone_number_id" => {
                seen.once(1)?;
                *id = scan_text(s)?;
            }
            _ => {
                s.skip()?;
            }
        }
        Ok(())
    })?;
    Ok(read.flatten())
}

impl<'a> ValueContact<'a> {
    /// The scanner's reading of `contacts` (as [`lenient_list`] reads it, or [`scan::Stop`]).
    pub(crate) fn scan_list(s: &mut scan::Scanner<'a>) -> scan::Scan<Vec<Self>> {
        let mut contacts = Vec::new();
        s.list(|s| {
            contacts.extend(Self::scan(s)?);
            Ok(())
        })?;
        Ok(contacts)
    }

    fn scan(s: &mut scan::Scanner<'a>) -> scan::Scan<Option<Self>> {
        scan_struct(s, |s, seen, c: &mut Self, key| {
            match key {
                "wa_id" => {
                    seen.once(0)?;
                    c.wa_id = scan_text(s)?;
                }
                "user_id" => {
                    seen.once(1)?;
                    c.user_id = scan_text(s)?;
                }
                "profile" => {
                    seen.once(2)?;
                    c.profile = scan_struct(s, |s, seen, p: &mut Profile, key| {
                        if key == "name" {
                            seen.once(0)?;
                            p.name = scan_text(s)?.map(Cow::into_owned);
                        } else {
                            s.skip()?;
                        }
                        Ok(())
                    })?;
                }
                _ => {
                    s.skip()?;
                }
            }
            Ok(())
        })
    }
}

/// A lenient nested object in the scanner's reading: `null` is absent, an object is read key by key
/// by `field` (which marks each field in `seen`, so a repeat stops), anything else stops.
fn scan_struct<'a, T: Default>(
    s: &mut scan::Scanner<'a>,
    mut field: impl FnMut(&mut scan::Scanner<'a>, &mut scan::Seen, &mut T, &'a str) -> scan::Scan<()>,
) -> scan::Scan<Option<T>> {
    if s.peek() == Some(b'n') {
        return s.null().map(|()| None);
    }
    let mut t = T::default();
    let mut seen = scan::Seen::default();
    s.object(|s, key| field(s, &mut seen, &mut t, key))?;
    Ok(Some(t))
}

/// The exact text of a part of an item, borrowed from the body, to be read later if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawText<'a>(pub &'a str);

impl<'de: 'a, 'a> Deserialize<'de> for RawText<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(d).map(|r| RawText(r.get()))
    }
}

/// `messages[]`: one message a user sent. Only what the rules need is read; the raw JSON keeps the rest.
///
/// The object the `type` names is read here too, so the item is deserialised once: `text` and
/// `button` (the rules read them) as structs, every other type's object as raw JSON that
/// [`MessageContent::of_item`] reads.
#[derive(Debug, Deserialize)]
pub struct MessageItem<'a> {
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub from: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub from_user_id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient_timestamp")]
    pub timestamp: Option<UnixTime>,
    #[serde(borrow, rename = "type", default, deserialize_with = "lenient_str")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient")]
    pub text: Option<TextContent>,
    #[serde(default, deserialize_with = "lenient")]
    pub button: Option<ButtonContent>,
    #[serde(default, deserialize_with = "lenient")]
    pub referral: Option<ReferralContent>,
    #[serde(default, deserialize_with = "lenient")]
    pub context: Option<MessageContext>,
    #[serde(default, borrow)]
    pub image: Option<RawText<'a>>,
    #[serde(default, borrow)]
    pub video: Option<RawText<'a>>,
    #[serde(default, borrow)]
    pub audio: Option<RawText<'a>>,
    #[serde(default, borrow)]
    pub document: Option<RawText<'a>>,
    #[serde(default, borrow)]
    pub sticker: Option<RawText<'a>>,
    #[serde(default, borrow)]
    pub location: Option<RawText<'a>>,
    #[serde(default, borrow)]
    pub contacts: Option<RawText<'a>>,
    #[serde(default, borrow)]
    pub interactive: Option<RawText<'a>>,
    #[serde(default, borrow)]
    pub reaction: Option<RawText<'a>>,
    #[serde(default, borrow)]
    pub order: Option<RawText<'a>>,
    #[serde(default, borrow)]
    pub system: Option<RawText<'a>>,
    #[serde(default, borrow)]
    pub unsupported: Option<RawText<'a>>,
}

impl<'a> MessageItem<'a> {
    /// The raw object of a type read as raw JSON (not `text` or `button`).
    pub fn object(&self, kind: &str) -> Option<&'a str> {
        let raw = match kind {
            "image" => self.image,
            "video" => self.video,
            "audio" => self.audio,
            "document" => self.document,
            "sticker" => self.sticker,
            "location" => self.location,
            "contacts" => self.contacts,
            "interactive" => self.interactive,
            "reaction" => self.reaction,
            "order" => self.order,
            "system" => self.system,
            "unsupported" => self.unsupported,
            _ => None,
        };
        raw.map(|r| r.0)
    }

    /// The object kept as text that is field `i` of [`MessageItem::scan`]'s numbering (9..=20).
    fn raw_slot(&mut self, i: u32) -> &mut Option<RawText<'a>> {
        match i {
            9 => &mut self.image,
            10 => &mut self.video,
            11 => &mut self.audio,
            12 => &mut self.document,
            13 => &mut self.sticker,
            14 => &mut self.location,
            15 => &mut self.contacts,
            16 => &mut self.interactive,
            17 => &mut self.reaction,
            18 => &mut self.order,
            19 => &mut self.system,
            _ => &mut self.unsupported,
        }
    }

    /// Reads a message where it lies in the body, in the scanner's one pass (as
    /// [`StatusItem::scan`] reads a status): the same item serde reads from the same text, or
    /// [`scan::Stop`] for anything but the plain shape.
    pub(crate) fn scan(s: &mut scan::Scanner<'a>) -> scan::Scan<Self> {
        let mut m = MessageItem {
            id: None,
            from: None,
            from_user_id: None,
            timestamp: None,
            kind: None,
            text: None,
            button: None,
            referral: None,
            context: None,
            image: None,
            video: None,
            audio: None,
            document: None,
            sticker: None,
            location: None,
            contacts: None,
            interactive: None,
            reaction: None,
            order: None,
            system: None,
            unsupported: None,
        };
        let mut seen = scan::Seen::default();
        s.object(|s, key| {
            let field = match key {
                "id" => 0,
                "from" => 1,
                "from_user_id" => 2,
                "type" => 3,
                "timestamp" => 4,
                "text" => 5,
                "button" => 6,
                "referral" => 7,
                "context" => 8,
                "image" => 9,
                "video" => 10,
                "audio" => 11,
                "document" => 12,
                "sticker" => 13,
                "location" => 14,
                "contacts" => 15,
                "interactive" => 16,
                "reaction" => 17,
                "order" => 18,
                "system" => 19,
                "unsupported" => 20,
                _ => return s.skip().map(|_| ()),
            };
            seen.once(field)?;
            match field {
                0 => m.id = scan_text(s)?,
                1 => m.from = scan_text(s)?,
                2 => m.from_user_id = scan_text(s)?,
                3 => m.kind = scan_text(s)?,
                4 => m.timestamp = scan_text(s)?.and_then(|t| UnixTime::parse_meta(&t)),
                5 => m.text = TextContent::scan(s)?,
                6 => m.button = with_serde(s.skip()?, |d| lenient(d))?,
                7 => m.referral = with_serde(s.skip()?, |d| lenient(d))?,
                8 => m.context = with_serde(s.skip()?, |d| lenient(d))?,
                // As serde reads an `Option<&RawValue>`: `null` is absent, anything else is kept.
                i => {
                    *m.raw_slot(i) = match s.peek() {
                        Some(b'n') => s.null().map(|()| None)?,
                        _ => Some(RawText(s.skip()?)),
                    }
                }
            }
            Ok(())
        })?;
        Ok(m)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct TextContent {
    #[serde(default, deserialize_with = "lenient_string")]
    pub body: Option<String>,
}

impl TextContent {
    /// The scanner's reading of `text` (as [`lenient`] reads it, or [`scan::Stop`]).
    fn scan(s: &mut scan::Scanner<'_>) -> scan::Scan<Option<Self>> {
        scan_struct(s, |s, seen, t: &mut Self, key| {
            if key == "body" {
                seen.once(0)?;
                t.body = scan_text(s)?.map(Cow::into_owned);
            } else {
                s.skip()?;
            }
            Ok(())
        })
    }
}

/// A template quick-reply tap (this is how "Stop promotions" arrives).
#[derive(Debug, Deserialize)]
pub struct ButtonContent {
    #[serde(default, deserialize_with = "lenient_string")]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub payload: Option<String>,
}

/// A Click-to-WhatsApp ad or Page-button referral.
#[derive(Debug, Deserialize)]
pub struct ReferralContent {
    #[serde(default, deserialize_with = "lenient_string")]
    pub source_url: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub source_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub source_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub headline: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub ctwa_clid: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct MessageContext {
    /// The wamid of our message the user replied to.
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
}

/// `statuses[]`: what happened to a message we sent. Its strings borrow from the body where they can
/// (most have no escapes): Meta batches up to a thousand statuses, and each copy is an allocation.
#[derive(Debug, Deserialize)]
pub struct StatusItem<'a> {
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub status: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient_timestamp")]
    pub timestamp: Option<UnixTime>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub recipient_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub recipient_user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub biz_opaque_callback_data: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "lenient")]
    pub conversation: Option<Conversation>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    pub pricing: Option<Pricing<'a>>,
    #[serde(default, deserialize_with = "lenient_list")]
    pub errors: Vec<MetaError>,
}

impl<'a> StatusItem<'a> {
    /// Parses one stored or received status item; `None` if it is not a JSON object.
    pub fn parse(raw: &'a str) -> Option<Self> {
        serde_json::from_str(raw).ok()
    }

    /// Reads a status where it lies in the body, in the scanner's one pass (see [`scan`]): the same
    /// item serde reads from the same text, or [`scan::Stop`] for anything but the plain shape Meta
    /// sends, which the caller then leaves to [`StatusItem::parse`].
    pub(crate) fn scan(s: &mut scan::Scanner<'a>) -> scan::Scan<Self> {
        let mut item = StatusItem {
            id: None,
            status: None,
            timestamp: None,
            recipient_id: None,
            recipient_user_id: None,
            biz_opaque_callback_data: None,
            conversation: None,
            pricing: None,
            errors: Vec::new(),
        };
        let mut seen = scan::Seen::default();
        s.object(|s, key| {
            match key {
                "id" => {
                    seen.once(0)?;
                    item.id = scan_text(s)?;
                }
                "status" => {
                    seen.once(1)?;
                    item.status = scan_text(s)?;
                }
                "timestamp" => {
                    seen.once(2)?;
                    item.timestamp = scan_text(s)?.and_then(|t| UnixTime::parse_meta(&t));
                }
                "recipient_id" => {
                    seen.once(3)?;
                    item.recipient_id = scan_text(s)?;
                }
                "recipient_user_id" => {
                    seen.once(4)?;
                    item.recipient_user_id = scan_text(s)?;
                }
                "biz_opaque_callback_data" => {
                    seen.once(5)?;
                    item.biz_opaque_callback_data = scan_text(s)?;
                }
                "conversation" => {
                    seen.once(6)?;
                    item.conversation = with_serde(s.skip()?, |d| lenient(d))?;
                }
                "pricing" => {
                    seen.once(7)?;
                    item.pricing = Pricing::scan(s)?;
                }
                "errors" => {
                    seen.once(8)?;
                    item.errors = with_serde(s.skip()?, |d| lenient_list(d))?;
                }
                _ => {
                    s.skip()?;
                }
            }
            Ok(())
        })?;
        Ok(item)
    }

    /// What the status says beyond its name, in the domain's terms. Takes the item, so the strings
    /// it read move into the facts instead of being copied.
    pub fn facts(self) -> StatusFacts<'a> {
        let (conversation_id, conversation_origin) = match self.conversation {
            Some(c) => (c.id, c.origin.and_then(|o| o.kind)),
            None => (None, None),
        };
        StatusFacts {
            error: self.errors.into_iter().next().map(|e| StatusError {
                code: e.code,
                title: e.title,
                message: e.message,
                details: e.error_data.and_then(|d| d.details),
            }),
            pricing: self.pricing.map(|p| {
                let word = |w: Option<Cow<str>>| w.map(|w| pricing_word(&w));
                StatusPricing {
                    billable: p.billable,
                    pricing_model: word(p.pricing_model),
                    category: word(p.category),
                    kind: word(p.kind),
                }
            }),
            conversation_id,
            conversation_origin,
            callback_data: self.biz_opaque_callback_data,
            recipient_id: self.recipient_id,
            recipient_user_id: self.recipient_user_id,
        }
    }
}

/// The facts of a stored status's JSON (`None` if it is not an object): how a status log read back
/// from storage learns what its statuses say.
pub fn status_facts(raw: &str) -> Option<StatusFacts<'static>> {
    StatusItem::parse(raw).map(|s| s.facts().into_owned())
}

/// An observation of a status at `at` with its JSON, its facts read.
pub fn status_observation(at: UnixTime, raw: &str) -> StatusObservation<'static> {
    StatusObservation {
        at,
        raw: Cow::Owned(raw.to_owned()),
        facts: status_facts(raw),
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Conversation {
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub origin: Option<ConversationOrigin>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ConversationOrigin {
    #[serde(rename = "type", default, deserialize_with = "lenient_string")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Pricing<'a> {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub billable: Option<bool>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub pricing_model: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient_str")]
    pub category: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type", default, deserialize_with = "lenient_str")]
    pub kind: Option<Cow<'a, str>>,
}

impl<'a> Pricing<'a> {
    /// [`StatusItem::scan`]'s reading of `pricing`: four plain fields, or `null`.
    fn scan(s: &mut scan::Scanner<'a>) -> scan::Scan<Option<Self>> {
        scan_struct(s, |s, seen, p: &mut Self, key| {
            match key {
                "billable" => {
                    seen.once(0)?;
                    p.billable = match s.peek() {
                        Some(b'n') => s.null().map(|()| None)?,
                        _ => Some(s.boolean()?),
                    };
                }
                "pricing_model" => {
                    seen.once(1)?;
                    p.pricing_model = scan_text(s)?;
                }
                "category" => {
                    seen.once(2)?;
                    p.category = scan_text(s)?;
                }
                "type" => {
                    seen.once(3)?;
                    p.kind = scan_text(s)?;
                }
                _ => {
                    s.skip()?;
                }
            }
            Ok(())
        })
    }
}

/// A lenient text field in the scanner's reading: a string, or `null` (absent). Anything else stops:
/// serde's reading of a number as text is left to serde.
pub(crate) fn scan_text<'a>(s: &mut scan::Scanner<'a>) -> scan::Scan<Option<Cow<'a, str>>> {
    match s.peek() {
        Some(b'"') => s.string().map(Some),
        Some(b'n') => s.null().map(|()| None),
        _ => Err(scan::Stop),
    }
}

/// A part the scanner skipped (its exact text), read by one of the lenient readers as serde reads it.
pub(crate) fn with_serde<'a, T>(
    raw: &'a str,
    read: impl FnOnce(
        &mut serde_json::Deserializer<serde_json::de::StrRead<'a>>,
    ) -> serde_json::Result<T>,
) -> scan::Scan<T> {
    read(&mut serde_json::Deserializer::from_str(raw)).map_err(|_| scan::Stop)
}

/// The error object Meta puts on failed statuses, unsupported messages and `value.errors`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct MetaError {
    #[serde(default, deserialize_with = "lenient_i64")]
    pub code: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub message: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub error_data: Option<ErrorData>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ErrorData {
    #[serde(default, deserialize_with = "lenient_string")]
    pub details: Option<String>,
}

/// `user_preferences[]`: the user stopped or resumed marketing messages in WhatsApp.
#[derive(Debug, Deserialize)]
pub struct PreferenceItem {
    #[serde(default, deserialize_with = "lenient_string")]
    pub wa_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub category: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub value: Option<String>,
    #[serde(default, deserialize_with = "lenient_timestamp")]
    pub timestamp: Option<UnixTime>,
}

/// A JSON array of raw items; `null` reads as empty. Anything else fails this level, which the caller
/// then keeps raw.
fn raw_list<'de, D>(d: D) -> Result<Vec<&'de RawValue>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<Vec<&'de RawValue>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_observation_at(at: i64, raw: &str) -> StatusObservation<'static> {
        status_observation(UnixTime::from_secs(at), raw)
    }

    #[test]
    fn summary_takes_error_from_failed_and_pricing_from_the_most_advanced_status() {
        let mut log = crate::domain::status::StatusLog::default();
        log.observe(
            "sent",
            status_observation_at(10, r#"{"status":"sent","pricing":{"category":"utility","type":"regular"},"biz_opaque_callback_data":"order-7"}"#),
        );
        log.observe(
            "delivered",
            status_observation_at(20, r#"{"status":"delivered","pricing":{"category":"utility","type":"free_customer_service"}}"#),
        );
        log.observe(
            "failed",
            status_observation_at(
                30,
                r#"{"status":"failed","errors":[{"code":131049,"title":"healthy ecosystem"}]}"#,
            ),
        );
        let s = log.summary();
        assert_eq!(s.error.unwrap().code, Some(131049));
        assert_eq!(
            s.pricing.unwrap().kind.as_deref(),
            Some("free_customer_service")
        );
        assert_eq!(s.callback_data.as_deref(), Some("order-7"));
    }

    #[test]
    fn items_keep_their_exact_bytes() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messages":[{"id":"wamid.A","text":{"body":"mang\u00e9 \ud83c\udf5d https:\/\/x.y"}}]},"field":"messages"}]}]}"#;
        let env: Envelope = serde_json::from_slice(body).unwrap();
        let entry: Entry = serde_json::from_str(env.entry[0].get()).unwrap();
        let change: Change = serde_json::from_str(entry.changes[0].get()).unwrap();
        let value: ChangeValue = serde_json::from_str(change.value.unwrap().get()).unwrap();
        let raw = value.messages[0].get();
        assert_eq!(
            raw,
            r#"{"id":"wamid.A","text":{"body":"mang\u00e9 \ud83c\udf5d https:\/\/x.y"}}"#
        );
        let msg: MessageItem = serde_json::from_str(raw).unwrap();
        assert_eq!(msg.text.unwrap().body.unwrap(), "mangé 🍝 https://x.y");
    }

    #[test]
    fn odd_field_types_read_as_absent_not_as_failure() {
        let raw = r#"{"id":"wamid.B","from":15551234567,"timestamp":"soon","type":"text","text":"not an object","referral":[1,2]}"#;
        let msg: MessageItem = serde_json::from_str(raw).unwrap();
        assert_eq!(msg.id.as_deref(), Some("wamid.B"));
        assert_eq!(msg.from.as_deref(), Some("15551234567"));
        assert!(msg.timestamp.is_none() && msg.text.is_none() && msg.referral.is_none());
    }

    #[test]
    fn timestamps_may_be_strings_or_numbers() {
        let s: StatusItem = serde_json::from_str(r#"{"timestamp":1795000000}"#).unwrap();
        assert_eq!(s.timestamp, Some(UnixTime::from_secs(1_795_000_000)));
        let s: StatusItem = serde_json::from_str(r#"{"timestamp":"1795000000"}"#).unwrap();
        assert_eq!(s.timestamp, Some(UnixTime::from_secs(1_795_000_000)));
    }

    #[test]
    fn a_list_that_is_not_a_list_fails_only_its_level() {
        let err = serde_json::from_str::<ChangeValue>(r#"{"messages":{"id":"x"}}"#);
        assert!(err.is_err());
        let ok: ChangeValue = serde_json::from_str(r#"{"messages":null,"statuses":[]}"#).unwrap();
        assert!(ok.messages.is_empty());
    }

    #[test]
    fn errors_and_pricing_on_a_failed_status() {
        let raw = r#"{"id":"wamid.C","status":"failed","timestamp":"10","recipient_id":"15551234567",
            "errors":[{"code":131050,"title":"t","message":"m","error_data":{"details":"d"}},"junk"],
            "pricing":{"billable":false,"pricing_model":"PMP","category":"marketing","type":"regular"}}"#;
        let s = StatusItem::parse(raw).unwrap();
        assert_eq!(s.errors.len(), 1);
        assert_eq!(s.errors[0].code, Some(131050));
        assert_eq!(s.pricing.unwrap().kind.as_deref(), Some("regular"));
    }
}
