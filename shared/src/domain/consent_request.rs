//! A producer's record of consent it collected (a web form, a checkout box, a call-centre script), sent
//! on the same queue as send requests with `"kind": "consent"`:
//!
//! ```json
//! {"v":1,"kind":"consent","to":"+5215512345678","category":"marketing","consent":"opted_in",
//!  "at":"2026-12-01T10:00:00Z","source":"web_form","evidence":"form 77, IP 203.0.113.9"}
//! ```
//!
//! It merges into the contact under the same rule as every other source (the latest `at` wins, an
//! opt-out wins a tie), so an opt-in older than the person's own opt-out changes nothing. An opt-in
//! is per category; an opt-out may name `"category": "all"`: a clear "stop everything" is honoured
//! for every message type. Schema: `schemas/consent-request.v1.json`.

use serde_json::Value;

use super::ids::{PhoneNumberId, UserId};
use super::preferences::{Category, Consent};
use super::send_request::{parse_recipient, summarize, Problem, Problems, SEND_REQUEST_VERSION};
use super::time::UnixTime;

/// The fields of a version 1 consent request (the JSON Schema lists the same; a test keeps them equal).
pub const CONSENT_FIELDS: &[&str] = &[
    "v", "kind", "to", "from", "category", "consent", "at", "source", "evidence",
];

/// How far in the future `at` may be (producers' clocks drift): beyond it the record is refused, since
/// a far-future opt-in would outrank every real opt-out until then.
pub const MAX_FUTURE_SKEW_SECS: i64 = 300;
pub const MAX_SOURCE_CHARS: usize = 64;
pub const MAX_EVIDENCE_CHARS: usize = 1024;

/// A valid consent request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRequest {
    pub to: UserId,
    /// The business number the consent is for; `None` means the configured default.
    pub from: Option<PhoneNumberId>,
    /// One category, or every category for an opt-out of `"all"`.
    pub categories: Vec<Category>,
    pub consent: Consent,
    /// When the person gave (or withdrew) it, on the producer's clock.
    pub at: UnixTime,
    /// Where it was collected, e.g. `web_form`.
    pub source: String,
    /// What a team would show an auditor (a form id, a recording reference).
    pub evidence: Option<String>,
}

/// Why a consent request was refused: every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid consent request: {}", summarize(.problems))]
pub struct InvalidConsentRequest {
    pub problems: Vec<Problem>,
}

impl ConsentRequest {
    /// Parses a queued body already known to be `"kind": "consent"`; `now` bounds `at`.
    pub fn parse(body: &str, now: UnixTime) -> Result<ConsentRequest, InvalidConsentRequest> {
        let mut p = Problems::default();
        let value: Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => {
                p.add("body", format!("not JSON ({e})"));
                return Err(InvalidConsentRequest { problems: p.0 });
            }
        };
        let Value::Object(obj) = &value else {
            p.add("body", "expected a JSON object");
            return Err(InvalidConsentRequest { problems: p.0 });
        };
        p.unknown_fields(obj, CONSENT_FIELDS, "body");
        match obj.get("v") {
            Some(Value::Number(n)) if n.as_f64() == Some(SEND_REQUEST_VERSION as f64) => {}
            _ => p.add(
                "v",
                format!("must be {SEND_REQUEST_VERSION}: this sender reads version {SEND_REQUEST_VERSION}"),
            ),
        }
        if p.string(obj, "kind") != Some("consent") {
            p.add("kind", "must be \"consent\"");
        }
        let to = match p.string(obj, "to") {
            None if obj.contains_key("to") => None,
            None => p.none(
                "to",
                "is required: the person's phone (E.164 with +) or BSUID",
            ),
            Some(t) => p.check("to", parse_recipient(t)),
        };
        let from = p.string(obj, "from").and_then(|f| {
            p.check(
                "from",
                PhoneNumberId::parse(f).map_err(|_| "must be Meta's numeric phone number id"),
            )
        });
        let consent = match p.string(obj, "consent") {
            None if obj.contains_key("consent") => None,
            None => p.none("consent", "is required: opted_in or opted_out"),
            Some(c) => p.check(
                "consent",
                Consent::parse(c).ok_or(format!("{c:?} is not opted_in or opted_out")),
            ),
        };
        let categories = match (p.string(obj, "category"), consent) {
            (None, _) if obj.contains_key("category") => None,
            (None, _) => p.none(
                "category",
                "is required: marketing, utility, authentication, service (or all, for an opt-out)",
            ),
            (Some("all"), Some(Consent::OptedOut)) => Some(Category::ALL.to_vec()),
            (Some("all"), _) => p.none(
                "category",
                "all is only for an opt-out: an opt-in is given per category",
            ),
            (Some(c), _) => p.check("category", c.parse::<Category>()).map(|c| vec![c]),
        };
        let at = match p.string(obj, "at") {
            None if obj.contains_key("at") => None,
            None => p.none(
                "at",
                "is required: when the person gave or withdrew consent",
            ),
            Some(a) => match UnixTime::parse_rfc3339(a) {
                None => p.none(
                    "at",
                    "must be an RFC 3339 time with a zone, e.g. 2026-12-01T10:00:00Z",
                ),
                Some(t) if t > now.plus_secs(MAX_FUTURE_SKEW_SECS) => {
                    p.add(
                        "at",
                        format!(
                            "{a} is more than {MAX_FUTURE_SKEW_SECS} s in the future: send the time consent was given, on a synchronised clock"
                        ),
                    );
                    None
                }
                Some(t) => Some(t),
            },
        };
        let source = match p.string(obj, "source") {
            None if obj.contains_key("source") => None,
            None => p.none(
                "source",
                "is required: where consent was collected, e.g. web_form",
            ),
            Some(s) if valid_source(s) => Some(s.to_owned()),
            Some(_) => p.none(
                "source",
                "must be 1 to 64 of a-z, 0-9, _ and -, e.g. web_form",
            ),
        };
        let evidence = p.string(obj, "evidence").map(str::to_owned);
        if evidence
            .as_ref()
            .is_some_and(|e| e.chars().count() > MAX_EVIDENCE_CHARS)
        {
            p.add(
                "evidence",
                format!("must be at most {MAX_EVIDENCE_CHARS} characters: store the document elsewhere and reference it"),
            );
        }
        match (p.0.is_empty(), to, categories, consent, at, source) {
            (true, Some(to), Some(categories), Some(consent), Some(at), Some(source)) => {
                Ok(ConsentRequest {
                    to,
                    from,
                    categories,
                    consent,
                    at,
                    source,
                    evidence,
                })
            }
            _ => Err(InvalidConsentRequest { problems: p.0 }),
        }
    }
}

fn valid_source(s: &str) -> bool {
    (1..=MAX_SOURCE_CHARS).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_119_200; // 2026-12-01T10:00:00Z

    fn parse(json: &str) -> Result<ConsentRequest, InvalidConsentRequest> {
        ConsentRequest::parse(json, UnixTime::from_secs(NOW))
    }

    fn fields(json: &str) -> Vec<&'static str> {
        parse(json)
            .unwrap_err()
            .problems
            .iter()
            .map(|p| p.field)
            .collect()
    }

    #[test]
    fn a_valid_opt_in_reads_every_field() {
        let r = parse(
            r#"{"v":1,"kind":"consent","to":"+525512345678","from":"106540352242922","category":"marketing",
                "consent":"opted_in","at":"2026-12-01T09:59:00Z","source":"web_form","evidence":"form 77"}"#,
        )
        .unwrap();
        assert_eq!(r.categories, vec![Category::Marketing]);
        assert_eq!(r.consent, Consent::OptedIn);
        assert_eq!(r.at.secs(), NOW - 60);
        assert_eq!(r.source, "web_form");
        assert_eq!(r.evidence.as_deref(), Some("form 77"));
        assert!(matches!(r.to, UserId::Phone(_)));
    }

    #[test]
    fn an_opt_out_of_all_covers_every_category_and_an_opt_in_cannot() {
        let r = parse(
            r#"{"v":1,"kind":"consent","to":"MX.1310418412279093","category":"all","consent":"opted_out","at":"2026-12-01T09:00:00Z","source":"call_centre"}"#,
        )
        .unwrap();
        assert_eq!(r.categories, Category::ALL.to_vec());
        assert_eq!(
            fields(
                r#"{"v":1,"kind":"consent","to":"+15551234567","category":"all","consent":"opted_in","at":"2026-12-01T09:00:00Z","source":"web_form"}"#
            ),
            ["category"]
        );
    }

    #[test]
    fn bad_requests_name_every_problem() {
        // Unknown category, a future `at` beyond the skew, no `to`.
        assert_eq!(
            fields(
                r#"{"v":1,"kind":"consent","category":"promos","consent":"opted_in","at":"2026-12-01T11:00:00Z","source":"web_form"}"#
            ),
            ["to", "category", "at"]
        );
        assert_eq!(
            fields(
                r#"{"v":1,"kind":"consent","to":"5215512345678","category":"marketing","consent":"yes","at":"yesterday","source":"Web Form!","extra":1}"#
            ),
            ["body", "to", "consent", "at", "source"]
        );
        assert_eq!(fields("[]"), ["body"]);
        assert_eq!(fields("{"), ["body"]);
        // Within the skew is fine.
        assert!(parse(
            r#"{"v":1,"kind":"consent","to":"+15551234567","category":"utility","consent":"opted_in","at":"2026-12-01T10:04:00Z","source":"app"}"#
        )
        .is_ok());
    }
}
