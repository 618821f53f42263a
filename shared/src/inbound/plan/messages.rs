//! `messages[]`: a user's message becomes a message record and what it says about its sender (the
//! window, the profile name, a referral, a STOP or START keyword, a "Stop promotions" tap).

use std::borrow::Cow;

use super::{identify, Builder};
use crate::domain::contact::{ContactState, Referral};
use crate::domain::identity::IdentityMove;
use crate::domain::ids::{Bsuid, Phone, PhoneNumberId, UserRef, Wamid};
use crate::domain::inbound::{InboundMessage, Level};
use crate::domain::keywords::KeywordIntent;
use crate::domain::preferences::{Category, Consent, PreferenceSource};
use crate::domain::time::UnixTime;
use crate::payload::{MessageContent, MessageItem, ValueContact};

/// Message types Meta documents; anything else is stored all the same and counted as unknown.
const KNOWN_MESSAGE_TYPES: &[&str] = &[
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "order",
    "system",
    "unsupported",
    "unknown",
    "request_welcome",
];

/// The person's new identity, when a `system` message says it changed: a new number
/// (`user_changed_number`, older `customer_changed_number`) or a new BSUID (`user_changed_user_id`).
/// A new number comes with a new BSUID that Meta names later, so only the number moves.
fn identity_change(content: &MessageContent, user: &UserRef) -> Option<UserRef> {
    let MessageContent::System {
        kind: Some(kind),
        new_wa_id,
        new_user_id,
        ..
    } = content
    else {
        return None;
    };
    match kind.as_str() {
        "user_changed_number" | "customer_changed_number" => {
            let phone = Phone::parse(new_wa_id.as_deref()?).ok()?;
            Some(UserRef::from_phone(phone))
        }
        "user_changed_user_id" => {
            let bsuid = Bsuid::parse(new_user_id.as_deref()?).ok()?;
            UserRef::new(user.phone().cloned(), Some(bsuid))
        }
        _ => None,
    }
}

impl<'a> Builder<'_, 'a> {
    pub(super) fn message(
        &mut self,
        text: &'a str,
        scanned: Option<MessageItem<'a>>,
        number: &PhoneNumberId,
        contacts: &[ValueContact<'_>],
        waba: Option<&str>,
    ) {
        // Read in the one pass already, or read here.
        let scanned =
            scanned.or_else(|| self.parse_item::<MessageItem>(Level::Message, text, number, waba));
        let Some(mut item) = scanned else {
            return;
        };
        #[cfg(test)]
        if item.id.as_deref() == Some(super::tests::PANIC_FOR_TEST) {
            panic!("planted by a test");
        }
        let Some((id, wamid)) = item
            .id
            .take()
            .and_then(|id| Wamid::parse(&id).ok().map(|wamid| (id, wamid)))
        else {
            let reason = "message has no valid id (wamid): cannot deduplicate it".into();
            return self.unparsed(Level::Message, text.as_bytes(), reason, Some(number), waba);
        };
        self.plan.counts.messages += 1;
        let kind = item.kind.take().unwrap_or(Cow::Borrowed("unknown"));
        if !KNOWN_MESSAGE_TYPES.contains(&kind.as_ref()) {
            self.plan.counts.unknown_message_types += 1;
        }
        if self.message_index.get(id.as_ref()).is_some() {
            return; // the same message twice in one delivery
        }
        self.message_index.insert(id, ());

        let (user, contact) =
            identify(item.from.as_deref(), item.from_user_id.as_deref(), contacts);
        // The item is deserialised once: its content comes from the objects already read.
        let content = MessageContent::of_item(&kind, &mut item);
        if let (Some(user), Some(at)) = (&user, item.timestamp) {
            let delta = self.message_delta(&item, &kind, &content, user, contact, at);
            self.contact(number, user, delta);
            if let Some(to) = identity_change(&content, user) {
                self.plan.moves.push(IdentityMove {
                    number: number.clone(),
                    from: user.clone(),
                    to,
                    at,
                });
            }
        } else {
            self.plan.counts.unattributed += 1;
        }
        self.plan.messages.push(InboundMessage {
            wamid,
            number: number.clone(),
            user,
            at: item.timestamp,
            content,
            kind,
            reply_to: item
                .context
                .and_then(|c| c.id)
                .and_then(|id| Wamid::parse(&id).ok()),
            raw: text,
        });
    }

    /// What one user message says about its sender.
    fn message_delta(
        &self,
        item: &MessageItem,
        kind: &str,
        content: &MessageContent,
        user: &UserRef,
        contact: Option<&ValueContact<'_>>,
        at: UnixTime,
    ) -> ContactState {
        let mut delta = ContactState::default();
        // System notices (number changed…) are not the user writing to us: they open no window.
        if kind != "system" {
            delta.observe_inbound(at);
        }
        if let Some(phone) = user.phone() {
            delta.observe_phone(phone.clone(), at);
        }
        if let Some(name) = contact
            .and_then(|c| c.profile.as_ref())
            .and_then(|p| p.name.clone())
        {
            delta.observe_profile_name(name, at);
        }
        if let Some(r) = &item.referral {
            delta.observe_referral(
                Referral {
                    source_type: r.source_type.clone(),
                    source_id: r.source_id.clone(),
                    source_url: r.source_url.clone(),
                    ctwa_clid: r.ctwa_clid.clone(),
                    headline: r.headline.clone(),
                },
                at,
            );
        }
        // A keyword counts typed. On a tapped button or list row only STOP counts ("Stop" offered in a
        // menu means stop); a START there is a menu's "Start" or "Subscribe", never a re-subscription.
        let (said, tapped) = match content {
            MessageContent::Text { body } => (Some(body.as_str()), false),
            MessageContent::Button { text, payload } => {
                (text.as_deref().or(payload.as_deref()), true)
            }
            MessageContent::Interactive { kind, title, .. } if kind != "nfm_reply" => {
                (title.as_deref(), true)
            }
            _ => (None, false),
        };
        let keyword = said
            .and_then(|words| self.rules.classify_text(words))
            .filter(|intent| !tapped || *intent == KeywordIntent::Stop);
        if let Some(intent) = keyword {
            let consent = match intent {
                KeywordIntent::Stop => Consent::OptedOut,
                KeywordIntent::Start => Consent::OptedIn,
            };
            for category in self.rules.keyword_categories() {
                delta.join(&ContactState::consent_given(
                    *category,
                    consent,
                    at,
                    PreferenceSource::Keyword,
                ));
            }
        }
        if kind == "button" {
            let button = item.button.as_ref();
            if self.rules.is_stop_promotions(
                button.and_then(|b| b.text.as_deref()),
                button.and_then(|b| b.payload.as_deref()),
            ) {
                delta.join(&ContactState::opted_out(
                    Category::Marketing,
                    at,
                    PreferenceSource::StopPromotionsButton,
                ));
            }
        }
        delta
    }
}
