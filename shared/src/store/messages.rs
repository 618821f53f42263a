//! The messages table: inbound messages (put once, deduplicated on wamid) and the status side of our
//! outbound messages (a versioned read-join-write of the status log).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::attrs::{self, get_m, get_n, get_s, m, n, s, Item, UpdateBuilder};
use super::tables::{MESSAGES, MESSAGES_BY_IDEMPOTENCY_KEY};
use super::{versioned_outcome, PutOutcome, Store, StoreError, WriteOutcome};
use crate::domain::ids::{ContactKey, PhoneNumberId, UserRef, Wamid};
use crate::domain::inbound::{InboundMessage, MessageContent};
use crate::domain::media::MediaState;
use crate::domain::send_request::IdempotencyKey;
use crate::domain::status::{StatusLog, StatusObservation};
use crate::domain::time::UnixTime;

/// The status side of a stored message, as read for a merge.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredStatus {
    pub log: StatusLog<'static>,
    /// `None` when the message is not stored yet.
    pub version: Option<u64>,
    /// The sender recorded this send: its `at` stands, statuses do not move it.
    pub sent_by_us: bool,
}

/// What storing an inbound message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundPut {
    pub outcome: PutOutcome,
    /// Its media job has not been queued yet: queue it, then `mark_media_queued`.
    pub media_unqueued: bool,
}

/// The contact attribute of a message: the key of the identity the payload named (BSUID first). The
/// timeline of a contact reads this index for the contact's key and for its phone alias.
pub fn timeline_key(number: &PhoneNumberId, user: &UserRef) -> ContactKey {
    ContactKey::new(number, &user.primary())
}

impl Store {
    /// Stores an inbound message unless its wamid is already stored. A message with media is stored
    /// with `media_state = pending`; the answer says whether its media job still has to be queued
    /// (stored now, or stored earlier by a delivery that failed before queueing it).
    pub async fn put_inbound(
        &self,
        msg: &InboundMessage<'_>,
        now: UnixTime,
    ) -> Result<InboundPut, StoreError> {
        let table = &self.tables.messages;
        let at = msg.at.unwrap_or(now);
        let mut item: Item = HashMap::from([
            (
                MESSAGES.partition_key.name.to_owned(),
                s(msg.wamid.as_str()),
            ),
            ("direction".into(), s("in")),
            ("number".into(), s(msg.number.as_str())),
            ("at".into(), n(at.secs())),
            ("type".into(), s(msg.kind.as_ref())),
            ("raw".into(), s(msg.raw)),
            ("received_at".into(), n(now.secs())),
            (
                "expires_at".into(),
                n(at.secs().saturating_add(self.retention_secs)),
            ),
        ]);
        if let Some(user) = &msg.user {
            item.insert(
                "contact".into(),
                s(timeline_key(&msg.number, user).as_str()),
            );
            if let Some(p) = user.phone() {
                item.insert("user_phone".into(), s(p.digits()));
            }
            if let Some(b) = user.bsuid() {
                item.insert("user_bsuid".into(), s(b.as_str()));
            }
        }
        if msg.at.is_none() {
            item.insert("at_from_arrival".into(), AttributeValue::Bool(true));
        }
        if let Some(r) = &msg.reply_to {
            item.insert("reply_to".into(), s(r.as_str()));
        }
        // What a later step needs without re-reading the raw JSON: the media to download (within
        // 7 days) and the message a reaction points at.
        match &msg.content {
            MessageContent::Media {
                id,
                mime_type,
                sha256,
                ..
            } => {
                if let Some(id) = id {
                    item.insert("media_id".into(), s(id));
                    item.insert("media_state".into(), s(MediaState::Pending.as_str()));
                }
                if let Some(m) = mime_type {
                    item.insert("mime_type".into(), s(m));
                }
                if let Some(h) = sha256 {
                    item.insert("media_sha256".into(), s(h));
                }
            }
            MessageContent::Reaction {
                message_id: Some(target),
                ..
            } => {
                item.insert("reaction_to".into(), s(target.as_str()));
            }
            _ => {}
        }
        let has_media = item.contains_key("media_state");
        let earlier = self
            .put_new(table, MESSAGES.partition_key.name, item)
            .await?;
        let media_unqueued = |stored: Option<&str>| {
            has_media && stored.and_then(MediaState::parse) == Some(MediaState::Pending)
        };
        Ok(match earlier {
            None => InboundPut {
                outcome: PutOutcome::Created,
                media_unqueued: media_unqueued(Some(MediaState::Pending.as_str())),
            },
            Some(old) => InboundPut {
                outcome: PutOutcome::Duplicate,
                media_unqueued: media_unqueued(get_s(&old, "media_state")),
            },
        })
    }

    /// Reads the status logs of these messages (absent ones read as empty, version `None`). Their
    /// observations' facts are unread: call `StatusLog::read_facts` before merging and writing.
    pub async fn get_statuses(
        &self,
        wamids: &[Wamid],
    ) -> Result<HashMap<Wamid, StoredStatus>, StoreError> {
        let keys: Vec<String> = wamids.iter().map(|w| w.as_str().to_owned()).collect();
        let found = self
            .batch_get(&self.tables.messages, MESSAGES.partition_key.name, &keys)
            .await?;
        Ok(wamids
            .iter()
            .map(|w| {
                let stored = found
                    .get(w.as_str())
                    .map_or_else(StoredStatus::default, |item| StoredStatus {
                        log: status_log_from_item(item),
                        version: Some(attrs::version_of(item)),
                        sent_by_us: item.contains_key("accepted_at"),
                    });
                (w.clone(), stored)
            })
            .collect())
    }

    /// Writes a merged status log and what derives from it, if the stored version is still `expected`.
    /// Creates the message record when a status arrives before the sender recorded its send.
    pub async fn write_status(
        &self,
        wamid: &Wamid,
        number: &PhoneNumberId,
        log: &StatusLog<'_>,
        stored: &StoredStatus,
    ) -> Result<WriteOutcome, StoreError> {
        let table = &self.tables.messages;
        let mut u = UpdateBuilder::default();
        let events: Vec<(String, AttributeValue)> = log
            .events()
            .map(|(name, o)| {
                (
                    name.to_owned(),
                    m([
                        ("at".into(), n(o.at.secs())),
                        ("raw".into(), s(o.raw.as_ref())),
                    ]),
                )
            })
            .collect();
        u.set("status_events", m(events));
        if let Some((status, at)) = log.current() {
            u.set("status", s(status.as_str()))
                .set("status_at", n(at.secs()))
                .set("status_rank", n(i64::from(status.rank())));
        }
        if let Some(last) = log.last_at() {
            u.set(
                "expires_at",
                n(last.secs().saturating_add(self.retention_secs)),
            );
        }
        // `at` is the send's time once the sender recorded it; until then, the earliest status (a
        // function of the merged log, so the same whatever order statuses arrive in).
        if let (false, Some(first)) = (stored.sent_by_us, log.first_at()) {
            u.set("at", n(first.secs()));
        }
        u.set_once("direction", s("out"))
            .set_once("number", s(number.as_str()));
        // The facts of stored statuses are read by the caller (`inbound::apply`, with
        // `StatusLog::read_facts`): the store does not parse Meta's JSON.
        let summary = log.summary();
        // The sender's resolved contact wins; until it records the send, the recipient the statuses
        // name (BSUID first) places the message on a timeline.
        if let (false, Some(user)) = (stored.sent_by_us, &summary.recipient) {
            u.set("contact", s(timeline_key(number, user).as_str()));
        }
        // Who the statuses name, by each identity: a reply filed under the person's BSUID is found
        // from the template's side too (the publisher's reply credit reads these, as it reads an
        // inbound message's). A function of the merged log, so the same in any order.
        if let Some(user) = &summary.recipient {
            u.set_opt("user_phone", user.phone().map(|p| s(p.digits())))
                .set_opt("user_bsuid", user.bsuid().map(|b| s(b.as_str())));
        }
        if let Some(err) = &summary.error {
            u.set_opt("error_code", err.code.map(n))
                .set_opt("error_title", err.title.as_deref().map(s))
                .set_opt("error_message", err.message.as_deref().map(s))
                .set_opt("error_details", err.details.as_deref().map(s));
        }
        if let Some(p) = &summary.pricing {
            u.set_opt("pricing_category", p.category.as_deref().map(s))
                .set_opt("pricing_type", p.kind.as_deref().map(s))
                .set_opt("pricing_model", p.pricing_model.as_deref().map(s))
                .set_opt("billable", p.billable.map(AttributeValue::Bool));
        }
        // Our callback marker names the send: the sender finds this message by it after a lost answer.
        if let Some(key) = summary
            .callback_data
            .as_deref()
            .and_then(IdempotencyKey::from_callback)
        {
            u.set_once("idempotency_key", s(key.as_str()));
        }
        u.set_opt("conversation_id", summary.conversation_id.as_deref().map(s))
            .set_opt(
                "conversation_origin",
                summary.conversation_origin.as_deref().map(s),
            )
            .set_opt("callback_data", summary.callback_data.as_deref().map(s));
        let condition = u.versioned(stored.version);

        let result = self
            .client
            .update_item()
            .table_name(table)
            .key(MESSAGES.partition_key.name, s(wamid.as_str()))
            .update_expression(u.expression())
            .condition_expression(condition)
            .set_expression_attribute_names(Some(u.names))
            .set_expression_attribute_values(Some(u.values))
            .send()
            .await;
        versioned_outcome(result, "UpdateItem", table)
    }
}

/// What the sender records when Meta accepts a send (the 200 with a wamid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSend<'a> {
    pub wamid: &'a Wamid,
    pub number: &'a PhoneNumberId,
    /// The contact the send resolved to (its home key).
    pub contact: &'a ContactKey,
    /// The recipient as sent (phone digits or BSUID).
    pub to: &'a str,
    pub category: &'a str,
    /// `template` or `text`.
    pub kind: &'a str,
    pub template_name: Option<&'a str>,
    pub template_language: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    pub callback_data: Option<&'a str>,
    /// Our clock when Meta accepted the send.
    pub accepted_at: UnixTime,
    /// A marketing send under the per-person cap: counted, and the count kept until then.
    pub counts_toward_cap: Option<UnixTime>,
    /// Meta's `message_status` when it is not plain `accepted`: `held_for_quality_assessment`
    /// (template or portfolio pacing: Meta holds the message and may drop it, failing with 135000).
    pub pacing: Option<&'a str>,
    /// `marketing_messages` when it went through the Marketing Messages API.
    pub endpoint: Option<&'a str>,
}

/// An update expression with its placeholders, to run alone or inside a transaction.
pub struct UpdateParts {
    pub expression: String,
    pub names: std::collections::HashMap<String, String>,
    pub values: std::collections::HashMap<String, AttributeValue>,
}

impl Store {
    /// The update that records an accepted send on the message record. It touches only the send's own
    /// attributes and bumps the version, so it merges with statuses written before or after it: either
    /// order ends in the same item (the send's `at` and contact win; the expiry follows the latest
    /// status).
    pub fn outbound_update(&self, send: &OutboundSend<'_>) -> UpdateParts {
        let mut u = UpdateBuilder::default();
        u.set("direction", s("out"))
            .set("number", s(send.number.as_str()))
            .set("contact", s(send.contact.as_str()))
            .set("at", n(send.accepted_at.secs()))
            .set("accepted_at", n(send.accepted_at.secs()))
            .set("to", s(send.to))
            .set("category", s(send.category))
            .set("type", s(send.kind))
            .set_opt("template_name", send.template_name.map(s))
            .set_opt("template_language", send.template_language.map(s))
            .set_opt("idempotency_key", send.idempotency_key.map(s))
            .set_opt("send_callback_data", send.callback_data.map(s))
            .set_opt("pacing", send.pacing.map(s))
            .set_opt("endpoint", send.endpoint.map(s))
            .set_once(
                "expires_at",
                n(send.accepted_at.secs().saturating_add(self.retention_secs)),
            );
        let expression = format!("{} ADD #version :one", u.expression());
        u.names.insert("#version".into(), "version".into());
        u.values.insert(":one".into(), n(1));
        UpdateParts {
            expression,
            names: u.names,
            values: u.values,
        }
    }

    /// Records an accepted send on its message record (see [`Store::outbound_update`]).
    pub async fn record_outbound(&self, send: &OutboundSend<'_>) -> Result<(), StoreError> {
        let table = &self.tables.messages;
        let parts = self.outbound_update(send);
        self.client
            .update_item()
            .table_name(table)
            .key(MESSAGES.partition_key.name, s(send.wamid.as_str()))
            .update_expression(parts.expression)
            .set_expression_attribute_names(Some(parts.names))
            .set_expression_attribute_values(Some(parts.values))
            .send()
            .await
            .map_err(|e| StoreError::dynamo("UpdateItem", table, e))?;
        Ok(())
    }

    /// The message a send under `key` became, if any status or send record names it: how a send whose
    /// answer was lost is found to have reached Meta. The index is eventually consistent, which the
    /// caller's wait before resending covers.
    pub async fn find_by_idempotency_key(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<(Wamid, Option<String>)>, StoreError> {
        let table = &self.tables.messages;
        let out = self
            .client
            .query()
            .table_name(table)
            .index_name(MESSAGES_BY_IDEMPOTENCY_KEY.name)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", MESSAGES_BY_IDEMPOTENCY_KEY.partition_key.name)
            .expression_attribute_values(":k", s(key.as_str()))
            .limit(1)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("Query", table, e))?;
        Ok(out.items().first().and_then(|item| {
            let wamid =
                get_s(item, MESSAGES.partition_key.name).and_then(|w| Wamid::parse(w).ok())?;
            Some((wamid, get_s(item, "status").map(str::to_owned)))
        }))
    }
}

/// One line of a contact's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    pub wamid: String,
    pub at: UnixTime,
    /// `in` or `out`.
    pub direction: String,
    pub kind: String,
    /// For inbound messages: the exact JSON Meta sent (`payload::MessageContent::parse` reads it).
    pub raw: Option<String>,
    /// For outbound messages.
    pub status: Option<String>,
    pub template_name: Option<String>,
    pub category: Option<String>,
    pub error_code: Option<i64>,
    pub idempotency_key: Option<String>,
    /// Meta's pacing (`held_for_quality_assessment`) and the Marketing Messages API, when so.
    pub pacing: Option<String>,
    pub endpoint: Option<String>,
    /// For inbound media: where it stands (`domain::media::MediaState`), and where the file is
    /// (`s3://bucket/key`) or why it is not.
    pub media_state: Option<String>,
    pub media_where: Option<String>,
}

impl Store {
    /// Every message on the timelines of these contact keys (a person's key and their phone alias),
    /// oldest first.
    pub async fn timeline(&self, keys: &[ContactKey]) -> Result<Vec<TimelineEntry>, StoreError> {
        let table = &self.tables.messages;
        let mut entries = Vec::new();
        for key in keys {
            let mut start = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(table)
                    .index_name(super::tables::MESSAGES_BY_CONTACT.name)
                    .key_condition_expression("#c = :c")
                    .expression_attribute_names("#c", "contact")
                    .expression_attribute_values(":c", s(key.as_str()))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("Query", table, e))?;
                entries.extend(out.items().iter().map(timeline_entry));
                start = out.last_evaluated_key().cloned();
                if start.is_none() {
                    break;
                }
            }
        }
        entries.sort_by(|a, b| (a.at, &a.wamid).cmp(&(b.at, &b.wamid)));
        entries.dedup_by(|a, b| a.wamid == b.wamid);
        Ok(entries)
    }
}

fn timeline_entry(item: &Item) -> TimelineEntry {
    let kind = get_s(item, "type").unwrap_or("unknown").to_owned();
    let direction = get_s(item, "direction").unwrap_or("in").to_owned();
    let raw = (direction == "in")
        .then(|| get_s(item, "raw").map(str::to_owned))
        .flatten();
    TimelineEntry {
        wamid: get_s(item, MESSAGES.partition_key.name)
            .unwrap_or_default()
            .to_owned(),
        at: UnixTime::from_secs(get_n(item, "at").unwrap_or(0)),
        direction,
        kind,
        raw,
        status: get_s(item, "status").map(str::to_owned),
        template_name: get_s(item, "template_name").map(str::to_owned),
        category: get_s(item, "category").map(str::to_owned),
        error_code: get_n(item, "error_code"),
        idempotency_key: get_s(item, "idempotency_key").map(str::to_owned),
        pacing: get_s(item, "pacing").map(str::to_owned),
        endpoint: get_s(item, "endpoint").map(str::to_owned),
        media_state: get_s(item, "media_state").map(str::to_owned),
        media_where: match (get_s(item, "media_bucket"), get_s(item, "media_key")) {
            (Some(b), Some(k)) => Some(format!("s3://{b}/{k}")),
            _ => get_s(item, "media_problem").map(str::to_owned),
        },
    }
}

/// Reads `status_events` back into a log; malformed entries are skipped (they will be rewritten from
/// the next delivery of that status).
pub fn status_log_from_item(item: &Item) -> StatusLog<'static> {
    let mut events = Vec::new();
    if let Some(map) = get_m(item, "status_events") {
        for (name, v) in map {
            let Ok(entry) = v.as_m() else { continue };
            if let (Some(at), Some(raw)) = (get_n(entry, "at"), get_s(entry, "raw")) {
                events.push((
                    name.clone(),
                    StatusObservation {
                        at: UnixTime::from_secs(at),
                        raw: raw.to_owned().into(),
                        // Read by the caller: the store does not parse Meta's JSON.
                        facts: None,
                    },
                ));
            }
        }
    }
    StatusLog::from_events(events)
}
