//! The sender against real parts: send requests on moto's SQS, the ledger and contacts in moto's
//! DynamoDB, the Meta simulator over real HTTP, and the simulator's status webhooks stored by the
//! webhook over real HTTP.

use serde_json::json;
use wahook::domain::ledger::SendState;
use wahook_meta_sim::Fault;
use wahook_tests::fixtures::{build, NUMBER};
use wahook_tests::sender::World;

const ANA: &str = "+5215512345678";
const JOAO: &str = "+5511987654321";

fn template(key: &str, to: &str, category: &str) -> String {
    json!({
        "v": 1, "idempotency_key": key, "to": to, "category": category,
        "template": {"name": "order_shipped", "language": "es_MX",
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "A-17"}]}]},
        "callback_data": "order-17"
    })
    .to_string()
}

fn text(key: &str, to: &str, extra: serde_json::Value) -> String {
    let mut v = json!({"v": 1, "idempotency_key": key, "to": to, "text": {"body": "Your order shipped 🚚"}});
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    v.to_string()
}

#[tokio::test]
async fn a_template_goes_to_meta_once_and_its_statuses_come_back() {
    let w = World::new("send-ok").await;
    w.enqueue(&template("order-17-shipped", ANA, "utility"))
        .await;
    let report = w.run().await;
    assert_eq!((report.received, report.failed, report.deleted), (1, 0, 1));

    let sent = w.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["to"], ANA);
    assert_eq!(sent[0]["template"]["name"], "order_shipped");
    assert_eq!(
        sent[0]["biz_opaque_callback_data"],
        "wahook:order-17-shipped"
    );

    let entry = w.ledger("order-17-shipped").await.unwrap();
    assert_eq!(entry.state, SendState::Sent);
    let wamid = entry.wamid.unwrap().as_str().to_owned();
    let record = w.harness.message_item(&wamid).await.unwrap();
    assert_eq!(record["direction"], "out");
    assert_eq!(record["idempotency_key"], "order-17-shipped");
    assert_eq!(record["send_callback_data"], "order-17");
    assert_eq!(record["category"], "utility");
    assert_eq!(record["contact"], format!("{NUMBER}#5215512345678"));

    w.eventually("the read status", || async {
        w.harness
            .message_item(&wamid)
            .await
            .is_some_and(|m| m.get("status").is_some_and(|s| s == "read"))
    })
    .await;
}

#[tokio::test]
async fn the_same_sqs_message_twice_makes_one_graph_call() {
    let w = World::new("send-dup").await;
    let body = template("order-18-shipped", ANA, "utility");
    w.enqueue(&body).await;
    w.run().await;
    w.enqueue(&body).await; // SQS redelivers, or the producer sends it again
    let report = w.run().await;
    assert_eq!(
        (report.failed, report.deleted),
        (0, 1),
        "the duplicate is acknowledged"
    );
    assert_eq!(w.sent().len(), 1, "one call to Meta");
}

#[tokio::test]
async fn one_poison_one_transient_and_eight_good_records() {
    let w = World::new("send-mixed").await;
    w.sim.script("+15550000009", Fault::ServerError, 1);
    w.enqueue("this is not JSON").await;
    w.enqueue(&template("mixed-transient", "+15550000009", "utility"))
        .await;
    for i in 0..8 {
        w.enqueue(&template(
            &format!("mixed-good-{i}"),
            &format!("+1555000000{i}"),
            "utility",
        ))
        .await;
    }
    let report = w.run().await;
    assert_eq!(report.received, 10);
    assert_eq!(
        report.failed, 1,
        "only the transient record fails in the batch response"
    );
    assert_eq!(w.sent().len(), 8);

    let dlq = w.dead_letters().await;
    assert_eq!(dlq.len(), 1, "the poison record went to the DLQ at once");
    assert_eq!(dlq[0].body, "this is not JSON");
    assert_eq!(dlq[0].attributes["wahook-error"], "invalid_request");
    assert!(
        dlq[0].attributes["wahook-reason"].contains("not a version 1 send request"),
        "{:?}",
        dlq[0].attributes
    );

    assert_eq!(
        w.ledger("mixed-transient").await.unwrap().state,
        SendState::Retry
    );
    // Its backoff passes; Meta is back.
    w.expedite(&report).await;
    let again = w.run().await;
    assert_eq!((again.received, again.failed), (1, 0));
    assert_eq!(
        w.ledger("mixed-transient").await.unwrap().state,
        SendState::Sent
    );
    assert_eq!(w.sent().len(), 9);
}

#[tokio::test]
async fn invalid_requests_never_reach_meta_and_say_why() {
    let w = World::new("send-invalid").await;
    w.enqueue(r#"{"v":2,"idempotency_key":"bad-1","to":"+15551234567","text":{"body":"x"}}"#)
        .await;
    w.enqueue(r#"{"v":1,"idempotency_key":"bad-2","to":"15551234567","text":{"body":"x"}}"#)
        .await;
    let report = w.run().await;
    assert_eq!(
        (report.failed, report.deleted),
        (0, 2),
        "they do not burn retries"
    );
    assert!(w.sent().is_empty());
    let dlq = w.dead_letters().await;
    let reasons: Vec<&str> = dlq
        .iter()
        .map(|d| d.attributes["wahook-reason"].as_str())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("v: 2 is not supported")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("to: must be a phone number in E.164 with its leading +")),
        "{reasons:?}"
    );
    let rejected = w.ledger("bad-2").await.unwrap();
    assert_eq!(
        rejected.state,
        SendState::Rejected,
        "a producer can look the key up"
    );
    assert!(rejected.reason.unwrap().contains("leading +"));
}

#[tokio::test]
async fn a_junk_body_of_thousands_of_keys_is_dead_lettered_with_a_short_reason() {
    let w = World::new("send-junk").await;
    let keys: String = (0..5_000).map(|i| format!(r#","junk_{i}":{i}"#)).collect();
    w.enqueue(&format!(
        r#"{{"v":1,"idempotency_key":"junk-1","to":"+15551234567","text":{{"body":"x"}}{keys}}}"#
    ))
    .await;
    let report = w.run().await;
    assert_eq!((report.failed, report.deleted), (0, 1));
    let dlq = w.dead_letters().await;
    assert_eq!(dlq.len(), 1);
    let reason = &dlq[0].attributes["wahook-reason"];
    assert!(reason.len() < 1_300, "{} bytes", reason.len());
    assert!(reason.contains("more problems"), "{reason}");
    assert_eq!(w.ledger("junk-1").await.unwrap().state, SendState::Rejected);
}

#[tokio::test]
async fn a_rejected_key_is_taken_over_by_the_corrected_request() {
    let w = World::new("send-rejected-takeover").await;
    // Refused at the edge (no leading +): recorded as rejected under its key.
    w.enqueue(r#"{"v":1,"idempotency_key":"fix-1","to":"15551234567","text":{"body":"x"}}"#)
        .await;
    w.run().await;
    assert_eq!(w.ledger("fix-1").await.unwrap().state, SendState::Rejected);
    // The producer fixes it and sends again under the same key: it goes, once.
    w.enqueue(&template("fix-1", ANA, "utility")).await;
    let report = w.run().await;
    assert_eq!((report.failed, report.deleted), (0, 1));
    let e = w.ledger("fix-1").await.unwrap();
    assert_eq!(e.state, SendState::Sent);
    assert_eq!(w.sent().len(), 1);
    // And a redelivery of the corrected request is a duplicate, as for any sent key.
    w.enqueue(&template("fix-1", ANA, "utility")).await;
    w.run().await;
    assert_eq!(w.sent().len(), 1);
}

#[tokio::test]
async fn a_sender_number_outside_the_allow_list_is_dead_lettered() {
    let w = World::new("send-from-allow").await;
    w.enqueue(&text("from-1", ANA, json!({"from": "999999999999999"})))
        .await;
    let report = w.run().await;
    assert_eq!((report.failed, report.deleted), (0, 1));
    assert!(w.sent().is_empty());
    let dlq = w.dead_letters().await;
    assert_eq!(dlq[0].attributes["wahook-error"], "from_not_allowed");
    assert!(dlq[0].attributes["wahook-reason"].contains("WAHOOK_ALLOWED_PHONE_NUMBER_IDS"));
    assert_eq!(w.ledger("from-1").await.unwrap().state, SendState::Rejected);
}

#[tokio::test]
async fn retries_that_run_out_are_dead_lettered_by_the_sender_with_the_last_error() {
    let w = World::with("send-exhausted", |o| o.max_receive_count = 2).await;
    w.sim.script(ANA, Fault::Code(130_429), 5);
    w.enqueue(&template("tired-1", ANA, "utility")).await;
    let first = w.run().await;
    assert_eq!(first.failed, 1);
    w.expedite(&first).await;
    let second = w.run().await;
    assert_eq!(
        (second.failed, second.deleted),
        (0, 1),
        "the last allowed delivery ends in the DLQ, not in SQS's silent move"
    );
    let dlq = w.dead_letters().await;
    assert_eq!(dlq[0].attributes["wahook-error"], "retries_exhausted");
    assert!(
        dlq[0].attributes["wahook-reason"].contains("Rate limit hit"),
        "{:?}",
        dlq[0].attributes
    );
    let e = w.ledger("tired-1").await.unwrap();
    assert_eq!(e.dead_letter.as_deref(), Some("retries_exhausted"));
    assert_eq!(
        e.state,
        SendState::Retry,
        "a redrive from the DLQ may still send it"
    );
}

#[tokio::test]
async fn a_key_reused_for_another_message_is_refused() {
    let w = World::new("send-reuse").await;
    w.enqueue(&template("reused-key", ANA, "utility")).await;
    w.run().await;
    w.enqueue(&template("reused-key", JOAO, "utility")).await;
    w.run().await;
    assert_eq!(w.sent().len(), 1);
    let dlq = w.dead_letters().await;
    assert_eq!(dlq[0].attributes["wahook-error"], "key_reused");
}

#[tokio::test]
async fn marketing_to_an_opted_out_contact_makes_no_call() {
    let w = World::new("send-optout").await;
    w.user_writes(JOAO, "STOP", false).await;
    w.enqueue(&template("promo-1", JOAO, "marketing")).await;
    w.run().await;
    assert!(w.sent().is_empty(), "no call to Meta");
    let entry = w.ledger("promo-1").await.unwrap();
    assert_eq!(entry.state, SendState::Suppressed);
    assert!(entry.reason.unwrap().contains("opted out of marketing"));
}

#[tokio::test]
async fn consent_required_and_missing_is_suppressed() {
    let w = World::with("send-consent", |o| {
        o.policy.consent_required = vec![wahook::domain::preferences::Category::Marketing];
    })
    .await;
    w.enqueue(&template("promo-2", ANA, "marketing")).await;
    w.run().await;
    assert!(w.sent().is_empty());
    assert_eq!(
        w.ledger("promo-2").await.unwrap().state,
        SendState::Suppressed
    );
    // The user says START: that undoes an opt-out, but it is not the consent asked for.
    w.user_writes(ANA, "START", false).await;
    w.enqueue(&template("promo-3", ANA, "marketing")).await;
    w.run().await;
    assert!(w.sent().is_empty());
    // The producer records the consent its web form collected (written the CRM's way): now it goes.
    w.enqueue(&consent("+525512345678", "marketing", "opted_in", 60))
        .await;
    w.run().await;
    w.enqueue(&template("promo-4", ANA, "marketing")).await;
    w.run().await;
    assert_eq!(w.sent().len(), 1);
    assert_eq!(w.ledger("promo-4").await.unwrap().state, SendState::Sent);
}

fn consent(to: &str, category: &str, consent: &str, secs_ago: i64) -> String {
    let at = wahook::domain::time::UnixTime::from_secs(
        wahook::domain::time::UnixTime::now().secs() - secs_ago,
    );
    json!({"v": 1, "kind": "consent", "to": to, "category": category, "consent": consent,
        "at": at.to_rfc3339(), "source": "web_form", "evidence": "form 77"})
    .to_string()
}

#[tokio::test]
async fn consent_requests_merge_like_every_other_source_and_bad_ones_say_why() {
    let w = World::with("send-consent-req", |o| {
        o.policy.consent_required = vec![wahook::domain::preferences::Category::Marketing];
    })
    .await;
    // The person opts out now; a consent collected an hour ago arrives later: no change.
    w.user_writes(JOAO, "STOP", false).await;
    w.enqueue(&consent(JOAO, "marketing", "opted_in", 3600))
        .await;
    // Bad consent requests: an unknown category, `at` a day ahead, no `to`.
    w.enqueue(&consent(JOAO, "promos", "opted_in", 0)).await;
    w.enqueue(&consent(JOAO, "marketing", "opted_in", -86_400))
        .await;
    w.enqueue(r#"{"v":1,"kind":"consent","category":"marketing","consent":"opted_in","at":"2026-12-01T10:00:00Z","source":"web_form"}"#)
        .await;
    let report = w.run().await;
    assert_eq!((report.failed, report.deleted), (0, 4));
    w.enqueue(&template("promo-j", JOAO, "marketing")).await;
    w.run().await;
    assert!(w.sent().is_empty());
    let entry = w.ledger("promo-j").await.unwrap();
    assert_eq!(entry.state, SendState::Suppressed);
    assert!(entry.reason.unwrap().contains("opted out"));

    let dlq = w.dead_letters().await;
    let mut reasons: Vec<String> = dlq
        .iter()
        .map(|d| d.attributes["wahook-reason"].clone())
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("category: unknown category \"promos\"")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("in the future")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("to: is required")),
        "{reasons:?}"
    );
    assert!(
        dlq.iter()
            .all(|d| d.attributes["wahook-error"] == "invalid_consent"),
        "{dlq:?}"
    );
}

#[tokio::test]
async fn an_opt_out_recorded_in_a_batch_holds_for_the_sends_beside_it() {
    let w = World::new("send-consent-batch").await;
    // One batch: the send first on the queue, the producer's "stop everything" after it.
    w.enqueue(&template("promo-b", ANA, "marketing")).await;
    w.enqueue(&consent("+525512345678", "all", "opted_out", 5))
        .await;
    w.run().await;
    assert!(w.sent().is_empty(), "{:?}", w.sent());
    assert_eq!(
        w.ledger("promo-b").await.unwrap().state,
        SendState::Suppressed
    );
}

/// Meta writes a Mexican mobile `521…` where a CRM writes `+52…`, and Brazil's with or without the
/// ninth digit: one person either way, for opt-outs and for the window.
#[tokio::test]
async fn every_spelling_of_a_number_reaches_one_person() {
    let w = World::new("send-spellings").await;
    w.user_writes("5215512345678", "BAJA", false).await;
    w.user_writes("551188776655", "Oi", false).await;
    w.enqueue(&template("mx-promo", "+525512345678", "marketing"))
        .await;
    w.enqueue(&text("mx-reply", "+52 55 1234 5678", json!({})))
        .await;
    w.enqueue(&text("br-reply", "+5511988776655", json!({})))
        .await;
    w.run().await;
    let promo = w.ledger("mx-promo").await.unwrap();
    assert_eq!(promo.state, SendState::Suppressed, "{promo:?}");
    let sent = w.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter().all(|m| m["type"] == "text"),
        "free-form inside the window: {sent:?}"
    );
    assert_eq!(w.ledger("br-reply").await.unwrap().state, SendState::Sent);
}

/// A spelling no rule covers: Meta's answer names its own `wa_id`, the producer's form becomes an
/// alias, and the person's STOP (written from Meta's form) holds for the producer's next send.
#[tokio::test]
async fn a_spelling_meta_answers_with_is_learned_from_the_send() {
    let w = World::with("send-learned", |o| {
        o.wa_ids = [("447700900123".to_string(), "4407700900123".to_string())].into();
    })
    .await;
    w.enqueue(&text(
        "l-1",
        "+447700900123",
        json!({"category": "utility",
        "fallback_template": {"name": "order_update", "language": "en"}}),
    ))
    .await;
    w.run().await;
    assert_eq!(w.ledger("l-1").await.unwrap().state, SendState::Sent);
    w.user_writes("4407700900123", "STOP", false).await;
    w.enqueue(&template("l-promo", "+447700900123", "marketing"))
        .await;
    w.run().await;
    assert_eq!(
        w.ledger("l-promo").await.unwrap().state,
        SendState::Suppressed,
        "the producer's spelling leads to the person Meta knows"
    );
}

#[tokio::test]
async fn a_bsuid_recipient_goes_in_recipient_with_the_known_phone_beside_it() {
    let w = World::new("send-bsuid").await;
    w.user_writes_as(Some("15551230000"), Some("US.13491208655302741918"), "hi")
        .await;
    w.enqueue(&text("b-reply", "US.13491208655302741918", json!({})))
        .await;
    // Known only by a BSUID nobody has a phone for: an authentication template cannot go.
    w.enqueue(&template(
        "b-otp",
        "US.99999999999999999999",
        "authentication",
    ))
    .await;
    w.run().await;
    let sent = w.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["recipient"], "US.13491208655302741918");
    assert_eq!(sent[0]["to"], "+15551230000");
    let otp = w.ledger("b-otp").await.unwrap();
    assert_eq!(otp.state, SendState::Rejected);
    assert!(otp.reason.unwrap().contains("phone"));
}

#[tokio::test]
async fn free_form_text_needs_the_window_or_goes_as_its_fallback() {
    let w = World::new("send-window").await;
    // Never wrote: closed window, no fallback.
    w.enqueue(&text("t-closed", JOAO, json!({}))).await;
    // Never wrote, with a fallback template.
    w.enqueue(&text(
        "t-fallback",
        JOAO,
        json!({"category": "utility", "fallback_template": {"name": "order_update", "language": "pt_BR"}}),
    ))
    .await;
    w.run().await;
    assert_eq!(
        w.ledger("t-closed").await.unwrap().state,
        SendState::WindowClosed
    );
    let sent = w.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["type"], "template");
    assert_eq!(sent[0]["template"]["name"], "order_update");

    // The user writes: the window is open and the text goes as text.
    w.user_writes(ANA, "Hola", false).await;
    w.enqueue(&text("t-open", ANA, json!({}))).await;
    w.run().await;
    let sent = w.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1]["type"], "text");
    assert_eq!(sent[1]["text"]["body"], "Your order shipped 🚚");
}

#[tokio::test]
async fn meta_saying_the_window_closed_sends_the_fallback() {
    let w = World::new("send-131047").await;
    w.user_writes(ANA, "Hola", false).await;
    w.sim.script(ANA, Fault::Code(131_047), 1);
    w.enqueue(&text(
        "t-stale",
        ANA,
        json!({"category": "utility", "fallback_template": {"name": "order_update", "language": "es_MX"}}),
    ))
    .await;
    w.run().await;
    let sent = w.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["type"], "template");
    assert_eq!(w.ledger("t-stale").await.unwrap().state, SendState::Sent);
}

#[tokio::test]
async fn an_expired_request_is_recorded_and_not_sent() {
    let w = World::new("send-expired").await;
    let mut req: serde_json::Value =
        serde_json::from_str(&template("late-1", ANA, "utility")).unwrap();
    req["not_after"] = json!("2020-01-01T00:00:00Z");
    w.enqueue(&req.to_string()).await;
    w.run().await;
    assert!(w.sent().is_empty());
    assert_eq!(w.ledger("late-1").await.unwrap().state, SendState::Expired);
}

#[tokio::test]
async fn permanent_errors_are_recorded_and_acknowledged() {
    let w = World::new("send-permanent").await;
    w.sim.script(ANA, Fault::Code(132_001), 1);
    w.sim.script(JOAO, Fault::Code(131_050), 1);
    w.enqueue(&template("perm-1", ANA, "utility")).await;
    w.enqueue(&template("perm-2", JOAO, "marketing")).await;
    let report = w.run().await;
    assert_eq!((report.failed, report.deleted), (0, 2));
    let e = w.ledger("perm-1").await.unwrap();
    assert_eq!(e.state, SendState::Failed);
    assert!(e.reason.unwrap().contains("Template name does not exist"));
    assert_eq!(w.ledger("perm-2").await.unwrap().state, SendState::Failed);

    // 131050 also opts the contact out of marketing: the next promo is suppressed without a call.
    w.enqueue(&template("perm-3", JOAO, "marketing")).await;
    w.run().await;
    assert_eq!(
        w.ledger("perm-3").await.unwrap().state,
        SendState::Suppressed
    );
    assert!(w.sent().is_empty());
}

#[tokio::test]
async fn throughput_and_pair_rate_errors_retry_with_their_own_backoff() {
    let w = World::new("send-transient").await;
    w.sim.script(ANA, Fault::Code(130_429), 1);
    w.sim.script(JOAO, Fault::Code(131_056), 1);
    w.enqueue(&template("rl-1", ANA, "utility")).await;
    w.enqueue(&template("rl-2", JOAO, "utility")).await;
    let report = w.run().await;
    assert_eq!(report.failed, 2);
    assert_eq!(w.ledger("rl-1").await.unwrap().state, SendState::Retry);
    assert_eq!(w.ledger("rl-2").await.unwrap().state, SendState::Retry);
    w.expedite(&report).await;
    let again = w.run().await;
    assert_eq!((again.received, again.failed), (2, 0));
    assert_eq!(w.sent().len(), 2);
}

#[tokio::test]
async fn a_lost_answer_is_reconciled_from_status_webhooks_without_a_second_send() {
    let w = World::with("send-lost", |o| {
        o.graph_timeout = std::time::Duration::from_millis(700)
    })
    .await;
    w.sim.script(ANA, Fault::LostAnswer, 1);
    w.enqueue(&template("lost-1", ANA, "utility")).await;
    let report = w.run().await;
    assert_eq!(report.failed, 1, "the outcome is unknown: try again later");
    assert_eq!(w.ledger("lost-1").await.unwrap().state, SendState::Unknown);
    assert_eq!(w.sent().len(), 1, "Meta did accept it");

    // Meta's status webhooks for that message reach the webhook meanwhile.
    let wamid = w.sim.accepted()[0].wamid.clone();
    w.eventually("the sent status", || async {
        w.harness.message_item(&wamid).await.is_some()
    })
    .await;

    w.expedite(&report).await;
    let again = w.run().await;
    assert_eq!((again.received, again.failed), (1, 0));
    let entry = w.ledger("lost-1").await.unwrap();
    assert_eq!(entry.state, SendState::Sent);
    assert_eq!(
        entry.wamid.as_ref().map(|w| w.as_str()),
        Some(wamid.as_str())
    );
    assert_eq!(w.sent().len(), 1, "no second send");
}

/// A 502 with no Meta error object after the request was written is a lost answer, not a retry:
/// reconciled from status webhooks, no second send.
#[tokio::test]
async fn a_bodyless_502_is_reconciled_not_resent() {
    let w = World::new("send-502").await;
    w.sim.script(ANA, Fault::BadGateway, 1);
    w.enqueue(&template("gw-1", ANA, "utility")).await;
    let report = w.run().await;
    assert_eq!(report.failed, 1);
    assert_eq!(w.ledger("gw-1").await.unwrap().state, SendState::Unknown);
    let wamid = w.sim.accepted()[0].wamid.clone();
    w.eventually("the sent status", || async {
        w.harness.message_item(&wamid).await.is_some()
    })
    .await;
    w.expedite(&report).await;
    w.run().await;
    assert_eq!(w.ledger("gw-1").await.unwrap().state, SendState::Sent);
    assert_eq!(w.sent().len(), 1, "no second send");
}

#[tokio::test]
async fn without_status_webhooks_a_lost_answer_is_resent_once_then_given_up() {
    let w = World::with("send-lost-twice", |o| {
        o.graph_timeout = std::time::Duration::from_millis(700);
        o.status_webhooks = false;
        o.reconcile_wait_secs = 0;
    })
    .await;
    w.sim.script(ANA, Fault::LostAnswer, 2);
    w.enqueue(&template("lost-2", ANA, "utility")).await;
    let first = w.run().await;
    assert_eq!(w.ledger("lost-2").await.unwrap().state, SendState::Unknown);
    w.expedite(&first).await;
    let second = w.run().await;
    assert_eq!(second.failed, 1);
    assert_eq!(
        w.sent().len(),
        2,
        "the one documented duplicate: a resend after the wait"
    );
    let entry = w.ledger("lost-2").await.unwrap();
    assert!(entry.resent && entry.state == SendState::Unknown);
    w.expedite(&second).await;
    let third = w.run().await;
    assert_eq!((third.failed, third.deleted), (0, 1));
    assert_eq!(
        w.ledger("lost-2").await.unwrap().state,
        SendState::OutcomeUnknown
    );
    assert_eq!(w.sent().len(), 2, "never a third send");
}

#[tokio::test]
async fn a_reply_to_a_click_to_whatsapp_user_opens_the_free_entry_point_window() {
    let w = World::new("send-fep").await;
    w.user_writes(ANA, "Quiero info", true).await;
    w.enqueue(&text("fep-1", ANA, json!({}))).await;
    w.run().await;
    let contact = w
        .harness
        .store()
        .find_contact(&wahook::domain::ids::ContactKey::from_stored(format!(
            "{NUMBER}#5215512345678"
        )))
        .await
        .unwrap()
        .unwrap()
        .1;
    let opened = contact
        .entry_point_opened_at
        .expect("the FEP window is open");
    assert_eq!(
        contact.entry_point_expires_at().unwrap().secs() - opened.secs(),
        72 * 3600
    );
}

#[tokio::test]
async fn dynamodb_requests_per_accepted_send_stay_within_three() {
    // With every gate on: the registry read, and the marketing cap's counts (read and written).
    for cap in [None, Some((2, 7))] {
        // Status webhooks off: the webhook shares this DynamoDB client and its requests would count.
        let w = World::with("send-cost", |o| {
            o.status_webhooks = false;
            o.marketing_cap =
                cap.map(
                    |(max, window_days)| wahook::domain::frequency::FrequencyCap {
                        max,
                        window_days,
                    },
                );
        })
        .await;
        for i in 0..10 {
            w.enqueue(&template(
                &format!("cost-{i}"),
                &format!("+1555100000{i}"),
                "marketing",
            ))
            .await;
        }
        w.harness.counter.reset();
        let report = w.run().await;
        assert_eq!(report.deleted, 10);
        assert_eq!(w.sent().len(), 10, "{cap:?}");
        let requests: usize = w.harness.counter.snapshot().values().sum();
        println!(
            "cap {cap:?}: {requests} DynamoDB requests for 10 sends: {:?}",
            w.harness.counter.snapshot()
        );
        assert!(
            requests <= 30,
            "cap {cap:?}: {requests} DynamoDB requests for 10 sends: {:?}",
            w.harness.counter.snapshot()
        );
    }
}

#[tokio::test]
async fn a_storage_failure_after_meta_accepted_is_retried_in_place_not_resent() {
    let w = World::with("send-record-retry", |o| o.status_webhooks = false).await;
    // Recording the sent state fails twice right after Meta accepted the message.
    w.harness.fault.fail_next("TransactWriteItems", 2);
    w.enqueue(&template("record-retry-1", ANA, "utility")).await;
    let report = w.run().await;
    assert_eq!((report.failed, report.deleted), (0, 1));
    assert_eq!(w.harness.fault.injected(), 2);
    assert_eq!(
        w.ledger("record-retry-1").await.unwrap().state,
        SendState::Sent
    );
    assert_eq!(w.sent().len(), 1);
}

#[tokio::test]
async fn the_sample_sqs_event_runs_through_the_lambda_adapter() {
    let w = World::new("send-fixture").await;
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&wahook_tests::fixtures::event("sqs-sends-batch")).unwrap();
    let response = wahook_sender::handle(
        &w.sender,
        lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()),
    )
    .await
    .unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    assert_eq!(w.sent().len(), 1, "the valid record went out");
    let dlq = w.dead_letters().await;
    assert_eq!(
        dlq.len(),
        2,
        "the poison and the invalid record are on the DLQ"
    );
    assert_eq!(
        w.ledger("order-1235-shipped").await.unwrap().state,
        SendState::Rejected
    );
}

#[tokio::test]
async fn a_send_is_not_started_when_the_invocation_has_too_little_time_left() {
    let w = World::new("send-late").await;
    w.enqueue(&template("late-1", ANA, "utility")).await;
    // 2 s of invocation, and a send needs the Graph timeout (1.5 s) + two storage operations.
    let short = w
        .poller
        .clone()
        .with_function_timeout(std::time::Duration::from_secs(2));
    let report = short.poll_once(0).await.expect("poll");
    assert_eq!((report.failed, report.deleted), (1, 0), "back to the queue");
    assert_eq!(w.sim.calls(), 0, "Meta was not called");
    assert!(
        w.ledger("late-1").await.is_none(),
        "and nothing was claimed"
    );

    w.eventually("the next invocation sends it", || async {
        w.run().await;
        w.ledger("late-1").await.map(|e| e.state) == Some(SendState::Sent)
    })
    .await;
    assert_eq!(w.sent().len(), 1);
}

/// Meta tells the webhook about `order_shipped (es_MX)` at `time`.
async fn meta_says(w: &World, event: &str, category: &str, time: i64) {
    let body = build::template_status("order_shipped", "es_MX", event, category, time);
    let reply = w.harness.deliver(&body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// A little before now: the registry's times are Meta's, and a pause older than 7 h is stale.
fn recently() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 600
}

#[tokio::test]
async fn a_paused_template_waits_without_a_call_and_goes_once_when_meta_approves_it_again() {
    let w = World::new("tpl-paused").await;
    let t = recently();
    meta_says(&w, "APPROVED", "UTILITY", t).await;
    w.enqueue(&template("paused-1", ANA, "utility")).await;
    // Paused between the enqueue and the send.
    meta_says(&w, "PAUSED", "UTILITY", t + 60).await;
    let first = w.run().await;
    assert_eq!(
        (first.failed, first.deleted),
        (1, 0),
        "it waits in the queue"
    );
    assert_eq!(w.sim.calls(), 0, "no call to Meta for a paused template");
    assert!(w.ledger("paused-1").await.is_none(), "nothing claimed");

    meta_says(&w, "REINSTATED", "UTILITY", t + 120).await;
    w.expedite(&first).await;
    let second = w.run().await;
    assert_eq!((second.failed, second.deleted), (0, 1));
    assert_eq!(w.ledger("paused-1").await.unwrap().state, SendState::Sent);
    assert_eq!(w.sent().len(), 1, "sent once");
}

#[tokio::test]
async fn a_disabled_template_is_unavailable_with_no_call() {
    let w = World::new("tpl-disabled").await;
    let t = recently();
    meta_says(&w, "DISABLED", "UTILITY", t).await;
    w.enqueue(&template("disabled-1", ANA, "utility")).await;
    let report = w.run().await;
    assert_eq!((report.failed, report.deleted), (0, 1), "final");
    assert_eq!(w.sim.calls(), 0);
    let e = w.ledger("disabled-1").await.unwrap();
    assert_eq!(e.state, SendState::TemplateUnavailable);
    let reason = e.reason.unwrap();
    assert!(
        reason.contains("order_shipped (es_MX) is DISABLED"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_marketing_template_labelled_utility_still_meets_the_marketing_opt_out() {
    let w = World::new("tpl-mislabel").await;
    let t = recently();
    meta_says(&w, "APPROVED", "MARKETING", t).await;
    w.user_writes(JOAO, "STOP", false).await;
    w.enqueue(&template("mislabel-1", JOAO, "utility")).await;
    w.run().await;
    assert!(
        w.sent().is_empty(),
        "Meta's category gates the opt-out, not the label"
    );
    let e = w.ledger("mislabel-1").await.unwrap();
    assert_eq!(e.state, SendState::Suppressed);
    assert!(e.reason.unwrap().contains("opted out of marketing"));

    // The same send, labelled utility, to someone who did not opt out goes.
    w.enqueue(&template("mislabel-2", ANA, "utility")).await;
    w.run().await;
    assert_eq!(w.sent().len(), 1);
}

#[tokio::test]
async fn an_unknown_template_is_sent_by_default_and_refused_when_configured() {
    let w = World::new("tpl-unknown-send").await;
    w.enqueue(&template("unknown-1", ANA, "utility")).await;
    w.run().await;
    assert_eq!(
        w.sent().len(),
        1,
        "the registry is still filling: Meta judges"
    );

    let w = World::with("tpl-unknown-refuse", |o| {
        o.templates.unknown = wahook::domain::template::UnknownTemplates::Refuse;
    })
    .await;
    w.enqueue(&template("unknown-2", ANA, "utility")).await;
    w.run().await;
    assert!(w.sent().is_empty());
    let e = w.ledger("unknown-2").await.unwrap();
    assert_eq!(e.state, SendState::TemplateUnavailable);
    assert!(e.reason.unwrap().contains("not in the registry"));
}

#[tokio::test]
async fn a_text_outside_the_window_falls_back_under_the_fallbacks_own_category() {
    let w = World::new("tpl-fallback").await;
    meta_says(&w, "APPROVED", "MARKETING", recently()).await;
    // Joao stopped marketing from WhatsApp's own menu: an opt-out, and no message, so no window.
    let stop = build::preference(JOAO.trim_start_matches('+'), true, recently());
    assert_eq!(w.harness.deliver(&stop).await.status, 200);
    // Labelled utility; the text cannot go, and its fallback is a template Meta calls marketing.
    let mut req: serde_json::Value = serde_json::from_str(&text("fb-1", JOAO, json!({}))).unwrap();
    req["category"] = json!("utility");
    req["fallback_template"] = json!({"name": "order_shipped", "language": "es_MX"});
    w.enqueue(&req.to_string()).await;
    w.run().await;
    let e = w.ledger("fb-1").await.unwrap();
    assert_eq!(e.state, SendState::Suppressed, "{:?}", e.reason);
    assert!(e.reason.unwrap().contains("opted out of marketing"));
    assert!(w.sent().is_empty());
}

#[tokio::test]
async fn the_simulator_pauses_a_template_through_metas_webhook_and_the_send_waits_for_it() {
    use wahook_meta_sim::SimTemplate;
    let w = World::new("tpl-sim").await;
    let set = |status: &str| SimTemplate {
        name: "order_shipped".into(),
        language: "es_MX".into(),
        status: status.into(),
        category: "UTILITY".into(),
        components: Vec::new(),
    };
    // Meta pauses it: the simulator refuses sends of it (132015) and posts the status webhook.
    assert_eq!(w.sim.set_template(set("PAUSED")).await.unwrap(), vec![200]);
    w.enqueue(&template("sim-paused-1", ANA, "utility")).await;
    let first = w.run().await;
    assert_eq!(first.failed, 1, "held");
    assert_eq!(w.sim.calls(), 0, "the registry knew: Meta was not asked");

    // Meta approves it again (a second later, so the newer event is the later one).
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(
        w.sim.set_template(set("APPROVED")).await.unwrap(),
        vec![200]
    );
    w.expedite(&first).await;
    let second = w.run().await;
    assert_eq!((second.failed, second.deleted), (0, 1));
    assert_eq!(w.sent().len(), 1, "sent once");
    assert_eq!(
        w.ledger("sim-paused-1").await.unwrap().state,
        SendState::Sent
    );
}

/// Without the registry Meta is the judge: one call, and the send ends `state` with Meta's `code`.
async fn meta_judges_without_the_registry(
    name: &str,
    t: wahook_meta_sim::SimTemplate,
    state: SendState,
    code: &str,
) {
    let w = World::with(name, |o| o.templates.waba_id = None).await;
    w.sim.set_template(t).await.unwrap();
    let key = format!("{name}-1");
    w.enqueue(&template(&key, ANA, "utility")).await;
    w.run().await;
    assert_eq!(w.sim.calls(), 1, "no registry: Meta is the judge");
    let e = w.ledger(&key).await.unwrap();
    assert_eq!(e.state, state);
    let reason = e.reason.unwrap_or_default();
    assert!(reason.contains(code), "{reason}");
}

#[tokio::test]
async fn without_the_registry_the_simulator_refuses_a_disabled_template_as_meta_does() {
    let disabled = wahook_meta_sim::SimTemplate {
        name: "order_shipped".into(),
        language: "es_MX".into(),
        status: "DISABLED".into(),
        category: "UTILITY".into(),
        components: Vec::new(),
    };
    meta_judges_without_the_registry("tpl-sim-noreg", disabled, SendState::Failed, "132016").await;
}

#[tokio::test]
async fn the_sync_reads_every_page_of_metas_listing_into_the_registry() {
    use wahook::domain::template::TemplateKey;
    use wahook_meta_sim::SimTemplate;
    // No webhooks from the simulator: only the sync can teach the registry.
    let w = World::with("tpl-sync", |o| o.status_webhooks = false).await;
    let names: Vec<String> = (0..55).map(|i| format!("promo_{i:03}")).collect();
    for (i, name) in names.iter().enumerate() {
        let status = if i == 7 { "PAUSED" } else { "APPROVED" };
        let category = if i % 2 == 0 { "MARKETING" } else { "UTILITY" };
        w.sim
            .set_template(SimTemplate {
                name: name.clone(),
                language: "es_MX".into(),
                status: status.into(),
                category: category.into(),
                components: Vec::new(),
            })
            .await
            .unwrap();
    }
    let sync = template_sync(&w, wahook_tests::sender::ACCESS_TOKEN);
    let store = w.harness.store();
    let now = wahook::domain::time::UnixTime::now();
    // What webhooks said before the sync: a notice of a coming category change, and a pause dated
    // after the sync's read. Neither is undone by the listing.
    let notice = build::template_category(
        "promo_000",
        "es_MX",
        "MARKETING",
        Some("UTILITY"),
        now.secs() - 100,
    );
    assert_eq!(w.harness.deliver(&notice).await.status, 200);
    let pause = build::template_status("promo_001", "es_MX", "PAUSED", "UTILITY", now.secs() + 60);
    assert_eq!(w.harness.deliver(&pause).await.status, 200);
    let report = sync.run(now).await.expect("sync");
    assert_eq!(report.templates, 55);
    assert_eq!(report.pages, 2, "50 a page: {report:?}");
    assert_eq!(w.sim.template_pages(), 2);

    let keys: Vec<TemplateKey> = names
        .iter()
        .map(|n| TemplateKey::new(wahook_tests::fixtures::WABA, n, "es_MX"))
        .collect();
    let found = store.find_templates(&keys).await.unwrap();
    assert_eq!(found.len(), 55, "every page landed");
    assert_eq!(found[&keys[7]].status.as_ref().unwrap().value, "PAUSED");
    assert_eq!(
        found[&keys[0]].impending_category.as_ref().map(|c| c.value),
        Some(wahook::domain::preferences::Category::Utility),
        "the sync leaves an announced change's notice"
    );
    assert_eq!(
        found[&keys[1]].status.as_ref().unwrap().value,
        "PAUSED",
        "a webhook newer than the sync's read wins"
    );
    assert_eq!(
        found[&keys[8]].category.as_ref().unwrap().value,
        wahook::domain::preferences::Category::Marketing
    );

    // A template the sync found paused holds a send, with no call to Meta.
    let mut req: serde_json::Value =
        serde_json::from_str(&template("sync-1", ANA, "marketing")).unwrap();
    req["template"]["name"] = json!("promo_007");
    w.enqueue(&req.to_string()).await;
    let report = w.run().await;
    assert_eq!(report.failed, 1, "held");
    assert_eq!(w.sim.calls(), 0);
}

/// `order_shipped (es_MX)` as Meta lists it: a body with `vars` variables and a tracking button.
fn shipped_with(vars: usize) -> wahook_meta_sim::SimTemplate {
    let body: Vec<String> = (1..=vars).map(|i| format!("{{{{{i}}}}}")).collect();
    wahook_meta_sim::SimTemplate {
        name: "order_shipped".into(),
        language: "es_MX".into(),
        status: "APPROVED".into(),
        category: "UTILITY".into(),
        components: vec![
            json!({"type": "BODY", "text": format!("Tu pedido {} va en camino.", body.join(" "))}),
            json!({"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Gracias"}]}),
        ],
    }
}

/// The scheduled sync's entry point, against the simulator, with `token`.
fn template_sync(w: &World, token: &str) -> wahook::sync::TemplateSync {
    let graph = wahook::graph::GraphClient::new(
        wahook::graph::GraphConfig {
            base_url: w.sim.url(),
            ..Default::default()
        },
        wahook::secret::SecretString::new(token),
    )
    .unwrap();
    wahook::sync::TemplateSync::new(
        graph,
        w.harness.store().clone(),
        wahook_tests::fixtures::WABA.into(),
    )
}

/// Runs the scheduled sync the way Lambda does: through the function's adapter.
async fn run_sync_function(
    sync: &wahook::sync::TemplateSync,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    let event = lambda_runtime::LambdaEvent::new(
        json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}),
        lambda_runtime::Context::default(),
    );
    wahook_template_sync::handle(sync, event).await
}

#[tokio::test]
async fn a_send_whose_parameters_do_not_fit_the_listed_template_ends_with_no_call() {
    // No webhooks from the simulator: the scheduled sync is what teaches the registry the shape.
    let w = World::with("tpl-params", |o| o.status_webhooks = false).await;
    w.sim.set_template(shipped_with(2)).await.unwrap();
    let sync = template_sync(&w, wahook_tests::sender::ACCESS_TOKEN);
    let report = run_sync_function(&sync).await.expect("the scheduled sync");
    assert_eq!(report["templates"], 1, "{report}");

    // One body parameter for two variables: refused before Meta, saying what is wrong.
    w.enqueue(&template("params-1", ANA, "utility")).await;
    let run = w.run().await;
    assert_eq!((run.failed, run.deleted), (0, 1), "final");
    assert_eq!(w.sim.calls(), 0, "no call to Meta");
    let e = w.ledger("params-1").await.unwrap();
    assert_eq!(e.state, SendState::InvalidParameters);
    let reason = e.reason.unwrap();
    assert!(
        reason.contains("body has 2 variables but the request gives 1 parameter"),
        "{reason}"
    );

    // Two parameters fit, and go.
    let mut req: serde_json::Value =
        serde_json::from_str(&template("params-2", ANA, "utility")).unwrap();
    req["template"]["components"][0]["parameters"] =
        json!([{"type": "text", "text": "A-17"}, {"type": "text", "text": "hoy"}]);
    w.enqueue(&req.to_string()).await;
    w.run().await;
    assert_eq!(w.ledger("params-2").await.unwrap().state, SendState::Sent);

    // The template is edited to one variable and approved again: the registry's shape is older
    // than that approval, so it is not trusted until the next sync, and Meta (which has the new
    // version) judges: the one-parameter send goes.
    w.sim.set_template(shipped_with(1)).await.unwrap();
    meta_says(&w, "APPROVED", "UTILITY", recently() + 600).await;
    w.enqueue(&template("params-3", ANA, "utility")).await;
    w.run().await;
    assert_eq!(w.ledger("params-3").await.unwrap().state, SendState::Sent);
    assert_eq!(w.sent().len(), 2);
}

#[tokio::test]
async fn without_the_registry_the_simulator_answers_a_parameter_mismatch_with_132000() {
    // Meta's 132000 is the gate's own outcome: the ledger says the same whoever stopped it.
    meta_judges_without_the_registry(
        "tpl-params-noreg",
        shipped_with(2),
        SendState::InvalidParameters,
        "132000",
    )
    .await;
}

#[tokio::test]
async fn a_failed_scheduled_sync_fails_the_invocation() {
    let w = World::new("tpl-sync-fail").await;
    let err = run_sync_function(&template_sync(&w, "not-the-token"))
        .await
        .expect_err("a refused token fails the run, so Lambda's Errors alarm sees it");
    assert!(err.to_string().contains("190"), "{err}");
}

#[tokio::test]
async fn marketing_beyond_the_per_person_cap_is_frequency_capped_with_no_call() {
    let w = World::with("cap", |o| {
        o.marketing_cap = Some(wahook::domain::frequency::FrequencyCap {
            max: 2,
            window_days: 7,
        })
    })
    .await;
    // Meta calls the template marketing, whatever a producer labels it.
    meta_says(&w, "APPROVED", "MARKETING", recently()).await;
    for key in ["cap-1", "cap-2", "cap-3"] {
        w.enqueue(&template(key, ANA, "marketing")).await;
    }
    let first = w.run().await;
    assert_eq!((first.failed, first.deleted), (0, 3), "all final");
    let mut states = Vec::new();
    for key in ["cap-1", "cap-2", "cap-3"] {
        states.push(w.ledger(key).await.unwrap().state);
    }
    let capped = states
        .iter()
        .filter(|s| **s == SendState::FrequencyCapped)
        .count();
    assert_eq!(
        (w.sent().len(), capped),
        (2, 1),
        "two go, the third is capped within the batch: {states:?}"
    );

    // A later batch counts from the ledger: Ana is at the cap, even under a utility label.
    w.enqueue(&template("cap-4", ANA, "utility")).await;
    w.enqueue(&template("cap-5", JOAO, "marketing")).await;
    w.run().await;
    let e = w.ledger("cap-4").await.unwrap();
    assert_eq!(e.state, SendState::FrequencyCapped);
    assert!(
        e.reason
            .unwrap()
            .contains("2 marketing templates already sent"),
        "the reason says why"
    );
    assert_eq!(w.ledger("cap-5").await.unwrap().state, SendState::Sent);
    assert_eq!(w.sent().len(), 3, "no call for a capped send");

    // Text in the window is not marketing: the cap does not touch it.
    w.user_writes(ANA, "hola", false).await;
    w.enqueue(&text("cap-6", ANA, json!({}))).await;
    w.run().await;
    assert_eq!(w.ledger("cap-6").await.unwrap().state, SendState::Sent);
}

#[tokio::test]
async fn metas_own_marketing_cap_131049_is_recorded_as_frequency_capped() {
    let w = World::new("cap-meta").await;
    w.sim.script(ANA, Fault::Code(131_049), 1);
    w.enqueue(&template("cap-meta-1", ANA, "marketing")).await;
    let run = w.run().await;
    assert_eq!((run.failed, run.deleted), (0, 1), "final, not retried");
    let e = w.ledger("cap-meta-1").await.unwrap();
    assert_eq!(e.state, SendState::FrequencyCapped);
    assert!(e.reason.unwrap_or_default().contains("131049"));
}

/// Where the simulator received each accepted send: `messages` or `marketing_messages`.
fn endpoints(w: &World) -> Vec<String> {
    w.sim.accepted().into_iter().map(|m| m.endpoint).collect()
}

#[tokio::test]
async fn marketing_templates_go_to_the_marketing_messages_api_by_metas_category() {
    use wahook::domain::template::MarketingRoute;
    let w = World::with("mm-on", |o| {
        o.templates.marketing_route = MarketingRoute::On;
        o.templates.product_policy = Some("STRICT".into());
    })
    .await;
    meta_says(&w, "APPROVED", "MARKETING", recently()).await;
    // Labelled utility, but Meta calls it marketing: the Marketing Messages API, with the policy.
    w.enqueue(&template("mm-1", ANA, "utility")).await;
    // Text never goes there.
    w.user_writes(JOAO, "hola", false).await;
    w.enqueue(&text("mm-2", JOAO, json!({}))).await;
    w.run().await;
    assert_eq!(w.ledger("mm-1").await.unwrap().state, SendState::Sent);
    assert_eq!(w.ledger("mm-2").await.unwrap().state, SendState::Sent);
    let accepted = w.sim.accepted();
    let mm = accepted
        .iter()
        .find(|m| m.body["type"] == "template")
        .expect("the template was sent");
    assert_eq!(mm.endpoint, "marketing_messages");
    assert_eq!(mm.body["product_policy"], "STRICT");
    let text = accepted.iter().find(|m| m.body["type"] == "text").unwrap();
    assert_eq!(text.endpoint, "messages");

    // Meta reclassifies the template as utility: it goes to /messages from then on.
    let change =
        build::template_category("order_shipped", "es_MX", "UTILITY", None, recently() + 60);
    assert_eq!(w.harness.deliver(&change).await.status, 200);
    w.enqueue(&template("mm-3", ANA, "marketing")).await;
    w.run().await;
    assert_eq!(endpoints(&w).last().map(String::as_str), Some("messages"));
}

#[tokio::test]
async fn the_auto_route_follows_the_accounts_onboarding_from_the_sync_or_the_webhook() {
    // Auto is the default. Before anything is known: /messages.
    let w = World::with("mm-auto", |o| {
        o.status_webhooks = false;
        o.marketing_onboarding = Some("ONBOARDED".into());
    })
    .await;
    meta_says(&w, "APPROVED", "MARKETING", recently()).await;
    w.enqueue(&template("auto-1", ANA, "marketing")).await;
    w.run().await;
    assert_eq!(endpoints(&w), ["messages"]);
    // The sync reads the account's onboarding: marketing goes to the Marketing Messages API.
    let report = run_sync_function(&template_sync(&w, wahook_tests::sender::ACCESS_TOKEN))
        .await
        .unwrap();
    assert_eq!(report["marketing_onboarding"], "ONBOARDED", "{report}");
    w.enqueue(&template("auto-2", ANA, "marketing")).await;
    w.run().await;
    assert_eq!(endpoints(&w), ["messages", "marketing_messages"]);

    // Another deployment learns it from Meta's account_update event instead.
    let w = World::new("mm-auto-webhook").await;
    meta_says(&w, "APPROVED", "MARKETING", recently()).await;
    let signed = build::template_field(
        "account_update",
        json!({"event": "MM_LITE_TERMS_SIGNED", "waba_info": {"waba_id": wahook_tests::fixtures::WABA}}),
        recently(),
    );
    assert_eq!(w.harness.deliver(&signed).await.status, 200);
    w.enqueue(&template("auto-3", ANA, "marketing")).await;
    w.run().await;
    assert_eq!(endpoints(&w), ["marketing_messages"]);
}

#[tokio::test]
async fn a_send_the_marketing_messages_api_refuses_goes_once_through_messages() {
    use wahook::domain::template::MarketingRoute;
    let w = World::with("mm-refused", |o| {
        o.templates.marketing_route = MarketingRoute::On
    })
    .await;
    meta_says(&w, "APPROVED", "MARKETING", recently()).await;
    // The account is not eligible there: refused, so nothing was sent.
    w.sim.script(ANA, Fault::Code(134_100), 1);
    w.enqueue(&template("mm-refused-1", ANA, "marketing")).await;
    let run = w.run().await;
    assert_eq!((run.failed, run.deleted), (0, 1));
    assert_eq!(w.sim.calls(), 2, "one refused call, one send");
    assert_eq!(endpoints(&w), ["messages"]);
    assert_eq!(
        w.ledger("mm-refused-1").await.unwrap().state,
        SendState::Sent
    );

    // A template Meta has not classified is never routed there on the producer's label.
    let w = World::with("mm-label", |o| {
        o.templates.marketing_route = MarketingRoute::On
    })
    .await;
    w.enqueue(&template("mm-label-1", ANA, "marketing")).await;
    w.run().await;
    assert_eq!(endpoints(&w), ["messages"]);
}

#[tokio::test]
async fn a_template_the_marketing_messages_api_has_not_synced_yet_is_retried() {
    use wahook::domain::template::MarketingRoute;
    let w = World::with("mm-134101", |o| {
        o.templates.marketing_route = MarketingRoute::On
    })
    .await;
    meta_says(&w, "APPROVED", "MARKETING", recently()).await;
    w.sim.script(ANA, Fault::Code(134_101), 1);
    w.enqueue(&template("mm-retry-1", ANA, "marketing")).await;
    let first = w.run().await;
    assert_eq!(first.failed, 1, "retried, not failed");
    w.expedite(&first).await;
    let second = w.run().await;
    assert_eq!((second.failed, second.deleted), (0, 1));
    assert_eq!(endpoints(&w), ["marketing_messages"]);
}

#[tokio::test]
async fn a_paced_send_is_recorded_as_sent_and_held_and_a_dropped_one_fails_with_135000() {
    let w = World::new("paced").await;
    w.sim.script(ANA, Fault::Paced, 1);
    w.enqueue(&template("paced-1", ANA, "utility")).await;
    w.sim.script(JOAO, Fault::Code(135_000), 1);
    w.enqueue(&template("paced-2", JOAO, "utility")).await;
    let run = w.run().await;
    assert_eq!((run.failed, run.deleted), (0, 2), "both final");

    // Held for quality assessment is not an error: sent, with Meta's pacing on both records.
    let key = wahook::domain::send_request::IdempotencyKey::parse("paced-1").unwrap();
    let view = w.harness.store().send_view(&key).await.unwrap().unwrap();
    assert_eq!(view.state, "sent");
    assert_eq!(view.pacing.as_deref(), Some("held_for_quality_assessment"));
    assert_eq!(
        (
            view.template_name.as_deref(),
            view.template_language.as_deref()
        ),
        (Some("order_shipped"), Some("es_MX"))
    );
    let record = w
        .harness
        .message_item(view.wamid.as_deref().unwrap())
        .await
        .expect("the message record");
    assert_eq!(
        record.get("pacing").map(String::as_str),
        Some("held_for_quality_assessment")
    );

    // A paced send Meta dropped: failed, as a policy matter a person should look at.
    let e = w.ledger("paced-2").await.unwrap();
    assert_eq!(e.state, SendState::Failed);
    let key = wahook::domain::send_request::IdempotencyKey::parse("paced-2").unwrap();
    let view = w.harness.store().send_view(&key).await.unwrap().unwrap();
    assert_eq!(view.error_code, Some(135_000));
}

#[tokio::test]
async fn a_fallback_meta_asks_for_after_131047_still_meets_its_own_categorys_opt_out() {
    let w = World::new("fb-131047").await;
    meta_says(&w, "APPROVED", "MARKETING", recently()).await;
    // Joao wrote STOP: our record has his window open, and him opted out of marketing.
    w.user_writes(JOAO, "STOP", false).await;
    let mut req: serde_json::Value =
        serde_json::from_str(&text("fb-131047-1", JOAO, json!({}))).unwrap();
    req["category"] = json!("utility");
    req["fallback_template"] = json!({"name": "order_shipped", "language": "es_MX"});
    // Meta says the window is closed after all: the fallback would go, but Meta calls it marketing.
    w.sim.script(JOAO, Fault::Code(131_047), 1);
    w.enqueue(&req.to_string()).await;
    let run = w.run().await;
    assert_eq!((run.failed, run.deleted), (0, 1));
    assert_eq!(w.sim.calls(), 1, "the text was tried; the fallback was not");
    assert!(w.sent().is_empty());
    let e = w.ledger("fb-131047-1").await.unwrap();
    assert_eq!(e.state, SendState::Suppressed, "{:?}", e.reason);
    assert!(e.reason.unwrap().contains("opted out of marketing"));
}
