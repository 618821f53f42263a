//! The template registry's sync from the Graph API (DESIGN rule 20): every template Meta lists for
//! the business account, written into the registry as of now, so a template is known before any
//! webhook has spoken of it.

use crate::domain::template::{parse_meta_category, TemplateChange, TemplateKey, TemplateUpdate};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncReport {
    pub pages: usize,
    pub templates: usize,
    /// Registry parts written, and those a newer webhook had already set.
    pub written: usize,
    pub older: usize,
    /// Listed templates we could not use (no name, an odd language…).
    pub skipped: usize,
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
    let mut report = SyncReport::default();
    let mut after: Option<String> = None;
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
        match page.after {
            Some(cursor) if after.as_deref() != Some(cursor.as_str()) => after = Some(cursor),
            _ => return Ok(report),
        }
    }
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
    let at = now;
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
            change: TemplateChange::Category(c),
            at,
        });
    }
    if let Some(q) = t.quality_score.as_ref().and_then(|q| q.score.as_ref()) {
        out.push(TemplateUpdate {
            key,
            change: TemplateChange::Quality(q.to_ascii_uppercase()),
            at,
        });
    }
    Some(out)
}
