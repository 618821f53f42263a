//! Identifiers, parsed once at the edge so inner code never re-validates strings.
//!
//! Who a user is has two spellings since 2026: a phone number (`wa_id`, `from`, `recipient_id`) and a
//! business-scoped user id (BSUID: `user_id`, `from_user_id`, `recipient_user_id`). Either may be
//! absent. [`UserRef`] carries what a payload told us; [`ContactKey`] is where the person lives in the
//! contacts table (see `docs/data-model.md` for the keying rule).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use super::numbering;

/// Why a string is not a valid identifier. The message names the field and the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "phone number id {0:?} is not valid: expected Meta's numeric phone number id (digits only)"
    )]
    PhoneNumberId(String),
    #[error("phone number {0:?} is not valid: expected E.164, a country code and 6 to 15 digits, e.g. +5215512345678")]
    Phone(String),
    #[error("business-scoped user id {0:?} is not valid: expected <ISO country>.<id>, e.g. US.13491208655302741918")]
    Bsuid(String),
    #[error("message id {0:?} is not valid: expected Meta's wamid (non-empty, no spaces, at most 512 characters)")]
    Wamid(String),
}

/// Meta's id of one of the business's phone numbers: where sends are POSTed and what webhooks name in
/// `metadata.phone_number_id`. Shared, not copied: every message and status of a delivery names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumberId(Arc<str>);

impl PhoneNumberId {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let ok = !raw.is_empty() && raw.len() <= 32 && raw.bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(Self(raw.into()))
        } else {
            Err(IdError::PhoneNumberId(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user's phone number, stored as E.164 digits without the `+` (the form of Meta's `wa_id`).
///
/// Meta's examples send digits without `+`; producers write `+52 1 55…`; both parse to the same value.
///
/// Shared, not copied: a delivery's plan names the same person in its message, its contact update
/// and the contact's state.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(Arc<str>);

impl Phone {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let trimmed = raw.trim();
        let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
        // Meta's `wa_id` is digits already: no copy to build.
        let digits: Cow<str> = if body.bytes().all(|b| b.is_ascii_digit()) {
            Cow::Borrowed(body)
        } else {
            let mut digits = String::with_capacity(body.len());
            for c in body.chars() {
                match c {
                    '0'..='9' => digits.push(c),
                    ' ' | '-' | '(' | ')' | '.' => {}
                    _ => return Err(IdError::Phone(raw.to_owned())),
                }
            }
            Cow::Owned(digits)
        };
        // E.164 allows at most 15 digits; no country code starts with 0.
        if (6..=15).contains(&digits.len()) && !digits.starts_with('0') {
            Ok(Self(digits.as_ref().into()))
        } else {
            Err(IdError::Phone(raw.to_owned()))
        }
    }

    /// Whether `raw` parses to this number (`Phone::parse(raw) == Ok(self)`), without copying it.
    pub fn is_spelled(&self, raw: &str) -> bool {
        let trimmed = raw.trim();
        let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
        let mut digits = self.0.bytes();
        for c in body.chars() {
            match c {
                '0'..='9' => {
                    if digits.next() != Some(c as u8) {
                        return false;
                    }
                }
                ' ' | '-' | '(' | ')' | '.' => {}
                _ => return false,
            }
        }
        digits.next().is_none()
    }

    /// Digits only, as written (Meta's `wa_id`, or the producer's form).
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The person's number in the one spelling contacts are keyed by (Mexico's `521…`, Brazil's
    /// nine-digit mobiles: see [`super::numbering`]).
    pub fn canonical(&self) -> Cow<'_, str> {
        numbering::canonical(&self.0)
    }

    /// Whether `other` is the same number written another way.
    pub fn same_number(&self, other: &Phone) -> bool {
        numbering::same_number(&self.0, &other.0)
    }

    /// `+` and digits: the form to send to, so Meta never prefixes the business's own country code.
    pub fn e164(&self) -> String {
        format!("+{}", self.0)
    }

    /// What logs may show: the last four digits only.
    pub fn masked(&self) -> String {
        let tail = &self.0[self.0.len().saturating_sub(4)..];
        format!("+…{tail}")
    }
}

// Debug is what ends up in logs by accident: never the whole number.
impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

/// A business-scoped user id (BSUID), e.g. `BR.1502abc…`: stable per business, present on 2026 webhooks
/// even when the phone number is withheld.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bsuid(Arc<str>);

impl Bsuid {
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        // Checked on bytes, and the rest only once the prefix is known to be there: any string a
        // payload carries (empty, two characters, multi-byte) must be an error, never a panic.
        let ok = match raw.as_bytes() {
            [a, b, b'.', rest @ ..] => {
                a.is_ascii_uppercase()
                    && b.is_ascii_uppercase()
                    && !rest.is_empty()
                    // Parent (portfolio) ids carry an extra dotted segment, so dots are allowed.
                    && rest.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'.')
                    && raw.len() <= 160
                    && !raw.ends_with('.')
            }
            _ => false,
        };
        if ok {
            Ok(Self(raw.into()))
        } else {
            Err(IdError::Bsuid(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn masked(&self) -> String {
        let tail = &self.0[self.0.len().saturating_sub(4)..];
        format!("{}…{tail}", &self.0[..3])
    }
}

impl fmt::Debug for Bsuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bsuid({})", self.masked())
    }
}

/// Meta's message id (`wamid.…`): the dedupe key of inbound messages and the join key of statuses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Wamid(String);

impl Wamid {
    /// Whether [`Wamid::parse`] takes `raw`, without copying it.
    pub fn is_valid(raw: &str) -> bool {
        !raw.is_empty() && raw.len() <= 512 && raw.bytes().all(|b| b.is_ascii_graphic())
    }

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if Self::is_valid(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::Wamid(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Wamid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One identity of a user: the thing a contact key is made of.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserId {
    Phone(Phone),
    Bsuid(Bsuid),
}

impl UserId {
    /// Parses either spelling: a BSUID has a dotted country prefix, a phone is digits.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.as_bytes().get(2) == Some(&b'.') {
            Bsuid::parse(raw).map(UserId::Bsuid)
        } else {
            Phone::parse(raw).map(UserId::Phone)
        }
    }

    /// The spelling used inside keys: the phone's canonical digits or the BSUID. The two never
    /// collide (digits vs `XX.`).
    pub fn key_part(&self) -> Cow<'_, str> {
        match self {
            UserId::Phone(p) => p.canonical(),
            UserId::Bsuid(b) => Cow::Borrowed(b.as_str()),
        }
    }

    /// As the producer or Meta wrote it (phone digits without `+`, or the BSUID).
    pub fn as_written(&self) -> &str {
        match self {
            UserId::Phone(p) => p.digits(),
            UserId::Bsuid(b) => b.as_str(),
        }
    }

    pub fn masked(&self) -> String {
        match self {
            UserId::Phone(p) => p.masked(),
            UserId::Bsuid(b) => b.masked(),
        }
    }
}

/// What a payload told us about who a user is: a phone, a BSUID, or both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserRef {
    phone: Option<Phone>,
    bsuid: Option<Bsuid>,
}

impl UserRef {
    /// `None` when the payload named nobody.
    pub fn new(phone: Option<Phone>, bsuid: Option<Bsuid>) -> Option<Self> {
        if phone.is_none() && bsuid.is_none() {
            None
        } else {
            Some(Self { phone, bsuid })
        }
    }

    pub fn from_phone(phone: Phone) -> Self {
        Self {
            phone: Some(phone),
            bsuid: None,
        }
    }

    /// The reference a single identity makes.
    pub fn of(id: &UserId) -> Self {
        match id {
            UserId::Phone(p) => Self::from_phone(p.clone()),
            UserId::Bsuid(b) => Self::from_bsuid(b.clone()),
        }
    }

    pub fn from_bsuid(bsuid: Bsuid) -> Self {
        Self {
            phone: None,
            bsuid: Some(bsuid),
        }
    }

    pub fn phone(&self) -> Option<&Phone> {
        self.phone.as_ref()
    }

    pub fn bsuid(&self) -> Option<&Bsuid> {
        self.bsuid.as_ref()
    }

    /// BSUID first, as Meta recommends: it survives a hidden phone number.
    pub fn primary(&self) -> UserId {
        match (&self.bsuid, &self.phone) {
            (Some(b), _) => UserId::Bsuid(b.clone()),
            (None, Some(p)) => UserId::Phone(p.clone()),
            (None, None) => unreachable!("UserRef always holds at least one identity"),
        }
    }

    /// Every identity this reference carries.
    pub fn ids(&self) -> impl Iterator<Item = UserId> + '_ {
        self.bsuid
            .iter()
            .cloned()
            .map(UserId::Bsuid)
            .chain(self.phone.iter().cloned().map(UserId::Phone))
    }

    /// Adds what `other` knows and this one does not (the first phone/BSUID wins on conflict).
    pub fn absorb(&mut self, other: &UserRef) {
        if self.phone.is_none() {
            self.phone = other.phone.clone();
        }
        if self.bsuid.is_none() {
            self.bsuid = other.bsuid.clone();
        }
    }

    pub fn masked(&self) -> String {
        self.primary().masked()
    }
}

/// The key of a contact item: `{phone_number_id}#{user}`. A person is a contact per business number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContactKey(String);

impl ContactKey {
    pub fn new(number: &PhoneNumberId, user: &UserId) -> Self {
        Self(format!("{}#{}", number.as_str(), user.key_part()))
    }

    /// Every key a person's contact may be found under: their identities' keys, then the older
    /// spellings of their phone.
    pub fn all_for(number: &PhoneNumberId, user: &UserRef) -> Vec<Self> {
        let mut keys: Vec<Self> = user.ids().map(|id| Self::new(number, &id)).collect();
        if let Some(phone) = user.phone() {
            keys.extend(Self::other_forms(number, phone));
        }
        keys
    }

    /// The keys other spellings of this phone were stored under before contacts were keyed by the
    /// canonical form (read once, folded into the canonical key: see `identity::resolve`).
    pub fn other_forms(number: &PhoneNumberId, phone: &Phone) -> Vec<Self> {
        numbering::other_forms(phone.digits())
            .into_iter()
            .map(|d| Self(format!("{}#{d}", number.as_str())))
            .collect()
    }

    /// Reads a key back from storage.
    pub fn parse(raw: &str) -> Option<(PhoneNumberId, UserId)> {
        let (number, user) = raw.split_once('#')?;
        Some((
            PhoneNumberId::parse(number).ok()?,
            UserId::parse(user).ok()?,
        ))
    }

    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever string a signed payload or a producer puts where an id goes, parsing it is an
        /// answer (the id or an error), never a panic: with `panic = "abort"` a panic kills the Lambda
        /// and Meta redelivers the body, and everything batched with it, for days.
        #[test]
        fn no_string_makes_an_id_parser_panic(raw in any::<String>(), short in "[A-Z.é]{0,4}") {
            for s in [raw.as_str(), short.as_str()] {
                let _ = PhoneNumberId::parse(s);
                let _ = Phone::parse(s);
                let _ = Wamid::parse(s);
                let _ = ContactKey::parse(s);
                if let Ok(b) = Bsuid::parse(s) {
                    let _ = b.masked();
                }
                if let Ok(u) = UserId::parse(s) {
                    let _ = u.key_part();
                }
            }
        }
    }

    #[test]
    fn a_phone_is_spelled_by_exactly_what_parses_to_it() {
        let phone = Phone::parse("5215512345678").unwrap();
        for raw in [
            "5215512345678",
            "+52 1 55 1234-5678",
            " (521) 5512345678 ",
            "521551234567",
            "52155123456789",
            "+5215512345678x",
            "52155.1234.5678",
            "",
            "+",
            "٥٢١٥٥١٢٣٤٥٦٧٨",
        ] {
            assert_eq!(
                phone.is_spelled(raw),
                Phone::parse(raw).ok().as_ref() == Some(&phone),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn short_and_odd_bsuids_are_errors() {
        for raw in ["", "U", "US", "US.", "é", "Ué.x", "US.é", "US.abc."] {
            assert!(Bsuid::parse(raw).is_err(), "{raw:?}");
            assert!(UserId::parse(raw).is_err(), "{raw:?}");
        }
        assert_eq!(
            Bsuid::parse("US.13491208655302741918").unwrap().as_str(),
            "US.13491208655302741918"
        );
        assert!(
            Bsuid::parse("US.ENT.11815799212886844830").is_ok(),
            "a parent BSUID"
        );
    }

    #[test]
    fn phone_accepts_meta_and_producer_spellings_as_one_value() {
        let meta = Phone::parse("5215512345678").unwrap();
        let producer = Phone::parse("+52 1 55 1234-5678").unwrap();
        assert_eq!(meta, producer);
        assert_eq!(meta.e164(), "+5215512345678");
    }

    #[test]
    fn phone_rejects_what_cannot_be_e164() {
        for bad in [
            "",
            "+",
            "12345",
            "0123456789",
            "1234567890123456",
            "+1 555 CALL NOW",
            "BR.123",
        ] {
            let err = Phone::parse(bad).unwrap_err();
            assert!(err.to_string().contains("E.164"), "{bad}: {err}");
        }
    }

    #[test]
    fn debug_of_a_phone_never_shows_the_whole_number() {
        let p = Phone::parse("+5215512345678").unwrap();
        let shown = format!("{p:?} {}", p.masked());
        assert!(!shown.contains("5512345678"), "{shown}");
        assert!(shown.contains("5678"));
    }

    #[test]
    fn bsuid_has_a_country_prefix() {
        assert!(Bsuid::parse("BR.1502abcDEF").is_ok());
        assert!(Bsuid::parse("US.ENT.99aa").is_ok());
        for bad in ["br.123", "BR123", "BR.", "BR.12 3", "B.123", "BR.abc."] {
            assert!(Bsuid::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_id_tells_phone_from_bsuid_and_keys_do_not_collide() {
        let n = PhoneNumberId::parse("106540352242922").unwrap();
        let phone = UserId::parse("15551234567").unwrap();
        let bsuid = UserId::parse("US.15551234567").unwrap();
        assert!(matches!(phone, UserId::Phone(_)));
        assert!(matches!(bsuid, UserId::Bsuid(_)));
        assert_ne!(ContactKey::new(&n, &phone), ContactKey::new(&n, &bsuid));
        assert_eq!(
            ContactKey::parse(ContactKey::new(&n, &bsuid).as_str()),
            Some((n, bsuid))
        );
    }

    #[test]
    fn primary_identity_is_the_bsuid_when_known() {
        let both = UserRef::new(
            Some(Phone::parse("15551234567").unwrap()),
            Some(Bsuid::parse("US.abc").unwrap()),
        )
        .unwrap();
        assert!(matches!(both.primary(), UserId::Bsuid(_)));
        let phone_only = UserRef::from_phone(Phone::parse("15551234567").unwrap());
        assert!(matches!(phone_only.primary(), UserId::Phone(_)));
        assert!(UserRef::new(None, None).is_none());
    }
}
