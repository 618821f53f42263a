//! The edge of the outbound path: a queued record parsed into a request with its sender number, or
//! refused with a reason the producer can act on (recorded under its key when it has one).

use super::queue::{DeadLetter, QueuedSend};
use super::{Next, Sender};
use crate::domain::ids::{ContactKey, PhoneNumberId};
use crate::domain::send_request::{IdempotencyKey, SendRequest};
use crate::domain::time::UnixTime;
use crate::store::StoreError;

/// A request that parsed, with its sender number.
pub(super) struct Prepared {
    pub request: SendRequest,
    pub from: PhoneNumberId,
    pub contact_key: ContactKey,
}

/// A record that cannot be sent as it is: never retried.
pub(super) struct Refusal {
    pub letter: DeadLetter,
    /// The key, when it was readable: the refusal is recorded under it.
    pub key: Option<IdempotencyKey>,
}

pub(super) fn prepare(
    record: &QueuedSend,
    default_from: Option<&PhoneNumberId>,
) -> Result<Prepared, Refusal> {
    let request = SendRequest::parse(&record.body).map_err(|e| Refusal {
        letter: DeadLetter {
            code: "invalid_request",
            reason: format!("{e}. Fix the producer; this message is never retried."),
        },
        key: e.idempotency_key,
    })?;
    let Some(from) = request.from.clone().or_else(|| default_from.cloned()) else {
        return Err(Refusal {
            letter: DeadLetter {
                code: "no_sender_number",
                reason: "from: not set, and no WAHOOK_DEFAULT_PHONE_NUMBER_ID is configured: set one of them".into(),
            },
            key: Some(request.idempotency_key.clone()),
        });
    };
    let contact_key = ContactKey::new(&from, &request.to);
    Ok(Prepared {
        request,
        from,
        contact_key,
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
