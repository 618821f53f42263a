//! `schemas/send-request.v1.json` is what producers validate against; `SendRequest::parse` is what the
//! sender enforces (and, in `mod consent`, the same for consent requests). This fails when the two drift apart: a corpus of requests must get the same
//! verdict from both, and the schema must list exactly the code's fields and limits.

use serde_json::{json, Value};
use wahook::domain::send_request::{
    media_fields, SendRequest, FIELDS, MAX_CALLBACK_DATA_CHARS, MAX_CAPTION_CHARS,
    MAX_FILENAME_CHARS, MAX_IDEMPOTENCY_KEY_CHARS, MAX_TEMPLATE_NAME_CHARS, MAX_TEXT_CHARS,
    MEDIA_KINDS, TEMPLATE_FIELDS, TEXT_FIELDS,
};

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas/send-request.v1.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn sorted(fields: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = fields.iter().map(|s| (*s).to_owned()).collect();
    k.sort();
    k
}

#[test]
fn the_schema_lists_exactly_the_fields_and_limits_of_the_code() {
    let s = schema();
    assert_eq!(keys(&s["properties"]), sorted(FIELDS));
    assert_eq!(
        keys(&s["$defs"]["template"]["properties"]),
        sorted(TEMPLATE_FIELDS)
    );
    assert_eq!(keys(&s["$defs"]["text"]["properties"]), sorted(TEXT_FIELDS));
    assert_eq!(
        s["properties"]["idempotency_key"]["maxLength"],
        MAX_IDEMPOTENCY_KEY_CHARS
    );
    assert_eq!(
        s["properties"]["callback_data"]["maxLength"],
        MAX_CALLBACK_DATA_CHARS
    );
    assert_eq!(
        s["$defs"]["text"]["properties"]["body"]["maxLength"],
        MAX_TEXT_CHARS
    );
    assert_eq!(
        s["$defs"]["template"]["properties"]["name"]["maxLength"],
        MAX_TEMPLATE_NAME_CHARS
    );
    for kind in MEDIA_KINDS {
        let def = s["properties"][kind.as_str()]["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .unwrap_or_else(|| panic!("{} refers to a $def", kind.as_str()));
        assert_eq!(
            keys(&s["$defs"][def]["properties"]),
            sorted(media_fields(kind)),
            "{}",
            kind.as_str()
        );
    }
    assert_eq!(s["$defs"]["caption"]["maxLength"], MAX_CAPTION_CHARS);
    assert_eq!(
        s["$defs"]["document"]["properties"]["filename"]["maxLength"],
        MAX_FILENAME_CHARS
    );
}

fn base() -> Value {
    json!({"v": 1, "idempotency_key": "order-1234-shipped", "to": "+5215512345678"})
}

/// Removes a field (a JSON null stays a null).
const REMOVE: &str = "__remove__";

fn with(mut v: Value, changes: Value) -> Value {
    for (k, val) in changes.as_object().unwrap() {
        if val == REMOVE {
            v.as_object_mut().unwrap().remove(k);
        } else {
            v[k] = val.clone();
        }
    }
    v
}

fn template() -> Value {
    json!({"category": "utility", "template": {"name": "order_shipped", "language": "es_MX",
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]}})
}

fn text() -> Value {
    json!({"text": {"body": "Hola"}})
}

/// (what it shows, the request, whether it is valid)
fn corpus() -> Vec<(&'static str, Value, bool)> {
    let t = with(base(), template());
    let x = with(base(), text());
    let img = with(
        base(),
        json!({"image": {"s3": "s3://media-bucket/outbound/r-17.jpg", "caption": "Tu recibo"}}),
    );
    vec![
        ("an image from S3", img.clone(), true),
        (
            "a document with its file name",
            with(
                base(),
                json!({"document": {"s3": "s3://media-bucket/inv.pdf", "filename": "factura.pdf"}}),
            ),
            true,
        ),
        (
            "a file with a fallback template",
            with(
                img.clone(),
                json!({"category": "utility", "fallback_template": {"name": "receipt_ready", "language": "es_MX"}}),
            ),
            true,
        ),
        (
            "an image with a file name",
            with(
                base(),
                json!({"image": {"s3": "s3://media-bucket/a.jpg", "filename": "a.jpg"}}),
            ),
            false,
        ),
        (
            "audio with a caption",
            with(
                base(),
                json!({"audio": {"s3": "s3://media-bucket/a.ogg", "caption": "hi"}}),
            ),
            false,
        ),
        (
            "a file by URL, not S3",
            with(
                base(),
                json!({"image": {"s3": "https://example.com/a.jpg"}}),
            ),
            false,
        ),
        (
            "an S3 URI without a key",
            with(base(), json!({"sticker": {"s3": "s3://media-bucket/"}})),
            false,
        ),
        ("an image and text", with(img.clone(), text()), false),
        (
            "an image and a video",
            with(
                img.clone(),
                json!({"video": {"s3": "s3://media-bucket/v.mp4"}}),
            ),
            false,
        ),
        (
            "an S3 key of 1024 characters",
            with(
                base(),
                json!({"image": {"s3": format!("s3://media-bucket/{}", "k".repeat(1024))}}),
            ),
            true,
        ),
        (
            "an S3 key of 1025 characters",
            with(
                base(),
                json!({"image": {"s3": format!("s3://media-bucket/{}", "k".repeat(1025))}}),
            ),
            false,
        ),
        (
            "an S3 key with a line break",
            with(
                base(),
                json!({"image": {"s3": "s3://media-bucket/a\nb.jpg"}}),
            ),
            false,
        ),
        (
            "an S3 key with a C1 control",
            with(
                base(),
                json!({"image": {"s3": "s3://media-bucket/a\u{85}b.jpg"}}),
            ),
            false,
        ),
        (
            "a caption too long",
            with(
                base(),
                json!({"image": {"s3": "s3://media-bucket/a.jpg", "caption": "c".repeat(1025)}}),
            ),
            false,
        ),
        (
            "a file sent as service with a fallback",
            with(
                img.clone(),
                json!({"category": "service", "fallback_template": {"name": "receipt_ready", "language": "es_MX"}}),
            ),
            false,
        ),
        (
            "the design example",
            with(
                t.clone(),
                json!({"from": "106540352242922", "not_after": "2026-11-23T12:00:00Z", "callback_data": "order-1234", "reply_to": "wamid.HBgL"}),
            ),
            true,
        ),
        ("text, default category", x.clone(), true),
        (
            "text to a BSUID",
            with(x.clone(), json!({"to": "MX.1310418412279093"})),
            true,
        ),
        (
            "text with preview",
            with(
                base(),
                json!({"text": {"body": "see https://x.y", "preview_url": true}}),
            ),
            true,
        ),
        (
            "text with fallback",
            with(
                x.clone(),
                json!({"category": "utility", "fallback_template": {"name": "order_update", "language": "en"}}),
            ),
            true,
        ),
        (
            "text as marketing",
            with(x.clone(), json!({"category": "marketing"})),
            true,
        ),
        (
            "authentication template",
            with(t.clone(), json!({"category": "authentication"})),
            true,
        ),
        (
            "template without components",
            with(
                base(),
                json!({"category": "utility", "template": {"name": "hello", "language": "en_US"}}),
            ),
            true,
        ),
        (
            "body of exactly 4096",
            with(base(), json!({"text": {"body": "é".repeat(4096)}})),
            true,
        ),
        (
            "key of exactly 128",
            with(x.clone(), json!({"idempotency_key": "k".repeat(128)})),
            true,
        ),
        (
            "not_after with offset and fraction",
            with(
                t.clone(),
                json!({"not_after": "2026-11-23T12:00:00.250+01:00"}),
            ),
            true,
        ),
        ("v as 1.0", with(x.clone(), json!({"v": 1.0})), true),
        (
            "kind send, said outright",
            with(x.clone(), json!({"kind": "send"})),
            true,
        ),
        (
            "a kind this sender does not read",
            with(x.clone(), json!({"kind": "broadcast"})),
            false,
        ),
        // invalid
        ("no version", with(x.clone(), json!({"v": REMOVE})), false),
        ("version 2", with(x.clone(), json!({"v": 2})), false),
        (
            "no key",
            with(x.clone(), json!({"idempotency_key": REMOVE})),
            false,
        ),
        (
            "key with a space",
            with(x.clone(), json!({"idempotency_key": "order 1"})),
            false,
        ),
        (
            "key too long",
            with(x.clone(), json!({"idempotency_key": "k".repeat(129)})),
            false,
        ),
        (
            "no recipient",
            with(x.clone(), json!({"to": REMOVE})),
            false,
        ),
        (
            "phone without +",
            with(x.clone(), json!({"to": "5215512345678"})),
            false,
        ),
        (
            "phone too short",
            with(x.clone(), json!({"to": "+12345"})),
            false,
        ),
        (
            "phone too long",
            with(x.clone(), json!({"to": "+1234567890123456"})),
            false,
        ),
        (
            "lowercase BSUID country",
            with(x.clone(), json!({"to": "mx.131"})),
            false,
        ),
        (
            "from not numeric",
            with(x.clone(), json!({"from": "my-number"})),
            false,
        ),
        (
            "null from",
            with(x.clone(), json!({"from": Value::Null})),
            false,
        ),
        (
            "unknown field",
            with(x.clone(), json!({"templete": {}})),
            false,
        ),
        ("neither template nor text", base(), false),
        ("both template and text", with(t.clone(), text()), false),
        (
            "template without category",
            with(t.clone(), json!({"category": REMOVE})),
            false,
        ),
        (
            "template as service",
            with(t.clone(), json!({"category": "service"})),
            false,
        ),
        (
            "unknown category",
            with(t.clone(), json!({"category": "promo"})),
            false,
        ),
        (
            "template with fallback",
            with(
                t.clone(),
                json!({"fallback_template": {"name": "a", "language": "en"}}),
            ),
            false,
        ),
        (
            "fallback without category",
            with(
                x.clone(),
                json!({"fallback_template": {"name": "a", "language": "en"}}),
            ),
            false,
        ),
        (
            "fallback as service",
            with(
                x.clone(),
                json!({"category": "service", "fallback_template": {"name": "a", "language": "en"}}),
            ),
            false,
        ),
        (
            "template name with capitals",
            with(
                base(),
                json!({"category": "utility", "template": {"name": "Order", "language": "en"}}),
            ),
            false,
        ),
        (
            "template language spelled out",
            with(
                base(),
                json!({"category": "utility", "template": {"name": "a", "language": "spanish"}}),
            ),
            false,
        ),
        (
            "template without language",
            with(
                base(),
                json!({"category": "utility", "template": {"name": "a"}}),
            ),
            false,
        ),
        (
            "component without type",
            with(
                base(),
                json!({"category": "utility", "template": {"name": "a", "language": "en", "components": [{"parameters": []}]}}),
            ),
            false,
        ),
        (
            "unknown template field",
            with(
                base(),
                json!({"category": "utility", "template": {"name": "a", "language": "en", "namespace": "x"}}),
            ),
            false,
        ),
        (
            "empty body",
            with(base(), json!({"text": {"body": ""}})),
            false,
        ),
        (
            "blank body",
            with(base(), json!({"text": {"body": "   "}})),
            false,
        ),
        (
            "body of 4097",
            with(base(), json!({"text": {"body": "a".repeat(4097)}})),
            false,
        ),
        (
            "preview_url not a boolean",
            with(base(), json!({"text": {"body": "x", "preview_url": "yes"}})),
            false,
        ),
        (
            "not_after without zone",
            with(t.clone(), json!({"not_after": "2026-11-23T12:00:00"})),
            false,
        ),
        (
            "not_after as a date",
            with(t.clone(), json!({"not_after": "2026-11-23"})),
            false,
        ),
        (
            "callback data too long",
            with(x.clone(), json!({"callback_data": "c".repeat(513)})),
            false,
        ),
        (
            "reply_to with a space",
            with(x.clone(), json!({"reply_to": "wamid. x"})),
            false,
        ),
        ("an array", json!([1, 2]), false),
    ]
}

#[test]
fn the_schema_and_the_parser_agree_on_every_request() {
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema())
        .expect("the schema compiles");
    let mut disagreements = Vec::new();
    for (what, request, expected) in corpus() {
        let by_schema = validator.is_valid(&request);
        let by_code = SendRequest::parse(&request.to_string());
        if by_schema != expected || by_code.is_ok() != expected {
            disagreements.push(format!(
                "{what}: expected {}, schema says {by_schema}, code says {:?}",
                if expected { "valid" } else { "invalid" },
                by_code.as_ref().map(|_| "valid").map_err(|e| e.to_string())
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// `schemas/consent-request.v1.json` against `ConsentRequest::parse`: the same verdict on a corpus, and
/// the same fields and limits. (The future-skew bound on `at` depends on the clock, so only the code
/// checks it; `consent_request.rs` tests it.)
mod consent {
    use serde_json::{json, Value};
    use wahook::domain::consent_request::{
        ConsentRequest, CONSENT_FIELDS, MAX_EVIDENCE_CHARS, MAX_SOURCE_CHARS,
    };
    use wahook::domain::time::UnixTime;

    fn schema() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/consent-request.v1.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn base() -> Value {
        json!({"v": 1, "kind": "consent", "to": "+525512345678", "category": "marketing",
            "consent": "opted_in", "at": "2026-12-01T10:00:00Z", "source": "web_form"})
    }

    fn with(changes: Value) -> Value {
        let mut v = base();
        for (k, val) in changes.as_object().unwrap() {
            if val == "__remove__" {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = val.clone();
            }
        }
        v
    }

    #[test]
    fn the_schema_lists_exactly_the_fields_and_limits_of_the_code() {
        let s = schema();
        let mut fields: Vec<String> = s["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        fields.sort();
        let mut code: Vec<String> = CONSENT_FIELDS.iter().map(|f| (*f).to_owned()).collect();
        code.sort();
        assert_eq!(fields, code);
        assert_eq!(s["properties"]["evidence"]["maxLength"], MAX_EVIDENCE_CHARS);
        assert!(s["properties"]["source"]["pattern"]
            .as_str()
            .unwrap()
            .contains(&format!("{{1,{MAX_SOURCE_CHARS}}}")));
    }

    #[test]
    fn schema_and_parser_agree_on_every_example() {
        let validator = jsonschema::validator_for(&schema()).unwrap();
        let now = UnixTime::parse_rfc3339("2026-12-02T00:00:00Z").unwrap();
        let corpus = [
            (
                "the README example",
                with(json!({"evidence": "form 77"})),
                true,
            ),
            ("an opt-out", with(json!({"consent": "opted_out"})), true),
            (
                "an opt-out of everything",
                with(json!({"consent": "opted_out", "category": "all"})),
                true,
            ),
            (
                "to a BSUID, from a number",
                with(json!({"to": "MX.1310418412279093", "from": "106540352242922"})),
                true,
            ),
            ("an opt-in to all", with(json!({"category": "all"})), false),
            (
                "an unknown category",
                with(json!({"category": "promos"})),
                false,
            ),
            ("no to", with(json!({"to": "__remove__"})), false),
            (
                "a phone without +",
                with(json!({"to": "525512345678"})),
                false,
            ),
            ("no at", with(json!({"at": "__remove__"})), false),
            (
                "at without a zone",
                with(json!({"at": "2026-12-01T10:00:00"})),
                false,
            ),
            ("consent yes", with(json!({"consent": "yes"})), false),
            (
                "a source with spaces",
                with(json!({"source": "Web Form"})),
                false,
            ),
            ("no source", with(json!({"source": "__remove__"})), false),
            (
                "evidence too long",
                with(json!({"evidence": "e".repeat(MAX_EVIDENCE_CHARS + 1)})),
                false,
            ),
            ("an unknown field", with(json!({"note": "x"})), false),
            (
                "null evidence",
                with(json!({"evidence": Value::Null})),
                false,
            ),
            ("kind send", with(json!({"kind": "send"})), false),
            ("version 2", with(json!({"v": 2})), false),
        ];
        for (what, request, valid) in corpus {
            let by_schema = validator.is_valid(&request);
            let by_code = ConsentRequest::parse(&request.to_string(), now);
            assert_eq!(by_schema, valid, "schema on {what}: {request}");
            assert_eq!(by_code.is_ok(), valid, "parser on {what}: {by_code:?}");
        }
    }
}
