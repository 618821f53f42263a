//! What a delivery leaves in DynamoDB (moto): messages, statuses, windows, opt-outs, identities, raw
//! events; and that duplicates, reordering and a storage outage change nothing in the end.

use wahook::domain::ids::{ContactKey, PhoneNumberId, UserId, Wamid};
use wahook::domain::preferences::{Category, Consent, PreferenceSource};
use wahook::domain::time::UnixTime;
use wahook::domain::ContactState;
use wahook::store::messages::OutboundSend;
use wahook_tests::fixtures::{build, payload, NUMBER};
use wahook_tests::Harness;

const T: i64 = 1_795_400_000;
const ANA_PHONE: &str = "5215512345678";
const ANA_BSUID: &str = "MX.1310418412279093";
const JOAO_PHONE: &str = "5511987654321";
const BIA_BSUID: &str = "BR.1502847362910475";
const OUT: &str = "wamid.HBgNNTIxNTUxMjM0NTY3OBUCABEYEjQ4RDVCRkNCNTQ1QjU3NEE1RQA=";

fn key(user: &str) -> ContactKey {
    ContactKey::new(
        &PhoneNumberId::parse(NUMBER).unwrap(),
        &UserId::parse(user).unwrap(),
    )
}

/// The contact as the sender will read it (following a phone alias to the person's record).
async fn contact(h: &Harness, user: &str) -> (ContactKey, ContactState) {
    h.store()
        .find_contact(&key(user))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no contact for {user}"))
}

async fn ok(h: &Harness, body: &[u8]) {
    let reply = h.deliver(body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Delivers one text message from a phone and/or BSUID.
async fn send_text(
    h: &Harness,
    id: &str,
    phone: Option<&str>,
    bsuid: Option<&str>,
    ts: i64,
    body: &str,
) {
    ok(
        h,
        &build::envelope(vec![build::text(id, phone, bsuid, ts, body)]),
    )
    .await;
}

async fn ok_fixture(h: &Harness, name: &str) {
    ok(h, &payload(name)).await;
}

#[tokio::test]
async fn a_text_message_is_stored_and_opens_the_window_from_its_timestamp() {
    let h = Harness::new("text").await;
    ok_fixture(&h, "text-hola").await;

    let msg = h
        .message_item("wamid.HBgNNTIxNTUxMjM0NTY3OBUCABIYFjNFQjBDMUQ5RjI2NkQxRTg2QzQ4QTQA")
        .await
        .unwrap();
    assert_eq!(msg["direction"], "in");
    assert_eq!(msg["type"], "text");
    assert_eq!(msg["at"], T.to_string());
    assert_eq!(msg["contact"], key(ANA_BSUID).as_str());
    assert!(msg["raw"].contains(r"\u00bfsigue disponible"));
    assert!(
        msg["expires_at"].parse::<i64>().unwrap() >= T + 8 * 86_400,
        "kept past Meta's 7-day redelivery"
    );

    let (home, state) = contact(&h, ANA_PHONE).await;
    assert_eq!(home, key(ANA_BSUID), "keyed by BSUID, found by phone");
    assert_eq!(
        state.window_expires_at(),
        Some(UnixTime::from_secs(T + 86_400))
    );
    assert_eq!(state.profile_name.unwrap().value, "Ana García");
    assert_eq!(state.phone.unwrap().value.digits(), ANA_PHONE);
    let item = h.contact_item(key(ANA_BSUID).as_str()).await.unwrap();
    assert_eq!(item["window_expires_at"], (T + 86_400).to_string());
}

#[tokio::test]
async fn an_older_message_never_shortens_the_window() {
    let h = Harness::new("window").await;
    send_text(&h, "wamid.new", Some(JOAO_PHONE), None, T + 1_000, "later").await;
    send_text(&h, "wamid.old", Some(JOAO_PHONE), None, T, "earlier").await;
    let (_, state) = contact(&h, JOAO_PHONE).await;
    assert_eq!(
        state.window_expires_at(),
        Some(UnixTime::from_secs(T + 1_000 + 86_400))
    );
    assert_eq!(
        h.state().await.messages.len(),
        2,
        "both messages are stored"
    );
}

#[tokio::test]
async fn a_username_user_without_phone_is_one_contact_under_their_bsuid() {
    let h = Harness::new("bsuid").await;
    ok_fixture(&h, "bsuid-username").await;
    let (home, state) = contact(&h, BIA_BSUID).await;
    assert_eq!(home, key(BIA_BSUID));
    assert!(state.phone.is_none());
    assert_eq!(state.profile_name.unwrap().value, "Bia");
    assert_eq!(h.state().await.contacts.len(), 1);
}

#[tokio::test]
async fn the_same_person_by_phone_then_by_bsuid_is_one_contact() {
    let h = Harness::new("phone-then-bsuid").await;
    // Met by phone only (before BSUIDs, or an old payload), and they wrote STOP.
    send_text(&h, "wamid.p1", Some(ANA_PHONE), None, T, "STOP").await;
    // Then a 2026 payload shows both identities.
    ok_fixture(&h, "text-hola").await;
    // Then the phone is withheld.
    send_text(&h, "wamid.b1", None, Some(ANA_BSUID), T + 50, "hola").await;

    let state = h.state().await;
    assert_eq!(
        state.contacts.len(),
        2,
        "one person record and one phone alias: {:#?}",
        state.contacts
    );
    let alias = h.contact_item(key(ANA_PHONE).as_str()).await.unwrap();
    assert_eq!(alias["alias_of"], key(ANA_BSUID).as_str());
    assert!(
        !alias.contains_key("preferences"),
        "the phone record's state moved to the person"
    );

    for identity in [ANA_PHONE, ANA_BSUID] {
        let (home, c) = contact(&h, identity).await;
        assert_eq!(home, key(ANA_BSUID));
        assert_eq!(c.last_inbound_at, Some(UnixTime::from_secs(T + 50)));
        assert_eq!(
            c.preference(Category::Marketing).unwrap().consent,
            Consent::OptedOut,
            "the STOP learnt by phone still holds"
        );
    }
}

#[tokio::test]
async fn the_same_person_by_bsuid_then_by_phone_is_one_contact() {
    let h = Harness::new("bsuid-then-phone").await;
    send_text(&h, "wamid.b1", None, Some(ANA_BSUID), T, "hola").await;
    ok_fixture(&h, "text-hola").await;
    send_text(&h, "wamid.p1", Some(ANA_PHONE), None, T + 50, "hola").await;
    assert_eq!(h.state().await.contacts.len(), 2);
    let (home, c) = contact(&h, ANA_PHONE).await;
    assert_eq!(home, key(ANA_BSUID));
    assert_eq!(c.last_inbound_at, Some(UnixTime::from_secs(T + 50)));
}

#[tokio::test]
async fn statuses_build_the_outbound_record_and_never_go_backwards() {
    let h = Harness::new("statuses").await;
    ok_fixture(&h, "statuses-sent-delivered-read").await;
    // A late duplicate "delivered" changes nothing.
    ok(
        &h,
        &build::envelope(vec![build::statuses(
            ANA_PHONE,
            &[(OUT, "delivered", T + 302)],
        )]),
    )
    .await;

    let m = h.message_item(OUT).await.unwrap();
    assert_eq!(m["direction"], "out");
    assert_eq!(m["status"], "read");
    assert_eq!(m["status_at"], (T + 400).to_string());
    assert_eq!(m["pricing_category"], "utility");
    assert_eq!(m["pricing_type"], "regular");
    assert_eq!(m["callback_data"], "order-1234");
    assert_eq!(m["contact"], key(ANA_BSUID).as_str());
    for st in ["sent", "delivered", "read"] {
        assert!(
            m["status_events"].contains(&format!("\"{st}\"")),
            "{}",
            m["status_events"]
        );
    }
}

#[tokio::test]
async fn a_status_before_the_send_record_merges_with_it_in_either_order() {
    let send = |h: &Harness| {
        let store = h.store().clone();
        async move {
            let wamid = Wamid::parse(OUT).unwrap();
            let number = PhoneNumberId::parse(NUMBER).unwrap();
            let contact = key(ANA_BSUID);
            store
                .record_outbound(&OutboundSend {
                    wamid: &wamid,
                    number: &number,
                    contact: &contact,
                    to: ANA_PHONE,
                    category: "utility",
                    kind: "template",
                    template_name: Some("order_shipped"),
                    template_language: Some("es_MX"),
                    idempotency_key: Some("order-1234-shipped"),
                    callback_data: Some("order-1234"),
                    accepted_at: UnixTime::from_secs(T + 299),
                    counts_toward_cap: None,
                    pacing: None,
                    endpoint: None,
                })
                .await
                .unwrap();
        }
    };
    let status_first = Harness::new("status-first").await;
    ok_fixture(&status_first, "statuses-sent-delivered-read").await;
    send(&status_first).await;

    let send_first = Harness::new("send-first").await;
    send(&send_first).await;
    ok_fixture(&send_first, "statuses-sent-delivered-read").await;

    let a = status_first.message_item(OUT).await.unwrap();
    let b = send_first.message_item(OUT).await.unwrap();
    let strip = |mut m: std::collections::BTreeMap<String, String>| {
        m.remove("version");
        m
    };
    assert_eq!(strip(a.clone()), strip(b));
    assert_eq!(a["status"], "read");
    assert_eq!(a["idempotency_key"], "order-1234-shipped");
    assert_eq!(a["template_name"], "order_shipped");
    assert_eq!(
        a["at"],
        (T + 299).to_string(),
        "the send's time, whichever came first"
    );
}

#[tokio::test]
async fn a_failed_131050_opts_the_recipient_out_of_marketing() {
    let h = Harness::new("131050").await;
    ok_fixture(&h, "status-failed-131050").await;
    let (_, c) = contact(&h, JOAO_PHONE).await;
    let p = c.preference(Category::Marketing).unwrap();
    assert_eq!(
        (p.consent, p.source),
        (Consent::OptedOut, PreferenceSource::MetaError131050)
    );
    assert!(
        c.preference(Category::Utility).is_none(),
        "utility still goes out"
    );
    let m = h
        .message_item("wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjFBMkIzQzRENUU2RjdBOEI5QwA=")
        .await
        .unwrap();
    assert_eq!(
        (m["status"].as_str(), m["error_code"].as_str()),
        ("failed", "131050")
    );
}

#[tokio::test]
async fn user_preferences_stop_then_resume_in_either_arrival_order() {
    for (name, order) in [
        ("pref-in-order", [true, false]),
        ("pref-reversed", [false, true]),
    ] {
        let h = Harness::new(name).await;
        for stop in order {
            let ts = if stop { T } else { T + 100 };
            ok(&h, &build::preference(JOAO_PHONE, stop, ts)).await;
        }
        let (_, c) = contact(&h, JOAO_PHONE).await;
        let p = c.preference(Category::Marketing).unwrap();
        assert_eq!(
            (p.consent, p.at),
            (Consent::OptedIn, UnixTime::from_secs(T + 100)),
            "{name}"
        );
        assert_eq!(p.source, PreferenceSource::UserPreferences);
        let events = h.state().await.events;
        assert_eq!(
            events
                .iter()
                .filter(|e| e["kind"] == "user_preferences")
                .count(),
            2,
            "kept as proof"
        );
    }
}

#[tokio::test]
async fn stop_and_start_keywords_and_the_stop_promotions_button() {
    let h = Harness::new("keywords").await;
    send_text(&h, "wamid.k1", Some(JOAO_PHONE), None, T, "Parar!").await;
    let (_, c) = contact(&h, JOAO_PHONE).await;
    assert_eq!(
        c.preference(Category::Marketing).unwrap().consent,
        Consent::OptedOut
    );
    assert!(
        c.preference(Category::Utility).is_none(),
        "a keyword stops marketing only, by default"
    );
    send_text(&h, "wamid.k2", Some(JOAO_PHONE), None, T + 10, "START").await;
    let (_, c) = contact(&h, JOAO_PHONE).await;
    assert_eq!(
        c.preference(Category::Marketing).unwrap().consent,
        Consent::OptedIn
    );

    ok_fixture(&h, "button-stop-promotions").await;
    let (_, ana) = contact(&h, ANA_PHONE).await;
    let p = ana.preference(Category::Marketing).unwrap();
    assert_eq!(
        (p.consent, p.source),
        (Consent::OptedOut, PreferenceSource::StopPromotionsButton)
    );
    assert!(ana.preference(Category::Utility).is_none());
}

#[tokio::test]
async fn a_click_to_whatsapp_referral_is_recorded_on_the_contact() {
    let h = Harness::new("referral").await;
    ok_fixture(&h, "referral-ctwa").await;
    let (_, c) = contact(&h, "5491155554444").await;
    let r = c.referral.unwrap();
    assert_eq!(r.at, UnixTime::from_secs(T + 800));
    assert_eq!(r.value.source_type.as_deref(), Some("ad"));
    assert_eq!(r.value.source_id.as_deref(), Some("120212345678901234"));
    assert!(r.value.ctwa_clid.unwrap().starts_with("ARAkLkA8"));
}

#[tokio::test]
async fn unknown_types_statuses_and_fields_are_stored_not_rejected() {
    let h = Harness::new("unknown").await;
    ok_fixture(&h, "unknown-message-type").await;
    ok_fixture(&h, "template-status-update").await;
    ok_fixture(&h, "value-errors").await;

    let hologram = h
        .message_item("wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjBFMjJBQzU2QTc0OTY5NUI1NzkA")
        .await
        .unwrap();
    assert_eq!(hologram["type"], "hologram");
    assert!(hologram["raw"].contains("\"hologram\":{"));
    let unsupported = h
        .message_item("wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjA3MDJBNjFDRDRCRTFCNjc4MzAA")
        .await
        .unwrap();
    assert_eq!(unsupported["type"], "unsupported");
    let edited = h.message_item(OUT).await.unwrap();
    assert_eq!(edited["status"], "edited", "an unknown status is kept");

    let events = h.state().await.events;
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str()).collect();
    assert!(
        kinds.contains(&"field:message_template_status_update"),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"messages_errors"), "{kinds:?}");
}

#[tokio::test]
async fn an_authentic_body_we_cannot_parse_is_kept_raw_and_acknowledged() {
    let h = Harness::new("unparsed").await;
    for body in [
        &b"not json at all"[..],
        br#"{"object":"page","entry":[{"id":"1"}]}"#,
        br#"{"entry":"oops"}"#,
    ] {
        let reply = h.deliver(body).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let events = h.state().await.events;
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["kind"] == "unparsed_payload"));
    assert!(events.iter().any(|e| e["raw"] == "not json at all"));
    assert!(events.iter().all(|e| !e["reason"].is_empty()));
}

#[tokio::test]
async fn a_large_unparsable_body_is_kept_in_parts_and_reads_back_whole() {
    let h = Harness::new("bigraw").await;
    let mut body = b"<html>".to_vec();
    body.extend(std::iter::repeat_n(b'x', 900_000));
    assert_eq!(h.deliver(&body).await.status, 200);
    let head = h
        .state()
        .await
        .events
        .into_iter()
        .find(|e| e.contains_key("parts"))
        .expect("a head item with parts");
    assert_eq!(head["parts"], "3");
    let raw = h
        .store()
        .get_event_raw(&head["event_id"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw, body);
}

#[tokio::test]
async fn a_batch_covers_every_entry_change_and_item() {
    let h = Harness::new("batch").await;
    ok_fixture(&h, "batch-mixed").await;
    assert!(h.message_item("wamid.BATCH.ana.1").await.is_some());
    assert!(h.message_item("wamid.BATCH.joao.1").await.is_some());
    assert_eq!(h.message_item(OUT).await.unwrap()["status"], "delivered");
    let (_, joao) = contact(&h, JOAO_PHONE).await;
    assert_eq!(
        joao.preference(Category::Marketing).unwrap().consent,
        Consent::OptedOut,
        "PARAR"
    );
    let (_, bia) = contact(&h, BIA_BSUID).await;
    assert_eq!(
        bia.preference(Category::Marketing).unwrap().consent,
        Consent::OptedIn,
        "resume"
    );
    let kinds = event_kinds(&h).await;
    assert!(
        kinds.contains(&"field:phone_number_quality_update".to_owned()),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_redelivered_payload_changes_nothing_and_writes_only_the_dedupe_checks() {
    let h = Harness::new("dup").await;
    ok_fixture(&h, "batch-mixed").await;
    let first = h.state().await;
    h.counter.reset();
    ok_fixture(&h, "batch-mixed").await;
    assert_eq!(h.state().await, first);
    // Two inbound messages' conditional puts and the events' puts find their items; no contact or
    // status write is needed.
    assert_eq!(h.counter.get("UpdateItem"), 0, "{:?}", h.counter.snapshot());
    assert_eq!(
        h.counter.get("TransactWriteItems"),
        0,
        "{:?}",
        h.counter.snapshot()
    );
}

#[tokio::test]
async fn deliveries_in_any_order_end_in_the_same_state() {
    let deliveries: Vec<Vec<u8>> = vec![
        payload("text-hola"),
        build::envelope(vec![build::text(
            "wamid.p1",
            Some(ANA_PHONE),
            None,
            T - 100,
            "STOP",
        )]),
        build::envelope(vec![build::statuses(ANA_PHONE, &[(OUT, "read", T + 400)])]),
        build::envelope(vec![build::statuses(
            ANA_PHONE,
            &[(OUT, "sent", T + 300), (OUT, "delivered", T + 302)],
        )]),
        build::preference(ANA_PHONE, false, T + 10),
        payload("button-stop-promotions"),
    ];
    let forward = Harness::new("order-fwd").await;
    for d in &deliveries {
        ok(&forward, d).await;
    }
    let backward = Harness::new("order-bwd").await;
    for d in deliveries.iter().rev() {
        ok(&backward, d).await;
        ok(&backward, d).await; // and each twice
    }
    assert_eq!(forward.state().await, backward.state().await);
}

#[tokio::test]
async fn a_storage_failure_mid_batch_is_503_and_a_replay_loses_and_doubles_nothing() {
    let body = payload("batch-mixed");
    let clean = Harness::new("fault-clean").await;
    ok(&clean, &body).await;

    let h = Harness::new("fault").await;
    h.fault.fail_writes_after(2);
    let reply = h.deliver(&body).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.body.contains("redeliver"));
    assert!(h.fault.injected() > 0);
    let partial = h.state().await;
    assert_ne!(partial, clean.state().await, "the outage hit mid-batch");

    h.fault.disarm();
    ok(&h, &body).await; // Meta's redelivery
    assert_eq!(h.state().await, clean.state().await);
}

#[tokio::test]
async fn writes_stay_within_two_per_message_and_one_per_status() {
    let h = Harness::new("count").await;
    // First contact with a new person showing both identities: message + one transaction.
    ok_fixture(&h, "text-hola").await;
    assert_eq!(h.counter.writes(), 2, "{:?}", h.counter.snapshot());

    // Twenty messages from twenty people in one delivery.
    h.counter.reset();
    let values: Vec<_> = (0..20)
        .map(|i| {
            build::text(
                &format!("wamid.m{i}"),
                Some(&format!("1555000{i:04}")),
                None,
                T + i,
                "hi",
            )
        })
        .collect();
    ok(&h, &build::envelope(values)).await;
    assert!(h.counter.writes() <= 40, "{:?}", h.counter.snapshot());

    // Thirty statuses for thirty messages.
    h.counter.reset();
    let items: Vec<(String, i64)> = (0..30).map(|i| (format!("wamid.s{i}"), T + i)).collect();
    let refs: Vec<(&str, &str, i64)> = items
        .iter()
        .map(|(w, t)| (w.as_str(), "delivered", *t))
        .collect();
    ok(
        &h,
        &build::envelope(vec![build::statuses(JOAO_PHONE, &refs)]),
    )
    .await;
    assert!(h.counter.writes() <= 30, "{:?}", h.counter.snapshot());
}

#[tokio::test]
async fn a_thousand_update_batch_is_stored_completely() {
    let h = Harness::new("thousand").await;
    // 1000 statuses: sent and delivered for 500 messages, in one change, as Meta may batch them.
    let ids: Vec<String> = (0..500).map(|i| format!("wamid.big{i}")).collect();
    let mut items = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        items.push((id.as_str(), "sent", T + i as i64));
        items.push((id.as_str(), "delivered", T + i as i64 + 1));
    }
    ok(
        &h,
        &build::envelope(vec![build::statuses(JOAO_PHONE, &items)]),
    )
    .await;
    let messages = h.state().await.messages;
    assert_eq!(messages.len(), 500);
    assert!(messages.iter().all(|m| m["status"] == "delivered"));
    assert!(h.counter.writes() <= 1000, "{:?}", h.counter.snapshot());
}

#[tokio::test]
async fn media_and_reactions_keep_what_a_later_step_needs() {
    let h = Harness::new("media").await;
    ok_fixture(&h, "media-and-reaction").await;
    let image = h
        .message_item("wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjBJTUFHRTAwMDAwMDAwMDAwMQA=")
        .await
        .unwrap();
    assert_eq!(
        (image["type"].as_str(), image["media_id"].as_str()),
        ("image", "1479537139650973")
    );
    assert_eq!(image["mime_type"], "image/jpeg");
    let reaction = h
        .message_item("wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjBSRUFDVElPTjAwMDAwMDAwMQA=")
        .await
        .unwrap();
    assert_eq!(
        reaction["reaction_to"],
        "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjFBMkIzQzRENUU2RjdBOEI5QwA="
    );
    let (_, c) = contact(&h, JOAO_PHONE).await;
    assert_eq!(
        c.last_inbound_at,
        Some(UnixTime::from_secs(T + 1_201)),
        "a reaction is the user writing"
    );
}

/// A number change (`user_changed_number`, and the older `customer_changed_number` / `new_wa_id`):
/// the person's opt-out and window follow them, and the old number, which may be given to someone
/// else, leads nowhere.
#[tokio::test]
async fn a_number_change_carries_the_opt_out_and_frees_the_old_number() {
    let h = Harness::new("inbound-number-change").await;
    for (i, (old, new, system)) in [
        (
            "15551110000",
            "15552220000",
            serde_json::json!({"type": "user_changed_number", "wa_id": "15552220000", "body": "changed"}),
        ),
        (
            "15553330000",
            "15554440000",
            serde_json::json!({"type": "customer_changed_number", "new_wa_id": "15554440000", "body": "changed"}),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let stop = build::text(&format!("wamid.NC-STOP-{i}"), Some(old), None, T, "STOP");
        ok(&h, &build::envelope(vec![stop])).await;
        let change = build::system(&format!("wamid.NC-SYS-{i}"), old, T + 60, system);
        let body = build::envelope(vec![change]);
        ok(&h, &body).await;
        // Meta redelivers: nothing changes.
        ok(&h, &body).await;
        let (_, moved) = contact(&h, new).await;
        assert_eq!(
            moved.preference(Category::Marketing).unwrap().consent,
            Consent::OptedOut,
            "{new}"
        );
        assert_eq!(moved.last_inbound_at, Some(UnixTime::from_secs(T)));
        assert!(
            h.store().find_contact(&key(old)).await.unwrap().is_none(),
            "{old} must lead to nobody"
        );
    }
}

#[tokio::test]
async fn with_the_number_filter_on_another_numbers_messages_are_kept_raw_and_move_nothing() {
    const OTHER: &str = "106540352249999";
    let h = Harness::with_config("other-number", |c| {
        c.inbound_numbers = Some(vec![PhoneNumberId::parse(NUMBER).unwrap()]);
    })
    .await;
    let mut theirs = build::text("wamid.theirs", Some(JOAO_PHONE), None, T, "STOP");
    theirs["metadata"]["phone_number_id"] = serde_json::json!(OTHER);
    let ours = build::text("wamid.ours", Some(ANA_PHONE), None, T, "hola");
    ok(&h, &build::envelope(vec![theirs, ours])).await;

    assert!(
        h.message_item("wamid.ours").await.is_some(),
        "ours is stored"
    );
    assert!(
        h.message_item("wamid.theirs").await.is_none(),
        "theirs is no message of ours"
    );
    let state = h.state().await;
    assert_eq!(
        state.contacts.len(),
        1,
        "only Ana's window: {:?}",
        state.contacts
    );
    let kept: Vec<_> = state
        .events
        .iter()
        .filter(|e| e["kind"] == "other_number")
        .collect();
    assert_eq!(kept.len(), 1, "{:?}", state.events);
    assert!(
        kept[0]["raw"].contains("wamid.theirs"),
        "kept whole: {kept:?}"
    );
}

/// The `kind` of every stored event.
async fn event_kinds(h: &Harness) -> Vec<String> {
    h.state()
        .await
        .events
        .iter()
        .map(|e| e["kind"].clone())
        .collect()
}

/// Meta's `message_template_status_update` for a template, delivered and acknowledged.
async fn meta_says(
    h: &Harness,
    name: &str,
    language: &str,
    event: &str,
    category: &str,
    time: i64,
) {
    ok(
        h,
        &build::template_status(name, language, event, category, time),
    )
    .await;
}

/// The registry's record of the fixtures' `order_shipped (es_MX)`.
async fn registry(h: &Harness) -> Option<wahook::domain::template::TemplateRecord> {
    let key = wahook::domain::template::TemplateKey::new(
        wahook_tests::fixtures::WABA,
        "order_shipped",
        "es_MX",
    );
    h.store()
        .find_templates(std::slice::from_ref(&key))
        .await
        .expect("read the registry")
        .remove(&key)
}

#[tokio::test]
async fn template_webhooks_feed_the_registry_and_a_late_older_one_changes_nothing() {
    let h = Harness::new("templates").await;
    // The fixture: APPROVED, UTILITY, at 1795401000.
    ok_fixture(&h, "template-status-update").await;
    let r = registry(&h).await.expect("the template is known");
    assert_eq!(r.status.as_ref().unwrap().value, "APPROVED");
    assert_eq!(r.category.as_ref().unwrap().value, Category::Utility);

    // Paused later; then an older REJECTED arrives late (and is stored raw all the same).
    meta_says(
        &h,
        "order_shipped",
        "es_MX",
        "PAUSED",
        "UTILITY",
        1_795_402_000,
    )
    .await;
    meta_says(
        &h,
        "order_shipped",
        "es_MX",
        "REJECTED",
        "UTILITY",
        1_795_400_500,
    )
    .await;
    let r = registry(&h).await.unwrap();
    assert_eq!(
        r.status.as_ref().unwrap().value,
        "PAUSED",
        "the newest status wins"
    );
    assert_eq!(
        r.status.as_ref().unwrap().at,
        UnixTime::from_secs(1_795_402_000)
    );

    // An impending re-categorisation is notice only; the completed one moves the category.
    ok(
        &h,
        &build::template_category(
            "order_shipped",
            "es_MX",
            "UTILITY",
            Some("MARKETING"),
            1_795_403_000,
        ),
    )
    .await;
    let r = registry(&h).await.unwrap();
    assert_eq!(r.category.as_ref().unwrap().value, Category::Utility);
    assert_eq!(
        r.impending_category.as_ref().unwrap().value,
        Category::Marketing
    );
    ok(
        &h,
        &build::template_category("order_shipped", "es_MX", "MARKETING", None, 1_795_404_000),
    )
    .await;
    let r = registry(&h).await.unwrap();
    assert_eq!(r.category.as_ref().unwrap().value, Category::Marketing);
    assert!(
        r.impending_category.is_none(),
        "the change made ends its notice"
    );

    // A template webhook that names no template is stored raw, 200, and moves nothing.
    ok(
        &h,
        &build::template_field(
            "message_template_status_update",
            serde_json::json!({"event": "DISABLED", "unknown_field": [1, 2]}),
            1_795_405_000,
        ),
    )
    .await;
    assert_eq!(registry(&h).await.unwrap().status.unwrap().value, "PAUSED");
    let kinds = event_kinds(&h).await;
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "field:message_template_status_update")
            .count(),
        4,
        "every template webhook is kept raw: {kinds:?}"
    );
}

#[tokio::test]
async fn a_template_webhook_from_the_future_or_with_a_name_no_send_could_use_moves_nothing() {
    let h = Harness::new("templates-odd").await;
    ok_fixture(&h, "template-status-update").await;
    // Dated a year ahead: nothing could ever overwrite it, so it is stored raw and not applied.
    let ahead = UnixTime::now().secs() + 365 * 24 * 3600;
    meta_says(&h, "order_shipped", "es_MX", "DISABLED", "UTILITY", ahead).await;
    // A 3 KB name (beyond DynamoDB's key limit) and one with the key's separator: raw only, 200.
    let huge = "a".repeat(3_000);
    meta_says(&h, &huge, "es_MX", "DISABLED", "UTILITY", 1_795_402_000).await;
    meta_says(
        &h,
        "order_shipped#es_MX",
        "x",
        "DISABLED",
        "UTILITY",
        1_795_402_000,
    )
    .await;
    let r = registry(&h).await.unwrap();
    assert_eq!(r.status.unwrap().value, "APPROVED", "none of them moved it");
    assert_eq!(h.state().await.events.len(), 4, "all four kept raw");
}
