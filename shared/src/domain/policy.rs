//! Whether a valid send request may go to Meta now, and as what (DESIGN rules 12 and 13).
//!
//! Checked in this order, each before any Meta call:
//! 1. `not_after` passed → expired;
//! 2. the contact opted out of the category, or consent is required for it and not on record →
//!    suppressed;
//! 3. free-form text outside the customer service window (minus a safety margin) → the request's
//!    fallback template if it has one, else window closed.

use super::contact::ContactState;
use super::ledger::SendState;
use super::preferences::{Category, Consent};
use super::send_request::{OutboundMessage, SendRequest};
use super::time::UnixTime;

/// Tunables of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Free-form text is sent only if the window stays open this much longer (clock skew, queueing).
    pub window_margin_secs: i64,
    /// Categories that need a recorded opt-in (START keyword, `resume`, or a producer's record).
    pub consent_required: Vec<Category>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            window_margin_secs: 600,
            consent_required: Vec::new(),
        }
    }
}

/// What to do with a request. Every outcome that is not a send names the ledger state it ends in and
/// why, so a new gate is a new check here (and a [`SendState`] if it needs its own), nothing else.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Send {
        message: OutboundMessage,
        /// The text could not go out and its fallback template goes instead.
        fallback: bool,
    },
    /// Not sent: recorded under the key as `state`, with `reason` for the producer.
    Withhold { state: SendState, reason: String },
}

impl Decision {
    fn withhold(state: SendState, reason: impl Into<String>) -> Self {
        Decision::Withhold {
            state,
            reason: reason.into(),
        }
    }

    /// The state a withheld request ends in; `None` for a send.
    pub fn withheld(&self) -> Option<SendState> {
        match self {
            Decision::Send { .. } => None,
            Decision::Withhold { state, .. } => Some(*state),
        }
    }
}

pub fn decide(
    request: &SendRequest,
    contact: Option<&ContactState>,
    now: UnixTime,
    config: &PolicyConfig,
) -> Decision {
    if request.not_after.is_some_and(|deadline| now > deadline) {
        return Decision::withhold(
            SendState::Expired,
            "not_after passed before the message could be sent",
        );
    }
    let category = request.category;
    let preference = contact.and_then(|c| c.preference(category));
    if let Some(p) = preference.filter(|p| p.consent == Consent::OptedOut) {
        return Decision::withhold(
            SendState::Suppressed,
            format!(
                "the contact opted out of {category} messages at {} ({})",
                p.at.to_rfc3339(),
                p.source.as_str()
            ),
        );
    }
    if config.consent_required.contains(&category)
        && preference.is_none_or(|p| p.consent != Consent::OptedIn)
    {
        return Decision::withhold(
            SendState::Suppressed,
            format!(
                "no opt-in to {category} messages is on record, and this deployment requires one"
            ),
        );
    }
    match &request.message {
        OutboundMessage::Template(_) => Decision::Send {
            message: request.message.clone(),
            fallback: false,
        },
        OutboundMessage::Text { .. } => {
            let open = contact.is_some_and(|c| c.window_open_at(now, config.window_margin_secs));
            match (open, &request.fallback_template) {
                (true, _) => Decision::Send {
                    message: request.message.clone(),
                    fallback: false,
                },
                (false, Some(t)) => Decision::Send {
                    message: OutboundMessage::Template(t.clone()),
                    fallback: true,
                },
                (false, None) => Decision::withhold(
                    SendState::WindowClosed,
                    "free-form text outside the 24 h customer service window, and no fallback_template",
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::preferences::{Preference, PreferenceSource};

    const NOW: i64 = 1_795_400_000;

    fn request(json: &str) -> SendRequest {
        SendRequest::parse(json).unwrap()
    }

    fn text(extra: &str) -> SendRequest {
        request(&format!(
            r#"{{"v":1,"idempotency_key":"k","to":"+15551234567","text":{{"body":"hi"}}{extra}}}"#
        ))
    }

    fn template(category: &str, extra: &str) -> SendRequest {
        request(&format!(
            r#"{{"v":1,"idempotency_key":"k","to":"+15551234567","category":"{category}","template":{{"name":"t","language":"en"}}{extra}}}"#
        ))
    }

    fn wrote_at(secs: i64) -> ContactState {
        let mut c = ContactState::default();
        c.observe_inbound(UnixTime::from_secs(secs));
        c
    }

    fn decide_now(r: &SendRequest, c: Option<&ContactState>) -> Decision {
        decide(r, c, UnixTime::from_secs(NOW), &PolicyConfig::default())
    }

    #[test]
    fn a_passed_deadline_expires_the_request() {
        let r = template("utility", r#","not_after":"2026-11-23T02:13:19Z""#);
        assert_eq!(decide_now(&r, None).withheld(), Some(SendState::Expired));
        let r = template("utility", r#","not_after":"2026-11-23T02:13:20Z""#);
        assert!(
            matches!(decide_now(&r, None), Decision::Send { .. }),
            "the deadline itself is still in time"
        );
    }

    #[test]
    fn an_opt_out_of_the_category_suppresses_and_says_when_and_how() {
        let mut c = wrote_at(NOW - 60);
        c.observe_preference(
            Category::Marketing,
            Preference {
                at: UnixTime::from_secs(NOW - 3600),
                consent: Consent::OptedOut,
                source: PreferenceSource::UserPreferences,
            },
        );
        match decide_now(&template("marketing", ""), Some(&c)) {
            Decision::Withhold {
                state: SendState::Suppressed,
                reason,
            } => {
                assert!(
                    reason.contains("opted out of marketing")
                        && reason.contains("user_preferences"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decide_now(&template("utility", ""), Some(&c)),
            Decision::Send { .. }
        ));
    }

    #[test]
    fn required_consent_must_be_on_record() {
        let config = PolicyConfig {
            consent_required: vec![Category::Marketing],
            ..PolicyConfig::default()
        };
        let now = UnixTime::from_secs(NOW);
        let r = template("marketing", "");
        assert_eq!(
            decide(&r, None, now, &config).withheld(),
            Some(SendState::Suppressed)
        );
        let mut c = ContactState::default();
        c.observe_preference(
            Category::Marketing,
            Preference {
                at: now,
                consent: Consent::OptedIn,
                source: PreferenceSource::Keyword,
            },
        );
        assert!(matches!(
            decide(&r, Some(&c), now, &config),
            Decision::Send { .. }
        ));
    }

    #[test]
    fn text_goes_only_inside_the_window_with_its_margin() {
        let r = text("");
        let inside = wrote_at(NOW - 3600);
        assert!(matches!(
            decide_now(&r, Some(&inside)),
            Decision::Send {
                fallback: false,
                ..
            }
        ));
        let almost_closed = wrote_at(NOW - 86_400 + 300); // closes in 5 min, margin is 10
        assert_eq!(
            decide_now(&r, Some(&almost_closed)).withheld(),
            Some(SendState::WindowClosed)
        );
        assert_eq!(
            decide_now(&r, None).withheld(),
            Some(SendState::WindowClosed),
            "never wrote: no window"
        );
    }

    #[test]
    fn outside_the_window_the_fallback_template_goes_instead() {
        let r = text(
            r#","category":"utility","fallback_template":{"name":"order_update","language":"en_US"}"#,
        );
        match decide_now(&r, Some(&wrote_at(NOW - 2 * 86_400))) {
            Decision::Send {
                message: OutboundMessage::Template(t),
                fallback: true,
            } => assert_eq!(t.name, "order_update"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn templates_go_whatever_the_window() {
        assert!(matches!(
            decide_now(&template("utility", ""), None),
            Decision::Send { .. }
        ));
    }
}
