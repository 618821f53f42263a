//! No authentic input can crash us (DESIGN rule 18): hostile values in every id field of a signed
//! delivery are answered 200 and kept, and a bounded fuzz run of mutated real payloads and requests
//! finds no crash (the long run: `scripts/bench.sh fuzz`).

use serde_json::{json, Value};
use wahook_tests::fixtures::build;
use wahook_tests::mutate::{run, Corpus};
use wahook_tests::Harness;

const T: i64 = 1_795_400_000;

#[test]
fn mutated_payloads_and_requests_never_crash_a_parser() {
    let cases = std::env::var("WAHOOK_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4_000);
    let report = run(&Corpus::load(), cases, 0x00C1);
    println!("fuzz: {} cases, {} crashes", report.cases, report.crashes);
    assert_eq!(
        report.crashes,
        0,
        "first crashing input: {}",
        String::from_utf8_lossy(report.first_crash.as_deref().unwrap_or_default())
    );
}

/// Where a signed delivery carries an identifier, and how to put a value there.
fn with_id(field: &str, value: &Value, case: usize) -> Vec<u8> {
    let wamid = format!("wamid.HOSTILE-{case}");
    match field {
        "status.id" | "status.recipient_id" | "status.recipient_user_id" => {
            let mut v = build::statuses("15551234567", &[(&wamid, "delivered", T)]);
            let key = field.trim_start_matches("status.");
            v["statuses"][0][key] = value.clone();
            build::envelope(vec![v])
        }
        "user_preferences.wa_id" | "user_preferences.user_id" => {
            let mut body: Value =
                serde_json::from_slice(&build::preference("15551234567", true, T + case as i64))
                    .unwrap();
            let key = field.trim_start_matches("user_preferences.");
            body["entry"][0]["changes"][0]["value"]["user_preferences"][0][key] = value.clone();
            serde_json::to_vec(&body).unwrap()
        }
        _ => {
            let mut v = build::text(&wamid, Some("15551234567"), Some("US.1"), T, "hi");
            match field {
                "message.id" => v["messages"][0]["id"] = value.clone(),
                "message.from" => v["messages"][0]["from"] = value.clone(),
                "message.from_user_id" => v["messages"][0]["from_user_id"] = value.clone(),
                "contacts.wa_id" => v["contacts"][0]["wa_id"] = value.clone(),
                "contacts.user_id" => v["contacts"][0]["user_id"] = value.clone(),
                "metadata.phone_number_id" => v["metadata"]["phone_number_id"] = value.clone(),
                other => panic!("unknown field {other}"),
            }
            build::envelope(vec![v])
        }
    }
}

#[tokio::test]
async fn hostile_values_in_every_id_field_are_answered_200_and_kept() {
    let fields = [
        "message.id",
        "message.from",
        "message.from_user_id",
        "contacts.wa_id",
        "contacts.user_id",
        "metadata.phone_number_id",
        "status.id",
        "status.recipient_id",
        "status.recipient_user_id",
        "user_preferences.wa_id",
        "user_preferences.user_id",
    ];
    let values = [
        json!(""),
        json!("U"),
        json!("US"),
        json!("é.ñ"),
        json!("9".repeat(10 * 1024)),
        json!(5215512345678_u64),
        Value::Null,
        json!(["15551234567"]),
    ];
    let mut case = 0;
    for field in fields {
        // Fresh tables per field: a message id "U" and a status id "U" are one record.
        let h = Harness::new(&format!("hostile-{}", field.replace(['.', '_'], "-"))).await;
        for value in &values {
            case += 1;
            let before = h.state().await;
            let kept_before = before.messages.len() + before.events.len();
            let reply = h.deliver(&with_id(field, value, case)).await;
            assert_eq!(reply.status, 200, "{field} = {value:.40}: {}", reply.body);
            let after = h.state().await;
            assert!(
                after.messages.len() + after.events.len() > kept_before,
                "{field} = {value:.40}: the item is kept (as a record or raw)"
            );
        }
    }
}
