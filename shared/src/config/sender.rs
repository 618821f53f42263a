//! The sender function's configuration.

use super::env::{list, parse_categories, parse_number, required, ConfigError, Env};
use super::secrets::SecretResolver;
use super::StorageConfig;
use crate::domain::ids::PhoneNumberId;
use crate::domain::ledger::LedgerSettings;
use crate::domain::policy::PolicyConfig;
use crate::graph::{GraphConfig, DEFAULT_GRAPH_API_VERSION, DEFAULT_GRAPH_BASE_URL};
use crate::secret::SecretString;

/// Everything the sender function needs: its clients' settings, and the [`SenderSettings`] the
/// sender keeps.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub access_token: SecretString,
    pub graph: GraphConfig,
    pub storage: StorageConfig,
    pub queue_url: String,
    pub dlq_url: String,
    pub rate_per_second: f64,
    pub burst: u32,
    pub settings: SenderSettings,
}

/// What the sender decides with, once built.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// The business number used when a request has no `from`.
    pub default_from: Option<PhoneNumberId>,
    pub policy: PolicyConfig,
    /// Records of one batch in flight at once.
    pub concurrency: usize,
    pub ledger: LedgerSettings,
}

impl SenderConfig {
    pub async fn load(env: &Env, secrets: &SecretResolver) -> Result<Self, ConfigError> {
        let access_token = secrets.required(env, "WAHOOK_ACCESS_TOKEN").await?;
        let default_from =
            match env.get("WAHOOK_DEFAULT_PHONE_NUMBER_ID") {
                None => None,
                Some(raw) => Some(PhoneNumberId::parse(raw.trim()).map_err(|_| {
                    ConfigError::Invalid {
                        var: "WAHOOK_DEFAULT_PHONE_NUMBER_ID".into(),
                        value: raw.clone(),
                        expected:
                            "Meta's numeric phone number id (WhatsApp Manager > Phone numbers)"
                                .into(),
                    }
                })?),
            };
        let api_version = env
            .get("WAHOOK_GRAPH_API_VERSION")
            .unwrap_or_else(|| DEFAULT_GRAPH_API_VERSION.into());
        let version_ok = api_version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            });
        if !version_ok {
            return Err(ConfigError::Invalid {
                var: "WAHOOK_GRAPH_API_VERSION".into(),
                value: api_version,
                expected: "a Graph API version like v25.0".into(),
            });
        }
        let timeout_ms: u64 = parse_number(env, "WAHOOK_GRAPH_TIMEOUT_MS", 10_000, 100..=60_000)?;
        let graph = GraphConfig {
            base_url: env
                .get("WAHOOK_GRAPH_BASE_URL")
                .unwrap_or_else(|| DEFAULT_GRAPH_BASE_URL.into()),
            api_version,
            timeout: std::time::Duration::from_millis(timeout_ms),
            connect_timeout: std::time::Duration::from_millis(timeout_ms.min(3_000)),
        };
        let lease_secs: i64 = parse_number(env, "WAHOOK_LEASE_SECONDS", 60, 5..=900)?;
        // A claim must outlive the call it protects, or a second worker could send again meanwhile.
        if (lease_secs as u64) * 1000 <= timeout_ms + 2_000 {
            return Err(ConfigError::Invalid {
                var: "WAHOOK_LEASE_SECONDS".into(),
                value: lease_secs.to_string(),
                expected: format!(
                    "more than WAHOOK_GRAPH_TIMEOUT_MS ({timeout_ms} ms) plus 2 s, and at least the function timeout"
                ),
            });
        }
        let rate_per_second: f64 =
            parse_number(env, "WAHOOK_SEND_RATE_PER_SECOND", 70.0, 0.1..=1_000.0)?;
        let consent_required = match list(env, "WAHOOK_REQUIRE_CONSENT") {
            None => Vec::new(),
            Some(names) => parse_categories("WAHOOK_REQUIRE_CONSENT", &names)?,
        };
        Ok(Self {
            access_token,
            graph,
            storage: StorageConfig::load(env)?,
            queue_url: required(env, "WAHOOK_SENDS_QUEUE_URL", "the URL of the sends queue")?,
            dlq_url: required(
                env,
                "WAHOOK_SENDS_DLQ_URL",
                "the URL of the sends dead-letter queue",
            )?,
            rate_per_second,
            burst: parse_number(env, "WAHOOK_SEND_BURST", 10, 1..=1_000)?,
            settings: SenderSettings {
                default_from,
                policy: PolicyConfig {
                    window_margin_secs: parse_number(
                        env,
                        "WAHOOK_WINDOW_MARGIN_SECONDS",
                        600,
                        0..=86_399,
                    )?,
                    consent_required,
                },
                concurrency: parse_number(env, "WAHOOK_SEND_CONCURRENCY", 10, 1..=100)?,
                ledger: LedgerSettings {
                    lease_secs,
                    reconcile_wait_secs: parse_number(
                        env,
                        "WAHOOK_RECONCILE_WAIT_SECONDS",
                        120,
                        0..=43_200,
                    )?,
                },
            },
        })
    }
}
