//! The events table: authentic deliveries (or parts of them) that are not messages or statuses, kept
//! raw. The key is a hash of the kind and the bytes, so a redelivery finds the item already there.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::attrs::{b, n, s, Item};
use super::tables::EVENTS;
use super::{PutOutcome, Store, StoreError};
use crate::domain::inbound::RawEvent;
use crate::domain::time::UnixTime;

/// DynamoDB items are limited to 400 KB; a raw event larger than this is split into parts.
pub const MAX_PART_BYTES: usize = 350_000;

/// The id of an event: hex SHA-256 of its kind and raw bytes.
pub fn event_id(event: &RawEvent<'_>) -> String {
    let mut h = Sha256::new();
    h.update(event.kind.to_string().as_bytes());
    h.update(b"\n");
    h.update(event.raw);
    hex::encode(h.finalize())
}

impl Store {
    /// Stores the event unless already stored. A large one is stored as parts `{id}#1…` first and the
    /// head item `{id}` (with the part count) last, so a head that exists is always complete.
    pub async fn put_event(
        &self,
        event: &RawEvent<'_>,
        now: UnixTime,
    ) -> Result<PutOutcome, StoreError> {
        let id = event_id(event);
        let expires_at = event
            .at
            .unwrap_or(now)
            .secs()
            .saturating_add(self.retention_secs);
        let parts: Vec<&[u8]> = if event.raw.is_empty() {
            vec![event.raw]
        } else {
            event.raw.chunks(MAX_PART_BYTES).collect()
        };
        for (i, part) in parts.iter().enumerate().skip(1) {
            let item: Item = HashMap::from([
                (EVENTS.partition_key.name.to_owned(), s(format!("{id}#{i}"))),
                ("part_of".into(), s(&id)),
                ("raw_part".into(), b(part)),
                ("expires_at".into(), n(expires_at)),
            ]);
            self.put_if_absent(&self.tables.events, EVENTS.partition_key.name, item)
                .await?;
        }
        let mut head: Item = HashMap::from([
            (EVENTS.partition_key.name.to_owned(), s(&id)),
            ("kind".into(), s(event.kind.to_string())),
            ("received_at".into(), n(now.secs())),
            ("expires_at".into(), n(expires_at)),
            ("size".into(), n(event.raw.len() as i64)),
        ]);
        // Text when it is text (readable in the console); bytes otherwise. Parts are always bytes, as a
        // cut may fall inside a UTF-8 sequence.
        let first = parts[0];
        match (parts.len(), std::str::from_utf8(first)) {
            (1, Ok(text)) => head.insert("raw".into(), s(text)),
            _ => head.insert("raw_bytes".into(), b(first)),
        };
        if parts.len() > 1 {
            head.insert("parts".into(), n(parts.len() as i64));
        }
        if let Some(number) = &event.number {
            head.insert("number".into(), s(number.as_str()));
        }
        if let Some(waba) = &event.waba_id {
            head.insert("waba_id".into(), s(waba));
        }
        if let Some(reason) = &event.reason {
            head.insert("reason".into(), s(reason));
        }
        if let Some(at) = event.at {
            head.insert("at".into(), n(at.secs()));
        }
        self.put_if_absent(&self.tables.events, EVENTS.partition_key.name, head)
            .await
    }

    /// Reads an event's raw bytes back, joining its parts. For tools and tests.
    pub async fn get_event_raw(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let table = &self.tables.events;
        let key = EVENTS.partition_key.name;
        let head = self.batch_get(table, key, &[id.to_owned()]).await?;
        let Some(head) = head.get(id) else {
            return Ok(None);
        };
        let mut raw = match (head.get("raw"), head.get("raw_bytes")) {
            (Some(v), _) => v.as_s().map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
            (_, Some(v)) => v.as_b().map(|b| b.as_ref().to_vec()).unwrap_or_default(),
            _ => Vec::new(),
        };
        let parts = super::attrs::get_n(head, "parts").unwrap_or(1);
        let part_ids: Vec<String> = (1..parts).map(|i| format!("{id}#{i}")).collect();
        let found = self.batch_get(table, key, &part_ids).await?;
        for pid in &part_ids {
            let bytes = found
                .get(pid)
                .and_then(|p| p.get("raw_part"))
                .and_then(|v| v.as_b().ok())
                .map(|b| b.as_ref().to_vec());
            match bytes {
                Some(bytes) => raw.extend(bytes),
                None => return Ok(None),
            }
        }
        Ok(Some(raw))
    }
}
