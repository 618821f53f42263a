//! The edge of the outbound path: a queued record parsed into a request with its sender number, or
//! refused with a reason the producer can act on (recorded under its key when it has one).

use super::queue::{DeadLetter, QueuedSend};
use super::{Next, Sender, SenderSettings};
use crate::domain::consent_request::ConsentRequest;
use crate::domain::contact::ContactState;
use crate::domain::ids::{ContactKey, PhoneNumberId, UserRef};
use crate::domain::preferences::Category;
use crate::domain::send_request::{IdempotencyKey, SendRequest};
use crate::domain::time::UnixTime;
use crate::graph::Endpoint;
use crate::store::StoreError;

/// A request that parsed, with its sender number.
pub(super) struct Prepared {
    pub request: SendRequest,
    pub from: PhoneNumberId,
    /// Where the recipient's contact is keyed (their canonical spelling).
    pub contact_key: ContactKey,
    /// Other spellings of the recipient's number: where an earlier version may have kept them.
    pub other_keys: Vec<ContactKey>,
    /// Where the message is posted: set by the gates (marketing may go to the Marketing Messages
    /// API), `/messages` until then.
    pub endpoint: Endpoint,
    /// Meta's category of the `fallback_template`, when the registry knows it: what the opt-outs
    /// meet if Meta's 131047 sends the fallback after all.
    pub fallback_category: Option<Category>,
    /// The invocation's deadline: a file's upload must leave the record budget after it.
    pub deadline: Option<std::time::Instant>,
}

impl Prepared {
    /// The same delivery with what the gates settled: the request as they read it (Meta's
    /// category), where it goes, and the fallback's category. Key, fingerprint and number stay.
    pub fn regated(
        &self,
        request: SendRequest,
        endpoint: Endpoint,
        fallback_category: Option<Category>,
    ) -> Prepared {
        Prepared {
            request,
            from: self.from.clone(),
            contact_key: self.contact_key.clone(),
            other_keys: self.other_keys.clone(),
            endpoint,
            fallback_category,
            deadline: self.deadline,
        }
    }

    /// The key the person is kept under: their contact's home key when they have one, else the
    /// canonical key of the number as sent.
    pub fn home_key<'a>(
        &'a self,
        contact: &'a Option<(ContactKey, ContactState)>,
    ) -> &'a ContactKey {
        contact.as_ref().map_or(&self.contact_key, |(home, _)| home)
    }

    /// Every key the recipient's contact may be found under, the canonical one first.
    pub fn lookup_keys(&self) -> impl Iterator<Item = &ContactKey> {
        std::iter::once(&self.contact_key).chain(self.other_keys.iter())
    }
}

/// A record that cannot be sent as it is: never retried.
pub(super) struct Refusal {
    pub letter: DeadLetter,
    /// The key, when it was readable: the refusal is recorded under it.
    pub key: Option<IdempotencyKey>,
}

/// What a queued record asks for.
// One per record in a batch of at most ten, consumed at once: boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
pub(super) enum Request {
    Send(Prepared),
    Consent(PreparedConsent),
}

/// A consent request that parsed, with its business number.
pub(super) struct PreparedConsent {
    pub request: ConsentRequest,
    pub from: PhoneNumberId,
}

/// Only the discriminator is read here; each kind's parser reads the whole body.
#[derive(serde::Deserialize)]
struct Kind<'a> {
    #[serde(borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

pub(super) fn prepare(
    record: &QueuedSend,
    settings: &SenderSettings,
    now: UnixTime,
) -> Result<Request, Refusal> {
    let numbers = Numbers {
        default_from: settings.default_from.as_ref(),
        allowed: &settings.allowed_from,
    };
    let kind = serde_json::from_str::<Kind>(&record.body)
        .ok()
        .and_then(|k| k.kind);
    match kind.as_deref() {
        Some("consent") => prepare_consent(record, numbers, now).map(Request::Consent),
        // A missing or unknown kind is read as a send, whose parser says what is wrong.
        _ => prepare_send(record, numbers).map(Request::Send),
    }
}

/// The business numbers a request may name.
#[derive(Clone, Copy)]
struct Numbers<'a> {
    default_from: Option<&'a PhoneNumberId>,
    /// Empty: any.
    allowed: &'a [PhoneNumberId],
}

fn prepare_consent(
    record: &QueuedSend,
    numbers: Numbers<'_>,
    now: UnixTime,
) -> Result<PreparedConsent, Refusal> {
    let request = ConsentRequest::parse(&record.body, now).map_err(|e| Refusal {
        letter: DeadLetter {
            code: "invalid_consent",
            reason: format!("{e}. Fix the producer; this record is never retried."),
        },
        key: None,
    })?;
    let from = sender_number(request.from.as_ref(), numbers, None)?;
    Ok(PreparedConsent { request, from })
}

/// The request's own `from`, else the configured default, else a refusal saying how to set one. A
/// number outside the allow-list is refused: a producer (or whoever can write to the queue) must
/// not send as another of the business' numbers.
fn sender_number(
    from: Option<&PhoneNumberId>,
    numbers: Numbers<'_>,
    key: Option<&IdempotencyKey>,
) -> Result<PhoneNumberId, Refusal> {
    let from = from.or(numbers.default_from).cloned().ok_or_else(|| Refusal {
        letter: DeadLetter {
            code: "no_sender_number",
            reason: "from: not set, and no WAHOOK_DEFAULT_PHONE_NUMBER_ID is configured: set one of them".into(),
        },
        key: key.cloned(),
    })?;
    if !numbers.allowed.is_empty() && !numbers.allowed.contains(&from) {
        return Err(Refusal {
            letter: DeadLetter {
                code: "from_not_allowed",
                reason: format!(
                    "from: {} is not one of this sender's numbers (WAHOOK_ALLOWED_PHONE_NUMBER_IDS): add it there, or send from an allowed number",
                    from.as_str()
                ),
            },
            key: key.cloned(),
        });
    }
    Ok(from)
}

fn prepare_send(record: &QueuedSend, numbers: Numbers<'_>) -> Result<Prepared, Refusal> {
    let request = SendRequest::parse(&record.body).map_err(|e| Refusal {
        letter: DeadLetter {
            code: "invalid_request",
            reason: format!("{e}. Fix the producer; this message is never retried."),
        },
        key: e.idempotency_key,
    })?;
    let from = sender_number(
        request.from.as_ref(),
        numbers,
        Some(&request.idempotency_key),
    )?;
    let contact_key = ContactKey::new(&from, &request.to);
    let other_keys = ContactKey::all_for(&from, &UserRef::of(&request.to))
        .into_iter()
        .filter(|k| *k != contact_key)
        .collect();
    Ok(Prepared {
        request,
        from,
        contact_key,
        other_keys,
        endpoint: Endpoint::Messages,
        fallback_category: None,
        deadline: None,
    })
}

impl Sender {
    /// An invalid request: recorded as rejected under its key when it has one, then dead-lettered.
    pub(super) async fn refuse(&self, refusal: Refusal, now: UnixTime) -> Result<Next, StoreError> {
        if let Some(key) = refusal.key {
            self.store
                .record_rejected(&key, &refusal.letter.reason, now)
                .await?;
        }
        Ok(Next::DeadLetter(refusal.letter))
    }
}
