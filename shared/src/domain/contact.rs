//! A contact: one person as seen by one business phone number.
//!
//! [`ContactState`] is a join-semilattice: every field merges by "latest observation wins" (timestamps
//! from the payload, ties broken by value) or by maximum. Joining the same delta twice changes nothing,
//! and joining deltas in any order gives the same state. That is what makes redelivered and reordered
//! webhooks harmless (DESIGN rules 4, 6, 9), and it is also what lets two records of one person be
//! folded into one when we learn they are the same person (rule 8, see `domain::identity`).

use std::collections::BTreeMap;

use super::ids::Phone;
use super::preferences::{Category, Consent, Preference, PreferenceSource};
use super::time::{UnixTime, CUSTOMER_SERVICE_WINDOW_SECS, FREE_ENTRY_POINT_WINDOW_SECS};

/// A value with the payload time it was observed at. Merges to the later one; ties go to the larger
/// value so the result never depends on arrival order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamped<T> {
    pub at: UnixTime,
    pub value: T,
}

impl<T: Ord + Clone> Stamped<T> {
    pub fn new(at: UnixTime, value: T) -> Self {
        Self { at, value }
    }
}

fn join_stamped<T: Ord + Clone>(
    mine: &mut Option<Stamped<T>>,
    theirs: &Option<Stamped<T>>,
) -> bool {
    match (mine.as_ref(), theirs) {
        (_, None) => false,
        (Some(m), Some(t)) if m >= t => false,
        (_, Some(t)) => {
            *mine = Some(t.clone());
            true
        }
    }
}

fn join_max(mine: &mut Option<UnixTime>, theirs: Option<UnixTime>) -> bool {
    match (*mine, theirs) {
        (_, None) => false,
        (Some(m), Some(t)) if m >= t => false,
        (_, t) => {
            *mine = t;
            true
        }
    }
}

/// Where a user came from when they wrote after tapping a Click-to-WhatsApp ad or a Page button. The
/// sender opens the 72 h free-entry-point window when it replies within 24 h of such a message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Referral {
    pub source_type: Option<String>,
    pub source_id: Option<String>,
    pub source_url: Option<String>,
    pub ctwa_clid: Option<String>,
    pub headline: Option<String>,
}

/// Everything we keep about a contact. All fields are optional: a contact may be known only through an
/// opt-out or a status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactState {
    /// The phone number last seen for this person (a BSUID-keyed contact may learn or change it).
    pub phone: Option<Stamped<Phone>>,
    /// A phone this person gave up (they changed number, or someone else took it), and when: a phone
    /// seen no later than this is no longer theirs ([`ContactState::current_phone`]).
    pub phone_released: Option<Stamped<Phone>>,
    /// WhatsApp profile name, from `contacts[].profile.name`.
    pub profile_name: Option<Stamped<String>>,
    /// Payload time of the user's latest message; the customer service window runs 24 h from it.
    pub last_inbound_at: Option<UnixTime>,
    /// The latest Click-to-WhatsApp / Page-button referral, stamped with the message time.
    pub referral: Option<Stamped<Referral>>,
    /// When the sender's reply to a referral opened the 72 h free-entry-point window.
    pub entry_point_opened_at: Option<UnixTime>,
    /// Opt-out / consent per category: the latest word from any source.
    pub preferences: BTreeMap<Category, Preference>,
    /// The latest opt-out per category, from any source: a consent on record counts only when it
    /// is later than this (the latest preference alone may be a later keyword START).
    pub opted_out_at: BTreeMap<Category, UnixTime>,
    /// The latest consent a producer recorded per category (`"kind": "consent"` on the queue): what
    /// `WAHOOK_REQUIRE_CONSENT` asks for. A START keyword is never this.
    pub consents: BTreeMap<Category, Stamped<ConsentRecord>>,
}

/// Where a producer collected a consent, and what it would show an auditor.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConsentRecord {
    pub source: String,
    pub evidence: Option<String>,
}

impl ContactState {
    /// The customer service window closes 24 h after the user's latest message.
    pub fn window_expires_at(&self) -> Option<UnixTime> {
        self.last_inbound_at
            .map(|t| t.plus_secs(CUSTOMER_SERVICE_WINDOW_SECS))
    }

    /// Whether a free-form message may go out at `now`, keeping `margin_secs` before the window closes.
    pub fn window_open_at(&self, now: UnixTime, margin_secs: i64) -> bool {
        self.window_expires_at()
            .is_some_and(|end| now.plus_secs(margin_secs) < end)
    }

    /// The free-entry-point window closes 72 h after the reply that opened it.
    pub fn entry_point_expires_at(&self) -> Option<UnixTime> {
        self.entry_point_opened_at
            .map(|t| t.plus_secs(FREE_ENTRY_POINT_WINDOW_SECS))
    }

    /// Whether a reply sent at `now` opens a free-entry-point window: the user wrote from a
    /// Click-to-WhatsApp ad or Page button less than 24 h ago, and no window was opened for that
    /// referral yet (a later reply does not extend the window).
    pub fn reply_opens_entry_point(&self, now: UnixTime) -> bool {
        let Some(referral) = &self.referral else {
            return false;
        };
        let within_24h =
            now < referral.at.plus_secs(CUSTOMER_SERVICE_WINDOW_SECS) && now >= referral.at;
        let already_opened = self.entry_point_opened_at.is_some_and(|o| o >= referral.at);
        within_24h && !already_opened
    }

    /// Merges `other` into `self`; returns whether anything changed.
    pub fn join(&mut self, other: &ContactState) -> bool {
        let mut changed = false;
        changed |= join_stamped(&mut self.phone, &other.phone);
        changed |= join_stamped(&mut self.phone_released, &other.phone_released);
        changed |= join_stamped(&mut self.profile_name, &other.profile_name);
        changed |= join_max(&mut self.last_inbound_at, other.last_inbound_at);
        changed |= join_stamped(&mut self.referral, &other.referral);
        changed |= join_max(&mut self.entry_point_opened_at, other.entry_point_opened_at);
        for (category, theirs) in &other.preferences {
            match self.preferences.get_mut(category) {
                Some(mine) => changed |= mine.join(theirs),
                None => {
                    self.preferences.insert(*category, *theirs);
                    changed = true;
                }
            }
        }
        for (category, theirs) in &other.opted_out_at {
            match self.opted_out_at.get(category) {
                Some(mine) if mine >= theirs => {}
                _ => {
                    self.opted_out_at.insert(*category, *theirs);
                    changed = true;
                }
            }
        }
        for (category, theirs) in &other.consents {
            match self.consents.get(category) {
                Some(mine) if mine >= theirs => {}
                _ => {
                    self.consents.insert(*category, theirs.clone());
                    changed = true;
                }
            }
        }
        changed
    }

    /// The phone this person can be reached on: the last seen, unless it was released since (a number
    /// change: carriers give numbers to other people).
    pub fn current_phone(&self) -> Option<&Phone> {
        let phone = self.phone.as_ref()?;
        match &self.phone_released {
            Some(r) if r.at >= phone.at && r.value.same_number(&phone.value) => None,
            _ => Some(&phone.value),
        }
    }

    /// A delta saying this person no longer has `phone` as of `at`.
    pub fn phone_released(phone: Phone, at: UnixTime) -> ContactState {
        ContactState {
            phone_released: Some(Stamped::new(at, phone)),
            ..ContactState::default()
        }
    }

    /// Whether a producer's consent to `category` is on record and no opt-out came after it.
    pub fn has_recorded_consent(&self, category: Category) -> bool {
        let Some(consent) = self.consents.get(&category) else {
            return false;
        };
        let not_withdrawn = self
            .opted_out_at
            .get(&category)
            .is_none_or(|out| consent.at > *out);
        let standing = self
            .preference(category)
            .is_none_or(|p| p.consent == Consent::OptedIn);
        not_withdrawn && standing
    }

    /// A delta recording a consent a producer collected: the opt-in itself (merged like every other
    /// source) and the record `WAHOOK_REQUIRE_CONSENT` looks for.
    pub fn consent_recorded(
        category: Category,
        at: UnixTime,
        record: ConsentRecord,
    ) -> ContactState {
        let mut delta =
            Self::consent_given(category, Consent::OptedIn, at, PreferenceSource::Producer);
        delta.consents.insert(category, Stamped::new(at, record));
        delta
    }

    /// A user message at `at` (the payload's timestamp) keeps the window open for 24 h from then.
    pub fn observe_inbound(&mut self, at: UnixTime) {
        join_max(&mut self.last_inbound_at, Some(at));
    }

    pub fn observe_phone(&mut self, phone: Phone, at: UnixTime) {
        join_stamped(&mut self.phone, &Some(Stamped::new(at, phone)));
    }

    pub fn observe_profile_name(&mut self, name: String, at: UnixTime) {
        join_stamped(&mut self.profile_name, &Some(Stamped::new(at, name)));
    }

    pub fn observe_referral(&mut self, referral: Referral, at: UnixTime) {
        join_stamped(&mut self.referral, &Some(Stamped::new(at, referral)));
    }

    pub fn observe_preference(&mut self, category: Category, preference: Preference) {
        if preference.consent == Consent::OptedOut {
            let latest = self.opted_out_at.entry(category).or_insert(preference.at);
            *latest = (*latest).max(preference.at);
        }
        self.preferences
            .entry(category)
            .and_modify(|p| {
                p.join(&preference);
            })
            .or_insert(preference);
    }

    /// A delta that records an opt-out of `category`: the one shape every source of an opt-out
    /// (a STOP keyword, the stop-promotions button, `user_preferences`, Meta's error 131050) uses.
    pub fn opted_out(category: Category, at: UnixTime, source: PreferenceSource) -> ContactState {
        Self::consent_given(category, Consent::OptedOut, at, source)
    }

    /// A delta that records `consent` to `category` (an opt-in or an opt-out) from `source` at `at`.
    pub fn consent_given(
        category: Category,
        consent: Consent,
        at: UnixTime,
        source: PreferenceSource,
    ) -> ContactState {
        let mut delta = ContactState::default();
        delta.observe_preference(
            category,
            Preference {
                at,
                consent,
                source,
            },
        );
        delta
    }

    pub fn preference(&self, category: Category) -> Option<&Preference> {
        self.preferences.get(&category)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> UnixTime {
        UnixTime::from_secs(secs)
    }

    fn inbound(at: i64, phone: Option<&str>) -> ContactState {
        let mut d = ContactState::default();
        d.observe_inbound(t(at));
        if let Some(p) = phone {
            d.observe_phone(Phone::parse(p).unwrap(), t(at));
        }
        d
    }

    #[test]
    fn the_window_moves_forward_only() {
        let mut s = ContactState::default();
        s.observe_inbound(t(1_000));
        s.observe_inbound(t(500));
        assert_eq!(s.window_expires_at(), Some(t(1_000 + 86_400)));
        assert!(s.window_open_at(t(1_000 + 86_400 - 601), 600));
        assert!(!s.window_open_at(t(1_000 + 86_400 - 599), 600));
    }

    #[test]
    fn a_reply_within_24h_of_a_referral_opens_the_entry_point_window_once() {
        let mut s = ContactState::default();
        assert!(!s.reply_opens_entry_point(t(100)), "no referral");
        s.observe_referral(Referral::default(), t(1_000));
        assert!(!s.reply_opens_entry_point(t(999)), "before the referral");
        assert!(s.reply_opens_entry_point(t(1_000 + 86_399)));
        assert!(
            !s.reply_opens_entry_point(t(1_000 + 86_400)),
            "24 h later is too late"
        );
        s.entry_point_opened_at = Some(t(2_000));
        assert_eq!(s.entry_point_expires_at(), Some(t(2_000 + 72 * 3600)));
        assert!(
            !s.reply_opens_entry_point(t(3_000)),
            "a later reply does not extend it"
        );
        s.observe_referral(Referral::default(), t(5_000));
        assert!(
            s.reply_opens_entry_point(t(5_001)),
            "a new referral opens a new window"
        );
    }

    #[test]
    fn join_is_idempotent_and_reports_change() {
        let mut a = inbound(10, Some("15551234567"));
        let b = a.clone();
        assert!(!a.join(&b));
        let mut later = ContactState::default();
        later.observe_profile_name("Ana".into(), t(20));
        assert!(a.join(&later));
        assert_eq!(a.profile_name.as_ref().unwrap().value, "Ana");
    }
}
