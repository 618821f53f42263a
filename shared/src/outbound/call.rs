//! One Graph call under a claim we hold, and what its answer means: recorded as sent, failed, a
//! retry, or unknown (the answer was lost: reconciled later from status webhooks). The contact side
//! effects of an answer (the free entry point opened, a marketing opt-out Meta reports) live here too.

use std::future::Future;
use std::pin::Pin;

use super::breaker::{Answer, Permit};
use super::prepare::Prepared;
use super::queue::QueuedSend;
use super::{Next, Outcome, Sender};
use crate::domain::contact::ContactState;
use crate::domain::ids::{Bsuid, ContactKey, Phone, UserId, UserRef, Wamid};
use crate::domain::ledger::{ClaimToken, SendState};
use crate::domain::policy::{decide, Decision};
use crate::domain::preferences::{Category, PreferenceSource};
use crate::domain::send_request::{IdempotencyKey, OutboundMessage, SendRequest};
use crate::domain::time::UnixTime;
use crate::graph::errors::{MARKETING_MESSAGES_REFUSALS, MARKETING_STOPPED, WINDOW_CLOSED};
use crate::graph::message::{message_body, with_media_id};
use crate::graph::{retry_delay_secs, Accepted, Endpoint, ErrorClass, GraphError, MetaApiError};
use crate::retry::{backoff, jitter, MAX_ATTEMPTS};
use crate::store::messages::OutboundSend;
use crate::store::sends::Finish;
use crate::store::StoreError;

/// Meta refusals that are one of the gates' own outcomes: the ledger says the same whether we or
/// Meta stopped the send. Any other refusal is `failed`.
const REFUSAL_STATES: &[(i64, SendState)] = &[
    // "To maintain healthy ecosystem engagement": Meta's own per-person marketing cap.
    (131_049, SendState::FrequencyCapped),
    // The parameters do not match the template.
    (132_000, SendState::InvalidParameters),
];

impl Sender {
    /// Names the uploaded file in a media message's body (uploading it unless this number already
    /// has it for this object version).
    /// The upload may use the invocation's time beyond the record budget (what the message call and
    /// its records need after it); running out is a retry, before any message call.
    async fn attach_media(
        &self,
        p: &Prepared,
        message: &OutboundMessage,
        body: &mut serde_json::Value,
    ) -> Result<(), GraphError> {
        let OutboundMessage::Media(media) = message else {
            return Ok(());
        };
        let Some(uploads) = &self.media else {
            return Err(GraphError::NotSent(
                "this sender was built without S3 access for files (a test or tool sender); the deployed sender sends them".into(),
            ));
        };
        let window = p.deadline.map(|d| {
            d.saturating_duration_since(std::time::Instant::now())
                .saturating_sub(self.settings.record_budget)
        });
        let upload = uploads.media_id(&p.from, media);
        let id = match window {
            None => upload.await?,
            Some(w) => tokio::time::timeout(w, upload).await.map_err(|_| {
                GraphError::NotSent(format!(
                    "the file did not reach Meta within the {} s this invocation had for it (the function timeout less {} s for the message call); a large file needs a longer sender Timeout",
                    w.as_secs(),
                    self.settings.record_budget.as_secs()
                ))
            })??,
        };
        with_media_id(body, message, &id);
        Ok(())
    }
}

fn state_of_refusal(code: Option<i64>) -> SendState {
    REFUSAL_STATES
        .iter()
        .find(|(c, _)| Some(*c) == code)
        .map_or(SendState::Failed, |(_, state)| *state)
}

/// How long a record waits for a probe's answer before calling anyway: short, so the wait plus the
/// call stay well inside the function's timeout.
const PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<Next, StoreError>> + Send + 'a>>;

impl Sender {
    /// Calls Meta with `message` and records the answer under `token`. Boxed because a closed window
    /// reported by Meta sends the fallback template through the same path once, and a token that
    /// changed in its secret after Meta refused the old one is tried once (`new_token`).
    #[allow(clippy::too_many_arguments)] // one delivery's context, passed through once
    pub(super) fn call<'a>(
        &'a self,
        record: &'a QueuedSend,
        p: &'a Prepared,
        contact: &'a Option<(ContactKey, ContactState)>,
        message: &'a OutboundMessage,
        fallback: bool,
        token: &'a ClaimToken,
        new_token: bool,
    ) -> CallFuture<'a> {
        Box::pin(async move {
            let req = &p.request;
            let key = &req.idempotency_key;
            // Never a phone the person gave up: Meta uses `to` over `recipient`.
            let known_phone = contact.as_ref().and_then(|(_, c)| c.current_phone());
            let mut body = message_body(req, message, known_phone);
            // The gates chose the endpoint; text only ever goes to `/messages`.
            let endpoint = match message {
                OutboundMessage::Template(_) => p.endpoint,
                OutboundMessage::Text { .. } | OutboundMessage::Media(_) => Endpoint::Messages,
            };
            if endpoint == Endpoint::MarketingMessages {
                if let Some(policy) = &self.settings.templates.product_policy {
                    body["product_policy"] = serde_json::json!(policy);
                }
            }
            // A number whose account Meta refused gets no calls until the breaker lets a probe go.
            let probe = match self
                .breaker
                .permit(&p.from, PROBE_WAIT.min(self.graph.config().timeout))
                .await
            {
                Permit::Go => None,
                Permit::Probe(probe) => Some(probe),
                Permit::Halted { code, reason, .. } => {
                    let why = format!(
                        "the account of number {} is halted (no call made): {reason}",
                        p.from.as_str()
                    );
                    let finish = Finish::Held {
                        code,
                        message: &why,
                    };
                    self.store
                        .finish_send(key, token, &finish, UnixTime::now())
                        .await?;
                    return Ok(Next::Held {
                        delay_secs: self.hold_delay(p),
                        code,
                        why,
                    });
                }
            };
            // A file is uploaded first: a failure there reached nobody, and ends like a refused call.
            let attached = self.attach_media(p, message, &mut body).await;
            let called = attached.is_ok();
            let result = match attached {
                Ok(()) => {
                    self.pacer.acquire(&p.from).await;
                    self.graph.send_to(&p.from, endpoint, &body).await
                }
                Err(e) => Err(e),
            };
            let answer = match &result {
                Err(GraphError::Meta(e)) if e.class == ErrorClass::Account => Answer::Halted {
                    code: e.code,
                    reason: account_reason(e),
                },
                // Only Meta's answer to the message proves the account works: a refusal of the file
                // (ours, or S3's) says nothing of it.
                Ok(_) | Err(GraphError::Meta(_)) if called => Answer::Works,
                _ => Answer::Unclear,
            };
            if let (Err(GraphError::Meta(e)), OutboundMessage::Media(media), Some(uploads)) =
                (&result, message, &self.media)
            {
                // Meta no longer takes the id it gave (deleted, or another app's): upload anew next time.
                if called && matches!(e.code, Some(100 | 131_053)) {
                    uploads.forget(&p.from, &media.object);
                }
            }
            match probe {
                Some(probe) => probe.report(answer),
                None => self.breaker.report(&p.from, answer),
            }
            let now = UnixTime::now();
            match result {
                Ok(accepted) => {
                    let mut outbound =
                        self.outbound_record(p, contact, &accepted.wamid, message, now);
                    outbound.pacing = accepted
                        .message_status
                        .as_deref()
                        .filter(|status| !status.eq_ignore_ascii_case("accepted"));
                    outbound.endpoint = (endpoint == Endpoint::MarketingMessages)
                        .then_some(Endpoint::MarketingMessages.path());
                    if let Some(pacing) = outbound.pacing {
                        tracing::info!(event = "send_paced", key_hash = %key.hashed(), wamid = accepted.wamid.as_str(), message_status = pacing, "Meta accepted the send but holds it for quality assessment (pacing); a drop arrives as a failed status with 135000");
                    }
                    // Meta has the message: losing that knowledge now is what could cause a duplicate,
                    // so recording it gets several tries before the record is handed back to SQS.
                    let ours = match self
                        .record_accepted(key, token, &accepted, &outbound, now)
                        .await
                    {
                        Ok(ours) => ours,
                        Err(e) => {
                            return Ok(Next::Retry {
                                delay_secs: self.reconcile_delay(),
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
                        tracing::warn!(event = "claim_lost_after_send", key_hash = %key.hashed(), wamid = accepted.wamid.as_str(), "Meta accepted the send after this worker's lease ran out: raise WAHOOK_LEASE_SECONDS above the function timeout");
                        self.store.record_outbound(&outbound).await?;
                    }
                    self.learn_identity(p, contact, &accepted, now).await;
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
                    // Meta says the window is closed (our view was stale): the fallback goes now,
                    // if the person's opt-outs and consent allow it under its own (Meta's)
                    // category, as they would have had our view been right.
                    let template = OutboundMessage::Template(
                        req.fallback_template.clone().expect("checked above"),
                    );
                    let as_fallback = SendRequest {
                        category: p.fallback_category.unwrap_or(req.category),
                        message: template.clone(),
                        fallback_template: None,
                        ..req.clone()
                    };
                    let state = contact.as_ref().map(|(_, c)| c);
                    if let Decision::Withhold { state, reason } =
                        decide(&as_fallback, state, now, &self.settings.policy)
                    {
                        let decided = Finish::Decided {
                            state,
                            reason: &reason,
                        };
                        self.finish_claimed(key, token, &decided, now).await?;
                        return Ok(Next::Done(Outcome::Withheld(state)));
                    }
                    let fallback_p = p.regated(as_fallback, Endpoint::Messages, None);
                    self.call(
                        record,
                        &fallback_p,
                        contact,
                        &template,
                        true,
                        token,
                        new_token,
                    )
                    .await
                }
                Err(GraphError::Meta(e))
                    if endpoint == Endpoint::MarketingMessages
                        && e.code
                            .is_some_and(|c| MARKETING_MESSAGES_REFUSALS.contains(&c)) =>
                {
                    // Refused, so not sent: the same message goes once through /messages.
                    tracing::warn!(event = "marketing_messages_refused", key_hash = %key.hashed(), code = e.code, "the Marketing Messages API refused the send ({}); sending it through /messages", e.message);
                    let plain =
                        p.regated(p.request.clone(), Endpoint::Messages, p.fallback_category);
                    self.call(record, &plain, contact, message, fallback, token, new_token)
                        .await
                }
                Err(GraphError::Meta(e)) if e.class == ErrorClass::Account => {
                    if self.account_refused(p, &e).await && !new_token {
                        // The secret holds another token now: the claim is still ours, try it.
                        return self
                            .call(record, p, contact, message, fallback, token, true)
                            .await;
                    }
                    let why = account_reason(&e);
                    let finish = Finish::Held {
                        code: e.code,
                        message: &why,
                    };
                    self.store.finish_send(key, token, &finish, now).await?;
                    Ok(Next::Held {
                        delay_secs: self.hold_delay(p),
                        code: e.code,
                        why,
                    })
                }
                Err(GraphError::Meta(e)) if e.class == ErrorClass::Transient => {
                    let finish = Finish::Retry {
                        code: e.code,
                        message: &e.message,
                    };
                    self.store.finish_send(key, token, &finish, now).await?;
                    Ok(Next::Retry {
                        delay_secs: retry_delay_secs(e.code, record.receive_count, jitter()),
                        why: format!("Meta: {} (code {:?})", e.message, e.code),
                    })
                }
                Err(GraphError::Meta(e)) => {
                    let reason = match &e.details {
                        Some(d) => format!("{} ({d})", e.message),
                        None => e.message.clone(),
                    };
                    let finish = Finish::Failed {
                        state: state_of_refusal(e.code),
                        code: e.code,
                        class: e.class.as_str(),
                        message: &reason,
                    };
                    self.store.finish_send(key, token, &finish, now).await?;
                    if e.code == Some(MARKETING_STOPPED) {
                        self.opt_out_of_marketing(p, now).await?;
                    }
                    if e.class == ErrorClass::Policy {
                        // Meta's free-text details stay in the ledger: they can quote the message.
                        tracing::error!(event = "policy_refusal", key_hash = %key.hashed(), code = e.code, fbtrace_id = e.fbtrace_id.as_deref(), "Meta refused for policy reasons: {}; a human should look at the account", e.message);
                    }
                    Ok(Next::Done(Outcome::Failed { code: e.code }))
                }
                Err(GraphError::NotSent(m)) => {
                    let finish = Finish::Retry {
                        code: None,
                        message: &m,
                    };
                    self.store.finish_send(key, token, &finish, now).await?;
                    Ok(Next::retry(record, m))
                }
                Err(GraphError::Unknown(m)) => {
                    self.store
                        .finish_send(key, token, &Finish::Unknown { message: &m }, now)
                        .await?;
                    Ok(Next::Retry {
                        delay_secs: self.reconcile_delay(),
                        why: format!("{m}; will look for Meta's status webhooks before resending"),
                    })
                }
            }
        })
    }

    /// Meta refused for the account: tell a human, and read the token again (a secret rotated in
    /// place, or fixed by a person, is picked up now; a new token lets a probe through at once).
    /// `true` if the token changed.
    async fn account_refused(&self, p: &Prepared, e: &MetaApiError) -> bool {
        tracing::error!(
            event = "account_halted",
            number = p.from.as_str(),
            code = e.code,
            http_status = e.http_status,
            fbtrace_id = e.fbtrace_id.as_deref(),
            "Meta refused for the account: {}; sends from this number are held (not failed) until it works again. Check the access token, payment method, and the number's registration in WhatsApp Manager",
            e.message
        );
        let Some(source) = &self.token_source else {
            return false;
        };
        match source.reread(&self.graph).await {
            super::token::Reread::Changed => {
                tracing::warn!(
                    event = "access_token_reread",
                    "the access token changed in its secret; probing the account again with it"
                );
                self.breaker.token_changed();
                true
            }
            super::token::Reread::Failed(why) => {
                tracing::error!(event = "access_token_reread_failed", error = %why, "could not read the access token again");
                false
            }
            super::token::Reread::Unchanged | super::token::Reread::TooSoon => false,
        }
    }

    /// How long a held record waits: the configured hold, but never past its `not_after` (it comes
    /// back in time to be recorded `expired`).
    pub(super) fn hold_delay(&self, p: &Prepared) -> u32 {
        let hold = self.settings.account.hold_secs;
        match p.request.not_after {
            Some(deadline) => {
                let left = deadline.secs().saturating_sub(UnixTime::now().secs()) + 1;
                hold.min(left.clamp(1, i64::from(u32::MAX)) as u32)
            }
            None => hold,
        }
    }

    /// A lost answer comes back once Meta's status webhooks have had time to arrive.
    fn reconcile_delay(&self) -> u32 {
        self.settings
            .ledger
            .reconcile_wait_secs
            .clamp(1, i64::from(u32::MAX)) as u32
    }

    /// Records an accepted send, retrying storage failures in-process. If it still fails, the message
    /// record alone is written (the reconciliation finds it by its idempotency key) and the error
    /// returned. `Ok(false)`: the claim was no longer ours.
    async fn record_accepted(
        &self,
        key: &IdempotencyKey,
        token: &ClaimToken,
        accepted: &Accepted,
        outbound: &OutboundSend<'_>,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut last = None;
        for attempt in 0..MAX_ATTEMPTS {
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
                    tracing::warn!(event = "record_sent_retry", key_hash = %key.hashed(), attempt, error = %e, "recording an accepted send failed; trying again");
                    last = Some(e);
                    backoff(attempt + 1).await;
                }
            }
        }
        if let Err(e) = self.store.record_outbound(outbound).await {
            tracing::error!(event = "record_sent_failed", key_hash = %key.hashed(), wamid = accepted.wamid.as_str(), error = %e, "Meta accepted the send but neither the ledger nor the message record could be written");
        }
        Err(last.expect("at least one attempt"))
    }

    /// The message record of a send Meta has, filed under the recipient's home contact.
    pub(super) fn outbound_record<'a>(
        &self,
        p: &'a Prepared,
        contact: &'a Option<(ContactKey, ContactState)>,
        wamid: &'a Wamid,
        message: &'a OutboundMessage,
        now: UnixTime,
    ) -> OutboundSend<'a> {
        let kind = message.kind();
        OutboundSend {
            wamid,
            number: &p.from,
            contact: p.home_key(contact),
            to: p.request.to.as_written(),
            category: p.request.category.as_str(),
            kind,
            template_name: message.template_name(),
            template_language: message.template_language(),
            idempotency_key: Some(p.request.idempotency_key.as_str()),
            callback_data: p.request.callback_data.as_deref(),
            accepted_at: now,
            // Marketing templates only: what the cap admitted is what it counts.
            counts_toward_cap: self
                .settings
                .marketing_cap
                .filter(|_| p.request.category == Category::Marketing && kind == "template")
                .map(|cap| cap.keep_until(now)),
            pacing: None,
            endpoint: None,
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
            .map(|(_, id)| UserRef::of(&id))
            .unwrap_or_else(|| UserRef::of(&p.request.to));
        self.store
            .merge_contact(&p.from, &user, &delta, Default::default())
            .await
            .map(|_| ())
    }

    /// What Meta's answer says about who the recipient is (`contacts[{input, wa_id, user_id}]`): when
    /// Meta's `wa_id` is another spelling than the producer's (beyond the rules in
    /// `domain::numbering`), or names a BSUID we did not have, the contact learns it, so the next
    /// lookup by the producer's form, and the person's next message, find one contact. Best effort:
    /// the message is sent whatever happens here.
    async fn learn_identity(
        &self,
        p: &Prepared,
        contact: &Option<(ContactKey, ContactState)>,
        accepted: &Accepted,
        now: UnixTime,
    ) {
        let meta_phone = accepted.wa_id.as_deref().and_then(|w| Phone::parse(w).ok());
        let meta_bsuid = accepted
            .user_id
            .as_deref()
            .and_then(|b| Bsuid::parse(b).ok());
        let (sent_phone, sent_bsuid) = match &p.request.to {
            UserId::Phone(ph) => (Some(ph), None),
            UserId::Bsuid(b) => (None, Some(b)),
        };
        // The producer's spelling leads to the person when Meta spells the number otherwise.
        let learned: Vec<ContactKey> = match (sent_phone, &meta_phone) {
            (Some(sent), Some(meta)) if !sent.same_number(meta) => {
                vec![ContactKey::new(&p.from, &UserId::Phone(sent.clone()))]
            }
            _ => Vec::new(),
        };
        let bsuid = meta_bsuid.or_else(|| sent_bsuid.cloned());
        let phone = meta_phone.or_else(|| sent_phone.cloned());
        let new_pair = match (&bsuid, &phone) {
            (Some(b), Some(_)) => {
                let bsuid_home = ContactKey::new(&p.from, &UserId::Bsuid(b.clone()));
                contact.as_ref().map(|(home, _)| home) != Some(&bsuid_home)
            }
            _ => false,
        };
        if learned.is_empty() && !new_pair {
            return;
        }
        let Some(user) = UserRef::new(phone.clone(), bsuid) else {
            return;
        };
        let mut delta = ContactState::default();
        if let (Some(phone), true) = (phone, new_pair) {
            delta.observe_phone(phone, now);
        }
        if let Err(e) = self
            .store
            .merge_contact_learning(&p.from, &user, &learned, &delta, Default::default())
            .await
        {
            tracing::warn!(event = "identity_not_learned", recipient = %user.masked(), error = %e, "Meta's answer named another spelling of the recipient, and recording it failed; the next send learns it again");
        }
    }

    /// Meta's 131050: the person stopped marketing messages from us.
    async fn opt_out_of_marketing(&self, p: &Prepared, now: UnixTime) -> Result<(), StoreError> {
        let delta =
            ContactState::opted_out(Category::Marketing, now, PreferenceSource::MetaError131050);
        self.store
            .merge_contact(
                &p.from,
                &UserRef::of(&p.request.to),
                &delta,
                Default::default(),
            )
            .await
            .map(|_| ())
    }
}

/// What the ledger and the breaker say about an account refusal (Meta's message, not its details).
fn account_reason(e: &MetaApiError) -> String {
    format!(
        "Meta refused for the account: {} (code {}); the send waits until the account works",
        e.message,
        e.code.map_or_else(|| "none".into(), |c| c.to_string())
    )
}
