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
//! - this module: publishing a batch, retrying only what failed, and naming the first record not
//!   fully published, so Lambda retries from there (`ReportBatchItemFailures`) and, after its
//!   retries, sends the batch's coordinates to the DLQ.

pub mod derive;
pub mod stream;

use std::time::{Duration, Instant};

use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::Value;

pub use derive::{DeriveRules, DomainEvent, EVENT_SOURCE, EVENT_TYPES};
pub use stream::{ChangeRecord, RecordError, SourceTable};

use crate::config::PublisherConfig;
use crate::store::tables::TableNames;
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
    /// The first record whose events are not all on the bus (or that could not be read): Lambda
    /// resumes the shard from here. `Some(None)` names a record without a sequence number: the
    /// whole batch is then retried.
    pub failed_from: Option<Option<String>>,
    pub quality_drops: usize,
}

/// A record as read: its events, or why it could not be read.
pub type ReadRecord = Result<ChangeRecord, (Option<String>, RecordError)>;

pub struct Publisher {
    bus: aws_sdk_eventbridge::Client,
    bus_name: String,
    tables: TableNames,
    rules: DeriveRules,
    metrics: Metrics,
    /// How long one PutEvents may take: a call is not started with less than this left.
    call_budget: Duration,
}

impl Publisher {
    pub fn new(
        bus: aws_sdk_eventbridge::Client,
        config: &PublisherConfig,
        metrics: Metrics,
    ) -> Self {
        Self {
            bus,
            bus_name: config.bus_name.clone(),
            tables: config.storage.tables.clone(),
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
        Self::new(aws_sdk_eventbridge::Client::new(&sdk), config, metrics)
    }

    /// Reads the `Records` of Lambda's DynamoDB stream event, one by one.
    pub fn read_records(&self, records: &[Value]) -> Vec<ReadRecord> {
        records
            .iter()
            .map(|r| stream::read_lambda_record(r, &self.tables))
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
        // (record index, event) in shard order.
        let mut pending: Vec<(usize, DomainEvent)> = Vec::new();
        let mut unreadable: Option<usize> = None;
        let mut sequences: Vec<Option<String>> = Vec::with_capacity(records.len());
        for (i, record) in records.into_iter().enumerate() {
            match record {
                Ok(r) => {
                    sequences.push(Some(r.sequence_number.clone()));
                    pending.extend(
                        derive::events_of(&r, &self.rules)
                            .into_iter()
                            .map(|e| (i, e)),
                    );
                }
                Err((sequence, e)) => {
                    tracing::error!(
                        event = "stream_record_unreadable",
                        sequence = sequence.as_deref().unwrap_or("none"),
                        error = %e,
                        "a stream record could not be read; the batch stops here and Lambda retries it, then sends its coordinates to the publisher's DLQ"
                    );
                    sequences.push(sequence);
                    unreadable.get_or_insert(i);
                }
            }
        }
        // Nothing after an unreadable record is published: its position is where the shard resumes.
        if let Some(stop) = unreadable {
            pending.retain(|(i, _)| *i < stop);
        }
        outcome.quality_drops = pending.iter().filter(|(_, e)| e.is_quality_drop()).count();
        let mut attempt = 0;
        while !pending.is_empty() && attempt < ATTEMPTS {
            if attempt > 0 {
                crate::retry::backoff(attempt + 2).await;
            }
            attempt += 1;
            let mut still = Vec::new();
            for chunk in chunks(&pending) {
                if deadline.is_some_and(|d| Instant::now() + self.call_budget > d) {
                    still.extend(chunk.iter().cloned());
                    continue;
                }
                let failed = self.put_events(chunk).await;
                outcome.published += chunk.len() - failed.len();
                still.extend(failed);
            }
            pending = still;
        }
        let first_unpublished = pending.iter().map(|(i, _)| *i).min();
        let failed_at = match (first_unpublished, unreadable) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        outcome.failed_from = failed_at.map(|i| sequences[i].clone());
        if !pending.is_empty() {
            tracing::error!(
                event = "events_not_published",
                count = pending.len(),
                bus = %self.bus_name,
                "events could not be put on the bus; Lambda retries from the first record not fully published"
            );
        }
        self.metrics.emit(&[
            ("EventsPublished", outcome.published as u64),
            ("EventsNotPublished", pending.len() as u64),
            ("QualityDrops", outcome.quality_drops as u64),
        ]);
        outcome
    }

    /// One PutEvents call; answers the entries that are not on the bus.
    async fn put_events(&self, chunk: &[(usize, DomainEvent)]) -> Vec<(usize, DomainEvent)> {
        let entries: Vec<PutEventsRequestEntry> =
            chunk.iter().map(|(_, e)| self.entry(e)).collect();
        match self
            .bus
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) if out.failed_entry_count() == 0 => Vec::new(),
            Ok(out) => {
                let results = out.entries();
                chunk
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| {
                        // An entry the answer does not cover is not known to be on the bus.
                        results.get(*j).is_none_or(|r| r.event_id().is_none())
                    })
                    .map(|(j, e)| {
                        if let Some(r) = results.get(j) {
                            tracing::warn!(
                                event = "event_entry_failed",
                                detail_type = e.1.detail_type,
                                event_id = %e.1.event_id,
                                code = r.error_code().unwrap_or(""),
                                message = r.error_message().unwrap_or(""),
                                "the bus refused one event; it is tried again"
                            );
                        }
                        e.clone()
                    })
                    .collect()
            }
            Err(e) => {
                tracing::warn!(
                    event = "put_events_failed",
                    bus = %self.bus_name,
                    error = %error_chain(&e),
                    "PutEvents failed; its events are tried again"
                );
                chunk.to_vec()
            }
        }
    }

    fn entry(&self, event: &DomainEvent) -> PutEventsRequestEntry {
        let mut entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(EVENT_SOURCE)
            .detail_type(event.detail_type)
            .detail(detail_text(event));
        if event.at > 0 {
            entry = entry.time(DateTime::from_secs(event.at));
        }
        entry.build()
    }
}

/// The detail as sent. An event too large for the bus loses its message text (flagged
/// `text_omitted`), never the event: a consumer still learns the message arrived and can read it
/// from the table.
fn detail_text(event: &DomainEvent) -> String {
    let text = event.detail.to_string();
    if text.len() <= MAX_BYTES_PER_CALL - 1024 {
        return text;
    }
    let mut detail = event.detail.clone();
    if let Value::Object(m) = &mut detail {
        for big in ["text", "referral"] {
            m.remove(big);
        }
        m.insert("text_omitted".into(), Value::Bool(true));
    }
    detail.to_string()
}

/// Entry size as PutEvents counts it (source, detail-type, detail, and time).
fn entry_size(event: &DomainEvent) -> usize {
    EVENT_SOURCE.len() + event.detail_type.len() + detail_text(event).len() + 14
}

/// Splits events into PutEvents calls: at most 10 entries and 256 KB each.
fn chunks(events: &[(usize, DomainEvent)]) -> Vec<&[(usize, DomainEvent)]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, (_, e)) in events.iter().enumerate() {
        let size = entry_size(e);
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
        let small: Vec<(usize, DomainEvent)> =
            (0..23).map(|i| (i, event(json!({"a": i})))).collect();
        let sizes: Vec<usize> = chunks(&small).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![10, 10, 3]);
        let big: Vec<(usize, DomainEvent)> = (0..5)
            .map(|i| (i, event(json!({"text": "x".repeat(100_000)}))))
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
