//! The webhook function's configuration.

use std::time::Duration;

use super::deadlines::{Deadlines, Function};
use super::env::{
    allowed_phone_number_ids, default_phone_number_id, list, parse_categories, parse_number,
    ConfigError, Env,
};
use super::secrets::SecretResolver;
use super::StorageConfig;
use crate::domain::ids::PhoneNumberId;
use crate::domain::keywords::{
    KeywordRules, DEFAULT_KEYWORD_CATEGORIES, DEFAULT_START_KEYWORDS, DEFAULT_STOP_KEYWORDS,
    DEFAULT_STOP_PROMOTIONS_LABELS,
};
use crate::secret::SecretString;

/// Everything the webhook function needs.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The current app secret first; the previous one while rotating.
    pub app_secrets: Vec<SecretString>,
    pub verify_token: SecretString,
    pub storage: StorageConfig,
    pub keywords: KeywordRules,
    /// `Some` when `WAHOOK_INBOUND_NUMBER_FILTER=on`: the numbers whose changes we act on.
    pub inbound_numbers: Option<Vec<PhoneNumberId>>,
    /// How many DynamoDB writes one delivery may have in flight.
    pub write_concurrency: usize,
    pub deadlines: Deadlines,
    /// How long storing one delivery may take before the webhook answers 503 (Meta redelivers).
    pub delivery_deadline: Duration,
    /// `WAHOOK_MEDIA_QUEUE_URL`: where media jobs go; unset, inbound media is not fetched.
    pub media_queue_url: Option<String>,
}

impl WebhookConfig {
    pub async fn load(env: &Env, secrets: &SecretResolver) -> Result<Self, ConfigError> {
        let mut app_secrets = vec![secrets.required(env, "WAHOOK_APP_SECRET").await?];
        if let Some(previous) = secrets.optional(env, "WAHOOK_APP_SECRET_PREVIOUS").await? {
            app_secrets.push(previous);
        }
        let verify_token = secrets.required(env, "WAHOOK_VERIFY_TOKEN").await?;
        let deadlines = Deadlines::load(env, Function::Webhook)?;
        let default_deadline = deadlines.function_timeout.as_millis() as u64 * 8 / 10;
        let delivery_deadline = Duration::from_millis(parse_number(
            env,
            "WAHOOK_DELIVERY_DEADLINE_MS",
            default_deadline,
            100..=900_000,
        )?);
        deadlines.check_inside(
            "WAHOOK_DELIVERY_DEADLINE_MS",
            delivery_deadline,
            Duration::from_millis(500),
        )?;
        Ok(Self {
            deadlines,
            delivery_deadline,
            app_secrets,
            verify_token,
            storage: StorageConfig::load(env)?,
            keywords: keyword_rules(env)?,
            inbound_numbers: inbound_numbers(env)?,
            write_concurrency: parse_number(env, "WAHOOK_WRITE_CONCURRENCY", 32, 1..=256)?,
            media_queue_url: env
                .get("WAHOOK_MEDIA_QUEUE_URL")
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty()),
        })
    }
}

/// `WAHOOK_INBOUND_NUMBER_FILTER`: `off` (default) acts on every number the app's webhook reports;
/// `on` acts only on `WAHOOK_ALLOWED_PHONE_NUMBER_IDS` (the sender's list) and keeps the rest raw.
fn inbound_numbers(env: &Env) -> Result<Option<Vec<PhoneNumberId>>, ConfigError> {
    let var = "WAHOOK_INBOUND_NUMBER_FILTER";
    // Read (and so checked) either way: the stack hands both functions the same list.
    let numbers = allowed_phone_number_ids(env, default_phone_number_id(env)?.as_ref())?;
    match env.get(var).as_deref().map(str::trim) {
        None | Some("off") => Ok(None),
        Some("on") => {
            if numbers.is_empty() {
                return Err(ConfigError::Invalid {
                    var: var.into(),
                    value: "on".into(),
                    expected: "on only with WAHOOK_ALLOWED_PHONE_NUMBER_IDS (or WAHOOK_DEFAULT_PHONE_NUMBER_ID) set: the filter needs the numbers that are ours".into(),
                });
            }
            Ok(Some(numbers))
        }
        Some(other) => Err(ConfigError::Invalid {
            var: var.into(),
            value: other.into(),
            expected: "on or off".into(),
        }),
    }
}

fn keyword_rules(env: &Env) -> Result<KeywordRules, ConfigError> {
    let owned = |d: &[&str]| d.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let stop = list(env, "WAHOOK_STOP_KEYWORDS").unwrap_or_else(|| owned(DEFAULT_STOP_KEYWORDS));
    let start = list(env, "WAHOOK_START_KEYWORDS").unwrap_or_else(|| owned(DEFAULT_START_KEYWORDS));
    let labels = list(env, "WAHOOK_STOP_PROMOTIONS_LABELS")
        .unwrap_or_else(|| owned(DEFAULT_STOP_PROMOTIONS_LABELS));
    let categories = match list(env, "WAHOOK_STOP_KEYWORD_CATEGORIES") {
        None => DEFAULT_KEYWORD_CATEGORIES.to_vec(),
        Some(names) => parse_categories("WAHOOK_STOP_KEYWORD_CATEGORIES", &names)?,
    };
    Ok(KeywordRules::new(&stop, &start, &labels, &categories)?)
}
