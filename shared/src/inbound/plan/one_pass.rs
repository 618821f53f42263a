//! The common delivery in one pass over the bytes.
//!
//! Reading level by level (the envelope lists its entries raw, an entry its changes, a change its
//! value…) scans each item's bytes once per level, five times before the item itself is read. Almost
//! every delivery is the same shape: `messages` or `user_preferences` changes, each level well
//! formed, for a number that is ours. This reads that shape in one forward pass with
//! [`payload::scan`](crate::payload::scan): each item's exact text is where the pass found it, and a
//! status is read on the way (they come by the thousand); a message, preference or error is read by
//! its planner from its text, as the level-by-level reading does. Then it plans the items exactly as
//! that reading does (the same `Builder`, in the same order).
//!
//! It takes a delivery only when nothing above the items needs its own exact bytes and every level
//! is the plain shape: any level that the scanner leaves to serde (see `scan`), another webhook field,
//! a change without a valid `phone_number_id`, or one for a number that is not ours (each kept raw at
//! its level) makes it answer `None`, before anything is planned, and the level-by-level reading
//! takes the whole delivery. Where serde would reject a level (a repeated key, a missing `entry` or
//! `changes`, a list that is not one), so does this. The mutation fuzzer (`tests/support/mutate.rs`,
//! run by `tests/hostile_input.rs` and `scripts/bench.sh fuzz`) fails on any payload whose two plans
//! differ.

use super::{Builder, InboundRules, Items, Plan};
use crate::domain::ids::PhoneNumberId;
use crate::domain::inbound::Level;
use crate::payload::scan::{Scan, Scanner, Seen, Stop};
use crate::payload::{
    lenient_timestamp, scan_phone_number_id, scan_text, with_serde, MessageItem, StatusItem,
    ValueContact,
};

/// The plan of a common delivery, or `None` for the level-by-level reading to take it.
///
/// Items are planned as they are read, into a builder that is thrown away whole if the pass stops
/// anywhere (so nothing is ever half planned): a batch of statuses is never held as a list of
/// readings first.
pub(super) fn plan<'a>(body: &'a [u8], rules: &InboundRules) -> Option<Plan<'a>> {
    // The level-by-level reading refuses a body whose entries are not UTF-8 even where no field we
    // read is affected (a raw value must be text).
    let text = std::str::from_utf8(body).ok()?;
    let mut b = Builder::new(rules);
    read_delivery(text, &mut b).ok()?;
    Some(b.finish())
}

/// `{"object": "whatsapp_business_account", "entry": [...]}`.
fn read_delivery<'a>(text: &'a str, b: &mut Builder<'_, 'a>) -> Scan<()> {
    let mut s = Scanner::new(text);
    let (mut seen, mut object, mut entries, mut changes) = (Seen::default(), None, None, 0);
    s.object(|s, key| {
        match key {
            "object" => {
                seen.once(0)?;
                object = scan_text(s)?;
            }
            "entry" => {
                seen.once(1)?;
                let mut n = 0;
                s.array(|s| {
                    n += 1;
                    read_entry(s, b, &mut changes)
                })?;
                entries = Some(n);
            }
            _ => {
                s.skip()?;
            }
        }
        Ok(())
    })?;
    s.end()?;
    if object.as_deref() != Some("whatsapp_business_account") {
        return Err(Stop);
    }
    b.plan.counts.entries = entries.ok_or(Stop)?;
    b.plan.counts.changes = changes;
    Ok(())
}

/// One entry. Its `id` (the WABA) may come after its changes: what planning them kept raw is told
/// the WABA when the entry ends (the WABA goes nowhere else in a plan).
fn read_entry<'a>(s: &mut Scanner<'a>, b: &mut Builder<'_, 'a>, changes: &mut usize) -> Scan<()> {
    let (mut seen, mut waba, mut had_changes) = (Seen::default(), None, false);
    let first_event = b.plan.events.len();
    s.object(|s, key| {
        match key {
            "id" => {
                seen.once(0)?;
                waba = scan_text(s)?;
            }
            // Unused (messages carry none), but read as serde reads it: a repeat, or a value serde
            // cannot read as a scalar (a number out of range, a lone surrogate), fails the entry.
            "time" => {
                seen.once(1)?;
                with_serde(s.skip()?, |d| lenient_timestamp(d))?;
            }
            "changes" => {
                seen.once(2)?;
                had_changes = true;
                s.array(|s| {
                    *changes += 1;
                    read_change(s, b)
                })?;
            }
            _ => {
                s.skip()?;
            }
        }
        Ok(())
    })?;
    if !had_changes {
        return Err(Stop);
    }
    for event in &mut b.plan.events[first_event..] {
        event.waba_id = waba.as_deref().map(str::to_owned);
    }
    Ok(())
}

/// `{"field": "messages", "value": {...}}`. Meta puts `field` last: the value's items are planned
/// first, and a field other than `messages` or `user_preferences` stops the pass then.
fn read_change<'a>(s: &mut Scanner<'a>, b: &mut Builder<'_, 'a>) -> Scan<()> {
    let (mut seen, mut field, mut had_value) = (Seen::default(), None, false);
    s.object(|s, key| {
        match key {
            "field" => {
                seen.once(0)?;
                field = scan_text(s)?;
            }
            "value" => {
                seen.once(1)?;
                had_value = true;
                read_value(s, b)?;
            }
            _ => {
                s.skip()?;
            }
        }
        Ok(())
    })?;
    if !had_value || !matches!(field.as_deref(), Some("messages" | "user_preferences")) {
        return Err(Stop);
    }
    Ok(())
}

/// A change's `value`. Messages and statuses that come after the business number (Meta's order:
/// metadata, contacts, then the items) are planned as they are read, as long as that keeps the
/// level-by-level reading's order (messages, statuses, preferences, errors); everything else is kept
/// and planned when the value ends, in that order.
fn read_value<'a>(s: &mut Scanner<'a>, b: &mut Builder<'_, 'a>) -> Scan<()> {
    let mut seen = Seen::default();
    let mut number: Option<PhoneNumberId> = None;
    // What was planned as it was read: nothing read later may need to come before it.
    let (mut streamed_messages, mut streamed_statuses) = (false, false);
    let mut items = Items {
        contacts: Vec::new(),
        messages: Vec::new(),
        statuses: Vec::new(),
        user_preferences: Vec::new(),
        errors: Vec::new(),
    };
    s.object(|s, key| {
        match key {
            "metadata" => {
                seen.once(0)?;
                let id = scan_phone_number_id(s)?.ok_or(Stop)?;
                let parsed = PhoneNumberId::parse(&id).map_err(|_| Stop)?;
                // Another team's number is kept raw by the level-by-level reading.
                if !b.is_ours(&parsed) {
                    return Err(Stop);
                }
                number = Some(parsed);
            }
            "contacts" => {
                seen.once(1)?;
                // Items planned already would have been planned without them.
                if streamed_messages || streamed_statuses {
                    return Err(Stop);
                }
                items.contacts = ValueContact::scan_list(s)?;
            }
            "messages" => {
                seen.once(2)?;
                // Messages are planned before statuses.
                if streamed_statuses {
                    return Err(Stop);
                }
                match &number {
                    Some(number) => {
                        streamed_messages = true;
                        let contacts = &items.contacts;
                        plan_each(
                            s,
                            b,
                            Level::Message,
                            number,
                            MessageItem::scan,
                            |b, m, read| b.message(m, read, number, contacts, None),
                        )?;
                    }
                    None => items.messages = read_list(s, MessageItem::scan)?,
                }
            }
            "statuses" => {
                seen.once(3)?;
                match &number {
                    // Messages (field 2) not read, or planned already: nothing to plan before these.
                    Some(number) if !seen.has(2) || streamed_messages => {
                        streamed_statuses = true;
                        let contacts = &items.contacts;
                        plan_each(
                            s,
                            b,
                            Level::Status,
                            number,
                            StatusItem::scan,
                            |b, st, read| b.status(st, read, number, contacts, None),
                        )?;
                    }
                    _ => items.statuses = read_list(s, StatusItem::scan)?,
                }
            }
            "errors" => {
                seen.once(4)?;
                items.errors = item_texts(s)?;
            }
            "user_preferences" => {
                seen.once(5)?;
                items.user_preferences = item_texts(s)?;
            }
            _ => {
                s.skip()?;
            }
        }
        Ok(())
    })?;
    let number = number.ok_or(Stop)?;
    b.items(items, &number, None);
    Ok(())
}

/// A list of items, each as its text (`null` is none); anything but a list fails the level, as in
/// serde's reading.
fn item_texts<'a>(s: &mut Scanner<'a>) -> Scan<Vec<&'a str>> {
    let mut texts = Vec::new();
    s.list(|s| s.skip().map(|t| texts.push(t)))?;
    Ok(texts)
}

/// One item where it lies, with its exact text: read by the scanner, or (if the scanner leaves it
/// to serde) skipped for its text, to be read by its planner.
fn next_item<'a, T>(
    s: &mut Scanner<'a>,
    scan: fn(&mut Scanner<'a>) -> Scan<T>,
) -> Scan<(&'a str, Option<T>)> {
    s.peek();
    let start = s.pos();
    match scan(s) {
        Ok(item) => Ok((s.text_since(start), Some(item))),
        Err(Stop) => {
            s.rewind(start);
            Ok((s.skip()?, None))
        }
    }
}

/// A list of items read and kept, to be planned when the value ends (`null` is none; anything but a
/// list fails the level, as in serde's reading).
fn read_list<'a, T>(
    s: &mut Scanner<'a>,
    scan: fn(&mut Scanner<'a>) -> Scan<T>,
) -> Scan<Vec<(&'a str, Option<T>)>> {
    let mut read = Vec::new();
    s.list(|s| next_item(s, scan).map(|item| read.push(item)))?;
    Ok(read)
}

/// A list of items (`messages[]` or `statuses[]`), each planned by `plan`, in its guard, as soon as
/// it is read.
fn plan_each<'r, 'a, T>(
    s: &mut Scanner<'a>,
    b: &mut Builder<'r, 'a>,
    level: Level,
    number: &PhoneNumberId,
    scan: fn(&mut Scanner<'a>) -> Scan<T>,
    mut plan: impl FnMut(&mut Builder<'r, 'a>, &'a str, Option<T>),
) -> Scan<()> {
    s.list(|s| {
        let (text, scanned) = next_item(s, scan)?;
        b.guarded(level, text, number, None, |b| plan(b, text, scanned));
        Ok(())
    })
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

    /// A batch of statuses in each spelling the scanner reads itself or leaves to serde: the plan is
    /// always the level-by-level reading's, and which of them the one pass took is as designed.
    #[test]
    fn statuses_in_any_spelling_plan_as_level_by_level() {
        let status = |fields: &str| {
            format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"phone_number_id":"106540352242922"}},"statuses":[{{"id":"wamid.A","status":"sent","timestamp":"10","recipient_id":"15551234567"}},{fields}]}},"field":"messages"}}]}}]}}"#
            )
        };
        let plain = r#"{"id":"wamid.A","status":"delivered","timestamp":"11","pricing":{"billable":true,"pricing_model":"PMP","category":"utility","type":"regular"},"biz_opaque_callback_data":"o-1"}"#;
        // Read by the scanner, or by serde for that item alone: either way the one pass plans it.
        let item_level = [
            plain.to_owned(),
            plain.replace("\"status\"", "\"status\":\"read\",\"status\""),
            plain.replace("\"category\"", "\"category\":\"x\",\"category\""),
            plain.replace("\"id\"", "\"\\u0069d\""),
            plain.replace("\"11\"", "11"),
            plain.replace("\"o-1\"", "17.50"),
            plain.replace("true", "\"yes\""),
            plain.replace("{\"billable\"", "[{\"billable\"").replace("\"regular\"}", "\"regular\"}]"),
            plain.replace("\"o-1\"", "\"o\\/1 \\u00e9\""),
            plain.replace(",\"", " ,\n\t\""),
            r#"{"id":"wamid.B","status":"failed","timestamp":"12","recipient_id":"15551234567","errors":[{"code":131050,"title":"stopped"},"junk"]}"#.to_owned(),
            r#"["not","a","status"]"#.to_owned(),
            r#"{"status":"sent"}"#.to_owned(),
        ];
        for fields in &item_level {
            let body = status(fields);
            let one = plan(body.as_bytes(), &rules()).unwrap_or_else(|| panic!("taken: {fields}"));
            assert_eq!(
                one,
                super::super::level_by_level(body.as_bytes(), &rules()),
                "{fields}"
            );
        }
        // A repeated level key or an escaped one above the items: the level-by-level reading's.
        let body = status(plain);
        for left in [
            body.replace(
                "\"field\":\"messages\"",
                "\"field\":\"messages\",\"field\":\"messages\"",
            ),
            body.replace("\"metadata\"", "\"metad\\u0061ta\""),
            body.replace("\"statuses\":[", "\"statuses\":[],\"statuses\":["),
            // Found in review: serde reads an entry's `time` (and fails the entry on these); a skip
            // alone would accept them.
            body.replace("\"id\":\"1\",", "\"id\":\"1\",\"time\":1e400,"),
            body.replace("\"id\":\"1\",", "\"id\":\"1\",\"time\":\"\\ud800\","),
            body.replace("\"id\":\"1\",", "\"id\":\"1\",\"time\":{\"\\udc00\":0},"),
            // Found in review: an escape that is not ASCII (invalid JSON; the scanner panicked).
            body.replace("o-1", "o\\é1"),
        ] {
            assert!(plan(left.as_bytes(), &rules()).is_none(), "{left}");
            assert_eq!(
                super::super::plan(left.as_bytes(), &rules()),
                super::super::level_by_level(left.as_bytes(), &rules())
            );
        }
    }

    /// Items planned as they are read must not need what comes after them: contacts after planned
    /// messages, or messages after planned statuses, stop the pass (the plan is the same either way).
    #[test]
    fn items_out_of_meta_order_are_left_to_the_level_by_level_reading() {
        let contacts = r#""contacts":[{"profile":{"name":"Ana"},"wa_id":"15551234567"}]"#;
        let messages = r#""messages":[{"from":"15551234567","id":"wamid.A","timestamp":"10","type":"text","text":{"body":"hi"}}]"#;
        let statuses = r#""statuses":[{"id":"wamid.B","status":"sent","timestamp":"11","recipient_id":"15551234567"}]"#;
        let body = |parts: &[&str]| {
            format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"value":{{"metadata":{{"phone_number_id":"106540352242922"}},{}}},"field":"messages"}}]}}]}}"#,
                parts.join(",")
            )
        };
        for (parts, taken) in [
            (vec![contacts, messages, statuses], true),
            (vec![messages, contacts], false),
            (vec![statuses, messages, contacts], false),
            (vec![statuses, contacts], false),
        ] {
            let body = body(&parts);
            let one = plan(body.as_bytes(), &rules());
            assert_eq!(one.is_some(), taken, "{body}");
            let planned = super::super::plan(body.as_bytes(), &rules());
            assert_eq!(
                planned,
                super::super::level_by_level(body.as_bytes(), &rules())
            );
            let people = usize::from(parts.contains(&messages));
            assert_eq!(planned.contacts.len(), people, "one person, folded: {body}");
        }
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
