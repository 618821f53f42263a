//! Configuration from the environment, and secrets from Secrets Manager, SSM or the environment.
//!
//! - [`mod@env`]: where values are read from, the error a start-up problem gives, the shared parsers;
//! - [`secrets`]: how each secret is found (`X`, `X_ARN` or `X_PARAM`, exactly one);
//! - [`webhook`], [`sender`], [`template_sync`], [`media`] and [`publisher`]: each function's
//!   configuration;
//! - this module: what both share, the storage (tables and retention), and the one place a
//!   [`Store`] is built from it.
//!
//! Anything missing, blank or ambiguous stops start-up with a message naming the variable to set.

pub mod deadlines;
pub mod env;
pub mod media;
pub mod publisher;
pub mod secrets;
pub mod sender;
pub mod template_sync;
pub mod webhook;

pub use deadlines::{Deadlines, Function};
pub use env::{ConfigError, Env};
pub use media::MediaConfig;
pub use publisher::PublisherConfig;
pub use secrets::{SecretRef, SecretResolver};
pub use sender::{SenderConfig, SenderSettings, TemplateSettings};
pub use template_sync::TemplateSyncConfig;
pub use webhook::WebhookConfig;

use env::parse_number;

use crate::store::tables::{TableNames, CONTACTS, EVENTS, FIGURES, MESSAGES, SENDS, TEMPLATES};
use crate::store::Store;

/// Minimum retention: Meta redelivers for up to 7 days, and dedupe needs the record to still exist.
pub const MIN_RETENTION_DAYS: u32 = 8;
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// Where both functions keep their data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    pub tables: TableNames,
    /// Messages and events are kept this long after their payload time (DynamoDB TTL).
    pub retention_days: u32,
}

impl StorageConfig {
    pub fn load(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            tables: table_names(env),
            retention_days: retention_days(env)?,
        })
    }

    /// The store over these tables: the one place a [`Store`] is built from configuration.
    pub fn store(&self, client: aws_sdk_dynamodb::Client) -> Store {
        Store::new(client, self.tables.clone(), self.retention_days)
    }
}

/// Table names from `WAHOOK_*_TABLE`, defaulting to `wahook-contacts` etc.
pub fn table_names(env: &Env) -> TableNames {
    let defaults = TableNames::with_prefix("wahook");
    TableNames {
        contacts: env.get(CONTACTS.env_var).unwrap_or(defaults.contacts),
        messages: env.get(MESSAGES.env_var).unwrap_or(defaults.messages),
        events: env.get(EVENTS.env_var).unwrap_or(defaults.events),
        sends: env.get(SENDS.env_var).unwrap_or(defaults.sends),
        templates: env.get(TEMPLATES.env_var).unwrap_or(defaults.templates),
        figures: env.get(FIGURES.env_var).unwrap_or(defaults.figures),
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
#[cfg(test)]
mod tests;
