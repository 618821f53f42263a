//! The webhook function's configuration.

use std::time::Duration;

use super::deadlines::{Deadlines, Function};
use super::env::{list, parse_categories, parse_number, ConfigError, Env};
use super::secrets::SecretResolver;
use super::StorageConfig;
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
    /// How many DynamoDB writes one delivery may have in flight.
    pub write_concurrency: usize,
    pub deadlines: Deadlines,
    /// How long storing one delivery may take before the webhook answers 503 (Meta redelivers).
    pub delivery_deadline: Duration,
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
            write_concurrency: parse_number(env, "WAHOOK_WRITE_CONCURRENCY", 32, 1..=256)?,
        })
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
