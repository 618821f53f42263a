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

pub mod breaker;
mod call;
mod consent;
mod frequency;
mod ledger;
pub mod media;
pub mod pacer;
mod prepare;
pub mod queue;
mod templates;
pub mod token;

use std::collections::HashMap;
use std::time::Instant;

pub use crate::config::SenderSettings;
pub use breaker::AccountBreaker;
pub use media::MediaUploads;
pub use pacer::Pacer;
pub use queue::{DeadLetter, QueuedSend, SendQueue};
pub use token::TokenSource;

use crate::domain::contact::ContactState;
use crate::domain::ids::ContactKey;
use crate::domain::ledger::SendState;
use crate::domain::media::MediaCaps;
use crate::domain::policy::{decide, Decision};
use crate::domain::preferences::Category;
use crate::domain::send_request::{IdempotencyKey, OutboundMessage, SendRequest};
use crate::domain::template::TemplateVerdict;
use crate::domain::time::UnixTime;
use crate::graph::errors::TEMPLATE_PAUSED;
use crate::graph::media::MediaDownloadConfig;
use crate::graph::{retry_delay_secs, GraphClient};
use crate::retry::{bounded, jitter};
use crate::store::{self, Store, StoreError};
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
    /// The account cannot send (Meta's code, or the breaker after it): comes back after
    /// `delay_secs`, and goes once the account works.
    Held {
        code: Option<i64>,
        delay_secs: u32,
    },
    OutcomeUnknown,
    /// Held on its last allowed delivery: a fresh copy went back on the queue (this one is done).
    Requeued {
        code: Option<i64>,
    },
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
            Outcome::Held { .. } => "held",
            Outcome::OutcomeUnknown => "outcome_unknown",
            Outcome::Requeued { .. } => "held_requeued",
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
    Retry {
        delay_secs: u32,
        why: String,
    },
    /// Like a retry, for an account that cannot send.
    Held {
        delay_secs: u32,
        code: Option<i64>,
        why: String,
    },
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
    breaker: AccountBreaker,
    /// Where the access token is read again from after Meta refuses it (`None`: it cannot change).
    token_source: Option<TokenSource>,
    /// Files from S3 for media sends (`None`: a media send is refused, naming why).
    media: Option<MediaUploads>,
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
            breaker: AccountBreaker::new(settings.account.pause),
            store,
            graph,
            queue,
            pacer,
            settings,
            metrics,
            token_source: None,
            media: None,
        }
    }

    /// Sends files from S3 (media sends).
    pub fn with_media(mut self, media: MediaUploads) -> Self {
        self.media = Some(media);
        self
    }

    /// Re-reads the access token from `source` when Meta refuses it for the account.
    pub fn with_token_source(mut self, source: TokenSource) -> Self {
        self.token_source = Some(source);
        self
    }

    /// Builds a sender from its configuration and the AWS SDK configuration.
    pub fn from_config(
        config: &crate::config::SenderConfig,
        sdk: &aws_config::SdkConfig,
        metrics: Metrics,
    ) -> Result<Self, SenderError> {
        // Every AWS call of the sender within its deadlines (checked against the function timeout).
        let sdk = &config.deadlines.apply(sdk);
        let store = config.storage.store(aws_sdk_dynamodb::Client::new(sdk));
        let graph = GraphClient::new(config.graph.clone(), config.access_token.clone())?;
        let queue = SendQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            config.queue_url.clone(),
            config.dlq_url.clone(),
        );
        let pacer = Pacer::new(config.rate_per_second, config.burst);
        if config.settings.allowed_from.is_empty() {
            tracing::warn!(event = "any_sender_number", "neither WAHOOK_ALLOWED_PHONE_NUMBER_IDS nor WAHOOK_DEFAULT_PHONE_NUMBER_ID is set: requests may send from any number the access token reaches");
        }
        let media = MediaUploads::new(
            graph.clone(),
            MediaDownloadConfig::default(),
            crate::aws::s3_client(sdk),
            MediaCaps::outbound(),
        );
        let sender = Self::new(store, graph, queue, pacer, config.settings.clone(), metrics)
            .with_media(media);
        Ok(match &config.access_token_source {
            crate::config::SecretRef::Value(_) => sender,
            source => sender.with_token_source(TokenSource::new(
                "WAHOOK_ACCESS_TOKEN",
                source.clone(),
                crate::config::SecretResolver::new(sdk.clone()),
                config.token_reread_interval,
            )),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Handles one SQS batch with no invocation deadline (tests, benchmarks).
    pub async fn handle_batch(&self, records: Vec<QueuedSend>) -> BatchResult {
        self.handle_batch_before(records, None).await
    }

    /// Handles one SQS batch. Never fails as a whole: every record gets its own fate. A send is
    /// started only while `deadline` (the invocation's) leaves `record_budget` for its Graph call and
    /// its records; a later one goes back to the queue unclaimed, so Lambda never ends us mid-call.
    pub async fn handle_batch_before(
        &self,
        records: Vec<QueuedSend>,
        deadline: Option<Instant>,
    ) -> BatchResult {
        let now = UnixTime::now();
        let budget = self.settings.record_budget;
        let time_left = |d: Instant| d.saturating_duration_since(Instant::now());
        let prepared: Vec<_> = records
            .iter()
            .map(|r| {
                prepare::prepare(r, &self.settings, now).map(|mut request| {
                    if let Request::Send(p) = &mut request {
                        p.deadline = deadline;
                    }
                    request
                })
            })
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
        // And one of the template registry, for every template the batch may send.
        let requests = || prepared.iter().filter_map(|p| p.as_ref().ok());
        let registry = self.read_registry(requests()).await;
        let mismatches = match &registry {
            Ok(registry) => self.category_mismatches(requests(), registry),
            Err(_) => 0,
        };
        // And, with a marketing cap, one of the recipients' marketing counts.
        let counts = match &contacts {
            Ok(contacts) => {
                let homes = requests().map(|r| {
                    let home = match r {
                        Request::Send(p) => home_of(p, contacts),
                        Request::Consent(_) => None,
                    };
                    (r, home)
                });
                self.read_marketing_counts(homes).await
            }
            // Every send retries on the contacts' error below.
            Err(_) => Ok(None),
        };

        let work = records
            .iter()
            .zip(prepared)
            .zip(early)
            .map(|((record, prepared), early)| {
                let contacts = &contacts;
                let registry = &registry;
                let counts = &counts;
                let category = match &prepared {
                    Ok(Request::Send(p)) => p.request.category.as_str(),
                    Ok(Request::Consent(_)) => "consent",
                    Err(_) => "unknown",
                };
                let key = match &prepared {
                    Ok(Request::Send(p)) => Some(p.request.idempotency_key.clone()),
                    _ => None,
                };
                async move {
                    let next = match (prepared, contacts) {
                        (Err(refusal), _) => self.refuse(refusal, now).await,
                        (Ok(Request::Consent(_)), _) => {
                            early.expect("every consent record was recorded above")
                        }
                        (Ok(Request::Send(_)), _)
                            if deadline.is_some_and(|d| time_left(d) < budget) =>
                        {
                            Ok(Next::Retry {
                                delay_secs: 0,
                                why: format!(
                                    "less than {} ms left in this invocation: not started, back to the queue unclaimed",
                                    budget.as_millis()
                                ),
                            })
                        }
                        (Ok(Request::Send(p)), Ok(_))
                            if counts.is_err() && Self::needs_registry(&p) =>
                        {
                            Ok(Next::retry(
                            record,
                            format!(
                                "could not read the marketing counts: {}",
                                counts.as_ref().err().expect("checked")
                            ),
                        ))
                        }
                        (Ok(Request::Send(p)), Ok(contacts)) => {
                            let counts = counts.as_ref().ok().and_then(Option::as_ref);
                            match registry {
                                Ok(registry) => {
                                    let contact = person_of(&p, contacts);
                                    self.process(record, &p, contact, registry, counts, now)
                                        .await
                                }
                                // Text that can send no template does not need the registry.
                                Err(_) if !Self::needs_registry(&p) => {
                                    let contact = person_of(&p, contacts);
                                    let none = templates::Registry::new();
                                    self.process(record, &p, contact, &none, counts, now).await
                                }
                                Err(e) => Ok(Next::retry(
                                    record,
                                    format!("could not read the template registry: {e}"),
                                )),
                            }
                        }
                        (Ok(Request::Send(_)), Err(e)) => {
                            Ok(Next::retry(record, format!("could not read contacts: {e}")))
                        }
                    };
                    let next =
                        next.unwrap_or_else(|e| Next::retry(record, format!("storage: {e}")));
                    (
                        record,
                        category,
                        self.settle(record, key.as_ref(), next, now).await,
                    )
                }
            })
            .collect::<Vec<_>>();
        let results = bounded(work, self.settings.concurrency).await;

        let mut batch = BatchResult::default();
        // Per (outcome, category): the dashboard's "sends by outcome and category".
        let mut counts: HashMap<(&'static str, &'static str), u64> = HashMap::new();
        for (record, category, outcome) in results {
            *counts.entry((outcome.name(), category)).or_default() += 1;
            if matches!(outcome, Outcome::Retry { .. } | Outcome::Held { .. }) {
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
        let failed = batch
            .outcomes
            .iter()
            .filter(|(_, o)| {
                matches!(
                    o,
                    Outcome::Failed { .. }
                        | Outcome::Withheld(
                            SendState::TemplateUnavailable | SendState::InvalidParameters
                        )
                )
            })
            .count();
        if failed > 0 {
            // Across categories, for the failed-sends alarm (the per-category counts are above).
            self.metrics.emit(&[("FailedSends", failed as u64)]);
        }
        if mismatches > 0 {
            self.metrics.emit(&[("CategoryMismatch", mismatches)]);
        }
        // The cap working as configured is not a failure: its own count, no alarm.
        let capped = batch
            .outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Withheld(SendState::FrequencyCapped)))
            .count();
        if capped > 0 {
            self.metrics.emit(&[("FrequencyCapped", capped as u64)]);
        }
        let halted = self.breaker.halted_numbers();
        if halted > 0 {
            // One datum per batch while any number is halted: the alarm's signal.
            self.metrics.emit(&[("AccountHalted", halted as u64)]);
        }
        batch
    }

    /// One valid request: the policy decides, the ledger admits (or not), Meta is called.
    async fn process(
        &self,
        record: &QueuedSend,
        p: &Prepared,
        contact: Option<(ContactKey, ContactState)>,
        registry: &templates::Registry,
        counts: Option<&frequency::MarketingCounts>,
        now: UnixTime,
    ) -> Result<Next, StoreError> {
        // Meta's category, not the producer's label, is what the opt-outs and consent gate.
        let relabelled = self
            .meta_category(p, registry)
            .filter(|meta| *meta != p.request.category)
            .map(|meta| SendRequest {
                category: meta,
                ..p.request.clone()
            });
        let mut request = relabelled.as_ref().unwrap_or(&p.request);
        let mut decision = decide(
            request,
            contact.as_ref().map(|(_, c)| c),
            now,
            &self.settings.policy,
        );
        // A text whose fallback goes instead: the fallback's own category is the one to meet.
        let fallback_relabelled = match &decision {
            Decision::Send {
                message,
                fallback: true,
            } => self
                .category_of(message, registry)
                .filter(|meta| *meta != request.category)
                .map(|meta| SendRequest {
                    category: meta,
                    ..request.clone()
                }),
            _ => None,
        };
        if let Some(r) = &fallback_relabelled {
            request = r;
            decision = decide(
                request,
                contact.as_ref().map(|(_, c)| c),
                now,
                &self.settings.policy,
            );
        }
        let decision = match self.template_gate(&decision, registry, now) {
            None | Some(TemplateVerdict::Send { .. }) => decision,
            Some(TemplateVerdict::Unavailable { reason }) => Decision::Withhold {
                state: SendState::TemplateUnavailable,
                reason,
            },
            Some(TemplateVerdict::InvalidParameters { reason }) => Decision::Withhold {
                state: SendState::InvalidParameters,
                reason,
            },
            // Nothing is claimed: the record waits in the queue, like a send the account holds.
            Some(TemplateVerdict::Wait { reason }) => {
                return Ok(Next::Held {
                    delay_secs: self.hold_delay(p),
                    code: Some(TEMPLATE_PAUSED),
                    why: reason,
                })
            }
        };
        // What the records say of the send is what the gates used: Meta's category, and where it
        // goes. The fingerprint is the request's own, so the ledger sees the same request either
        // way.
        let endpoint = self.endpoint_for(&decision, registry);
        let fallback_category = request
            .fallback_template
            .as_ref()
            .and_then(|t| self.category_of(&OutboundMessage::Template(t.clone()), registry));
        let gated;
        let p = if std::ptr::eq(request, &p.request)
            && endpoint == p.endpoint
            && fallback_category.is_none()
        {
            p
        } else {
            gated = p.regated(request.clone(), endpoint, fallback_category);
            &gated
        };
        match self
            .through_ledger(record, p, &contact, &decision, now)
            .await?
        {
            Passage::Done(next) => Ok(next),
            Passage::Call {
                token,
                message,
                fallback,
                resend,
            } => {
                // The per-person cap, once the key is ours to send (a duplicate or a wait takes no
                // place), by Meta's category like the opt-outs, and for templates only. A resend
                // after a lost answer is not refused: its first attempt may have been delivered.
                let capped = match counts {
                    Some(counts)
                        if !resend
                            && p.request.category == Category::Marketing
                            && matches!(message, OutboundMessage::Template(_)) =>
                    {
                        counts.admit(p, &contact, now).err()
                    }
                    _ => None,
                };
                if let Some(reason) = capped {
                    let state = SendState::FrequencyCapped;
                    let decided = store::sends::Finish::Decided {
                        state,
                        reason: &reason,
                    };
                    self.finish_claimed(&p.request.idempotency_key, &token, &decided, now)
                        .await?;
                    return Ok(Next::Done(Outcome::Withheld(state)));
                }
                self.call(record, p, &contact, &message, fallback, &token, false)
                    .await
            }
        }
    }

    /// Records an outcome decided under our claim, with a few tries: a claim left in flight would
    /// later look like a lost answer and be resent (past the cap, or to someone who opted out).
    pub(super) async fn finish_claimed(
        &self,
        key: &IdempotencyKey,
        token: &crate::domain::ledger::ClaimToken,
        finish: &store::sends::Finish<'_>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let mut rounds = crate::retry::Rounds::new();
        let mut last = None;
        while let Some(attempt) = rounds.next().await {
            match self.store.finish_send(key, token, finish, now).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    tracing::warn!(event = "record_decided_retry", key_hash = %key.hashed(), attempt, error = %e, "recording a decided outcome failed; trying again");
                    last = Some(e);
                }
            }
        }
        Err(last.expect("Rounds gives at least one attempt"))
    }

    /// Applies a record's fate to the queue. A queue call that fails turns the record into a retry.
    /// A record that would be retried on its last allowed delivery is dead-lettered here instead,
    /// with its last error, so it does not vanish into the DLQ without a reason.
    async fn settle(
        &self,
        record: &QueuedSend,
        key: Option<&IdempotencyKey>,
        next: Next,
        now: UnixTime,
    ) -> Outcome {
        let last = record.receive_count >= self.settings.max_receive_count;
        let next = match next {
            // An account outage can outlast any receive count: a held send is never given up on.
            Next::Held {
                delay_secs,
                code,
                why,
            } if last => match self.queue.requeue(record, delay_secs).await {
                Ok(()) => {
                    tracing::warn!(event = "send_held_requeued", message_id = %record.message_id, code, delay_secs, reason = %why, "held on its last allowed delivery: a fresh copy is back on the queue");
                    return Outcome::Requeued { code };
                }
                Err(e) => {
                    let why = format!("{why}; requeueing it failed: {e}");
                    self.retries_exhausted(record, key, why, now).await
                }
            },
            Next::Retry { why, .. } if last => self.retries_exhausted(record, key, why, now).await,
            other => other,
        };
        match next {
            Next::Done(outcome) => {
                tracing::info!(event = "send_outcome", message_id = %record.message_id, outcome = outcome.name(), detail = ?outcome, "record done");
                outcome
            }
            Next::Retry { delay_secs, why } => {
                self.delay(record, delay_secs).await;
                tracing::info!(event = "send_retry", message_id = %record.message_id, delay_secs, receive_count = record.receive_count, reason = %why, "record will be retried");
                Outcome::Retry { delay_secs }
            }
            Next::Held {
                delay_secs,
                code,
                why,
            } => {
                self.delay(record, delay_secs).await;
                tracing::warn!(event = "send_held", message_id = %record.message_id, delay_secs, code, receive_count = record.receive_count, reason = %why, "the account or the template cannot send now; the record waits");
                Outcome::Held { code, delay_secs }
            }
            Next::DeadLetter(letter) => match self.queue.dead_letter(record, &letter, now).await {
                Ok(()) => {
                    // The reason is on the DLQ message (`wahook-reason`): it can name the key.
                    tracing::warn!(event = "dead_lettered", message_id = %record.message_id, code = letter.code, "request moved to the DLQ");
                    Outcome::DeadLettered(letter.code)
                }
                Err(e) => {
                    tracing::error!(event = "dead_letter_failed", message_id = %record.message_id, error = %e, "could not write to the DLQ; retrying the record");
                    self.delay(record, 30).await;
                    Outcome::Retry { delay_secs: 30 }
                }
            },
        }
    }

    async fn delay(&self, record: &QueuedSend, secs: u32) {
        if let Err(e) = self.queue.delay(record, secs).await {
            tracing::warn!(event = "visibility_change_failed", message_id = %record.message_id, error = %e, "the record will come back after the queue's visibility timeout");
        }
    }

    /// The record's last allowed delivery would end in another retry: dead-letter it with the
    /// last error, and note it on the ledger entry (which stays retryable, so a redrive from the
    /// DLQ sends it).
    async fn retries_exhausted(
        &self,
        record: &QueuedSend,
        key: Option<&IdempotencyKey>,
        why: String,
        now: UnixTime,
    ) -> Next {
        let reason = crate::domain::send_request::cap_reason(format!(
            "still failing after {} deliveries (WAHOOK_MAX_RECEIVE_COUNT {}); last error: {why}. Fix the cause, then redrive this message from the DLQ (never resend it under a new key: if the last error says the message may have been sent, the ledger reconciles a redrive, a new key would send it twice)",
            record.receive_count, self.settings.max_receive_count
        ));
        if let Some(key) = key {
            if let Err(e) = self
                .store
                .note_dead_lettered(key, "retries_exhausted", &reason, now)
                .await
            {
                tracing::warn!(event = "ledger_note_failed", key_hash = %key.hashed(), error = %e, "could not note the dead letter on the ledger entry");
            }
        }
        Next::DeadLetter(DeadLetter {
            code: "retries_exhausted",
            reason,
        })
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

/// The home key of the recipient's contact, when there is one.
fn home_of<'a>(
    p: &Prepared,
    contacts: &'a HashMap<ContactKey, Option<(ContactKey, ContactState)>>,
) -> Option<&'a ContactKey> {
    p.lookup_keys()
        .find_map(|k| contacts.get(k)?.as_ref().map(|(home, _)| home))
}
