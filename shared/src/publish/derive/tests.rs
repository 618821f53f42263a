use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::*;
use crate::store::attrs::{m, n, s};

fn item(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect::<HashMap<_, _>>()
}

fn record(table: SourceTable, old: Option<Item>, new: Option<Item>) -> ChangeRecord {
    ChangeRecord {
        table,
        sequence_number: "1".into(),
        old,
        new,
    }
}

fn events(r: &ChangeRecord) -> Vec<DomainEvent> {
    events_of(r, &DeriveRules::default())
}

fn types(events: &[DomainEvent]) -> Vec<&str> {
    events.iter().map(|e| e.detail_type).collect()
}

fn inbound_text(wamid: &str, body: &str) -> Item {
    let raw = serde_json::json!({
        "from": "15551234567", "id": wamid, "timestamp": "1700000000", "type": "text",
        "text": {"body": body},
        "referral": {"source_type": "ad", "source_id": "42", "ctwa_clid": "c"}
    })
    .to_string();
    item(&[
        ("wamid", s(wamid)),
        ("direction", s("in")),
        ("number", s("106540352242922")),
        ("contact", s("106540352242922#15551234567")),
        ("user_phone", s("15551234567")),
        ("at", n(1_700_000_000)),
        ("type", s("text")),
        ("raw", s(raw)),
    ])
}

#[test]
fn a_stored_inbound_message_is_received_once_with_its_words() {
    let new = inbound_text("wamid.IN1", "Hola, ¿tienen envíos?");
    let first = events(&record(SourceTable::Messages, None, Some(new.clone())));
    assert_eq!(types(&first), vec![MESSAGE_RECEIVED]);
    let d = &first[0].detail;
    assert_eq!(d["text"], "Hola, ¿tienen envíos?");
    assert_eq!(d["type"], "text");
    assert_eq!(d["user"]["phone"], "15551234567");
    assert_eq!(d["referral"]["ctwa_clid"], "c");
    assert_eq!(d["at"], 1_700_000_000);
    assert_eq!(d["v"], 1);
    assert!(d.get("reply_to").is_none(), "absent, not null: {d}");
    // Written again later (its media stored, a redelivery's no-op): no second message.
    let mut later = new.clone();
    later.insert("media_state".into(), s("stored"));
    assert!(events(&record(
        SourceTable::Messages,
        Some(new.clone()),
        Some(later)
    ))
    .is_empty());
    assert!(events(&record(
        SourceTable::Messages,
        Some(new.clone()),
        Some(new.clone())
    ))
    .is_empty());
    // The same record delivered twice gives the same id.
    let again = events(&record(SourceTable::Messages, None, Some(new)));
    assert_eq!(again[0].event_id, first[0].event_id);
}

#[test]
fn asking_for_a_person_also_raises_a_handover() {
    let e = events(&record(
        SourceTable::Messages,
        None,
        Some(inbound_text(
            "wamid.IN2",
            "quiero hablar con un AGENTE por favor",
        )),
    ));
    assert_eq!(types(&e), vec![MESSAGE_RECEIVED, HUMAN_REQUESTED]);
    assert_eq!(e[1].detail["matched"], "agente");
    assert_ne!(e[0].event_id, e[1].event_id);
    // A quick-reply button whose payload asks for a person.
    let raw = r#"{"from":"1","id":"wamid.B","type":"button","button":{"text":"Falar","payload":"HUMANO"}}"#;
    let button = item(&[
        ("wamid", s("wamid.B")),
        ("direction", s("in")),
        ("type", s("button")),
        ("raw", s(raw)),
        ("at", n(5)),
    ]);
    let e = events(&record(SourceTable::Messages, None, Some(button)));
    assert_eq!(types(&e), vec![MESSAGE_RECEIVED, HUMAN_REQUESTED]);
    assert_eq!(e[0].detail["button_payload"], "HUMANO");
}

/// Our message after these statuses `(name, at)`: its status log, and the current status by rank.
fn outbound(statuses: &[(&str, i64)]) -> Item {
    let rank = |name: &str| DeliveryStatus::parse(name).rank();
    let current = statuses.iter().max_by_key(|(s, _)| rank(s)).unwrap();
    item(&[
        ("wamid", s("wamid.OUT")),
        ("direction", s("out")),
        ("number", s("106540352242922")),
        ("status", s(current.0)),
        ("status_rank", n(i64::from(rank(current.0)))),
        ("status_at", n(current.1)),
        (
            "status_events",
            m(statuses.iter().map(|(name, at)| {
                (
                    (*name).to_owned(),
                    m([("at".into(), n(*at)), ("raw".into(), s("{}"))]),
                )
            })),
        ),
        ("pricing_category", s("marketing")),
        ("pricing_type", s("regular")),
        ("billable", AttributeValue::Bool(true)),
    ])
}

fn statuses_of(events: &[DomainEvent]) -> Vec<(&str, &str)> {
    events
        .iter()
        .map(|e| {
            (
                e.detail["status"].as_str().unwrap(),
                e.detail["previous_status"].as_str().unwrap_or("-"),
            )
        })
        .collect()
}

#[test]
fn a_status_event_for_each_status_above_the_current_rank() {
    let sent = outbound(&[("sent", 1)]);
    let read = outbound(&[("sent", 1), ("read", 3)]);
    let e = events(&record(SourceTable::Messages, None, Some(sent.clone())));
    assert_eq!(statuses_of(&e), vec![("sent", "-")]);
    assert_eq!(e[0].at, 1);
    let e = events(&record(
        SourceTable::Messages,
        Some(sent.clone()),
        Some(read.clone()),
    ));
    assert_eq!(statuses_of(&e), vec![("read", "sent")]);
    assert_eq!(e[0].detail["pricing"]["billable"], true);
    assert_eq!(e[0].detail["pricing"]["category"], "marketing");
    // A late "delivered" after "read": stored, not published.
    let late = outbound(&[("sent", 1), ("read", 3), ("delivered", 2)]);
    assert!(events(&record(SourceTable::Messages, Some(read), Some(late))).is_empty());
    // Statuses that arrive in one delivery are one write, and still one fact each, in rank order.
    let both = outbound(&[("delivered", 2), ("sent", 1)]);
    let e = events(&record(SourceTable::Messages, None, Some(both.clone())));
    assert_eq!(statuses_of(&e), vec![("sent", "-"), ("delivered", "sent")]);
    // Same fact, same id, however it was reached.
    let one_by_one = events(&record(SourceTable::Messages, Some(sent), Some(both)));
    assert_eq!(one_by_one.len(), 1);
    assert_eq!(one_by_one[0].event_id, e[1].event_id);
}

#[test]
fn a_status_meta_adds_later_is_never_a_previous_status() {
    let held = outbound(&[("held_for_quality_assessment", 1)]);
    let sent = outbound(&[("held_for_quality_assessment", 1), ("sent", 2)]);
    let e = events(&record(SourceTable::Messages, Some(held), Some(sent)));
    assert_eq!(statuses_of(&e), vec![("sent", "-")]);
}

#[test]
fn a_quality_failure_is_a_quality_signal_too() {
    let mut failed = outbound(&[("sent", 1), ("failed", 2)]);
    failed.insert("error_code".into(), n(131048));
    failed.insert("error_title".into(), s("healthy ecosystem"));
    let e = events(&record(
        SourceTable::Messages,
        Some(outbound(&[("sent", 1)])),
        Some(failed),
    ));
    assert_eq!(types(&e), vec![STATUS_CHANGED, QUALITY_CHANGED]);
    assert_eq!(e[0].detail["error"]["code"], 131048);
    assert_eq!(e[1].at, 2, "the failure's own time");
    assert!(
        e[0].detail["error"].get("message").is_none(),
        "absent, not null"
    );
    assert!(e[1].is_quality_drop());
    // The per-user marketing limit is a signal, not a drop.
    let mut capped = outbound(&[("failed", 2)]);
    capped.insert("error_code".into(), n(131049));
    let e = events(&record(SourceTable::Messages, None, Some(capped)));
    assert_eq!(types(&e), vec![STATUS_CHANGED, QUALITY_CHANGED]);
    assert!(!e[1].is_quality_drop());
    let mut other = outbound(&[("failed", 2)]);
    other.insert("error_code".into(), n(131026));
    let e = events(&record(SourceTable::Messages, None, Some(other)));
    assert_eq!(types(&e), vec![STATUS_CHANGED]);
}

#[test]
fn a_send_outcome_once_per_final_state() {
    let base = [
        ("idempotency_key", s("order-1")),
        ("to", s("15551234567")),
        ("category", s("utility")),
        ("template_name", s("order_update")),
        ("template_language", s("en_US")),
    ];
    let with = |state: &str, extra: &[(&str, AttributeValue)]| {
        let mut i = item(&base);
        i.insert("state".into(), s(state));
        for (k, v) in extra {
            i.insert((*k).into(), v.clone());
        }
        i
    };
    let in_flight = with("in_flight", &[]);
    // Sent after a retry: the retry's error and reason are not the outcome.
    let sent = with(
        "sent",
        &[
            ("wamid", s("wamid.X")),
            ("finished_at", n(9)),
            ("error_code", n(130429)),
            ("reason", s("rate limited; retrying")),
        ],
    );
    assert!(events(&record(SourceTable::Sends, None, Some(in_flight.clone()))).is_empty());
    let e = events(&record(
        SourceTable::Sends,
        Some(in_flight),
        Some(sent.clone()),
    ));
    assert_eq!(types(&e), vec![SEND_OUTCOME]);
    assert_eq!(e[0].detail["state"], "sent");
    assert_eq!(e[0].detail["template"]["name"], "order_update");
    assert_eq!(e[0].detail["wamid"], "wamid.X");
    assert!(e[0].detail.get("error").is_none() && e[0].detail.get("reason").is_none());
    let mut touched = sent.clone();
    touched.insert("updated_at".into(), n(10));
    assert!(events(&record(SourceTable::Sends, Some(sent), Some(touched))).is_empty());
    let held = with("held", &[("error_code", n(131042))]);
    assert!(events(&record(SourceTable::Sends, None, Some(held))).is_empty());
}

#[test]
fn consent_changes_per_category_and_recorded_consents() {
    let pref = |consent: &str, at: i64| {
        m([(
            "marketing".into(),
            m([
                ("at".into(), n(at)),
                ("consent".into(), s(consent)),
                ("source".into(), s("keyword")),
            ]),
        )])
    };
    let key = ("contact", s("1#15551234567"));
    let before = item(&[key.clone(), ("preferences", pref("opted_in", 5))]);
    let after = item(&[key.clone(), ("preferences", pref("opted_out", 9))]);
    let e = events(&record(
        SourceTable::Contacts,
        Some(before),
        Some(after.clone()),
    ));
    assert_eq!(types(&e), vec![CONSENT_CHANGED]);
    assert_eq!(e[0].detail["consent"], "opted_out");
    assert_eq!(e[0].detail["previous"], "opted_in");
    assert_eq!(e[0].detail["category"], "marketing");
    // The same word again (a second STOP): not a change.
    let again = item(&[key.clone(), ("preferences", pref("opted_out", 12))]);
    assert!(events(&record(SourceTable::Contacts, Some(after), Some(again))).is_empty());
    // Other contact writes (the window, a profile name) are not consent.
    let plain = item(&[key.clone(), ("last_inbound_at", n(1))]);
    let later = item(&[key, ("last_inbound_at", n(2))]);
    assert!(events(&record(SourceTable::Contacts, Some(plain), Some(later))).is_empty());
    let alias = item(&[("contact", s("1#15550000000")), ("alias_of", s("1#x"))]);
    assert!(events(&record(SourceTable::Contacts, None, Some(alias))).is_empty());
}

#[test]
fn template_changes_and_quality_drops() {
    let t = |status: &str, quality: &str| {
        item(&[
            ("template", s("waba#order_update#en_US")),
            ("name", s("order_update")),
            ("language", s("en_US")),
            ("status", s(status)),
            ("status_at", n(10)),
            ("quality", s(quality)),
            ("quality_at", n(if quality == "GREEN" { 10 } else { 20 })),
        ])
    };
    let e = events(&record(
        SourceTable::Templates,
        Some(t("APPROVED", "GREEN")),
        Some(t("APPROVED", "YELLOW")),
    ));
    assert_eq!(types(&e), vec![TEMPLATE_CHANGED, QUALITY_CHANGED]);
    assert_eq!(e[0].detail["changed"], serde_json::json!(["quality"]));
    assert!(e[1].is_quality_drop());
    let e = events(&record(
        SourceTable::Templates,
        Some(t("APPROVED", "YELLOW")),
        Some(t("APPROVED", "GREEN")),
    ));
    assert!(!e[1].is_quality_drop());
    let e = events(&record(
        SourceTable::Templates,
        Some(t("PENDING", "GREEN")),
        Some(t("APPROVED", "GREEN")),
    ));
    assert_eq!(types(&e), vec![TEMPLATE_CHANGED]);
    assert_eq!(e[0].detail["previous_status"], "PENDING");
}

#[test]
fn a_number_quality_update_is_a_quality_event() {
    let raw = r#"{"display_phone_number":"15550001111","event":"FLAGGED","max_daily_conversations_per_business":"TIER_1K"}"#;
    let new = item(&[
        ("event_id", s("abc")),
        ("kind", s("field:phone_number_quality_update")),
        ("raw", s(raw)),
        ("received_at", n(77)),
    ]);
    let e = events(&record(SourceTable::Events, None, Some(new.clone())));
    assert_eq!(types(&e), vec![QUALITY_CHANGED]);
    assert!(e[0].is_quality_drop());
    assert_eq!(e[0].detail["event"], "FLAGGED");
    assert_eq!(e[0].detail["messaging_limit"], "TIER_1K");
    assert!(events(&record(SourceTable::Events, Some(new.clone()), Some(new))).is_empty());
    let other = item(&[
        ("event_id", s("d")),
        ("kind", s("field:account_update")),
        ("raw", s("{}")),
    ]);
    assert!(events(&record(SourceTable::Events, None, Some(other))).is_empty());
}

#[test]
fn deletes_and_unknown_items_give_nothing() {
    assert!(events(&record(
        SourceTable::Messages,
        Some(inbound_text("w", "x")),
        None
    ))
    .is_empty());
    let odd = item(&[("wamid", s("w"))]);
    assert!(events(&record(SourceTable::Messages, None, Some(odd))).is_empty());
}
