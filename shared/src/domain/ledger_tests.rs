//! The ledger's rules without DynamoDB: every transition of [`step`] by example, then a model of the
//! whole system (an in-memory ledger with DynamoDB's conditional-write semantics, workers that
//! interleave, a Meta that accepts, refuses, loses answers and reports statuses late) to check the
//! promise of DESIGN rule 11 for any history of one key.

use super::*;
use crate::domain::send_request::OutboundMessage;
use proptest::prelude::*;

const SETTINGS: LedgerSettings = LedgerSettings {
    lease_secs: 60,
    reconcile_wait_secs: 120,
};
const NOW: UnixTime = UnixTime::from_secs(1_800_000_000);
const FINGERPRINT: &str = "fp-1";

fn send() -> Decision {
    Decision::Send {
        message: OutboundMessage::Text {
            body: "Hola".into(),
            preview_url: false,
        },
        fallback: false,
    }
}

fn withhold() -> Decision {
    Decision::Withhold {
        state: SendState::Expired,
        reason: "not_after passed".into(),
    }
}

fn wamid(n: u32) -> Wamid {
    Wamid::parse(&format!("wamid.{n}")).unwrap()
}

fn entry(state: SendState) -> LedgerEntry {
    LedgerEntry {
        key: IdempotencyKey::parse("order-1").unwrap(),
        state,
        fingerprint: Some(FINGERPRINT.into()),
        claim_token: Some(ClaimToken::new("t1")),
        lease_until: Some(UnixTime::from_secs(NOW.secs() - 1)),
        unknown_since: None,
        resent: false,
        attempts: 1,
        wamid: None,
        reason: None,
        dead_letter: None,
        updated_at: None,
    }
}

fn at(secs_from_now: i64) -> UnixTime {
    UnixTime::from_secs(NOW.secs() + secs_from_now)
}

fn run(
    e: Option<&LedgerEntry>,
    decision: &Decision,
    evidence: &Evidence,
    now: UnixTime,
) -> LedgerStep {
    step(e, decision, FINGERPRINT, evidence, now, &SETTINGS)
}

fn take_over(resend_after_unknown: bool, then: AfterTakeOver) -> LedgerStep {
    LedgerStep::TakeOver {
        resend_after_unknown,
        then,
    }
}

#[test]
fn only_waiting_states_are_not_final() {
    let all = [
        SendState::InFlight,
        SendState::Retry,
        SendState::Held,
        SendState::Unknown,
        SendState::Sent,
        SendState::Failed,
        SendState::Expired,
        SendState::Suppressed,
        SendState::WindowClosed,
        SendState::Rejected,
        SendState::TemplateUnavailable,
        SendState::InvalidParameters,
        SendState::FrequencyCapped,
        SendState::OutcomeUnknown,
    ];
    for state in all {
        assert_eq!(SendState::parse(state.as_str()), Some(state));
        assert_eq!(state.to_string(), state.as_str());
        let waiting = matches!(
            state,
            SendState::InFlight | SendState::Retry | SendState::Held | SendState::Unknown
        );
        assert_eq!(state.is_final(), !waiting, "{state}");
    }
    assert_eq!(SendState::parse("SENT"), None);
}

#[test]
fn a_new_key_is_created_whatever_the_decision() {
    assert_eq!(
        run(None, &send(), &Evidence::Unchecked, NOW),
        LedgerStep::Create
    );
    assert_eq!(
        run(None, &withhold(), &Evidence::Unchecked, NOW),
        LedgerStep::Create
    );
}

#[test]
fn a_key_with_a_final_outcome_is_a_duplicate() {
    for state in [
        SendState::Sent,
        SendState::Failed,
        SendState::Expired,
        SendState::OutcomeUnknown,
    ] {
        let e = entry(state);
        assert_eq!(
            run(Some(&e), &send(), &Evidence::Unchecked, NOW),
            LedgerStep::Duplicate(state)
        );
        assert_eq!(
            run(Some(&e), &withhold(), &Evidence::Sent(wamid(1)), NOW),
            LedgerStep::Duplicate(state),
            "evidence changes nothing once the key ended"
        );
    }
}

#[test]
fn a_key_claimed_before_it_ended_rejected_stays_final() {
    // A claim was made (Meta may have the message), then a later delivery's policy rejected it: a
    // takeover could send a second copy, so the key is final like any other.
    let e = entry(SendState::Rejected);
    assert_eq!(
        step(
            Some(&e),
            &send(),
            "fp-other",
            &Evidence::Unchecked,
            NOW,
            &SETTINGS
        ),
        LedgerStep::KeyReused(SendState::Rejected)
    );
    assert_eq!(
        run(Some(&e), &send(), &Evidence::Unchecked, NOW),
        LedgerStep::Duplicate(SendState::Rejected)
    );
}

#[test]
fn a_rejected_key_is_taken_over_by_the_next_valid_request() {
    // Nothing under a rejected key reached Meta: the corrected request (another fingerprint, or
    // none recorded) takes it over at once, without looking for earlier attempts.
    for fingerprint in [None, Some("fp-refused".to_owned())] {
        let rejected = LedgerEntry {
            fingerprint,
            claim_token: None,
            attempts: 0,
            ..entry(SendState::Rejected)
        };
        for (decision, then) in [
            (send(), AfterTakeOver::Call),
            (withhold(), AfterTakeOver::RecordDecision),
        ] {
            assert_eq!(
                step(
                    Some(&rejected),
                    &decision,
                    "fp-corrected",
                    &Evidence::Unchecked,
                    NOW,
                    &SETTINGS,
                ),
                take_over(false, then)
            );
        }
    }
}

#[test]
fn a_key_reused_for_another_message_is_refused_in_any_state() {
    for state in [SendState::Sent, SendState::InFlight, SendState::Unknown] {
        let e = entry(state);
        let next = step(
            Some(&e),
            &send(),
            "fp-other",
            &Evidence::Unchecked,
            NOW,
            &SETTINGS,
        );
        assert_eq!(next, LedgerStep::KeyReused(state));
    }
}

#[test]
fn a_live_claim_makes_the_record_wait_until_its_lease_ends() {
    let e = LedgerEntry {
        lease_until: Some(at(40)),
        ..entry(SendState::InFlight)
    };
    assert_eq!(
        run(Some(&e), &send(), &Evidence::Unchecked, NOW),
        LedgerStep::Wait {
            delay_secs: 41,
            why: Wait::LeaseHeld
        }
    );
    assert_eq!(
        run(Some(&e), &send(), &Evidence::Sent(wamid(1)), NOW),
        LedgerStep::Wait {
            delay_secs: 41,
            why: Wait::LeaseHeld
        },
        "the holder records its own outcome"
    );
}

#[test]
fn every_unfinished_state_looks_for_an_earlier_attempt_first() {
    for state in [SendState::InFlight, SendState::Retry, SendState::Unknown] {
        let e = entry(state);
        assert_eq!(
            run(Some(&e), &send(), &Evidence::Unchecked, NOW),
            LedgerStep::LookForEarlierAttempt,
            "{state}"
        );
    }
}

#[test]
fn evidence_that_meta_has_the_message_records_it_instead_of_calling() {
    for state in [SendState::InFlight, SendState::Retry, SendState::Unknown] {
        for decision in [send(), withhold()] {
            let e = entry(state);
            assert_eq!(
                run(Some(&e), &decision, &Evidence::Sent(wamid(7)), NOW),
                take_over(false, AfterTakeOver::RecordFound(wamid(7))),
                "{state}"
            );
        }
    }
}

#[test]
fn a_retry_or_held_send_with_no_earlier_attempt_is_called_again_or_decided() {
    // Held (the account could not send) goes like a retry once nothing shows Meta took it.
    for state in [SendState::Retry, SendState::Held] {
        let e = entry(state);
        assert_eq!(
            run(Some(&e), &send(), &Evidence::Unchecked, NOW),
            LedgerStep::LookForEarlierAttempt
        );
        assert_eq!(
            run(Some(&e), &send(), &Evidence::Nothing, NOW),
            take_over(false, AfterTakeOver::Call)
        );
        assert_eq!(
            run(Some(&e), &withhold(), &Evidence::Nothing, NOW),
            take_over(false, AfterTakeOver::RecordDecision),
            "a deadline that passed while the {state} waited is recorded, not sent"
        );
    }
}

#[test]
fn a_lost_answer_waits_for_statuses_then_is_resent_once() {
    let e = LedgerEntry {
        unknown_since: Some(at(-100)),
        ..entry(SendState::Unknown)
    };
    assert_eq!(
        run(Some(&e), &send(), &Evidence::Nothing, NOW),
        LedgerStep::Wait {
            delay_secs: 20,
            why: Wait::AwaitingStatuses
        }
    );
    assert_eq!(
        run(Some(&e), &send(), &Evidence::Nothing, at(20)),
        take_over(true, AfterTakeOver::Call),
        "the one resend is marked, so a second is refused"
    );
    assert_eq!(
        run(Some(&e), &withhold(), &Evidence::Nothing, at(20)),
        take_over(false, AfterTakeOver::RecordDecision)
    );
    let resent = LedgerEntry { resent: true, ..e };
    assert_eq!(
        run(Some(&resent), &send(), &Evidence::Nothing, at(20)),
        take_over(false, AfterTakeOver::GiveUp),
        "a second lost answer goes to a human"
    );
}

#[test]
fn an_expired_claim_is_treated_as_a_lost_answer_from_when_its_lease_ended() {
    let e = LedgerEntry {
        lease_until: Some(at(-10)),
        ..entry(SendState::InFlight)
    };
    assert_eq!(
        run(Some(&e), &send(), &Evidence::Nothing, NOW),
        LedgerStep::Wait {
            delay_secs: 110,
            why: Wait::AwaitingStatuses
        }
    );
    assert_eq!(
        run(Some(&e), &send(), &Evidence::Nothing, at(110)),
        take_over(true, AfterTakeOver::Call)
    );
    let resent = LedgerEntry {
        resent: true,
        unknown_since: Some(at(-500)),
        ..e
    };
    assert_eq!(
        run(Some(&resent), &send(), &Evidence::Nothing, NOW),
        take_over(false, AfterTakeOver::GiveUp),
        "the resend's worker died too: the wait counts from the first lost answer"
    );
}

#[test]
fn waits_are_never_zero_and_never_overflow() {
    let e = LedgerEntry {
        lease_until: Some(UnixTime::from_secs(i64::MAX)),
        ..entry(SendState::InFlight)
    };
    match run(
        Some(&e),
        &send(),
        &Evidence::Unchecked,
        UnixTime::from_secs(0),
    ) {
        LedgerStep::Wait { delay_secs, .. } => assert_eq!(delay_secs, u32::MAX),
        other => panic!("{other:?}"),
    }
    let e = LedgerEntry {
        unknown_since: Some(NOW),
        ..entry(SendState::Unknown)
    };
    let tiny = LedgerSettings {
        reconcile_wait_secs: 1,
        ..SETTINGS
    };
    let next = step(
        Some(&e),
        &send(),
        FINGERPRINT,
        &Evidence::Nothing,
        NOW,
        &tiny,
    );
    assert_eq!(
        next,
        LedgerStep::Wait {
            delay_secs: 1,
            why: Wait::AwaitingStatuses
        }
    );
}

// ---------------------------------------------------------------------------------------------
// The model: one key, many deliveries, any interleaving.

/// What Meta does with one call.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// Accepted, and the answer reaches us.
    Accepted,
    /// Accepted, the answer reaches us, but recording it fails; `own_record` says whether the
    /// fallback message record was written.
    AcceptedRecordFailed { own_record: bool },
    /// The answer is lost (a timeout after the request was written); `taken` says whether Meta has it.
    Lost { taken: bool },
    /// The worker dies mid-call; `taken` says whether Meta has it.
    Crash { taken: bool },
    /// A transient refusal (rate limit, 5xx with a code): not taken.
    Transient,
    /// A permanent refusal: not taken.
    Permanent,
    /// Refused for the account (token, payment…): not taken; held.
    Account,
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        3 => Just(Answer::Accepted),
        1 => any::<bool>().prop_map(|own_record| Answer::AcceptedRecordFailed { own_record }),
        2 => any::<bool>().prop_map(|taken| Answer::Lost { taken }),
        2 => any::<bool>().prop_map(|taken| Answer::Crash { taken }),
        2 => Just(Answer::Transient),
        1 => Just(Answer::Permanent),
        1 => Just(Answer::Account),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// SQS delivers the record (again) to a new worker.
    Deliver,
    /// One worker performs its next I/O step.
    Advance(usize),
    /// Time passes.
    Tick(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Deliver),
        5 => (0usize..8).prop_map(Op::Advance),
        2 => (0u16..300).prop_map(Op::Tick),
    ]
}

/// A call Meta took, and when its status webhook becomes visible (`None`: never, in this history).
struct Taken {
    wamid: Wamid,
    visible_at: Option<i64>,
}

#[derive(Default)]
struct World {
    now: i64,
    ledger: Option<LedgerEntry>,
    taken: Vec<Taken>,
    /// Our own message records that name the key (written with or after an accepted send).
    own_records: Vec<Wamid>,
    tokens: u32,
    calls: u32,
    /// A resend after a lost answer was made on a look that found nothing while Meta had an earlier
    /// attempt whose status was not yet visible: the one case DESIGN rule 11 allows a duplicate.
    ambiguous_resend: bool,
}

// A test model: a few phases at a time, never worth boxing.
#[allow(clippy::large_enum_variant)]
enum Phase {
    Stepping {
        entry: Option<LedgerEntry>,
        evidence: Evidence,
        /// The look found nothing although Meta had an earlier attempt (its status not yet visible).
        blind: bool,
        steps: usize,
    },
    /// Holds a claim whose lease ends at `lease_until`.
    Calling {
        token: ClaimToken,
        lease_until: i64,
    },
    Finished,
}

impl World {
    fn time(&self) -> UnixTime {
        UnixTime::from_secs(self.now)
    }

    fn token(&mut self) -> ClaimToken {
        self.tokens += 1;
        ClaimToken::new(format!("t{}", self.tokens))
    }

    fn lookup(&self) -> Evidence {
        let status = self
            .taken
            .iter()
            .find(|t| t.visible_at.is_some_and(|v| v <= self.now));
        match (status, self.own_records.first()) {
            (Some(t), _) => Evidence::Sent(t.wamid.clone()),
            (None, Some(w)) => Evidence::Sent(w.clone()),
            (None, None) => Evidence::Nothing,
        }
    }

    /// DynamoDB's `attribute_not_exists` put.
    fn claim(&mut self, key: &IdempotencyKey) -> Result<ClaimToken, Box<LedgerEntry>> {
        if let Some(existing) = &self.ledger {
            return Err(Box::new(existing.clone()));
        }
        let token = self.token();
        self.ledger = Some(LedgerEntry {
            key: key.clone(),
            state: SendState::InFlight,
            fingerprint: Some(FINGERPRINT.into()),
            claim_token: Some(token.clone()),
            lease_until: Some(UnixTime::from_secs(self.now + SETTINGS.lease_secs)),
            unknown_since: None,
            resent: false,
            attempts: 1,
            wamid: None,
            reason: None,
            dead_letter: None,
            updated_at: Some(self.time()),
        });
        Ok(token)
    }

    /// The store's reclaim: conditional on the state and token seen.
    fn reclaim(&mut self, seen: &LedgerEntry, resend_after_unknown: bool) -> Option<ClaimToken> {
        let current = self.ledger.as_ref()?;
        if current.state != seen.state || current.claim_token != seen.claim_token {
            return None;
        }
        let token = self.token();
        let (now, lease) = (self.now, SETTINGS.lease_secs);
        let e = self.ledger.as_mut().expect("checked");
        e.state = SendState::InFlight;
        e.claim_token = Some(token.clone());
        e.lease_until = Some(UnixTime::from_secs(now + lease));
        e.attempts = seen.attempts + 1;
        e.resent |= resend_after_unknown;
        Some(token)
    }

    /// The store's finish and complete: only the claim's holder, only while in flight.
    fn finish(&mut self, token: &ClaimToken, state: SendState, wamid: Option<Wamid>) -> bool {
        let now = self.time();
        match &mut self.ledger {
            Some(e) if e.claim_token.as_ref() == Some(token) && e.state == SendState::InFlight => {
                e.state = state;
                if state == SendState::Unknown {
                    e.unknown_since = Some(now);
                }
                if wamid.is_some() {
                    e.wamid = wamid;
                }
                true
            }
            _ => false,
        }
    }

    fn calling(&self, token: ClaimToken) -> Phase {
        Phase::Calling {
            token,
            lease_until: self.now + SETTINGS.lease_secs,
        }
    }

    /// Meta takes the message: a new wamid, its status visible after `delay` (if ever).
    fn take(&mut self, delay: Option<u16>) -> Wamid {
        let w = wamid(self.taken.len() as u32 + 1);
        self.taken.push(Taken {
            wamid: w.clone(),
            visible_at: delay.map(|d| self.now + i64::from(d)),
        });
        w
    }

    /// One I/O step of a worker, mirroring `outbound::ledger` and `outbound::call`.
    fn advance(
        &mut self,
        phase: Phase,
        next_answer: &mut impl FnMut() -> (Answer, Option<u16>),
    ) -> Phase {
        let key = IdempotencyKey::parse("order-1").unwrap();
        match phase {
            Phase::Finished => Phase::Finished,
            Phase::Stepping { steps, .. } if steps >= 6 => Phase::Finished,
            Phase::Stepping {
                entry,
                evidence,
                blind,
                steps,
            } => {
                let steps = steps + 1;
                match step(
                    entry.as_ref(),
                    &send(),
                    FINGERPRINT,
                    &evidence,
                    self.time(),
                    &SETTINGS,
                ) {
                    LedgerStep::Create => match self.claim(&key) {
                        Ok(token) => self.calling(token),
                        Err(existing) => Phase::Stepping {
                            entry: Some(*existing),
                            evidence,
                            blind,
                            steps,
                        },
                    },
                    LedgerStep::LookForEarlierAttempt => {
                        let evidence = self.lookup();
                        Phase::Stepping {
                            blind: evidence == Evidence::Nothing && !self.taken.is_empty(),
                            evidence,
                            entry,
                            steps,
                        }
                    }
                    LedgerStep::TakeOver {
                        resend_after_unknown,
                        then,
                    } => {
                        let seen = entry.expect("a take-over follows a read");
                        let Some(token) = self.reclaim(&seen, resend_after_unknown) else {
                            return Phase::Finished;
                        };
                        if resend_after_unknown && blind {
                            self.ambiguous_resend = true;
                        }
                        match then {
                            AfterTakeOver::Call => self.calling(token),
                            AfterTakeOver::RecordFound(w) => {
                                self.finish(&token, SendState::Sent, Some(w));
                                Phase::Finished
                            }
                            AfterTakeOver::GiveUp => {
                                self.finish(&token, SendState::OutcomeUnknown, None);
                                Phase::Finished
                            }
                            AfterTakeOver::RecordDecision => {
                                unreachable!("the model always decides to send")
                            }
                        }
                    }
                    LedgerStep::Duplicate(_)
                    | LedgerStep::KeyReused(_)
                    | LedgerStep::Wait { .. } => Phase::Finished,
                }
            }
            // The lease is longer than the function timeout (checked at start-up): a worker still
            // holding its claim when the lease ends has been ended by Lambda, and never calls.
            Phase::Calling { lease_until, .. } if self.now >= lease_until => Phase::Finished,
            Phase::Calling { token, .. } => {
                self.calls += 1;
                let (answer, delay) = next_answer();
                match answer {
                    Answer::Accepted => {
                        let w = self.take(delay);
                        if !self.finish(&token, SendState::Sent, Some(w.clone())) {
                            self.own_records.push(w);
                        }
                    }
                    Answer::AcceptedRecordFailed { own_record } => {
                        let w = self.take(delay);
                        if own_record {
                            self.own_records.push(w);
                        }
                    }
                    Answer::Lost { taken } => {
                        if taken {
                            self.take(delay);
                        }
                        self.finish(&token, SendState::Unknown, None);
                    }
                    Answer::Crash { taken } => {
                        if taken {
                            self.take(delay);
                        }
                    }
                    Answer::Transient => {
                        self.finish(&token, SendState::Retry, None);
                    }
                    Answer::Permanent => {
                        self.finish(&token, SendState::Failed, None);
                    }
                    Answer::Account => {
                        self.finish(&token, SendState::Held, None);
                    }
                }
                Phase::Finished
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// For any history of one key (redeliveries, interleaved workers, lost answers, crashed workers,
    /// expired leases, late or missing status webhooks), Meta takes the message at most once, unless
    /// the documented ambiguous resend happened, and then at most twice. A `sent` entry names a
    /// message Meta really took.
    #[test]
    fn meta_takes_one_key_at_most_once_but_for_the_documented_case(
        ops in prop::collection::vec(op(), 1..80),
        answers in prop::collection::vec((answer(), prop::option::weighted(0.7, 0u16..400)), 1..12),
    ) {
        let mut world = World { now: NOW.secs(), ..World::default() };
        let mut workers: Vec<Phase> = Vec::new();
        let mut next = 0usize;
        let mut next_answer = || {
            let a = answers[next % answers.len()];
            next += 1;
            a
        };
        for op in ops {
            match op {
                Op::Deliver => workers.push(Phase::Stepping {
                    entry: None,
                    evidence: Evidence::Unchecked,
                    blind: false,
                    steps: 0,
                }),
                Op::Advance(i) if !workers.is_empty() => {
                    let i = i % workers.len();
                    let phase = std::mem::replace(&mut workers[i], Phase::Finished);
                    workers[i] = world.advance(phase, &mut next_answer);
                    workers.retain(|w| !matches!(w, Phase::Finished));
                }
                Op::Advance(_) => {}
                Op::Tick(secs) => world.now += i64::from(secs),
            }
        }
        let taken = world.taken.len();
        prop_assert!(taken <= 2, "Meta took the message {taken} times in {} calls", world.calls);
        prop_assert!(
            taken <= 1 || world.ambiguous_resend,
            "Meta took the message twice without the documented ambiguous resend"
        );
        if let Some(e) = &world.ledger {
            if e.state == SendState::Sent {
                let named = e.wamid.as_ref().expect("a sent entry names its wamid");
                prop_assert!(world.taken.iter().any(|t| &t.wamid == named), "sent names a message Meta never took");
            }
        }
    }

    /// With a Meta that always answers, redeliveries never call twice and the key ends `sent`.
    #[test]
    fn with_answers_that_arrive_every_redelivery_is_a_duplicate(
        deliveries in 1usize..10,
        interleave in any::<bool>(),
    ) {
        let mut world = World { now: NOW.secs(), ..World::default() };
        let mut always = || (Answer::Accepted, Some(5));
        let mut workers: Vec<Phase> = (0..deliveries)
            .map(|_| Phase::Stepping { entry: None, evidence: Evidence::Unchecked, blind: false, steps: 0 })
            .collect();
        while !workers.is_empty() {
            let i = if interleave { workers.len() - 1 } else { 0 };
            let phase = std::mem::replace(&mut workers[i], Phase::Finished);
            workers[i] = world.advance(phase, &mut always);
            workers.retain(|w| !matches!(w, Phase::Finished));
        }
        prop_assert_eq!(world.calls, 1);
        prop_assert_eq!(world.ledger.map(|e| e.state), Some(SendState::Sent));
    }
}
