//! The send ledger's rules (DESIGN rule 11), free of I/O: one entry per idempotency key, and what one
//! delivery of a request does given the entry it finds. [`step`] is to the sender what
//! `identity::resolve` is to the inbound path: `outbound::ledger` performs each step it returns (one
//! conditional write or one read) and asks again, so every transition is testable without DynamoDB.
//!
//! A key is claimed with a conditional write before Meta is called, and only the claim's holder (its
//! random token) may record the outcome. States:
//!
//! ```text
//!            claim                      Meta accepted
//!   (none) ───────► in_flight ─────────────────────────► sent
//!      │                │  Meta refused (permanent)  ──► failed
//!      │                │  refused, retry later      ──► retry ──(reclaim)──► in_flight
//!      │                │  the account cannot send   ──► held  ──(reclaim)──► in_flight
//!      │                │  no answer (may have sent) ──► unknown ──(reconcile)──► sent | in_flight (one resend)
//!      │                │  second lost answer        ──► outcome_unknown
//!      └─► expired | suppressed | window_closed | rejected   (decided before any call)
//!                                                          rejected ──(a valid request)──► in_flight
//! ```
//!
//! `rejected` is final for the request that was refused, but not for the key: a producer that fixes
//! its request (or an operator who configures the missing sender number) sends again under the same
//! key, and that request takes the entry over (conditionally on it still being `rejected`).
//!
//! The one duplicate wahook allows: an answer is lost (or a worker dies mid-call), Meta did take the
//! message, and no status webhook naming the key arrives within the reconcile wait. Then the request
//! is sent once more, and a second lost answer ends in `outcome_unknown` for a human.

use super::ids::Wamid;
use super::policy::Decision;
use super::send_request::IdempotencyKey;
use super::time::UnixTime;

/// Where a key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendState {
    InFlight,
    Retry,
    /// Meta refused because of the account (token, payment, lock…): waiting for a person to fix it.
    Held,
    Unknown,
    Sent,
    Failed,
    Expired,
    Suppressed,
    WindowClosed,
    Rejected,
    /// The template registry says Meta will not send the template (disabled, rejected, deleted…).
    TemplateUnavailable,
    /// The send's parameters do not fit the template's listed shape (no Meta call).
    InvalidParameters,
    /// The per-person marketing cap was reached (ours before the call, or Meta's 131049).
    FrequencyCapped,
    OutcomeUnknown,
}

impl SendState {
    pub fn as_str(self) -> &'static str {
        match self {
            SendState::InFlight => "in_flight",
            SendState::Retry => "retry",
            SendState::Held => "held",
            SendState::Unknown => "unknown",
            SendState::Sent => "sent",
            SendState::Failed => "failed",
            SendState::Expired => "expired",
            SendState::Suppressed => "suppressed",
            SendState::WindowClosed => "window_closed",
            SendState::Rejected => "rejected",
            SendState::TemplateUnavailable => "template_unavailable",
            SendState::InvalidParameters => "invalid_parameters",
            SendState::FrequencyCapped => "frequency_capped",
            SendState::OutcomeUnknown => "outcome_unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "in_flight" => SendState::InFlight,
            "retry" => SendState::Retry,
            "held" => SendState::Held,
            "unknown" => SendState::Unknown,
            "sent" => SendState::Sent,
            "failed" => SendState::Failed,
            "expired" => SendState::Expired,
            "suppressed" => SendState::Suppressed,
            "window_closed" => SendState::WindowClosed,
            "rejected" => SendState::Rejected,
            "template_unavailable" => SendState::TemplateUnavailable,
            "invalid_parameters" => SendState::InvalidParameters,
            "frequency_capped" => SendState::FrequencyCapped,
            "outcome_unknown" => SendState::OutcomeUnknown,
            _ => return None,
        })
    }

    /// Nothing more will happen under this key: a redelivery is acknowledged as a duplicate.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            SendState::InFlight | SendState::Retry | SendState::Held | SendState::Unknown
        )
    }
}

impl std::fmt::Display for SendState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The random token of a claim: only its holder may record how the call ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken(String);

impl ClaimToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A ledger item as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub key: IdempotencyKey,
    pub state: SendState,
    /// The fingerprint of the request first seen under the key (absent for `rejected`).
    pub fingerprint: Option<String>,
    pub claim_token: Option<ClaimToken>,
    pub lease_until: Option<UnixTime>,
    pub unknown_since: Option<UnixTime>,
    /// A resend after a lost answer has been made (at most one is).
    pub resent: bool,
    pub attempts: u32,
    pub wamid: Option<Wamid>,
    pub reason: Option<String>,
    /// Set when the sender dead-lettered the record itself (`retries_exhausted`).
    pub dead_letter: Option<String>,
    pub updated_at: Option<UnixTime>,
}

/// The ledger's tunables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerSettings {
    /// How long a claim protects a key from other workers; longer than a Graph call can take.
    pub lease_secs: i64,
    /// After a lost answer, how long to wait for Meta's status webhooks before resending once.
    pub reconcile_wait_secs: i64,
}

/// What the sender found about an earlier attempt under the key: a status webhook (or our own
/// message record) that names it means Meta has the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// Not looked yet.
    Unchecked,
    /// Looked: nothing names the key.
    Nothing,
    /// Meta has the message under this wamid.
    Sent(Wamid),
}

/// Why a record must come back later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Another worker holds a live claim on the key.
    LeaseHeld,
    /// The last answer was lost; Meta's status webhooks may still name the attempt.
    AwaitingStatuses,
}

impl Wait {
    pub fn why(self) -> &'static str {
        match self {
            Wait::LeaseHeld => "another worker holds this key's claim",
            Wait::AwaitingStatuses => "the last attempt's answer was lost; waiting for Meta's status webhooks before deciding to resend",
        }
    }
}

/// What to do once the entry is ours again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterTakeOver {
    /// Call Meta under the new claim.
    Call,
    /// Record the policy's decision instead (e.g. the deadline passed while a retry waited).
    RecordDecision,
    /// An earlier attempt reached Meta: record it as sent, do not call again.
    RecordFound(Wamid),
    /// The answer was lost twice and nothing names either attempt: stop, tell a human.
    GiveUp,
}

/// The next step of one delivery through the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerStep {
    /// The key is not in the ledger: create its entry (a claim when the decision is to send, the
    /// decision itself otherwise). If the key exists after all, step again with the entry found.
    Create,
    /// Look for an earlier attempt Meta may have taken, then step again with the [`Evidence`].
    LookForEarlierAttempt,
    /// Take the entry over exactly as seen (a conditional write), then do `then`. Another worker
    /// that changed it first wins, and this record comes back shortly.
    TakeOver {
        /// This take-over is the one resend after a lost answer (recorded, so a second is refused).
        resend_after_unknown: bool,
        then: AfterTakeOver,
    },
    /// The key already ended: a redelivery, acknowledged without doing anything.
    Duplicate(SendState),
    /// The key was used for a different message: the producer's bug, never sent.
    KeyReused(SendState),
    /// Come back in `delay_secs`.
    Wait { delay_secs: u32, why: Wait },
}

/// Decides the next step of a delivery under one key from the entry read (`None`: not in the ledger),
/// the policy's decision for this delivery, and what is known about earlier attempts.
pub fn step(
    entry: Option<&LedgerEntry>,
    decision: &Decision,
    fingerprint: &str,
    evidence: &Evidence,
    now: UnixTime,
    settings: &LedgerSettings,
) -> LedgerStep {
    let Some(entry) = entry else {
        return LedgerStep::Create;
    };
    // What a fresh attempt would do, once nothing shows an earlier one reached Meta.
    let again = match decision {
        Decision::Send { .. } => AfterTakeOver::Call,
        Decision::Withhold { .. } => AfterTakeOver::RecordDecision,
    };
    let take_over = |then| LedgerStep::TakeOver {
        resend_after_unknown: false,
        then,
    };
    if entry.state == SendState::Rejected
        && entry.claim_token.is_none()
        && entry.attempts == 0
        && entry.wamid.is_none()
    {
        // Rejected before any claim: nothing under the key ever reached Meta, so a request that
        // passes the edge takes it over (whatever it asks), without looking for attempts. A key that
        // was claimed and later ended `rejected` may have reached Meta: it stays final.
        return take_over(again);
    }
    if entry
        .fingerprint
        .as_deref()
        .is_some_and(|f| f != fingerprint)
    {
        return LedgerStep::KeyReused(entry.state);
    }
    if entry.state.is_final() {
        return LedgerStep::Duplicate(entry.state);
    }
    match (entry.state, evidence) {
        (SendState::InFlight, _) if entry.lease_until.is_some_and(|l| l > now) => {
            let left = entry
                .lease_until
                .map_or(0, |l| l.secs().saturating_sub(now.secs()));
            LedgerStep::Wait {
                delay_secs: clamp_delay(left.saturating_add(1)),
                why: Wait::LeaseHeld,
            }
        }
        // A retry is safe to send again, but Meta may have taken it after all; an expired lease or a
        // lost answer may have sent. Either way, look first.
        (_, Evidence::Unchecked) => LedgerStep::LookForEarlierAttempt,
        (_, Evidence::Sent(wamid)) => take_over(AfterTakeOver::RecordFound(wamid.clone())),
        // Meta refused these outright (for now, or for the account): nothing was taken.
        (SendState::Retry | SendState::Held, Evidence::Nothing) => take_over(again),
        // In flight with its lease run out (the worker may have sent), or unknown.
        (_, Evidence::Nothing) => {
            let since = entry.unknown_since.or(entry.lease_until).unwrap_or(now);
            let ready_at = since.secs().saturating_add(settings.reconcile_wait_secs);
            if now.secs() < ready_at {
                return LedgerStep::Wait {
                    delay_secs: clamp_delay(ready_at - now.secs()),
                    why: Wait::AwaitingStatuses,
                };
            }
            match again {
                AfterTakeOver::Call if entry.resent => take_over(AfterTakeOver::GiveUp),
                AfterTakeOver::Call => LedgerStep::TakeOver {
                    resend_after_unknown: true,
                    then: AfterTakeOver::Call,
                },
                other => take_over(other),
            }
        }
    }
}

fn clamp_delay(secs: i64) -> u32 {
    secs.clamp(1, i64::from(u32::MAX)) as u32
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
