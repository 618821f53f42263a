//! The template registry's gates, before any Graph call (DESIGN rule 20): Meta's category replaces
//! the producer's label, a paused template waits, one Meta will not send ends without a call, and
//! so does a send whose parameters do not fit the template's listed shape.

use std::collections::HashMap;

use super::prepare::Prepared;
use super::{Request, Sender};
use crate::domain::policy::Decision;
use crate::domain::preferences::Category;
use crate::domain::send_request::OutboundMessage;
use crate::domain::template::{
    judge, marketing_messages_ready, parameter_problems, MarketingRoute, Stamped, TemplateKey,
    TemplateRecord, TemplateVerdict,
};
use crate::domain::time::UnixTime;
use crate::graph::Endpoint;
use crate::store::StoreError;

/// The registry's records for one batch: read once, before its sends.
#[derive(Debug, Default)]
pub(super) struct Registry {
    templates: HashMap<TemplateKey, TemplateRecord>,
    /// The account's Marketing Messages onboarding (read only for the `auto` route).
    onboarding: Option<Stamped<String>>,
}

impl Registry {
    pub(super) fn new() -> Self {
        Self::default()
    }

    pub(super) fn get(&self, key: &TemplateKey) -> Option<&TemplateRecord> {
        self.templates.get(key)
    }
}

impl Sender {
    /// The registry keys of every template the batch may send (its templates and fallbacks).
    fn template_keys<'a>(&self, requests: impl Iterator<Item = &'a Request>) -> Vec<TemplateKey> {
        let Some(waba) = self.settings.templates.waba_id.as_deref() else {
            return Vec::new();
        };
        let mut keys: Vec<TemplateKey> = requests
            .filter_map(|r| match r {
                Request::Send(p) => Some(&p.request),
                Request::Consent(_) => None,
            })
            .flat_map(|req| {
                let main = match &req.message {
                    OutboundMessage::Template(t) => Some(t),
                    OutboundMessage::Text { .. } | OutboundMessage::Media(_) => None,
                };
                main.into_iter().chain(req.fallback_template.iter())
            })
            .map(|t| TemplateKey::new(waba, &t.name, &t.language))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// One BatchGetItem for the batch's templates; nothing to read without a business account id.
    pub(super) async fn read_registry<'a>(
        &self,
        requests: impl Iterator<Item = &'a Request>,
    ) -> Result<Registry, StoreError> {
        let keys = self.template_keys(requests);
        if keys.is_empty() {
            return Ok(Registry::new());
        }
        let account = match self.settings.templates.marketing_route {
            MarketingRoute::Auto => self.settings.templates.waba_id.as_deref(),
            MarketingRoute::On | MarketingRoute::Off => None,
        };
        let (templates, onboarding) = self.store.find_registry(account, &keys).await?;
        Ok(Registry {
            templates,
            onboarding,
        })
    }

    fn key_of(&self, name: &str, language: &str) -> Option<TemplateKey> {
        let waba = self.settings.templates.waba_id.as_deref()?;
        Some(TemplateKey::new(waba, name, language))
    }

    /// Meta's category for the request's template, when the registry knows it.
    pub(super) fn meta_category(&self, p: &Prepared, registry: &Registry) -> Option<Category> {
        self.category_of(&p.request.message, registry)
    }

    /// Meta's category for `message` when it is a template the registry knows.
    pub(super) fn category_of(
        &self,
        message: &OutboundMessage,
        registry: &Registry,
    ) -> Option<Category> {
        let OutboundMessage::Template(t) = message else {
            return None;
        };
        let key = self.key_of(&t.name, &t.language)?;
        Some(registry.get(&key)?.category.as_ref()?.value)
    }

    /// Whether a request can send a template (its own or a fallback), so the registry matters to it.
    pub(super) fn needs_registry(p: &Prepared) -> bool {
        matches!(p.request.message, OutboundMessage::Template(_))
            || p.request.fallback_template.is_some()
    }

    /// Logs each request whose producer label is not Meta's category, and counts them
    /// (`CategoryMismatch`): Meta's gates the opt-outs and consent, and a producer that mislabels is
    /// worth a look.
    pub(super) fn category_mismatches<'a>(
        &self,
        requests: impl Iterator<Item = &'a Request>,
        registry: &Registry,
    ) -> u64 {
        let mut n = 0;
        for p in requests.filter_map(|r| match r {
            Request::Send(p) => Some(p),
            Request::Consent(_) => None,
        }) {
            let Some(meta) = self.meta_category(p, registry) else {
                continue;
            };
            if meta != p.request.category {
                n += 1;
                tracing::warn!(
                    event = "category_mismatch",
                    key_hash = %p.request.idempotency_key.hashed(),
                    template = p.request.message.template_name().unwrap_or_default(),
                    labelled = p.request.category.as_str(),
                    meta = meta.as_str(),
                    "the producer's category is not Meta's; Meta's gates the opt-outs and consent"
                );
            }
        }
        n
    }

    /// What the registry says about what `decision` would send: `None` to go ahead, or the
    /// decision (template unavailable) or wait that replaces it.
    pub(super) fn template_gate(
        &self,
        decision: &Decision,
        registry: &Registry,
        now: UnixTime,
    ) -> Option<TemplateVerdict> {
        let Decision::Send {
            message: OutboundMessage::Template(t),
            ..
        } = decision
        else {
            return None;
        };
        let key = self.key_of(&t.name, &t.language)?;
        let record = registry.get(&key);
        match judge(&key, record, self.settings.templates.unknown, now) {
            TemplateVerdict::Send { .. } => {
                let reason = parameter_problems(&key, record?, &t.components)?;
                Some(TemplateVerdict::InvalidParameters { reason })
            }
            other => Some(other),
        }
    }

    /// Where what `decision` sends goes: a template Meta (the registry) calls marketing to the
    /// Marketing Messages API when it is on, or `auto` and the registry says the account is
    /// onboarded; everything else to `/messages`. A producer's label never routes: a utility
    /// template labelled marketing would be refused there.
    pub(super) fn endpoint_for(&self, decision: &Decision, registry: &Registry) -> Endpoint {
        let Decision::Send { message, .. } = decision else {
            return Endpoint::Messages;
        };
        if self.category_of(message, registry) != Some(Category::Marketing) {
            return Endpoint::Messages;
        }
        let on = match self.settings.templates.marketing_route {
            MarketingRoute::On => true,
            MarketingRoute::Off => false,
            MarketingRoute::Auto => registry
                .onboarding
                .as_ref()
                .is_some_and(|o| marketing_messages_ready(&o.value)),
        };
        if on {
            Endpoint::MarketingMessages
        } else {
            Endpoint::Messages
        }
    }
}
