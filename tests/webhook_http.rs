//! The webhook function's HTTP surface, driven with the API Gateway v2 events in `events/` through the
//! real adapter, against moto's DynamoDB: the handshake, the signature check, methods and sizes.

use wahook_tests::fixtures::{self, event, payload, post_event, sign, FIXTURE_CHALLENGE};
use wahook_tests::Harness;

#[tokio::test]
async fn the_handshake_echoes_the_challenge_as_plain_text() {
    let h = Harness::new("get-ok").await;
    let reply = h.invoke(&event("apigw-get-verify")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body, FIXTURE_CHALLENGE,
        "byte for byte, leading zero kept"
    );
    assert!(reply.content_type.unwrap().starts_with("text/plain"));
}

#[tokio::test]
async fn a_wrong_verify_token_or_mode_is_refused_without_echoing_the_challenge() {
    let h = Harness::new("get-bad").await;
    let reply = h.invoke(&event("apigw-get-verify-wrong-token")).await;
    assert_eq!(reply.status, 403);
    assert!(!reply.body.contains(FIXTURE_CHALLENGE), "{}", reply.body);
    assert!(
        reply.body.contains("WAHOOK_VERIFY_TOKEN"),
        "says what to check: {}",
        reply.body
    );

    let wrong_mode = fixtures::get_event(&format!(
        "hub.mode=unsubscribe&hub.challenge={FIXTURE_CHALLENGE}&hub.verify_token={}",
        fixtures::FIXTURE_VERIFY_TOKEN
    ));
    let reply = h.invoke(&wrong_mode).await;
    assert_eq!(reply.status, 403);
    assert!(!reply.body.contains(FIXTURE_CHALLENGE));

    let no_query = fixtures::get_event("");
    assert_eq!(h.invoke(&no_query).await.status, 403);
}

#[tokio::test]
async fn a_url_encoded_challenge_comes_back_decoded() {
    let h = Harness::new("get-enc").await;
    let q = format!(
        "hub.mode=subscribe&hub.challenge=a%2Bb%3D&hub.verify_token={}",
        fixtures::FIXTURE_VERIFY_TOKEN
    );
    let reply = h.invoke(&fixtures::get_event(&q)).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "a+b="));
}

#[tokio::test]
async fn a_signed_post_is_stored_and_acknowledged() {
    let h = Harness::new("post-ok").await;
    let reply = h.invoke(&event("apigw-post-text-hola")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let state = h.state().await;
    assert_eq!(state.messages.len(), 1);
    assert!(!state.contacts.is_empty());
}

#[tokio::test]
async fn missing_malformed_wrong_prefix_and_wrong_signatures_are_401_and_store_nothing() {
    let h = Harness::new("post-401").await;
    let body = payload("text-hola");
    let good = sign(&body);
    let cases: Vec<(&str, String)> = vec![
        ("unsigned", event("apigw-post-text-hola-unsigned")),
        ("wrong secret", event("apigw-post-text-hola-bad-signature")),
        (
            "malformed",
            post_event(&body, Some("sha256=not-hex"), false),
        ),
        ("truncated", post_event(&body, Some(&good[..40]), false)),
        (
            "wrong prefix",
            post_event(&body, Some(&good.replace("sha256=", "sha1=")), false),
        ),
        (
            "bare hex",
            post_event(&body, Some(&good["sha256=".len()..]), false),
        ),
    ];
    for (case, ev) in cases {
        let reply = h.invoke(&ev).await;
        assert_eq!(reply.status, 401, "{case}: {}", reply.body);
        assert_eq!(
            reply.body,
            wahook::webhook::SIGNATURE_REFUSED,
            "{case}: one body whatever failed, nothing for an attacker to tell apart"
        );
        assert!(reply.body.contains("X-Hub-Signature-256"));
    }
    assert!(
        h.state().await.is_empty(),
        "nothing is stored for an unsigned POST"
    );
    assert_eq!(h.counter.writes(), 0);
}

#[tokio::test]
async fn a_signature_over_re_serialised_json_is_refused() {
    let h = Harness::new("post-reser").await;
    let body = payload("text-unicode");
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let reserialised = serde_json::to_vec(&parsed).unwrap();
    assert_ne!(reserialised, body);
    let reply = h
        .invoke(&post_event(&body, Some(&sign(&reserialised)), false))
        .await;
    assert_eq!(reply.status, 401);
    assert!(h.state().await.is_empty());
}

#[tokio::test]
async fn non_ascii_escapes_slashes_and_emoji_verify_over_the_bytes_meta_sent() {
    let h = Harness::new("post-utf").await;
    let reply = h.invoke(&event("apigw-post-text-unicode")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let msg = h
        .message_item("wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjBGRkE3QjI5OEVGQjQ1NzQ5RjEA")
        .await
        .expect("stored");
    assert!(
        msg["raw"].contains(r"mang\u00e9 des p\u00e2tes \ud83c\udf5d")
            && msg["raw"].contains(r"https:\/\/example.com"),
        "the raw JSON is kept exactly as Meta sent it: {}",
        msg["raw"]
    );
}

#[tokio::test]
async fn a_base64_encoded_body_is_decoded_before_the_signature_check() {
    let h = Harness::new("post-b64").await;
    let ev = event("apigw-post-text-hola-base64");
    assert!(ev.contains("\"isBase64Encoded\": true"));
    let reply = h.invoke(&ev).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(h.state().await.messages.len(), 1);
}

#[tokio::test]
async fn the_signature_header_is_found_whatever_its_case() {
    let h = Harness::new("post-case").await;
    let body = payload("text-hola");
    let ev = post_event(&body, Some(&sign(&body)), false)
        .replace("x-hub-signature-256", "X-Hub-Signature-256");
    assert!(ev.contains("X-Hub-Signature-256"));
    assert_eq!(h.invoke(&ev).await.status, 200);
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let h = Harness::new("put").await;
    let ev = event("apigw-post-text-hola").replace("\"method\": \"POST\"", "\"method\": \"PUT\"");
    let reply = h.invoke(&ev).await;
    assert_eq!(reply.status, 405, "{}", reply.body);
    assert!(h.state().await.is_empty());
}

#[tokio::test]
async fn an_oversized_body_is_413_before_any_work() {
    let h = Harness::new("big").await;
    let big = vec![b' '; wahook::webhook::MAX_BODY_BYTES + 1];
    let reply = h.invoke(&post_event(&big, Some(&sign(&big)), true)).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(h.counter.writes(), 0);
}

#[tokio::test]
async fn the_previous_app_secret_still_verifies_during_rotation() {
    let h = Harness::with_config("rotate", |c| {
        c.app_secrets = vec![
            wahook::secret::SecretString::new("the-new-secret"),
            wahook::secret::SecretString::new(fixtures::FIXTURE_APP_SECRET),
        ];
    })
    .await;
    assert_eq!(h.invoke(&event("apigw-post-text-hola")).await.status, 200);
}

#[tokio::test]
async fn a_function_url_event_is_served_like_an_http_api_event() {
    let h = Harness::new("fnurl").await;
    let ev = event("fnurl-post-text-hola");
    assert!(ev.contains("lambda-url"));
    let reply = h.invoke(&ev).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(h.state().await.messages.len(), 1);
}
