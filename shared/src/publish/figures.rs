//! The facts a write adds to the figures (docs/events.md, "Figures"). Pure, like `derive`: the
//! same record gives the same facts with the same ids.
//!
//! A message counts once the sender has recorded it (`accepted_at`: its template, language and
//! category are known then) and from then on each status its log holds is a fact. A fact is new
//! when the after image has it and the before image had not, so statuses that arrive before the
//! sender's record are counted when the record lands, and nothing depends on arrival order.

use super::stream::{ChangeRecord, SourceTable};
use crate::domain::figures::{counter_name, day_of, fact_id, Fact, FigureKey, RateCard};
use crate::store::attrs::{get_m, get_n, get_s, Item};

/// An inbound message within this long of a delivered template is a reply to it.
pub const REPLY_WINDOW_SECS: i64 = 24 * 60 * 60;

/// How far before a reply the templates it may answer are looked for, by their send time: one
/// delivered in the reply window was sent at most a few days before (Meta retries an offline phone
/// for up to 30 days; a template delivered that long after its send is not credited).
pub const TEMPLATE_LOOKBACK_SECS: i64 = 3 * REPLY_WINDOW_SECS;

/// The figures row of one of our messages, once the sender recorded it.
pub fn key_of(item: &Item) -> Option<FigureKey> {
    if get_s(item, "direction") != Some("out") {
        return None;
    }
    let accepted = get_n(item, "accepted_at")?;
    Some(FigureKey {
        day: day_of(get_n(item, "at").unwrap_or(accepted)),
        template: get_s(item, "template_name").unwrap_or("-").to_owned(),
        language: get_s(item, "template_language").unwrap_or("-").to_owned(),
        category: get_s(item, "category").unwrap_or("-").to_owned(),
    })
}

/// When the message was delivered (or read, if Meta's delivered status never came), if it was.
pub fn delivered_at(item: &Item) -> Option<i64> {
    let log = get_m(item, "status_events")?;
    ["delivered", "read"]
        .iter()
        .filter_map(|s| log.get(*s)?.as_m().ok().and_then(|o| get_n(o, "at")))
        .min()
}

/// The fact names an item holds.
fn facts_held(item: &Item) -> Vec<String> {
    if key_of(item).is_none() {
        return Vec::new();
    }
    let mut held = vec!["sent".to_owned()];
    // Meta sends no `delivered` for a message delivered and read at once: `read` implies it.
    let delivered = delivered_at(item).is_some();
    if delivered {
        held.push("delivered".to_owned());
    }
    if let Some(log) = get_m(item, "status_events") {
        for status in ["read", "failed"] {
            if log.contains_key(status) {
                held.push(status.to_owned());
            }
        }
    }
    // Meta bills per delivered message: pricing counts once the message is delivered.
    if delivered && get_s(item, "pricing_category").is_some() {
        held.push("priced".to_owned());
    }
    held
}

/// The template delivery a reply may now be credited to: the message became both ours (the
/// sender's record) and delivered with this write, whichever came first.
pub fn became_reply_target(old: Option<&Item>, new: &Item) -> Option<i64> {
    let target = |i: &Item| {
        get_s(i, "template_name")
            .and(key_of(i))
            .and(delivered_at(i))
    };
    match (old.and_then(target), target(new)) {
        (None, Some(d)) => Some(d),
        // Delivered earlier than known (a late `delivered` after `read`): replies in between may
        // now count. Crediting again is harmless: each fact once.
        (Some(was), Some(d)) if d < was => Some(d),
        _ => None,
    }
}

/// The facts a write to the messages table adds.
pub fn facts_of(record: &ChangeRecord, rates: &RateCard) -> Vec<Fact> {
    let (SourceTable::Messages, Some(new)) = (record.table, &record.new) else {
        return Vec::new();
    };
    let (Some(key), Some(wamid)) = (key_of(new), get_s(new, "wamid")) else {
        return Vec::new();
    };
    let before = record.old.as_ref().map(facts_held).unwrap_or_default();
    facts_held(new)
        .into_iter()
        .filter(|f| !before.contains(f))
        .map(|name| {
            let counts = match name.as_str() {
                "failed" => {
                    let mut c = vec![("failed".to_owned(), 1)];
                    if let Some(code) = get_n(new, "error_code") {
                        c.push((format!("failed_{code}"), 1));
                    }
                    c
                }
                "priced" => priced_counts(new, rates),
                other => vec![(other.to_owned(), 1)],
            };
            Fact::new(&name, wamid, key.clone(), counts)
        })
        .collect()
}

/// Meta's pricing of a delivered message: by category and type, billable, and the card's estimate.
fn priced_counts(item: &Item, rates: &RateCard) -> Vec<(String, i64)> {
    let category = get_s(item, "pricing_category").unwrap_or("unknown");
    let kind = get_s(item, "pricing_type").unwrap_or("unknown");
    let mut counts = vec![(counter_name(&["priced", category, kind]), 1)];
    // Meta is retiring `billable` (whatsapp-platform.md §8): without it, the type says (only
    // `regular` is charged; the free service and entry point types are not).
    let billable = match item.get("billable").and_then(|b| b.as_bool().ok()) {
        Some(b) => *b,
        None => kind.eq_ignore_ascii_case("regular"),
    };
    if billable {
        counts.push(("billable".to_owned(), 1));
        let to = get_s(item, "to").unwrap_or("");
        match rates.micros(to, category) {
            Some(micros) => counts.push(("cost_micros".to_owned(), micros)),
            // Counted, so a total with gaps says so.
            None if !rates.is_empty() => counts.push(("billable_unrated".to_owned(), 1)),
            None => {}
        }
    }
    counts
}

/// The template message the user's message `inbound` (at `inbound_at`) replies to: of
/// `candidates` (that person's messages), the template delivered latest within the 24 h before
/// it. The fact is exclusive with the user's message's own `reply` fact: it credits one template.
pub fn replied_to<'a>(
    inbound: &str,
    inbound_at: i64,
    candidates: impl IntoIterator<Item = &'a Item>,
) -> Option<Fact> {
    candidates
        .into_iter()
        .filter(|m| get_s(m, "template_name").is_some())
        .filter_map(|m| {
            let d = delivered_at(m)?;
            (d <= inbound_at && inbound_at - d <= REPLY_WINDOW_SECS).then_some((d, m))
        })
        .max_by(|(a, x), (b, y)| (a, get_s(x, "wamid")).cmp(&(b, get_s(y, "wamid"))))
        .and_then(|(_, m)| {
            let mut fact = Fact::new(
                "replied",
                get_s(m, "wamid")?,
                key_of(m)?,
                vec![("replied".to_owned(), 1)],
            );
            fact.exclusive_with = Some(fact_id("reply", inbound));
            Some(fact)
        })
}

/// Of messages read from several timelines, those a reply at `at` on the timelines `keys` may
/// answer: on one of its keys, sent in the lookback before it. What reading each key's lookback
/// alone would have given, so one read can serve several replies.
pub fn reply_candidates<'a>(
    messages: &'a [Item],
    keys: &'a [String],
    at: i64,
) -> impl Iterator<Item = &'a Item> {
    messages.iter().filter(move |m| {
        get_s(m, "contact").is_some_and(|c| keys.iter().any(|k| k == c))
            && get_n(m, "at").is_some_and(|t| at - TEMPLATE_LOOKBACK_SECS <= t && t <= at)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;
    use crate::store::attrs::{m, n, s};

    fn template(wamid: &str, at: i64, statuses: &[(&str, i64)], sent_by_us: bool) -> Item {
        let mut item: Item = HashMap::from([
            ("wamid".to_owned(), s(wamid)),
            ("direction".to_owned(), s("out")),
            ("at".to_owned(), n(at)),
            ("to".to_owned(), s("5215512345678")),
            (
                "status_events".to_owned(),
                m(statuses
                    .iter()
                    .map(|(name, at)| ((*name).to_owned(), m([("at".to_owned(), n(*at))])))),
            ),
        ]);
        if sent_by_us {
            for (k, v) in [
                ("accepted_at", n(at)),
                ("template_name", s("order_update")),
                ("template_language", s("es_MX")),
                ("category", s("utility")),
            ] {
                item.insert(k.into(), v);
            }
        }
        item
    }

    fn record(old: Option<Item>, new: Item) -> ChangeRecord {
        ChangeRecord {
            table: SourceTable::Messages,
            sequence_number: "1".into(),
            old,
            new: Some(new),
        }
    }

    fn names(facts: &[Fact]) -> Vec<String> {
        facts.iter().map(|f| f.counts[0].0.clone()).collect()
    }

    #[test]
    fn each_fact_once_in_the_send_days_row() {
        let card = RateCard::default();
        let sent = template("wamid.T", 1_796_557_889, &[("sent", 1_796_557_890)], true);
        let f = facts_of(&record(None, sent.clone()), &card);
        assert_eq!(names(&f), vec!["sent"]);
        assert_eq!(f[0].key.row(), "order_update#es_MX#utility");
        assert_eq!(f[0].key.day, "2026-12-06");
        let read = template(
            "wamid.T",
            1_796_557_889,
            &[("sent", 1), ("delivered", 2), ("read", 3)],
            true,
        );
        let f = facts_of(&record(Some(sent), read.clone()), &card);
        assert_eq!(names(&f), vec!["delivered", "read"]);
        assert!(facts_of(&record(Some(read.clone()), read), &card).is_empty());
    }

    #[test]
    fn statuses_before_the_senders_record_count_when_it_lands() {
        let card = RateCard::default();
        let early = template("wamid.E", 100, &[("sent", 101), ("delivered", 102)], false);
        assert!(facts_of(&record(None, early.clone()), &card).is_empty());
        let recorded = template("wamid.E", 100, &[("sent", 101), ("delivered", 102)], true);
        let f = facts_of(&record(Some(early), recorded.clone()), &card);
        assert_eq!(names(&f), vec!["sent", "delivered"]);
        // The same facts whichever way the item was built: same ids.
        let direct = facts_of(&record(None, recorded), &card);
        assert_eq!(
            f.iter().map(|x| &x.id).collect::<Vec<_>>(),
            direct.iter().map(|x| &x.id).collect::<Vec<_>>()
        );
    }

    #[test]
    fn pricing_billable_cost_and_failure_codes() {
        let card = RateCard::parse(r#"{"52": {"utility": 0.0085}}"#).unwrap();
        let mut priced = template("wamid.P", 100, &[("sent", 101)], true);
        priced.insert("pricing_category".into(), s("utility"));
        priced.insert("pricing_type".into(), s("regular"));
        priced.insert("billable".into(), AttributeValue::Bool(true));
        // Priced on `sent`, billed once delivered: a message that never arrives costs nothing.
        assert_eq!(
            names(&facts_of(&record(None, priced.clone()), &card)),
            vec!["sent"]
        );
        let mut delivered = priced.clone();
        delivered.insert(
            "status_events".into(),
            m([("read".to_owned(), m([("at".to_owned(), n(102))]))]),
        );
        let f = facts_of(&record(Some(priced), delivered), &card);
        let all: Vec<(String, i64)> = f.into_iter().flat_map(|f| f.counts).collect();
        assert!(
            all.contains(&("delivered".into(), 1)),
            "read implies delivered: {all:?}"
        );
        assert!(
            all.contains(&("priced__utility__regular".into(), 1)),
            "{all:?}"
        );
        assert!(all.contains(&("billable".into(), 1)));
        assert!(all.contains(&("cost_micros".into(), 8_500)));
        let mut failed = template("wamid.F", 100, &[("failed", 101)], true);
        failed.insert("error_code".into(), n(131049));
        let all: Vec<(String, i64)> = facts_of(&record(None, failed), &card)
            .into_iter()
            .flat_map(|f| f.counts)
            .collect();
        assert!(all.contains(&("failed_131049".into(), 1)), "{all:?}");
    }

    #[test]
    fn a_template_becomes_a_reply_target_once_ours_and_delivered_in_either_order() {
        let early = template("wamid.E", 100, &[("delivered", 102)], false);
        let recorded = template("wamid.E", 100, &[("delivered", 102)], true);
        assert_eq!(became_reply_target(None, &early), None, "not ours yet");
        assert_eq!(became_reply_target(Some(&early), &recorded), Some(102));
        assert_eq!(became_reply_target(Some(&recorded), &recorded), None);
        let sent = template("wamid.S", 100, &[("sent", 101)], true);
        let read = template("wamid.S", 100, &[("sent", 101), ("read", 105)], true);
        assert_eq!(became_reply_target(Some(&sent), &read), Some(105));
        let late_delivered = template(
            "wamid.S",
            100,
            &[("sent", 101), ("read", 105), ("delivered", 103)],
            true,
        );
        assert_eq!(became_reply_target(Some(&read), &late_delivered), Some(103));
    }

    #[test]
    fn a_reply_is_credited_to_the_latest_template_delivered_in_the_24_hours_before() {
        let older = template("wamid.OLD", 0, &[("delivered", 100)], true);
        let latest = template("wamid.NEW", 50, &[("delivered", 200)], true);
        let undelivered = template("wamid.UND", 60, &[("sent", 300)], true);
        let all = [older, latest, undelivered];
        let f = replied_to("wamid.IN", 1_000, &all).unwrap();
        assert_eq!(
            f.id,
            Fact::new("replied", "wamid.NEW", f.key.clone(), vec![]).id
        );
        assert!(
            replied_to("wamid.IN", 150, &all).unwrap().id != f.id,
            "before the newer one: the older"
        );
        assert!(
            replied_to("wamid.IN", 50, &all).is_none(),
            "before any delivery"
        );
        assert!(
            replied_to("wamid.IN", 200 + REPLY_WINDOW_SECS + 1, &all).is_none(),
            "over 24 h later"
        );
    }

    #[test]
    fn one_read_serves_each_reply_as_its_own_read_would() {
        let on = |wamid: &str, contact: &str, at: i64| {
            let mut t = template(wamid, at, &[("delivered", at + 1)], true);
            t.insert("contact".into(), AttributeValue::S(contact.into()));
            t
        };
        let read = [
            on("wamid.PHONE", "123#5215512345678", 1_000),
            on("wamid.BSUID", "123#MX.abc", 2_000),
            on("wamid.OLD", "123#5215512345678", 10),
            on("wamid.LATER", "123#5215512345678", 5_000),
        ];
        let phone = vec!["123#5215512345678".to_owned()];
        let wamids = |keys: &[String], at: i64| -> Vec<String> {
            reply_candidates(&read, keys, at)
                .filter_map(|m| get_s(m, "wamid").map(str::to_owned))
                .collect()
        };
        let at = 10 + TEMPLATE_LOOKBACK_SECS + 1;
        assert_eq!(
            wamids(&phone, at),
            vec!["wamid.PHONE", "wamid.LATER"],
            "its own keys only, sent in its lookback"
        );
        assert_eq!(
            wamids(&phone, 4_000),
            vec!["wamid.PHONE", "wamid.OLD"],
            "nothing sent after it"
        );
    }
}
