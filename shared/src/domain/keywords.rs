//! Opt-out and opt-in words a user can write, and the "Stop promotions" quick reply.
//!
//! Meta enforces no keyword; the conventions are BSPs' (docs/whatsapp-platform.md §9). A message counts
//! only when the whole text is a keyword ("STOP", "Parar!", "não quero mais" if configured): a sentence
//! that merely contains "stop" is a conversation, not an opt-out. Matching ignores case, accents,
//! punctuation and repeated spaces.

use std::collections::HashSet;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::preferences::Category;

/// English, Spanish and Portuguese defaults. `WAHOOK_STOP_KEYWORDS` replaces them.
///
/// Only words whose one meaning is "stop messaging me". Words that also answer a prompt or drive a
/// menu ("cancel", "end", "quit", "cancelar", "sair") are left out: a bank's customer who replies
/// "Cancelar" to a transfer prompt is cancelling the transfer, not their alerts.
pub const DEFAULT_STOP_KEYWORDS: &[&str] = &[
    // English
    "stop",
    "stop all",
    "stopall",
    "unsubscribe",
    "opt out",
    "optout",
    // Spanish
    "baja",
    "darme de baja",
    "parar",
    "detener",
    "no mas mensajes",
    "no quiero mas mensajes",
    // Portuguese
    "pare",
    "descadastrar",
    "nao quero mais mensagens",
    "cancelar inscricao",
];

/// English, Spanish and Portuguese defaults. `WAHOOK_START_KEYWORDS` replaces them.
///
/// Only words that ask to be subscribed again. "Voltar" (back), "alta" or "assinar" (also "sign")
/// are menu words, and must not re-subscribe anyone who taps them.
pub const DEFAULT_START_KEYWORDS: &[&str] = &[
    // English
    "start",
    "unstop",
    "subscribe",
    "opt in",
    "optin",
    // Spanish
    "suscribirme",
    "darme de alta",
    // Portuguese
    "reativar",
    "quero receber",
];

/// What a STOP or START keyword applies to unless `WAHOOK_STOP_KEYWORD_CATEGORIES` says otherwise:
/// marketing only, so a keyword can never cost anyone their transaction alerts or one-time codes.
pub const DEFAULT_KEYWORD_CATEGORIES: &[Category] = &[Category::Marketing];

/// The labels WhatsApp shows on the marketing-template opt-out button, by language.
/// `WAHOOK_STOP_PROMOTIONS_LABELS` replaces them.
pub const DEFAULT_STOP_PROMOTIONS_LABELS: &[&str] = &[
    "Stop promotions",
    "Parar promoções",
    "Detener promociones",
    "Dejar de recibir promociones",
];

/// What a keyword asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeywordIntent {
    Stop,
    Start,
}

/// Why a keyword configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeywordConfigError {
    #[error("{0:?} is both a STOP and a START keyword: remove it from one of WAHOOK_STOP_KEYWORDS / WAHOOK_START_KEYWORDS")]
    Both(String),
    #[error("WAHOOK_STOP_KEYWORD_CATEGORIES is empty: name at least one of marketing, utility, authentication, service")]
    NoCategories,
}

/// The configured words and what a STOP/START keyword applies to.
#[derive(Debug, Clone)]
pub struct KeywordRules {
    stop: HashSet<String>,
    start: HashSet<String>,
    stop_promotions: HashSet<String>,
    keyword_categories: Vec<Category>,
}

impl KeywordRules {
    pub fn new<S: AsRef<str>>(
        stop: &[S],
        start: &[S],
        stop_promotions_labels: &[S],
        keyword_categories: &[Category],
    ) -> Result<Self, KeywordConfigError> {
        let norm = |words: &[S]| -> HashSet<String> {
            words
                .iter()
                .map(|w| normalize(w.as_ref()))
                .filter(|w| !w.is_empty())
                .collect()
        };
        let stop = norm(stop);
        let start = norm(start);
        if let Some(both) = stop.intersection(&start).next() {
            return Err(KeywordConfigError::Both(both.clone()));
        }
        if keyword_categories.is_empty() {
            return Err(KeywordConfigError::NoCategories);
        }
        let mut keyword_categories = keyword_categories.to_vec();
        keyword_categories.sort();
        keyword_categories.dedup();
        Ok(Self {
            stop,
            start,
            stop_promotions: norm(stop_promotions_labels),
            keyword_categories,
        })
    }

    /// STOP opts out of (and START back into) these categories. Default: marketing and utility;
    /// authentication codes the user asked for and replies inside a window they opened still go out.
    pub fn keyword_categories(&self) -> &[Category] {
        &self.keyword_categories
    }

    /// Whether a text message, as a whole, is a STOP or START keyword.
    pub fn classify_text(&self, body: &str) -> Option<KeywordIntent> {
        // Keywords are short; a long text is never one, and skipping it keeps the hot path cheap.
        if body.len() > 64 {
            return None;
        }
        let n = normalize(body);
        if self.stop.contains(&n) {
            Some(KeywordIntent::Stop)
        } else if self.start.contains(&n) {
            Some(KeywordIntent::Start)
        } else {
            None
        }
    }

    /// Whether a quick-reply tap (`type: button`) is the marketing opt-out button.
    pub fn is_stop_promotions(&self, text: Option<&str>, payload: Option<&str>) -> bool {
        [text, payload]
            .into_iter()
            .flatten()
            .any(|s| s.len() <= 64 && self.stop_promotions.contains(&normalize(s)))
    }
}

impl Default for KeywordRules {
    fn default() -> Self {
        Self::new(
            DEFAULT_STOP_KEYWORDS,
            DEFAULT_START_KEYWORDS,
            DEFAULT_STOP_PROMOTIONS_LABELS,
            DEFAULT_KEYWORD_CATEGORIES,
        )
        .expect("the default keyword lists are disjoint")
    }
}

/// Lowercase, accents removed, every run of non-alphanumerics folded into one space, trimmed.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.nfkd().filter(|c| !is_combining_mark(*c)) {
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else {
            pending_space = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_ignores_case_accents_punctuation_and_spacing() {
        assert_eq!(normalize("  STOP!! "), "stop");
        assert_eq!(normalize("Não  quero mais."), "nao quero mais");
        assert_eq!(normalize("NO MÁS"), "no mas");
        assert_eq!(normalize("opt-out"), "opt out");
        assert_eq!(normalize("🙂 Stop 🙂"), "stop");
    }

    #[test]
    fn default_keywords_cover_english_spanish_and_portuguese() {
        let rules = KeywordRules::default();
        for stop in [
            "STOP",
            "Stop.",
            "baja",
            "Darme de BAJA",
            "No más mensajes",
            "PARE",
            "não quero mais mensagens",
            "Unsubscribe",
        ] {
            assert_eq!(
                rules.classify_text(stop),
                Some(KeywordIntent::Stop),
                "{stop}"
            );
        }
        for start in [
            "START",
            "Start!",
            "Suscribirme",
            "REATIVAR",
            "quero receber",
        ] {
            assert_eq!(
                rules.classify_text(start),
                Some(KeywordIntent::Start),
                "{start}"
            );
        }
    }

    /// Words that answer a prompt or drive a menu are not keywords by default: "Cancelar" to a
    /// transfer prompt must not stop a bank's alerts, and a menu's "Voltar" must not re-subscribe.
    #[test]
    fn prompt_and_menu_words_are_not_keywords_by_default() {
        let rules = KeywordRules::default();
        for word in [
            "cancel", "Cancelar", "END", "quit", "Sair", "Voltar", "back", "alta", "Assinar", "no",
        ] {
            assert_eq!(rules.classify_text(word), None, "{word}");
        }
    }

    #[test]
    fn a_sentence_containing_a_keyword_is_not_one() {
        let rules = KeywordRules::default();
        for text in [
            "please stop by tomorrow",
            "cancel my order 1234",
            "Hola",
            "",
        ] {
            assert_eq!(rules.classify_text(text), None, "{text}");
        }
    }

    #[test]
    fn stop_promotions_matches_label_or_payload_in_any_language() {
        let rules = KeywordRules::default();
        assert!(rules.is_stop_promotions(Some("Stop promotions"), None));
        assert!(rules.is_stop_promotions(Some("PARAR PROMOCOES"), None));
        assert!(rules.is_stop_promotions(None, Some("Detener promociones")));
        assert!(!rules.is_stop_promotions(Some("Track my order"), Some("track:1234")));
    }

    #[test]
    fn configuration_rejects_a_word_in_both_lists_and_no_categories() {
        let err = KeywordRules::new(&["stop", "Alto"], &["ALTO"], &[], &[Category::Marketing])
            .unwrap_err();
        assert_eq!(err, KeywordConfigError::Both("alto".into()));
        let err = KeywordRules::new(&["stop"], &["start"], &[], &[]).unwrap_err();
        assert_eq!(err, KeywordConfigError::NoCategories);
    }

    #[test]
    fn keyword_categories_default_to_marketing() {
        assert_eq!(
            KeywordRules::default().keyword_categories(),
            &[Category::Marketing]
        );
    }
}
