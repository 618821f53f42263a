//! `statuses[]`: what happened to a message we sent, folded per wamid into one status log; a
//! `failed` 131050 also opts the recipient out of marketing.

use std::borrow::Cow;

use super::{identify, Builder, StatusUpdate};
use crate::domain::contact::ContactState;
use crate::domain::ids::{PhoneNumberId, Wamid};
use crate::domain::inbound::Level;
use crate::domain::preferences::{Category, PreferenceSource};
use crate::domain::status::{DeliveryStatus, StatusLog, StatusObservation};
use crate::graph::errors::MARKETING_STOPPED;
use crate::payload::{StatusItem, ValueContact};

impl<'a> Builder<'_, 'a> {
    pub(super) fn status(
        &mut self,
        text: &'a str,
        scanned: Option<StatusItem<'a>>,
        number: &PhoneNumberId,
        contacts: &[ValueContact<'_>],
        waba: Option<&str>,
    ) {
        // Read in the one pass already, or read here.
        let Some(mut item) = scanned.or_else(|| StatusItem::parse(text)) else {
            return self.unparsed(
                Level::Status,
                text.as_bytes(),
                "status is not a JSON object".into(),
                Some(number),
                waba,
            );
        };
        // Taken out, so the rest of the item can move into its facts below.
        let id = item.id.take().filter(|id| Wamid::is_valid(id));
        let status = item.status.take();
        let (Some(id), Some(name), Some(at)) = (id, status, item.timestamp) else {
            let reason = "status needs a valid id, status and timestamp".into();
            return self.unparsed(Level::Status, text.as_bytes(), reason, Some(number), waba);
        };
        self.plan.counts.statuses += 1;
        if matches!(DeliveryStatus::parse(&name), DeliveryStatus::Other(_)) {
            self.plan.counts.unknown_statuses += 1;
        }

        if name == "failed"
            && item
                .errors
                .iter()
                .any(|e| e.code == Some(MARKETING_STOPPED))
        {
            // A group id in recipient_id is not a phone: it simply yields no user.
            let (recipient, _) = identify(
                item.recipient_id.as_deref(),
                item.recipient_user_id.as_deref(),
                contacts,
            );
            if let Some(user) = &recipient {
                let delta = ContactState::opted_out(
                    Category::Marketing,
                    at,
                    PreferenceSource::MetaError131050,
                );
                self.contact(number, user, delta);
            }
        }

        let observation = StatusObservation {
            at,
            raw: Cow::Borrowed(text),
            facts: Some(item.facts()),
        };
        match self.status_index.get(id.as_ref()) {
            Some(i) => {
                self.plan.statuses[i].log.observe(&name, observation);
            }
            None => {
                let Ok(wamid) = Wamid::parse(&id) else {
                    unreachable!("the id was checked with Wamid::is_valid")
                };
                let mut log = StatusLog::default();
                log.observe(&name, observation);
                self.status_index.insert(id, self.plan.statuses.len());
                self.plan.statuses.push(StatusUpdate {
                    wamid,
                    number: number.clone(),
                    log,
                });
            }
        }
    }
}
