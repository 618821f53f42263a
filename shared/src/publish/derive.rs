//! What happened, read off a write: each stream record's before and after images become zero or more
//! domain events. Pure: the same record always gives the same events with the same ids, so a
//! redelivered record, a retried batch or a replayed stream republishes events a consumer already
//! dedupes by `event_id`.
//!
//! Events come from transitions, never from a single image: moto's extra records (an upsert's two
//! INSERTs, a no-op write's MODIFY) and AWS's at-least-once delivery change nothing.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::stream::{ChangeRecord, SourceTable};
use crate::domain::handover::HandoverWords;
use crate::domain::inbound::MessageContent;
use crate::domain::ledger::SendState;
use crate::domain::status::DeliveryStatus;
use crate::store::attrs::{get_m, get_n, get_s, Item};
use crate::store::contacts::state_from_item;

/// The envelope's `source` on the bus.
pub const EVENT_SOURCE: &str = "wahook";
/// The detail's schema version. A breaking change to any event's detail is a new version.
pub const DETAIL_VERSION: u32 = 1;

/// Every event type, with its schema in `schemas/events/<type>.v1.json`.
pub const MESSAGE_RECEIVED: &str = "message.received";
pub const HUMAN_REQUESTED: &str = "conversation.human_requested";
pub const STATUS_CHANGED: &str = "message.status_changed";
pub const CONSENT_CHANGED: &str = "consent.changed";
pub const SEND_OUTCOME: &str = "send.outcome";
pub const TEMPLATE_CHANGED: &str = "template.changed";
pub const QUALITY_CHANGED: &str = "quality.changed";
pub const EVENT_TYPES: &[&str] = &[
    MESSAGE_RECEIVED,
    HUMAN_REQUESTED,
    STATUS_CHANGED,
    CONSENT_CHANGED,
    SEND_OUTCOME,
    TEMPLATE_CHANGED,
    QUALITY_CHANGED,
];

/// Meta error codes that are quality signals, and whether each is a drop (what the alarm counts):
/// 131048, the spam rate limit (users block or report the number's messages), is; 131049, the
/// per-user marketing limit (Meta held a marketing message back for that user's engagement), is a
/// signal about the audience, not a drop: a US campaign during Meta's marketing pause fails every
/// send with it.
pub const QUALITY_ERROR_CODES: &[(i64, bool)] = &[(131048, true), (131049, false)];

/// `phone_number_quality_update` events that are a drop. Since Oct 2025 Meta sends no FLAGGED state
/// and no limit downgrade (whatsapp-platform.md §9: only ONBOARDING and THROUGHPUT_UPGRADE); the
/// names stay for an account on an older behaviour. UNSURE: one table entry to change.
pub const NUMBER_QUALITY_DROPS: &[&str] = &["FLAGGED", "DOWNGRADE"];

/// Template quality ratings from best to worst; a move to the right is a drop.
pub const TEMPLATE_QUALITY_ORDER: &[&str] = &["GREEN", "YELLOW", "RED"];

/// One event for the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainEvent {
    pub detail_type: &'static str,
    /// Hex SHA-256 of the type, the item's key and the transition: the same fact, the same id.
    pub event_id: String,
    /// Epoch seconds of the fact (Meta's time where there is one).
    pub at: i64,
    /// The whole detail, `v`, `event_id` and `at` included.
    pub detail: Value,
}

impl DomainEvent {
    fn new(detail_type: &'static str, identity: &[&str], at: i64, fields: Value) -> Self {
        let mut h = Sha256::new();
        h.update(detail_type.as_bytes());
        for part in identity {
            // Length-prefixed: ("ab", "c") and ("a", "bc") are different facts.
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let event_id = hex::encode(h.finalize());
        let mut detail = Map::new();
        detail.insert("v".into(), json!(DETAIL_VERSION));
        detail.insert("event_id".into(), json!(event_id));
        detail.insert("at".into(), json!(at));
        if let Value::Object(f) = without_nulls(fields) {
            detail.extend(f);
        }
        Self {
            detail_type,
            event_id,
            at,
            detail: Value::Object(detail),
        }
    }

    /// Whether this event is a drop in quality (what the quality alarm counts).
    pub fn is_quality_drop(&self) -> bool {
        self.detail_type == QUALITY_CHANGED && self.detail.get("drop") == Some(&Value::Bool(true))
    }
}

/// Absent, not null: a consumer's `detail.x.y` exists or it does not (the schemas say so), at every
/// level of an object.
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

/// What deriving needs besides the record.
#[derive(Debug, Clone, Default)]
pub struct DeriveRules {
    pub handover: HandoverWords,
}

/// The events one write gives.
pub fn events_of(record: &ChangeRecord, rules: &DeriveRules) -> Vec<DomainEvent> {
    let Some(new) = &record.new else {
        // A delete (TTL expiry, a pruned item) is not a fact of the conversation.
        return Vec::new();
    };
    if record.is_noop() {
        return Vec::new();
    }
    let old = record.old.as_ref();
    match record.table {
        SourceTable::Messages => match get_s(new, "direction") {
            Some("in") => inbound(old, new, rules),
            Some("out") => outbound(old, new),
            _ => Vec::new(),
        },
        SourceTable::Contacts => consent(old, new),
        SourceTable::Sends => send_outcome(old, new),
        SourceTable::Templates => template(old, new),
        SourceTable::Events => number_quality(old, new),
    }
}

fn text(item: &Item, name: &str) -> Value {
    get_s(item, name).map_or(Value::Null, |s| json!(s))
}

fn number(item: &Item, name: &str) -> Value {
    get_n(item, name).map_or(Value::Null, |n| json!(n))
}

/// Who wrote: the phone and the BSUID the message named (either may be absent, not both).
fn user(item: &Item) -> Value {
    let mut user = Map::new();
    for (field, attr) in [("phone", "user_phone"), ("bsuid", "user_bsuid")] {
        if let Some(v) = get_s(item, attr) {
            user.insert(field.into(), json!(v));
        }
    }
    if user.is_empty() {
        Value::Null
    } else {
        Value::Object(user)
    }
}

/// An inbound message, stored for the first time: `message.received`, and a handover request if
/// it asks for a person.
fn inbound(old: Option<&Item>, new: &Item, rules: &DeriveRules) -> Vec<DomainEvent> {
    if old.and_then(|o| get_s(o, "direction")) == Some("in") {
        // Already received: a later write (media stored, …) is not a new message.
        return Vec::new();
    }
    let Some(wamid) = get_s(new, "wamid") else {
        return Vec::new();
    };
    let kind = get_s(new, "type").unwrap_or("unknown");
    let raw = get_s(new, "raw").unwrap_or("{}");
    let content = MessageContent::parse(kind, raw);
    let raw_json: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    let (body, button_payload) = match &content {
        MessageContent::Text { body } => (Some(body.as_str()), None),
        MessageContent::Media { caption, .. } => (caption.as_deref(), None),
        MessageContent::Button { text, payload } => (text.as_deref(), payload.as_deref()),
        MessageContent::Interactive { id, title, .. } => (title.as_deref(), id.as_deref()),
        _ => (None, None),
    };
    let at = get_n(new, "at").unwrap_or(0);
    let media = match &content {
        MessageContent::Media { id, mime_type, .. } => {
            json!({ "id": id, "mime_type": mime_type })
        }
        _ => Value::Null,
    };
    let referral = raw_json
        .get("referral")
        .filter(|r| r.is_object())
        .cloned()
        .unwrap_or(Value::Null);
    let common = |extra: Value| {
        let mut m = json!({
            "wamid": wamid,
            "number": text(new, "number"),
            "contact": text(new, "contact"),
            "user": user(new),
        });
        if let (Value::Object(m), Value::Object(e)) = (&mut m, extra) {
            m.extend(e);
        }
        m
    };
    let mut events = vec![DomainEvent::new(
        MESSAGE_RECEIVED,
        &[wamid],
        at,
        common(json!({
            "type": kind,
            "text": body,
            "button_payload": button_payload,
            "reply_to": text(new, "reply_to"),
            "referral": referral,
            "media": media,
        })),
    )];
    let matched = [body, button_payload]
        .into_iter()
        .flatten()
        .find_map(|t| rules.handover.find(t));
    if let Some(word) = matched {
        events.push(DomainEvent::new(
            HUMAN_REQUESTED,
            &[wamid],
            at,
            common(json!({ "matched": word, "text": body })),
        ));
    }
    events
}

/// Our message's status log grew: `message.status_changed` when its rank advanced, and a quality
/// signal when Meta failed it with a quality code.
fn outbound(old: Option<&Item>, new: &Item) -> Vec<DomainEvent> {
    let Some(wamid) = get_s(new, "wamid") else {
        return Vec::new();
    };
    let mut events = Vec::new();
    let old_rank = old.and_then(|o| get_n(o, "status_rank")).unwrap_or(0);
    // Each status name the log gained, of a rank above where the message stood: statuses that
    // arrive in one delivery are written at once, and each is still its own fact (sent, then
    // delivered). A late status below the current rank is stored, not published.
    let seen_before = |name: &str| {
        old.and_then(|o| get_m(o, "status_events"))
            .is_some_and(|m| m.contains_key(name))
    };
    let mut gained: Vec<(DeliveryStatus, i64)> = get_m(new, "status_events")
        .map(|m| {
            m.iter()
                .filter(|(name, _)| !seen_before(name))
                .map(|(name, o)| {
                    let at = o.as_m().ok().and_then(|o| get_n(o, "at")).unwrap_or(0);
                    (DeliveryStatus::parse(name), at)
                })
                .filter(|(s, _)| i64::from(s.rank()) > old_rank)
                .collect()
        })
        .unwrap_or_default();
    gained.sort_by_key(|(s, _)| s.rank());
    // The status before: the highest known one the log held (a status Meta adds later, such as
    // `held_for_quality_assessment`, has no rank and is not a previous status).
    let mut previous = old
        .and_then(|o| get_m(o, "status_events"))
        .and_then(|log| {
            log.keys()
                .map(|name| DeliveryStatus::parse(name))
                .filter(|s| s.rank() > 0)
                .max_by_key(|s| s.rank())
        })
        .map(|s| s.as_str().to_owned());
    for (status, at) in gained {
        let status = status.as_str();
        let error = if status == "failed"
            && (new.contains_key("error_code") || new.contains_key("error_title"))
        {
            json!({
                "code": number(new, "error_code"),
                "title": text(new, "error_title"),
                "message": text(new, "error_message"),
                "details": text(new, "error_details"),
            })
        } else {
            Value::Null
        };
        events.push(DomainEvent::new(
            STATUS_CHANGED,
            &[wamid, status],
            at,
            json!({
                "wamid": wamid,
                "number": text(new, "number"),
                "contact": text(new, "contact"),
                "status": status,
                "previous_status": previous,
                "idempotency_key": text(new, "idempotency_key"),
                "conversation_id": text(new, "conversation_id"),
                "pricing": pricing(new),
                "error": error,
            }),
        ));
        previous = Some(status.to_owned());
    }
    let code = get_n(new, "error_code");
    let old_code = old.and_then(|o| get_n(o, "error_code"));
    let quality = code
        .filter(|c| old_code != Some(*c))
        .and_then(|c| QUALITY_ERROR_CODES.iter().find(|(q, _)| *q == c));
    if let Some((code, drop)) = quality {
        let code_text = code.to_string();
        let failed_at = get_m(new, "status_events")
            .and_then(|log| log.get("failed"))
            .and_then(|o| o.as_m().ok())
            .and_then(|o| get_n(o, "at"));
        events.push(DomainEvent::new(
            QUALITY_CHANGED,
            &["message_failed", wamid, &code_text],
            failed_at.or_else(|| get_n(new, "status_at")).unwrap_or(0),
            json!({
                "signal": "message_failed",
                "drop": drop,
                "number": text(new, "number"),
                "wamid": wamid,
                "code": code,
                "contact": text(new, "contact"),
            }),
        ));
    }
    events
}

/// The pricing of the message's latest status, as the status webhooks gave it.
fn pricing(item: &Item) -> Value {
    if !item.contains_key("pricing_category") && !item.contains_key("billable") {
        return Value::Null;
    }
    json!({
        "billable": item.get("billable").and_then(|b| b.as_bool().ok()),
        "category": text(item, "pricing_category"),
        "type": text(item, "pricing_type"),
        "model": text(item, "pricing_model"),
    })
}

/// A person's word on a category changed (opt-out, opt-in), or a producer recorded a consent.
fn consent(old: Option<&Item>, new: &Item) -> Vec<DomainEvent> {
    if new.contains_key("alias_of") {
        return Vec::new();
    }
    let Some(contact) = get_s(new, "contact") else {
        return Vec::new();
    };
    let before = old.map(state_from_item).unwrap_or_default();
    let after = state_from_item(new);
    let mut events = Vec::new();
    for (category, pref) in &after.preferences {
        let previous = before.preferences.get(category);
        if previous.is_some_and(|p| p.consent == pref.consent) {
            continue;
        }
        let at = pref.at.secs();
        events.push(DomainEvent::new(
            CONSENT_CHANGED,
            &[
                contact,
                category.as_str(),
                pref.consent.as_str(),
                &at.to_string(),
            ],
            at,
            json!({
                "contact": contact,
                "category": category.as_str(),
                "consent": pref.consent.as_str(),
                "previous": previous.map(|p| p.consent.as_str()),
                "source": pref.source.as_str(),
            }),
        ));
    }
    for (category, record) in &after.consents {
        if before.consents.get(category) == Some(record) {
            continue;
        }
        let at = record.at.secs();
        events.push(DomainEvent::new(
            CONSENT_CHANGED,
            &[
                contact,
                category.as_str(),
                "recorded",
                &at.to_string(),
                &record.value.source,
                record.value.evidence.as_deref().unwrap_or(""),
            ],
            at,
            json!({
                "contact": contact,
                "category": category.as_str(),
                "consent": "opted_in",
                "source": "consent_request",
                "recorded": {
                    "source": record.value.source,
                    "evidence": record.value.evidence,
                },
            }),
        ));
    }
    events
}

/// A ledger entry reached a final state.
fn send_outcome(old: Option<&Item>, new: &Item) -> Vec<DomainEvent> {
    let state = get_s(new, "state").and_then(SendState::parse);
    let Some(state) = state.filter(|s| s.is_final()) else {
        return Vec::new();
    };
    if old.and_then(|o| get_s(o, "state")) == Some(state.as_str()) {
        return Vec::new();
    }
    let Some(key) = get_s(new, "idempotency_key") else {
        return Vec::new();
    };
    let at = get_n(new, "finished_at")
        .or_else(|| get_n(new, "updated_at"))
        .unwrap_or(0);
    let template = match get_s(new, "template_name") {
        Some(name) => json!({ "name": name, "language": text(new, "template_language") }),
        None => Value::Null,
    };
    // A send that went out may carry an earlier attempt's error and reason (a retry after 130429):
    // they are not its outcome.
    let sent = state == SendState::Sent;
    let error = match get_n(new, "error_code").filter(|_| !sent) {
        Some(code) => json!({ "code": code, "class": text(new, "error_class") }),
        None => Value::Null,
    };
    let reason = if sent {
        Value::Null
    } else {
        text(new, "reason")
    };
    vec![DomainEvent::new(
        SEND_OUTCOME,
        &[key, state.as_str(), &at.to_string()],
        at,
        json!({
            "idempotency_key": key,
            "state": state.as_str(),
            "reason": reason,
            "wamid": text(new, "wamid"),
            "to": text(new, "to"),
            "number": text(new, "number"),
            "category": text(new, "category"),
            "type": text(new, "type"),
            "template": template,
            "error": error,
        }),
    )]
}

fn quality_drop(from: Option<&str>, to: &str) -> bool {
    let rank = |q: &str| {
        TEMPLATE_QUALITY_ORDER
            .iter()
            .position(|o| o.eq_ignore_ascii_case(q))
    };
    matches!((from.and_then(rank), rank(to)), (Some(a), Some(b)) if b > a)
}

/// A template's status, category or quality changed.
fn template(old: Option<&Item>, new: &Item) -> Vec<DomainEvent> {
    let Some(key) = get_s(new, "template") else {
        return Vec::new();
    };
    let parts = ["status", "category", "quality"];
    let changed: Vec<&str> = parts
        .into_iter()
        .filter(|p| get_s(new, p).is_some() && old.and_then(|o| get_s(o, p)) != get_s(new, p))
        .collect();
    if changed.is_empty() {
        return Vec::new();
    }
    let at = changed
        .iter()
        .filter_map(|p| get_n(new, &format!("{p}_at")))
        .max()
        .unwrap_or(0);
    let was = |p: &str| old.map_or(Value::Null, |o| text(o, p));
    let identity: Vec<String> = changed
        .iter()
        .map(|p| {
            format!(
                "{p}={}@{}",
                get_s(new, p).unwrap_or(""),
                number(new, &format!("{p}_at"))
            )
        })
        .collect();
    let mut id_parts: Vec<&str> = vec![key];
    id_parts.extend(identity.iter().map(String::as_str));
    let mut events = vec![DomainEvent::new(
        TEMPLATE_CHANGED,
        &id_parts,
        at,
        json!({
            "template": key,
            "waba_id": text(new, "waba_id"),
            "name": text(new, "name"),
            "language": text(new, "language"),
            "changed": changed,
            "status": text(new, "status"),
            "previous_status": was("status"),
            "category": text(new, "category"),
            "previous_category": was("category"),
            "quality": text(new, "quality"),
            "previous_quality": was("quality"),
        }),
    )];
    if let (true, Some(quality)) = (changed.contains(&"quality"), get_s(new, "quality")) {
        let previous = old.and_then(|o| get_s(o, "quality"));
        let quality_at = get_n(new, "quality_at").unwrap_or(at);
        events.push(DomainEvent::new(
            QUALITY_CHANGED,
            &["template_quality", key, quality, &quality_at.to_string()],
            quality_at,
            json!({
                "signal": "template_quality",
                "drop": quality_drop(previous, quality),
                "template": key,
                "name": text(new, "name"),
                "language": text(new, "language"),
                "quality": quality,
                "previous_quality": previous,
            }),
        ));
    }
    events
}

/// `phone_number_quality_update`, kept raw in the events table.
fn number_quality(old: Option<&Item>, new: &Item) -> Vec<DomainEvent> {
    if old.is_some_and(|o| o.contains_key("kind")) {
        return Vec::new();
    }
    if get_s(new, "kind") != Some("field:phone_number_quality_update") {
        return Vec::new();
    }
    let Some(id) = get_s(new, "event_id") else {
        return Vec::new();
    };
    let raw: Value = get_s(new, "raw")
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(Value::Null);
    // The change's `value` (kept with or without its `field` wrapper).
    let value = raw.get("value").filter(|v| v.is_object()).unwrap_or(&raw);
    let event = value.get("event").and_then(Value::as_str);
    let at = get_n(new, "at")
        .or_else(|| get_n(new, "received_at"))
        .unwrap_or(0);
    vec![DomainEvent::new(
        QUALITY_CHANGED,
        &["phone_number_quality", id],
        at,
        json!({
            "signal": "phone_number_quality",
            "drop": event.is_some_and(|e| NUMBER_QUALITY_DROPS.iter().any(|d| d.eq_ignore_ascii_case(e))),
            "number": text(new, "number"),
            "waba_id": text(new, "waba_id"),
            "event": event,
            "display_phone_number": value.get("display_phone_number").and_then(Value::as_str),
            "messaging_limit": value
                .get("max_daily_conversations_per_business")
                .or_else(|| value.get("current_limit"))
                .and_then(Value::as_str),
        }),
    )]
}

#[cfg(test)]
mod tests;
