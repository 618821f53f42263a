//! The contacts table: one primary item per person per business number, and alias items that point a
//! person's other identity (their phone) at it. Reads are strongly consistent; writes are versioned,
//! and a fold of two records into one is a single transaction.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::attrs::{self, get_m, get_n, get_s, m, n, s, Item, UpdateBuilder};
use super::tables::CONTACTS;
use super::{versioned_outcome, Store, StoreError, WriteOutcome};
use crate::domain::contact::{ConsentRecord, ContactState, Referral, Stamped};
use crate::domain::identity::{
    follow, plan_move, resolve_with, AliasWrite, ContactRecord, ContactSnapshot, ContactWrite,
    IdentityMove, MoveStep, PrimaryWrite, ResolveStep, Retire, VersionedRecord, MAX_ALIAS_HOPS,
};
use crate::domain::ids::{ContactKey, Phone, PhoneNumberId, UserRef};
use crate::domain::preferences::{Category, Consent, Preference, PreferenceSource};
use crate::domain::time::UnixTime;
use crate::retry::{Rounds, MAX_ATTEMPTS};

const KEY: &str = CONTACTS.partition_key.name;

/// What [`Store::merge_contact`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactMerge {
    pub written: bool,
    /// Lost races that were retried.
    pub conflicts: usize,
}

impl Store {
    /// Reads these contact keys; every key appears in the result, `None` when absent.
    pub async fn get_contacts(&self, keys: &[ContactKey]) -> Result<ContactSnapshot, StoreError> {
        let raw: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        let found = self.batch_get(&self.tables.contacts, KEY, &raw).await?;
        Ok(keys
            .iter()
            .map(|k| (k.clone(), found.get(k.as_str()).map(record_from_item)))
            .collect())
    }

    /// Reads one contact as the sender and tools see it: following an alias to the person's record.
    pub async fn find_contact(
        &self,
        key: &ContactKey,
    ) -> Result<Option<(ContactKey, ContactState)>, StoreError> {
        let found = self.find_contacts(std::slice::from_ref(key)).await?;
        Ok(found.get(key).cloned().flatten())
    }

    /// Reads contacts by any identity key, following aliases (one batched read per hop, usually one
    /// or two). Each key maps to the key holding the person's state and that state, or `None` for
    /// nobody known.
    pub async fn find_contacts(
        &self,
        keys: &[ContactKey],
    ) -> Result<HashMap<ContactKey, Option<(ContactKey, ContactState)>>, StoreError> {
        let mut snapshot = self.get_contacts(keys).await?;
        for _ in 0..MAX_ALIAS_HOPS {
            let unread: Vec<ContactKey> = keys
                .iter()
                .filter_map(|k| follow(k, &snapshot).err())
                .filter(|k| !snapshot.contains_key(k))
                .collect();
            if unread.is_empty() {
                break;
            }
            snapshot.extend(self.get_contacts(&unread).await?);
        }
        Ok(keys
            .iter()
            .map(|k| {
                let found = follow(k, &snapshot).ok().and_then(|home| {
                    match snapshot.get(&home).cloned().flatten() {
                        Some(VersionedRecord {
                            record: ContactRecord::Primary(state),
                            ..
                        }) => Some((home, state)),
                        _ => None,
                    }
                });
                (k.clone(), found)
            })
            .collect())
    }

    /// Brings a person's contact up to date with `delta` (rule 8's keying, see
    /// [`crate::domain::identity::resolve`]): reads what it needs beyond `snapshot`, joins, and writes
    /// only if something changed, retrying lost races against concurrent writers.
    pub async fn merge_contact(
        &self,
        number: &PhoneNumberId,
        user: &UserRef,
        delta: &ContactState,
        snapshot: ContactSnapshot,
    ) -> Result<ContactMerge, StoreError> {
        self.merge_contact_learning(number, user, &[], delta, snapshot)
            .await
    }

    /// [`Store::merge_contact`], also pointing `learned` (other spellings of the person's number that
    /// Meta showed are theirs) at the person: see [`crate::domain::identity::resolve_with`].
    pub async fn merge_contact_learning(
        &self,
        number: &PhoneNumberId,
        user: &UserRef,
        learned: &[ContactKey],
        delta: &ContactState,
        mut snapshot: ContactSnapshot,
    ) -> Result<ContactMerge, StoreError> {
        let mut conflicts = 0;
        let mut rounds = Rounds::new();
        while let Some(attempt) = rounds.next().await {
            if attempt > 0 {
                // Lost a race: everything read may be stale.
                conflicts += 1;
                let keys: Vec<ContactKey> = snapshot.keys().cloned().collect();
                snapshot = self.get_contacts(&keys).await?;
            }
            // A person's keys, then their home, then a phone's other owner: a round needs only a few.
            for _ in 0..8 {
                match resolve_with(number, user, learned, delta, &snapshot) {
                    ResolveStep::Read(keys) => snapshot.extend(self.get_contacts(&keys).await?),
                    ResolveStep::Write(write) if write.is_empty() => {
                        return Ok(ContactMerge {
                            written: false,
                            conflicts,
                        })
                    }
                    ResolveStep::Write(write) => match self.write_contact(&write).await? {
                        WriteOutcome::Written => {
                            return Ok(ContactMerge {
                                written: true,
                                conflicts,
                            })
                        }
                        WriteOutcome::Conflict => break,
                    },
                }
            }
        }
        Err(StoreError::Contention {
            what: "contact",
            key: user.masked(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Moves a person's contact to their new identity ([`plan_move`]): the state is merged into the
    /// new identity first, then the old keys are retired, each conditionally. A crash in between
    /// leaves both leading to the person; the webhook's redelivery finishes the move (merging again
    /// changes nothing). Returns whether anything was written.
    pub async fn move_identity(&self, m: &IdentityMove) -> Result<bool, StoreError> {
        let mut rounds = Rounds::new();
        while let Some(_attempt) = rounds.next().await {
            let mut snapshot = ContactSnapshot::new();
            let step = loop {
                match plan_move(m, &snapshot) {
                    MoveStep::Read(keys) => snapshot.extend(self.get_contacts(&keys).await?),
                    other => break other,
                }
            };
            let MoveStep::Move {
                before,
                carried,
                retire,
            } = step
            else {
                return Ok(false);
            };
            let mut lost_race = false;
            for r in &before {
                lost_race |= self.perform_retire(&m.number, r).await? == WriteOutcome::Conflict;
            }
            if lost_race {
                continue;
            }
            self.merge_contact(&m.number, &m.to, &carried, Default::default())
                .await?;
            for r in &retire {
                lost_race |= self.perform_retire(&m.number, r).await? == WriteOutcome::Conflict;
            }
            if !lost_race {
                return Ok(true);
            }
        }
        Err(StoreError::Contention {
            what: "contact move",
            key: m.from.masked(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// One write of a move besides the merge: a conditional delete, a re-pointed alias, or a
    /// released phone (merged like any delta).
    async fn perform_retire(
        &self,
        number: &PhoneNumberId,
        r: &Retire,
    ) -> Result<WriteOutcome, StoreError> {
        match r {
            Retire::Point(alias) => {
                self.write_contact(&ContactWrite {
                    primary: None,
                    aliases: vec![alias.clone()],
                })
                .await
            }
            Retire::Delete { key, version } => {
                let result = self
                    .client
                    .delete_item()
                    .table_name(&self.tables.contacts)
                    .key(KEY, s(key.as_str()))
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#v", "version")
                    .expression_attribute_values(":v", n(*version as i64))
                    .send()
                    .await;
                versioned_outcome(result, "DeleteItem", &self.tables.contacts)
            }
            Retire::ReleasePhone { home, phone, at } => {
                let Some((_, id)) = ContactKey::parse(home.as_str()) else {
                    return Ok(WriteOutcome::Written);
                };
                let delta = ContactState::phone_released(phone.clone(), *at);
                self.merge_contact(number, &UserRef::of(&id), &delta, Default::default())
                    .await?;
                Ok(WriteOutcome::Written)
            }
        }
    }

    /// Performs a write decided by [`crate::domain::identity::resolve`]: one conditional write, or
    /// one transaction when it touches more than one item.
    pub async fn write_contact(&self, write: &ContactWrite) -> Result<WriteOutcome, StoreError> {
        let table = &self.tables.contacts;
        match (&write.primary, write.aliases.as_slice()) {
            (None, []) => Ok(WriteOutcome::Written),
            (Some(p), []) => {
                let (expr, cond, names, values) = primary_update(p);
                let result = self
                    .client
                    .update_item()
                    .table_name(table)
                    .key(KEY, s(p.key.as_str()))
                    .update_expression(expr)
                    .condition_expression(cond)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .send()
                    .await;
                versioned_outcome(result, "UpdateItem", table)
            }
            (None, [a]) => {
                let (item, cond, names, values) = alias_put(a);
                let result = self
                    .client
                    .put_item()
                    .table_name(table)
                    .set_item(Some(item))
                    .condition_expression(cond)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(values)
                    .send()
                    .await;
                versioned_outcome(result, "PutItem", table)
            }
            (primary, aliases) => {
                let mut items = Vec::with_capacity(aliases.len() + 1);
                if let Some(p) = primary {
                    let (expr, cond, names, values) = primary_update(p);
                    let update = Update::builder()
                        .table_name(table)
                        .key(KEY, s(p.key.as_str()))
                        .update_expression(expr)
                        .condition_expression(cond)
                        .set_expression_attribute_names(Some(names))
                        .set_expression_attribute_values(Some(values))
                        .build()
                        .expect("table, key and expression are set");
                    items.push(TransactWriteItem::builder().update(update).build());
                }
                for a in aliases {
                    let (item, cond, names, values) = alias_put(a);
                    let put = Put::builder()
                        .table_name(table)
                        .set_item(Some(item))
                        .condition_expression(cond)
                        .set_expression_attribute_names(Some(names))
                        .set_expression_attribute_values(values)
                        .build()
                        .expect("table and item are set");
                    items.push(TransactWriteItem::builder().put(put).build());
                }
                let result = self
                    .client
                    .transact_write_items()
                    .set_transact_items(Some(items))
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(WriteOutcome::Written),
                    Err(e) if transaction_conflict(&e) => Ok(WriteOutcome::Conflict),
                    Err(e) => Err(StoreError::dynamo("TransactWriteItems", table, e)),
                }
            }
        }
    }
}

/// A condition failed, or another transaction touched the same items: re-read and retry.
pub(crate) fn transaction_conflict<R>(err: &SdkError<TransactWriteItemsError, R>) -> bool {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
            e.cancellation_reasons().iter().any(|r| {
                matches!(
                    r.code(),
                    Some("ConditionalCheckFailed" | "TransactionConflict")
                )
            })
        }
        _ => false,
    }
}

type Names = HashMap<String, String>;
type Values = HashMap<String, AttributeValue>;

/// `SET` every present field of the state, plus the next version, if the version is still expected.
fn primary_update(p: &PrimaryWrite) -> (String, String, Names, Values) {
    let mut u = UpdateBuilder::default();
    let state = &p.state;
    if let Some((number, user)) = ContactKey::parse(p.key.as_str()) {
        u.set_once("number", s(number.as_str()));
        u.set_once("user", s(user.key_part()));
    }
    if let Some(ph) = &state.phone {
        u.set("phone", s(ph.value.digits()))
            .set("phone_at", n(ph.at.secs()));
    }
    if let Some(r) = &state.phone_released {
        u.set("phone_released", s(r.value.digits()))
            .set("phone_released_at", n(r.at.secs()));
    }
    if let Some(name) = &state.profile_name {
        u.set("profile_name", s(&name.value))
            .set("profile_name_at", n(name.at.secs()));
    }
    if let Some(at) = state.last_inbound_at {
        u.set("last_inbound_at", n(at.secs()));
    }
    if let Some(end) = state.window_expires_at() {
        u.set("window_expires_at", n(end.secs()));
    }
    if let Some(r) = &state.referral {
        let fields = [
            ("source_type", &r.value.source_type),
            ("source_id", &r.value.source_id),
            ("source_url", &r.value.source_url),
            ("ctwa_clid", &r.value.ctwa_clid),
            ("headline", &r.value.headline),
        ];
        u.set(
            "referral",
            m(fields
                .into_iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), s(v))))),
        )
        .set("referral_at", n(r.at.secs()));
    }
    if let Some(opened) = state.entry_point_opened_at {
        u.set("entry_point_opened_at", n(opened.secs()));
    }
    if let Some(end) = state.entry_point_expires_at() {
        u.set("entry_point_expires_at", n(end.secs()));
    }
    if !state.preferences.is_empty() {
        u.set(
            "preferences",
            m(state.preferences.iter().map(|(c, p)| {
                (
                    c.as_str().to_owned(),
                    m([
                        ("consent".into(), s(p.consent.as_str())),
                        ("at".into(), n(p.at.secs())),
                        ("source".into(), s(p.source.as_str())),
                    ]),
                )
            })),
        );
    }
    if !state.opted_out_at.is_empty() {
        u.set(
            "opted_out_at",
            m(state
                .opted_out_at
                .iter()
                .map(|(c, at)| (c.as_str().to_owned(), n(at.secs())))),
        );
    }
    if !state.consents.is_empty() {
        u.set(
            "consents",
            m(state.consents.iter().map(|(c, r)| {
                let mut fields = vec![
                    ("at".to_owned(), n(r.at.secs())),
                    ("source".to_owned(), s(&r.value.source)),
                ];
                if let Some(e) = &r.value.evidence {
                    fields.push(("evidence".to_owned(), s(e)));
                }
                (c.as_str().to_owned(), m(fields))
            })),
        );
    }
    let cond = u.versioned(p.expected_version);
    let expr = u.expression();
    (expr, cond, u.names, u.values)
}

/// The whole alias item (replacing whatever state the identity held before it was folded).
fn alias_put(a: &AliasWrite) -> (Item, String, Names, Option<Values>) {
    let next = a.expected_version.map_or(1, |v| v + 1);
    let item: Item = HashMap::from([
        (KEY.to_owned(), s(a.key.as_str())),
        ("alias_of".into(), s(a.target.as_str())),
        ("version".into(), n(next as i64)),
    ]);
    // DynamoDB refuses names the condition does not use, so each case names only its own.
    let name =
        |placeholder: &str, attr: &str| HashMap::from([(placeholder.to_owned(), attr.to_owned())]);
    match a.expected_version {
        None => (
            item,
            "attribute_not_exists(#k)".into(),
            name("#k", KEY),
            None,
        ),
        Some(0) => (
            item,
            "attribute_not_exists(#v)".into(),
            name("#v", "version"),
            None,
        ),
        Some(v) => (
            item,
            "#v = :expected_version".into(),
            name("#v", "version"),
            Some(HashMap::from([(
                ":expected_version".to_owned(),
                n(v as i64),
            )])),
        ),
    }
}

/// Reads a stored item. Malformed attributes read as absent: the next write sets them again.
pub fn record_from_item(item: &Item) -> VersionedRecord {
    let version = attrs::version_of(item);
    // An alias whose target is not a key (edited by hand) reads as a person with no state: the next
    // write replaces it, instead of every read of this person failing on an invalid key.
    if let Some(target) = get_s(item, "alias_of").filter(|t| ContactKey::parse(t).is_some()) {
        return VersionedRecord {
            record: ContactRecord::Alias(ContactKey::from_stored(target.to_owned())),
            version,
        };
    }
    VersionedRecord {
        record: ContactRecord::Primary(state_from_item(item)),
        version,
    }
}

pub fn state_from_item(item: &Item) -> ContactState {
    let stamped_s = |value: &str, at: &str| -> Option<Stamped<String>> {
        Some(Stamped::new(
            UnixTime::from_secs(get_n(item, at)?),
            get_s(item, value)?.to_owned(),
        ))
    };
    let stamped_phone = |value: &str, at: &str| {
        stamped_s(value, at)
            .and_then(|st| Phone::parse(&st.value).ok().map(|p| Stamped::new(st.at, p)))
    };
    let phone = stamped_phone("phone", "phone_at");
    let phone_released = stamped_phone("phone_released", "phone_released_at");
    let referral = get_m(item, "referral").and_then(|r| {
        let field = |k: &str| get_s(r, k).map(str::to_owned);
        Some(Stamped::new(
            UnixTime::from_secs(get_n(item, "referral_at")?),
            Referral {
                source_type: field("source_type"),
                source_id: field("source_id"),
                source_url: field("source_url"),
                ctwa_clid: field("ctwa_clid"),
                headline: field("headline"),
            },
        ))
    });
    let mut preferences = BTreeMap::new();
    if let Some(prefs) = get_m(item, "preferences") {
        for (name, v) in prefs {
            let (Ok(category), Ok(p)) = (name.parse::<Category>(), v.as_m()) else {
                continue;
            };
            let parsed = (|| {
                Some(Preference {
                    at: UnixTime::from_secs(get_n(p, "at")?),
                    consent: Consent::parse(get_s(p, "consent")?)?,
                    source: PreferenceSource::parse(get_s(p, "source")?)?,
                })
            })();
            if let Some(pref) = parsed {
                preferences.insert(category, pref);
            }
        }
    }
    let mut opted_out_at = BTreeMap::new();
    if let Some(stored) = get_m(item, "opted_out_at") {
        for (name, v) in stored {
            if let (Ok(category), Some(at)) = (
                name.parse::<Category>(),
                v.as_n().ok().and_then(|n| n.parse::<i64>().ok()),
            ) {
                opted_out_at.insert(category, UnixTime::from_secs(at));
            }
        }
    }
    // Stored before `opted_out_at` existed: a standing opt-out is its own latest opt-out.
    for (category, p) in &preferences {
        if p.consent == Consent::OptedOut {
            let latest = opted_out_at.entry(*category).or_insert(p.at);
            *latest = (*latest).max(p.at);
        }
    }
    let mut consents = BTreeMap::new();
    if let Some(stored) = get_m(item, "consents") {
        for (name, v) in stored {
            let (Ok(category), Ok(r)) = (name.parse::<Category>(), v.as_m()) else {
                continue;
            };
            if let (Some(at), Some(source)) = (get_n(r, "at"), get_s(r, "source")) {
                let record = ConsentRecord {
                    source: source.to_owned(),
                    evidence: get_s(r, "evidence").map(str::to_owned),
                };
                consents.insert(category, Stamped::new(UnixTime::from_secs(at), record));
            }
        }
    }
    ContactState {
        opted_out_at,
        consents,
        phone,
        phone_released,
        profile_name: stamped_s("profile_name", "profile_name_at"),
        last_inbound_at: get_n(item, "last_inbound_at").map(UnixTime::from_secs),
        referral,
        entry_point_opened_at: get_n(item, "entry_point_opened_at").map(UnixTime::from_secs),
        preferences,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::identity::user_ref;

    #[test]
    fn a_state_survives_the_round_trip_through_attributes() {
        let mut state = ContactState::default();
        state.observe_phone(
            Phone::parse("+15551234567").unwrap(),
            UnixTime::from_secs(5),
        );
        state.observe_profile_name("Ana".into(), UnixTime::from_secs(5));
        state.observe_inbound(UnixTime::from_secs(10));
        state.observe_referral(
            Referral {
                source_type: Some("ad".into()),
                ctwa_clid: Some("clid".into()),
                ..Referral::default()
            },
            UnixTime::from_secs(10),
        );
        state.entry_point_opened_at = Some(UnixTime::from_secs(99));
        state.observe_preference(
            Category::Marketing,
            Preference {
                at: UnixTime::from_secs(7),
                consent: Consent::OptedOut,
                source: PreferenceSource::MetaError131050,
            },
        );
        let key = ContactKey::new(
            &crate::domain::ids::PhoneNumberId::parse("1").unwrap(),
            &user_ref(None, Some("US.x")).unwrap().primary(),
        );
        let (_, _, names, values) = primary_update(&PrimaryWrite {
            key,
            state: state.clone(),
            expected_version: None,
        });
        // Rebuild the item the update would produce.
        let mut item: Item = HashMap::new();
        for (placeholder, name) in &names {
            let value_key = placeholder.replacen('#', ":", 1);
            if let Some(v) = values.get(&value_key) {
                item.insert(name.clone(), v.clone());
            }
        }
        assert_eq!(state_from_item(&item), state);
        assert_eq!(get_n(&item, "window_expires_at"), Some(10 + 86_400));
    }
}
