//! The template webhooks (`message_template_status_update`, `template_category_update`,
//! `message_template_quality_update`, `message_template_components_update`): each is kept raw like
//! any other field, and what it says about the template becomes a registry update (DESIGN rule 20).

use super::Builder;
use crate::domain::send_request::{is_language_code, is_template_name};
use crate::domain::template::{parse_meta_category, TemplateChange, TemplateKey, TemplateUpdate};
use crate::domain::time::UnixTime;
use crate::payload::TemplateValue;

/// The webhook fields that feed the template registry.
pub(super) const TEMPLATE_FIELDS: [&str; 4] = [
    "message_template_status_update",
    "template_category_update",
    "message_template_quality_update",
    "message_template_components_update",
];

impl<'a> Builder<'_, 'a> {
    /// A template field's change: raw as always, and the registry update it carries. One that names
    /// no template, no account or no time is kept raw only (the registry orders by Meta's time).
    pub(super) fn template_field(
        &mut self,
        field: &str,
        value: Option<&'a serde_json::value::RawValue>,
        bytes: &'a [u8],
        waba: Option<&str>,
        time: Option<UnixTime>,
    ) {
        self.other_field(field, bytes, waba, time);
        let (Some(value), Some(waba), Some(at)) = (value, waba, time) else {
            self.plan.counts.template_unusable += 1;
            return;
        };
        let Ok(v) = serde_json::from_str::<TemplateValue>(value.get()) else {
            self.plan.counts.template_unusable += 1;
            return;
        };
        // What a send could name, and nothing else: a key part that is not one (a 3 KB name, a `#`)
        // would fail its write and turn the whole delivery into a 503 for a week.
        let (Some(name), Some(language)) = (&v.message_template_name, &v.message_template_language)
        else {
            self.plan.counts.template_unusable += 1;
            return;
        };
        if !is_template_name(name)
            || !is_language_code(language)
            || waba.is_empty()
            || waba.len() > 32
            || !waba.bytes().all(|b| b.is_ascii_digit())
        {
            self.plan.counts.template_unusable += 1;
            return;
        }
        let category = |word: &Option<String>| word.as_deref().and_then(parse_meta_category);
        let change = match field {
            "message_template_status_update" => v.event.as_ref().map(|e| TemplateChange::Status {
                status: e.to_ascii_uppercase(),
                category: category(&v.message_template_category),
            }),
            // An impending change names `correct_category` (and the current one as `new_category`):
            // notice only. A completed one names `previous_category` and `new_category`.
            "template_category_update" => match category(&v.correct_category) {
                Some(coming) => Some(TemplateChange::ImpendingCategory(coming)),
                None => category(&v.new_category).map(TemplateChange::Category),
            },
            // The components changed: the shape the last listing gave is not this version's. Meta
            // judges the parameters until the next sync lists the new one.
            "message_template_components_update" => Some(TemplateChange::Shape(None)),
            _ => v
                .new_quality_score
                .as_ref()
                .map(|q| TemplateChange::Quality(q.to_ascii_uppercase())),
        };
        let Some(change) = change else {
            self.plan.counts.template_unusable += 1;
            return;
        };
        self.plan.counts.template_updates += 1;
        self.plan.templates.push(TemplateUpdate {
            key: TemplateKey::new(waba, name, language),
            change,
            at,
        });
    }

    /// An `account_update` change: raw as always; the event `MM_LITE_TERMS_SIGNED` also records
    /// that the account may send on the Marketing Messages API (the sender's `auto` route).
    pub(super) fn account_field(
        &mut self,
        value: Option<&'a serde_json::value::RawValue>,
        bytes: &'a [u8],
        entry_id: Option<&str>,
        time: Option<UnixTime>,
    ) {
        self.other_field("account_update", bytes, entry_id, time);
        let (Some(value), Some(at)) = (value, time) else {
            return;
        };
        let Ok(v) = serde_json::from_str::<AccountValue>(value.get()) else {
            return;
        };
        let Some(event) = v.event.map(|e| e.to_ascii_uppercase()) else {
            return;
        };
        // The terms are signed for the business portfolio: the entry's id may be the portfolio,
        // and the account is in `waba_info` (UNSURE which Meta sends; the account's own id wins).
        let waba = v
            .waba_info
            .and_then(|w| w.waba_id)
            .or_else(|| entry_id.map(str::to_owned));
        let Some(waba) = waba
            .filter(|w| !w.is_empty() && w.len() <= 32 && w.bytes().all(|b| b.is_ascii_digit()))
        else {
            return;
        };
        if event == ONBOARDING_SIGNED {
            self.plan.counts.template_updates += 1;
            self.plan.templates.push(TemplateUpdate {
                key: TemplateKey::new(&waba, "", ""),
                change: TemplateChange::MarketingOnboarding(event),
                at,
            });
        }
    }
}

/// What an `account_update` value says, as far as the registry needs it.
#[derive(serde::Deserialize)]
struct AccountValue {
    #[serde(default, deserialize_with = "crate::payload::lenient_string")]
    event: Option<String>,
    #[serde(default)]
    waba_info: Option<WabaInfo>,
}

#[derive(serde::Deserialize)]
struct WabaInfo {
    #[serde(default, deserialize_with = "crate::payload::lenient_string")]
    waba_id: Option<String>,
}

/// The `account_update` event that says the Marketing Messages API terms are signed.
const ONBOARDING_SIGNED: &str = "MM_LITE_TERMS_SIGNED";
