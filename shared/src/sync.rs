//! The template registry's sync from the Graph API (DESIGN rule 20): every template Meta lists for
//! the business account, written into the registry as of now, so a template is known before any
//! webhook has spoken of it.

use crate::domain::template::{parse_meta_category, TemplateChange, TemplateKey, TemplateUpdate};
use crate::domain::template_shape::TemplateShape;
use crate::domain::time::UnixTime;
use crate::graph::{GraphClient, GraphError};
use crate::retry::try_bounded;
use crate::store::templates::RegistryWrite;
use crate::store::{Store, StoreError};

/// A sync stops after this many pages (50 templates each): far beyond Meta's template limits, and a
/// bound on a paging loop that never ends.
pub const MAX_PAGES: usize = 200;

/// Registry writes in flight at once during a sync.
const WRITE_CONCURRENCY: usize = 16;

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct SyncReport {
    pub pages: usize,
    pub templates: usize,
    /// Registry parts written, and those a newer webhook had already set.
    pub written: usize,
    pub older: usize,
    /// Listed templates we could not use (no name, an odd language…).
    pub skipped: usize,
    /// The account's Marketing Messages API onboarding word, when Meta gave one.
    pub marketing_onboarding: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(
        "Graph: {0} (check WAHOOK_WABA_ID and that the token has whatsapp_business_management)"
    )]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the listing did not end after {MAX_PAGES} pages; stopped (what was read is written)")]
    TooManyPages,
    #[error("the listing repeated a page cursor (or gave a next page without one) after {pages} pages; stopped (what was read is written)")]
    BadCursor { pages: usize },
    #[error("WAHOOK_WABA_ID {0:?} is not a WhatsApp Business Account id (digits only)")]
    BadWabaId(String),
}

/// The sync as the scheduled function runs it: its clients, built once per cold start.
pub struct TemplateSync {
    graph: GraphClient,
    store: Store,
    waba_id: String,
}

impl TemplateSync {
    pub fn new(graph: GraphClient, store: Store, waba_id: String) -> Self {
        Self {
            graph,
            store,
            waba_id,
        }
    }

    pub fn from_config(
        config: &crate::config::TemplateSyncConfig,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, crate::graph::GraphSetupError> {
        let sdk = config.deadlines.apply(sdk);
        Ok(Self::new(
            GraphClient::new(config.graph.clone(), config.access_token.clone())?,
            config.storage.store(aws_sdk_dynamodb::Client::new(&sdk)),
            config.waba_id.clone(),
        ))
    }

    /// One sync of the account, logged as one line either way (the operator's record of it).
    pub async fn run(&self, now: UnixTime) -> Result<SyncReport, SyncError> {
        let result = sync_templates(&self.graph, &self.store, &self.waba_id, now).await;
        match &result {
            Ok(r) => tracing::info!(
                event = "templates_synced",
                pages = r.pages,
                templates = r.templates,
                written = r.written,
                older = r.older,
                skipped = r.skipped,
                "synced {} templates in {} pages",
                r.templates,
                r.pages
            ),
            Err(e) => {
                tracing::error!(event = "template_sync_failed", error = %e, "template sync failed: {e}")
            }
        }
        result
    }
}

/// Reads every page of `waba_id`'s templates and writes each one's status, category and quality into
/// the registry, stamped `now`: Meta's state as of this moment, so a webhook older than the sync
/// changes nothing and a newer one still wins.
pub async fn sync_templates(
    graph: &GraphClient,
    store: &Store,
    waba_id: &str,
    now: UnixTime,
) -> Result<SyncReport, SyncError> {
    if waba_id.is_empty() || waba_id.len() > 32 || !waba_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SyncError::BadWabaId(waba_id.to_owned()));
    }
    let mut report = SyncReport::default();
    let mut after: Option<String> = None;
    let mut seen = std::collections::HashSet::new();
    loop {
        if report.pages == MAX_PAGES {
            return Err(SyncError::TooManyPages);
        }
        let page = graph.template_page(waba_id, after.as_deref()).await?;
        report.pages += 1;
        report.skipped += page.unreadable;
        let mut updates = Vec::new();
        for t in &page.templates {
            match updates_of(waba_id, t, now) {
                Some(u) => {
                    report.templates += 1;
                    updates.extend(u);
                }
                None => report.skipped += 1,
            }
        }
        // Each write is conditional on its own part's time, so their order does not matter.
        let writes = updates
            .iter()
            .map(|u| store.apply_template_update(u, now))
            .collect();
        for written in try_bounded(writes, WRITE_CONCURRENCY).await? {
            match written {
                RegistryWrite::Applied => report.written += 1,
                RegistryWrite::Older => report.older += 1,
            }
        }
        if !page.more {
            report.marketing_onboarding = sync_onboarding(graph, store, waba_id, now).await?;
            return Ok(report);
        }
        match page.after {
            Some(cursor) if seen.insert(cursor.clone()) => after = Some(cursor),
            _ => {
                return Err(SyncError::BadCursor {
                    pages: report.pages,
                })
            }
        }
    }
}

/// The account's Marketing Messages onboarding, written like a template part. A Graph error here
/// (an older API version, a token without the field) is logged and leaves the registry as it is:
/// the templates were synced, and the `account_update` webhook still tells.
async fn sync_onboarding(
    graph: &GraphClient,
    store: &Store,
    waba_id: &str,
    now: UnixTime,
) -> Result<Option<String>, SyncError> {
    let word = match graph.marketing_onboarding(waba_id).await {
        Ok(word) => word,
        Err(e) => {
            tracing::warn!(event = "marketing_onboarding_unread", error = %e, "could not read the account's Marketing Messages onboarding; the auto route keeps what it knew");
            return Ok(None);
        }
    };
    if let Some(w) = &word {
        let update = TemplateUpdate {
            key: TemplateKey::new(waba_id, "", ""),
            change: TemplateChange::MarketingOnboarding(w.to_ascii_uppercase()),
            at: UnixTime::from_secs(now.secs() - 1),
        };
        store.apply_template_update(&update, now).await?;
    }
    Ok(word)
}

/// The registry updates one listed template stands for; `None` if no send could name it.
fn updates_of(
    waba_id: &str,
    t: &crate::graph::templates::ListedTemplate,
    now: UnixTime,
) -> Option<Vec<TemplateUpdate>> {
    use crate::domain::send_request::{is_language_code, is_template_name};
    if !is_template_name(&t.name) || !is_language_code(&t.language) {
        return None;
    }
    let key = TemplateKey::new(waba_id, &t.name, &t.language);
    let category = t.category.as_deref().and_then(parse_meta_category);
    // A second before now: a webhook from this very second (it may be newer than what the listing
    // read) wins the tie.
    let at = UnixTime::from_secs(now.secs() - 1);
    let mut out = vec![TemplateUpdate {
        key: key.clone(),
        change: TemplateChange::Status {
            status: t.status.to_ascii_uppercase(),
            category,
        },
        at,
    }];
    if let Some(c) = category {
        out.push(TemplateUpdate {
            key: key.clone(),
            change: TemplateChange::ListedCategory(c),
            at,
        });
    }
    if let Some(q) = t.quality_score.as_ref().and_then(|q| q.score.as_ref()) {
        out.push(TemplateUpdate {
            key: key.clone(),
            change: TemplateChange::Quality(q.to_ascii_uppercase()),
            at,
        });
    }
    if let Some(components) = &t.components {
        out.push(TemplateUpdate {
            key,
            change: TemplateChange::Shape(TemplateShape::from_components(components)),
            at,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_account_id_that_is_not_digits_is_refused_before_any_call() {
        // Neither client is ever reached: the id is refused first.
        let graph = GraphClient::new(
            crate::graph::GraphConfig {
                base_url: "http://127.0.0.1:9".into(),
                ..Default::default()
            },
            crate::secret::SecretString::new("t"),
        )
        .unwrap();
        let dynamo = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
                .build(),
        );
        let store = Store::new(dynamo, crate::store::TableNames::with_prefix("t"), 90);
        for bad in ["", "1234/../v1/me", "12?fields=x", "１２"] {
            let err = sync_templates(&graph, &store, bad, UnixTime::from_secs(0))
                .await
                .unwrap_err();
            assert!(matches!(err, SyncError::BadWabaId(_)), "{bad:?}: {err}");
        }
    }
}
