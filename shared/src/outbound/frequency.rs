//! The per-person marketing cap in the sender (DESIGN rule 20): each batch reads how many marketing
//! templates its recipients got in the window (one BatchGetItem), and a send that would exceed the
//! cap ends `frequency_capped` with no Meta call. Sends of the same batch count against each other
//! as they are admitted; a send that goes is counted in the transaction that records it.

use std::collections::HashMap;
use std::sync::Mutex;

use super::prepare::Prepared;
use super::{Request, Sender};
use crate::domain::contact::ContactState;
use crate::domain::frequency::FrequencyCap;
use crate::domain::ids::ContactKey;
use crate::domain::time::UnixTime;
use crate::store::StoreError;

/// A count longer than this is trimmed to the window when read (the cap is at most 100).
const PRUNE_LONGER_THAN: usize = 200;

/// One batch's view of the cap: the counts read, and the sends this batch has admitted since.
pub(super) struct MarketingCounts {
    cap: FrequencyCap,
    sent: HashMap<ContactKey, Vec<UnixTime>>,
    admitted: Mutex<HashMap<ContactKey, u32>>,
}

impl MarketingCounts {
    /// Admits one more marketing send to the person at `now`, or says why not. Their count is
    /// under the contact's home key, and may be under the canonical key too (sends before the
    /// contact existed): both count.
    pub(super) fn admit(
        &self,
        p: &Prepared,
        contact: &Option<(ContactKey, ContactState)>,
        now: UnixTime,
    ) -> Result<(), String> {
        let home = p.home_key(contact);
        let mut earlier = self
            .sent
            .get(home)
            .map_or(0, |times| self.cap.counted(times, now));
        if home != &p.contact_key {
            earlier += self
                .sent
                .get(&p.contact_key)
                .map_or(0, |times| self.cap.counted(times, now));
        }
        let mut admitted = self.admitted.lock().expect("no panic holds this lock");
        let this_batch = admitted.entry(home.clone()).or_default();
        if let Some(why) = self.cap.refusal(earlier + *this_batch) {
            return Err(why);
        }
        // Counted when admitted, not when sent: a send that then fails still holds its place in
        // this batch (the safe side of "not over-messaged").
        *this_batch += 1;
        Ok(())
    }
}

impl Sender {
    /// The batch's marketing counts; `None` without a cap (nothing is read).
    pub(super) async fn read_marketing_counts<'a>(
        &self,
        sends: impl Iterator<Item = (&'a Request, Option<&'a ContactKey>)>,
    ) -> Result<Option<MarketingCounts>, StoreError> {
        let Some(cap) = self.settings.marketing_cap else {
            return Ok(None);
        };
        let mut keys: Vec<ContactKey> = sends
            .flat_map(|(r, home)| match r {
                Request::Send(p) => vec![p.contact_key.clone()]
                    .into_iter()
                    .chain(home.cloned())
                    .collect(),
                Request::Consent(_) => Vec::new(),
            })
            .collect();
        keys.sort();
        keys.dedup();
        let sent = if keys.is_empty() {
            HashMap::new()
        } else {
            self.store.marketing_sends(&keys).await?
        };
        // Sends are appended and never removed, so a long list is trimmed to the window now and
        // then (conditional on nothing appended since): it stays far below DynamoDB's item size.
        for (contact, times) in &sent {
            if times.len() <= PRUNE_LONGER_THAN {
                continue;
            }
            let since = UnixTime::now().secs() - cap.window_secs();
            let kept: Vec<UnixTime> = times.iter().copied().filter(|t| t.secs() > since).collect();
            if kept.len() < times.len() {
                if let Err(e) = self
                    .store
                    .prune_marketing_sends(contact, times.len(), &kept)
                    .await
                {
                    tracing::warn!(event = "marketing_count_prune_failed", error = %e, "could not trim a marketing count; the next batch tries again");
                }
            }
        }
        Ok(Some(MarketingCounts {
            cap,
            sent,
            admitted: Mutex::new(HashMap::new()),
        }))
    }
}
