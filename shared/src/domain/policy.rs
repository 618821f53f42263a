//! Whether a valid send request may go to Meta now, and as what (DESIGN rules 12 and 13).
//!
//! Checked in this order, each before any Meta call:
//! 1. `not_after` passed → expired;
//! 2. the contact opted out of the category, or consent is required for it and not on record →
//!    suppressed;
//! 3. an authentication template to a person known only by BSUID (Meta needs a phone for those) →
//!    rejected;
//! 4. free-form text outside the customer service window (minus a safety margin) → the request's
//!    fallback template if it has one, else window closed.

use super::contact::ContactState;
use super::ids::UserId;
use super::ledger::SendState;
use super::preferences::{Category, Consent};
use super::send_request::{OutboundMessage, SendRequest};
use super::time::UnixTime;

/// Tunables of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Free-form text is sent only if the window stays open this much longer (clock skew, queueing).
    pub window_margin_secs: i64,
    /// Categories that need a consent a producer recorded (`"kind": "consent"`), not withdrawn since.
    /// A START keyword or WhatsApp's own `resume` undoes an opt-out but is never this consent.
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
        && !contact.is_some_and(|c| c.has_recorded_consent(category))
    {
        return Decision::withhold(
            SendState::Suppressed,
            format!(
                "no consent to {category} messages is on record (a producer's \"kind\": \"consent\" request, later than any opt-out), and this deployment requires one"
            ),
        );
    }
    let phone_known = matches!(request.to, UserId::Phone(_))
        || contact.is_some_and(|c| c.current_phone().is_some());
    if category == Category::Authentication && !phone_known {
        return Decision::withhold(
            SendState::Rejected,
            "authentication templates need the person's phone number and only a business-scoped user id is known: send to their phone in `to`",
        );
    }
    match &request.message {
        OutboundMessage::Template(_) => Decision::Send {
            message: request.message.clone(),
            fallback: false,
        },
        OutboundMessage::Text { .. } | OutboundMessage::Media(_) => {
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
                    "free-form text or a file outside the 24 h customer service window, and no fallback_template",
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
    fn an_authentication_template_needs_a_phone() {
        let to_bsuid = request(
            r#"{"v":1,"idempotency_key":"k","to":"US.13491208655302741918","category":"authentication","template":{"name":"otp","language":"en"}}"#,
        );
        match decide_now(&to_bsuid, None) {
            Decision::Withhold { state, reason } => {
                assert_eq!(state, SendState::Rejected);
                assert!(reason.contains("phone"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Once we know the person's phone (they wrote from it), the send may go.
        let mut known = wrote_at(NOW - 60);
        known.observe_phone(
            crate::domain::ids::Phone::parse("15551234567").unwrap(),
            UnixTime::from_secs(NOW - 60),
        );
        assert!(matches!(
            decide_now(&to_bsuid, Some(&known)),
            Decision::Send { .. }
        ));
        assert!(matches!(
            decide_now(&template("authentication", ""), None),
            Decision::Send { .. }
        ));
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
        let suppressed = |c: &ContactState| {
            decide(&r, Some(c), now, &config).withheld() == Some(SendState::Suppressed)
        };
        let at = |secs: i64| UnixTime::from_secs(NOW - secs);
        // A START keyword is not the consent asked for.
        let keyword_only = ContactState::consent_given(
            Category::Marketing,
            Consent::OptedIn,
            at(250),
            PreferenceSource::Keyword,
        );
        assert!(suppressed(&keyword_only));
        // A producer's record is.
        let record = crate::domain::contact::ConsentRecord {
            source: "web_form".into(),
            evidence: None,
        };
        let mut c = ContactState::consent_recorded(Category::Marketing, at(300), record.clone());
        assert!(!suppressed(&c));
        // A later START keeps it (nothing withdrew it)…
        c.join(&keyword_only);
        assert!(!suppressed(&c));
        // …but an opt-out after it withdraws it, and a START after that does not bring it back.
        c.join(&ContactState::opted_out(
            Category::Marketing,
            at(200),
            PreferenceSource::Keyword,
        ));
        c.join(&ContactState::consent_given(
            Category::Marketing,
            Consent::OptedIn,
            at(100),
            PreferenceSource::Keyword,
        ));
        assert!(suppressed(&c));
        // A new producer record after the opt-out does.
        c.join(&ContactState::consent_recorded(
            Category::Marketing,
            at(50),
            record,
        ));
        assert!(!suppressed(&c));
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
