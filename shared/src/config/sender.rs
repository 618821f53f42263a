//! The sender function's configuration.

use std::time::Duration;

use super::deadlines::{Deadlines, Function};
use super::env::{
    allowed_phone_number_ids, default_phone_number_id, list, parse_categories, parse_number,
    required, ConfigError, Env,
};
use super::secrets::{SecretRef, SecretResolver};
use super::StorageConfig;
use crate::domain::frequency::FrequencyCap;
use crate::domain::ids::PhoneNumberId;
use crate::domain::ledger::LedgerSettings;
use crate::domain::policy::PolicyConfig;
use crate::domain::template::{MarketingRoute, UnknownTemplates};
use crate::graph::{
    check_base_url, GraphConfig, DEFAULT_GRAPH_API_VERSION, DEFAULT_GRAPH_BASE_URL,
};
use crate::secret::SecretString;

/// Meta's default messages per second for one business number.
pub const DEFAULT_NUMBER_RATE_LIMIT: f64 = 80.0;
/// The share of that limit the sender uses.
pub const DEFAULT_RATE_HEADROOM: f64 = 0.8;
/// Concurrent sender invocations: the template's `SenderMaximumConcurrency` default.
pub const DEFAULT_SENDER_MAX_CONCURRENCY: u32 = 2;

/// The one place the per-invocation send rate is computed: Meta's per-number limit, times the
/// headroom, shared among the concurrent invocations. `WAHOOK_SEND_RATE_PER_SECOND` overrides it
/// (the local stack, a test). The template passes the three inputs, so it never hand-matches a rate.
pub fn per_invocation_rate(limit: f64, headroom: f64, invocations: u32) -> f64 {
    limit * headroom / f64::from(invocations.max(1))
}

fn pacing(env: &Env) -> Result<f64, ConfigError> {
    if env.get("WAHOOK_SEND_RATE_PER_SECOND").is_some() {
        return parse_number(env, "WAHOOK_SEND_RATE_PER_SECOND", 32.0, 0.1..=1_000.0);
    }
    let limit = parse_number(
        env,
        "WAHOOK_NUMBER_RATE_LIMIT",
        DEFAULT_NUMBER_RATE_LIMIT,
        1.0..=10_000.0,
    )?;
    let headroom = parse_number(
        env,
        "WAHOOK_RATE_HEADROOM",
        DEFAULT_RATE_HEADROOM,
        0.1..=1.0,
    )?;
    let invocations = parse_number(
        env,
        "WAHOOK_SENDER_MAX_CONCURRENCY",
        DEFAULT_SENDER_MAX_CONCURRENCY,
        1..=1_000,
    )?;
    Ok(per_invocation_rate(limit, headroom, invocations).max(0.1))
}

/// Deliveries before SQS itself moves a send to the DLQ: the template's `MaxReceiveCount` default
/// (`outbound::queue::SENDS_QUEUE` is built from this).
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 10;

/// Everything the sender function needs: its clients' settings, and the [`SenderSettings`] the
/// sender keeps.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub access_token: SecretString,
    /// Where the token came from: read again (at most every `token_reread_interval`) when Meta
    /// refuses it, so a secret rotated in place is picked up without a cold start.
    pub access_token_source: SecretRef,
    pub token_reread_interval: Duration,
    pub deadlines: Deadlines,
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
    /// The business numbers requests may send from (`WAHOOK_ALLOWED_PHONE_NUMBER_IDS`; by default
    /// the default number). Empty: any number (only when no default is configured either).
    pub allowed_from: Vec<PhoneNumberId>,
    pub account: AccountSettings,
    /// The sends queue's `maxReceiveCount`: on that delivery a record that would be retried is
    /// dead-lettered by the sender itself, with its last error (`retries_exhausted`).
    pub max_receive_count: u32,
    /// The time a send needs from its start: the Graph call and the storage calls around it. A
    /// record is not started with less left in the invocation (it goes back to the queue unclaimed).
    pub record_budget: Duration,
    pub templates: TemplateSettings,
    /// At most this many marketing templates per person in a rolling window; `None`: no cap.
    pub marketing_cap: Option<FrequencyCap>,
}

/// How the sender uses the template registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateSettings {
    /// The business account (WABA) whose templates the sends use (`WAHOOK_WABA_ID`). Unset: the
    /// registry is not consulted and Meta judges every template, as before the registry.
    pub waba_id: Option<String>,
    /// What a template the registry has never heard of does (`WAHOOK_UNKNOWN_TEMPLATES`).
    pub unknown: UnknownTemplates,
    /// Where marketing templates go (`WAHOOK_MARKETING_MESSAGES`).
    pub marketing_route: MarketingRoute,
    /// `product_policy` on a Marketing Messages API send (`WAHOOK_MARKETING_PRODUCT_POLICY`);
    /// unset: not sent, Meta's default applies.
    pub product_policy: Option<String>,
}

/// What an account failure (token, payment, lock…) does to the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountSettings {
    /// How long a halted business number gets no Graph calls before one probe goes.
    pub pause: Duration,
    /// How long a held record waits before it comes back (no jitter: held sends keep their order).
    pub hold_secs: u32,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            pause: Duration::from_secs(60),
            hold_secs: 300,
        }
    }
}

/// `WAHOOK_WABA_ID`: the business account whose templates are used; blank or unset is none.
pub(super) fn waba_id(env: &Env) -> Result<Option<String>, ConfigError> {
    Ok(match env.get("WAHOOK_WABA_ID") {
        Some(raw) if raw.trim().is_empty() => None,
        Some(raw) if raw.trim().bytes().all(|b| b.is_ascii_digit()) => Some(raw.trim().to_owned()),
        Some(raw) => {
            return Err(ConfigError::Invalid {
                var: "WAHOOK_WABA_ID".into(),
                value: raw,
                expected: "the WhatsApp Business Account id, digits only (WhatsApp Manager > Account tools > Phone numbers, or the webhook's entry.id)".into(),
            })
        }
        None => None,
    })
}

/// `WAHOOK_WABA_ID` and `WAHOOK_UNKNOWN_TEMPLATES` (`send`, the default, or `refuse`).
fn template_settings(env: &Env) -> Result<TemplateSettings, ConfigError> {
    let waba_id = waba_id(env)?;
    let unknown = match env.get("WAHOOK_UNKNOWN_TEMPLATES").as_deref().map(str::trim) {
        None | Some("send") => UnknownTemplates::Send,
        Some("refuse") if waba_id.is_some() => UnknownTemplates::Refuse,
        Some("refuse") => {
            return Err(ConfigError::Invalid {
                var: "WAHOOK_UNKNOWN_TEMPLATES".into(),
                value: "refuse".into(),
                expected: "refuse only with WAHOOK_WABA_ID set: without it the registry is not read, so every template would be unknown".into(),
            })
        }
        Some(other) => {
            return Err(ConfigError::Invalid {
                var: "WAHOOK_UNKNOWN_TEMPLATES".into(),
                value: other.into(),
                expected: "send or refuse".into(),
            })
        }
    };
    let route = env
        .get("WAHOOK_MARKETING_MESSAGES")
        .map(|v| v.trim().to_ascii_lowercase());
    let marketing_route = match route.as_deref() {
        None | Some("auto") => MarketingRoute::Auto,
        // The route follows Meta's category, which only the registry knows.
        Some("on") if waba_id.is_some() => MarketingRoute::On,
        Some("on") => {
            return Err(ConfigError::Invalid {
                var: "WAHOOK_MARKETING_MESSAGES".into(),
                value: "on".into(),
                expected: "on only with WAHOOK_WABA_ID set: marketing is routed by Meta's category, which the registry under it knows".into(),
            })
        }
        Some("off") => MarketingRoute::Off,
        Some(other) => {
            return Err(ConfigError::Invalid {
                var: "WAHOOK_MARKETING_MESSAGES".into(),
                value: other.into(),
                expected:
                    "auto (the Marketing Messages API once the account is onboarded), on or off"
                        .into(),
            })
        }
    };
    let product_policy = match env.get("WAHOOK_MARKETING_PRODUCT_POLICY") {
        None => None,
        Some(raw) if raw.trim().is_empty() => None,
        Some(raw) => match raw.trim().to_ascii_uppercase().as_str() {
            p @ ("CLOUD_API_FALLBACK" | "STRICT") => Some(p.to_owned()),
            _ => {
                return Err(ConfigError::Invalid {
                    var: "WAHOOK_MARKETING_PRODUCT_POLICY".into(),
                    value: raw,
                    expected: "CLOUD_API_FALLBACK or STRICT (or unset for Meta's default)".into(),
                })
            }
        },
    };
    Ok(TemplateSettings {
        waba_id,
        unknown,
        marketing_route,
        product_policy,
    })
}

/// The Graph API client's settings (`WAHOOK_GRAPH_BASE_URL`, `_API_VERSION`, `_TIMEOUT_MS`): the
/// same for every function that calls Meta.
pub(super) fn graph_config(env: &Env) -> Result<GraphConfig, ConfigError> {
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
    check_base_url(&graph.base_url).map_err(|e| ConfigError::Invalid {
        var: "WAHOOK_GRAPH_BASE_URL".into(),
        value: graph.base_url.clone(),
        expected: e.to_string(),
    })?;
    Ok(graph)
}

/// `WAHOOK_MARKETING_CAP` (0, the default, is off) per `WAHOOK_MARKETING_CAP_DAYS` (7).
fn marketing_cap(env: &Env) -> Result<Option<FrequencyCap>, ConfigError> {
    let max: u32 = parse_number(env, "WAHOOK_MARKETING_CAP", 0, 0..=100)?;
    let window_days: u32 = parse_number(env, "WAHOOK_MARKETING_CAP_DAYS", 7, 1..=90)?;
    Ok((max > 0).then_some(FrequencyCap { max, window_days }))
}

/// The longest a record may be set aside: SQS refuses a visibility past 12 h from its receive, and a
/// batch has already used some of that.
const MAX_WAIT_SECS: u32 = 42_000;

impl SenderConfig {
    pub async fn load(env: &Env, secrets: &SecretResolver) -> Result<Self, ConfigError> {
        let access_token = secrets.required(env, "WAHOOK_ACCESS_TOKEN").await?;
        let access_token_source = SecretRef::from_env(env, "WAHOOK_ACCESS_TOKEN")?
            .expect("the token was just resolved from one of its forms");
        let deadlines = Deadlines::load(env, Function::Sender)?;
        let default_from = default_phone_number_id(env)?;
        let graph = graph_config(env)?;
        let timeout_ms = graph.timeout.as_millis() as u64;
        // A record makes one Graph call and a few storage calls; all must end before Lambda ends us.
        deadlines.check_inside(
            "WAHOOK_GRAPH_TIMEOUT_MS",
            graph.timeout + deadlines.aws_operation * 2,
            Duration::from_secs(1),
        )?;
        // What the check above fits inside the function: the call and two storage operations (the
        // claim before it, the outcome's write after it).
        let record_budget = graph.timeout + deadlines.aws_operation * 2;
        let templates = template_settings(env)?;
        let lease_secs: i64 = parse_number(env, "WAHOOK_LEASE_SECONDS", 60, 5..=900)?;
        // A claim must outlive the call it protects, or a second worker could send again meanwhile;
        // and the function, or a worker Lambda has not yet ended could still call.
        if (lease_secs as u64) * 1000 <= timeout_ms + 2_000
            || (lease_secs as u64) < deadlines.function_timeout.as_secs()
        {
            return Err(ConfigError::Invalid {
                var: "WAHOOK_LEASE_SECONDS".into(),
                value: lease_secs.to_string(),
                expected: format!(
                    "more than WAHOOK_GRAPH_TIMEOUT_MS ({timeout_ms} ms) plus 2 s, and at least the function timeout"
                ),
            });
        }
        let rate_per_second = pacing(env)?;
        let consent_required = match list(env, "WAHOOK_REQUIRE_CONSENT") {
            None => Vec::new(),
            Some(names) => parse_categories("WAHOOK_REQUIRE_CONSENT", &names)?,
        };
        let allowed_from = allowed_phone_number_ids(env, default_from.as_ref())?;
        let account = AccountSettings {
            pause: Duration::from_secs(parse_number(
                env,
                "WAHOOK_ACCOUNT_PAUSE_SECONDS",
                60,
                1..=3_600,
            )?),
            // Below SQS's 12 h visibility ceiling, which counts from the receive.
            hold_secs: parse_number(env, "WAHOOK_ACCOUNT_HOLD_SECONDS", 300, 1..=MAX_WAIT_SECS)?,
        };
        Ok(Self {
            access_token,
            access_token_source,
            token_reread_interval: Duration::from_secs(parse_number(
                env,
                "WAHOOK_TOKEN_REREAD_SECONDS",
                60,
                0..=3_600,
            )?),
            deadlines,
            graph,
            storage: StorageConfig::load(env)?,
            queue_url: required(env, "WAHOOK_SENDS_QUEUE_URL", "the URL of the sends queue")?,
            dlq_url: required(
                env,
                "WAHOOK_SENDS_DLQ_URL",
                "the URL of the sends dead-letter queue",
            )?,
            rate_per_second,
            burst: parse_number(env, "WAHOOK_SEND_BURST", 5, 1..=1_000)?,
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
                        0..=MAX_WAIT_SECS as i64,
                    )?,
                },
                allowed_from,
                account,
                record_budget,
                templates,
                marketing_cap: marketing_cap(env)?,
                max_receive_count: parse_number(
                    env,
                    "WAHOOK_MAX_RECEIVE_COUNT",
                    DEFAULT_MAX_RECEIVE_COUNT,
                    1..=1_000,
                )?,
            },
        })
    }
}
