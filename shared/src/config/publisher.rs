//! The publisher function's configuration: the bus, the tables whose streams it reads, and the
//! handover words.

use super::deadlines::{Deadlines, Function};
use super::env::{list, ConfigError, Env};
use super::StorageConfig;
use crate::domain::figures::RateCard;
use crate::domain::handover::{HandoverWords, DEFAULT_HANDOVER_WORDS};

/// The bus name when `WAHOOK_EVENT_BUS_NAME` is unset (the local stack's; the template sets its own).
pub const DEFAULT_EVENT_BUS: &str = "wahook-events";

#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// `WAHOOK_EVENT_BUS_NAME`: the EventBridge bus events go to (name or ARN).
    pub bus_name: String,
    /// `WAHOOK_HANDOVER_WORDS`: comma-separated words or phrases that ask for a person; `off` turns
    /// `conversation.human_requested` off.
    pub handover: HandoverWords,
    /// `WAHOOK_RATE_CARD`: the estimated price per delivered billable message, per country code and
    /// Meta's pricing category (JSON); unset, the figures count without a cost.
    pub rate_card: RateCard,
    pub storage: StorageConfig,
    pub deadlines: Deadlines,
}

impl PublisherConfig {
    pub fn load(env: &Env) -> Result<Self, ConfigError> {
        let bus_name = env
            .get("WAHOOK_EVENT_BUS_NAME")
            .map(|b| b.trim().to_owned())
            .unwrap_or_else(|| DEFAULT_EVENT_BUS.to_owned());
        if bus_name.is_empty() || bus_name.chars().any(|c| c.is_whitespace() || c == '"') {
            return Err(ConfigError::Invalid {
                var: "WAHOOK_EVENT_BUS_NAME".into(),
                value: bus_name,
                expected: "the name or ARN of an EventBridge event bus".into(),
            });
        }
        let handover = match list(env, "WAHOOK_HANDOVER_WORDS") {
            Some(words) if words.len() == 1 && words[0].eq_ignore_ascii_case("off") => {
                HandoverWords::new::<&str>(&[])
            }
            Some(words) => HandoverWords::new(&words),
            None => HandoverWords::new(DEFAULT_HANDOVER_WORDS),
        };
        let rate_card = match env.get("WAHOOK_RATE_CARD") {
            None => RateCard::default(),
            Some(json) => RateCard::parse(&json).map_err(|expected| ConfigError::Invalid {
                var: "WAHOOK_RATE_CARD".into(),
                value: json.clone(),
                expected,
            })?,
        };
        Ok(Self {
            bus_name,
            handover,
            rate_card,
            storage: StorageConfig::load(env)?,
            deadlines: Deadlines::load(env, Function::Publisher)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = PublisherConfig::load(&Env::from_pairs::<&str, &str>([])).unwrap();
        assert_eq!(c.bus_name, "wahook-events");
        assert_eq!(c.handover.find("quero um atendente"), Some("atendente"));
        assert_eq!(c.deadlines.function_timeout.as_secs(), 60);
        let c = PublisherConfig::load(&Env::from_pairs([
            ("WAHOOK_EVENT_BUS_NAME", "prod-bus"),
            ("WAHOOK_HANDOVER_WORDS", "gerente, falar com alguém"),
            ("WAHOOK_MESSAGES_TABLE", "prod-messages"),
        ]))
        .unwrap();
        assert_eq!(c.bus_name, "prod-bus");
        assert_eq!(c.handover.find("chame o GERENTE"), Some("gerente"));
        assert_eq!(c.handover.find("atendente"), None);
        assert_eq!(c.storage.tables.messages, "prod-messages");
        assert!(c.rate_card.is_empty());
        let priced = PublisherConfig::load(&Env::from_pairs([(
            "WAHOOK_RATE_CARD",
            r#"{"52": {"marketing": 0.0436}}"#,
        )]))
        .unwrap();
        assert_eq!(
            priced.rate_card.micros("+5215512345678", "marketing"),
            Some(43_600)
        );
        let bad = PublisherConfig::load(&Env::from_pairs([("WAHOOK_RATE_CARD", r#"{"mx": {}}"#)]))
            .unwrap_err()
            .to_string();
        assert!(
            bad.contains("WAHOOK_RATE_CARD") && bad.contains("country calling code"),
            "{bad}"
        );
        let off =
            PublisherConfig::load(&Env::from_pairs([("WAHOOK_HANDOVER_WORDS", "OFF")])).unwrap();
        assert!(off.handover.is_empty());
    }

    #[test]
    fn a_bus_name_with_spaces_or_quotes_is_refused_by_name() {
        let e = PublisherConfig::load(&Env::from_pairs([("WAHOOK_EVENT_BUS_NAME", "my bus")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("WAHOOK_EVENT_BUS_NAME"), "{e}");
    }
}
