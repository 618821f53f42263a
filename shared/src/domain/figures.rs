//! Figures per template and category, per day: what a finance team and a campaign owner read (sent,
//! delivered, read, failed by code, replied, billable by Meta's pricing, an estimated cost).
//!
//! Each count is one *fact* of one message ("delivered" of wamid W), with an id of its own: the store
//! adds a fact's counts only if its id was never counted, so redelivered stream records, retried
//! batches and replays change nothing, whatever order they come in (docs/events.md).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Which row a fact counts in: the day the message was sent (UTC), its template, language and the
/// category the sender used. A message's statuses and reply count in its send's row, so a row's
/// rates compare like with like.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FigureKey {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// The template's name; `-` for a message that is not a template (a service reply).
    pub template: String,
    pub language: String,
    pub category: String,
}

impl FigureKey {
    /// The row's sort key within its day.
    pub fn row(&self) -> String {
        format!("{}#{}#{}", self.template, self.language, self.category)
    }
}

/// One fact of one message and what it adds to its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// Hex SHA-256 of the fact's name and the message: the same fact, the same id.
    pub id: String,
    /// A second fact that must not have been counted either, and is counted with this one: a
    /// user's message credits at most one template (`replied` of the template, `reply` of the
    /// user's message).
    pub exclusive_with: Option<String>,
    pub key: FigureKey,
    /// Counter name → what to add.
    pub counts: Vec<(String, i64)>,
}

/// The id of fact `name` of message `wamid`.
pub fn fact_id(name: &str, wamid: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"figure\0");
    h.update(name.as_bytes());
    h.update(b"\0");
    h.update(wamid.as_bytes());
    hex::encode(h.finalize())
}

impl Fact {
    pub fn new(name: &str, wamid: &str, key: FigureKey, counts: Vec<(String, i64)>) -> Self {
        Self {
            id: fact_id(name, wamid),
            exclusive_with: None,
            key,
            counts,
        }
    }
}

/// A counter name is a DynamoDB attribute name: only `[a-z0-9_]`, whatever Meta writes in a
/// pricing category or type. Parts are joined by `__`, which Meta's words (`marketing_lite`,
/// `free_entry_point`) never hold, so a name splits back into its parts.
pub fn counter_name(parts: &[&str]) -> String {
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str("__");
        }
        out.extend(p.chars().take(40).map(|c| c.to_ascii_lowercase()).map(|c| {
            if c.is_ascii_alphanumeric() {
                c
            } else {
                '_'
            }
        }));
    }
    out
}

/// Meta's pricing words in one spelling: lowercase, `-` as `_` (`authentication-international`).
fn pricing_word(word: &str) -> String {
    word.trim().to_ascii_lowercase().replace('-', "_")
}

/// `YYYY-MM-DD` of an epoch second, UTC: a figures row's day.
pub fn day_of(secs: i64) -> String {
    super::time::UnixTime::from_secs(secs).day()
}

/// What a delivered message costs, estimated: per country calling code prefix (longest wins, `*`
/// for the rest) and Meta's pricing category, in the card's currency. Meta's rates change
/// quarterly and by volume tier: the card is the team's, not ours (`WAHOOK_RATE_CARD`), and empty
/// means counts only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateCard {
    /// (prefix, category → micro-units per message), longest prefix first.
    entries: Vec<(String, BTreeMap<String, i64>)>,
}

impl RateCard {
    /// `{"52": {"marketing": 0.0436, "utility": 0.0085}, "*": {"marketing": 0.025}}`.
    pub fn parse(json: &str) -> Result<Self, String> {
        let raw: BTreeMap<String, BTreeMap<String, f64>> = serde_json::from_str(json).map_err(|e| {
            format!("not a rate card ({e}): expected {{\"<country code or *>\": {{\"<category>\": <price per message>}}}}")
        })?;
        let mut entries = Vec::new();
        for (prefix, rates) in raw {
            if prefix != "*" && (prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit())) {
                return Err(format!(
                    "{prefix:?} is not a country calling code (digits, like \"52\") or \"*\""
                ));
            }
            let mut micros = BTreeMap::new();
            for (category, price) in rates {
                if !price.is_finite() || !(0.0..=100.0).contains(&price) {
                    return Err(format!(
                        "{prefix}/{category}: {price} is not a price per message (0 to 100)"
                    ));
                }
                micros.insert(pricing_word(&category), (price * 1e6).round() as i64);
            }
            entries.push((prefix, micros));
        }
        // Longest prefix first; `*` last.
        entries.sort_by_key(|(p, _)| std::cmp::Reverse(if p == "*" { 0 } else { p.len() }));
        Ok(Self { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The estimated price of one billable message to `to` (phone digits; a BSUID matches only
    /// `*`) in Meta's pricing `category`, in micro-units: the longest prefix that prices the
    /// category, then `*`.
    pub fn micros(&self, to: &str, category: &str) -> Option<i64> {
        let to = to.strip_prefix('+').unwrap_or(to);
        let digits = !to.is_empty() && to.bytes().all(|b| b.is_ascii_digit());
        let category = pricing_word(category);
        self.entries
            .iter()
            .filter(|(p, _)| p == "*" || (digits && to.starts_with(p.as_str())))
            .find_map(|(_, rates)| rates.get(&category).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(1_796_557_889), "2026-12-06");
        assert_eq!(day_of(951_782_400), "2000-02-29");
        assert_eq!(day_of(-1), "1969-12-31");
    }

    #[test]
    fn the_longest_prefix_wins_and_star_takes_the_rest() {
        let card = RateCard::parse(
            r#"{"52": {"marketing": 0.0436, "Utility": 0.0085}, "521": {"marketing": 0.05},
                "*": {"marketing": 0.025}}"#,
        )
        .unwrap();
        assert_eq!(card.micros("5215512345678", "marketing"), Some(50_000));
        assert_eq!(card.micros("525512345678", "utility"), Some(8_500));
        assert_eq!(card.micros("5511987654321", "marketing"), Some(25_000));
        assert_eq!(
            card.micros("MX.1310418412279093", "marketing"),
            Some(25_000)
        );
        assert_eq!(card.micros("5511987654321", "utility"), None);
        // A prefix without the category falls back to `*`; Meta's hyphens read as underscores.
        let card = RateCard::parse(
            r#"{"52": {"marketing": 0.04}, "*": {"utility": 0.004, "authentication_international": 0.03}}"#,
        )
        .unwrap();
        assert_eq!(card.micros("5215512345678", "utility"), Some(4_000));
        assert_eq!(
            card.micros("52155", "Authentication-International"),
            Some(30_000)
        );
        assert!(RateCard::default().micros("52", "marketing").is_none());
    }

    #[test]
    fn a_bad_card_says_what_is_wrong() {
        for (json, says) in [
            ("[1]", "rate card"),
            (r#"{"+52": {"marketing": 1}}"#, "country calling code"),
            (r#"{"52": {"marketing": -1}}"#, "price per message"),
        ] {
            let e = RateCard::parse(json).unwrap_err();
            assert!(e.contains(says), "{json}: {e}");
        }
    }

    #[test]
    fn counter_names_are_safe_attribute_names() {
        assert_eq!(
            counter_name(&["priced", "marketing_lite", "regular"]),
            "priced__marketing_lite__regular"
        );
        assert_eq!(
            counter_name(&["priced", "Free-Entry Point", "x\"y"]),
            "priced__free_entry_point__x_y"
        );
        let a = Fact::new(
            "delivered",
            "wamid.A",
            FigureKey {
                day: "d".into(),
                template: "t".into(),
                language: "l".into(),
                category: "c".into(),
            },
            vec![],
        );
        let b = Fact::new("delivered", "wamid.B", a.key.clone(), vec![]);
        assert_ne!(a.id, b.id);
        assert_eq!(
            a.id,
            Fact::new("delivered", "wamid.A", a.key.clone(), vec![]).id
        );
    }
}
