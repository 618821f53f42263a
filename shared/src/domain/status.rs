//! Delivery statuses of the messages we send (DESIGN rule 7).
//!
//! Meta reports `sent`, `delivered`, `read`, `played` and `failed`, at least once each, in any order, and
//! multi-device users can produce `delivered` after `failed`. We keep one observation per status name
//! (the earliest, so duplicates and redeliveries change nothing) and derive everything else from that
//! set: the current status is the highest-ranked one seen, so it never goes backwards.

use std::borrow::Cow;

use super::ids::{Bsuid, Phone, UserRef};
use super::time::UnixTime;

/// Meta's status names, ranked. `failed` sits above `sent` (it ends a send that went nowhere) but below
/// `delivered`: a delivery on another device still counts. `played` (a voice note played) implies read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryStatus {
    Sent,
    Failed,
    Delivered,
    Read,
    Played,
    /// A status Meta may add later: stored and shown, never moves the current status.
    Other(String),
}

impl DeliveryStatus {
    pub fn parse(name: &str) -> Self {
        match name {
            "sent" => DeliveryStatus::Sent,
            "failed" => DeliveryStatus::Failed,
            "delivered" => DeliveryStatus::Delivered,
            "read" => DeliveryStatus::Read,
            "played" => DeliveryStatus::Played,
            other => DeliveryStatus::Other(other.to_owned()),
        }
    }

    pub fn rank(&self) -> u8 {
        match self {
            DeliveryStatus::Other(_) => 0,
            DeliveryStatus::Sent => 1,
            DeliveryStatus::Failed => 2,
            DeliveryStatus::Delivered => 3,
            DeliveryStatus::Read => 4,
            DeliveryStatus::Played => 5,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Played => "played",
            DeliveryStatus::Other(s) => s,
        }
    }
}

/// Meta's own status names, in [`DeliveryStatus`].
const META_STATUS_NAMES: [&str; 5] = ["sent", "failed", "delivered", "read", "played"];

/// One status as received: its payload time and exact JSON, and what the JSON says (read once, by
/// `payload`, when the status arrives or is read back from storage).
///
/// Two observations are the same when their time and JSON are: the facts are a function of the JSON.
#[derive(Debug, Clone)]
pub struct StatusObservation {
    pub at: UnixTime,
    pub raw: String,
    /// `None` until read (the store keeps only the JSON), or if the JSON is not an object.
    pub facts: Option<StatusFacts>,
}

impl StatusObservation {
    fn identity(&self) -> (UnixTime, &str) {
        (self.at, &self.raw)
    }
}

impl PartialEq for StatusObservation {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for StatusObservation {}

impl PartialOrd for StatusObservation {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for StatusObservation {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.identity().cmp(&other.identity())
    }
}

/// What one status says beyond its name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusFacts {
    /// The first of `errors[]`.
    pub error: Option<StatusError>,
    pub pricing: Option<StatusPricing>,
    pub conversation_id: Option<String>,
    pub conversation_origin: Option<String>,
    pub callback_data: Option<String>,
    /// `recipient_id`, when it is a phone (a group id is not).
    pub recipient_phone: Option<Phone>,
    /// `recipient_user_id`.
    pub recipient_bsuid: Option<Bsuid>,
}

/// Meta's error on a failed status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusError {
    pub code: Option<i64>,
    pub title: Option<String>,
    pub message: Option<String>,
    pub details: Option<String>,
}

/// The pricing Meta applied to a message. Its words come from a short list (see [`pricing_word`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusPricing {
    pub billable: Option<bool>,
    pub pricing_model: Option<Cow<'static, str>>,
    pub category: Option<Cow<'static, str>>,
    /// Meta's `type`: `regular`, `free_customer_service`, `free_entry_point`…
    pub kind: Option<Cow<'static, str>>,
}

/// The words Meta's `pricing` objects are made of (models, categories, types): shared, not copied
/// for each of a batch's statuses. Any other word is kept as it came.
const PRICING_WORDS: &[&str] = &[
    "PMP",
    "CBP",
    "utility",
    "marketing",
    "marketing_lite",
    "authentication",
    "authentication_international",
    "service",
    "referral_conversion",
    "regular",
    "free_customer_service",
    "free_entry_point",
];

/// A pricing word as [`StatusPricing`] keeps it.
pub fn pricing_word(word: &str) -> Cow<'static, str> {
    match PRICING_WORDS.iter().find(|known| **known == word) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(word.to_owned()),
    }
}

/// Every status seen for one message, one observation per status name.
///
/// A handful of names at most (Meta has five), so a small list in name order rather than a map: a
/// delivery of a thousand statuses builds hundreds of logs, and a tree's first node is kilobytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusLog {
    /// Sorted by name, each name once; Meta's own names are not copied.
    events: Vec<(Cow<'static, str>, StatusObservation)>,
}

impl StatusLog {
    /// A log of the given observations (by status name); of a name given twice, the earliest is kept,
    /// as [`StatusLog::observe`] keeps it.
    pub fn from_events(events: impl IntoIterator<Item = (String, StatusObservation)>) -> Self {
        let mut log = Self::default();
        for (name, observation) in events {
            log.observe(&name, observation);
        }
        log
    }

    /// The observations in name order.
    pub fn events(&self) -> impl Iterator<Item = (&str, &StatusObservation)> {
        self.events.iter().map(|(name, obs)| (name.as_ref(), obs))
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The observation of one status name.
    pub fn observation(&self, name: &str) -> Option<&StatusObservation> {
        self.events
            .binary_search_by(|(n, _)| n.as_ref().cmp(name))
            .ok()
            .map(|i| &self.events[i].1)
    }

    /// Records a status; the earliest observation of a name is kept (ties by raw text, so any order of
    /// duplicates ends the same). Returns whether the log changed.
    pub fn observe(&mut self, name: &str, observation: StatusObservation) -> bool {
        match self.events.binary_search_by(|(n, _)| n.as_ref().cmp(name)) {
            Ok(i) => Self::keep_earliest(&mut self.events[i].1, observation),
            Err(i) => {
                // Most messages get two or three statuses: one allocation, not a growth per status.
                if self.events.is_empty() {
                    self.events.reserve_exact(2);
                }
                let name = META_STATUS_NAMES
                    .into_iter()
                    .find(|known| *known == name)
                    .map_or_else(|| Cow::Owned(name.to_owned()), Cow::Borrowed);
                self.events.insert(i, (name, observation));
                true
            }
        }
    }

    fn keep_earliest(existing: &mut StatusObservation, observation: StatusObservation) -> bool {
        if *existing <= observation {
            return false;
        }
        *existing = observation;
        true
    }

    pub fn join(&mut self, other: &StatusLog) -> bool {
        let mut changed = false;
        for (name, obs) in &other.events {
            changed |= self.observe(name, obs.clone());
        }
        changed
    }

    /// The highest-ranked status; among unknown statuses only, the latest one.
    pub fn current(&self) -> Option<(DeliveryStatus, UnixTime)> {
        self.events
            .iter()
            .map(|(name, obs)| (DeliveryStatus::parse(name), obs.at, name))
            .max_by(|a, b| (a.0.rank(), a.1, a.2).cmp(&(b.0.rank(), b.1, b.2)))
            .map(|(status, at, _)| (status, at))
    }

    /// The earliest payload time of any status: when the message was sent, as far as Meta tells.
    pub fn first_at(&self) -> Option<UnixTime> {
        self.events.iter().map(|(_, o)| o.at).min()
    }

    pub fn last_at(&self) -> Option<UnixTime> {
        self.events.iter().map(|(_, o)| o.at).max()
    }

    /// Reads the facts of every observation that has none yet (those read back from storage).
    pub fn read_facts(&mut self, read: impl Fn(&str) -> Option<StatusFacts>) {
        for (_, obs) in &mut self.events {
            if obs.facts.is_none() {
                obs.facts = read(&obs.raw);
            }
        }
    }

    /// What the statuses say beyond their names, from each observation's facts. Call
    /// [`StatusLog::read_facts`] first on a log read back from storage.
    pub fn summary(&self) -> StatusSummary {
        let mut facts: Vec<(u8, &str, &StatusFacts)> = self
            .events
            .iter()
            .filter_map(|(name, obs)| {
                obs.facts
                    .as_ref()
                    .map(|f| (DeliveryStatus::parse(name).rank(), name.as_ref(), f))
            })
            .collect();
        // Highest rank first: pricing and conversation from the most advanced status that has them.
        facts.sort_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)));
        let first = |pick: &dyn Fn(&StatusFacts) -> Option<String>| {
            facts.iter().find_map(|(_, _, f)| pick(f))
        };

        let error = self
            .observation("failed")
            .and_then(|o| o.facts.as_ref())
            .and_then(|f| f.error.clone());
        StatusSummary {
            error,
            pricing: facts.iter().find_map(|(_, _, f)| f.pricing.clone()),
            conversation_id: first(&|f| f.conversation_id.clone()),
            conversation_origin: first(&|f| f.conversation_origin.clone()),
            callback_data: first(&|f| f.callback_data.clone()),
            // Whatever status first named each identity; a function of the set, not of arrival order.
            recipient: UserRef::new(
                facts.iter().find_map(|(_, _, f)| f.recipient_phone.clone()),
                facts.iter().find_map(|(_, _, f)| f.recipient_bsuid.clone()),
            ),
        }
    }
}

/// Derived from a [`StatusLog`]: the error of a failed send, the pricing Meta applied, the echo of our
/// callback data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusSummary {
    pub error: Option<StatusError>,
    pub pricing: Option<StatusPricing>,
    pub conversation_id: Option<String>,
    pub conversation_origin: Option<String>,
    pub callback_data: Option<String>,
    /// Who the message went to: `recipient_id` (phone) and `recipient_user_id` (BSUID).
    pub recipient: Option<UserRef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(at: i64, raw: &str) -> StatusObservation {
        StatusObservation {
            at: UnixTime::from_secs(at),
            raw: raw.to_owned(),
            facts: None,
        }
    }

    fn status_raw(name: &str, at: i64) -> String {
        format!(r#"{{"id":"wamid.X","status":"{name}","timestamp":"{at}"}}"#)
    }

    fn log_of(events: &[(&str, i64)]) -> StatusLog {
        let mut log = StatusLog::default();
        for (name, at) in events {
            log.observe(name, obs(*at, &status_raw(name, *at)));
        }
        log
    }

    #[test]
    fn the_status_never_goes_backwards() {
        let log = log_of(&[("read", 30), ("delivered", 20), ("sent", 10)]);
        assert_eq!(log.current().unwrap().0, DeliveryStatus::Read);
    }

    #[test]
    fn read_without_delivered_is_read() {
        let log = log_of(&[("sent", 10), ("read", 30)]);
        assert_eq!(log.current().unwrap().0, DeliveryStatus::Read);
    }

    #[test]
    fn failed_ends_a_send_but_a_later_delivery_elsewhere_still_counts() {
        let failed = log_of(&[("sent", 10), ("failed", 20)]);
        assert_eq!(failed.current().unwrap().0, DeliveryStatus::Failed);
        let then_delivered = log_of(&[("sent", 10), ("failed", 20), ("delivered", 25)]);
        assert_eq!(
            then_delivered.current().unwrap().0,
            DeliveryStatus::Delivered
        );
        assert!(
            then_delivered.observation("failed").is_some(),
            "the failure is still recorded"
        );
    }

    #[test]
    fn played_counts_as_read() {
        let log = log_of(&[("played", 40), ("read", 30)]);
        assert_eq!(log.current().unwrap().0, DeliveryStatus::Played);
        assert!(DeliveryStatus::Played.rank() >= DeliveryStatus::Read.rank());
    }

    #[test]
    fn unknown_statuses_are_kept_but_never_move_the_status() {
        let log = log_of(&[("delivered", 20), ("deleted", 50)]);
        assert_eq!(log.current().unwrap().0, DeliveryStatus::Delivered);
        assert!(log.observation("deleted").is_some());
        let only_unknown = log_of(&[("warning", 5)]);
        assert_eq!(
            only_unknown.current().unwrap().0,
            DeliveryStatus::Other("warning".into())
        );
    }

    #[test]
    fn duplicates_keep_the_earliest_observation_in_any_order() {
        let mut a = StatusLog::default();
        a.observe("delivered", obs(20, "b"));
        a.observe("delivered", obs(15, "a"));
        let mut b = StatusLog::default();
        b.observe("delivered", obs(15, "a"));
        assert!(!b.observe("delivered", obs(20, "b")));
        assert_eq!(a, b);
        assert!(
            !a.observe("delivered", obs(15, "a")),
            "an exact duplicate changes nothing"
        );
    }
}
