//! From a verified body to the writes it calls for, without I/O.
//!
//! Every `entry × change × item` is visited (Meta batches up to 1000 updates per POST; DESIGN rule 3).
//! What we understand becomes a message record, a status observation or a contact delta; what we do not
//! (another webhook field, `value.errors`, a part that does not parse) becomes a raw event, so nothing
//! authentic is ever dropped (rule 5). Updates for the same message or the same person are folded here,
//! so one delivery costs at most one write per message, per status'd message and per contact.
//!
//! This module walks the envelope and dispatches on `field`; each kind of item has its own file:
//! `messages`, `statuses`, `preferences`, and `fields` for everything kept raw.

mod fields;
mod index;
mod messages;
mod one_pass;
mod preferences;
mod statuses;
mod templates;

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::value::RawValue;

use index::FoldIndex;

use crate::domain::contact::ContactState;
use crate::domain::identity::IdentityMove;
use crate::domain::ids::{Bsuid, Phone, PhoneNumberId, UserId, UserRef, Wamid};
pub use crate::domain::inbound::{EventKind, InboundMessage, Level, RawEvent};
use crate::domain::keywords::KeywordRules;
use crate::domain::status::StatusLog;
use crate::domain::template::TemplateUpdate;
use crate::domain::time::UnixTime;
use crate::payload::{Change, ChangeValue, Entry, Envelope, MessageItem, StatusItem, ValueContact};

/// Status observations for one of our messages, folded across the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate<'a> {
    pub wamid: Wamid,
    pub number: PhoneNumberId,
    /// The recipient is read from the statuses themselves (see `StatusLog::summary`).
    pub log: StatusLog<'a>,
}

/// What a delivery tells about one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactUpdate {
    pub number: PhoneNumberId,
    pub user: UserRef,
    pub delta: ContactState,
}

/// Counts for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanCounts {
    pub entries: usize,
    pub changes: usize,
    pub messages: usize,
    pub statuses: usize,
    pub preferences: usize,
    pub unknown_message_types: usize,
    pub unknown_statuses: usize,
    pub other_fields: usize,
    pub unparsed: usize,
    /// Messages with no usable sender or timestamp: stored, but they move no window.
    pub unattributed: usize,
    /// Items that made the planner panic (a bug): kept raw, counted in `unparsed` too.
    pub crashed: usize,
    /// Changes for a business number that is not ours (`WAHOOK_INBOUND_NUMBER_FILTER`): kept raw.
    pub other_numbers: usize,
    /// Template webhooks that became registry updates, and those that named too little to (raw only).
    pub template_updates: usize,
    pub template_unusable: usize,
}

/// The writes one delivery calls for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan<'a> {
    pub messages: Vec<InboundMessage<'a>>,
    pub statuses: Vec<StatusUpdate<'a>>,
    pub contacts: Vec<ContactUpdate>,
    /// Number and BSUID changes: applied after `contacts`.
    pub moves: Vec<IdentityMove>,
    pub events: Vec<RawEvent<'a>>,
    /// What the template webhooks say, for the registry (each is in `events` too).
    pub templates: Vec<TemplateUpdate>,
    pub counts: PlanCounts,
}

/// The items of one `messages` or `user_preferences` value, each as its exact text; a message or
/// status the one pass has read already comes with its reading.
struct Items<'a> {
    contacts: Vec<ValueContact<'a>>,
    messages: Vec<(&'a str, Option<MessageItem<'a>>)>,
    statuses: Vec<(&'a str, Option<StatusItem<'a>>)>,
    user_preferences: Vec<&'a str>,
    errors: Vec<&'a str>,
}

impl<'a> From<ChangeValue<'a>> for Items<'a> {
    fn from(value: ChangeValue<'a>) -> Self {
        let texts = |raw: Vec<&'a RawValue>| raw.into_iter().map(RawValue::get).collect();
        Items {
            contacts: value.contacts,
            messages: value
                .messages
                .into_iter()
                .map(|m| (m.get(), None))
                .collect(),
            statuses: value
                .statuses
                .into_iter()
                .map(|s| (s.get(), None))
                .collect(),
            user_preferences: texts(value.user_preferences),
            errors: texts(value.errors),
        }
    }
}

/// What planning applies to a delivery.
#[derive(Debug, Clone, Default)]
pub struct InboundRules {
    pub keywords: KeywordRules,
    /// `Some`: the business numbers that are ours. A change for any other `phone_number_id` (another
    /// team's number on the same app, say) is kept raw as `other_number` and moves no window, contact
    /// or ledger entry. `None`: every number is ours.
    pub numbers: Option<Vec<PhoneNumberId>>,
}

impl From<KeywordRules> for InboundRules {
    fn from(keywords: KeywordRules) -> Self {
        Self {
            keywords,
            numbers: None,
        }
    }
}

/// Plans the writes for a verified webhook body.
///
/// The common delivery (only `messages`/`user_preferences` changes for our numbers, every level well
/// formed) is read in one pass; anything else, level by level, keeping what does not parse raw. Both
/// readings give the same plan for the same bytes (`one_pass` says why; the mutation fuzzer checks it).
pub fn plan<'a>(body: &'a [u8], rules: &InboundRules) -> Plan<'a> {
    // The scanner reads items before their planner's guard: if it ever trips on a bug, the
    // level-by-level reading (which guards every item) takes the delivery instead of losing it.
    let one_pass = std::panic::catch_unwind(|| one_pass::plan(body, rules)).unwrap_or_else(|_| {
        tracing::error!(
            event = "one_pass_tripped_a_bug",
            "the webhook's one-pass reader panicked on a delivery; it was read level by level instead. Please report it"
        );
        None
    });
    one_pass.unwrap_or_else(|| level_by_level(body, rules))
}

/// The one pass alone, without the net `plan` puts under it: for the fuzzer, which must see a panic
/// in it as the crash it is (`plan` would quietly read the delivery level by level instead).
#[doc(hidden)]
pub fn one_pass_unguarded<'a>(body: &'a [u8], rules: &InboundRules) -> Option<Plan<'a>> {
    one_pass::plan(body, rules)
}

/// The reading that keeps every level's exact bytes, for what the one pass does not take. Public so
/// the fuzzer can check that `plan` always agrees with it.
pub fn level_by_level<'a>(body: &'a [u8], rules: &InboundRules) -> Plan<'a> {
    let mut b = Builder::new(rules);
    b.payload(body);
    b.finish()
}

struct Builder<'r, 'a> {
    rules: &'r KeywordRules,
    numbers: Option<&'r [PhoneNumberId]>,
    plan: Plan<'a>,
    // Keyed by the ids as the body spells them (borrowed unless escaped), so a lookup copies nothing.
    message_index: FoldIndex<Cow<'a, str>, ()>,
    status_index: FoldIndex<Cow<'a, str>, usize>,
    contact_index: FoldIndex<(PhoneNumberId, UserId), usize>,
}

impl<'r, 'a> Builder<'r, 'a> {
    fn new(rules: &'r InboundRules) -> Self {
        Builder {
            rules: &rules.keywords,
            numbers: rules.numbers.as_deref(),
            plan: Plan::default(),
            message_index: FoldIndex::new(),
            status_index: FoldIndex::new(),
            contact_index: FoldIndex::new(),
        }
    }

    fn unparsed(
        &mut self,
        level: Level,
        raw: &'a [u8],
        reason: String,
        number: Option<&PhoneNumberId>,
        waba: Option<&str>,
    ) {
        self.plan.counts.unparsed += 1;
        self.plan.events.push(RawEvent {
            kind: EventKind::Unparsed(level),
            number: number.cloned(),
            waba_id: waba.map(str::to_owned),
            reason: Some(reason),
            at: None,
            raw,
        });
    }

    /// Parses one item; on failure keeps it raw as `unparsed_<level>` and returns `None`.
    fn parse_item<T: serde::Deserialize<'a>>(
        &mut self,
        level: Level,
        text: &'a str,
        number: &PhoneNumberId,
        waba: Option<&str>,
    ) -> Option<T> {
        match serde_json::from_str(text) {
            Ok(item) => Some(item),
            Err(e) => {
                self.unparsed(level, text.as_bytes(), e.to_string(), Some(number), waba);
                None
            }
        }
    }

    fn payload(&mut self, body: &'a [u8]) {
        let envelope: Envelope<'a> = match serde_json::from_slice(body) {
            Ok(e) => e,
            Err(e) => {
                return self.unparsed(
                    Level::Payload,
                    body,
                    format!("not a webhook envelope: {e}"),
                    None,
                    None,
                )
            }
        };
        if envelope.object.as_deref() != Some("whatsapp_business_account") {
            let reason = format!(
                "object is {:?}, expected \"whatsapp_business_account\"",
                envelope.object
            );
            return self.unparsed(Level::Payload, body, reason, None, None);
        }
        for entry in envelope.entry {
            self.entry(entry);
        }
    }

    fn entry(&mut self, raw: &'a RawValue) {
        self.plan.counts.entries += 1;
        let entry: Entry<'a> = match serde_json::from_str(raw.get()) {
            Ok(e) => e,
            Err(e) => {
                return self.unparsed(
                    Level::Entry,
                    raw.get().as_bytes(),
                    e.to_string(),
                    None,
                    None,
                )
            }
        };
        for change in entry.changes {
            self.change(change, entry.id.as_deref(), entry.time);
        }
    }

    fn change(&mut self, raw: &'a RawValue, waba: Option<&str>, time: Option<UnixTime>) {
        self.plan.counts.changes += 1;
        let bytes = raw.get().as_bytes();
        let change: Change<'a> = match serde_json::from_str(raw.get()) {
            Ok(c) => c,
            Err(e) => return self.unparsed(Level::Change, bytes, e.to_string(), None, waba),
        };
        // One arm per webhook field we act on; a new field is a new arm and a new file.
        match change.field.as_deref().unwrap_or("") {
            "messages" | "user_preferences" => self.value(change.value, bytes, waba),
            f if templates::TEMPLATE_FIELDS.contains(&f) => {
                self.template_field(f, change.value, bytes, waba, time)
            }
            "account_update" => self.account_field(change.value, bytes, waba, time),
            other => self.other_field(other, bytes, waba, time),
        }
    }

    /// A `messages` (or `user_preferences`) value: each item to its own handler.
    fn value(&mut self, value_raw: Option<&'a RawValue>, bytes: &'a [u8], waba: Option<&str>) {
        let Some(value_raw) = value_raw else {
            return self.unparsed(Level::Change, bytes, "no value".into(), None, waba);
        };
        let value: ChangeValue<'a> = match serde_json::from_str(value_raw.get()) {
            Ok(v) => v,
            Err(e) => return self.unparsed(Level::Change, bytes, e.to_string(), None, waba),
        };
        let number = value
            .metadata
            .as_ref()
            .and_then(|m| m.phone_number_id.as_deref())
            .and_then(|id| PhoneNumberId::parse(id).ok());
        let Some(number) = number else {
            let reason =
                "no valid metadata.phone_number_id: cannot tell which business number it is for";
            return self.unparsed(Level::Change, bytes, reason.into(), None, waba);
        };
        if !self.is_ours(&number) {
            return self.other_number(bytes, &number, waba);
        }
        self.items(Items::from(value), &number, waba);
    }

    /// Whether changes for this business number are acted on (`WAHOOK_INBOUND_NUMBER_FILTER`).
    fn is_ours(&self, number: &PhoneNumberId) -> bool {
        self.numbers.is_none_or(|ours| ours.contains(number))
    }

    /// The items of a `messages` (or `user_preferences`) value whose business number is known and ours.
    fn items(&mut self, items: Items<'a>, number: &PhoneNumberId, waba: Option<&str>) {
        let contacts = &items.contacts;
        // Each item in its own guard: one that trips a bug is kept raw, the rest are planned.
        for (m, scanned) in items.messages {
            self.guarded(Level::Message, m, number, waba, |b| {
                b.message(m, scanned, number, contacts, waba)
            });
        }
        for (s, scanned) in items.statuses {
            self.guarded(Level::Status, s, number, waba, |b| {
                b.status(s, scanned, number, contacts, waba)
            });
        }
        for p in items.user_preferences {
            self.guarded(Level::Preference, p, number, waba, |b| {
                b.preference(p, number, contacts, waba)
            });
        }
        for e in items.errors {
            self.value_error(e, number, waba);
        }
    }

    /// Plans one item, catching a panic (DESIGN rule 18): the parsers are panic-free by construction and
    /// fuzzed, so this is the net for a bug nobody has found yet. The item is kept raw as
    /// `unparsed_<level>` with the panic's message, and counted; what it had already added to the
    /// plan stays (it is authentic data).
    fn guarded(
        &mut self,
        level: Level,
        raw: &'a str,
        number: &PhoneNumberId,
        waba: Option<&str>,
        plan_item: impl FnOnce(&mut Self),
    ) {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plan_item(self)));
        if let Err(panic) = caught {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            self.plan.counts.crashed += 1;
            // The panic's text may quote the input (a phone, message text): it goes with the raw item
            // into the events table, never into the log.
            tracing::error!(event = "item_tripped_a_bug", level = level.as_str(), "an item made the planner panic; kept raw as unparsed_{} with the panic's message, the rest of the batch is stored. Please report it with the stored event", level.as_str());
            let reason = format!("wahook tripped on this item (a bug: {what}); it is kept raw");
            self.unparsed(level, raw.as_bytes(), reason, Some(number), waba);
        }
    }

    /// Folds a delta into the update for this person, so each contact is written once per delivery.
    fn contact(&mut self, number: &PhoneNumberId, user: &UserRef, delta: ContactState) {
        let key = (number.clone(), user.primary());
        match self.contact_index.get(&key) {
            Some(i) => {
                let update = &mut self.plan.contacts[i];
                update.user.absorb(user);
                update.delta.join(&delta);
            }
            None => {
                self.contact_index.insert(key, self.plan.contacts.len());
                self.plan.contacts.push(ContactUpdate {
                    number: number.clone(),
                    user: user.clone(),
                    delta,
                });
            }
        }
    }

    /// A phone-only update in the same delivery as a phone+BSUID update of the same phone is the same
    /// person: fold it in rather than race it.
    fn finish(mut self) -> Plan<'a> {
        if self.plan.contacts.len() < 2 {
            return self.plan;
        }
        let mut by_phone: HashMap<(PhoneNumberId, Phone), usize> = HashMap::new();
        for (i, u) in self.plan.contacts.iter().enumerate() {
            if let (Some(_), Some(phone)) = (u.user.bsuid(), u.user.phone()) {
                by_phone.insert((u.number.clone(), phone.clone()), i);
            }
        }
        let mut absorbed = vec![false; self.plan.contacts.len()];
        let mut folds = Vec::new();
        for (i, u) in self.plan.contacts.iter().enumerate() {
            if u.user.bsuid().is_some() {
                continue;
            }
            let Some(phone) = u.user.phone() else {
                continue;
            };
            if let Some(&target) = by_phone.get(&(u.number.clone(), phone.clone())) {
                folds.push((i, target));
                absorbed[i] = true;
            }
        }
        for (from, into) in folds {
            let delta = self.plan.contacts[from].delta.clone();
            self.plan.contacts[into].delta.join(&delta);
        }
        let mut keep = absorbed.iter().map(|a| !a);
        self.plan.contacts.retain(|_| keep.next().unwrap_or(true));
        self.plan
    }
}

/// Who an item is about: its own phone/BSUID fields, completed from `value.contacts[]` when a contact
/// there shares one of them (or is the only contact and the item names nobody).
fn identify<'c>(
    phone: Option<&str>,
    bsuid: Option<&str>,
    contacts: &'c [ValueContact<'_>],
) -> (Option<UserRef>, Option<&'c ValueContact<'c>>) {
    let phone = phone.and_then(|p| Phone::parse(p).ok());
    let bsuid = bsuid.and_then(|b| Bsuid::parse(b).ok());
    // Compared as spelled, without parsing each contact's ids into copies (a BSUID parses to itself).
    let contact = contacts.iter().find(|c| {
        let same_phone = phone
            .as_ref()
            .is_some_and(|p| c.wa_id.as_deref().is_some_and(|w| p.is_spelled(w)));
        let same_bsuid = bsuid
            .as_ref()
            .is_some_and(|b| c.user_id.as_deref() == Some(b.as_str()));
        same_phone || same_bsuid
    });
    let contact = contact.or_else(|| {
        (phone.is_none() && bsuid.is_none() && contacts.len() == 1).then(|| &contacts[0])
    });
    let phone = phone.or_else(|| {
        contact
            .and_then(|c| c.wa_id.as_deref())
            .and_then(|w| Phone::parse(w).ok())
    });
    let bsuid = bsuid.or_else(|| {
        contact
            .and_then(|c| c.user_id.as_deref())
            .and_then(|u| Bsuid::parse(u).ok())
    });
    (UserRef::new(phone, bsuid), contact)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::preferences::{Category, Consent, PreferenceSource};
    use crate::domain::status::DeliveryStatus;

    const NUMBER: &str = "106540352242922";
    /// A message id that makes the planner panic, in test builds only: stands in for a bug nobody
    /// has found yet.
    pub(super) const PANIC_FOR_TEST: &str = "wamid.PLANTED-PANIC";

    #[test]
    fn an_item_that_trips_a_bug_is_kept_raw_and_the_rest_of_the_batch_is_planned() {
        let bad = text_message(PANIC_FOR_TEST, "15551234567", 60, "x");
        let good = text_message("wamid.GOOD", "15557654321", 61, "Hola");
        let status = r#"{"id":"wamid.OUT","status":"delivered","timestamp":"62","recipient_id":"15557654321"}"#;
        let body = wrap(
            &format!(r#""messages":[{bad},{good}],"statuses":[{status}]"#),
            "messages",
        );
        let p = plan_of(&body);
        assert_eq!(p.counts.crashed, 1);
        assert_eq!(p.messages.len(), 1, "the good message is planned");
        assert_eq!(p.messages[0].wamid.as_str(), "wamid.GOOD");
        assert_eq!(p.statuses.len(), 1, "and the status");
        let kept = p
            .events
            .iter()
            .find(|e| e.kind == "unparsed_message")
            .expect("the bad item is kept raw");
        assert!(kept
            .reason
            .as_deref()
            .unwrap()
            .contains("planted by a test"));
        assert_eq!(kept.raw, bad.as_bytes());
    }

    fn wrap(value_inner: &str, field: &str) -> String {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"{NUMBER}"}},{value_inner}}},"field":"{field}"}}]}}]}}"#
        )
    }

    fn plan_of(body: &str) -> Plan<'_> {
        plan(body.as_bytes(), &InboundRules::default())
    }

    fn text_message(id: &str, from: &str, ts: i64, body: &str) -> String {
        format!(
            r#"{{"from":"{from}","id":"{id}","timestamp":"{ts}","type":"text","text":{{"body":"{body}"}}}}"#
        )
    }

    #[test]
    fn template_webhooks_become_registry_updates_and_stay_raw_events() {
        use crate::domain::preferences::Category;
        use crate::domain::template::TemplateChange;
        let entry = |field: &str, value: &str| {
            format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","time":1795401000,"changes":[{{"value":{value},"field":"{field}"}}]}}]}}"#
            )
        };
        let names =
            r#""message_template_name":"order_shipped","message_template_language":"es_MX""#;
        let status = entry(
            "message_template_status_update",
            &format!(
                r#"{{"event":"paused",{names},"message_template_category":"UTILITY","other_info":{{"title":"FIRST_PAUSE"}}}}"#
            ),
        );
        let p = plan_of(&status);
        assert_eq!(p.events.len(), 1, "kept raw");
        assert_eq!(p.templates.len(), 1);
        let u = &p.templates[0];
        assert_eq!(
            (u.key.item_key().as_str(), u.at.secs()),
            ("102290129340398#order_shipped#es_MX", 1_795_401_000)
        );
        assert_eq!(
            u.change,
            TemplateChange::Status {
                status: "PAUSED".into(),
                category: Some(Category::Utility)
            }
        );

        let impending = entry(
            "template_category_update",
            &format!(
                r#"{{{names},"correct_category":"MARKETING","new_category":"UTILITY","category_update_timestamp":1795500000}}"#
            ),
        );
        assert_eq!(
            plan_of(&impending).templates[0].change,
            TemplateChange::ImpendingCategory(Category::Marketing)
        );
        let made = entry(
            "template_category_update",
            &format!(r#"{{{names},"previous_category":"UTILITY","new_category":"MARKETING"}}"#),
        );
        assert_eq!(
            plan_of(&made).templates[0].change,
            TemplateChange::Category(Category::Marketing)
        );
        let quality = entry(
            "message_template_quality_update",
            &format!(
                r#"{{{names},"previous_quality_score":"GREEN","new_quality_score":"yellow"}}"#
            ),
        );
        assert_eq!(
            plan_of(&quality).templates[0].change,
            TemplateChange::Quality("YELLOW".into())
        );

        // No name, or no entry time to order it by: raw only.
        let nameless = entry("message_template_status_update", r#"{"event":"DISABLED"}"#);
        let p = plan_of(&nameless);
        assert!(p.templates.is_empty());
        assert_eq!((p.events.len(), p.counts.template_unusable), (1, 1));
        let timeless = status.replace(r#""time":1795401000,"#, "");
        assert!(plan_of(&timeless).templates.is_empty());
    }

    #[test]
    fn a_change_for_a_number_that_is_not_ours_is_kept_raw_and_moves_nothing() {
        let body = wrap(
            &format!(
                r#""contacts":[{{"wa_id":"15551234567"}}],"messages":[{}],"statuses":[{{"id":"wamid.O","status":"read","timestamp":"51","recipient_id":"15551234567"}}]"#,
                text_message("wamid.X", "15551234567", 1_795_000_000, "STOP")
            ),
            "messages",
        );
        let mine = |numbers: Vec<&str>| InboundRules {
            keywords: KeywordRules::default(),
            numbers: Some(
                numbers
                    .into_iter()
                    .map(|n| PhoneNumberId::parse(n).unwrap())
                    .collect(),
            ),
        };

        let p = plan(body.as_bytes(), &mine(vec!["106540352242999"]));
        assert!(p.messages.is_empty() && p.statuses.is_empty() && p.contacts.is_empty());
        assert_eq!(p.counts.other_numbers, 1);
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].kind, "other_number");
        assert_eq!(p.events[0].number.as_ref().unwrap().as_str(), NUMBER);
        let change = &body.as_bytes()[body.find("{\"value\"").unwrap()..body.len() - 4];
        assert_eq!(p.events[0].raw, change, "the whole change, as Meta sent it");

        let p = plan(body.as_bytes(), &mine(vec!["106540352242999", NUMBER]));
        assert_eq!(
            (p.messages.len(), p.statuses.len(), p.contacts.len()),
            (1, 1, 1)
        );
        assert_eq!(p.counts.other_numbers, 0);
    }

    #[test]
    fn a_timestamp_beyond_any_real_time_moves_no_window() {
        // As a number, i64::MAX would make every retention sum overflow and freeze the window open.
        let body = wrap(
            r#""messages":[{"from":"15551234567","id":"wamid.T","timestamp":9223372036854775807,"type":"text","text":{"body":"hi"}}]"#,
            "messages",
        );
        let p = plan_of(&body);
        assert_eq!(p.messages.len(), 1, "kept");
        assert_eq!(p.messages[0].at, None);
        assert!(p.contacts.is_empty(), "no window, no keyword");
        assert_eq!(p.counts.unattributed, 1);
    }

    #[test]
    fn empty_or_short_user_ids_are_ignored_not_a_crash() {
        for bad in ["", "U", "US", "é"] {
            let body = wrap(
                &format!(
                    r#""contacts":[{{"wa_id":"15551234567","user_id":"{bad}"}}],"messages":[{{"from":"15551234567","from_user_id":"{bad}","id":"wamid.S","timestamp":"50","type":"text","text":{{"body":"hi"}}}}],"statuses":[{{"id":"wamid.O","status":"sent","timestamp":"51","recipient_id":"15551234567","recipient_user_id":"{bad}"}}],"user_preferences":[{{"wa_id":"15551234567","user_id":"{bad}","category":"marketing_messages","value":"stop","timestamp":"52"}}]"#
                ),
                "messages",
            );
            let p = plan_of(&body);
            assert_eq!((p.messages.len(), p.statuses.len()), (1, 1), "{bad:?}");
            let user = p.messages[0].user.as_ref().expect("known by phone");
            assert!(user.bsuid().is_none() && user.phone().is_some(), "{bad:?}");
            assert_eq!(p.counts.preferences, 1, "{bad:?}");
        }
    }

    #[test]
    fn a_text_message_opens_the_window_from_its_own_timestamp() {
        let body = wrap(
            &format!(
                r#""contacts":[{{"profile":{{"name":"Ana"}},"wa_id":"5215512345678"}}],"messages":[{}]"#,
                text_message("wamid.1", "5215512345678", 1_795_000_000, "Hola")
            ),
            "messages",
        );
        let p = plan_of(&body);
        assert_eq!(p.messages.len(), 1);
        assert_eq!(p.messages[0].kind, "text");
        assert_eq!(p.contacts.len(), 1);
        let delta = &p.contacts[0].delta;
        assert_eq!(
            delta.window_expires_at(),
            Some(UnixTime::from_secs(1_795_000_000 + 86_400))
        );
        assert_eq!(delta.profile_name.as_ref().unwrap().value, "Ana");
        assert!(delta.preferences.is_empty(), "Hola is not a keyword");
    }

    #[test]
    fn every_entry_change_and_item_of_a_batch_is_planned() {
        let m = |i: usize| {
            text_message(
                &format!("wamid.{i}"),
                &format!("155512340{i:02}"),
                100 + i as i64,
                "hi",
            )
        };
        let change = |items: &str| {
            format!(
                r#"{{"value":{{"metadata":{{"phone_number_id":"{NUMBER}"}},"messages":[{items}]}},"field":"messages"}}"#
            )
        };
        let body = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{},{}]}},{{"id":"2","changes":[{}]}}]}}"#,
            change(&format!("{},{}", m(1), m(2))),
            change(&m(3)),
            change(&format!("{},{}", m(4), m(5)))
        );
        let p = plan_of(&body);
        assert_eq!((p.counts.entries, p.counts.changes), (2, 3));
        assert_eq!(p.messages.len(), 5);
        assert_eq!(p.contacts.len(), 5);
    }

    #[test]
    fn statuses_of_one_message_fold_into_one_update() {
        let s = |st: &str, ts: i64| {
            format!(
                r#"{{"id":"wamid.OUT","status":"{st}","timestamp":"{ts}","recipient_id":"15551234567"}}"#
            )
        };
        let body = wrap(
            &format!(
                r#""statuses":[{},{},{},{}]"#,
                s("sent", 10),
                s("delivered", 20),
                s("read", 30),
                s("delivered", 20)
            ),
            "messages",
        );
        let p = plan_of(&body);
        assert_eq!(p.counts.statuses, 4);
        assert_eq!(p.statuses.len(), 1);
        assert_eq!(p.statuses[0].log.current().unwrap().0, DeliveryStatus::Read);
        assert!(
            p.contacts.is_empty(),
            "an ordinary status says nothing about the contact"
        );
    }

    #[test]
    fn a_failed_131050_status_opts_the_recipient_out_of_marketing() {
        let body = wrap(
            r#""statuses":[{"id":"wamid.OUT","status":"failed","timestamp":"50","recipient_id":"15551234567","errors":[{"code":131050,"title":"Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business"}]}]"#,
            "messages",
        );
        let p = plan_of(&body);
        let pref = p.contacts[0].delta.preference(Category::Marketing).unwrap();
        assert_eq!(
            (pref.consent, pref.source),
            (Consent::OptedOut, PreferenceSource::MetaError131050)
        );
        assert_eq!(pref.at, UnixTime::from_secs(50));
    }

    #[test]
    fn user_preferences_stop_and_resume_are_planned_and_kept() {
        let body = wrap(
            r#""contacts":[{"wa_id":"15551234567","user_id":"US.abc"}],"user_preferences":[{"wa_id":"15551234567","detail":"User requested to stop marketing messages","category":"marketing_messages","value":"stop","timestamp":"60"}]"#,
            "user_preferences",
        );
        let p = plan_of(&body);
        assert_eq!(p.counts.preferences, 1);
        let u = &p.contacts[0];
        assert!(u.user.bsuid().is_some(), "the BSUID comes from contacts[]");
        assert_eq!(
            u.delta.preference(Category::Marketing).unwrap().consent,
            Consent::OptedOut
        );
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].kind, "user_preferences");
    }

    #[test]
    fn keywords_count_on_buttons_and_list_rows_and_menu_words_do_not() {
        let button = r#"{"from":"15550000001","id":"wamid.K1","timestamp":"80","type":"button","button":{"text":"STOP","payload":"menu-stop"}}"#;
        let row = r#"{"from":"15550000002","id":"wamid.K2","timestamp":"80","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"r1","title":"Unsubscribe"}}}"#;
        let cancel = r#"{"from":"15550000003","id":"wamid.K3","timestamp":"80","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"c","title":"Cancelar"}}}"#;
        let back = text_message("wamid.K4", "15550000004", 80, "Voltar");
        let start = r#"{"from":"15550000005","id":"wamid.K5","timestamp":"80","type":"button","button":{"text":"Start","payload":"quiz-start"}}"#;
        let body = wrap(
            &format!(r#""messages":[{button},{row},{cancel},{back},{start}]"#),
            "messages",
        );
        let p = plan_of(&body);
        let marketing = |i: usize| {
            p.contacts[i]
                .delta
                .preference(Category::Marketing)
                .map(|p| p.consent)
        };
        assert_eq!(marketing(0), Some(Consent::OptedOut), "a STOP button");
        assert_eq!(marketing(1), Some(Consent::OptedOut), "an Unsubscribe row");
        assert_eq!(marketing(2), None, "Cancelar answers a prompt");
        assert_eq!(marketing(3), None, "Voltar is a menu word");
        assert_eq!(
            marketing(4),
            None,
            "a tapped Start is a menu's, not a re-subscription"
        );
    }

    #[test]
    fn stop_keyword_and_stop_promotions_button_opt_out() {
        let stop = text_message("wamid.S", "15551234567", 70, "STOP");
        let button = r#"{"from":"15557654321","id":"wamid.B","timestamp":"80","type":"button","button":{"text":"Stop promotions","payload":"Stop promotions"}}"#;
        let body = wrap(&format!(r#""messages":[{stop},{button}]"#), "messages");
        let p = plan_of(&body);
        let keyword = &p.contacts[0].delta;
        assert_eq!(
            keyword.preference(Category::Marketing).unwrap().consent,
            Consent::OptedOut
        );
        assert!(
            keyword.preference(Category::Utility).is_none(),
            "a keyword applies to marketing by default: transaction alerts keep coming"
        );
        assert!(keyword.preference(Category::Authentication).is_none());
        let promo = &p.contacts[1].delta;
        assert_eq!(
            promo.preference(Category::Marketing).unwrap().source,
            PreferenceSource::StopPromotionsButton
        );
        assert!(promo.preference(Category::Utility).is_none());
    }

    #[test]
    fn a_referral_is_recorded_for_the_free_entry_point_window() {
        let msg = r#"{"from":"15551234567","id":"wamid.R","timestamp":"90","type":"text","text":{"body":"Is this still available?"},"referral":{"source_url":"https:\/\/fb.me\/x","source_id":"120200","source_type":"ad","headline":"Sale","ctwa_clid":"ARAkL"}}"#;
        let body = wrap(&format!(r#""messages":[{msg}]"#), "messages");
        let p = plan_of(&body);
        let r = p.contacts[0].delta.referral.as_ref().unwrap();
        assert_eq!(r.at, UnixTime::from_secs(90));
        assert_eq!(r.value.source_type.as_deref(), Some("ad"));
        assert_eq!(r.value.ctwa_clid.as_deref(), Some("ARAkL"));
    }

    #[test]
    fn a_username_user_without_phone_is_identified_by_bsuid() {
        let msg = r#"{"from_user_id":"BR.1502abc","id":"wamid.U","timestamp":"95","type":"text","text":{"body":"oi"}}"#;
        let body = wrap(
            &format!(
                r#""contacts":[{{"profile":{{"name":"Bia"}},"user_id":"BR.1502abc"}}],"messages":[{msg}]"#
            ),
            "messages",
        );
        let p = plan_of(&body);
        let user = p.messages[0].user.as_ref().unwrap();
        assert!(user.phone().is_none());
        assert_eq!(user.bsuid().unwrap().as_str(), "BR.1502abc");
        assert_eq!(
            p.contacts[0].delta.profile_name.as_ref().unwrap().value,
            "Bia"
        );
    }

    #[test]
    fn unknown_types_statuses_and_fields_are_kept_and_counted() {
        let msg = r#"{"from":"15551234567","id":"wamid.P","timestamp":"1","type":"poll_creation","poll_creation":{"q":"?"}}"#;
        let st =
            r#"{"id":"wamid.O","status":"deleted","timestamp":"2","recipient_id":"15551234567"}"#;
        let body = wrap(
            &format!(r#""messages":[{msg}],"statuses":[{st}]"#),
            "messages",
        );
        let p = plan_of(&body);
        assert_eq!(p.messages[0].kind, "poll_creation");
        assert_eq!(
            (p.counts.unknown_message_types, p.counts.unknown_statuses),
            (1, 1)
        );
        assert_eq!(p.statuses.len(), 1);

        let other = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","time":5,"changes":[{"value":{"event":"APPROVED","message_template_id":12},"field":"message_template_status_update"}]}]}"#;
        let p = plan_of(other);
        assert_eq!(p.events[0].kind, "field:message_template_status_update");
        assert_eq!(p.counts.other_fields, 1);
        assert!(!p.events[0].is_unparsed());
    }

    #[test]
    fn what_does_not_parse_is_kept_raw_at_the_level_that_failed() {
        let p = plan_of("this is not json");
        assert_eq!(p.events[0].kind, "unparsed_payload");
        assert_eq!(p.events[0].raw, b"this is not json");

        let p = plan_of(r#"{"object":"page","entry":[]}"#);
        assert!(p.events[0].reason.as_deref().unwrap().contains("\"page\""));

        let good = text_message("wamid.G", "15551234567", 5, "ok");
        let body = wrap(
            &format!(r#""messages":[{good},{{"from":"15551234567","type":"text"}},"junk"]"#),
            "messages",
        );
        let p = plan_of(&body);
        assert_eq!(p.messages.len(), 1, "the good message is not lost");
        assert_eq!(p.counts.unparsed, 2);
        assert!(p.events.iter().all(|e| e.kind == "unparsed_message"));

        let no_number = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messages":[]},"field":"messages"}]}]}"#;
        let p = plan_of(no_number);
        assert_eq!(p.events[0].kind, "unparsed_change");
        assert!(p.events[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("phone_number_id"));
    }

    #[test]
    fn value_errors_are_kept_as_events() {
        let body = wrap(
            r#""errors":[{"code":130429,"title":"Rate limit hit"}]"#,
            "messages",
        );
        let p = plan_of(&body);
        assert_eq!(p.events[0].kind, "messages_errors");
    }

    #[test]
    fn a_message_repeated_in_one_delivery_is_planned_once() {
        let m = text_message("wamid.D", "15551234567", 5, "hi");
        let body = wrap(&format!(r#""messages":[{m},{m}]"#), "messages");
        let p = plan_of(&body);
        assert_eq!(p.messages.len(), 1);
    }

    #[test]
    fn a_phone_only_update_joins_the_bsuid_update_of_the_same_phone() {
        let with_bsuid = r#"{"from":"15551234567","from_user_id":"US.abc","id":"wamid.1","timestamp":"10","type":"text","text":{"body":"a"}}"#;
        let phone_only = r#"{"from":"15551234567","id":"wamid.2","timestamp":"20","type":"text","text":{"body":"b"}}"#;
        let body = wrap(
            &format!(r#""messages":[{phone_only},{with_bsuid}]"#),
            "messages",
        );
        let p = plan_of(&body);
        assert_eq!(p.contacts.len(), 1);
        assert_eq!(
            p.contacts[0].delta.last_inbound_at,
            Some(UnixTime::from_secs(20))
        );
    }

    #[test]
    fn a_message_without_timestamp_is_stored_but_moves_no_window() {
        let m = r#"{"from":"15551234567","id":"wamid.T","type":"text","text":{"body":"hi"}}"#;
        let body = wrap(&format!(r#""messages":[{m}]"#), "messages");
        let p = plan_of(&body);
        assert_eq!(p.messages.len(), 1);
        assert!(p.contacts.is_empty());
        assert_eq!(p.counts.unattributed, 1);
    }

    #[test]
    fn system_messages_open_no_window() {
        let m = r#"{"from":"15551234567","id":"wamid.Y","timestamp":"5","type":"system","system":{"body":"changed","type":"customer_changed_number","new_wa_id":"15559999999"}}"#;
        let body = wrap(&format!(r#""messages":[{m}]"#), "messages");
        let p = plan_of(&body);
        assert_eq!(p.contacts[0].delta.last_inbound_at, None);
    }

    #[test]
    fn the_marketing_messages_terms_signed_event_records_the_accounts_onboarding() {
        use crate::domain::template::TemplateChange;
        let body = |event: &str| {
            format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"id":"880011223344","time":1795401000,"changes":[{{"value":{{"event":"{event}","waba_info":{{"waba_id":"102290129340398","owner_business_id":"880011223344"}}}},"field":"account_update"}}]}}]}}"#
            )
        };
        let signed = body("MM_LITE_TERMS_SIGNED");
        let p = plan_of(&signed);
        assert_eq!(p.events.len(), 1, "kept raw");
        assert_eq!(p.templates.len(), 1);
        let u = &p.templates[0];
        assert_eq!(
            u.item_key(),
            "account#102290129340398",
            "the account named in waba_info, not the entry's portfolio id"
        );
        assert_eq!(
            u.change,
            TemplateChange::MarketingOnboarding("MM_LITE_TERMS_SIGNED".into())
        );
        // Any other account event is raw only.
        let other = body("VERIFIED_ACCOUNT");
        let p = plan_of(&other);
        assert_eq!((p.events.len(), p.templates.len()), (1, 0));
    }

    #[test]
    fn a_components_update_clears_the_templates_listed_shape() {
        use crate::domain::template::TemplateChange;
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","time":1795401000,"changes":[{"value":{"message_template_id":12,"message_template_name":"order_shipped","message_template_language":"es_MX","message_template_element":"Tu pedido {{1}} va en camino."},"field":"message_template_components_update"}]}]}"#;
        let p = plan_of(body);
        assert_eq!(p.events.len(), 1, "kept raw");
        assert_eq!(p.templates.len(), 1);
        assert_eq!(p.templates[0].change, TemplateChange::Shape(None));
        assert_eq!(
            p.templates[0].key.item_key(),
            "102290129340398#order_shipped#es_MX"
        );
    }
}
