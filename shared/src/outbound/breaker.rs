//! The account breaker: once Meta says a business number's account cannot send (an
//! [`ErrorClass::Account`](crate::graph::ErrorClass::Account) code), the sender stops calling Graph
//! for that number for a while, so a batch of ten makes one call, not ten, and the queue waits
//! instead of being burnt as `failed`.
//!
//! Per number, in memory (each Lambda instance learns on its own; a cold instance makes at most one
//! probe call before it knows):
//!
//! ```text
//!   unproven ──first call (the probe; the others wait for its answer)──► proven | open
//!   proven   ──an account error────────────────────────────────────────► open
//!   open     ──`pause` passes, or the token changed──► unproven (one probe again)
//! ```
//!
//! A probe that never reports (its task panicked, its deadline passed) frees the gate when dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::domain::ids::PhoneNumberId;

#[derive(Debug)]
enum Gate {
    /// Nothing known: the next call is a probe.
    Unproven,
    /// A probe is out (`id`); the others wait on `done`.
    Probing { id: u64, done: Arc<Notify> },
    /// The last answer said the account works.
    Proven,
    /// Meta refused for the account; no calls until `until`.
    Open {
        until: Instant,
        code: Option<i64>,
        reason: String,
    },
}

/// How often a caller waiting for a probe looks at the gate again, in case it missed the wake-up.
const RECHECK: Duration = Duration::from_millis(50);

/// What a caller may do now.
#[derive(Debug)]
pub enum Permit {
    /// Call Graph.
    Go,
    /// Call Graph as the probe, and report the answer through the [`Probe`].
    Probe(Probe),
    /// Do not call: the account is halted for this number.
    Halted {
        code: Option<i64>,
        reason: String,
        /// How long until the breaker lets a probe through.
        retry_in: Duration,
    },
}

/// The probe's duty to report; dropping it unreported frees the gate for another probe.
#[derive(Debug)]
pub struct Probe {
    breaker: Arc<Inner>,
    number: String,
    id: u64,
    reported: bool,
}

impl Probe {
    pub fn report(mut self, answer: Answer) {
        self.reported = true;
        self.breaker.settle(&self.number, Some(self.id), answer);
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker
                .settle(&self.number, Some(self.id), Answer::Unclear);
        }
    }
}

/// What a call's answer says about the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Meta answered, and not about the account: it works.
    Works,
    /// Meta refused for the account.
    Halted { code: Option<i64>, reason: String },
    /// No answer that tells (a timeout, a lost answer): the next call probes again.
    Unclear,
}

#[derive(Debug)]
struct Inner {
    pause: Duration,
    gates: Mutex<HashMap<String, Gate>>,
    next_probe: std::sync::atomic::AtomicU64,
}

impl Inner {
    /// `probe`: the probe answering (`None`: a call made under `Go`). A probe's answer counts only
    /// while its own probe is the one out, so a late answer cannot undo a newer state; an account
    /// refusal from anyone always counts (halting is the safe side).
    fn settle(&self, number: &str, probe: Option<u64>, answer: Answer) {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        let gate = gates.entry(number.to_owned()).or_insert(Gate::Unproven);
        let current = matches!(gate, Gate::Probing { id, .. } if Some(*id) == probe);
        if !current && !matches!(answer, Answer::Halted { .. }) {
            return;
        }
        let next = match answer {
            Answer::Works => Gate::Proven,
            Answer::Halted { code, reason } => Gate::Open {
                until: Instant::now() + self.pause,
                code,
                reason,
            },
            Answer::Unclear => match gate {
                Gate::Open { .. } | Gate::Proven => return,
                _ => Gate::Unproven,
            },
        };
        if let Gate::Probing { done, .. } = std::mem::replace(gate, next) {
            done.notify_waiters();
        }
    }
}

/// Per-number account gates, shared by the records of every batch of one instance.
#[derive(Debug, Clone)]
pub struct AccountBreaker {
    inner: Arc<Inner>,
}

impl AccountBreaker {
    /// `pause`: how long a halted number gets no calls before one probe is let through.
    pub fn new(pause: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                pause,
                gates: Mutex::new(HashMap::new()),
                next_probe: std::sync::atomic::AtomicU64::new(1),
            }),
        }
    }

    /// Waits (at most `wait` for a probe's answer) until this caller may call, must probe, or must
    /// not call.
    pub async fn permit(&self, number: &PhoneNumberId, wait: Duration) -> Permit {
        let deadline = Instant::now() + wait;
        loop {
            let done = {
                let mut gates = self.inner.gates.lock().unwrap_or_else(|p| p.into_inner());
                let gate = gates
                    .entry(number.as_str().to_owned())
                    .or_insert(Gate::Unproven);
                match gate {
                    Gate::Proven => return Permit::Go,
                    Gate::Open {
                        until,
                        code,
                        reason,
                    } if *until > Instant::now() => {
                        return Permit::Halted {
                            code: *code,
                            reason: reason.clone(),
                            retry_in: until.saturating_duration_since(Instant::now()),
                        }
                    }
                    Gate::Probing { done, .. } => done.clone(),
                    // Unproven, or open with its pause over: this caller probes.
                    _ => {
                        let id = self
                            .inner
                            .next_probe
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        *gate = Gate::Probing {
                            id,
                            done: Arc::new(Notify::new()),
                        };
                        return Permit::Probe(Probe {
                            breaker: self.inner.clone(),
                            number: number.as_str().to_owned(),
                            id,
                            reported: false,
                        });
                    }
                }
            };
            // A probe that settles between the lock above and this line has already notified: the
            // short re-check interval bounds that miss, and the loop reads the settled gate.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // The probe is slow: call anyway rather than hold a healthy number's sends; the
                // answer still settles the gate.
                return Permit::Go;
            }
            let _ = tokio::time::timeout(left.min(RECHECK), done.notified()).await;
        }
    }

    /// Reports the answer of a call made under [`Permit::Go`].
    pub fn report(&self, number: &PhoneNumberId, answer: Answer) {
        match answer {
            // Only what changes the gate: a working answer under `Go` changes nothing.
            Answer::Halted { .. } => self.inner.settle(number.as_str(), None, answer),
            Answer::Works | Answer::Unclear => {}
        }
    }

    /// The access token changed: every halted number probes again at its next call.
    pub fn token_changed(&self) {
        let mut gates = self.inner.gates.lock().unwrap_or_else(|p| p.into_inner());
        for gate in gates.values_mut() {
            if matches!(gate, Gate::Open { .. }) {
                *gate = Gate::Unproven;
            }
        }
    }

    /// Whether any number is halted now (for the `AccountHalted` metric).
    pub fn halted_numbers(&self) -> usize {
        let gates = self.inner.gates.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        gates
            .values()
            .filter(|g| matches!(g, Gate::Open { until, .. } if *until > now))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number() -> PhoneNumberId {
        PhoneNumberId::parse("106540352242922").unwrap()
    }

    fn halted() -> Answer {
        Answer::Halted {
            code: Some(190),
            reason: "token expired".into(),
        }
    }

    #[tokio::test]
    async fn the_first_call_probes_and_the_others_wait_for_its_answer() {
        let b = AccountBreaker::new(Duration::from_secs(60));
        let Permit::Probe(probe) = b.permit(&number(), Duration::from_secs(5)).await else {
            panic!("the first call is the probe")
        };
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.permit(&number(), Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "a second caller waits for the probe");
        probe.report(halted());
        match waiter.await.unwrap() {
            Permit::Halted { code, reason, .. } => {
                assert_eq!(code, Some(190));
                assert_eq!(reason, "token expired");
            }
            other => panic!("expected halted, got {other:?}"),
        }
        assert_eq!(b.halted_numbers(), 1);
    }

    #[tokio::test]
    async fn a_working_probe_lets_everyone_call() {
        let b = AccountBreaker::new(Duration::from_secs(60));
        let Permit::Probe(probe) = b.permit(&number(), Duration::from_secs(5)).await else {
            panic!("probe")
        };
        probe.report(Answer::Works);
        assert!(matches!(
            b.permit(&number(), Duration::from_secs(5)).await,
            Permit::Go
        ));
        // An account error under Go opens it again.
        b.report(&number(), halted());
        assert!(matches!(
            b.permit(&number(), Duration::from_secs(5)).await,
            Permit::Halted { .. }
        ));
    }

    #[tokio::test]
    async fn after_the_pause_or_a_new_token_one_probe_goes() {
        let b = AccountBreaker::new(Duration::from_millis(30));
        b.report(&number(), halted());
        assert!(matches!(
            b.permit(&number(), Duration::from_secs(1)).await,
            Permit::Halted { .. }
        ));
        tokio::time::sleep(Duration::from_millis(40)).await;
        let Permit::Probe(probe) = b.permit(&number(), Duration::from_secs(1)).await else {
            panic!("the pause is over: one probe")
        };
        probe.report(halted());
        b.token_changed();
        assert!(matches!(
            b.permit(&number(), Duration::from_secs(1)).await,
            Permit::Probe(_)
        ));
    }

    #[tokio::test]
    async fn a_late_answer_of_an_older_probe_changes_nothing() {
        let b = AccountBreaker::new(Duration::from_secs(60));
        let Permit::Probe(old) = b.permit(&number(), Duration::from_secs(1)).await else {
            panic!("probe")
        };
        // The old probe is given up on (its gate freed) and a newer one is out.
        b.inner
            .settle(number().as_str(), Some(old.id), Answer::Unclear);
        let Permit::Probe(newer) = b.permit(&number(), Duration::from_secs(1)).await else {
            panic!("a second probe")
        };
        old.report(Answer::Works);
        assert!(
            matches!(
                b.permit(&number(), Duration::from_millis(20)).await,
                Permit::Go
            ),
            "the waiter's wait ran out, but the gate is still the newer probe's"
        );
        newer.report(halted());
        assert!(matches!(
            b.permit(&number(), Duration::from_secs(1)).await,
            Permit::Halted { .. }
        ));
    }

    #[tokio::test]
    async fn a_probe_dropped_unreported_frees_the_gate() {
        let b = AccountBreaker::new(Duration::from_secs(60));
        let Permit::Probe(probe) = b.permit(&number(), Duration::from_secs(1)).await else {
            panic!("probe")
        };
        drop(probe);
        assert!(matches!(
            b.permit(&number(), Duration::from_secs(1)).await,
            Permit::Probe(_)
        ));
    }

    #[tokio::test]
    async fn a_slow_probe_does_not_hold_the_others_past_their_wait() {
        let b = AccountBreaker::new(Duration::from_secs(60));
        let _probe = b.permit(&number(), Duration::from_secs(1)).await;
        assert!(matches!(
            b.permit(&number(), Duration::from_millis(20)).await,
            Permit::Go
        ));
    }
}
