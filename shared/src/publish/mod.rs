//! The outbox's publisher: DynamoDB stream records in, domain events on the EventBridge bus out
//! (DESIGN rule 22; docs/events.md).
//!
//! The write is the outbox. The webhook and the sender only write their tables, as before; the
//! tables' streams hold every write for 24 h, and this publisher turns each into events. So a write
//! and its event cannot diverge: nothing is published that was not stored, and nothing stored goes
//! unpublished while the stream holds it, whatever the bus did at the time.
//!
//! - [`stream`]: the records, read into the store's item type;
//! - [`derive`]: the events of one record (pure);
//! - [`figures`]: the facts one record adds to the figures per template and day (pure), and which
//!   template a reply is credited to;
//! - this module: publishing a batch, retrying only what failed, counting the figures, skipping only
//!   what no retry fixes, and naming the first record not done, so Lambda retries from there
//!   (`ReportBatchItemFailures`) and, after 12 h of retries, sends the batch's coordinates to the
//!   DLQ.

pub mod derive;
pub mod figures;
pub mod stream;

use std::time::{Duration, Instant};

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::Value;

pub use derive::{DeriveRules, DomainEvent, EVENT_SOURCE, EVENT_TYPES};
pub use stream::{ChangeRecord, RecordError, SourceTable};

use crate::config::PublisherConfig;
use crate::domain::figures::{Fact, RateCard};
use crate::domain::ids::{ContactKey, PhoneNumberId, UserId};
use crate::store::attrs::{get_n, get_s, Item};
use crate::store::figures::Counted;
use crate::store::StoreError;
use crate::telemetry::{error_chain, Metrics};

/// PutEvents takes at most 10 entries and 256 KB per call.
const MAX_ENTRIES_PER_CALL: usize = 10;
const MAX_BYTES_PER_CALL: usize = 256 * 1024;
/// Tries per entry within one invocation; after that the record is left to Lambda's retries.
const ATTEMPTS: u32 = 3;

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub records: usize,
    pub published: usize,
    /// The first record not done (its events not all on the bus, its facts not all counted, or its
    /// table unknown to the configuration): Lambda resumes the shard from here. `Some(None)` names
    /// a record without a sequence number: the whole batch is then retried.
    pub failed_from: Option<Option<String>>,
    pub quality_drops: usize,
    /// Facts added to the figures (a fact counted before is not added again).
    pub facts_counted: usize,
}

/// A record as read: its events, or why it could not be read.
pub type ReadRecord = Result<ChangeRecord, (Option<String>, RecordError)>;

pub struct Publisher {
    bus: aws_sdk_eventbridge::Client,
    /// The figures table, the messages a reply is credited against, and the table names a stream
    /// record is placed by.
    store: crate::store::Store,
    rates: RateCard,
    bus_name: String,
    rules: DeriveRules,
    metrics: Metrics,
    /// How long one PutEvents may take: a call is not started with less than this left.
    call_budget: Duration,
}

impl Publisher {
    pub fn new(
        bus: aws_sdk_eventbridge::Client,
        dynamodb: aws_sdk_dynamodb::Client,
        config: &PublisherConfig,
        metrics: Metrics,
    ) -> Self {
        Self {
            bus,
            store: config.storage.store(dynamodb),
            rates: config.rate_card.clone(),
            bus_name: config.bus_name.clone(),
            rules: DeriveRules {
                handover: config.handover.clone(),
            },
            metrics,
            call_budget: config.deadlines.aws_operation,
        }
    }

    /// The Lambda function's clients, with the configured SDK timeouts.
    pub fn from_config(
        config: &PublisherConfig,
        sdk: &aws_config::SdkConfig,
        metrics: Metrics,
    ) -> Self {
        let sdk = config.deadlines.apply(sdk);
        Self::new(
            aws_sdk_eventbridge::Client::new(&sdk),
            aws_sdk_dynamodb::Client::new(&sdk),
            config,
            metrics,
        )
    }

    /// Reads the `Records` of Lambda's DynamoDB stream event, one by one.
    pub fn read_records(&self, records: &[Value]) -> Vec<ReadRecord> {
        records
            .iter()
            .map(|r| stream::read_lambda_record(r, self.store.tables()))
            .collect()
    }

    /// Publishes the events of a batch of records (in shard order), before `deadline`.
    pub async fn publish(
        &self,
        records: Vec<ReadRecord>,
        deadline: Option<Instant>,
    ) -> BatchOutcome {
        let mut outcome = BatchOutcome {
            records: records.len(),
            ..BatchOutcome::default()
        };
        // The events derived so far, in shard order.
        let mut pending: Vec<Outgoing> = Vec::new();
        // The first record that names a table we are not configured for: a configuration problem,
        // so the shard waits there until it is fixed.
        let mut blocked: Option<usize> = None;
        let mut skipped = 0u64;
        let mut sequences: Vec<Option<String>> = Vec::with_capacity(records.len());
        let mut readable: Vec<(usize, ChangeRecord)> = Vec::new();
        for (i, record) in records.into_iter().enumerate() {
            match record {
                Ok(r) => {
                    sequences.push(Some(r.sequence_number.clone()));
                    pending.extend(
                        derive::events_of(&r, &self.rules)
                            .into_iter()
                            .map(|e| Outgoing::new(i, e)),
                    );
                    readable.push((i, r));
                }
                Err((sequence, e @ RecordError::UnknownTable { .. })) => {
                    tracing::error!(
                        event = "stream_record_unplaced",
                        sequence = sequence.as_deref().unwrap_or("none"),
                        error = %e,
                        "a stream record names a table the publisher is not configured for; the shard waits here until the configuration is fixed"
                    );
                    sequences.push(sequence);
                    blocked.get_or_insert(i);
                }
                Err((sequence, e)) => {
                    // A record that cannot be read never will be: retrying it would hold up every
                    // record behind it for as long as the stream keeps them. Its item is still in
                    // its table; the log names its position for a replay.
                    tracing::error!(
                        event = "stream_record_skipped",
                        sequence = sequence.as_deref().unwrap_or("none"),
                        error = %e,
                        "a stream record could not be read and was skipped; its item is still in its table"
                    );
                    sequences.push(sequence);
                    skipped += 1;
                }
            }
        }
        if let Some(stop) = blocked {
            pending.retain(|o| o.record < stop);
            readable.retain(|(i, _)| *i < stop);
        }
        let mut rejected = 0u64;
        let mut attempt = 0;
        while !pending.is_empty() && attempt < ATTEMPTS {
            if attempt > 0 {
                crate::retry::backoff(attempt + 2).await;
            }
            attempt += 1;
            let mut still = Vec::new();
            let mut bus_down = false;
            for chunk in chunks(&pending) {
                // After a call that failed whole, or without time for another, the rest waits for
                // the next attempt (or Lambda's retry): no call after call into a bus that is down.
                if bus_down || !self.time_left(deadline) {
                    still.extend(chunk.iter().cloned());
                    continue;
                }
                let answer = self.put_events(chunk).await;
                bus_down = answer.call_failed;
                for (event, result) in chunk.iter().zip(answer.entries) {
                    match result {
                        Entry::Published => {
                            outcome.published += 1;
                            outcome.quality_drops += usize::from(event.event.is_quality_drop());
                        }
                        Entry::Retry => still.push(event.clone()),
                        Entry::Rejected => rejected += 1,
                    }
                }
            }
            pending = still;
        }
        // The figures, once the events are out (a figures problem never holds events back within
        // an invocation), record by record, a few in flight. A record whose facts could not all be
        // counted, or that no time was left for, is failed like one whose events are not out; on
        // the retry its facts are counted again (a fact counted before adds nothing).
        let work: Vec<_> = readable
            .iter()
            .map(|(i, r)| async move { (*i, self.count_figures(r, deadline).await) })
            .collect();
        let mut figures_failed: Option<usize> = None;
        let mut figures_not_counted = 0u64;
        let mut counted: Vec<Fact> = Vec::new();
        for (i, result) in crate::retry::bounded(work, 8).await {
            // What was counted before a stop still happened: its metrics go out now (on the
            // retry those facts are "counted before" and would never be emitted).
            counted.extend(result.counted);
            if let Some(stop) = result.stop {
                if let Stop::Store(e) = &stop {
                    tracing::error!(
                        event = "figures_not_counted",
                        sequence = sequences[i].as_deref().unwrap_or("none"),
                        error = %e,
                        "a record's facts could not be counted; Lambda retries from it"
                    );
                }
                figures_not_counted += 1;
                figures_failed = Some(figures_failed.map_or(i, |f| f.min(i)));
            }
        }
        outcome.facts_counted = counted.len();
        self.emit_figures(&counted);
        let first_unpublished = pending.iter().map(|o| o.record).min();
        let failed_at = [first_unpublished, blocked, figures_failed]
            .into_iter()
            .flatten()
            .min();
        outcome.failed_from = failed_at.map(|i| sequences[i].clone());
        if !pending.is_empty() {
            tracing::error!(
                event = "events_not_published",
                count = pending.len(),
                bus = %self.bus_name,
                resume_from = outcome.failed_from.clone().flatten().as_deref().unwrap_or("the batch's start"),
                "events could not be put on the bus; Lambda retries from the first record not fully published"
            );
        }
        self.metrics.emit(&[
            ("EventsPublished", outcome.published as u64),
            ("EventsNotPublished", pending.len() as u64),
            ("EventsRejected", rejected),
            ("RecordsSkipped", skipped),
            ("FiguresNotCounted", figures_not_counted),
            ("QualityDrops", outcome.quality_drops as u64),
        ]);
        outcome
    }

    /// Counts the facts one record adds to the figures, and the replies it makes or completes;
    /// answers the facts newly counted.
    async fn count_figures(&self, record: &ChangeRecord, deadline: Option<Instant>) -> Figures {
        let mut out = Figures::default();
        // Every call starts with an operation timeout left before the invocation's deadline.
        let time_left = || self.time_left(deadline);
        let mut facts = figures::facts_of(record, &self.rates);
        if let (SourceTable::Messages, Some(new)) = (record.table, &record.new) {
            let keys = timeline_keys(new);
            match get_s(new, "direction") {
                // A user's message, new: a reply to the template delivered last before it?
                Some("in") if record.old.is_none() => {
                    if let (Some(wamid), Some(at)) = (get_s(new, "wamid"), get_n(new, "at")) {
                        let window = (at - figures::TEMPLATE_LOOKBACK_SECS, at);
                        match self.timelines(&keys, window, &time_left).await {
                            Ok(candidates) => {
                                facts.extend(figures::replied_to(wamid, at, &candidates))
                            }
                            Err(stop) => return out.stopped(stop),
                        }
                    }
                }
                // A template that just became ours and delivered (in either order): the user's
                // messages after it may be replies to it, their own records read before this one.
                Some("out") => {
                    if let Some(d) = figures::became_reply_target(record.old.as_ref(), new) {
                        match self.replies_after(&keys, d, &time_left).await {
                            Ok(replied) => facts.extend(replied),
                            Err(stop) => return out.stopped(stop),
                        }
                    }
                }
                _ => {}
            }
        }
        for fact in facts {
            if !time_left() {
                return out.stopped(Stop::Deadline);
            }
            match self.store.count_fact(&fact).await {
                Ok(Counted::Added) => out.counted.push(fact),
                Ok(Counted::Before) => {}
                Err(e) => return out.stopped(Stop::Store(e)),
            }
        }
        out
    }

    /// The reply facts of the user's messages in the reply window after a template was delivered
    /// (at `delivered`) to the person on `keys`: each credited to the template delivered last
    /// before it, which may be this one or a later one.
    async fn replies_after(
        &self,
        keys: &[String],
        delivered: i64,
        time_left: &impl Fn() -> bool,
    ) -> Result<Vec<Fact>, Stop> {
        let window = (delivered, delivered + figures::REPLY_WINDOW_SECS);
        let later = self.timelines(keys, window, time_left).await?;
        let replies: Vec<(&str, i64, Vec<String>)> = later
            .iter()
            .filter(|m| get_s(m, "direction") == Some("in"))
            .filter_map(|m| Some((get_s(m, "wamid")?, get_n(m, "at")?, timeline_keys(m))))
            .collect();
        let (Some(first), Some(last)) = (
            replies.iter().map(|r| r.1).min(),
            replies.iter().map(|r| r.1).max(),
        ) else {
            return Ok(Vec::new());
        };
        // One read of every reply's timelines over all their lookbacks, not one per reply: a
        // chatty day has dozens of messages after a template.
        let mut reply_keys: Vec<String> = replies.iter().flat_map(|r| r.2.clone()).collect();
        reply_keys.sort();
        reply_keys.dedup();
        let window = (first - figures::TEMPLATE_LOOKBACK_SECS, last);
        let before = self.timelines(&reply_keys, window, time_left).await?;
        Ok(replies
            .iter()
            .filter_map(|(wamid, at, keys)| {
                figures::replied_to(wamid, *at, figures::reply_candidates(&before, keys, *at))
            })
            .collect())
    }

    /// The messages on each of the timelines `keys` with `at` in `window` (inclusive).
    async fn timelines(
        &self,
        keys: &[String],
        (from, to): (i64, i64),
        time_left: &impl Fn() -> bool,
    ) -> Result<Vec<Item>, Stop> {
        let mut out = Vec::new();
        for key in keys {
            if !time_left() {
                return Err(Stop::Deadline);
            }
            out.extend(
                self.store
                    .messages_between(key, from, to)
                    .await
                    .map_err(Stop::Store)?,
            );
        }
        Ok(out)
    }

    /// EMF metrics of the facts counted, per category and template (and, by the dimension sets'
    /// prefixes, per category and for the service alone).
    fn emit_figures(&self, facts: &[Fact]) {
        const NAMES: [(&str, &str); 5] = [
            ("sent", "Sent"),
            ("delivered", "Delivered"),
            ("read", "Read"),
            ("failed", "Failed"),
            ("replied", "Replied"),
        ];
        let mut groups: std::collections::BTreeMap<(&str, &str), [u64; 5]> = Default::default();
        for f in facts {
            let g = groups
                .entry((f.key.template.as_str(), f.key.category.as_str()))
                .or_default();
            for (name, _) in &f.counts {
                if let Some(slot) = NAMES.iter().position(|(n, _)| n == name) {
                    g[slot] += 1;
                }
            }
        }
        for ((template, category), c) in groups {
            let counts: Vec<(&str, u64)> = NAMES.iter().zip(c).map(|((_, m), v)| (*m, v)).collect();
            // Category before template: `[Service, Category]` is then a metric of its own, the
            // one the reply-rate alarm reads (marketing by default).
            self.metrics
                .emit_with(&[("Category", category), ("Template", template)], &counts);
        }
    }

    /// Whether a call started now ends before the invocation's deadline: one operation timeout.
    fn time_left(&self, deadline: Option<Instant>) -> bool {
        deadline.is_none_or(|d| Instant::now() + self.call_budget <= d)
    }

    /// One PutEvents call, and what became of each entry.
    async fn put_events(&self, chunk: &[Outgoing]) -> CallAnswer {
        let entries: Vec<PutEventsRequestEntry> = chunk.iter().map(|o| self.entry(o)).collect();
        match self
            .bus
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                let results = out.entries();
                let entries = chunk
                    .iter()
                    .enumerate()
                    .map(|(j, Outgoing { event: e, .. })| match results.get(j) {
                        Some(r) if r.event_id().is_some() => Entry::Published,
                        // An entry the answer does not cover is not known to be on the bus.
                        None => Entry::Retry,
                        Some(r) => {
                            let code = r.error_code().unwrap_or("");
                            let permanent = PERMANENT_ENTRY_ERRORS.contains(&code);
                            tracing::warn!(
                                event = if permanent { "event_rejected" } else { "event_entry_failed" },
                                detail_type = e.detail_type,
                                event_id = %e.event_id,
                                code,
                                "the bus refused one event ({})",
                                if permanent { "for good: it is dropped, its item is still in its table" } else { "it is tried again" }
                            );
                            if permanent {
                                Entry::Rejected
                            } else {
                                Entry::Retry
                            }
                        }
                    })
                    .collect();
                CallAnswer {
                    entries,
                    call_failed: false,
                }
            }
            Err(e) => {
                tracing::warn!(
                    event = "put_events_failed",
                    bus = %self.bus_name,
                    error = %error_chain(&e),
                    "PutEvents failed; its events are tried again"
                );
                CallAnswer {
                    entries: vec![Entry::Retry; chunk.len()],
                    call_failed: true,
                }
            }
        }
    }

    /// The envelope's `time` is left to EventBridge (the publish time), so an archive replay by
    /// time window finds events published late; the fact's time is `detail.at`.
    fn entry(&self, outgoing: &Outgoing) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(EVENT_SOURCE)
            .detail_type(outgoing.event.detail_type)
            .detail(&outgoing.body)
            .build()
    }
}

/// What counting one record's figures did: the facts newly counted, and why it stopped short.
#[derive(Default)]
struct Figures {
    counted: Vec<Fact>,
    stop: Option<Stop>,
}

impl Figures {
    fn stopped(mut self, stop: Stop) -> Self {
        self.stop = Some(stop);
        self
    }
}

enum Stop {
    Store(StoreError),
    /// No operation timeout left before the invocation's deadline: the rest on the retry.
    Deadline,
}

/// What PutEvents said of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Published,
    Retry,
    /// Refused for good (the entry itself is wrong): retrying would hold up the shard forever.
    Rejected,
}

struct CallAnswer {
    entries: Vec<Entry>,
    /// The call failed whole (the bus or the network): no more calls this attempt.
    call_failed: bool,
}

/// Entry error codes that no retry fixes. Throttling, internal failures and authorization (a
/// policy someone can fix) are retried.
const PERMANENT_ENTRY_ERRORS: &[&str] = &["MalformedDetail", "InvalidArgument"];

/// The timelines a message of this person may be on: its own `contact`, and the keys of each
/// identity it names (an inbound message is filed under the BSUID when it has one, a template
/// under the key the send resolved to, often the phone's).
fn timeline_keys(item: &Item) -> Vec<String> {
    let mut keys: Vec<String> = get_s(item, "contact")
        .map(str::to_owned)
        .into_iter()
        .collect();
    let number = get_s(item, "number").and_then(|n| PhoneNumberId::parse(n).ok());
    if let Some(number) = number {
        let ids = ["user_phone", "user_bsuid", "to"]
            .into_iter()
            .filter_map(|a| get_s(item, a))
            .map(|id| id.strip_prefix('+').unwrap_or(id));
        for id in ids {
            if let Ok(user) = UserId::parse(id) {
                keys.push(ContactKey::new(&number, &user).as_str().to_owned());
            }
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The detail as sent. An event too large for the bus loses its message text and referral
/// (flagged `text_omitted`), never the event: a consumer still learns the message arrived and can
/// read it from the table. Should even that be too large, only the ids and time remain.
fn detail_text(event: &DomainEvent) -> String {
    const LIMIT: usize = MAX_BYTES_PER_CALL - 1024;
    let text = event.detail.to_string();
    if text.len() <= LIMIT {
        return text;
    }
    let mut detail = event.detail.clone();
    if let Value::Object(m) = &mut detail {
        for big in ["text", "referral"] {
            m.remove(big);
        }
        m.insert("text_omitted".into(), Value::Bool(true));
    }
    let text = detail.to_string();
    if text.len() <= LIMIT {
        return text;
    }
    let keep = [
        "v",
        "event_id",
        "at",
        "wamid",
        "number",
        "contact",
        "type",
        "text_omitted",
    ];
    if let Value::Object(m) = &mut detail {
        m.retain(|k, _| keep.contains(&k.as_str()));
    }
    detail.to_string()
}

/// An event on its way: the record it comes from, and its detail as sent, serialized once
/// however many attempts it takes.
#[derive(Debug, Clone)]
struct Outgoing {
    record: usize,
    event: DomainEvent,
    body: String,
}

impl Outgoing {
    fn new(record: usize, event: DomainEvent) -> Self {
        let body = detail_text(&event);
        Self {
            record,
            event,
            body,
        }
    }

    /// Entry size as PutEvents counts it (source, detail-type, detail, and time).
    fn size(&self) -> usize {
        EVENT_SOURCE.len() + self.event.detail_type.len() + self.body.len() + 14
    }
}

/// Splits events into PutEvents calls: at most 10 entries and 256 KB each.
fn chunks(events: &[Outgoing]) -> Vec<&[Outgoing]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, o) in events.iter().enumerate() {
        let size = o.size();
        if i > start && (i - start == MAX_ENTRIES_PER_CALL || bytes + size > MAX_BYTES_PER_CALL) {
            out.push(&events[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < events.len() {
        out.push(&events[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(detail: Value) -> DomainEvent {
        DomainEvent {
            detail_type: derive::MESSAGE_RECEIVED,
            event_id: "x".into(),
            at: 1,
            detail,
        }
    }

    #[test]
    fn calls_hold_at_most_ten_entries_and_256_kb() {
        let small: Vec<Outgoing> = (0..23)
            .map(|i| Outgoing::new(i, event(json!({"a": i}))))
            .collect();
        let sizes: Vec<usize> = chunks(&small).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![10, 10, 3]);
        let big: Vec<Outgoing> = (0..5)
            .map(|i| Outgoing::new(i, event(json!({"text": "x".repeat(100_000)}))))
            .collect();
        let sizes: Vec<usize> = chunks(&big).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn an_event_too_large_for_the_bus_keeps_everything_but_its_text() {
        let e = event(json!({"wamid": "w", "text": "x".repeat(300_000)}));
        let sent: Value = serde_json::from_str(&detail_text(&e)).unwrap();
        assert_eq!(sent["wamid"], "w");
        assert_eq!(sent["text_omitted"], true);
        assert!(sent.get("text").is_none());
        let fits = event(json!({"text": "hola"}));
        assert_eq!(detail_text(&fits), fits.detail.to_string());
    }
}
