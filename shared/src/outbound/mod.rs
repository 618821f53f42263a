//! The outbound path: a batch of queued send requests through the policy gates, the idempotency
//! ledger and the Graph API (DESIGN rules 10–15). See `docs/sender.md` for the whole story, including
//! what happens when Meta's answer is lost.
//!
//! Each record ends in exactly one of: done (acknowledged), retry (fails in the batch response after
//! its own visibility backoff), or dead-lettered at once with a reason. One record never fails its
//! neighbours.

pub mod pacer;
pub mod queue;

use std::collections::HashMap;
use std::future::Future;

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

pub use pacer::Pacer;
pub use queue::{DeadLetter, QueuedSend, SendQueue};

use crate::domain::contact::ContactState;
use crate::domain::ids::{ContactKey, PhoneNumberId, UserId, UserRef};
use crate::domain::policy::{decide, Decision, PolicyConfig};
use crate::domain::preferences::{Category, Consent, Preference, PreferenceSource};
use crate::domain::send_request::{OutboundMessage, SendRequest};
use crate::domain::time::UnixTime;
use crate::graph::errors::{MARKETING_STOPPED, WINDOW_CLOSED};
use crate::graph::{retry_delay_secs, ErrorClass, GraphClient, GraphError};
use crate::store::messages::OutboundSend;
use crate::store::sends::{Claim, Finish, LedgerEntry, SendState, SendSummary};
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;

/// Tunables of the sender.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// The business number used when a request has no `from`.
    pub default_from: Option<PhoneNumberId>,
    pub policy: PolicyConfig,
    /// Records of one batch in flight at once.
    pub concurrency: usize,
    /// How long a claim protects a key from other workers; longer than a Graph call can take.
    pub lease_secs: i64,
    /// After a lost answer, how long to wait for Meta's status webhooks before resending once.
    pub reconcile_wait_secs: i64,
}

/// How a record ended, for logs, metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent {
        fallback: bool,
        reconciled: bool,
    },
    /// The key already had a final outcome.
    Duplicate(SendState),
    Expired,
    Suppressed,
    WindowClosed,
    Failed {
        code: Option<i64>,
    },
    OutcomeUnknown,
    DeadLettered(&'static str),
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
            Outcome::Expired => "expired",
            Outcome::Suppressed => "suppressed",
            Outcome::WindowClosed => "window_closed",
            Outcome::Failed { .. } => "failed",
            Outcome::OutcomeUnknown => "outcome_unknown",
            Outcome::DeadLettered(_) => "dead_lettered",
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

/// A request that parsed, with its sender number.
struct Prepared {
    request: SendRequest,
    from: PhoneNumberId,
    contact_key: ContactKey,
}

/// What to do with a key once the policy has spoken.
#[derive(Clone)]
enum Intent {
    Send {
        message: OutboundMessage,
        fallback: bool,
    },
    Decided {
        state: SendState,
        reason: String,
    },
}

/// One record past its policy decision, on the way through the ledger: what every step of a
/// redelivery, a retry or a lost answer needs.
struct Attempt<'r> {
    record: &'r QueuedSend,
    p: &'r Prepared,
    contact: &'r Option<(ContactKey, ContactState)>,
    intent: &'r Intent,
    now: UnixTime,
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
    ) -> Result<Self, String> {
        let store = Store::new(
            aws_sdk_dynamodb::Client::new(sdk),
            config.tables.clone(),
            config.retention_days,
        );
        let graph = GraphClient::new(config.graph.clone(), config.access_token.clone())?;
        let queue = SendQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            config.queue_url.clone(),
            config.dlq_url.clone(),
        );
        let settings = SenderSettings {
            default_from: config.default_from.clone(),
            policy: config.policy.clone(),
            concurrency: config.concurrency,
            lease_secs: config.lease_secs,
            reconcile_wait_secs: config.reconcile_wait_secs,
        };
        let pacer = Pacer::new(config.rate_per_second, config.burst);
        Ok(Self::new(store, graph, queue, pacer, settings, metrics))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Handles one SQS batch. Never fails as a whole: every record gets its own fate.
    pub async fn handle_batch(&self, records: Vec<QueuedSend>) -> BatchResult {
        let now = UnixTime::now();
        let prepared: Vec<Result<Prepared, (DeadLetter, Option<SendRequestKey>)>> =
            records.iter().map(|r| self.prepare(r)).collect();

        // One batched read of every recipient's contact (following phone aliases).
        let keys: Vec<ContactKey> = prepared
            .iter()
            .filter_map(|p| p.as_ref().ok().map(|p| p.contact_key.clone()))
            .collect();
        let contacts = if keys.is_empty() {
            Ok(HashMap::new())
        } else {
            self.store.find_contacts(&keys).await
        };

        let work = records
            .iter()
            .zip(prepared)
            .map(|(record, prepared)| {
                let contacts = &contacts;
                let category = prepared
                    .as_ref()
                    .map_or("unknown", |p| p.request.category.as_str());
                async move {
                    let next = match (prepared, contacts) {
                        (Err((letter, key)), _) => self.refuse(letter, key, now).await,
                        (Ok(p), Ok(contacts)) => {
                            let contact = contacts.get(&p.contact_key).cloned().flatten();
                            self.process(record, &p, contact, now).await
                        }
                        (Ok(_), Err(e)) => Ok(Next::Retry {
                            delay_secs: retry_delay_secs(
                                None,
                                record.receive_count,
                                crate::store::jitter(),
                            ),
                            why: format!("could not read contacts: {e}"),
                        }),
                    };
                    let next = next.unwrap_or_else(|e| Next::Retry {
                        delay_secs: retry_delay_secs(
                            None,
                            record.receive_count,
                            crate::store::jitter(),
                        ),
                        why: format!("storage: {e}"),
                    });
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

    fn prepare(
        &self,
        record: &QueuedSend,
    ) -> Result<Prepared, (DeadLetter, Option<SendRequestKey>)> {
        let request = SendRequest::parse(&record.body).map_err(|e| {
            (
                DeadLetter {
                    code: "invalid_request",
                    reason: format!("{e}. Fix the producer; this message is never retried."),
                },
                e.idempotency_key,
            )
        })?;
        let from = request
            .from
            .clone()
            .or_else(|| self.settings.default_from.clone())
            .ok_or_else(|| {
                (
                    DeadLetter {
                        code: "no_sender_number",
                        reason: "from: not set, and no WAHOOK_DEFAULT_PHONE_NUMBER_ID is configured: set one of them".into(),
                    },
                    Some(request.idempotency_key.clone()),
                )
            })?;
        let contact_key = ContactKey::new(&from, &request.to);
        Ok(Prepared {
            request,
            from,
            contact_key,
        })
    }

    /// An invalid request: recorded as rejected under its key when it has one, then dead-lettered.
    async fn refuse(
        &self,
        letter: DeadLetter,
        key: Option<SendRequestKey>,
        now: UnixTime,
    ) -> Result<Next, StoreError> {
        if let Some(key) = key {
            self.store
                .record_rejected(&key, &letter.reason, now)
                .await?;
        }
        Ok(Next::DeadLetter(letter))
    }

    async fn process(
        &self,
        record: &QueuedSend,
        p: &Prepared,
        contact: Option<(ContactKey, ContactState)>,
        now: UnixTime,
    ) -> Result<Next, StoreError> {
        let req = &p.request;
        let state = contact.as_ref().map(|(_, c)| c);
        let intent = match decide(req, state, now, &self.settings.policy) {
            Decision::Send { message, fallback } => Intent::Send { message, fallback },
            Decision::Expired => Intent::Decided {
                state: SendState::Expired,
                reason: "not_after passed before the message could be sent".into(),
            },
            Decision::Suppressed { reason } => Intent::Decided {
                state: SendState::Suppressed,
                reason,
            },
            Decision::WindowClosed => Intent::Decided {
                state: SendState::WindowClosed,
                reason: "free-form text outside the 24 h customer service window, and no fallback_template".into(),
            },
        };
        let summary = summary_of(p, &intent);
        let attempt = Attempt {
            record,
            p,
            contact: &contact,
            intent: &intent,
            now,
        };
        match &intent {
            Intent::Decided { state, reason } => {
                match self
                    .store
                    .record_decided(&req.idempotency_key, &summary, *state, reason, now)
                    .await?
                {
                    None => Ok(Next::Done(decided_outcome(*state))),
                    Some(existing) => self.existing(&attempt, existing).await,
                }
            }
            Intent::Send { message, fallback } => {
                match self
                    .store
                    .claim_send(
                        &req.idempotency_key,
                        &summary,
                        now,
                        self.settings.lease_secs,
                    )
                    .await?
                {
                    Claim::Claimed { token } => {
                        self.call(record, p, &contact, message, *fallback, &token)
                            .await
                    }
                    Claim::Existing(existing) => self.existing(&attempt, existing).await,
                }
            }
        }
    }

    /// The key is already in the ledger: a redelivery, a retry, or a send whose answer was lost.
    async fn existing(&self, a: &Attempt<'_>, entry: LedgerEntry) -> Result<Next, StoreError> {
        let (p, now) = (a.p, a.now);
        let key = &p.request.idempotency_key;
        if entry
            .fingerprint
            .as_deref()
            .is_some_and(|f| f != p.request.fingerprint)
        {
            return Ok(Next::DeadLetter(DeadLetter {
                code: "key_reused",
                reason: format!(
                    "idempotency_key {:?} was already used for a different message (now {}); use a new key for each message",
                    key.as_str(),
                    entry.state.as_str()
                ),
            }));
        }
        if entry.state.is_final() {
            return Ok(Next::Done(Outcome::Duplicate(entry.state)));
        }
        let lease_live = entry.lease_until.is_some_and(|l| l > now);
        match entry.state {
            SendState::InFlight if lease_live => Ok(Next::Retry {
                delay_secs: (entry.lease_until.map_or(1, |l| l.secs() - now.secs()) + 1).max(1)
                    as u32,
                why: "another worker holds this key's claim".into(),
            }),
            // A lease that ran out mid-call is a lost answer too: the worker may have sent.
            SendState::InFlight | SendState::Unknown => self.reconcile(a, entry).await,
            SendState::Retry => {
                // A retry is safe to send again, but check Meta did not take it after all.
                if let Some(next) = self.found_sent(a, &entry).await? {
                    return Ok(next);
                }
                self.take_over(a, &entry, false).await
            }
            _ => unreachable!("final states returned above"),
        }
    }

    /// After a lost answer: find the message through Meta's status webhooks, or wait for them, then
    /// resend once; a second lost answer gives up (`outcome_unknown`).
    async fn reconcile(&self, a: &Attempt<'_>, entry: LedgerEntry) -> Result<Next, StoreError> {
        let now = a.now;
        if let Some(next) = self.found_sent(a, &entry).await? {
            return Ok(next);
        }
        let since = entry.unknown_since.or(entry.lease_until).unwrap_or(now);
        let ready_at = since.secs() + self.settings.reconcile_wait_secs;
        if now.secs() < ready_at {
            return Ok(Next::Retry {
                delay_secs: (ready_at - now.secs()).max(1) as u32,
                why: "the last attempt's answer was lost; waiting for Meta's status webhooks before deciding to resend".into(),
            });
        }
        let key = &a.p.request.idempotency_key;
        match a.intent {
            Intent::Send { .. } if entry.resent => {
                let Some(token) = self
                    .store
                    .reclaim_send(&entry, now, self.settings.lease_secs, false)
                    .await?
                else {
                    return Ok(lost_race());
                };
                let message = "Meta's answer was lost twice and no status webhook names either attempt; check the recipient's chat before sending again under a new key";
                self.store
                    .finish_send(key, &token, &Finish::OutcomeUnknown { message }, now)
                    .await?;
                tracing::error!(
                    event = "outcome_unknown",
                    idempotency_key = key.as_str(),
                    "{message}"
                );
                Ok(Next::Done(Outcome::OutcomeUnknown))
            }
            Intent::Send { .. } => {
                tracing::warn!(
                    event = "resend_after_lost_answer",
                    idempotency_key = key.as_str(),
                    "no status webhook names the earlier attempt; sending once more (the one duplicate wahook allows)"
                );
                self.take_over(a, &entry, true).await
            }
            Intent::Decided { .. } => self.take_over(a, &entry, false).await,
        }
    }

    /// Takes the key over from the ledger entry seen, then sends (again) or records the decision.
    async fn take_over(
        &self,
        a: &Attempt<'_>,
        entry: &LedgerEntry,
        resend_after_unknown: bool,
    ) -> Result<Next, StoreError> {
        let Some(token) = self
            .store
            .reclaim_send(entry, a.now, self.settings.lease_secs, resend_after_unknown)
            .await?
        else {
            return Ok(lost_race());
        };
        match a.intent {
            Intent::Send { message, fallback } => {
                self.call(a.record, a.p, a.contact, message, *fallback, &token)
                    .await
            }
            Intent::Decided { state, reason } => {
                let key = &a.p.request.idempotency_key;
                self.finish_decided(key, &token, *state, reason, a.now)
                    .await
            }
        }
    }

    /// If a status webhook or send record names this key, the send reached Meta: record it as sent.
    async fn found_sent(
        &self,
        a: &Attempt<'_>,
        entry: &LedgerEntry,
    ) -> Result<Option<Next>, StoreError> {
        let (p, contact, now) = (a.p, a.contact, a.now);
        let key = &p.request.idempotency_key;
        let Some((wamid, _status)) = self.store.find_by_idempotency_key(key).await? else {
            return Ok(None);
        };
        let Some(token) = self
            .store
            .reclaim_send(entry, now, self.settings.lease_secs, false)
            .await?
        else {
            return Ok(Some(lost_race()));
        };
        let (kind, template) = match &p.request.message {
            m @ OutboundMessage::Template(_) => (m.kind(), m.template_name()),
            m => (m.kind(), None),
        };
        let outbound = self.outbound(p, contact, &wamid, kind, template, now);
        self.store
            .complete_send(key, &token, &wamid, None, &outbound, now)
            .await?;
        tracing::info!(
            event = "lost_answer_reconciled",
            idempotency_key = key.as_str(),
            wamid = wamid.as_str(),
            "a status webhook shows the earlier attempt reached Meta; not sending again"
        );
        Ok(Some(Next::Done(Outcome::Sent {
            fallback: false,
            reconciled: true,
        })))
    }

    async fn finish_decided(
        &self,
        key: &SendRequestKey,
        token: &str,
        state: SendState,
        reason: &str,
        now: UnixTime,
    ) -> Result<Next, StoreError> {
        self.store
            .finish_send(key, token, &Finish::Decided { state, reason }, now)
            .await?;
        Ok(Next::Done(decided_outcome(state)))
    }

    /// One Graph call under a claim we hold, and its outcome recorded.
    fn call<'a>(
        &'a self,
        record: &'a QueuedSend,
        p: &'a Prepared,
        contact: &'a Option<(ContactKey, ContactState)>,
        message: &'a OutboundMessage,
        fallback: bool,
        token: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Next, StoreError>> + Send + 'a>> {
        Box::pin(async move {
            let req = &p.request;
            let key = &req.idempotency_key;
            let body = message_body(req, message);
            self.pacer.acquire(&p.from).await;
            let result = self.graph.send(&p.from, &body).await;
            let now = UnixTime::now();
            match result {
                Ok(accepted) => {
                    let outbound = self.outbound(
                        p,
                        contact,
                        &accepted.wamid,
                        message.kind(),
                        message.template_name(),
                        now,
                    );
                    // Meta has the message: losing that knowledge now is what could cause a duplicate,
                    // so recording it gets several tries before the record is handed back to SQS.
                    let ours = match self
                        .record_accepted(key, token, &accepted, &outbound, now)
                        .await
                    {
                        Ok(ours) => ours,
                        Err(e) => {
                            return Ok(Next::Retry {
                                delay_secs: self.settings.reconcile_wait_secs.max(1) as u32,
                                why: format!(
                                    "Meta accepted {} but recording it failed: {e}",
                                    accepted.wamid
                                ),
                            })
                        }
                    };
                    if !ours {
                        // Our lease ran out during the call (the function ran longer than the lease):
                        // keep the message record; the ledger's new holder will reconcile from it.
                        tracing::warn!(event = "claim_lost_after_send", idempotency_key = key.as_str(), wamid = accepted.wamid.as_str(), "Meta accepted the send after this worker's lease ran out: raise WAHOOK_LEASE_SECONDS above the function timeout");
                        self.store.record_outbound(&outbound).await?;
                    }
                    if let Some((home, state)) = contact {
                        if state.reply_opens_entry_point(now) {
                            self.open_entry_point(p, home, now).await?;
                        }
                    }
                    Ok(Next::Done(Outcome::Sent {
                        fallback,
                        reconciled: false,
                    }))
                }
                Err(GraphError::Meta(e))
                    if e.code == Some(WINDOW_CLOSED)
                        && !fallback
                        && req.fallback_template.is_some() =>
                {
                    // Meta says the window is closed (our view was stale): the fallback goes now.
                    let template = OutboundMessage::Template(
                        req.fallback_template.clone().expect("checked above"),
                    );
                    self.call(record, p, contact, &template, true, token).await
                }
                Err(GraphError::Meta(e)) if e.class == ErrorClass::Transient => {
                    self.store
                        .finish_send(
                            key,
                            token,
                            &Finish::Retry {
                                code: e.code,
                                message: &e.message,
                            },
                            now,
                        )
                        .await?;
                    Ok(Next::Retry {
                        delay_secs: retry_delay_secs(
                            e.code,
                            record.receive_count,
                            crate::store::jitter(),
                        ),
                        why: format!("Meta: {} (code {:?})", e.message, e.code),
                    })
                }
                Err(GraphError::Meta(e)) => {
                    let reason = match &e.details {
                        Some(d) => format!("{} ({d})", e.message),
                        None => e.message.clone(),
                    };
                    let finish = Finish::Failed {
                        code: e.code,
                        class: e.class.as_str(),
                        message: &reason,
                    };
                    self.store.finish_send(key, token, &finish, now).await?;
                    if e.code == Some(MARKETING_STOPPED) {
                        self.opt_out_of_marketing(p, now).await?;
                    }
                    if e.class == ErrorClass::Policy {
                        tracing::error!(event = "policy_refusal", idempotency_key = key.as_str(), code = e.code, "Meta refused for policy reasons: {reason}; a human should look at the account");
                    }
                    Ok(Next::Done(Outcome::Failed { code: e.code }))
                }
                Err(GraphError::NotSent(m)) => {
                    self.store
                        .finish_send(
                            key,
                            token,
                            &Finish::Retry {
                                code: None,
                                message: &m,
                            },
                            now,
                        )
                        .await?;
                    Ok(Next::Retry {
                        delay_secs: retry_delay_secs(
                            None,
                            record.receive_count,
                            crate::store::jitter(),
                        ),
                        why: m,
                    })
                }
                Err(GraphError::Unknown(m)) => {
                    self.store
                        .finish_send(key, token, &Finish::Unknown { message: &m }, now)
                        .await?;
                    Ok(Next::Retry {
                        delay_secs: self.settings.reconcile_wait_secs.max(1) as u32,
                        why: format!("{m}; will look for Meta's status webhooks before resending"),
                    })
                }
            }
        })
    }

    /// Records an accepted send, retrying storage failures in-process. If it still fails, the message
    /// record alone is written (the reconciliation finds it by its idempotency key) and the error returned.
    async fn record_accepted(
        &self,
        key: &SendRequestKey,
        token: &str,
        accepted: &crate::graph::Accepted,
        outbound: &OutboundSend<'_>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut last = None;
        for attempt in 0..crate::store::MAX_ATTEMPTS {
            match self
                .store
                .complete_send(
                    key,
                    token,
                    &accepted.wamid,
                    accepted.wa_id.as_deref(),
                    outbound,
                    now,
                )
                .await
            {
                Ok(ours) => return Ok(ours),
                Err(e) => {
                    tracing::warn!(event = "record_sent_retry", idempotency_key = key.as_str(), attempt, error = %e, "recording an accepted send failed; trying again");
                    last = Some(e);
                    crate::store::backoff(attempt + 1).await;
                }
            }
        }
        if let Err(e) = self.store.record_outbound(outbound).await {
            tracing::error!(event = "record_sent_failed", idempotency_key = key.as_str(), wamid = accepted.wamid.as_str(), error = %e, "Meta accepted the send but neither the ledger nor the message record could be written");
        }
        Err(last.expect("at least one attempt"))
    }

    fn outbound<'a>(
        &self,
        p: &'a Prepared,
        contact: &'a Option<(ContactKey, ContactState)>,
        wamid: &'a crate::domain::ids::Wamid,
        kind: &'a str,
        template_name: Option<&'a str>,
        now: UnixTime,
    ) -> OutboundSend<'a> {
        OutboundSend {
            wamid,
            number: &p.from,
            contact: contact.as_ref().map_or(&p.contact_key, |(home, _)| home),
            to: p.request.to.key_part(),
            category: p.request.category.as_str(),
            kind,
            template_name,
            idempotency_key: Some(p.request.idempotency_key.as_str()),
            callback_data: p.request.callback_data.as_deref(),
            accepted_at: now,
        }
    }

    async fn open_entry_point(
        &self,
        p: &Prepared,
        home: &ContactKey,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let delta = ContactState {
            entry_point_opened_at: Some(now),
            ..ContactState::default()
        };
        let user = ContactKey::parse(home.as_str())
            .map(|(_, id)| user_ref_of(&id))
            .unwrap_or_else(|| user_ref_of(&p.request.to));
        self.store
            .merge_contact(&p.from, &user, &delta, Default::default())
            .await
            .map(|_| ())
    }

    async fn opt_out_of_marketing(&self, p: &Prepared, now: UnixTime) -> Result<(), StoreError> {
        let mut delta = ContactState::default();
        delta.observe_preference(
            Category::Marketing,
            Preference {
                at: now,
                consent: Consent::OptedOut,
                source: PreferenceSource::MetaError131050,
            },
        );
        self.store
            .merge_contact(
                &p.from,
                &user_ref_of(&p.request.to),
                &delta,
                Default::default(),
            )
            .await
            .map(|_| ())
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

type SendRequestKey = crate::domain::send_request::IdempotencyKey;

fn lost_race() -> Next {
    Next::Retry {
        delay_secs: 1,
        why: "another worker changed this key's ledger entry first".into(),
    }
}

fn decided_outcome(state: SendState) -> Outcome {
    match state {
        SendState::Expired => Outcome::Expired,
        SendState::Suppressed => Outcome::Suppressed,
        SendState::WindowClosed => Outcome::WindowClosed,
        other => Outcome::Duplicate(other),
    }
}

fn summary_of<'a>(p: &'a Prepared, intent: &'a Intent) -> SendSummary<'a> {
    let (kind, template_name) = match intent {
        Intent::Send { message, .. } => (message.kind(), message.template_name()),
        Intent::Decided { .. } => (p.request.message.kind(), p.request.message.template_name()),
    };
    SendSummary {
        fingerprint: &p.request.fingerprint,
        to: p.request.to.key_part(),
        from: p.from.as_str(),
        category: p.request.category.as_str(),
        kind,
        template_name,
    }
}

fn user_ref_of(id: &UserId) -> UserRef {
    match id {
        UserId::Phone(p) => UserRef::from_phone(p.clone()),
        UserId::Bsuid(b) => UserRef::from_bsuid(b.clone()),
    }
}

/// Meta's message JSON for a request: E.164 with `+` for phones, our callback marker so status
/// webhooks name the key, and the reply context when given.
pub fn message_body(req: &SendRequest, message: &OutboundMessage) -> Value {
    let to = match &req.to {
        UserId::Phone(p) => p.e164(),
        UserId::Bsuid(b) => b.as_str().to_owned(),
    };
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "biz_opaque_callback_data": req.idempotency_key.callback_marker(),
    });
    match message {
        OutboundMessage::Template(t) => {
            let mut template = json!({ "name": t.name, "language": { "code": t.language } });
            if !t.components.is_empty() {
                template["components"] = Value::Array(t.components.clone());
            }
            body["type"] = json!("template");
            body["template"] = template;
        }
        OutboundMessage::Text {
            body: text,
            preview_url,
        } => {
            body["type"] = json!("text");
            body["text"] = json!({ "body": text, "preview_url": preview_url });
        }
    }
    if let Some(reply_to) = &req.reply_to {
        body["context"] = json!({ "message_id": reply_to.as_str() });
    }
    body
}

/// Runs already-built (idle) futures with at most `limit` in flight, keeping all results.
async fn bounded<T, F: Future<Output = T>>(futures: Vec<F>, limit: usize) -> Vec<T> {
    stream::iter(futures)
        .buffer_unordered(limit.max(1))
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_body_is_metas_wire_format() {
        let req = SendRequest::parse(
            r#"{"v":1,"idempotency_key":"order-1","to":"+52 1 55 1234 5678","category":"utility","reply_to":"wamid.IN",
                "template":{"name":"order_shipped","language":"es_MX","components":[{"type":"body","parameters":[{"type":"text","text":"Ana"}]}]}}"#,
        )
        .unwrap();
        let body = message_body(&req, &req.message);
        assert_eq!(
            body,
            json!({
                "messaging_product": "whatsapp", "recipient_type": "individual", "to": "+5215512345678",
                "biz_opaque_callback_data": "wahook:order-1", "type": "template",
                "template": {"name": "order_shipped", "language": {"code": "es_MX"},
                    "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]},
                "context": {"message_id": "wamid.IN"}
            })
        );
        let text = SendRequest::parse(
            r#"{"v":1,"idempotency_key":"k","to":"MX.1310418412279093","text":{"body":"Hola"}}"#,
        )
        .unwrap();
        let body = message_body(&text, &text.message);
        assert_eq!(body["to"], "MX.1310418412279093");
        assert_eq!(body["text"], json!({"body": "Hola", "preview_url": false}));
        assert!(body.get("context").is_none());
    }
}
