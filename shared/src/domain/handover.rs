//! Words with which a user asks for a person: "agente", "humano", "human", "atendente"…
//!
//! A human must always be reachable (DESIGN rule 22). Unlike STOP, a handover word counts anywhere in
//! the message ("quero falar com um atendente"): asking for a person inside a sentence is still
//! asking, and a false alarm costs an agent a glance, while a missed one strands a customer with a
//! bot. Matching is on whole words (or whole phrases), ignoring case, accents and punctuation, the
//! same normalisation as the STOP keywords: "humanidade" does not match "humano".

use super::keywords::normalize;

/// English, Spanish and Portuguese defaults. `WAHOOK_HANDOVER_WORDS` replaces them.
pub const DEFAULT_HANDOVER_WORDS: &[&str] = &[
    // English
    "human",
    "agent",
    "operator",
    "real person",
    "talk to a person",
    // Spanish
    "agente",
    "humano",
    "asesor",
    "persona real",
    "hablar con una persona",
    // Portuguese
    "atendente",
    "atendimento humano",
    "pessoa real",
    "falar com uma pessoa",
];

/// Only the start of a long message is read: a request for a person is short, and this bounds the
/// work a 4096-character text can cause.
const MAX_SCANNED_BYTES: usize = 1024;

/// The configured handover words, normalised once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoverWords {
    /// Each word or phrase, normalised and padded with one space on each side.
    padded: Vec<String>,
}

impl HandoverWords {
    /// Blank entries are dropped. An empty list turns the event off.
    pub fn new<S: AsRef<str>>(words: &[S]) -> Self {
        let mut padded: Vec<String> = words
            .iter()
            .map(|w| normalize(w.as_ref()))
            .filter(|w| !w.is_empty())
            .map(|w| format!(" {w} "))
            .collect();
        padded.sort();
        padded.dedup();
        Self { padded }
    }

    pub fn is_empty(&self) -> bool {
        self.padded.is_empty()
    }

    /// The first configured word that `text` contains as a whole word or phrase, as configured
    /// (normalised).
    pub fn find(&self, text: &str) -> Option<&str> {
        if self.padded.is_empty() {
            return None;
        }
        let mut cut = text.len().min(MAX_SCANNED_BYTES);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let haystack = format!(" {} ", normalize(&text[..cut]));
        self.padded
            .iter()
            .find(|w| haystack.contains(w.as_str()))
            .map(|w| w.trim())
    }
}

impl Default for HandoverWords {
    fn default() -> Self {
        Self::new(DEFAULT_HANDOVER_WORDS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_counts_anywhere_in_the_message_but_only_whole() {
        let w = HandoverWords::default();
        assert_eq!(w.find("Quero falar com um ATENDENTE!"), Some("atendente"));
        assert_eq!(w.find("humano"), Some("humano"));
        assert_eq!(
            w.find("¿Puedo hablar con una persona?"),
            Some("hablar con una persona")
        );
        assert_eq!(
            w.find("Falar com uma pessoa, por favor"),
            Some("falar com uma pessoa")
        );
        assert_eq!(w.find("la humanidad"), None);
        assert_eq!(w.find("agentes secretos"), None);
        assert_eq!(w.find("my order is late"), None);
        assert_eq!(w.find(""), None);
    }

    #[test]
    fn configured_words_replace_the_defaults_and_an_empty_list_turns_it_off() {
        let w = HandoverWords::new(&["Falar com Gerente", " ", "suporte"]);
        assert_eq!(w.find("quero FALAR com gerente"), Some("falar com gerente"));
        assert_eq!(w.find("suporte."), Some("suporte"));
        assert_eq!(w.find("human"), None);
        let off = HandoverWords::new::<&str>(&[]);
        assert!(off.is_empty());
        assert_eq!(off.find("human"), None);
    }

    #[test]
    fn a_long_text_is_read_only_at_its_start_and_never_split_mid_character() {
        let w = HandoverWords::default();
        let long = format!("{} humano", "é".repeat(2000));
        assert_eq!(w.find(&long), None);
        let early = format!("humano {}", "ñ".repeat(3000));
        assert_eq!(w.find(&early), Some("humano"));
    }
}
