//! What Meta says about a template (DESIGN rule 20): its status, category and quality, each with the
//! time Meta said it, so a late, older event changes nothing. And what that means for a send.
//!
//! Meta's status words are many and move (whatsapp-platform.md §4.7, §12); what each means for a send
//! is one row of [`STATUS_GATES`].

use std::fmt;

use super::preferences::Category;
use super::template_shape::TemplateShape;
use super::time::UnixTime;

/// A template as a send names it, under the business account that owns it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateKey {
    pub waba_id: String,
    pub name: String,
    pub language: String,
}

impl TemplateKey {
    pub fn new(waba_id: &str, name: &str, language: &str) -> Self {
        Self {
            waba_id: waba_id.to_owned(),
            name: name.to_owned(),
            language: language.to_owned(),
        }
    }

    /// The registry's item key: `{waba_id}#{name}#{language}` (names and languages have no `#`).
    pub fn item_key(&self) -> String {
        format!("{}#{}#{}", self.waba_id, self.name, self.language)
    }
}

/// The registry's item for what Meta says of the business account itself (the Marketing Messages
/// API onboarding): `account#{waba_id}`, which no template key can be (those start with digits).
pub fn account_item_key(waba_id: &str) -> String {
    format!("account#{waba_id}")
}

/// Onboarding words that mean the account may send on the Marketing Messages API: the sync's
/// `marketing_messages_onboarding_status`, and the `account_update` event `MM_LITE_TERMS_SIGNED`.
/// UNSURE which status words Meta uses besides `ONBOARDED`: one entry each.
pub const MARKETING_MESSAGES_READY: &[&str] = &["ONBOARDED", "MM_LITE_TERMS_SIGNED"];

/// Whether an onboarding word means the Marketing Messages API is ready.
pub fn marketing_messages_ready(status: &str) -> bool {
    MARKETING_MESSAGES_READY
        .iter()
        .any(|w| w.eq_ignore_ascii_case(status.trim()))
}

/// Where marketing templates go (`WAHOOK_MARKETING_MESSAGES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MarketingRoute {
    /// Always `/messages`.
    Off,
    /// Always `/marketing_messages`.
    On,
    /// `/marketing_messages` once the registry knows the account is onboarded; `/messages` before.
    #[default]
    Auto,
}

impl fmt::Display for TemplateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.language)
    }
}

/// What a template's status means for a send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusGate {
    /// Meta accepts sends of it.
    Send,
    /// Meta refuses it for now and may take it back (paused): the send waits.
    Wait,
    /// Meta will not send it (disabled, rejected, deleted…): the send ends, with no Meta call.
    Unavailable,
}

/// Meta's status words (`message_template_status_update.event`, the sync's `status`), upper case,
/// and what each means for a send. A word not here is treated as [`StatusGate::Send`]: Meta is then
/// the judge, as it was before the registry knew the template.
pub const STATUS_GATES: &[(&str, StatusGate)] = &[
    ("APPROVED", StatusGate::Send),
    ("REINSTATED", StatusGate::Send),
    ("UNARCHIVED", StatusGate::Send),
    // Flagged for low quality: still sendable, and Meta pauses it if quality does not recover.
    ("FLAGGED", StatusGate::Send),
    ("PAUSED", StatusGate::Wait),
    // Under review: it may be approved soon, so the send waits (bounded by `not_after`).
    ("PENDING", StatusGate::Wait),
    ("IN_APPEAL", StatusGate::Wait),
    ("REJECTED", StatusGate::Unavailable),
    ("DISABLED", StatusGate::Unavailable),
    ("LOCKED", StatusGate::Unavailable),
    ("ARCHIVED", StatusGate::Unavailable),
    ("PENDING_DELETION", StatusGate::Unavailable),
    ("DELETED", StatusGate::Unavailable),
];

/// The gate of one of Meta's status words.
pub fn status_gate(status: &str) -> StatusGate {
    STATUS_GATES
        .iter()
        .find(|(word, _)| word.eq_ignore_ascii_case(status))
        .map(|(_, gate)| *gate)
        .unwrap_or(StatusGate::Send)
}

/// A value with the time Meta gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped<T> {
    pub value: T,
    pub at: UnixTime,
}

/// What the registry holds for one template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateRecord {
    /// Meta's word, upper case (`APPROVED`, `PAUSED`…).
    pub status: Option<Stamped<String>>,
    pub category: Option<Stamped<Category>>,
    /// A category change Meta has announced but not made (`correct_category`): notice only.
    pub impending_category: Option<Stamped<Category>>,
    /// `GREEN`, `YELLOW`, `RED`, `UNKNOWN`.
    pub quality: Option<Stamped<String>>,
    /// The parameters a send must give, as the last listing showed them; `value` is `None` when
    /// the template has parts the check does not model (Meta judges those).
    pub shape: Option<Stamped<Option<TemplateShape>>>,
}

/// One thing Meta said about a template, at `at` (the webhook entry's `time`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateChange {
    /// `message_template_status_update`; it may name the category too.
    Status {
        status: String,
        category: Option<Category>,
    },
    /// `template_category_update` with the change made (`previous_category` → `new_category`).
    Category(Category),
    /// `template_category_update` announcing a change (`correct_category`).
    ImpendingCategory(Category),
    /// The category a listing (the sync) shows: the current one. Unlike a change made, it leaves an
    /// announced change's notice in place.
    ListedCategory(Category),
    /// `message_template_quality_update`.
    Quality(String),
    /// The components' parameter shape, from a listing (no webhook carries it).
    Shape(Option<TemplateShape>),
    /// The account's Marketing Messages API onboarding (the key names the account only).
    MarketingOnboarding(String),
}

impl TemplateChange {
    /// The change's name in logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            TemplateChange::Status { .. } => "status",
            TemplateChange::Category(_) => "category",
            TemplateChange::ImpendingCategory(_) => "impending_category",
            TemplateChange::ListedCategory(_) => "listed_category",
            TemplateChange::Quality(_) => "quality",
            TemplateChange::Shape(_) => "shape",
            TemplateChange::MarketingOnboarding(_) => "marketing_onboarding",
        }
    }
}

/// A change for one template, as planned from a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateUpdate {
    pub key: TemplateKey,
    pub change: TemplateChange,
    pub at: UnixTime,
}

impl TemplateUpdate {
    /// The registry item it changes: the template's, or the account's.
    pub fn item_key(&self) -> String {
        match self.change {
            TemplateChange::MarketingOnboarding(_) => account_item_key(&self.key.waba_id),
            _ => self.key.item_key(),
        }
    }
}

/// Meta's category words (`UTILITY`, `MARKETING`, `AUTHENTICATION`) as ours.
pub fn parse_meta_category(word: &str) -> Option<Category> {
    match word.to_ascii_uppercase().as_str() {
        "MARKETING" => Some(Category::Marketing),
        "UTILITY" => Some(Category::Utility),
        "AUTHENTICATION" => Some(Category::Authentication),
        "SERVICE" => Some(Category::Service),
        _ => None,
    }
}

/// What to do with a send of a template the registry has never heard of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownTemplates {
    /// Send it, and let Meta judge (the default while the registry fills).
    #[default]
    Send,
    /// Refuse it as `template_unavailable`, with no Meta call.
    Refuse,
}

/// What the registry says about one send, before any Meta call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateVerdict {
    /// Send it. `category` is Meta's when the registry knows it: that is the one that gates opt-outs.
    Send { category: Option<Category> },
    /// Paused by Meta: wait and try again.
    Wait { reason: String },
    /// Meta will not send it: end the send.
    Unavailable { reason: String },
    /// The send's parameters do not fit the template: end the send, naming what is wrong.
    InvalidParameters { reason: String },
}

/// A wait older than this is stale: Meta's longest pause is 6 h (whatsapp-platform.md §12), so a
/// template still "paused" after it has missed the webhook that ended the pause, and Meta judges.
pub const MAX_WAIT_STATUS_AGE_SECS: i64 = 7 * 3600;

/// How much later than the latest status a listing must be to be trusted on its own: a listing
/// read just after an approval may still show the old version.
pub const SHAPE_TRUST_MARGIN_SECS: i64 = 600;

/// What is wrong with a send's `components` for the template, when the registry knows its shape
/// for the template's current version: the same listing as the latest status, or one well after
/// it. A shape older than the latest status (an edit, approved since the listing read it) is not
/// trusted, and Meta judges until the next sync.
pub fn parameter_problems(
    key: &TemplateKey,
    record: &TemplateRecord,
    components: &[serde_json::Value],
) -> Option<String> {
    let shape = record.shape.as_ref()?;
    if let Some(status) = &record.status {
        let same_listing = status.at == shape.at;
        if !same_listing && shape.at.secs() < status.at.secs() + SHAPE_TRUST_MARGIN_SECS {
            return None;
        }
    }
    let problems = shape.value.as_ref()?.problems(components);
    if problems.is_empty() {
        return None;
    }
    Some(format!(
        "template {key} (as listed {}): {}; fix the request's template.components and send under a new key",
        shape.at.to_rfc3339(),
        problems.join("; ")
    ))
}

/// The registry's verdict on a send of `key` at `now`.
pub fn judge(
    key: &TemplateKey,
    record: Option<&TemplateRecord>,
    unknown: UnknownTemplates,
    now: UnixTime,
) -> TemplateVerdict {
    let Some(record) = record else {
        return match unknown {
            UnknownTemplates::Send => TemplateVerdict::Send { category: None },
            UnknownTemplates::Refuse => TemplateVerdict::Unavailable {
                reason: format!(
                    "template {key} is not in the registry and WAHOOK_UNKNOWN_TEMPLATES=refuse: check its name and language, or sync the registry"
                ),
            },
        };
    };
    let category = record.category.as_ref().map(|c| c.value);
    let Some(status) = &record.status else {
        return TemplateVerdict::Send { category };
    };
    // The time Meta said it (or the sync saw it): "as of", not when it began.
    let since = status.at.to_rfc3339();
    match status_gate(&status.value) {
        StatusGate::Send => TemplateVerdict::Send { category },
        StatusGate::Wait if now.secs() - status.at.secs() > MAX_WAIT_STATUS_AGE_SECS => {
            TemplateVerdict::Send { category }
        }
        StatusGate::Wait => TemplateVerdict::Wait {
            reason: format!(
                "template {key} is {} (as of {since}): the send waits until Meta approves it (or not_after passes)",
                status.value
            ),
        },
        StatusGate::Unavailable => TemplateVerdict::Unavailable {
            reason: format!(
                "template {key} is {} (as of {since}): Meta will not send it; fix or replace the template in WhatsApp Manager and send under a new key",
                status.value
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = UnixTime::from_secs(1_795_401_000);

    fn key() -> TemplateKey {
        TemplateKey::new("102290129340398", "order_shipped", "es_MX")
    }

    fn with_status(word: &str) -> TemplateRecord {
        TemplateRecord {
            status: Some(Stamped {
                value: word.into(),
                at: UnixTime::from_secs(1_795_400_000),
            }),
            category: Some(Stamped {
                value: Category::Marketing,
                at: UnixTime::from_secs(1_795_400_000),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_paused_template_waits_and_a_disabled_one_is_unavailable() {
        assert!(matches!(
            judge(
                &key(),
                Some(&with_status("PAUSED")),
                UnknownTemplates::Send,
                NOW
            ),
            TemplateVerdict::Wait { .. }
        ));
        for word in [
            "DISABLED",
            "REJECTED",
            "PENDING_DELETION",
            "DELETED",
            "deleted",
        ] {
            match judge(
                &key(),
                Some(&with_status(word)),
                UnknownTemplates::Send,
                NOW,
            ) {
                TemplateVerdict::Unavailable { reason } => {
                    assert!(reason.contains("order_shipped (es_MX)"), "{reason}")
                }
                other => panic!("{word}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_template_under_review_waits() {
        for word in ["PENDING", "in_appeal"] {
            assert!(matches!(
                judge(
                    &key(),
                    Some(&with_status(word)),
                    UnknownTemplates::Send,
                    NOW
                ),
                TemplateVerdict::Wait { .. }
            ));
        }
    }

    #[test]
    fn a_pause_older_than_metas_longest_is_stale_and_meta_judges() {
        let later = UnixTime::from_secs(1_795_400_000 + MAX_WAIT_STATUS_AGE_SECS + 1);
        assert!(matches!(
            judge(
                &key(),
                Some(&with_status("PAUSED")),
                UnknownTemplates::Send,
                later
            ),
            TemplateVerdict::Send { .. }
        ));
    }

    #[test]
    fn an_approved_template_sends_under_metas_category() {
        assert_eq!(
            judge(
                &key(),
                Some(&with_status("APPROVED")),
                UnknownTemplates::Refuse,
                NOW
            ),
            TemplateVerdict::Send {
                category: Some(Category::Marketing)
            }
        );
    }

    #[test]
    fn an_unknown_status_word_leaves_the_judgement_to_meta() {
        assert_eq!(status_gate("SOMETHING_NEW_IN_2027"), StatusGate::Send);
    }

    #[test]
    fn an_unknown_template_is_sent_or_refused_as_configured() {
        assert_eq!(
            judge(&key(), None, UnknownTemplates::Send, NOW),
            TemplateVerdict::Send { category: None }
        );
        assert!(matches!(
            judge(&key(), None, UnknownTemplates::Refuse, NOW),
            TemplateVerdict::Unavailable { .. }
        ));
    }
}
