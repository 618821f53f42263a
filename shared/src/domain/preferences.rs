//! Per-category opt-out and consent.
//!
//! Every change (a `user_preferences` webhook, a "Stop promotions" tap, a STOP/START keyword, a failed
//! send with 131050, a producer's consent record) is an observation with the time the user acted. The
//! stored preference per category is the latest observation; at the same second an opt-out beats an
//! opt-in (the safe side), so the result does not depend on the order deliveries arrive in.

use std::fmt;
use std::str::FromStr;

use super::time::UnixTime;

/// What kind of message a preference applies to: Meta's template categories plus `service` (free-form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Marketing,
    Utility,
    Authentication,
    Service,
}

impl Category {
    pub const ALL: [Category; 4] = [
        Category::Marketing,
        Category::Utility,
        Category::Authentication,
        Category::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Marketing => "marketing",
            Category::Utility => "utility",
            Category::Authentication => "authentication",
            Category::Service => "service",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown category {0:?}: expected one of marketing, utility, authentication, service")]
pub struct UnknownCategory(pub String);

impl FromStr for Category {
    type Err = UnknownCategory;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "marketing" => Ok(Category::Marketing),
            "utility" => Ok(Category::Utility),
            "authentication" => Ok(Category::Authentication),
            "service" => Ok(Category::Service),
            _ => Err(UnknownCategory(s.to_owned())),
        }
    }
}

/// The user's standing for one category. `OptedOut` sorts above `OptedIn`: it wins a tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Consent {
    OptedIn,
    OptedOut,
}

impl Consent {
    pub fn as_str(self) -> &'static str {
        match self {
            Consent::OptedIn => "opted_in",
            Consent::OptedOut => "opted_out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "opted_in" => Some(Consent::OptedIn),
            "opted_out" => Some(Consent::OptedOut),
            _ => None,
        }
    }
}

/// Where a preference came from: kept so a team can show proof of consent or of an opt-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PreferenceSource {
    /// Meta's `user_preferences` webhook (the user used WhatsApp's stop/resume control).
    UserPreferences,
    /// The user tapped the "Stop promotions" quick reply of a marketing template.
    StopPromotionsButton,
    /// The user wrote a configured STOP or START keyword.
    Keyword,
    /// Meta refused a marketing send with 131050 (the user stopped marketing messages).
    MetaError131050,
    /// A producer service recorded consent it collected (web form, checkout box…).
    Producer,
}

impl PreferenceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PreferenceSource::UserPreferences => "user_preferences",
            PreferenceSource::StopPromotionsButton => "stop_promotions_button",
            PreferenceSource::Keyword => "keyword",
            PreferenceSource::MetaError131050 => "meta_error_131050",
            PreferenceSource::Producer => "producer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "user_preferences" => PreferenceSource::UserPreferences,
            "stop_promotions_button" => PreferenceSource::StopPromotionsButton,
            "keyword" => PreferenceSource::Keyword,
            "meta_error_131050" => PreferenceSource::MetaError131050,
            "producer" => PreferenceSource::Producer,
            _ => return None,
        })
    }
}

/// One category's standing: what, when (the user's time, from the payload), and from where.
///
/// Field order is the merge order: later `at` wins, then opt-out over opt-in, then source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Preference {
    pub at: UnixTime,
    pub consent: Consent,
    pub source: PreferenceSource,
}

impl Preference {
    /// Keeps the later of the two; returns whether `self` changed.
    pub fn join(&mut self, other: &Preference) -> bool {
        if other > self {
            *self = *other;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pref(at: i64, consent: Consent, source: PreferenceSource) -> Preference {
        Preference {
            at: UnixTime::from_secs(at),
            consent,
            source,
        }
    }

    #[test]
    fn the_latest_observation_wins_whatever_the_arrival_order() {
        let stop = pref(100, Consent::OptedOut, PreferenceSource::UserPreferences);
        let resume = pref(200, Consent::OptedIn, PreferenceSource::UserPreferences);

        let mut a = stop;
        assert!(a.join(&resume));
        let mut b = resume;
        assert!(!b.join(&stop));
        assert_eq!(a, b);
        assert_eq!(a.consent, Consent::OptedIn);
    }

    #[test]
    fn an_opt_out_beats_an_opt_in_of_the_same_second() {
        let stop = pref(100, Consent::OptedOut, PreferenceSource::Keyword);
        let start = pref(100, Consent::OptedIn, PreferenceSource::Keyword);
        let mut a = stop;
        a.join(&start);
        let mut b = start;
        b.join(&stop);
        assert_eq!(a, b);
        assert_eq!(a.consent, Consent::OptedOut);
    }

    #[test]
    fn joining_the_same_observation_twice_changes_nothing() {
        let stop = pref(100, Consent::OptedOut, PreferenceSource::Keyword);
        let mut a = stop;
        assert!(!a.join(&stop));
    }

    #[test]
    fn categories_parse_with_a_helpful_error() {
        assert_eq!(
            "Marketing".parse::<Category>().unwrap(),
            Category::Marketing
        );
        let err = "promo".parse::<Category>().unwrap_err().to_string();
        assert!(err.contains("marketing, utility"), "{err}");
    }
}
