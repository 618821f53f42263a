//! The `events/` fixtures: Meta payloads as they arrive, and the API Gateway HTTP API (v2) events that
//! carry them to the function. The events are generated from the payloads; `tests/fixtures.rs` checks
//! they are current (`WAHOOK_BLESS=1` rewrites them).

use std::path::PathBuf;

use base64::Engine;
use serde_json::json;
use wahook::secret::SecretString;

/// The app secret the fixtures are signed with (never a real one).
pub const FIXTURE_APP_SECRET: &str = "wahook-fixture-app-secret";
/// The verify token of the GET fixtures.
pub const FIXTURE_VERIFY_TOKEN: &str = "wahook-fixture-verify-token";
/// The challenge of the GET fixtures: leading zero and all, it must come back byte for byte.
pub const FIXTURE_CHALLENGE: &str = "0851238129";

pub fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// A payload's exact bytes.
pub fn payload(name: &str) -> Vec<u8> {
    let path = events_dir().join("payloads").join(format!("{name}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every payload name, sorted.
pub fn payload_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(events_dir().join("payloads"))
        .expect("events/payloads exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// An event file's text.
pub fn event(name: &str) -> String {
    let path = events_dir().join(format!("{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `sha256=<hex>` over `body` with the fixture secret.
pub fn sign(body: &[u8]) -> String {
    wahook::signature::sign(&SecretString::new(FIXTURE_APP_SECRET), body)
}

/// Which AWS front end delivers the event. Both use the payload v2.0 shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    HttpApi,
    FunctionUrl,
}

impl Front {
    fn host(self) -> &'static str {
        match self {
            Front::HttpApi => "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
            Front::FunctionUrl => "q7fdkwr2mb5n3vxzpal4sgt6ye0ohjci.lambda-url.eu-west-1.on.aws",
        }
    }

    fn route(self, method: &str) -> String {
        match self {
            Front::HttpApi => format!("{method} /webhook"),
            Front::FunctionUrl => "$default".into(),
        }
    }

    fn path(self) -> &'static str {
        match self {
            Front::HttpApi => "/webhook",
            Front::FunctionUrl => "/",
        }
    }
}

/// An API Gateway HTTP API (payload v2.0) POST event carrying `body`.
pub fn post_event(body: &[u8], signature: Option<&str>, base64: bool) -> String {
    post_event_via(Front::HttpApi, body, signature, base64)
}

/// A POST event as `front` delivers it.
pub fn post_event_via(front: Front, body: &[u8], signature: Option<&str>, base64: bool) -> String {
    let mut headers = json!({
        "accept": "*/*",
        "content-type": "application/json",
        "content-length": body.len().to_string(),
        "host": front.host(),
        "user-agent": "facebookexternalua",
        "x-forwarded-for": "173.252.95.16",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    });
    if let Some(sig) = signature {
        // HTTP API lowercases header names; the function must find it whatever the case was.
        headers["x-hub-signature-256"] = json!(sig);
    }
    let body_field = if base64 {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        String::from_utf8(body.to_vec()).expect("text payload")
    };
    let event = json!({
        "version": "2.0",
        "routeKey": front.route("POST"),
        "rawPath": front.path(),
        "rawQueryString": "",
        "headers": headers,
        "requestContext": request_context(front, "POST"),
        "body": body_field,
        "isBase64Encoded": base64,
    });
    serde_json::to_string_pretty(&event).unwrap() + "\n"
}

/// An API Gateway HTTP API GET event with this raw query string.
pub fn get_event(raw_query: &str) -> String {
    let event = json!({
        "version": "2.0",
        "routeKey": Front::HttpApi.route("GET"),
        "rawPath": Front::HttpApi.path(),
        "rawQueryString": raw_query,
        "headers": {
            "accept": "*/*",
            "host": Front::HttpApi.host(),
            "user-agent": "facebookplatform/1.0 (+http://developers.facebook.com)",
            "x-forwarded-for": "173.252.95.16",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "requestContext": request_context(Front::HttpApi, "GET"),
        "isBase64Encoded": false,
    });
    serde_json::to_string_pretty(&event).unwrap() + "\n"
}

fn request_context(front: Front, method: &str) -> serde_json::Value {
    let host = front.host();
    let prefix = host.split('.').next().unwrap_or_default();
    json!({
        "accountId": if front == Front::FunctionUrl { "anonymous" } else { "123456789012" },
        "apiId": prefix,
        "domainName": host,
        "domainPrefix": prefix,
        "http": {
            "method": method,
            "path": front.path(),
            "protocol": "HTTP/1.1",
            "sourceIp": "173.252.95.16",
            "userAgent": "facebookexternalua"
        },
        "requestId": "KpZ8ThDDjoEEMqw=",
        "routeKey": front.route(method),
        "stage": "$default",
        "time": "23/Nov/2026:02:13:21 +0000",
        "timeEpoch": 1_795_400_001_000u64
    })
}

/// Every generated event file: name → contents.
pub fn generated_events() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in payload_names() {
        let body = payload(&name);
        out.push((
            format!("apigw-post-{name}"),
            post_event(&body, Some(&sign(&body)), false),
        ));
    }
    let hola = payload("text-hola");
    out.push((
        "apigw-post-text-hola-base64".into(),
        post_event(&hola, Some(&sign(&hola)), true),
    ));
    out.push((
        "apigw-post-text-hola-bad-signature".into(),
        post_event(
            &hola,
            Some(&wahook::signature::sign(
                &SecretString::new("not-the-app-secret"),
                &hola,
            )),
            false,
        ),
    ));
    out.push((
        "fnurl-post-text-hola".into(),
        post_event_via(Front::FunctionUrl, &hola, Some(&sign(&hola)), false),
    ));
    out.push((
        "apigw-post-text-hola-unsigned".into(),
        post_event(&hola, None, false),
    ));
    out.push((
        "apigw-get-verify".into(),
        get_event(&format!(
            "hub.mode=subscribe&hub.challenge={FIXTURE_CHALLENGE}&hub.verify_token={FIXTURE_VERIFY_TOKEN}"
        )),
    ));
    out.push((
        "apigw-get-verify-wrong-token".into(),
        get_event(&format!(
            "hub.mode=subscribe&hub.challenge={FIXTURE_CHALLENGE}&hub.verify_token=guess"
        )),
    ));
    out
}

/// The business number every fixture and builder uses.
pub const NUMBER: &str = "106540352242922";

/// The business account (WABA) of the fixtures: every `entry.id`.
pub const WABA: &str = "102290129340398";

/// Builds Meta-shaped payloads for scenarios the fixture files do not cover.
pub mod build {
    use serde_json::{json, Value};

    use super::NUMBER;

    /// One `messages` change per value, in one entry.
    pub fn envelope(values: Vec<Value>) -> Vec<u8> {
        let changes: Vec<Value> = values
            .into_iter()
            .map(|v| json!({"value": v, "field": "messages"}))
            .collect();
        serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": changes}]
        }))
        .unwrap()
    }

    fn value(extra: Value) -> Value {
        let mut v = json!({
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": NUMBER}
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    }

    /// A text message from a phone and/or BSUID, with `contacts[]` as Meta sends it.
    pub fn text(id: &str, phone: Option<&str>, bsuid: Option<&str>, ts: i64, body: &str) -> Value {
        let mut msg =
            json!({"id": id, "timestamp": ts.to_string(), "type": "text", "text": {"body": body}});
        let mut contact = json!({"profile": {"name": "Test User"}});
        if let Some(p) = phone {
            msg["from"] = json!(p);
            contact["wa_id"] = json!(p);
        }
        if let Some(b) = bsuid {
            msg["from_user_id"] = json!(b);
            contact["user_id"] = json!(b);
        }
        value(json!({"contacts": [contact], "messages": [msg]}))
    }

    /// A media message (`kind`: image, audio, video, document, sticker) from a phone; `object` is
    /// what Meta puts under the kind (`id`, `mime_type`, `sha256`, `caption`…).
    pub fn media(id: &str, phone: &str, ts: i64, kind: &str, object: Value) -> Value {
        let mut msg = json!({"id": id, "from": phone, "timestamp": ts.to_string(), "type": kind});
        msg[kind] = object;
        let contact = json!({"profile": {"name": "Test User"}, "wa_id": phone});
        value(json!({"contacts": [contact], "messages": [msg]}))
    }

    /// A `system` message from `from` (no `contacts[]`, as Meta sends it): `system` is its object,
    /// e.g. `{"type": "user_changed_number", "wa_id": "…"}`.
    pub fn system(id: &str, from: &str, ts: i64, system: Value) -> Value {
        value(json!({"messages": [{
            "id": id, "from": from, "timestamp": ts.to_string(), "type": "system", "system": system
        }]}))
    }

    /// Statuses `(wamid, status, ts)` for one recipient phone.
    pub fn statuses(recipient: &str, items: &[(&str, &str, i64)]) -> Value {
        let statuses: Vec<Value> = items
            .iter()
            .map(|(id, st, ts)| json!({"id": id, "status": st, "timestamp": ts.to_string(), "recipient_id": recipient}))
            .collect();
        value(json!({"statuses": statuses}))
    }

    /// A `user_preferences` delivery (its own field).
    pub fn preference(phone: &str, stop: bool, ts: i64) -> Vec<u8> {
        let v = value(json!({
            "contacts": [{"wa_id": phone}],
            "user_preferences": [{"wa_id": phone, "category": "marketing_messages",
                "value": if stop { "stop" } else { "resume" }, "timestamp": ts.to_string(),
                "detail": "User requested a change"}]
        }));
        serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"value": v, "field": "user_preferences"}]}]
        }))
        .unwrap()
    }

    /// One template webhook (`field` with `value`), for the fixtures' business account at `time`.
    pub fn template_field(field: &str, value: Value, time: i64) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": super::WABA, "time": time, "changes": [{"value": value, "field": field}]}]
        }))
        .unwrap()
    }

    /// `message_template_status_update`: `event` is Meta's status word (`APPROVED`, `PAUSED`…).
    pub fn template_status(
        name: &str,
        language: &str,
        event: &str,
        category: &str,
        time: i64,
    ) -> Vec<u8> {
        template_field(
            "message_template_status_update",
            json!({"event": event, "message_template_id": 1281736273829142u64,
                "message_template_name": name, "message_template_language": language,
                "reason": "NONE", "message_template_category": category}),
            time,
        )
    }

    /// `template_category_update`: a change made (`previous_category` → `new_category`), or with
    /// `correct` an impending one (notice only).
    pub fn template_category(
        name: &str,
        language: &str,
        new: &str,
        correct: Option<&str>,
        time: i64,
    ) -> Vec<u8> {
        let mut v = json!({"message_template_id": 1281736273829142u64,
            "message_template_name": name, "message_template_language": language, "new_category": new});
        match correct {
            Some(c) => v["correct_category"] = json!(c),
            None => v["previous_category"] = json!("UTILITY"),
        }
        template_field("template_category_update", v, time)
    }
}
