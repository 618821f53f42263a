//! Applies a [`Plan`] to DynamoDB. Returns only when every write is durable; any failure is an error,
//! and since every write is idempotent, Meta's redelivery of the whole body repairs a partial apply.

use std::collections::HashMap;

use super::plan::{ContactUpdate, Plan, StatusUpdate};
use crate::domain::identity::ContactSnapshot;
use crate::domain::ids::{ContactKey, Wamid};
use crate::domain::time::UnixTime;
use crate::payload::status_facts;
use crate::retry::{try_bounded, Rounds, MAX_ATTEMPTS};
use crate::store::messages::StoredStatus;
use crate::store::templates::RegistryWrite;
use crate::store::{PutOutcome, Store, StoreError, WriteOutcome};

/// What applying a plan did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyReport {
    pub messages_stored: usize,
    pub messages_duplicate: usize,
    pub statuses_written: usize,
    pub statuses_unchanged: usize,
    pub contacts_written: usize,
    pub contacts_unchanged: usize,
    /// Number or BSUID changes carried out.
    pub contacts_moved: usize,
    pub events_stored: usize,
    pub events_duplicate: usize,
    /// Versioned writes that lost a race and were retried.
    pub conflicts: usize,
    /// Template registry updates written, and those the registry already knew something newer than.
    pub templates_written: usize,
    pub templates_older: usize,
    /// Template updates dated in the future (beyond the allowed skew): stored raw only.
    pub templates_future: usize,
}

/// How far ahead of our clock a template webhook's `time` may be and still move the registry.
pub const MAX_TEMPLATE_CLOCK_SKEW_SECS: i64 = 300;

impl ApplyReport {
    fn add(mut self, o: ApplyReport) -> Self {
        self.messages_stored += o.messages_stored;
        self.messages_duplicate += o.messages_duplicate;
        self.statuses_written += o.statuses_written;
        self.statuses_unchanged += o.statuses_unchanged;
        self.contacts_written += o.contacts_written;
        self.contacts_unchanged += o.contacts_unchanged;
        self.contacts_moved += o.contacts_moved;
        self.events_stored += o.events_stored;
        self.events_duplicate += o.events_duplicate;
        self.conflicts += o.conflicts;
        self.templates_written += o.templates_written;
        self.templates_older += o.templates_older;
        self.templates_future += o.templates_future;
        self
    }
}

/// Writes plans through a [`Store`], with at most `concurrency` requests in flight per kind of write.
/// What `apply` wrote, and the stored messages whose media job is still to be queued (the caller
/// queues them, then marks them queued, before answering Meta).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    pub report: ApplyReport,
    pub media_unqueued: Vec<Wamid>,
}

#[derive(Debug, Clone)]
pub struct InboundWriter {
    store: Store,
    concurrency: usize,
}

impl InboundWriter {
    pub fn new(store: Store, concurrency: usize) -> Self {
        Self {
            store,
            concurrency: concurrency.max(1),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// How many writes one delivery may have in flight.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    pub async fn apply(&self, plan: &Plan<'_>, now: UnixTime) -> Result<Applied, StoreError> {
        let (events, (messages, media_unqueued), statuses, contacts, templates) = tokio::try_join!(
            self.events(plan, now),
            self.messages(plan, now),
            self.statuses(&plan.statuses),
            self.contacts(&plan.contacts),
            self.templates(plan, now),
        )?;
        // After the deltas: a move carries what this delivery taught about the person too.
        let mut moved = ApplyReport::default();
        for m in &plan.moves {
            moved.contacts_moved += usize::from(self.store.move_identity(m).await?);
        }
        let report = events
            .add(messages)
            .add(statuses)
            .add(contacts)
            .add(templates)
            .add(moved);
        Ok(Applied {
            report,
            media_unqueued,
        })
    }

    /// One conditional write per template update, in the delivery's order: each part moves only to
    /// something newer by Meta's time, so the order of writes does not change the end state.
    ///
    /// A time more than [`MAX_TEMPLATE_CLOCK_SKEW_SECS`] ahead is not written: nothing later could
    /// ever overwrite it, so one odd event would pin the template for good.
    async fn templates(&self, plan: &Plan<'_>, now: UnixTime) -> Result<ApplyReport, StoreError> {
        let mut report = ApplyReport::default();
        let writes = plan
            .templates
            .iter()
            .filter(|u| {
                let ahead = u.at.secs() > now.secs() + MAX_TEMPLATE_CLOCK_SKEW_SECS;
                report.templates_future += usize::from(ahead);
                !ahead
            })
            .map(|u| self.store.apply_template_update(u, now))
            .collect();
        for written in try_bounded(writes, self.concurrency).await? {
            match written {
                RegistryWrite::Applied => report.templates_written += 1,
                RegistryWrite::Older => report.templates_older += 1,
            }
        }
        Ok(report)
    }

    async fn events(&self, plan: &Plan<'_>, now: UnixTime) -> Result<ApplyReport, StoreError> {
        let puts = plan
            .events
            .iter()
            .map(|e| self.store.put_event(e, now))
            .collect();
        let (stored, duplicate) =
            created_and_duplicate(&try_bounded(puts, self.concurrency).await?);
        Ok(ApplyReport {
            events_stored: stored,
            events_duplicate: duplicate,
            ..ApplyReport::default()
        })
    }

    async fn messages(
        &self,
        plan: &Plan<'_>,
        now: UnixTime,
    ) -> Result<(ApplyReport, Vec<Wamid>), StoreError> {
        let puts = plan
            .messages
            .iter()
            .map(|m| async move {
                let put = self.store.put_inbound(m, now).await?;
                Ok::<_, StoreError>((put, &m.wamid))
            })
            .collect();
        let written = try_bounded(puts, self.concurrency).await?;
        let outcomes: Vec<PutOutcome> = written.iter().map(|(w, _)| w.outcome).collect();
        let (stored, duplicate) = created_and_duplicate(&outcomes);
        let media_unqueued = written
            .iter()
            .filter(|(w, _)| w.media_unqueued)
            .map(|(_, wamid)| (*wamid).clone())
            .collect();
        Ok((
            ApplyReport {
                messages_stored: stored,
                messages_duplicate: duplicate,
                ..ApplyReport::default()
            },
            media_unqueued,
        ))
    }

    async fn statuses(&self, updates: &[StatusUpdate<'_>]) -> Result<ApplyReport, StoreError> {
        if updates.is_empty() {
            return Ok(ApplyReport::default());
        }
        let wamids: Vec<Wamid> = updates.iter().map(|u| u.wamid.clone()).collect();
        let stored = self.read_statuses(&wamids).await?;
        let writes = updates
            .iter()
            .map(|u| self.status(u, stored.get(&u.wamid).cloned().unwrap_or_default()))
            .collect();
        let reports = try_bounded(writes, self.concurrency).await?;
        Ok(reports
            .into_iter()
            .fold(ApplyReport::default(), ApplyReport::add))
    }

    /// The stored status logs, each status's facts read from its JSON once.
    async fn read_statuses(
        &self,
        wamids: &[Wamid],
    ) -> Result<HashMap<Wamid, StoredStatus>, StoreError> {
        let mut stored = self.store.get_statuses(wamids).await?;
        for s in stored.values_mut() {
            s.log.read_facts(status_facts);
        }
        Ok(stored)
    }

    async fn status(
        &self,
        update: &StatusUpdate<'_>,
        mut stored: StoredStatus,
    ) -> Result<ApplyReport, StoreError> {
        let mut report = ApplyReport::default();
        let mut rounds = Rounds::new();
        while let Some(attempt) = rounds.next().await {
            if attempt > 0 {
                // Lost a race: read what the other writer left.
                stored = self
                    .read_statuses(std::slice::from_ref(&update.wamid))
                    .await?
                    .remove(&update.wamid)
                    .unwrap_or_default();
            }
            let mut merged = stored.log.clone();
            if !merged.join(&update.log) {
                report.statuses_unchanged += 1;
                return Ok(report);
            }
            match self
                .store
                .write_status(&update.wamid, &update.number, &merged, &stored)
                .await?
            {
                WriteOutcome::Written => {
                    report.statuses_written += 1;
                    return Ok(report);
                }
                WriteOutcome::Conflict => report.conflicts += 1,
            }
        }
        Err(StoreError::Contention {
            what: "message",
            key: update.wamid.to_string(),
            attempts: MAX_ATTEMPTS,
        })
    }

    async fn contacts(&self, updates: &[ContactUpdate]) -> Result<ApplyReport, StoreError> {
        if updates.is_empty() {
            return Ok(ApplyReport::default());
        }
        // One batched read of every identity named in the delivery; alias targets are read as needed.
        let keys: Vec<ContactKey> = updates
            .iter()
            .flat_map(|u| ContactKey::all_for(&u.number, &u.user))
            .collect();
        let initial = self.store.get_contacts(&keys).await?;
        let writes = updates
            .iter()
            .map(|u| {
                let local: ContactSnapshot = ContactKey::all_for(&u.number, &u.user)
                    .into_iter()
                    .filter_map(|k| initial.get(&k).map(|v| (k, v.clone())))
                    .collect();
                self.contact(u, local)
            })
            .collect();
        let reports = try_bounded(writes, self.concurrency).await?;
        Ok(reports
            .into_iter()
            .fold(ApplyReport::default(), ApplyReport::add))
    }

    async fn contact(
        &self,
        update: &ContactUpdate,
        snapshot: ContactSnapshot,
    ) -> Result<ApplyReport, StoreError> {
        let merged = self
            .store
            .merge_contact(&update.number, &update.user, &update.delta, snapshot)
            .await?;
        Ok(ApplyReport {
            contacts_written: usize::from(merged.written),
            contacts_unchanged: usize::from(!merged.written),
            conflicts: merged.conflicts,
            ..ApplyReport::default()
        })
    }
}

fn created_and_duplicate(outcomes: &[PutOutcome]) -> (usize, usize) {
    let created = outcomes
        .iter()
        .filter(|o| **o == PutOutcome::Created)
        .count();
    (created, outcomes.len() - created)
}
