//! What we keep raw without acting on it: other webhook fields (template, quality, account
//! updates…), `value.errors[]`, and changes for a number that is not ours. Nothing authentic is dropped (DESIGN rule 5).

use super::Builder;
use crate::domain::ids::PhoneNumberId;
use crate::domain::inbound::{EventKind, RawEvent};
use crate::domain::time::UnixTime;

impl<'a> Builder<'_, 'a> {
    /// A change of a field we do not act on: not our rules, but a team will want it.
    pub(super) fn other_field(
        &mut self,
        field: &str,
        bytes: &'a [u8],
        waba: Option<&str>,
        time: Option<UnixTime>,
    ) {
        self.plan.counts.other_fields += 1;
        self.plan.events.push(RawEvent {
            kind: EventKind::field(field),
            number: None,
            waba_id: waba.map(str::to_owned),
            reason: None,
            at: time,
            raw: bytes,
        });
    }

    /// A `messages` change for a business number that is not ours: kept whole, acted on never, so a
    /// number shared with another team's app cannot move our windows, contacts or ledger.
    pub(super) fn other_number(
        &mut self,
        bytes: &'a [u8],
        number: &PhoneNumberId,
        waba: Option<&str>,
    ) {
        self.plan.counts.other_numbers += 1;
        self.plan.events.push(RawEvent {
            kind: EventKind::OtherNumber,
            number: Some(number.clone()),
            waba_id: waba.map(str::to_owned),
            reason: Some(format!(
                "phone_number_id {} is not one of this webhook's numbers (WAHOOK_ALLOWED_PHONE_NUMBER_IDS with WAHOOK_INBOUND_NUMBER_FILTER=on): kept raw, not acted on",
                number.as_str()
            )),
            at: None,
            raw: bytes,
        });
    }

    /// A system- or app-level error (e.g. 130429 reported asynchronously): kept for operators.
    pub(super) fn value_error(
        &mut self,
        text: &'a str,
        number: &PhoneNumberId,
        waba: Option<&str>,
    ) {
        self.plan.events.push(RawEvent {
            kind: EventKind::MessagesErrors,
            number: Some(number.clone()),
            waba_id: waba.map(str::to_owned),
            reason: None,
            at: None,
            raw: text.as_bytes(),
        });
    }
}
