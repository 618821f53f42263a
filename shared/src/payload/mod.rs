//! Meta's webhook JSON, read leniently.
//!
//! Meta adds fields, types and statuses without notice, and the same body may batch up to 1000 updates
//! across `entry[] × changes[] × messages[]/statuses[]`. So every level is read on its own: the envelope
//! lists its entries as raw JSON, an entry its changes, a change its items. A level that does not parse
//! is kept raw by the caller and the rest goes on. Fields we do not read are ignored, a field of an
//! unexpected type reads as absent, and each item keeps its exact bytes (`&RawValue`, borrowed from the
//! body that was signed) so nothing is ever re-serialised.

pub mod content;

pub use content::{MediaKind, MessageContent};

use std::borrow::Cow;

use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::domain::ids::{Bsuid, Phone};
use crate::domain::status::{StatusError, StatusFacts, StatusObservation, StatusPricing};
use crate::domain::time::UnixTime;

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
    #[serde(default, deserialize_with = "lenient_list")]
    pub contacts: Vec<ValueContact>,
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
#[derive(Debug, Deserialize)]
pub struct ValueContact {
    #[serde(default, deserialize_with = "lenient_string")]
    pub wa_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub profile: Option<Profile>,
}

#[derive(Debug, Deserialize)]
pub struct Profile {
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: Option<String>,
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
    pub image: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub video: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub audio: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub document: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub sticker: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub location: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub contacts: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub interactive: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub reaction: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub order: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub system: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub unsupported: Option<&'a RawValue>,
}

impl<'a> MessageItem<'a> {
    /// The raw object of a type read as raw JSON (not `text` or `button`).
    pub fn object(&self, kind: &str) -> Option<&'a RawValue> {
        match kind {
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
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct TextContent {
    #[serde(default, deserialize_with = "lenient_string")]
    pub body: Option<String>,
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
    #[serde(default, deserialize_with = "lenient")]
    pub pricing: Option<Pricing>,
    #[serde(default, deserialize_with = "lenient_list")]
    pub errors: Vec<MetaError>,
}

impl<'a> StatusItem<'a> {
    /// Parses one stored or received status item; `None` if it is not a JSON object.
    pub fn parse(raw: &'a str) -> Option<Self> {
        serde_json::from_str(raw).ok()
    }

    /// What the status says beyond its name, in the domain's terms. Takes the item, so the strings
    /// it read move into the facts instead of being copied.
    pub fn facts(self) -> StatusFacts {
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
            pricing: self.pricing.map(|p| StatusPricing {
                billable: p.billable,
                pricing_model: p.pricing_model,
                category: p.category,
                kind: p.kind,
            }),
            conversation_id,
            conversation_origin,
            callback_data: self.biz_opaque_callback_data.map(Cow::into_owned),
            recipient_phone: self
                .recipient_id
                .as_deref()
                .and_then(|p| Phone::parse(p).ok()),
            recipient_bsuid: self
                .recipient_user_id
                .as_deref()
                .and_then(|b| Bsuid::parse(b).ok()),
        }
    }
}

/// The facts of a stored status's JSON (`None` if it is not an object): how a status log read back
/// from storage learns what its statuses say.
pub fn status_facts(raw: &str) -> Option<StatusFacts> {
    StatusItem::parse(raw).map(|s| s.facts())
}

/// An observation of a status at `at` with its JSON, its facts read.
pub fn status_observation(at: UnixTime, raw: &str) -> StatusObservation {
    StatusObservation {
        at,
        raw: raw.to_owned(),
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

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Pricing {
    #[serde(default, deserialize_with = "lenient")]
    pub billable: Option<bool>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub pricing_model: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub category: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "lenient_string")]
    pub kind: Option<String>,
}

/// The error object Meta puts on failed statuses, unsupported messages and `value.errors`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct MetaError {
    #[serde(default, deserialize_with = "lenient")]
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

/// A string, or a number read as its decimal text (some tools send ids as numbers). Else absent.
/// Borrowed from the input unless the JSON string has escapes (or was a number).
pub(crate) fn lenient_str<'de, D>(d: D) -> Result<Option<Cow<'de, str>>, D::Error>
where
    D: Deserializer<'de>,
{
    d.deserialize_any(Scalar).map(|s| match s {
        ScalarValue::Borrowed(t) => Some(Cow::Borrowed(t)),
        ScalarValue::Text(t) => Some(Cow::Owned(t)),
        ScalarValue::Int(i) => Some(Cow::Owned(i.to_string())),
        ScalarValue::Float(f) => Some(Cow::Owned(f.to_string())),
        ScalarValue::Other => None,
    })
}

/// [`lenient_str`], owned: for the fields a plan keeps.
pub(crate) fn lenient_string<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    lenient_str(d).map(|s| s.map(Cow::into_owned))
}

/// Meta's `"1795000000"`, or a number. Anything else is absent.
pub(crate) fn lenient_timestamp<'de, D>(d: D) -> Result<Option<UnixTime>, D::Error>
where
    D: Deserializer<'de>,
{
    d.deserialize_any(Scalar).map(|s| match s {
        ScalarValue::Borrowed(t) => UnixTime::parse_meta(t),
        ScalarValue::Text(t) => UnixTime::parse_meta(&t),
        ScalarValue::Int(i) if (0..=UnixTime::MAX_PAYLOAD_SECS).contains(&i) => {
            Some(UnixTime::from_secs(i))
        }
        _ => None,
    })
}

/// Any shape that does not fit `T` reads as absent instead of failing the item around it. The value is
/// borrowed as raw JSON and parsed on its own, so a misfit cannot derail the parser of the item.
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let raw = Option::<&'de RawValue>::deserialize(d)?;
    Ok(raw.and_then(|r| parse_unless_array(r.get())))
}

/// A list whose elements that do not fit `T` are skipped.
fn lenient_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let raw = Option::<&'de RawValue>::deserialize(d)?;
    let Some(items) = raw.and_then(|r| serde_json::from_str::<Vec<&RawValue>>(r.get()).ok()) else {
        return Ok(Vec::new());
    };
    Ok(items
        .into_iter()
        .filter_map(|r| parse_unless_array(r.get()))
        .collect())
}

// serde would read a struct from an array of its fields in order; no field of Meta's is that.
fn parse_unless_array<T: DeserializeOwned>(json: &str) -> Option<T> {
    if json.trim_start().starts_with('[') {
        None
    } else {
        serde_json::from_str(json).ok()
    }
}

/// A JSON scalar without building a `serde_json::Value`; objects and arrays are skipped.
enum ScalarValue<'de> {
    /// A string without escapes, borrowed from the input.
    Borrowed(&'de str),
    Text(String),
    Int(i64),
    Float(f64),
    Other,
}

struct Scalar;

impl<'de> serde::de::Visitor<'de> for Scalar {
    type Value = ScalarValue<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Text(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Text(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<ScalarValue<'de>, E> {
        Ok(i64::try_from(v).map_or(ScalarValue::Float(v as f64), ScalarValue::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Float(v))
    }
    fn visit_bool<E>(self, _: bool) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Other)
    }
    fn visit_unit<E>(self) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Other)
    }
    fn visit_none<E>(self) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Other)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<ScalarValue<'de>, D::Error> {
        d.deserialize_any(Scalar)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<ScalarValue<'de>, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(ScalarValue::Other)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<ScalarValue<'de>, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(ScalarValue::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_observation_at(at: i64, raw: &str) -> StatusObservation {
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
