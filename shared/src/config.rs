//! Configuration from the environment, and secrets from Secrets Manager, SSM or the environment.
//!
//! Every secret `X` can come from exactly one of:
//! - `X`: the value itself (local runs, tests);
//! - `X_ARN`: a Secrets Manager secret (ARN or name) whose SecretString is the value;
//! - `X_PARAM`: an SSM SecureString parameter (name or ARN).
//!
//! Anything missing, blank or ambiguous stops start-up with a message naming the variable to set.

use std::collections::HashMap;

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

use crate::domain::ids::PhoneNumberId;
use crate::domain::keywords::{
    KeywordConfigError, KeywordRules, DEFAULT_START_KEYWORDS, DEFAULT_STOP_KEYWORDS,
    DEFAULT_STOP_PROMOTIONS_LABELS,
};
use crate::domain::policy::PolicyConfig;
use crate::domain::preferences::Category;
use crate::graph::{GraphConfig, DEFAULT_GRAPH_API_VERSION, DEFAULT_GRAPH_BASE_URL};
use crate::secret::SecretString;
use crate::store::tables::{TableNames, CONTACTS, EVENTS, MESSAGES, SENDS};

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where configuration is read from: the process environment, or a map in tests. It remembers every
/// name asked for, so a test can check that the IaC sets only variables the code reads.
pub struct Env {
    lookup: Lookup,
    read: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Env {
    pub fn process() -> Self {
        Self {
            lookup: Box::new(|name| std::env::var(name).ok()),
            read: Default::default(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let map: HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self {
            lookup: Box::new(move |name| map.get(name).cloned()),
            read: Default::default(),
        }
    }

    /// The variable's value; unset and empty are the same (an empty env var is a mistake, not a value).
    pub fn get(&self, name: &str) -> Option<String> {
        self.read.lock().expect("env lock").insert(name.to_owned());
        (self.lookup)(name).filter(|v| !v.is_empty())
    }

    /// Every variable name asked for so far.
    pub fn names_read(&self) -> std::collections::BTreeSet<String> {
        self.read.lock().expect("env lock").clone()
    }
}

/// A start-up problem: what is wrong and what to set.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not set: set {var} (the value, for local runs), or {var}_ARN (a Secrets Manager secret) or {var}_PARAM (an SSM SecureString parameter)")]
    MissingSecret { var: String },
    #[error("{vars} are all set: set only one of them")]
    AmbiguousSecret { vars: String },
    #[error("{var} is blank (read from {source_desc}): set it to the real value")]
    BlankSecret { var: String, source_desc: String },
    #[error("could not read {var} from {source_desc}: {reason}. Check the name/ARN, the region, and that the function's role may read it")]
    SecretFetch {
        var: String,
        source_desc: String,
        reason: String,
    },
    #[error("{var}={value:?} is not valid: {expected}")]
    Invalid {
        var: String,
        value: String,
        expected: String,
    },
    #[error("keyword configuration: {0}")]
    Keywords(#[from] KeywordConfigError),
}

/// How to obtain one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Value(SecretString),
    SecretsManager(String),
    Ssm(String),
}

impl SecretRef {
    /// Reads `{var}`, `{var}_ARN` and `{var}_PARAM`; `Ok(None)` if none is set.
    pub fn from_env(env: &Env, var: &str) -> Result<Option<Self>, ConfigError> {
        let arn_var = format!("{var}_ARN");
        let param_var = format!("{var}_PARAM");
        let found: Vec<(String, SecretRef)> = [
            env.get(var)
                .map(|v| (var.to_owned(), SecretRef::Value(SecretString::new(v)))),
            env.get(&arn_var)
                .map(|v| (arn_var.clone(), SecretRef::SecretsManager(v))),
            env.get(&param_var)
                .map(|v| (param_var.clone(), SecretRef::Ssm(v))),
        ]
        .into_iter()
        .flatten()
        .collect();
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.into_iter().next().map(|(_, r)| r)),
            _ => Err(ConfigError::AmbiguousSecret {
                vars: found
                    .iter()
                    .map(|(v, _)| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    fn describe(&self, var: &str) -> String {
        match self {
            SecretRef::Value(_) => format!("the environment variable {var}"),
            SecretRef::SecretsManager(id) => format!("Secrets Manager secret {id}"),
            SecretRef::Ssm(name) => format!("SSM parameter {name}"),
        }
    }
}

/// Fetches secrets, building the Secrets Manager and SSM clients only if a secret lives there.
pub struct SecretResolver {
    sdk: SdkConfig,
    secrets_manager: OnceCell<aws_sdk_secretsmanager::Client>,
    ssm: OnceCell<aws_sdk_ssm::Client>,
}

impl SecretResolver {
    pub fn new(sdk: SdkConfig) -> Self {
        Self {
            sdk,
            secrets_manager: OnceCell::new(),
            ssm: OnceCell::new(),
        }
    }

    /// Resolves the required secret `var`.
    pub async fn required(&self, env: &Env, var: &str) -> Result<SecretString, ConfigError> {
        match SecretRef::from_env(env, var)? {
            Some(r) => self.fetch(var, &r).await,
            None => Err(ConfigError::MissingSecret {
                var: var.to_owned(),
            }),
        }
    }

    /// Resolves `var` if any of its forms is set.
    pub async fn optional(
        &self,
        env: &Env,
        var: &str,
    ) -> Result<Option<SecretString>, ConfigError> {
        match SecretRef::from_env(env, var)? {
            Some(r) => self.fetch(var, &r).await.map(Some),
            None => Ok(None),
        }
    }

    async fn fetch(&self, var: &str, r: &SecretRef) -> Result<SecretString, ConfigError> {
        let fetch_err = |reason: String| ConfigError::SecretFetch {
            var: var.to_owned(),
            source_desc: r.describe(var),
            reason,
        };
        let value = match r {
            SecretRef::Value(v) => v.clone(),
            SecretRef::SecretsManager(id) => {
                let client = self
                    .secrets_manager
                    .get_or_init(|| async { aws_sdk_secretsmanager::Client::new(&self.sdk) })
                    .await;
                let out = client
                    .get_secret_value()
                    .secret_id(id)
                    .send()
                    .await
                    .map_err(|e| fetch_err(aws_sdk_secretsmanager::Error::from(e).to_string()))?;
                SecretString::new(out.secret_string().ok_or_else(|| {
                    fetch_err(
                        "the secret has no SecretString (binary secrets are not supported)".into(),
                    )
                })?)
            }
            SecretRef::Ssm(name) => {
                let client = self
                    .ssm
                    .get_or_init(|| async { aws_sdk_ssm::Client::new(&self.sdk) })
                    .await;
                let out = client
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| fetch_err(aws_sdk_ssm::Error::from(e).to_string()))?;
                SecretString::new(
                    out.parameter()
                        .and_then(|p| p.value())
                        .ok_or_else(|| fetch_err("the parameter has no value".into()))?,
                )
            }
        };
        if value.is_blank() {
            return Err(ConfigError::BlankSecret {
                var: var.to_owned(),
                source_desc: r.describe(var),
            });
        }
        Ok(value)
    }
}

/// Minimum retention: Meta redelivers for up to 7 days, and dedupe needs the record to still exist.
pub const MIN_RETENTION_DAYS: u32 = 8;
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// Everything the webhook function needs.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The current app secret first; the previous one while rotating.
    pub app_secrets: Vec<SecretString>,
    pub verify_token: SecretString,
    pub tables: TableNames,
    /// Messages and events are kept this long after their payload time (DynamoDB TTL).
    pub retention_days: u32,
    pub keywords: KeywordRules,
    /// How many DynamoDB writes one delivery may have in flight.
    pub write_concurrency: usize,
}

impl WebhookConfig {
    pub async fn load(env: &Env, secrets: &SecretResolver) -> Result<Self, ConfigError> {
        let mut app_secrets = vec![secrets.required(env, "WAHOOK_APP_SECRET").await?];
        if let Some(previous) = secrets.optional(env, "WAHOOK_APP_SECRET_PREVIOUS").await? {
            app_secrets.push(previous);
        }
        let verify_token = secrets.required(env, "WAHOOK_VERIFY_TOKEN").await?;
        Ok(Self {
            app_secrets,
            verify_token,
            tables: table_names(env),
            retention_days: retention_days(env)?,
            keywords: keyword_rules(env)?,
            write_concurrency: parse_number(env, "WAHOOK_WRITE_CONCURRENCY", 32, 1..=256)?,
        })
    }
}

/// Everything the sender function needs.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub access_token: SecretString,
    pub default_from: Option<PhoneNumberId>,
    pub graph: GraphConfig,
    pub tables: TableNames,
    pub retention_days: u32,
    pub queue_url: String,
    pub dlq_url: String,
    pub concurrency: usize,
    pub rate_per_second: f64,
    pub burst: u32,
    pub policy: PolicyConfig,
    pub lease_secs: i64,
    pub reconcile_wait_secs: i64,
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
            default_from,
            graph,
            tables: table_names(env),
            retention_days: retention_days(env)?,
            queue_url: required(env, "WAHOOK_SENDS_QUEUE_URL", "the URL of the sends queue")?,
            dlq_url: required(
                env,
                "WAHOOK_SENDS_DLQ_URL",
                "the URL of the sends dead-letter queue",
            )?,
            concurrency: parse_number(env, "WAHOOK_SEND_CONCURRENCY", 10, 1..=100)?,
            rate_per_second,
            burst: parse_number(env, "WAHOOK_SEND_BURST", 10, 1..=1_000)?,
            policy: PolicyConfig {
                window_margin_secs: parse_number(
                    env,
                    "WAHOOK_WINDOW_MARGIN_SECONDS",
                    600,
                    0..=86_399,
                )?,
                consent_required,
            },
            lease_secs,
            reconcile_wait_secs: parse_number(
                env,
                "WAHOOK_RECONCILE_WAIT_SECONDS",
                120,
                0..=43_200,
            )?,
        })
    }
}

fn required(env: &Env, var: &str, what: &str) -> Result<String, ConfigError> {
    env.get(var).ok_or_else(|| ConfigError::Invalid {
        var: var.to_owned(),
        value: String::new(),
        expected: format!("{what}; it is required"),
    })
}

fn parse_categories(var: &str, names: &[String]) -> Result<Vec<Category>, ConfigError> {
    names
        .iter()
        .map(|n| {
            n.parse::<Category>().map_err(|e| ConfigError::Invalid {
                var: var.into(),
                value: n.clone(),
                expected: e.to_string(),
            })
        })
        .collect()
}

/// Table names from `WAHOOK_*_TABLE`, defaulting to `wahook-contacts` etc.
pub fn table_names(env: &Env) -> TableNames {
    let defaults = TableNames::with_prefix("wahook");
    TableNames {
        contacts: env.get(CONTACTS.env_var).unwrap_or(defaults.contacts),
        messages: env.get(MESSAGES.env_var).unwrap_or(defaults.messages),
        events: env.get(EVENTS.env_var).unwrap_or(defaults.events),
        sends: env.get(SENDS.env_var).unwrap_or(defaults.sends),
    }
}

fn retention_days(env: &Env) -> Result<u32, ConfigError> {
    parse_number(
        env,
        "WAHOOK_RETENTION_DAYS",
        DEFAULT_RETENTION_DAYS,
        MIN_RETENTION_DAYS..=36_500,
    )
}

fn parse_number<T>(
    env: &Env,
    var: &str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = env.get(var) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(ConfigError::Invalid {
            var: var.to_owned(),
            value: raw,
            expected: format!("a number from {} to {}", range.start(), range.end()),
        }),
    }
}

/// Comma-separated list, trimmed, empty items dropped.
fn list(env: &Env, var: &str) -> Option<Vec<String>> {
    env.get(var).map(|v| {
        v.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

fn keyword_rules(env: &Env) -> Result<KeywordRules, ConfigError> {
    let owned = |d: &[&str]| d.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let stop = list(env, "WAHOOK_STOP_KEYWORDS").unwrap_or_else(|| owned(DEFAULT_STOP_KEYWORDS));
    let start = list(env, "WAHOOK_START_KEYWORDS").unwrap_or_else(|| owned(DEFAULT_START_KEYWORDS));
    let labels = list(env, "WAHOOK_STOP_PROMOTIONS_LABELS")
        .unwrap_or_else(|| owned(DEFAULT_STOP_PROMOTIONS_LABELS));
    let categories = match list(env, "WAHOOK_STOP_KEYWORD_CATEGORIES") {
        None => vec![Category::Marketing, Category::Utility],
        Some(names) => parse_categories("WAHOOK_STOP_KEYWORD_CATEGORIES", &names)?,
    };
    Ok(KeywordRules::new(&stop, &start, &labels, &categories)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::BehaviorVersion;

    fn resolver() -> SecretResolver {
        // Never reached by these tests: every secret here comes from the environment.
        SecretResolver::new(
            SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .build(),
        )
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("WAHOOK_APP_SECRET", "app-secret"),
            ("WAHOOK_VERIFY_TOKEN", "verify-token"),
        ]
    }

    #[test]
    fn a_minimal_local_configuration_loads_with_defaults() {
        let cfg = block(WebhookConfig::load(&Env::from_pairs(base()), &resolver())).unwrap();
        assert_eq!(cfg.app_secrets.len(), 1);
        assert_eq!(cfg.tables.messages, "wahook-messages");
        assert_eq!(cfg.retention_days, DEFAULT_RETENTION_DAYS);
        assert_eq!(cfg.write_concurrency, 32);
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("app-secret") && !shown.contains("verify-token"),
            "{shown}"
        );
    }

    #[test]
    fn a_missing_secret_names_every_way_to_set_it() {
        let env = Env::from_pairs([("WAHOOK_VERIFY_TOKEN", "t")]);
        let err = block(WebhookConfig::load(&env, &resolver()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("WAHOOK_APP_SECRET is not set"), "{err}");
        assert!(
            err.contains("WAHOOK_APP_SECRET_ARN") && err.contains("WAHOOK_APP_SECRET_PARAM"),
            "{err}"
        );
    }

    #[test]
    fn a_blank_secret_fails_start_up() {
        let env = Env::from_pairs([("WAHOOK_APP_SECRET", "   "), ("WAHOOK_VERIFY_TOKEN", "t")]);
        let err = block(WebhookConfig::load(&env, &resolver()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("WAHOOK_APP_SECRET is blank"), "{err}");
    }

    #[test]
    fn two_sources_for_one_secret_is_an_error() {
        let env = Env::from_pairs([
            ("WAHOOK_APP_SECRET", "a"),
            (
                "WAHOOK_APP_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:x",
            ),
            ("WAHOOK_VERIFY_TOKEN", "t"),
        ]);
        let err = block(WebhookConfig::load(&env, &resolver()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("WAHOOK_APP_SECRET, WAHOOK_APP_SECRET_ARN are all set"),
            "{err}"
        );
    }

    #[test]
    fn the_previous_app_secret_is_used_during_rotation() {
        let mut pairs = base();
        pairs.push(("WAHOOK_APP_SECRET_PREVIOUS", "old-secret"));
        let cfg = block(WebhookConfig::load(&Env::from_pairs(pairs), &resolver())).unwrap();
        assert_eq!(cfg.app_secrets.len(), 2);
        assert_eq!(cfg.app_secrets[1].expose(), "old-secret");
    }

    #[test]
    fn retention_below_meta_redelivery_is_refused() {
        let mut pairs = base();
        pairs.push(("WAHOOK_RETENTION_DAYS", "7"));
        let err = block(WebhookConfig::load(&Env::from_pairs(pairs), &resolver()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("WAHOOK_RETENTION_DAYS=\"7\"") && err.contains("from 8"),
            "{err}"
        );
    }

    fn sender_base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("WAHOOK_ACCESS_TOKEN", "EAAG-token"),
            (
                "WAHOOK_SENDS_QUEUE_URL",
                "http://127.0.0.1:5000/123456789012/sends",
            ),
            (
                "WAHOOK_SENDS_DLQ_URL",
                "http://127.0.0.1:5000/123456789012/sends-dlq",
            ),
        ]
    }

    #[test]
    fn a_minimal_sender_configuration_loads_with_defaults() {
        let cfg = block(SenderConfig::load(
            &Env::from_pairs(sender_base()),
            &resolver(),
        ))
        .unwrap();
        assert_eq!(cfg.graph.api_version, "v25.0");
        assert_eq!(cfg.graph.base_url, "https://graph.facebook.com");
        assert_eq!(
            (cfg.rate_per_second, cfg.burst, cfg.concurrency),
            (70.0, 10, 10)
        );
        assert_eq!(cfg.policy.window_margin_secs, 600);
        assert!(cfg.default_from.is_none());
        assert!(!format!("{cfg:?}").contains("EAAG"));
    }

    #[test]
    fn sender_settings_are_checked_against_each_other() {
        let mut pairs = sender_base();
        pairs.push(("WAHOOK_GRAPH_TIMEOUT_MS", "30000"));
        pairs.push(("WAHOOK_LEASE_SECONDS", "20"));
        let err = block(SenderConfig::load(&Env::from_pairs(pairs), &resolver()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("WAHOOK_LEASE_SECONDS") && err.contains("30000 ms"),
            "{err}"
        );

        let mut pairs = sender_base();
        pairs.push(("WAHOOK_GRAPH_API_VERSION", "25"));
        let err = block(SenderConfig::load(&Env::from_pairs(pairs), &resolver()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("like v25.0"), "{err}");

        let pairs = vec![("WAHOOK_ACCESS_TOKEN", "t")];
        let err = block(SenderConfig::load(&Env::from_pairs(pairs), &resolver()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("WAHOOK_SENDS_QUEUE_URL") && err.contains("required"),
            "{err}"
        );

        let mut pairs = sender_base();
        pairs.push(("WAHOOK_SEND_RATE_PER_SECOND", "17.5"));
        pairs.push(("WAHOOK_REQUIRE_CONSENT", "marketing"));
        let cfg = block(SenderConfig::load(&Env::from_pairs(pairs), &resolver())).unwrap();
        assert_eq!(cfg.rate_per_second, 17.5);
        assert_eq!(cfg.policy.consent_required, vec![Category::Marketing]);
    }

    #[test]
    fn keywords_and_categories_are_configurable() {
        let mut pairs = base();
        pairs.push(("WAHOOK_STOP_KEYWORDS", "halt, ARRET"));
        pairs.push(("WAHOOK_START_KEYWORDS", "go"));
        pairs.push(("WAHOOK_STOP_KEYWORD_CATEGORIES", "marketing"));
        let cfg = block(WebhookConfig::load(&Env::from_pairs(pairs), &resolver())).unwrap();
        use crate::domain::keywords::KeywordIntent;
        assert_eq!(
            cfg.keywords.classify_text("Arrêt"),
            Some(KeywordIntent::Stop)
        );
        assert_eq!(cfg.keywords.classify_text("stop"), None);
        assert_eq!(cfg.keywords.keyword_categories(), &[Category::Marketing]);

        let mut pairs = base();
        pairs.push(("WAHOOK_STOP_KEYWORD_CATEGORIES", "marketing,promos"));
        let err = block(WebhookConfig::load(&Env::from_pairs(pairs), &resolver()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"promos\"") && err.contains("expected one of"),
            "{err}"
        );
    }
}
