//! The common delivery in one pass over the bytes.
//!
//! Reading level by level (the envelope lists its entries raw, an entry its changes, a change its
//! value…) scans each item's bytes once per level, five times before the item itself is read. Almost
//! every delivery is the same shape: `messages` or `user_preferences` changes, each level well
//! formed, for a number that is ours. This reads that shape in one pass, down to each item's raw
//! JSON, and plans the items exactly as the level-by-level reading does (the same `Builder`, in the
//! same order).
//!
//! It takes a delivery only when nothing above the items needs its own exact bytes: any level that
//! does not parse, another webhook field, a change without a valid `phone_number_id`, or one for a
//! number that is not ours (each kept raw at its level) makes it answer `None`, before anything is
//! planned, and the level-by-level reading takes the whole delivery. The level types here are the
//! same as there (`payload::ChangeValue`, the same lenient fields), nested instead of raw, so what
//! one pass accepts it reads as the other would; the mutation fuzzer (`tests/support/mutate.rs`, run by
//! `tests/hostile_input.rs` and `scripts/bench.sh fuzz`) fails on any payload whose two plans differ.

use serde::Deserialize;

use super::{Builder, InboundRules, Plan};
use crate::domain::ids::PhoneNumberId;
use crate::domain::time::UnixTime;
use crate::payload::{lenient_string, lenient_timestamp, ChangeValue};

#[derive(Deserialize)]
struct Delivery<'a> {
    #[serde(default, deserialize_with = "lenient_string")]
    object: Option<String>,
    #[serde(borrow)]
    entry: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(default, deserialize_with = "lenient_string")]
    id: Option<String>,
    // Unused here (messages carry none), but declared as the other reading declares it: a duplicate
    // `time` key fails that reading's entry, so it must fail this one too.
    #[serde(default, deserialize_with = "lenient_timestamp")]
    #[allow(dead_code)]
    time: Option<UnixTime>,
    #[serde(borrow)]
    changes: Vec<Change<'a>>,
}

#[derive(Deserialize)]
struct Change<'a> {
    #[serde(default, deserialize_with = "lenient_string")]
    field: Option<String>,
    #[serde(borrow)]
    value: Option<ChangeValue<'a>>,
}

/// The plan of a common delivery, or `None` for the level-by-level reading to take it.
pub(super) fn plan<'a>(body: &'a [u8], rules: &InboundRules) -> Option<Plan<'a>> {
    // The level-by-level reading refuses a body whose entries are not UTF-8 even where no field we
    // read is affected (a raw value must be text); reading from bytes, serde would skip such a string.
    let text = std::str::from_utf8(body).ok()?;
    let delivery: Delivery<'a> = serde_json::from_str(text).ok()?;
    if delivery.object.as_deref() != Some("whatsapp_business_account") {
        return None;
    }
    let mut b = Builder::new(rules);
    // Check every change before planning any: a bail-out must leave nothing half planned.
    let mut changes = Vec::new();
    for entry in &delivery.entry {
        for change in &entry.changes {
            let field = change.field.as_deref()?;
            if field != "messages" && field != "user_preferences" {
                return None;
            }
            let value = change.value.as_ref()?;
            let number = value
                .metadata
                .as_ref()
                .and_then(|m| m.phone_number_id.as_deref())
                .and_then(|id| PhoneNumberId::parse(id).ok())?;
            if !b.is_ours(&number) {
                return None;
            }
            changes.push((entry.id.as_deref(), value, number));
        }
    }
    b.plan.counts.entries = delivery.entry.len();
    b.plan.counts.changes = changes.len();
    for (waba, value, number) in changes {
        b.items(value, &number, waba);
    }
    Some(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> InboundRules {
        InboundRules::default()
    }

    const MESSAGES: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"106540352242922"},"contacts":[{"wa_id":"15551234567"}],"messages":[{"from":"15551234567","id":"wamid.A","timestamp":"10","type":"text","text":{"body":"hi"}}],"statuses":[{"id":"wamid.B","status":"sent","timestamp":"11","recipient_id":"15551234567"}]},"field":"messages"}]}]}"#;

    #[test]
    fn the_common_delivery_is_read_in_one_pass_and_planned_as_level_by_level() {
        let one = plan(MESSAGES.as_bytes(), &rules()).expect("taken by the one pass");
        assert_eq!(
            one,
            super::super::level_by_level(MESSAGES.as_bytes(), &rules())
        );
        assert_eq!((one.messages.len(), one.statuses.len()), (1, 1));
        assert_eq!((one.counts.entries, one.counts.changes), (1, 1));
    }

    #[test]
    fn what_needs_a_levels_own_bytes_is_left_to_the_level_by_level_reading() {
        let template = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","time":5,"changes":[{"value":{"event":"APPROVED","message_template_id":12},"field":"message_template_status_update"}]}]}"#;
        let no_number = MESSAGES.replace("106540352242922", "not-a-number");
        let bad_entry = MESSAGES.replace(r#""changes":["#, r#""changes":7,"x":["#);
        let other_object = MESSAGES.replace("whatsapp_business_account", "page");
        for body in [
            template,
            &no_number,
            &bad_entry,
            &other_object,
            "[]",
            "not json",
        ] {
            assert!(plan(body.as_bytes(), &rules()).is_none(), "{body}");
        }
        // Found by the fuzzer: a byte that is not UTF-8 in a field nobody reads. The level-by-level
        // reading keeps the whole body raw; the one pass must not plan it.
        let mut not_utf8 = MESSAGES.as_bytes().to_vec();
        let at = MESSAGES.find("\"whatsapp\"").unwrap() + 6;
        not_utf8[at] = 0xE1;
        assert!(plan(&not_utf8, &rules()).is_none());
        assert_eq!(
            super::super::plan(&not_utf8, &rules()),
            super::super::level_by_level(&not_utf8, &rules())
        );
        let theirs = InboundRules {
            numbers: Some(vec![PhoneNumberId::parse("999").unwrap()]),
            ..InboundRules::default()
        };
        assert!(
            plan(MESSAGES.as_bytes(), &theirs).is_none(),
            "another team's number is kept raw"
        );
    }
}
