//! Secrets from the environment, Secrets Manager or SSM: every secret `X` comes from exactly one of
//! `X` (the value itself: local runs, tests), `X_ARN` (a Secrets Manager secret whose SecretString is
//! the value) or `X_PARAM` (an SSM SecureString parameter). Missing, blank or ambiguous stops
//! start-up with a message naming the variable to set.

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

use super::env::{ConfigError, Env};
use crate::secret::SecretString;

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

    /// Fetches `r` again (a secret rotated in place is read anew; a value from the environment is
    /// itself).
    pub async fn fetch(&self, var: &str, r: &SecretRef) -> Result<SecretString, ConfigError> {
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
                    .map_err(|e| fetch_err(crate::telemetry::error_chain(&e)))?;
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
                    .map_err(|e| fetch_err(crate::telemetry::error_chain(&e)))?;
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
