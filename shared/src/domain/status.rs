//! Delivery statuses of the messages we send (DESIGN rule 7).
//!
//! Meta reports `sent`, `delivered`, `read`, `played` and `failed`, at least once each, in any order, and
//! multi-device users can produce `delivered` after `failed`. We keep one observation per status name
//! (the earliest, so duplicates and redeliveries change nothing) and derive everything else from that
//! set: the current status is the highest-ranked one seen, so it never goes backwards.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

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
pub struct StatusObservation<'a> {
    pub at: UnixTime,
    /// Borrowed from the delivery it came in (a batch of statuses is not copied), or owned when read
    /// back from storage.
    pub raw: Cow<'a, str>,
    /// `None` until read (the store keeps only the JSON), or if the JSON is not an object.
    pub facts: Option<StatusFacts<'a>>,
}

impl StatusObservation<'_> {
    fn identity(&self) -> (UnixTime, &str) {
        (self.at, &self.raw)
    }

    /// The same observation owning its JSON, to outlive the delivery it was read from.
    pub fn into_owned(self) -> StatusObservation<'static> {
        StatusObservation {
            at: self.at,
            raw: Cow::Owned(self.raw.into_owned()),
            facts: self.facts.map(StatusFacts::into_owned),
        }
    }
}

impl PartialEq for StatusObservation<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for StatusObservation<'_> {}

impl PartialOrd for StatusObservation<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for StatusObservation<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.identity().cmp(&other.identity())
    }
}

/// What one status says beyond its name.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct StatusFacts<'a> {
    /// The first of `errors[]`.
    pub error: Option<StatusError>,
    pub pricing: Option<StatusPricing>,
    pub conversation_id: Option<String>,
    pub conversation_origin: Option<String>,
    pub callback_data: Option<Cow<'a, str>>,
    /// `recipient_id` as sent: a phone, or a group id (which is not one); the summary parses it,
    /// once per message rather than once per status.
    pub recipient_id: Option<Cow<'a, str>>,
    /// `recipient_user_id` as sent (a BSUID, parsed by the summary).
    pub recipient_user_id: Option<Cow<'a, str>>,
}

// Debug is what ends up in logs by accident: the recipient's ids masked, as `Phone` and `Bsuid` are.
impl fmt::Debug for StatusFacts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = |id: &Option<Cow<'_, str>>| {
            id.as_deref().map(|id| {
                format!(
                    "…{}",
                    &id[id.floor_char_boundary(id.len().saturating_sub(4))..]
                )
            })
        };
        f.debug_struct("StatusFacts")
            .field("error", &self.error)
            .field("pricing", &self.pricing)
            .field("conversation_id", &self.conversation_id)
            .field("conversation_origin", &self.conversation_origin)
            .field("callback_data", &self.callback_data)
            .field("recipient_id", &masked(&self.recipient_id))
            .field("recipient_user_id", &masked(&self.recipient_user_id))
            .finish()
    }
}

impl StatusFacts<'_> {
    /// The same facts owning their text.
    pub fn into_owned(self) -> StatusFacts<'static> {
        let owned = |t: Option<Cow<'_, str>>| t.map(|t| Cow::Owned(t.into_owned()));
        StatusFacts {
            error: self.error,
            pricing: self.pricing,
            conversation_id: self.conversation_id,
            conversation_origin: self.conversation_origin,
            callback_data: owned(self.callback_data),
            recipient_id: owned(self.recipient_id),
            recipient_user_id: owned(self.recipient_user_id),
        }
    }
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusLog<'a> {
    events: Entries<'a>,
}

/// A status name as a log keeps it: Meta's own names are not copied.
type Name = Cow<'static, str>;

/// A log's observations by name. A handful of names at most (Meta has five), so a small list in name
/// order: a delivery of a thousand statuses builds hundreds of logs, and a tree's first node is
/// kilobytes. A log that somehow collects many names (a signed body can name thousands of unknown
/// statuses for one message) moves to a tree, where each insertion stays cheap.
#[derive(Debug, Clone)]
enum Entries<'a> {
    Few(Vec<(Name, StatusObservation<'a>)>),
    Many(BTreeMap<Name, StatusObservation<'a>>),
}

/// More names than this and a log is a tree.
const FEW_NAMES: usize = 8;

impl Default for Entries<'_> {
    fn default() -> Self {
        Entries::Few(Vec::new())
    }
}

impl PartialEq for Entries<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Entries<'_> {}

impl<'a> Entries<'a> {
    fn iter(&self) -> impl Iterator<Item = (&Name, &StatusObservation<'a>)> {
        let (few, many) = match self {
            Entries::Few(v) => (Some(v.iter().map(|(n, o)| (n, o))), None),
            Entries::Many(m) => (None, Some(m.iter())),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }

    fn observations_mut(&mut self) -> impl Iterator<Item = &mut StatusObservation<'a>> {
        let (few, many) = match self {
            Entries::Few(v) => (Some(v.iter_mut().map(|(_, o)| o)), None),
            Entries::Many(m) => (None, Some(m.values_mut())),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }

    fn is_empty(&self) -> bool {
        match self {
            Entries::Few(v) => v.is_empty(),
            Entries::Many(m) => m.is_empty(),
        }
    }

    fn get(&self, name: &str) -> Option<&StatusObservation<'a>> {
        match self {
            Entries::Few(v) => v
                .binary_search_by(|(n, _)| n.as_ref().cmp(name))
                .ok()
                .map(|i| &v[i].1),
            Entries::Many(m) => m.get(name),
        }
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut StatusObservation<'a>> {
        match self {
            Entries::Few(v) => match v.binary_search_by(|(n, _)| n.as_ref().cmp(name)) {
                Ok(i) => Some(&mut v[i].1),
                Err(_) => None,
            },
            Entries::Many(m) => m.get_mut(name),
        }
    }

    /// Adds a name not in the log yet.
    fn insert(&mut self, name: Name, observation: StatusObservation<'a>) {
        match self {
            Entries::Few(v) if v.len() < FEW_NAMES => {
                // Most messages get two or three statuses: one allocation, not a growth per status.
                if v.is_empty() {
                    v.reserve_exact(2);
                }
                let at = v.partition_point(|(n, _)| *n < name);
                v.insert(at, (name, observation));
            }
            Entries::Few(v) => {
                let mut tree: BTreeMap<_, _> = std::mem::take(v).into_iter().collect();
                tree.insert(name, observation);
                *self = Entries::Many(tree);
            }
            Entries::Many(m) => {
                m.insert(name, observation);
            }
        }
    }
}

impl<'a> StatusLog<'a> {
    /// A log of the given observations (by status name); of a name given twice, the earliest is kept,
    /// as [`StatusLog::observe`] keeps it.
    pub fn from_events(events: impl IntoIterator<Item = (String, StatusObservation<'a>)>) -> Self {
        let mut log = Self::default();
        for (name, observation) in events {
            log.observe(&name, observation);
        }
        log
    }

    /// The same log owning its JSON, to outlive the delivery it was read from.
    pub fn into_owned(self) -> StatusLog<'static> {
        let events = match self.events {
            Entries::Few(v) => {
                Entries::Few(v.into_iter().map(|(n, o)| (n, o.into_owned())).collect())
            }
            Entries::Many(m) => {
                Entries::Many(m.into_iter().map(|(n, o)| (n, o.into_owned())).collect())
            }
        };
        StatusLog { events }
    }

    /// The observations in name order.
    pub fn events(&self) -> impl Iterator<Item = (&str, &StatusObservation<'a>)> {
        self.events.iter().map(|(name, obs)| (name.as_ref(), obs))
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The observation of one status name.
    pub fn observation(&self, name: &str) -> Option<&StatusObservation<'a>> {
        self.events.get(name)
    }

    /// Records a status; the earliest observation of a name is kept (ties by raw text, so any order of
    /// duplicates ends the same). Returns whether the log changed.
    pub fn observe(&mut self, name: &str, observation: StatusObservation<'a>) -> bool {
        if let Some(existing) = self.events.get_mut(name) {
            return Self::keep_earliest(existing, observation);
        }
        let name = META_STATUS_NAMES
            .into_iter()
            .find(|known| *known == name)
            .map_or_else(|| Cow::Owned(name.to_owned()), Cow::Borrowed);
        self.events.insert(name, observation);
        true
    }

    fn keep_earliest(
        existing: &mut StatusObservation<'a>,
        observation: StatusObservation<'a>,
    ) -> bool {
        if *existing <= observation {
            return false;
        }
        *existing = observation;
        true
    }

    pub fn join(&mut self, other: &StatusLog<'a>) -> bool {
        let mut changed = false;
        for (name, obs) in other.events.iter() {
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
    pub fn read_facts(&mut self, read: impl Fn(&str) -> Option<StatusFacts<'static>>) {
        for obs in self.events.observations_mut() {
            if obs.facts.is_none() {
                obs.facts = read(&obs.raw);
            }
        }
    }

    /// What the statuses say beyond their names, from each observation's facts. Call
    /// [`StatusLog::read_facts`] first on a log read back from storage.
    pub fn summary(&self) -> StatusSummary {
        let mut facts: Vec<(u8, &str, &StatusFacts<'a>)> = self
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
        let first = |pick: &dyn Fn(&StatusFacts<'a>) -> Option<String>| {
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
            callback_data: first(&|f| f.callback_data.as_deref().map(str::to_owned)),
            // Whatever status first named each identity; a function of the set, not of arrival order.
            recipient: UserRef::new(
                facts.iter().find_map(|(_, _, f)| {
                    f.recipient_id.as_deref().and_then(|p| Phone::parse(p).ok())
                }),
                facts.iter().find_map(|(_, _, f)| {
                    f.recipient_user_id
                        .as_deref()
                        .and_then(|b| Bsuid::parse(b).ok())
                }),
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

    fn obs(at: i64, raw: &str) -> StatusObservation<'static> {
        StatusObservation {
            at: UnixTime::from_secs(at),
            raw: raw.to_owned().into(),
            facts: None,
        }
    }

    fn status_raw(name: &str, at: i64) -> String {
        format!(r#"{{"id":"wamid.X","status":"{name}","timestamp":"{at}"}}"#)
    }

    fn log_of(events: &[(&str, i64)]) -> StatusLog<'static> {
        let mut log = StatusLog::default();
        for (name, at) in events {
            log.observe(name, obs(*at, &status_raw(name, *at)));
        }
        log
    }

    #[test]
    fn facts_never_print_a_whole_recipient() {
        let facts = StatusFacts {
            recipient_id: Some("5215512345678".into()),
            recipient_user_id: Some("MX.1310418412279093".into()),
            ..StatusFacts::default()
        };
        let shown = format!("{facts:?}");
        assert!(!shown.contains("5215512345678") && !shown.contains("1310418412279093"));
        assert!(shown.contains("…5678") && shown.contains("…9093"));
    }

    #[test]
    fn a_log_of_many_names_reads_as_one_of_few() {
        // Descending names: the order that made every insertion shift the whole list.
        let names: Vec<String> = (0..40).rev().map(|i| format!("z{i:02}")).collect();
        let mut log = StatusLog::default();
        for (i, name) in names.iter().enumerate() {
            assert!(log.observe(name, obs(i as i64, &status_raw(name, i as i64))));
        }
        log.observe("sent", obs(100, &status_raw("sent", 100)));
        let listed: Vec<&str> = log.events().map(|(n, _)| n).collect();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        assert_eq!(listed, sorted, "name order");
        assert_eq!(listed.len(), 41);
        assert_eq!(log.current().unwrap().0, DeliveryStatus::Sent);
        assert!(
            !log.observe("z05", obs(999, &status_raw("z05", 999))),
            "earliest kept"
        );
        let rebuilt = StatusLog::from_events(
            log.events()
                .map(|(n, o)| (n.to_owned(), o.clone()))
                .collect::<Vec<_>>(),
        );
        assert_eq!(rebuilt, log);
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
