//! `user_preferences[]`: the user stopped or resumed marketing messages inside WhatsApp.

use super::{identify, Builder};
use crate::domain::contact::ContactState;
use crate::domain::ids::PhoneNumberId;
use crate::domain::inbound::{EventKind, Level, RawEvent};
use crate::domain::preferences::{Category, Consent, PreferenceSource};
use crate::payload::{PreferenceItem, ValueContact};

impl<'a> Builder<'_, 'a> {
    pub(super) fn preference(
        &mut self,
        text: &'a str,
        number: &PhoneNumberId,
        contacts: &[ValueContact<'_>],
        waba: Option<&str>,
    ) {
        let Some(item) = self.parse_item::<PreferenceItem>(Level::Preference, text, number, waba)
        else {
            return;
        };
        let (user, _) = identify(item.wa_id.as_deref(), item.user_id.as_deref(), contacts);
        let category = match item.category.as_deref() {
            Some("marketing_messages") => Some(Category::Marketing),
            _ => None,
        };
        let consent = match item.value.as_deref() {
            Some("stop") => Some(Consent::OptedOut),
            Some("resume") => Some(Consent::OptedIn),
            _ => None,
        };
        let (Some(user), Some(category), Some(consent), Some(at)) =
            (user, category, consent, item.timestamp)
        else {
            let reason = "user_preferences item needs a user, category marketing_messages, value stop|resume and a timestamp".into();
            return self.unparsed(
                Level::Preference,
                text.as_bytes(),
                reason,
                Some(number),
                waba,
            );
        };
        self.plan.counts.preferences += 1;
        let delta =
            ContactState::consent_given(category, consent, at, PreferenceSource::UserPreferences);
        self.contact(number, &user, delta);
        // Kept as well: the user's own stop/resume is the proof a team may be asked for.
        self.plan.events.push(RawEvent {
            kind: EventKind::UserPreferences,
            number: Some(number.clone()),
            waba_id: waba.map(str::to_owned),
            reason: None,
            at: Some(at),
            raw: text.as_bytes(),
        });
    }
}
