//! The template-sync function's configuration: the business account to list, the Graph client, the
//! registry's table. It reads the same variables as the sender for what the two share.

use super::deadlines::{Deadlines, Function};
use super::env::{ConfigError, Env};
use super::secrets::SecretResolver;
use super::sender::{graph_config, waba_id};
use super::StorageConfig;
use crate::graph::GraphConfig;
use crate::secret::SecretString;

#[derive(Debug, Clone)]
pub struct TemplateSyncConfig {
    pub access_token: SecretString,
    pub deadlines: Deadlines,
    pub graph: GraphConfig,
    pub storage: StorageConfig,
    /// The business account whose templates are listed (`WAHOOK_WABA_ID`, required here).
    pub waba_id: String,
}

impl TemplateSyncConfig {
    pub async fn load(env: &Env, secrets: &SecretResolver) -> Result<Self, ConfigError> {
        // The account first: without it there is nothing to list, and no reason to fetch a secret.
        let waba_id = waba_id(env)?.ok_or_else(|| ConfigError::Invalid {
            var: "WAHOOK_WABA_ID".into(),
            value: env.get("WAHOOK_WABA_ID").unwrap_or_default(),
            expected: "the WhatsApp Business Account id whose templates to sync (digits; the webhook's entry.id)".into(),
        })?;
        let access_token = secrets.required(env, "WAHOOK_ACCESS_TOKEN").await?;
        let deadlines = Deadlines::load(env, Function::TemplateSync)?;
        let graph = graph_config(env)?;
        // One page call and the writes after it end before Lambda ends the function.
        deadlines.check_inside(
            "WAHOOK_GRAPH_TIMEOUT_MS",
            graph.timeout + deadlines.aws_operation * 2,
            std::time::Duration::from_secs(1),
        )?;
        Ok(Self {
            access_token,
            deadlines,
            graph,
            storage: StorageConfig::load(env)?,
            waba_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::BehaviorVersion;

    fn resolver() -> SecretResolver {
        SecretResolver::new(
            aws_config::SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .build(),
        )
    }

    #[tokio::test]
    async fn the_account_id_is_required_and_checked_before_the_token() {
        for (waba, want) in [(None, ""), (Some("  "), "  "), (Some("12ab"), "12ab")] {
            let mut pairs = vec![];
            if let Some(w) = waba {
                pairs.push(("WAHOOK_WABA_ID", w));
            }
            let err = TemplateSyncConfig::load(&Env::from_pairs(pairs), &resolver())
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("WAHOOK_WABA_ID"), "{err}");
            assert!(
                err.contains(&format!("{want:?}")) || want.is_empty(),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn it_shares_the_senders_graph_settings_and_tables() {
        let env = Env::from_pairs([
            ("WAHOOK_WABA_ID", " 102290129340398 "),
            ("WAHOOK_ACCESS_TOKEN", "t"),
            ("WAHOOK_GRAPH_API_VERSION", "v24.0"),
            ("WAHOOK_TEMPLATES_TABLE", "prod-templates"),
        ]);
        let c = TemplateSyncConfig::load(&env, &resolver()).await.unwrap();
        assert_eq!(c.waba_id, "102290129340398");
        assert_eq!(c.graph.api_version, "v24.0");
        assert_eq!(c.storage.tables.templates, "prod-templates");
        assert_eq!(c.deadlines.function_timeout.as_secs(), 300);
        let bad = Env::from_pairs([
            ("WAHOOK_WABA_ID", "1"),
            ("WAHOOK_ACCESS_TOKEN", "t"),
            ("WAHOOK_GRAPH_API_VERSION", "25"),
        ]);
        let err = TemplateSyncConfig::load(&bad, &resolver())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("WAHOOK_GRAPH_API_VERSION"),
            "{err}"
        );
    }
}
