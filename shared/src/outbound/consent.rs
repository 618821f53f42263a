//! A producer's consent request (`"kind": "consent"` on the send queue): merged into the person's
//! contact like every other source of consent. No ledger is needed: the merge is idempotent (a
//! redelivered record changes nothing) and order-free (the latest `at` wins, an opt-out wins a tie).

use super::prepare::PreparedConsent;
use super::{Next, Outcome, Sender};
use crate::domain::contact::{ConsentRecord, ContactState};
use crate::domain::ids::UserRef;
use crate::domain::preferences::{Consent, PreferenceSource};
use crate::domain::time::UnixTime;
use crate::store::StoreError;

impl Sender {
    pub(super) async fn record_consent(&self, c: &PreparedConsent) -> Result<Next, StoreError> {
        let r = &c.request;
        // An opt-in stamped ahead of our clock (the allowed skew) would outrank a STOP the person
        // types in the next minutes: opt-ins count from now at the latest. Opt-outs keep their time.
        let opt_in_at = r.at.min(UnixTime::now());
        let mut delta = ContactState::default();
        for category in &r.categories {
            delta.join(&match r.consent {
                Consent::OptedIn => ContactState::consent_recorded(
                    *category,
                    opt_in_at,
                    ConsentRecord {
                        source: r.source.clone(),
                        evidence: r.evidence.clone(),
                    },
                ),
                Consent::OptedOut => {
                    ContactState::opted_out(*category, r.at, PreferenceSource::Producer)
                }
            });
        }
        let user = UserRef::of(&r.to);
        let merged = self
            .store
            .merge_contact(&c.from, &user, &delta, Default::default())
            .await?;
        tracing::info!(event = "consent_recorded", recipient = %user.masked(), consent = r.consent.as_str(), categories = ?r.categories, source = r.source.as_str(), changed = merged.written, "producer consent merged");
        Ok(Next::Done(Outcome::ConsentRecorded {
            changed: merged.written,
        }))
    }
}
