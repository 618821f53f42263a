//! The ledger's I/O shell: performs each [`step`] the domain decides (one conditional write or one
//! read) until the delivery either holds a claim to call Meta or is done. The rules, and why each
//! transition is safe, are in `domain::ledger`.

use super::{Next, Outcome, Sender};
use crate::domain::contact::ContactState;
use crate::domain::ids::ContactKey;
use crate::domain::ledger::{step, AfterTakeOver, ClaimToken, Evidence, LedgerEntry, LedgerStep};
use crate::domain::policy::Decision;
use crate::domain::send_request::OutboundMessage;
use crate::domain::time::UnixTime;
use crate::store::sends::{Claim, Finish, SendSummary};
use crate::store::StoreError;

use super::prepare::Prepared;
use super::queue::{DeadLetter, QueuedSend};

/// Create, look, take over, and the step after it: a delivery needs at most four rounds. More means
/// other workers keep changing the entry; the record comes back shortly.
const MAX_STEPS: usize = 6;

/// How a delivery leaves the ledger.
pub(super) enum Passage {
    Done(Next),
    /// The key is ours: call Meta with this message, then record the outcome under `token`.
    Call {
        token: ClaimToken,
        message: OutboundMessage,
        fallback: bool,
        /// A resend after a lost answer: the earlier attempt may have been delivered.
        resend: bool,
    },
}

impl Sender {
    pub(super) async fn through_ledger(
        &self,
        record: &QueuedSend,
        p: &Prepared,
        contact: &Option<(ContactKey, ContactState)>,
        decision: &Decision,
        now: UnixTime,
    ) -> Result<Passage, StoreError> {
        let req = &p.request;
        let key = &req.idempotency_key;
        let settings = &self.settings.ledger;
        let mut entry: Option<LedgerEntry> = None;
        let mut evidence = Evidence::Unchecked;
        for _ in 0..MAX_STEPS {
            let next = step(
                entry.as_ref(),
                decision,
                &req.fingerprint,
                &evidence,
                now,
                settings,
            );
            match next {
                LedgerStep::Create => {
                    let summary = summary_of(p, decision);
                    let existing = match decision {
                        Decision::Send { message, fallback } => match self
                            .store
                            .claim_send(key, &summary, now, settings.lease_secs)
                            .await?
                        {
                            Claim::Claimed { token } => {
                                return Ok(Passage::Call {
                                    token,
                                    message: message.clone(),
                                    fallback: *fallback,
                                    resend: false,
                                })
                            }
                            Claim::Existing(existing) => existing,
                        },
                        Decision::Withhold { state, reason } => match self
                            .store
                            .record_decided(key, &summary, *state, reason, now)
                            .await?
                        {
                            None => return Ok(done(Outcome::Withheld(*state))),
                            Some(existing) => existing,
                        },
                    };
                    entry = Some(existing);
                }
                LedgerStep::LookForEarlierAttempt => {
                    evidence = match self.store.find_by_idempotency_key(key).await? {
                        Some((wamid, _status)) => Evidence::Sent(wamid),
                        None => Evidence::Nothing,
                    };
                }
                LedgerStep::Duplicate(state) => return Ok(done(Outcome::Duplicate(state))),
                LedgerStep::KeyReused(state) => {
                    return Ok(Passage::Done(Next::DeadLetter(DeadLetter {
                        code: "key_reused",
                        reason: format!(
                            "idempotency_key {:?} was already used for a different message (now {state}); use a new key for each message",
                            key.as_str(),
                        ),
                    })))
                }
                LedgerStep::Wait { delay_secs, why } => {
                    return Ok(Passage::Done(Next::Retry {
                        delay_secs,
                        why: why.why().into(),
                    }))
                }
                LedgerStep::TakeOver {
                    resend_after_unknown,
                    then,
                } => {
                    let Some(seen) = &entry else { break };
                    let summary = summary_of(p, decision);
                    let Some(token) = self
                        .store
                        .reclaim_send(
                            seen,
                            &summary,
                            now,
                            settings.lease_secs,
                            resend_after_unknown,
                        )
                        .await?
                    else {
                        break;
                    };
                    if resend_after_unknown {
                        tracing::warn!(
                            event = "resend_after_lost_answer",
                            key_hash = %key.hashed(),
                            "no status webhook names the earlier attempt; sending once more (the one duplicate wahook allows)"
                        );
                    }
                    let resend = resend_after_unknown;
                    return self
                        .after_take_over(record, p, contact, decision, (token, resend), then, now)
                        .await;
                }
            }
        }
        Ok(Passage::Done(Next::Retry {
            delay_secs: 1,
            why: "another worker changed this key's ledger entry first".into(),
        }))
    }

    #[allow(clippy::too_many_arguments)] // one delivery's context, passed through once
    async fn after_take_over(
        &self,
        record: &QueuedSend,
        p: &Prepared,
        contact: &Option<(ContactKey, ContactState)>,
        decision: &Decision,
        (token, resend): (ClaimToken, bool),
        then: AfterTakeOver,
        now: UnixTime,
    ) -> Result<Passage, StoreError> {
        let key = &p.request.idempotency_key;
        match (then, decision) {
            (
                AfterTakeOver::Call | AfterTakeOver::RecordDecision,
                Decision::Send { message, fallback },
            ) => Ok(Passage::Call {
                token,
                message: message.clone(),
                fallback: *fallback,
                resend,
            }),
            (
                AfterTakeOver::Call | AfterTakeOver::RecordDecision,
                Decision::Withhold { state, reason },
            ) => {
                self.store
                    .finish_send(
                        key,
                        &token,
                        &Finish::Decided {
                            state: *state,
                            reason,
                        },
                        now,
                    )
                    .await?;
                Ok(done(Outcome::Withheld(*state)))
            }
            (AfterTakeOver::RecordFound(wamid), _) => {
                let outbound = self.outbound_record(p, contact, &wamid, &p.request.message, now);
                self.store
                    .complete_send(key, &token, &wamid, None, &outbound, now)
                    .await?;
                tracing::info!(
                    event = "lost_answer_reconciled",
                    key_hash = %key.hashed(),
                    wamid = wamid.as_str(),
                    message_id = %record.message_id,
                    "a status webhook shows the earlier attempt reached Meta; not sending again"
                );
                Ok(done(Outcome::Sent {
                    fallback: false,
                    reconciled: true,
                }))
            }
            (AfterTakeOver::GiveUp, _) => {
                let message = "Meta's answer was lost twice and no status webhook names either attempt; check the recipient's chat before sending again under a new key";
                self.store
                    .finish_send(key, &token, &Finish::OutcomeUnknown { message }, now)
                    .await?;
                tracing::error!(
                    event = "outcome_unknown",
                    key_hash = %key.hashed(),
                    "{message}"
                );
                Ok(done(Outcome::OutcomeUnknown))
            }
        }
    }
}

fn done(outcome: Outcome) -> Passage {
    Passage::Done(Next::Done(outcome))
}

/// What the ledger keeps about the request: the message that goes (the fallback, when it does).
fn summary_of<'a>(p: &'a Prepared, decision: &'a Decision) -> SendSummary<'a> {
    let message = match decision {
        Decision::Send { message, .. } => message,
        Decision::Withhold { .. } => &p.request.message,
    };
    SendSummary {
        fingerprint: &p.request.fingerprint,
        to: p.request.to.as_written(),
        from: p.from.as_str(),
        category: p.request.category.as_str(),
        kind: message.kind(),
        template_name: message.template_name(),
        template_language: message.template_language(),
    }
}
