//! Where configuration is read from, what a start-up problem says, and the small parsers every
//! configuration shares (each failure names the variable and what it should hold).

use std::collections::HashMap;

use crate::domain::ids::PhoneNumberId;
use crate::domain::keywords::KeywordConfigError;
use crate::domain::preferences::Category;

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

pub(super) fn required(env: &Env, var: &str, what: &str) -> Result<String, ConfigError> {
    env.get(var).ok_or_else(|| ConfigError::Invalid {
        var: var.to_owned(),
        value: String::new(),
        expected: format!("{what}; it is required"),
    })
}

pub(super) fn parse_categories(var: &str, names: &[String]) -> Result<Vec<Category>, ConfigError> {
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

pub(super) fn parse_number<T>(
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
pub(super) fn list(env: &Env, var: &str) -> Option<Vec<String>> {
    env.get(var).map(|v| {
        v.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

/// `WAHOOK_DEFAULT_PHONE_NUMBER_ID`, if set: Meta's numeric id of the number sends go from by default.
pub(super) fn default_phone_number_id(env: &Env) -> Result<Option<PhoneNumberId>, ConfigError> {
    let var = "WAHOOK_DEFAULT_PHONE_NUMBER_ID";
    env.get(var)
        .map(|raw| {
            PhoneNumberId::parse(raw.trim()).map_err(|_| ConfigError::Invalid {
                var: var.into(),
                value: raw.clone(),
                expected: "Meta's numeric phone number id (WhatsApp Manager > Phone numbers)"
                    .into(),
            })
        })
        .transpose()
}

/// `WAHOOK_ALLOWED_PHONE_NUMBER_IDS`: the business numbers that are ours; unset means just the
/// default number (none if that is unset too). It must include the default number.
pub(super) fn allowed_phone_number_ids(
    env: &Env,
    default: Option<&PhoneNumberId>,
) -> Result<Vec<PhoneNumberId>, ConfigError> {
    let var = "WAHOOK_ALLOWED_PHONE_NUMBER_IDS";
    let allowed = match list(env, var) {
        Some(ids) => ids
            .iter()
            .map(|raw| {
                PhoneNumberId::parse(raw).map_err(|_| ConfigError::Invalid {
                    var: var.into(),
                    value: raw.clone(),
                    expected: "a comma-separated list of Meta's numeric phone number ids".into(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => default.into_iter().cloned().collect(),
    };
    if let Some(d) = default.filter(|d| !allowed.contains(d)) {
        return Err(ConfigError::Invalid {
            var: var.into(),
            value: env.get(var).unwrap_or_default(),
            expected: format!(
                "a list that includes WAHOOK_DEFAULT_PHONE_NUMBER_ID ({})",
                d.as_str()
            ),
        });
    }
    Ok(allowed)
}
