//! The outbound path: a batch of queued send requests through the policy gates, the idempotency
//! ledger and the Graph API (DESIGN rules 10–15). See `docs/sender.md` for the whole story, including
//! what happens when Meta's answer is lost.
//!
//! The shape mirrors the inbound side: `prepare` parses at the edge, `domain::policy::decide` and
//! `domain::ledger::step` decide without I/O, `ledger` and `call` perform what they decide, and
//! this module runs the batch and settles each record with the queue.
//!
//! Each record ends in exactly one of: done (acknowledged), retry (fails in the batch response after
//! its own visibility backoff), or dead-lettered at once with a reason. One record never fails its
//! neighbours.

mod call;
mod consent;
mod ledger;
pub mod pacer;
mod prepare;
pub mod queue;

use std::collections::HashMap;

pub use crate::config::SenderSettings;
pub use pacer::Pacer;
pub use queue::{DeadLetter, QueuedSend, SendQueue};

use crate::domain::contact::ContactState;
use crate::domain::ids::ContactKey;
use crate::domain::ledger::SendState;
use crate::domain::policy::decide;
use crate::domain::time::UnixTime;
use crate::graph::{retry_delay_secs, GraphClient};
use crate::retry::{bounded, jitter};
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;
use ledger::Passage;
use prepare::{Prepared, Request};

/// How a record ended, for logs, metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent {
        fallback: bool,
        reconciled: bool,
    },
    /// The key already had a final outcome.
    Duplicate(SendState),
    /// The policy withheld it before any call: expired, suppressed, window closed (or a later gate's
    /// own state).
    Withheld(SendState),
    Failed {
        code: Option<i64>,
    },
    OutcomeUnknown,
    DeadLettered(&'static str),
    /// A producer's consent request was merged into the contact (`changed`: it was news).
    ConsentRecorded {
        changed: bool,
    },
    /// Fails in the batch response and comes back after `delay_secs`.
    Retry {
        delay_secs: u32,
    },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Sent { .. } => "sent",
            Outcome::Duplicate(_) => "duplicate",
            Outcome::Withheld(state) => state.as_str(),
            Outcome::Failed { .. } => "failed",
            Outcome::OutcomeUnknown => "outcome_unknown",
            Outcome::DeadLettered(_) => "dead_lettered",
            Outcome::ConsentRecorded { .. } => "consent_recorded",
            Outcome::Retry { .. } => "retry",
        }
    }
}

/// What the batch response needs, and what happened to each record.
#[derive(Debug, Clone, Default)]
pub struct BatchResult {
    /// Message ids to report as `batchItemFailures`.
    pub failures: Vec<String>,
    pub outcomes: Vec<(String, Outcome)>,
}

/// Where a record goes next.
enum Next {
    Done(Outcome),
    Retry { delay_secs: u32, why: String },
    DeadLetter(DeadLetter),
}

impl Next {
    /// A transient failure of ours (storage, a lost race): the record's own jittered backoff.
    fn retry(record: &QueuedSend, why: String) -> Next {
        Next::Retry {
            delay_secs: retry_delay_secs(None, record.receive_count, jitter()),
            why,
        }
    }
}

/// Why a sender could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphSetupError),
}

pub struct Sender {
    store: Store,
    graph: GraphClient,
    queue: SendQueue,
    pacer: Pacer,
    settings: SenderSettings,
    metrics: Metrics,
}

impl Sender {
    pub fn new(
        store: Store,
        graph: GraphClient,
        queue: SendQueue,
        pacer: Pacer,
        settings: SenderSettings,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            graph,
            queue,
            pacer,
            settings,
            metrics,
        }
    }

    /// Builds a sender from its configuration and the AWS SDK configuration.
    pub fn from_config(
        config: &crate::config::SenderConfig,
        sdk: &aws_config::SdkConfig,
        metrics: Metrics,
    ) -> Result<Self, SenderError> {
        let store = config.storage.store(aws_sdk_dynamodb::Client::new(sdk));
        let graph = GraphClient::new(config.graph.clone(), config.access_token.clone())?;
        let queue = SendQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            config.queue_url.clone(),
            config.dlq_url.clone(),
        );
        let pacer = Pacer::new(config.rate_per_second, config.burst);
        Ok(Self::new(
            store,
            graph,
            queue,
            pacer,
            config.settings.clone(),
            metrics,
        ))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Handles one SQS batch. Never fails as a whole: every record gets its own fate.
    pub async fn handle_batch(&self, records: Vec<QueuedSend>) -> BatchResult {
        let now = UnixTime::now();
        let prepared: Vec<_> = records
            .iter()
            .map(|r| prepare::prepare(r, self.settings.default_from.as_ref(), now))
            .collect();

        // Consent records first, so an opt-out recorded in this batch holds for the sends beside it
        // (rule 9: before the next send).
        let consents = prepared
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Ok(Request::Consent(c)) => Some(async move { (i, self.record_consent(c).await) }),
                _ => None,
            })
            .collect::<Vec<_>>();
        let mut early: Vec<Option<Result<Next, StoreError>>> =
            records.iter().map(|_| None).collect();
        for (i, next) in bounded(consents, self.settings.concurrency).await {
            early[i] = Some(next);
        }

        // One batched read of every recipient's contact (following phone aliases).
        let keys: Vec<ContactKey> = prepared
            .iter()
            .filter_map(|p| match p {
                Ok(Request::Send(p)) => Some(p),
                _ => None,
            })
            .flat_map(|p| p.lookup_keys().cloned())
            .collect();
        let contacts = if keys.is_empty() {
            Ok(HashMap::new())
        } else {
            self.store.find_contacts(&keys).await
        };

        let work = records
            .iter()
            .zip(prepared)
            .zip(early)
            .map(|((record, prepared), early)| {
                let contacts = &contacts;
                let category = match &prepared {
                    Ok(Request::Send(p)) => p.request.category.as_str(),
                    Ok(Request::Consent(_)) => "consent",
                    Err(_) => "unknown",
                };
                async move {
                    let next = match (prepared, contacts) {
                        (Err(refusal), _) => self.refuse(refusal, now).await,
                        (Ok(Request::Consent(_)), _) => {
                            early.expect("every consent record was recorded above")
                        }
                        (Ok(Request::Send(p)), Ok(contacts)) => {
                            let contact = person_of(&p, contacts);
                            self.process(record, &p, contact, now).await
                        }
                        (Ok(Request::Send(_)), Err(e)) => {
                            Ok(Next::retry(record, format!("could not read contacts: {e}")))
                        }
                    };
                    let next =
                        next.unwrap_or_else(|e| Next::retry(record, format!("storage: {e}")));
                    (record, category, self.settle(record, next, now).await)
                }
            })
            .collect::<Vec<_>>();
        let results = bounded(work, self.settings.concurrency).await;

        let mut batch = BatchResult::default();
        // Per (outcome, category): the dashboard's "sends by outcome and category".
        let mut counts: HashMap<(&'static str, &'static str), u64> = HashMap::new();
        for (record, category, outcome) in results {
            *counts.entry((outcome.name(), category)).or_default() += 1;
            if matches!(outcome, Outcome::Retry { .. }) {
                batch.failures.push(record.message_id.clone());
            }
            batch.outcomes.push((record.message_id.clone(), outcome));
        }
        for ((outcome, category), n) in counts {
            self.metrics.emit_with(
                &[("Outcome", outcome), ("Category", category)],
                &[("Sends", n)],
            );
        }
        batch
    }

    /// One valid request: the policy decides, the ledger admits (or not), Meta is called.
    async fn process(
        &self,
        record: &QueuedSend,
        p: &Prepared,
        contact: Option<(ContactKey, ContactState)>,
        now: UnixTime,
    ) -> Result<Next, StoreError> {
        let decision = decide(
            &p.request,
            contact.as_ref().map(|(_, c)| c),
            now,
            &self.settings.policy,
        );
        match self
            .through_ledger(record, p, &contact, &decision, now)
            .await?
        {
            Passage::Done(next) => Ok(next),
            Passage::Call {
                token,
                message,
                fallback,
            } => {
                self.call(record, p, &contact, &message, fallback, &token)
                    .await
            }
        }
    }

    /// Applies a record's fate to the queue. A queue call that fails turns the record into a retry.
    async fn settle(&self, record: &QueuedSend, next: Next, now: UnixTime) -> Outcome {
        match next {
            Next::Done(outcome) => {
                tracing::info!(event = "send_outcome", message_id = %record.message_id, outcome = outcome.name(), detail = ?outcome, "record done");
                outcome
            }
            Next::Retry { delay_secs, why } => {
                if let Err(e) = self.queue.delay(record, delay_secs).await {
                    tracing::warn!(event = "visibility_change_failed", message_id = %record.message_id, error = %e, "the record will come back after the queue's visibility timeout");
                }
                tracing::info!(event = "send_retry", message_id = %record.message_id, delay_secs, receive_count = record.receive_count, reason = %why, "record will be retried");
                Outcome::Retry { delay_secs }
            }
            Next::DeadLetter(letter) => match self.queue.dead_letter(record, &letter, now).await {
                Ok(()) => {
                    tracing::warn!(event = "dead_lettered", message_id = %record.message_id, code = letter.code, reason = %letter.reason, "request moved to the DLQ");
                    Outcome::DeadLettered(letter.code)
                }
                Err(e) => {
                    tracing::error!(event = "dead_letter_failed", message_id = %record.message_id, error = %e, "could not write to the DLQ; retrying the record");
                    Outcome::Retry { delay_secs: 30 }
                }
            },
        }
    }
}

/// The recipient's contact: the canonical key's person, with any state still kept under an older
/// spelling of their number joined in (a fold the next inbound write makes for good), so an opt-out
/// stored before keys were canonical is honoured now.
fn person_of(
    p: &Prepared,
    contacts: &HashMap<ContactKey, Option<(ContactKey, ContactState)>>,
) -> Option<(ContactKey, ContactState)> {
    let mut found = p
        .lookup_keys()
        .filter_map(|k| contacts.get(k).cloned().flatten());
    let (home, mut state) = found.next()?;
    for (other_home, other) in found {
        if other_home != home {
            state.join(&other);
        }
    }
    Some((home, state))
}
