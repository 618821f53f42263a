//! Which contact item holds a person (DESIGN rule 8), free of I/O: the records the contacts table
//! holds (a person's state, or an alias pointing at it), and [`resolve`], which says what to read
//! next or what to write, given what has been read. `store::contacts` performs the steps; the
//! merge itself is [`ContactState::join`].

use std::collections::HashMap;

use super::contact::{ContactState, Stamped};
use super::ids::{Bsuid, ContactKey, Phone, PhoneNumberId, UserId, UserRef};
use super::time::UnixTime;

/// What the contacts table holds under one key: a person's state, or a pointer from another of their
/// identities to the key that holds it.
// A handful live at a time, briefly; boxing the state would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactRecord {
    Primary(ContactState),
    Alias(ContactKey),
}

/// A record as read, with the version a conditional write must find to succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedRecord {
    pub record: ContactRecord,
    pub version: u64,
}

/// What has been read so far: `None` means "read, and absent".
pub type ContactSnapshot = HashMap<ContactKey, Option<VersionedRecord>>;

/// A write to one contact item. `expected_version: None` means the item must not exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryWrite {
    pub key: ContactKey,
    pub state: ContactState,
    pub expected_version: Option<u64>,
}

/// Points `key` (an identity) at `target` (the key holding the person's state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasWrite {
    pub key: ContactKey,
    pub target: ContactKey,
    pub expected_version: Option<u64>,
}

/// The writes that bring the stored contact up to date with a delta. All parts are written together
/// (one transaction) when there is more than one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactWrite {
    pub primary: Option<PrimaryWrite>,
    pub aliases: Vec<AliasWrite>,
}

impl ContactWrite {
    pub fn is_empty(&self) -> bool {
        self.primary.is_none() && self.aliases.is_empty()
    }
}

/// The next step of resolving a person to their contact.
#[allow(clippy::large_enum_variant)] // returned and consumed at once
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveStep {
    /// Read these keys (consistently) and call [`resolve`] again.
    Read(Vec<ContactKey>),
    /// Perform this (possibly empty) write; on a version conflict, re-read and resolve again.
    Write(ContactWrite),
}

/// Decides where a person's state lives and what to write, from what has been read.
///
/// The keying rule (documented in `docs/data-model.md`):
/// - a contact is stored under `{number}#{BSUID}` when the person's BSUID is known, else
///   `{number}#{canonical phone digits}` (one spelling per number: [`super::numbering`]);
/// - when a payload shows both, the phone key becomes an alias pointing at the BSUID key; if the phone
///   key held state of its own (met by phone before BSUIDs existed, or before we saw both together),
///   that state is folded into the BSUID record in the same transaction;
/// - a phone-only payload follows the alias, so the person stays one contact;
/// - state stored under another spelling of the phone (before keys were canonical) is folded in the
///   same way, and a phone known only under such a spelling leads where it leads;
/// - if a phone later shows up with a different BSUID (a recycled number), the alias moves to the
///   person seen with it most recently.
pub fn resolve(
    number: &PhoneNumberId,
    user: &UserRef,
    delta: &ContactState,
    snapshot: &ContactSnapshot,
) -> ResolveStep {
    resolve_with(number, user, &[], delta, snapshot)
}

/// [`resolve`], plus `learned`: keys of other spellings of the person's number that Meta showed are
/// theirs (a send answer's `contacts[].input` when its `wa_id` differs). Each is made to lead to the
/// person, whoever it led to before: Meta's answer is the latest word on who a number is.
pub fn resolve_with(
    number: &PhoneNumberId,
    user: &UserRef,
    learned: &[ContactKey],
    delta: &ContactState,
    snapshot: &ContactSnapshot,
) -> ResolveStep {
    let phone_key = user
        .phone()
        .map(|p| ContactKey::new(number, &UserId::Phone(p.clone())));
    let bsuid_key = user
        .bsuid()
        .map(|b| ContactKey::new(number, &UserId::Bsuid(b.clone())));
    let mut learned: Vec<ContactKey> = learned
        .iter()
        .filter(|k| Some(*k) != phone_key.as_ref() && Some(*k) != bsuid_key.as_ref())
        .cloned()
        .collect();
    learned.sort();
    learned.dedup();
    let legacy: Vec<ContactKey> = user
        .phone()
        .map(|p| ContactKey::other_forms(number, p))
        .unwrap_or_default()
        .into_iter()
        .filter(|k| !learned.contains(k))
        .collect();

    let unread: Vec<ContactKey> = bsuid_key
        .iter()
        .chain(phone_key.iter())
        .chain(legacy.iter())
        .chain(learned.iter())
        .filter(|k| !snapshot.contains_key(*k))
        .cloned()
        .collect();
    if !unread.is_empty() {
        return ResolveStep::Read(unread);
    }
    let record = |key: &ContactKey| snapshot.get(key).cloned().flatten();

    // The key that holds the state: the BSUID's (or the phone's) own key, or where its alias points;
    // a phone known only under an older spelling leads where that spelling leads.
    let entry_key = bsuid_key
        .clone()
        .or_else(|| phone_key.clone())
        .expect("a UserRef holds at least one identity");
    let start = match record(&entry_key) {
        Some(_) => entry_key.clone(),
        None if bsuid_key.is_none() => legacy
            .iter()
            .find(|k| {
                matches!(
                    record(k),
                    Some(VersionedRecord {
                        record: ContactRecord::Alias(_),
                        ..
                    })
                )
            })
            .cloned()
            .unwrap_or_else(|| entry_key.clone()),
        None => entry_key.clone(),
    };
    let home = match follow(&start, snapshot) {
        Ok(home) => home,
        Err(unread) => return ResolveStep::Read(vec![unread]),
    };
    if !snapshot.contains_key(&home) {
        return ResolveStep::Read(vec![home]);
    }
    // An alias whose target is gone (its record was deleted by a number change): the person lives at
    // the key we came in by, never at the dangling target (an old number someone else may get).
    let home = if record(&home).is_none() && home != entry_key {
        entry_key.clone()
    } else {
        home
    };
    let (home_state, home_version) = match record(&home) {
        Some(VersionedRecord {
            record: ContactRecord::Primary(state),
            version,
        }) => (state, Some(version)),
        // A chain longer than we follow, or a loop: write a fresh primary at its end.
        Some(VersionedRecord {
            record: ContactRecord::Alias(_),
            version,
        }) => (ContactState::default(), Some(version)),
        None => (ContactState::default(), None),
    };

    let mut merged = home_state.clone();
    let mut aliases = Vec::new();
    let alias_to_home = |key: &ContactKey, expected_version| AliasWrite {
        key: key.clone(),
        target: home.clone(),
        expected_version,
    };

    // An entry key that leads here through another alias (an old BSUID after a move) now points here
    // directly, so no chain grows.
    if bsuid_key.as_ref() == Some(&entry_key) && entry_key != home {
        if let Some(VersionedRecord {
            record: ContactRecord::Alias(target),
            version,
        }) = record(&entry_key)
        {
            if target != home {
                aliases.push(alias_to_home(&entry_key, Some(version)));
            }
        }
    }

    // An identity key that should lead here: absent → point it here; holding state of its own →
    // fold the state in and point it here; pointing at someone else → the caller decides.
    let mut lead_here =
        |key: &ContactKey, merged: &mut ContactState| -> Option<(ContactKey, u64)> {
            match record(key) {
                None => aliases.push(alias_to_home(key, None)),
                Some(VersionedRecord {
                    record: ContactRecord::Primary(state),
                    version,
                }) => {
                    merged.join(&state);
                    aliases.push(alias_to_home(key, Some(version)));
                }
                Some(VersionedRecord {
                    record: ContactRecord::Alias(owner),
                    version,
                }) if owner != home => return Some((owner, version)),
                Some(_) => {} // already leads here
            }
            None
        };

    // The phone's own key (when it is not the home itself). If it leads to another person, it moves
    // only if we saw the phone with ours more recently (a recycled number).
    let mut contested = None;
    if let Some(phone_key) = phone_key.as_ref().filter(|k| **k != home) {
        if let Some((owner, version)) = lead_here(phone_key, &mut merged) {
            if !snapshot.contains_key(&owner) {
                return ResolveStep::Read(vec![owner]);
            }
            if phone_moves_to_us(user, delta, &home, &owner, snapshot) {
                contested = Some(alias_to_home(phone_key, Some(version)));
            }
        }
    }
    // Spellings Meta showed are this person's: they lead here, whoever they led to before.
    let mut moved = Vec::new();
    for key in learned.iter().filter(|k| **k != home) {
        if let Some((_, version)) = lead_here(key, &mut merged) {
            moved.push(alias_to_home(key, Some(version)));
        }
    }
    // Older spellings: state they hold is this person's; an alias they hold is left as it is.
    for key in legacy.iter().filter(|k| **k != home) {
        if let Some(VersionedRecord {
            record: ContactRecord::Primary(state),
            version,
        }) = record(key)
        {
            merged.join(&state);
            aliases.push(alias_to_home(key, Some(version)));
        }
    }
    aliases.extend(contested);
    aliases.extend(moved);

    merged.join(delta);
    // An alias must lead to a record, so a new home is created even when the delta adds nothing.
    // When a fold adds nothing either, the home already holds it: only the aliases are written.
    let must_create = home_version.is_none() && !aliases.is_empty();
    let primary = (merged != home_state || must_create).then(|| PrimaryWrite {
        key: home.clone(),
        state: merged,
        expected_version: home_version,
    });
    ResolveStep::Write(ContactWrite { primary, aliases })
}

/// How many aliases a lookup follows. A chain appears only when a person's identity changed twice
/// between writes (every resolve points the keys it touches straight at the person's record), so
/// this is generous.
pub const MAX_ALIAS_HOPS: usize = 4;

/// Follows aliases from `start` to the key holding the state (or the end of a chain longer than
/// [`MAX_ALIAS_HOPS`], or of a loop). `Err(key)`: read `key` first.
pub fn follow(start: &ContactKey, snapshot: &ContactSnapshot) -> Result<ContactKey, ContactKey> {
    let mut key = start.clone();
    for _ in 0..MAX_ALIAS_HOPS {
        match snapshot.get(&key) {
            None => return Err(key),
            Some(Some(VersionedRecord {
                record: ContactRecord::Alias(next),
                ..
            })) if *next != key && next != start => key = next.clone(),
            Some(_) => return Ok(key),
        }
    }
    // The end of a chain longer than we follow: still read it, so callers see what it holds.
    if snapshot.contains_key(&key) {
        Ok(key)
    } else {
        Err(key)
    }
}

/// The phone alias points at another person: move it only if we saw the phone with our person later
/// (ties broken by key, so every order of deliveries ends the same way).
fn phone_moves_to_us(
    user: &UserRef,
    delta: &ContactState,
    home: &ContactKey,
    owner: &ContactKey,
    snapshot: &ContactSnapshot,
) -> bool {
    let Some(phone) = user.phone() else {
        return false;
    };
    let ours = delta
        .phone
        .as_ref()
        .filter(|s| s.value.same_number(phone))
        .map(|s| s.at);
    let theirs = match snapshot.get(owner).cloned().flatten() {
        Some(VersionedRecord {
            record: ContactRecord::Primary(state),
            ..
        }) => state
            .phone
            .filter(|s| s.value.same_number(phone))
            .map(|s| s.at),
        _ => None,
    };
    match (ours, theirs) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(o), Some(t)) => (o, home) > (t, owner),
    }
}

/// A person's identity changed: a `system` message `user_changed_number` (the new number in `wa_id`;
/// older payloads: `customer_changed_number` / `new_wa_id`) or `user_changed_user_id` (a new BSUID).
/// Their contact moves with them: opt-outs, consents and the window follow the person, and the old
/// number (which the carrier may give to someone else) stops leading to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityMove {
    pub number: PhoneNumberId,
    pub from: UserRef,
    pub to: UserRef,
    pub at: UnixTime,
}

/// A write a move makes besides merging the carried state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retire {
    /// A number's key: deleted (if still at `version`), so the number leads to nobody.
    Delete { key: ContactKey, version: u64 },
    /// An old BSUID's key: it points at the person's new record.
    Point(AliasWrite),
    /// The person at `home` no longer has `phone` as of `at` (someone else took the number): sends to
    /// them stop putting it in `to`.
    ReleasePhone {
        home: ContactKey,
        phone: Phone,
        at: UnixTime,
    },
}

/// The next step of a move.
#[allow(clippy::large_enum_variant)] // returned and consumed at once
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveStep {
    Read(Vec<ContactKey>),
    /// Perform `before` (free the new number from a previous owner), merge `carried` into the new
    /// identity (as [`resolve`] does), then perform `retire`.
    Move {
        before: Vec<Retire>,
        carried: ContactState,
        retire: Vec<Retire>,
    },
    /// Nothing is known under the old identity, the move was done already, or the old identity is
    /// someone else's by now (a redelivery after the number was given to another person).
    Nothing,
}

/// Plans a move from what has been read.
///
/// Every sighting of a number at or after the change is the person who moved to it; every sighting
/// before it is whoever had the number then. That one rule decides both ends:
/// - the old number's record is carried only if its phone was last seen no later than the change
///   (else the number has a new owner since, and a redelivered notice must not take their state);
/// - a record the new number leads to is folded in only if it saw the number at or after the change;
///   one that saw it only before belongs to the previous owner, who is detached from it first.
pub fn plan_move(m: &IdentityMove, snapshot: &ContactSnapshot) -> MoveStep {
    let old_keys = ContactKey::all_for(&m.number, &m.from);
    let new_phone_key =
        m.to.phone()
            .map(|p| ContactKey::new(&m.number, &UserId::Phone(p.clone())));
    let unread: Vec<ContactKey> = old_keys
        .iter()
        .chain(new_phone_key.iter())
        .filter(|k| !snapshot.contains_key(*k))
        .cloned()
        .collect();
    if !unread.is_empty() {
        return MoveStep::Read(unread);
    }
    let record = |key: &ContactKey| snapshot.get(key).cloned().flatten();
    // The first old key that leads somewhere: the BSUID's, the phone's, then older spellings.
    let Some(start) = old_keys.iter().find(|k| record(k).is_some()) else {
        return MoveStep::Nothing;
    };
    let home = match follow(start, snapshot) {
        Ok(home) => home,
        Err(unread) => return MoveStep::Read(vec![unread]),
    };
    let Some(VersionedRecord {
        record: ContactRecord::Primary(state),
        version: home_version,
    }) = record(&home)
    else {
        return MoveStep::Nothing;
    };

    // The number the person left, when this move is a number change.
    let left_phone = m
        .from
        .phone()
        .filter(|old| m.to.phone().is_some_and(|new| !old.same_number(new)));
    let number_changed = left_phone.is_some();
    if let Some(old_phone) = left_phone {
        let still_theirs = state
            .phone
            .as_ref()
            .is_some_and(|p| p.value.same_number(old_phone) && p.at <= m.at);
        if !still_theirs {
            return MoveStep::Nothing;
        }
    }

    // The new number: a record it leads to that saw it only before the change is a previous owner's.
    let mut before = Vec::new();
    if let (true, Some(new_key), Some(new_phone)) = (number_changed, &new_phone_key, m.to.phone()) {
        if let Some(found) = record(new_key) {
            let other = match follow(new_key, snapshot) {
                Ok(other) => other,
                Err(unread) => return MoveStep::Read(vec![unread]),
            };
            let previous_owner = match record(&other) {
                Some(VersionedRecord {
                    record: ContactRecord::Primary(theirs),
                    ..
                }) => {
                    // No sighting of the number at all (a producer's opt-out, say): kept with the
                    // person, the cautious side, since it can only suppress.
                    other != home
                        && theirs
                            .phone
                            .as_ref()
                            .is_some_and(|p| !p.value.same_number(new_phone) || p.at < m.at)
                }
                _ => false,
            };
            if previous_owner {
                // Released first: a crash before the delete leaves the key to a redelivery, and
                // the previous owner already never gets the number in `to`.
                if &other != new_key {
                    before.push(Retire::ReleasePhone {
                        home: other,
                        phone: new_phone.clone(),
                        at: m.at,
                    });
                }
                before.push(Retire::Delete {
                    key: new_key.clone(),
                    version: found.version,
                });
            }
        }
    }

    let mut carried = state;
    carried.phone = None;
    carried.phone_released = None;
    if let Some(phone) = m.to.phone().or(m.from.phone()) {
        carried.observe_phone(phone.clone(), m.at);
    }
    if let Some(old_phone) = left_phone {
        // A redelivered notice re-observes the old phone at the same time: released, it is never
        // put in `to` again.
        carried.phone_released = Some(Stamped::new(m.at, old_phone.clone()));
    }

    let new_key = ContactKey::new(&m.number, &m.to.primary());
    let mut retire = Vec::new();
    if let Some(old_phone) = left_phone {
        let mut phone_keys = vec![ContactKey::new(
            &m.number,
            &UserId::Phone(old_phone.clone()),
        )];
        phone_keys.extend(ContactKey::other_forms(&m.number, old_phone));
        for key in phone_keys {
            match record(&key) {
                Some(VersionedRecord {
                    record: ContactRecord::Alias(_),
                    version,
                }) if follow(&key, snapshot).as_ref() == Ok(&home) => {
                    retire.push(Retire::Delete { key, version })
                }
                Some(VersionedRecord {
                    record: ContactRecord::Primary(_),
                    version,
                }) if key == home => retire.push(Retire::Delete { key, version }),
                _ => {}
            }
        }
    }
    // The old BSUID record (the person's home before): it leads to the new record, so a send to the
    // old BSUID reaches the person at their new number, never the old number's next owner.
    // An old BSUID that leads to the home (it is the home, or an alias left by an earlier move) now
    // leads to the new record, never to a key this move deletes.
    if let Some(old) = m.from.bsuid() {
        let old_key = ContactKey::new(&m.number, &UserId::Bsuid(old.clone()));
        let leads_home = follow(&old_key, snapshot).as_ref() == Ok(&home);
        if leads_home && old_key != new_key {
            let version = record(&old_key).map_or(home_version, |r| r.version);
            retire.push(Retire::Point(AliasWrite {
                key: old_key,
                target: new_key.clone(),
                expected_version: Some(version),
            }));
        }
    }
    if before.is_empty() && retire.is_empty() && home == new_key {
        return MoveStep::Nothing;
    }
    MoveStep::Move {
        before,
        carried,
        retire,
    }
}

/// Applies a write to an in-memory snapshot, exactly as the store applies it to DynamoDB. Used by the
/// property tests and by callers that keep resolving after a write.
pub fn apply_to_snapshot(snapshot: &mut ContactSnapshot, write: &ContactWrite) {
    if let Some(p) = &write.primary {
        let version = p.expected_version.map_or(1, |v| v + 1);
        snapshot.insert(
            p.key.clone(),
            Some(VersionedRecord {
                record: ContactRecord::Primary(p.state.clone()),
                version,
            }),
        );
    }
    for a in &write.aliases {
        let version = a.expected_version.map_or(1, |v| v + 1);
        snapshot.insert(
            a.key.clone(),
            Some(VersionedRecord {
                record: ContactRecord::Alias(a.target.clone()),
                version,
            }),
        );
    }
}

/// Convenience for building a phone-or-BSUID user in tests and tools.
pub fn user_ref(phone: Option<&str>, bsuid: Option<&str>) -> Option<UserRef> {
    UserRef::new(
        phone.and_then(|p| Phone::parse(p).ok()),
        bsuid.and_then(|b| Bsuid::parse(b).ok()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::preferences::{Category, Preference};
    use crate::domain::preferences::{Consent, PreferenceSource};
    use crate::domain::time::UnixTime;

    fn t(secs: i64) -> UnixTime {
        UnixTime::from_secs(secs)
    }

    fn number() -> PhoneNumberId {
        PhoneNumberId::parse("106540352242922").unwrap()
    }

    /// Stores `record` under `key` at `version`, as a read would have found it.
    fn put(snap: &mut ContactSnapshot, key: ContactKey, record: ContactRecord, version: u64) {
        snap.insert(key, Some(VersionedRecord { record, version }));
    }

    /// Resolves and writes until done, like the store does, against an in-memory snapshot.
    fn settle(
        snapshot: &mut ContactSnapshot,
        user: &UserRef,
        delta: &ContactState,
    ) -> ContactWrite {
        loop {
            match resolve(&number(), user, delta, snapshot) {
                ResolveStep::Read(keys) => {
                    for k in keys {
                        snapshot.entry(k).or_insert(None);
                    }
                }
                ResolveStep::Write(w) => {
                    apply_to_snapshot(snapshot, &w);
                    return w;
                }
            }
        }
    }

    fn inbound(at: i64, phone: Option<&str>) -> ContactState {
        let mut d = ContactState::default();
        d.observe_inbound(t(at));
        if let Some(p) = phone {
            d.observe_phone(Phone::parse(p).unwrap(), t(at));
        }
        d
    }

    fn primary_of(snapshot: &ContactSnapshot, key: &str) -> ContactState {
        match snapshot
            .get(&ContactKey::from_stored(key.into()))
            .cloned()
            .flatten()
        {
            Some(VersionedRecord {
                record: ContactRecord::Primary(s),
                ..
            }) => s,
            other => panic!("{key} is not a primary: {other:?}"),
        }
    }

    fn stored(snapshot: &ContactSnapshot) -> Vec<(ContactKey, ContactRecord)> {
        let mut v: Vec<_> = snapshot
            .iter()
            .filter_map(|(k, r)| r.as_ref().map(|r| (k.clone(), r.record.clone())))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn a_phone_only_contact_is_stored_under_its_phone() {
        let mut snap = ContactSnapshot::new();
        let user = user_ref(Some("15551234567"), None).unwrap();
        let w = settle(&mut snap, &user, &inbound(10, Some("15551234567")));
        assert_eq!(
            w.primary.unwrap().key.as_str(),
            "106540352242922#15551234567"
        );
        assert!(w.aliases.is_empty());
    }

    #[test]
    fn phone_and_bsuid_make_one_contact_under_the_bsuid_with_a_phone_alias() {
        let mut snap = ContactSnapshot::new();
        let both = user_ref(Some("15551234567"), Some("US.abc123")).unwrap();
        let w = settle(&mut snap, &both, &inbound(10, Some("15551234567")));
        assert_eq!(w.primary.unwrap().key.as_str(), "106540352242922#US.abc123");
        let alias = w.aliases.into_iter().next().unwrap();
        assert_eq!(alias.key.as_str(), "106540352242922#15551234567");
        assert_eq!(alias.target.as_str(), "106540352242922#US.abc123");

        // Later reached by phone only (a producer's send, an old payload): the same contact.
        let phone_only = user_ref(Some("15551234567"), None).unwrap();
        let w = settle(&mut snap, &phone_only, &inbound(50, None));
        assert_eq!(w.primary.unwrap().key.as_str(), "106540352242922#US.abc123");
        // And by BSUID only (the phone withheld): still the same contact.
        let bsuid_only = user_ref(None, Some("US.abc123")).unwrap();
        settle(&mut snap, &bsuid_only, &inbound(70, None));
        let state = primary_of(&snap, "106540352242922#US.abc123");
        assert_eq!(state.last_inbound_at, Some(t(70)));
        assert_eq!(stored(&snap).len(), 2);
    }

    #[test]
    fn a_contact_first_met_by_phone_is_folded_into_the_bsuid_record() {
        let mut snap = ContactSnapshot::new();
        let phone_only = user_ref(Some("15551234567"), None).unwrap();
        let mut opted_out = inbound(10, Some("15551234567"));
        opted_out.observe_preference(
            Category::Marketing,
            Preference {
                at: t(10),
                consent: Consent::OptedOut,
                source: PreferenceSource::Keyword,
            },
        );
        settle(&mut snap, &phone_only, &opted_out);

        let both = user_ref(Some("15551234567"), Some("US.abc123")).unwrap();
        let w = settle(&mut snap, &both, &inbound(20, Some("15551234567")));
        assert!(
            w.primary.is_some() && w.aliases.len() == 1,
            "one transaction: {w:?}"
        );
        let state = primary_of(&snap, "106540352242922#US.abc123");
        assert_eq!(
            state.preference(Category::Marketing).unwrap().consent,
            Consent::OptedOut,
            "the opt-out learnt by phone survives the fold"
        );
        assert_eq!(state.last_inbound_at, Some(t(20)));
    }

    #[test]
    fn meeting_both_identities_in_either_order_stores_the_same_thing() {
        let phone_only = user_ref(Some("15551234567"), None).unwrap();
        let both = user_ref(Some("15551234567"), Some("US.abc123")).unwrap();
        let bsuid_only = user_ref(None, Some("US.abc123")).unwrap();
        let events = [
            (phone_only, inbound(10, Some("15551234567"))),
            (both, inbound(20, Some("15551234567"))),
            (bsuid_only, inbound(30, None)),
        ];
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        let mut results = orders.iter().map(|order| {
            let mut snap = ContactSnapshot::new();
            for &i in order {
                settle(&mut snap, &events[i].0, &events[i].1);
            }
            stored(&snap)
        });
        let first = results.next().unwrap();
        for other in results {
            assert_eq!(first, other);
        }
    }

    #[test]
    fn a_recycled_phone_moves_to_the_person_seen_with_it_last() {
        let old_owner = user_ref(Some("15551234567"), Some("US.old")).unwrap();
        let new_owner = user_ref(Some("15551234567"), Some("US.new")).unwrap();
        for order in [[0, 1], [1, 0]] {
            let mut snap = ContactSnapshot::new();
            let events = [
                (&old_owner, inbound(10, Some("15551234567"))),
                (&new_owner, inbound(20, Some("15551234567"))),
            ];
            for i in order {
                settle(&mut snap, events[i].0, &events[i].1);
            }
            let alias = snap
                .get(&ContactKey::from_stored(
                    "106540352242922#15551234567".into(),
                ))
                .cloned()
                .flatten()
                .unwrap();
            assert_eq!(
                alias.record,
                ContactRecord::Alias(ContactKey::from_stored("106540352242922#US.new".into())),
                "order {order:?}"
            );
        }
    }

    #[test]
    fn every_spelling_of_a_mexican_or_brazilian_mobile_is_one_contact() {
        for (meta, producer) in [
            ("5215512345678", "+525512345678"),
            ("551188776655", "+55 11 98877-6655"),
        ] {
            let mut snap = ContactSnapshot::new();
            let mut opted_out = inbound(10, Some(meta));
            opted_out.observe_preference(
                Category::Marketing,
                Preference {
                    at: t(10),
                    consent: Consent::OptedOut,
                    source: PreferenceSource::Keyword,
                },
            );
            settle(&mut snap, &user_ref(Some(meta), None).unwrap(), &opted_out);
            let w = settle(
                &mut snap,
                &user_ref(Some(producer), None).unwrap(),
                &inbound(20, None),
            );
            let home = w.primary.unwrap().key;
            assert_eq!(stored(&snap).len(), 1, "{meta} / {producer}: {snap:?}");
            let state = primary_of(&snap, home.as_str());
            assert_eq!(
                state.preference(Category::Marketing).unwrap().consent,
                Consent::OptedOut
            );
            assert_eq!(state.last_inbound_at, Some(t(20)));
        }
    }

    #[test]
    fn state_kept_under_an_older_spelling_is_folded_into_the_canonical_key() {
        // Before keys were canonical, a 131050 opt-out from a send to `+52…` was kept under `52…`.
        let mut snap = ContactSnapshot::new();
        let legacy = ContactKey::from_stored("106540352242922#525512345678".into());
        let mut old =
            ContactState::opted_out(Category::Marketing, t(5), PreferenceSource::MetaError131050);
        old.observe_inbound(t(5));
        put(&mut snap, legacy.clone(), ContactRecord::Primary(old), 3);
        let w = settle(
            &mut snap,
            &user_ref(Some("5215512345678"), None).unwrap(),
            &inbound(20, Some("5215512345678")),
        );
        assert_eq!(
            w.primary.as_ref().unwrap().key.as_str(),
            "106540352242922#5215512345678"
        );
        assert_eq!(w.aliases.len(), 1);
        assert_eq!(w.aliases[0].key, legacy);
        assert_eq!(w.aliases[0].expected_version, Some(3));
        let state = primary_of(&snap, "106540352242922#5215512345678");
        assert_eq!(
            state.preference(Category::Marketing).unwrap().consent,
            Consent::OptedOut
        );
        // Done once: the next message writes only what it changes.
        let again = settle(
            &mut snap,
            &user_ref(Some("525512345678"), None).unwrap(),
            &inbound(20, None),
        );
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn an_older_spelling_is_found_when_the_input_itself_is_written_that_way() {
        // Stored before keys were canonical under Meta's old Brazilian form; the next message
        // comes from that same form.
        for (stored, input) in [
            ("551188776655", "551188776655"),
            ("525512345678", "+525512345678"),
        ] {
            let mut snap = ContactSnapshot::new();
            let legacy = ContactKey::from_stored(format!("106540352242922#{stored}"));
            let opted_out =
                ContactState::opted_out(Category::Marketing, t(5), PreferenceSource::Keyword);
            put(&mut snap, legacy, ContactRecord::Primary(opted_out), 1);
            let w = settle(
                &mut snap,
                &user_ref(Some(input), None).unwrap(),
                &inbound(20, None),
            );
            let home = w.primary.unwrap().key;
            assert_ne!(home.as_str(), format!("106540352242922#{stored}"));
            assert_eq!(
                primary_of(&snap, home.as_str())
                    .preference(Category::Marketing)
                    .unwrap()
                    .consent,
                Consent::OptedOut,
                "{input}"
            );
        }
    }

    #[test]
    fn a_phone_known_only_under_an_older_spelling_leads_to_its_bsuid_contact() {
        let mut snap = ContactSnapshot::new();
        // Stored before keys were canonical: Brazil's old form pointing at the person's BSUID record.
        let legacy = ContactKey::from_stored("106540352242922#551188776655".into());
        let home = ContactKey::from_stored("106540352242922#BR.abc".into());
        put(
            &mut snap,
            legacy.clone(),
            ContactRecord::Alias(home.clone()),
            1,
        );
        let known = inbound(5, Some("551188776655"));
        put(&mut snap, home.clone(), ContactRecord::Primary(known), 1);
        let w = settle(
            &mut snap,
            &user_ref(Some("5511988776655"), None).unwrap(),
            &inbound(20, None),
        );
        assert_eq!(w.primary.unwrap().key, home);
        assert_eq!(w.aliases.len(), 1);
        assert_eq!(
            w.aliases[0].key.as_str(),
            "106540352242922#5511988776655",
            "the canonical key now leads there too"
        );
    }

    #[test]
    fn a_spelling_meta_shows_is_learned_and_leads_to_the_person() {
        let mut snap = ContactSnapshot::new();
        let person = user_ref(Some("447700900123"), None).unwrap();
        settle(&mut snap, &person, &inbound(10, Some("447700900123")));
        // A send to a spelling no rule covers came back with Meta's wa_id: the producer's form is
        // learned as an alias.
        let producer_form = ContactKey::from_stored("106540352242922#4407700900123".into());
        loop {
            match resolve_with(
                &number(),
                &person,
                std::slice::from_ref(&producer_form),
                &ContactState::default(),
                &snap,
            ) {
                ResolveStep::Read(keys) => keys.into_iter().for_each(|k| {
                    snap.entry(k).or_insert(None);
                }),
                ResolveStep::Write(w) => {
                    assert!(w.primary.is_none(), "nothing new about the person: {w:?}");
                    assert_eq!(w.aliases.len(), 1);
                    apply_to_snapshot(&mut snap, &w);
                    break;
                }
            }
        }
        assert_eq!(
            snap.get(&producer_form).cloned().flatten().unwrap().record,
            ContactRecord::Alias(ContactKey::from_stored(
                "106540352242922#447700900123".into()
            ))
        );
    }

    /// Performs a move against the in-memory snapshot, as `Store::move_identity` does.
    fn perform_move(snapshot: &mut ContactSnapshot, m: &IdentityMove) -> bool {
        loop {
            match plan_move(m, snapshot) {
                MoveStep::Read(keys) => keys.into_iter().for_each(|k| {
                    snapshot.entry(k).or_insert(None);
                }),
                MoveStep::Nothing => return false,
                MoveStep::Move {
                    before,
                    carried,
                    retire,
                } => {
                    let perform = |snapshot: &mut ContactSnapshot, r: Retire| match r {
                        Retire::Delete { key, .. } => {
                            snapshot.insert(key, None);
                        }
                        Retire::Point(alias) => apply_to_snapshot(
                            snapshot,
                            &ContactWrite {
                                primary: None,
                                aliases: vec![alias],
                            },
                        ),
                        Retire::ReleasePhone { home, phone, at } => {
                            let (_, id) = ContactKey::parse(home.as_str()).unwrap();
                            settle(
                                snapshot,
                                &UserRef::of(&id),
                                &ContactState::phone_released(phone, at),
                            );
                        }
                    };
                    for r in before {
                        perform(snapshot, r);
                    }
                    settle(snapshot, &m.to, &carried);
                    for r in retire {
                        perform(snapshot, r);
                    }
                    return true;
                }
            }
        }
    }

    /// `from` changed to the phone `to` at `at`.
    fn to_new_number(from: UserRef, to: &str, at: i64) -> IdentityMove {
        IdentityMove {
            number: number(),
            from,
            to: user_ref(Some(to), None).unwrap(),
            at: t(at),
        }
    }

    fn opted_out_at(at: i64, phone: &str) -> ContactState {
        let mut d = inbound(at, Some(phone));
        d.join(&ContactState::opted_out(
            Category::Marketing,
            t(at),
            PreferenceSource::Keyword,
        ));
        d
    }

    fn lookup(snapshot: &ContactSnapshot, key: &str) -> Option<ContactState> {
        match snapshot
            .get(&ContactKey::from_stored(key.into()))
            .cloned()
            .flatten()?
            .record
        {
            ContactRecord::Primary(s) => Some(s),
            ContactRecord::Alias(target) => Some(primary_of(snapshot, target.as_str())),
        }
    }

    #[test]
    fn a_new_number_takes_the_opt_outs_with_it_and_the_old_one_leads_nowhere() {
        let mut snap = ContactSnapshot::new();
        let old = user_ref(Some("15551110000"), None).unwrap();
        settle(&mut snap, &old, &opted_out_at(10, "15551110000"));
        let m = to_new_number(old, "15552220000", 20);
        assert!(perform_move(&mut snap, &m));
        let moved = lookup(&snap, "106540352242922#15552220000").expect("the new number");
        assert_eq!(
            moved.preference(Category::Marketing).unwrap().consent,
            Consent::OptedOut
        );
        assert_eq!(moved.last_inbound_at, Some(t(10)), "the window follows");
        assert_eq!(moved.phone.unwrap().value.digits(), "15552220000");
        assert!(lookup(&snap, "106540352242922#15551110000").is_none());
        // Done once: a redelivery finds nothing left to move.
        assert!(!perform_move(&mut snap, &m));
    }

    #[test]
    fn a_bsuid_contact_changing_number_takes_its_state_and_drops_the_old_phone() {
        let mut snap = ContactSnapshot::new();
        let old = user_ref(Some("15551110000"), Some("US.old")).unwrap();
        settle(&mut snap, &old, &opted_out_at(10, "15551110000"));
        let m = to_new_number(old, "15552220000", 20);
        assert!(perform_move(&mut snap, &m));
        assert!(lookup(&snap, "106540352242922#15551110000").is_none());
        let moved = lookup(&snap, "106540352242922#15552220000").unwrap();
        assert_eq!(
            moved.preference(Category::Marketing).unwrap().consent,
            Consent::OptedOut
        );
        // The person's next message from the new number names their new BSUID: one contact.
        let next = user_ref(Some("15552220000"), Some("US.new")).unwrap();
        settle(&mut snap, &next, &inbound(30, Some("15552220000")));
        let state = lookup(&snap, "106540352242922#US.new").unwrap();
        assert_eq!(
            state.preference(Category::Marketing).unwrap().consent,
            Consent::OptedOut
        );
    }

    #[test]
    fn a_new_bsuid_takes_over_the_phone_and_the_old_bsuid_points_at_it() {
        let mut snap = ContactSnapshot::new();
        let old = user_ref(Some("15551110000"), Some("US.old")).unwrap();
        settle(&mut snap, &old, &opted_out_at(10, "15551110000"));
        let m = IdentityMove {
            number: number(),
            from: old,
            to: user_ref(Some("15551110000"), Some("US.new")).unwrap(),
            at: t(20),
        };
        assert!(perform_move(&mut snap, &m));
        for key in [
            "106540352242922#US.new",
            "106540352242922#US.old",
            "106540352242922#15551110000",
        ] {
            let state = lookup(&snap, key).unwrap_or_else(|| panic!("{key} leads nowhere"));
            assert_eq!(
                state.preference(Category::Marketing).unwrap().consent,
                Consent::OptedOut,
                "{key}"
            );
        }
        assert_eq!(
            snap.get(&ContactKey::from_stored(
                "106540352242922#15551110000".into()
            ))
            .cloned()
            .flatten()
            .unwrap()
            .record,
            ContactRecord::Alias(ContactKey::from_stored("106540352242922#US.new".into()))
        );
    }

    #[test]
    fn a_new_number_taken_from_a_previous_owner_does_not_merge_the_two_people() {
        let mut snap = ContactSnapshot::new();
        // B had 15552220000 (with their BSUID) until day 10; A moves to it on day 20.
        let b = user_ref(Some("15552220000"), Some("US.b")).unwrap();
        settle(&mut snap, &b, &inbound(10, Some("15552220000")));
        let a = user_ref(Some("15551110000"), None).unwrap();
        settle(&mut snap, &a, &opted_out_at(15, "15551110000"));
        let m = to_new_number(a, "15552220000", 20);
        assert!(perform_move(&mut snap, &m));
        let at_new = lookup(&snap, "106540352242922#15552220000").unwrap();
        assert_eq!(
            at_new.preference(Category::Marketing).unwrap().consent,
            Consent::OptedOut,
            "the number leads to A now"
        );
        let b_state = primary_of(&snap, "106540352242922#US.b");
        assert!(
            b_state.preference(Category::Marketing).is_none(),
            "B never got A's state"
        );
        assert_eq!(b_state.current_phone(), None, "B no longer has the number");
    }

    #[test]
    fn a_redelivered_number_change_after_the_number_was_reassigned_moves_nothing() {
        let mut snap = ContactSnapshot::new();
        let a_old = user_ref(Some("15551110000"), None).unwrap();
        settle(&mut snap, &a_old, &opted_out_at(10, "15551110000"));
        let m = to_new_number(a_old, "15552220000", 20);
        assert!(perform_move(&mut snap, &m));
        // Day 30: C gets 15551110000 and writes; then Meta redelivers A's notice of day 20, whose
        // own delta (A's phone seen at 20) lands on C's record first.
        let c = user_ref(Some("15551110000"), Some("US.c")).unwrap();
        settle(&mut snap, &c, &inbound(30, Some("15551110000")));
        settle(
            &mut snap,
            &user_ref(Some("15551110000"), None).unwrap(),
            &inbound(20, Some("15551110000")),
        );
        assert!(!perform_move(&mut snap, &m), "C's record stays C's");
        assert!(lookup(&snap, "106540352242922#15551110000").is_some());
        let at_new = lookup(&snap, "106540352242922#15552220000").unwrap();
        assert_eq!(
            at_new.last_inbound_at,
            Some(t(10)),
            "A's state is unchanged"
        );
    }

    #[test]
    fn a_send_to_an_old_bsuid_reaches_the_new_number_never_the_old_one() {
        let mut snap = ContactSnapshot::new();
        let old = user_ref(Some("15551110000"), Some("US.old")).unwrap();
        settle(&mut snap, &old, &opted_out_at(10, "15551110000"));
        let m = to_new_number(old, "15552220000", 20);
        assert!(perform_move(&mut snap, &m));
        let by_old_bsuid = lookup(&snap, "106540352242922#US.old").unwrap();
        assert_eq!(
            by_old_bsuid.current_phone().map(Phone::digits),
            Some("15552220000")
        );
    }

    #[test]
    fn two_number_changes_in_a_row_keep_the_old_bsuid_leading_to_the_person() {
        let mut snap = ContactSnapshot::new();
        let first = user_ref(Some("15551110000"), Some("US.x")).unwrap();
        settle(&mut snap, &first, &opted_out_at(10, "15551110000"));
        assert!(perform_move(
            &mut snap,
            &to_new_number(first, "15552220000", 20)
        ));
        let second = user_ref(Some("15552220000"), Some("US.x")).unwrap();
        assert!(perform_move(
            &mut snap,
            &to_new_number(second, "15553330000", 30)
        ));
        let by_bsuid = lookup(&snap, "106540352242922#US.x").expect("US.x leads somewhere");
        assert_eq!(
            by_bsuid.preference(Category::Marketing).unwrap().consent,
            Consent::OptedOut
        );
        assert_eq!(
            by_bsuid.current_phone().map(Phone::digits),
            Some("15553330000")
        );
        assert!(lookup(&snap, "106540352242922#15552220000").is_none());
        assert!(lookup(&snap, "106540352242922#15551110000").is_none());
    }

    #[test]
    fn a_redelivered_notice_never_makes_the_old_number_current_again() {
        let mut snap = ContactSnapshot::new();
        let old = user_ref(Some("15559990000"), Some("US.y")).unwrap();
        settle(&mut snap, &old, &opted_out_at(10, "15559990000"));
        let m = to_new_number(old.clone(), "15552220000", 20);
        assert!(perform_move(&mut snap, &m));
        // The redelivery's own delta: the old phone seen at the notice's time, with the BSUID.
        settle(&mut snap, &old, &inbound(20, Some("15559990000")));
        let state = lookup(&snap, "106540352242922#US.y").unwrap();
        assert_ne!(
            state.current_phone().map(Phone::digits),
            Some("15559990000"),
            "the old number is never put in `to`"
        );
    }

    #[test]
    fn an_alias_whose_target_was_deleted_is_not_followed_into_the_old_number() {
        let mut snap = ContactSnapshot::new();
        let x = ContactKey::from_stored("106540352242922#US.x".into());
        let gone = ContactKey::from_stored("106540352242922#15552220000".into());
        put(&mut snap, x.clone(), ContactRecord::Alias(gone.clone()), 2);
        snap.insert(gone.clone(), None);
        let user = user_ref(Some("15553330000"), Some("US.x")).unwrap();
        let w = settle(&mut snap, &user, &inbound(40, Some("15553330000")));
        assert_eq!(
            w.primary.unwrap().key,
            x,
            "the person lives at their BSUID again"
        );
        assert!(snap.get(&gone).cloned().flatten().is_none());
    }

    #[test]
    fn a_duplicate_delta_writes_nothing() {
        let mut snap = ContactSnapshot::new();
        let both = user_ref(Some("15551234567"), Some("US.abc123")).unwrap();
        let delta = inbound(10, Some("15551234567"));
        settle(&mut snap, &both, &delta);
        let again = settle(&mut snap, &both, &delta);
        assert!(again.is_empty(), "{again:?}");
    }
}
