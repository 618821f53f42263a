//! The template registry: one item per business account, template name and language (DESIGN rule
//! 20). Each part (status, category, impending category, quality) carries Meta's time and is written
//! only by something newer, so a late or redelivered webhook changes nothing.

use std::collections::HashMap;

use super::attrs::{get_n, get_s, n, s, Item, UpdateBuilder};
use super::{condition_failed, Store, StoreError};
use crate::domain::preferences::Category;
use crate::domain::template::{
    account_item_key, Stamped, TemplateChange, TemplateKey, TemplateRecord, TemplateUpdate,
};
use crate::domain::time::UnixTime;

const KEY: &str = "template";

/// What a registry write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryWrite {
    Applied,
    /// The registry already knew something newer (or this very event): nothing changed.
    Older,
}

impl Store {
    /// Applies one of Meta's template changes, unless the registry holds a newer one of that part.
    pub async fn apply_template_update(
        &self,
        update: &TemplateUpdate,
        now: UnixTime,
    ) -> Result<RegistryWrite, StoreError> {
        let table = &self.tables.templates;
        let at = || n(update.at.secs());
        let mut u = UpdateBuilder::default();
        // Each part's time attribute guards its write.
        let guard = match &update.change {
            TemplateChange::Status { status, category } => {
                u.set("status", s(status)).set("status_at", at());
                // A status update that names the category fills it in only while the registry has
                // none: a category's own updates (with their times) are what move it.
                if let Some(c) = category {
                    u.set_once("category", s(c.as_str()))
                        .set_once("category_at", at());
                }
                "status_at"
            }
            TemplateChange::Category(c) => {
                u.set("category", s(c.as_str())).set("category_at", at());
                // A change made ends the notice of it.
                u.remove("impending_category")
                    .remove("impending_category_at");
                "category_at"
            }
            TemplateChange::ListedCategory(c) => {
                u.set("category", s(c.as_str())).set("category_at", at());
                "category_at"
            }
            TemplateChange::ImpendingCategory(c) => {
                u.set("impending_category", s(c.as_str()))
                    .set("impending_category_at", at());
                "impending_category_at"
            }
            TemplateChange::Quality(q) => {
                u.set("quality", s(q)).set("quality_at", at());
                "quality_at"
            }
            TemplateChange::MarketingOnboarding(status) => {
                u.set("mm_onboarding", s(status))
                    .set("mm_onboarding_at", at());
                "mm_onboarding_at"
            }
            TemplateChange::Shape(shape) => {
                // JSON in one attribute: read back whole, never queried by part.
                let json = serde_json::to_string(shape).expect("a shape serialises");
                u.set("shape", s(json)).set("shape_at", at());
                "shape_at"
            }
        };
        u.set("waba_id", s(&update.key.waba_id))
            .set("last_seen_at", n(now.secs()));
        if !matches!(update.change, TemplateChange::MarketingOnboarding(_)) {
            u.set("name", s(&update.key.name))
                .set("language", s(&update.key.language));
        }
        let guard = u.name_of(guard);
        u.values.insert(":at".into(), at());
        // A tie goes to the later arrival: Meta sends a second's events in order (PENDING then
        // APPROVED), and a redelivery of the same event writes the same values.
        let condition = format!("attribute_not_exists({guard}) OR {guard} <= :at");
        let result = self
            .client
            .update_item()
            .table_name(table)
            .key(KEY, s(update.item_key()))
            .update_expression(u.expression())
            .condition_expression(condition)
            .set_expression_attribute_names(Some(u.names))
            .set_expression_attribute_values(Some(u.values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(RegistryWrite::Applied),
            Err(e) if condition_failed(&e) => Ok(RegistryWrite::Older),
            Err(e) => Err(StoreError::dynamo("UpdateItem", table, e)),
        }
    }

    /// The registry's records for `keys` (one BatchGetItem per 100); a key with none is absent.
    pub async fn find_templates(
        &self,
        keys: &[TemplateKey],
    ) -> Result<HashMap<TemplateKey, TemplateRecord>, StoreError> {
        Ok(self.find_registry(None, keys).await?.0)
    }

    /// The records for `keys` and, with `account`, that account's Marketing Messages onboarding, in
    /// the same BatchGetItem.
    pub async fn find_registry(
        &self,
        account: Option<&str>,
        keys: &[TemplateKey],
    ) -> Result<
        (
            HashMap<TemplateKey, TemplateRecord>,
            Option<Stamped<String>>,
        ),
        StoreError,
    > {
        let mut raw: Vec<String> = keys.iter().map(TemplateKey::item_key).collect();
        raw.extend(account.map(account_item_key));
        let found = self.batch_get(&self.tables.templates, KEY, &raw).await?;
        let onboarding = account
            .and_then(|a| found.get(&account_item_key(a)))
            .and_then(|item| stamped(item, "mm_onboarding", |w| Some(w.to_owned())));
        let templates = keys
            .iter()
            .filter_map(|k| {
                found
                    .get(&k.item_key())
                    .map(|item| (k.clone(), record_of(item)))
            })
            .collect();
        Ok((templates, onboarding))
    }
}

impl Store {
    /// Every template in the registry, by key (a Scan: for operators and the local stack, never on a
    /// hot path).
    pub async fn list_templates(&self) -> Result<Vec<(String, TemplateRecord)>, StoreError> {
        let table = &self.tables.templates;
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::dynamo("Scan", table, e))?;
            for item in page.items.unwrap_or_default() {
                // The account's own item is not a template.
                match get_s(&item, KEY) {
                    Some(key) if !key.starts_with("account#") => {
                        out.push((key.to_owned(), record_of(&item)))
                    }
                    _ => {}
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

fn stamped<T>(item: &Item, value: &str, parse: impl Fn(&str) -> Option<T>) -> Option<Stamped<T>> {
    Some(Stamped {
        value: parse(get_s(item, value)?)?,
        at: UnixTime::from_secs(get_n(item, &format!("{value}_at"))?),
    })
}

fn record_of(item: &Item) -> TemplateRecord {
    let category = |word: &str| word.parse::<Category>().ok();
    TemplateRecord {
        status: stamped(item, "status", |w| Some(w.to_owned())),
        category: stamped(item, "category", category),
        impending_category: stamped(item, "impending_category", category),
        quality: stamped(item, "quality", |w| Some(w.to_owned())),
        // A shape that does not read (written by a newer version?) is no shape: Meta judges.
        shape: stamped(item, "shape", |w| serde_json::from_str(w).ok()),
    }
}
