//! The send ledger in DynamoDB: one item per idempotency key (DESIGN rule 11). The states and the
//! rules of moving between them are `domain::ledger`'s; this module performs the conditional writes
//! they call for.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use super::attrs::{get_n, get_s, n, s, Item, UpdateBuilder};
use super::messages::OutboundSend;
use super::tables::{MESSAGES, SENDS};
use super::{condition_failed, Store, StoreError};
use crate::domain::ids::{ContactKey, Wamid};
use crate::domain::ledger::{ClaimToken, LedgerEntry, SendState};
use crate::domain::send_request::IdempotencyKey;
use crate::domain::time::UnixTime;

const KEY: &str = SENDS.partition_key.name;

/// The per-person marketing count lives in the sends table under `cap#{contact}`: `#` is never in an
/// idempotency key, so it cannot meet a producer's key.
const CAP_PREFIX: &str = "cap#";

fn cap_key(contact: &ContactKey) -> String {
    format!("{CAP_PREFIX}{}", contact.as_str())
}

impl Store {
    /// When each of `contacts` was last sent marketing templates (under the cap), by contact. One
    /// BatchGetItem per 100; a contact with none is absent.
    pub async fn marketing_sends(
        &self,
        contacts: &[ContactKey],
    ) -> Result<HashMap<ContactKey, Vec<UnixTime>>, StoreError> {
        let raw: Vec<String> = contacts.iter().map(cap_key).collect();
        let found = self.batch_get(&self.tables.sends, KEY, &raw).await?;
        Ok(contacts
            .iter()
            .filter_map(|c| {
                let item = found.get(&cap_key(c))?;
                let times = item
                    .get("sent_at")?
                    .as_l()
                    .ok()?
                    .iter()
                    .filter_map(|v| v.as_n().ok()?.parse().ok())
                    .map(UnixTime::from_secs)
                    .collect();
                Some((c.clone(), times))
            })
            .collect())
    }

    /// Keeps only `kept` of a contact's marketing count, unless a send appended to it since it was
    /// read as `read_len` long (then nothing changes; the next read tries again). `false` then.
    pub async fn prune_marketing_sends(
        &self,
        contact: &ContactKey,
        read_len: usize,
        kept: &[UnixTime],
    ) -> Result<bool, StoreError> {
        let mut u = UpdateBuilder::default();
        u.set(
            "sent_at",
            AttributeValue::L(kept.iter().map(|t| n(t.secs())).collect()),
        );
        let name = u.name_of("sent_at");
        u.values.insert(":read_len".into(), n(read_len as i64));
        let condition = format!("size({name}) = :read_len");
        self.update_send(&cap_key(contact), u, condition).await
    }

    /// Appends the send's time to its contact's marketing count, kept until `keep_until`.
    fn cap_count(&self, outbound: &OutboundSend<'_>, keep_until: UnixTime) -> Update {
        let mut u = UpdateBuilder::default();
        u.set("expires_at", n(keep_until.secs()));
        u.names.insert("#sent_at".into(), "sent_at".into());
        u.values
            .insert(":empty".into(), AttributeValue::L(Vec::new()));
        u.values.insert(
            ":this".into(),
            AttributeValue::L(vec![n(outbound.accepted_at.secs())]),
        );
        let expression = format!(
            "{}, #sent_at = list_append(if_not_exists(#sent_at, :empty), :this)",
            u.expression()
        );
        Update::builder()
            .table_name(&self.tables.sends)
            .key(KEY, s(cap_key(outbound.contact)))
            .update_expression(expression)
            .set_expression_attribute_names(Some(u.names))
            .set_expression_attribute_values(Some(u.values))
            .build()
            .expect("table, key and expression are set")
    }
}

/// Reads a ledger item; `None` if it is not one.
fn entry_from_item(item: &Item) -> Option<LedgerEntry> {
    Some(LedgerEntry {
        key: IdempotencyKey::parse(get_s(item, KEY)?).ok()?,
        state: SendState::parse(get_s(item, "state")?)?,
        fingerprint: get_s(item, "fingerprint").map(str::to_owned),
        claim_token: get_s(item, "claim_token").map(ClaimToken::new),
        lease_until: get_n(item, "lease_until").map(UnixTime::from_secs),
        unknown_since: get_n(item, "unknown_since").map(UnixTime::from_secs),
        resent: item
            .get("resent")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        attempts: get_n(item, "attempts").unwrap_or(0).max(0) as u32,
        wamid: get_s(item, "wamid").and_then(|w| Wamid::parse(w).ok()),
        reason: get_s(item, "reason").map(str::to_owned),
        dead_letter: get_s(item, "dead_letter").map(str::to_owned),
        updated_at: get_n(item, "updated_at").map(UnixTime::from_secs),
    })
}

/// What the ledger keeps about the request itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendSummary<'a> {
    pub fingerprint: &'a str,
    pub to: &'a str,
    pub from: &'a str,
    pub category: &'a str,
    pub kind: &'a str,
    pub template_name: Option<&'a str>,
    pub template_language: Option<&'a str>,
}

/// What an operator reads of one ledger entry (`scripts/dev.sh status KEY`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendView {
    pub state: String,
    pub reason: Option<String>,
    /// Meta's category when the registry knew it, else the producer's label.
    pub category: Option<String>,
    pub template_name: Option<String>,
    pub template_language: Option<String>,
    /// `marketing_messages` when it went through the Marketing Messages API.
    pub endpoint: Option<String>,
    /// `held_for_quality_assessment` when Meta paced it.
    pub pacing: Option<String>,
    pub wamid: Option<String>,
    pub error_code: Option<i64>,
}

/// The result of trying to claim a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours: call Meta, then record the outcome with this token.
    Claimed { token: ClaimToken },
    /// The key is already in the ledger.
    Existing(LedgerEntry),
}

/// How a claimed send ended, other than sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish<'a> {
    /// Meta refused: `failed`, or the gate outcome Meta's code means (`frequency_capped`…).
    Failed {
        state: SendState,
        code: Option<i64>,
        class: &'a str,
        message: &'a str,
    },
    /// Meta refused for now (or was unreachable): another attempt may claim it again.
    Retry { code: Option<i64>, message: &'a str },
    /// The account cannot send (Meta said so, or the breaker is open after it did): waits for a
    /// person to fix the account, then goes like a retry.
    Held { code: Option<i64>, message: &'a str },
    /// The request may have reached Meta: reconcile before any resend.
    Unknown { message: &'a str },
    /// Lost twice: give up, tell a human.
    OutcomeUnknown { message: &'a str },
    /// Decided without calling Meta after all (expired, suppressed, window closed on a retry).
    Decided { state: SendState, reason: &'a str },
}

fn new_token() -> ClaimToken {
    ClaimToken::new(uuid::Uuid::new_v4().simple().to_string())
}

impl Store {
    fn summary_item(
        &self,
        key: &IdempotencyKey,
        summary: &SendSummary<'_>,
        state: SendState,
        now: UnixTime,
    ) -> Item {
        let mut item: Item = HashMap::from([
            (KEY.to_owned(), s(key.as_str())),
            ("state".into(), s(state.as_str())),
            ("fingerprint".into(), s(summary.fingerprint)),
            ("to".into(), s(summary.to)),
            ("number".into(), s(summary.from)),
            ("category".into(), s(summary.category)),
            ("type".into(), s(summary.kind)),
            ("created_at".into(), n(now.secs())),
            ("updated_at".into(), n(now.secs())),
            (
                "expires_at".into(),
                n(now.secs().saturating_add(self.retention_secs)),
            ),
        ]);
        if let Some(t) = summary.template_name {
            item.insert("template_name".into(), s(t));
        }
        if let Some(l) = summary.template_language {
            item.insert("template_language".into(), s(l));
        }
        item
    }

    /// One ledger entry as an operator reads it; `None` if the key has none.
    pub async fn send_view(&self, key: &IdempotencyKey) -> Result<Option<SendView>, StoreError> {
        Ok(self.send_item(key).await?.map(|item| {
            let item = &item;
            let text = |name: &str| get_s(item, name).map(str::to_owned);
            SendView {
                state: text("state").unwrap_or_default(),
                reason: text("reason"),
                category: text("category"),
                template_name: text("template_name"),
                template_language: text("template_language"),
                endpoint: text("endpoint"),
                pacing: text("pacing"),
                wamid: text("wamid"),
                error_code: get_n(item, "error_code"),
            }
        }))
    }

    /// Reads one ledger item.
    pub async fn get_send(&self, key: &IdempotencyKey) -> Result<Option<LedgerEntry>, StoreError> {
        Ok(self
            .send_item(key)
            .await?
            .as_ref()
            .and_then(entry_from_item))
    }

    /// A key's ledger item as stored (strongly consistent).
    async fn send_item(&self, key: &IdempotencyKey) -> Result<Option<Item>, StoreError> {
        let mut found = self
            .batch_get(&self.tables.sends, KEY, &[key.as_str().to_owned()])
            .await?;
        Ok(found.remove(key.as_str()))
    }

    /// Records an outcome decided before any call (expired, suppressed, window closed, rejected), unless
    /// the key already has an entry, which is returned instead.
    pub async fn record_decided(
        &self,
        key: &IdempotencyKey,
        summary: &SendSummary<'_>,
        state: SendState,
        reason: &str,
        now: UnixTime,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        let mut item = self.summary_item(key, summary, state, now);
        item.insert("reason".into(), s(reason));
        item.insert("finished_at".into(), n(now.secs()));
        self.put_new_or_existing(key, item).await
    }

    /// Records that a request under `key` was refused as invalid (unless the key has an entry already),
    /// so a producer looking up its key learns why.
    pub async fn record_rejected(
        &self,
        key: &IdempotencyKey,
        reason: &str,
        now: UnixTime,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        let item: Item = HashMap::from([
            (KEY.to_owned(), s(key.as_str())),
            ("state".into(), s(SendState::Rejected.as_str())),
            ("reason".into(), s(reason)),
            ("created_at".into(), n(now.secs())),
            ("updated_at".into(), n(now.secs())),
            ("finished_at".into(), n(now.secs())),
            (
                "expires_at".into(),
                n(now.secs().saturating_add(self.retention_secs)),
            ),
        ]);
        self.put_new_or_existing(key, item).await
    }

    /// Claims a key for a Graph call, with a lease; returns the existing entry if the key is taken.
    pub async fn claim_send(
        &self,
        key: &IdempotencyKey,
        summary: &SendSummary<'_>,
        now: UnixTime,
        lease_secs: i64,
    ) -> Result<Claim, StoreError> {
        let token = new_token();
        let mut item = self.summary_item(key, summary, SendState::InFlight, now);
        item.insert("claim_token".into(), s(token.as_str()));
        item.insert("lease_until".into(), n(now.secs() + lease_secs));
        item.insert("attempts".into(), n(1));
        Ok(match self.put_new_or_existing(key, item).await? {
            None => Claim::Claimed { token },
            Some(existing) => Claim::Existing(existing),
        })
    }

    async fn put_new_or_existing(
        &self,
        key: &IdempotencyKey,
        item: Item,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        match self.put_new(&self.tables.sends, KEY, item).await? {
            None => Ok(None),
            Some(existing) => match entry_from_item(&existing) {
                Some(entry) => Ok(Some(entry)),
                // Not every emulator returns the old item: read it. If it still cannot be read, the
                // key is taken by something we do not understand: fail closed (the record comes back)
                // rather than report a claim nobody wrote.
                None => match self.get_send(key).await? {
                    Some(entry) => Ok(Some(entry)),
                    // Errors reach logs: the key is named by its hash (see IdempotencyKey::hashed).
                    None => Err(StoreError::Unreadable {
                        table: self.tables.sends.clone(),
                        key: format!("with key hash {}", key.hashed()),
                    }),
                },
            },
        }
    }

    /// Takes over an entry seen in `seen` (a retry, a held send, an expired lease, an unknown outcome
    /// after the wait, or a rejected request) for another call. A rejected entry gets the new
    /// request's `summary` (it never had one, or had the refused request's); the refusal stays
    /// readable as `rejected_reason`. `None` if someone else changed it first.
    pub async fn reclaim_send(
        &self,
        seen: &LedgerEntry,
        summary: &SendSummary<'_>,
        now: UnixTime,
        lease_secs: i64,
        resend_after_unknown: bool,
    ) -> Result<Option<ClaimToken>, StoreError> {
        let token = new_token();
        let mut u = UpdateBuilder::default();
        if seen.state == SendState::Rejected {
            u.set("fingerprint", s(summary.fingerprint))
                .set("to", s(summary.to))
                .set("number", s(summary.from))
                .set("category", s(summary.category))
                .set("type", s(summary.kind))
                .set_opt("template_name", summary.template_name.map(s))
                .set_opt("template_language", summary.template_language.map(s))
                .set(
                    "rejected_reason",
                    s(seen.reason.as_deref().unwrap_or("rejected")),
                )
                .set("reason", s("a valid request took over this rejected key"));
        }
        u.set("state", s(SendState::InFlight.as_str()))
            .set("claim_token", s(token.as_str()))
            .set("lease_until", n(now.secs() + lease_secs))
            .set("updated_at", n(now.secs()))
            .set("attempts", n(i64::from(seen.attempts) + 1));
        if resend_after_unknown {
            u.set("resent", AttributeValue::Bool(true));
        }
        let condition = self.seen_condition(&mut u, seen);
        let written = self.update_send(seen.key.as_str(), u, condition).await?;
        Ok(written.then_some(token))
    }

    /// Records how our claimed call ended (other than sent). `false` if the claim is no longer ours.
    pub async fn finish_send(
        &self,
        key: &IdempotencyKey,
        token: &ClaimToken,
        finish: &Finish<'_>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut u = UpdateBuilder::default();
        u.set("updated_at", n(now.secs()));
        match finish {
            Finish::Failed {
                state,
                code,
                class,
                message,
            } => {
                u.set("state", s(state.as_str()))
                    .set_opt("error_code", code.map(n))
                    .set("error_class", s(*class))
                    .set("reason", s(*message))
                    .set("finished_at", n(now.secs()));
            }
            Finish::Retry { code, message } => {
                u.set("state", s(SendState::Retry.as_str()))
                    .set_opt("error_code", code.map(n))
                    .set("reason", s(*message));
            }
            Finish::Held { code, message } => {
                u.set("state", s(SendState::Held.as_str()))
                    .set_opt("error_code", code.map(n))
                    .set("error_class", s("account"))
                    .set("reason", s(*message));
            }
            Finish::Unknown { message } => {
                u.set("state", s(SendState::Unknown.as_str()))
                    .set("unknown_since", n(now.secs()))
                    .set("reason", s(*message));
            }
            Finish::OutcomeUnknown { message } => {
                u.set("state", s(SendState::OutcomeUnknown.as_str()))
                    .set("reason", s(*message))
                    .set("finished_at", n(now.secs()));
            }
            Finish::Decided { state, reason } => {
                // An earlier attempt's Meta error is not this outcome's.
                u.set("state", s(state.as_str()))
                    .set("reason", s(*reason))
                    .set("finished_at", n(now.secs()))
                    .remove("error_code")
                    .remove("error_class");
            }
        }
        let condition = token_condition(&mut u, token);
        self.update_send(key.as_str(), u, condition).await
    }

    /// Notes on the entry that the sender dead-lettered its record (`code`, with the last error), if
    /// the entry is still waiting to be retried. The state is left as it is: a redrive from the DLQ
    /// is a new delivery under the same key, and goes through the ledger like any other.
    pub async fn note_dead_lettered(
        &self,
        key: &IdempotencyKey,
        code: &str,
        reason: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut u = UpdateBuilder::default();
        u.set("dead_letter", s(code))
            .set("dead_letter_reason", s(reason))
            .set("dead_lettered_at", n(now.secs()))
            .set("updated_at", n(now.secs()));
        u.names.insert("#waiting".into(), "state".into());
        u.values
            .insert(":w_retry".into(), s(SendState::Retry.as_str()));
        u.values
            .insert(":w_held".into(), s(SendState::Held.as_str()));
        u.values
            .insert(":w_unknown".into(), s(SendState::Unknown.as_str()));
        let condition = "#waiting IN (:w_retry, :w_held, :w_unknown)".to_owned();
        self.update_send(key.as_str(), u, condition).await
    }

    /// Marks our claimed send sent and records it on the message record, in one transaction. `false`
    /// if the claim is no longer ours (nothing is written then).
    pub async fn complete_send(
        &self,
        key: &IdempotencyKey,
        token: &ClaimToken,
        wamid: &Wamid,
        wa_id: Option<&str>,
        outbound: &OutboundSend<'_>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut u = UpdateBuilder::default();
        u.set("state", s(SendState::Sent.as_str()))
            .set("wamid", s(wamid.as_str()))
            .set_opt("wa_id", wa_id.map(s))
            .set_opt("pacing", outbound.pacing.map(s))
            .set_opt("endpoint", outbound.endpoint.map(s))
            .set("updated_at", n(now.secs()))
            .set("finished_at", n(now.secs()));
        let condition = token_condition(&mut u, token);
        let ledger = Update::builder()
            .table_name(&self.tables.sends)
            .key(KEY, s(key.as_str()))
            .update_expression(u.expression())
            .condition_expression(condition)
            .set_expression_attribute_names(Some(u.names))
            .set_expression_attribute_values(Some(u.values))
            .build()
            .expect("table, key and expression are set");
        let parts = self.outbound_update(outbound);
        let message = Update::builder()
            .table_name(&self.tables.messages)
            .key(MESSAGES.partition_key.name, s(wamid.as_str()))
            .update_expression(parts.expression)
            .set_expression_attribute_names(Some(parts.names))
            .set_expression_attribute_values(Some(parts.values))
            .build()
            .expect("table, key and expression are set");
        let mut items = vec![
            TransactWriteItem::builder().update(ledger).build(),
            TransactWriteItem::builder().update(message).build(),
        ];
        // A marketing send under the per-person cap is counted in the same transaction: it cannot
        // be sent and not counted.
        if let Some(keep_until) = outbound.counts_toward_cap {
            items.push(
                TransactWriteItem::builder()
                    .update(self.cap_count(outbound, keep_until))
                    .build(),
            );
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // Our condition failed: the claim is someone else's now.
            Err(e) if super::cancelled_by_condition(&e, None) => Ok(false),
            // A concurrent transaction touched the items (or DynamoDB faltered): the caller retries.
            Err(e) => Err(StoreError::dynamo(
                "TransactWriteItems",
                &self.tables.sends,
                e,
            )),
        }
    }

    /// The entry must still be exactly as seen: same state and same claim token.
    fn seen_condition(&self, u: &mut UpdateBuilder, seen: &LedgerEntry) -> String {
        u.names.insert("#seen_state".into(), "state".into());
        u.values
            .insert(":seen_state".into(), s(seen.state.as_str()));
        u.names.insert("#seen_token".into(), "claim_token".into());
        match &seen.claim_token {
            Some(t) => {
                u.values.insert(":seen_token".into(), s(t.as_str()));
                "#seen_state = :seen_state AND #seen_token = :seen_token".into()
            }
            None => "#seen_state = :seen_state AND attribute_not_exists(#seen_token)".into(),
        }
    }

    async fn update_send(
        &self,
        key: &str,
        u: UpdateBuilder,
        condition: String,
    ) -> Result<bool, StoreError> {
        let table = &self.tables.sends;
        let result = self
            .client
            .update_item()
            .table_name(table)
            .key(KEY, s(key))
            .update_expression(u.expression())
            .condition_expression(condition)
            .set_expression_attribute_names(Some(u.names))
            .set_expression_attribute_values(Some(u.values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::dynamo("UpdateItem", table, e)),
        }
    }
}

/// Only the holder of the claim may record its outcome.
fn token_condition(u: &mut UpdateBuilder, token: &ClaimToken) -> String {
    u.names.insert("#token".into(), "claim_token".into());
    u.names.insert("#state_now".into(), "state".into());
    u.values.insert(":token".into(), s(token.as_str()));
    u.values
        .insert(":in_flight".into(), s(SendState::InFlight.as_str()));
    "#token = :token AND #state_now = :in_flight".into()
}
