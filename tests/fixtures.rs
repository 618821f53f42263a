//! The `events/` API Gateway fixtures are generated from `events/payloads/`: this fails when they
//! drift apart, and `WAHOOK_BLESS=1 cargo test -p wahook-tests --test fixtures` rewrites them.

use wahook_tests::fixtures::{events_dir, generated_events, payload, payload_names, sign};

#[test]
fn event_fixtures_match_their_payloads_and_signatures() {
    let bless = std::env::var("WAHOOK_BLESS").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, expected) in generated_events() {
        let path = events_dir().join(format!("{name}.json"));
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        if actual != expected {
            if bless {
                std::fs::write(&path, &expected).unwrap();
            } else {
                stale.push(name);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "events/{{{}}}.json are out of date with events/payloads/: run \
         `WAHOOK_BLESS=1 cargo test -p wahook-tests --test fixtures` and commit the result",
        stale.join(",")
    );
}

#[test]
fn payloads_are_in_metas_wire_form() {
    for name in payload_names() {
        let body = payload(&name);
        assert!(body.is_ascii(), "{name}: Meta escapes non-ASCII as \\uXXXX");
        assert!(
            !body.ends_with(b"\n"),
            "{name}: no trailing newline, the bytes are what is signed"
        );
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(!text.contains("://"), "{name}: Meta escapes '/' as '\\/'");
        assert!(sign(&body).starts_with("sha256="));
    }
}
