//! The ways one mobile number is written (DESIGN rule 8, `docs/whatsapp-platform.md` §12): Meta's
//! `wa_id` for a Mexican mobile is `521` + ten digits where people and CRMs write `+52` + ten digits,
//! and Brazilian mobiles appear with and without the ninth digit. A contact is keyed by one canonical
//! form, so every spelling finds the same person; the other forms are what earlier versions keyed by,
//! read once and folded in (see `identity::resolve`).
//!
//! Each country's rule is one entry of [`NUMBER_FORMS`]: when Meta changes a country's form, that
//! entry is what changes. Everything here is on ASCII digits already validated by `Phone::parse`.

use std::borrow::Cow;

/// One country's two spellings of the same mobile number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberForm {
    /// Country calling code, digits.
    pub country: &'static str,
    /// Digits after the country code in the short form.
    pub short_len: usize,
    /// Where, counted from the end of the country code, the long form has one more digit.
    pub insert_at: usize,
    /// The digit the long form has there.
    pub digit: u8,
    /// The short form is only a mobile (and so only the same person) when the digit at `insert_at`
    /// is one of these; `None`: every short-form number is.
    pub mobile_first_digits: Option<&'static [u8]>,
}

/// Canonical is always the long form.
///
/// - Mexico (52): since 2019 the mobile `1` is no longer dialled, but WhatsApp's `wa_id` keeps it:
///   `52 55 1234 5678` and `52 1 55 1234 5678` are one person. Mexican national numbers are ten
///   digits, so a 12-digit `52…` and a 13-digit `521…` number are never anyone else.
/// - Brazil (55): mobiles gained a leading `9` (2012–2016); accounts registered before appear
///   without it. After the two-digit area code, eight digits starting 6–9 are an old-form mobile;
///   eight digits starting 2–5 are a landline and are left as they are (ambiguity resolved toward
///   "different number": a landline never merges with a mobile).
pub const NUMBER_FORMS: &[NumberForm] = &[
    NumberForm {
        country: "52",
        short_len: 10,
        insert_at: 0,
        digit: b'1',
        mobile_first_digits: None,
    },
    NumberForm {
        country: "55",
        short_len: 10,
        insert_at: 2,
        digit: b'9',
        mobile_first_digits: Some(b"6789"),
    },
];

/// The canonical spelling of E.164 digits (no `+`): the long form where a rule applies, else as given.
pub fn canonical(digits: &str) -> Cow<'_, str> {
    for form in NUMBER_FORMS {
        if let Some(long) = lengthen(form, digits) {
            return Cow::Owned(long);
        }
    }
    Cow::Borrowed(digits)
}

/// Every spelling of the same person's number other than the canonical one (for digits in either
/// form, the input included when it is not canonical): what an earlier version, or another writer,
/// may have keyed them by. Empty for numbers no rule covers.
pub fn other_forms(digits: &str) -> Vec<String> {
    let long = canonical(digits);
    NUMBER_FORMS
        .iter()
        .filter_map(|form| shorten(form, &long))
        .filter(|short| *short != *long)
        .collect()
}

/// Whether two spellings are the same person's number.
pub fn same_number(a: &str, b: &str) -> bool {
    canonical(a) == canonical(b)
}

fn lengthen(form: &NumberForm, digits: &str) -> Option<String> {
    let national = digits.strip_prefix(form.country)?;
    if national.len() != form.short_len || !national.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let at = *national.as_bytes().get(form.insert_at)?;
    if let Some(allowed) = form.mobile_first_digits {
        if !allowed.contains(&at) {
            return None;
        }
    }
    let (head, tail) = national.split_at(form.insert_at);
    let mut long = String::with_capacity(digits.len() + 1);
    long.push_str(form.country);
    long.push_str(head);
    long.push(form.digit as char);
    long.push_str(tail);
    Some(long)
}

fn shorten(form: &NumberForm, digits: &str) -> Option<String> {
    let national = digits.strip_prefix(form.country)?;
    if national.len() != form.short_len + 1 || !national.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if national.as_bytes().get(form.insert_at) != Some(&form.digit) {
        return None;
    }
    let (head, tail) = national.split_at(form.insert_at);
    let short = format!("{}{}{}", form.country, head, &tail[1..]);
    // Only a short form the rule would lengthen back is the same number.
    (lengthen(form, &short).as_deref() == Some(digits)).then_some(short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mexico_is_keyed_by_metas_521_form() {
        assert_eq!(canonical("525512345678"), "5215512345678");
        assert_eq!(canonical("5215512345678"), "5215512345678");
        // The other spelling of either form is the short one: a key an earlier version wrote.
        assert_eq!(other_forms("5215512345678"), vec!["525512345678"]);
        assert_eq!(other_forms("525512345678"), vec!["525512345678"]);
        assert!(same_number("525512345678", "5215512345678"));
    }

    #[test]
    fn brazil_mobiles_gain_the_ninth_digit_and_landlines_do_not() {
        // São Paulo (11) mobile, old and new form.
        assert_eq!(canonical("551188776655"), "5511988776655");
        assert_eq!(canonical("5511988776655"), "5511988776655");
        assert_eq!(other_forms("5511988776655"), vec!["551188776655"]);
        assert_eq!(other_forms("551188776655"), vec!["551188776655"]);
        // A landline (first digit 2–5) is its own number.
        assert_eq!(canonical("551133224455"), "551133224455");
        assert!(other_forms("551133224455").is_empty());
        assert!(!same_number("551133224455", "5511933224455"));
        // A 13-digit number whose ninth digit is not 9 is not a long form of anything.
        assert!(other_forms("5511888776655").is_empty());
    }

    #[test]
    fn other_countries_are_as_given() {
        assert_eq!(canonical("15551234567"), "15551234567");
        assert!(other_forms("15551234567").is_empty());
        assert!(other_forms("4915112345678").is_empty());
    }

    proptest! {
        /// The rule is a partition: every form of a number has the same canonical form, and the
        /// canonical form's other forms lead back to it.
        #[test]
        fn every_form_leads_to_one_canonical(digits in "[1-9][0-9]{5,14}", cc in prop::sample::select(vec!["52", "521", "55", "5511", "55119"]), rest in "[0-9]{6,11}") {
            for d in [digits.clone(), format!("{cc}{rest}")] {
                let c = canonical(&d).into_owned();
                prop_assert_eq!(canonical(&c), c.clone(), "canonical is a fixed point");
                for other in other_forms(&d) {
                    prop_assert_eq!(canonical(&other), c.clone());
                }
                prop_assert!(!other_forms(&c).contains(&c));
            }
        }
    }
}
