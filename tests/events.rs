//! The event stream, end to end against moto: the webhook and the sender write their tables, the
//! tables' streams feed the publisher exactly as the local stack's poller (Lambda's event source
//! mapping, locally) feeds it, the publisher puts events on a real EventBridge bus, and a rule sends
//! them to an SQS queue the test reads.
//!
//! - every event type the stack publishes validates against its schema in `schemas/events/`;
//! - a bus that is down loses nothing: the shard's checkpoint stays before the first record not
//!   published, and once the bus is back every event arrives, each fact under one `event_id`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wahook::config::{Env, PublisherConfig};
use wahook::domain::ids::{ContactKey, PhoneNumberId, Wamid};
use wahook::domain::send_request::IdempotencyKey;
use wahook::domain::time::UnixTime;
use wahook::publish::{Publisher, EVENT_TYPES};
use wahook::store::messages::OutboundSend;
use wahook::store::tables::{create_table, FIGURES};
use wahook::telemetry::Metrics;
use wahook_local::streams::StreamPoller;
use wahook_tests::dynamo::{CountingInterceptor, FaultInjector, FaultInterceptor, RequestCounter};
use wahook_tests::fixtures::{build, NUMBER};
use wahook_tests::{sdk_config, Harness};

fn schema_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/events")
}

fn schema(detail_type: &str) -> Value {
    let path = schema_dir().join(format!("{detail_type}.v1.json"));
    serde_json::from_str(
        &std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{detail_type} has no schema at {}: {e}", path.display())),
    )
    .unwrap()
}

#[test]
fn every_event_type_has_a_schema_and_every_schema_an_event_type() {
    let files: BTreeSet<String> = std::fs::read_dir(schema_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = EVENT_TYPES.iter().map(|t| format!("{t}.v1.json")).collect();
    assert_eq!(files, expected);
    for t in EVENT_TYPES {
        let s = schema(t);
        jsonschema::validator_for(&s).unwrap_or_else(|e| panic!("{t}: not a valid schema: {e}"));
        assert_eq!(
            s["additionalProperties"], false,
            "{t}: a new field must be added to its schema"
        );
        for common in ["v", "event_id", "at"] {
            assert!(
                s["required"].as_array().unwrap().contains(&json!(common)),
                "{t} must require {common}"
            );
        }
    }
}

const RATE_CARD: &str = r#"{"52": {"utility": 0.0085, "marketing": 0.0436}}"#;

/// One test's event plumbing: tables with streams, a bus with a rule to a queue, the publisher fed by
/// the local stream poller.
struct World {
    harness: Harness,
    poller: StreamPoller,
    publisher: Arc<Publisher>,
    sdk: aws_config::SdkConfig,
    bus: String,
    sqs: aws_sdk_sqs::Client,
    tap_url: String,
    /// Fails the publisher's PutEvents calls on demand (the bus being down).
    bus_fault: Arc<FaultInjector>,
    /// The publisher's own DynamoDB requests (the figures; never the webhook's path).
    publisher_dynamodb: Arc<RequestCounter>,
}

impl World {
    async fn new(name: &str) -> Self {
        let harness = Harness::with_streams(name).await;
        let sdk = sdk_config().await;
        let prefix = harness
            .tables
            .messages
            .trim_end_matches("-messages")
            .to_owned();
        let (bus, tap_url) = wahook_local::dev::provision_events(&sdk, &prefix)
            .await
            .expect("create the bus, its rule and the tap queue in moto");
        let t = &harness.tables;
        let config = PublisherConfig::load(&Env::from_pairs([
            ("WAHOOK_EVENT_BUS_NAME", bus.as_str()),
            ("WAHOOK_MESSAGES_TABLE", t.messages.as_str()),
            ("WAHOOK_CONTACTS_TABLE", t.contacts.as_str()),
            ("WAHOOK_SENDS_TABLE", t.sends.as_str()),
            ("WAHOOK_TEMPLATES_TABLE", t.templates.as_str()),
            ("WAHOOK_EVENTS_TABLE", t.events.as_str()),
            ("WAHOOK_FIGURES_TABLE", t.figures.as_str()),
            (
                "WAHOOK_RATE_CARD",
                r#"{"52": {"utility": 0.0085, "marketing": 0.0436}}"#,
            ),
        ]))
        .unwrap();
        let bus_fault = Arc::new(FaultInjector::default());
        let events = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(&sdk)
                .interceptor(FaultInterceptor(bus_fault.clone()))
                .build(),
        );
        let publisher_dynamodb = Arc::new(RequestCounter::default());
        let publisher = Publisher::new(
            events,
            aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&sdk)
                    .interceptor(CountingInterceptor(publisher_dynamodb.clone()))
                    .build(),
            ),
            &config,
            Metrics::disabled("publisher"),
        );
        let publisher = Arc::new(publisher);
        let poller = StreamPoller::new(&sdk, &harness.tables, publisher.clone());
        Self {
            harness,
            poller,
            publisher,
            sqs: aws_sdk_sqs::Client::new(&sdk),
            sdk,
            bus,
            tap_url,
            bus_fault,
            publisher_dynamodb,
        }
    }

    async fn deliver(&self, body: &[u8]) {
        let reply = self.harness.deliver(body).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    /// Everything the rule delivered so far (each envelope once).
    async fn tapped(&self) -> Vec<Value> {
        let got = wahook_local::dev::drain_queue(&self.sqs, &self.tap_url, 0)
            .await
            .expect("read the tap queue");
        // drain_queue keeps what it cannot parse (dev.sh shows it); here that is a failure.
        for e in &got {
            assert!(
                e.get("unreadable").is_none(),
                "tap message is not JSON: {e}"
            );
        }
        got
    }
}

/// The stack's writes that give every event type: a handover request, a STOP, statuses with pricing
/// and a quality failure, a template's status and quality, a number's quality, a send's outcome.
async fn write_one_of_everything(w: &World) {
    let ts = 1_796_000_000;
    let phone = "5215512345678";
    w.deliver(&build::envelope(vec![build::text(
        "wamid.HANDOVER",
        Some(phone),
        None,
        ts,
        "Quiero hablar con un agente, por favor",
    )]))
    .await;
    w.deliver(&build::envelope(vec![build::text(
        "wamid.STOP",
        Some(phone),
        None,
        ts + 1,
        "STOP",
    )]))
    .await;
    let mut statuses = build::statuses(
        phone,
        &[
            ("wamid.OUT1", "sent", ts + 2),
            ("wamid.OUT1", "delivered", ts + 3),
        ],
    );
    for s in statuses["statuses"].as_array_mut().unwrap() {
        s["pricing"] = json!({"billable": true, "pricing_model": "PMP", "category": "utility", "type": "regular"});
    }
    w.deliver(&build::envelope(vec![statuses])).await;
    let mut failed = build::statuses(phone, &[("wamid.OUT2", "failed", ts + 4)]);
    failed["statuses"][0]["errors"] = json!([{"code": 131049, "title": "This message was not delivered to maintain healthy ecosystem engagement."}]);
    w.deliver(&build::envelope(vec![failed])).await;
    w.deliver(&build::template_status(
        "order_update",
        "en_US",
        "APPROVED",
        "UTILITY",
        ts + 5,
    ))
    .await;
    w.deliver(&build::template_field(
        "message_template_quality_update",
        json!({"previous_quality_score": "GREEN", "new_quality_score": "YELLOW",
            "message_template_id": 1281736273829142u64, "message_template_name": "order_update",
            "message_template_language": "en_US"}),
        ts + 6,
    ))
    .await;
    w.deliver(&build::template_field(
        "phone_number_quality_update",
        json!({"display_phone_number": "15550783881", "event": "FLAGGED",
            "max_daily_conversations_per_business": "TIER_1K"}),
        ts + 7,
    ))
    .await;
    w.harness
        .store()
        .record_rejected(
            &IdempotencyKey::parse("order-77-shipped").unwrap(),
            "to: not a phone number in E.164 or a BSUID",
            UnixTime::from_secs(ts + 8),
        )
        .await
        .unwrap();
}

/// Polls until a poll reads nothing new (bounded).
async fn drain(w: &World) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut total = 0;
    loop {
        let report = w.poller.poll_once().await.expect("poll the streams");
        total += report.records;
        if report.records == 0 || Instant::now() > deadline {
            return total;
        }
    }
}

fn by_type(events: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in events {
        *counts
            .entry(e["detail-type"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn what_the_stack_publishes_fits_the_schemas() {
    let w = World::new("events-schemas").await;
    write_one_of_everything(&w).await;
    drain(&w).await;
    let events = w.tapped().await;
    let counts = by_type(&events);
    let seen: BTreeSet<&str> = counts.keys().map(String::as_str).collect();
    let all: BTreeSet<&str> = EVENT_TYPES.iter().copied().collect();
    assert_eq!(seen, all, "every event type is published: {counts:?}");
    let mut ids = BTreeSet::new();
    for e in &events {
        assert_eq!(e["source"], "wahook");
        let t = e["detail-type"].as_str().unwrap();
        let detail = &e["detail"];
        let validator = jsonschema::validator_for(&schema(t)).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(detail)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{t} does not fit its schema: {errors:?}\n{detail}"
        );
        assert!(
            ids.insert(detail["event_id"].as_str().unwrap().to_owned()),
            "one event per fact: {detail}"
        );
    }
    // The facts, exactly: a status that only repeats (no rank change) publishes nothing.
    assert_eq!(counts["message.received"], 2, "{counts:?}");
    assert_eq!(counts["conversation.human_requested"], 1);
    assert_eq!(
        counts["message.status_changed"], 3,
        "sent, delivered, failed: {counts:?}"
    );
    assert_eq!(
        counts["consent.changed"], 1,
        "STOP opts out of marketing only"
    );
    assert_eq!(counts["send.outcome"], 1);
    assert_eq!(
        counts["quality.changed"], 3,
        "131049, YELLOW, FLAGGED: {counts:?}"
    );
}

#[tokio::test]
async fn a_bus_outage_loses_nothing_and_recovery_publishes_each_fact_once() {
    let w = World::new("events-outage").await;
    write_one_of_everything(&w).await;

    // The bus is down for every call.
    w.bus_fault.fail_next("PutEvents", usize::MAX);
    let report = w.poller.poll_once().await.unwrap();
    assert!(report.records > 0);
    assert!(report.failed_batches > 0, "{report:?}");
    assert!(w.tapped().await.is_empty());
    // Still down at the next poll: the records whose events are not out come back (the checkpoint
    // moved only past records that have no events at all).
    let again = w.poller.poll_once().await.unwrap();
    assert!(
        again.records > 0 && again.records <= report.records,
        "{again:?} after {report:?}"
    );
    assert_eq!(
        again.failed_batches, report.failed_batches,
        "every table with events still waits"
    );
    assert!(w.bus_fault.injected() > 0);

    // Back up: everything arrives.
    w.bus_fault.disarm();
    drain(&w).await;
    let events = w.tapped().await;
    let counts = by_type(&events);
    let all: BTreeSet<&str> = EVENT_TYPES.iter().copied().collect();
    assert_eq!(
        counts.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        all,
        "{counts:?}"
    );
    let ids: BTreeSet<&str> = events
        .iter()
        .map(|e| e["detail"]["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        events.len(),
        "nothing was on the bus before the outage ended: each once"
    );
    assert_eq!(
        w.poller.poll_once().await.unwrap().records,
        0,
        "the checkpoint moved past them"
    );
}

#[tokio::test]
async fn a_call_that_fails_once_is_retried_inside_the_same_invocation() {
    let w = World::new("events-blip").await;
    write_one_of_everything(&w).await;
    let control = {
        // The events a healthy bus gets, as the reference.
        let c = World::new("events-blip-control").await;
        write_one_of_everything(&c).await;
        drain(&c).await;
        c.tapped().await
    };
    w.bus_fault.fail_next("PutEvents", 1);
    let report = w.poller.poll_once().await.unwrap();
    assert_eq!(report.failed_batches, 0, "{report:?}");
    assert_eq!(w.bus_fault.injected(), 1);
    drain(&w).await;
    let ids = |events: &[Value]| -> BTreeSet<String> {
        events
            .iter()
            .map(|e| e["detail"]["event_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let events = w.tapped().await;
    assert_eq!(
        ids(&events),
        ids(&control),
        "the same facts, under the same ids"
    );
    assert_eq!(events.len(), control.len());
}

#[tokio::test]
async fn write_to_bus_latency_locally() {
    // Not a pass/fail figure (this machine is shared): printed for the closing note and docs.
    let w = World::new("events-latency").await;
    let mut samples = Vec::new();
    for i in 0..5 {
        let body = build::envelope(vec![build::text(
            &format!("wamid.LAT{i}"),
            Some("5215500000001"),
            None,
            1_796_000_000 + i,
            "hola",
        )]);
        let start = Instant::now();
        w.deliver(&body).await;
        let written = start.elapsed();
        loop {
            w.poller.poll_once().await.unwrap();
            if !w.tapped().await.is_empty() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the event never arrived"
            );
        }
        samples.push((written, start.elapsed()));
    }
    eprintln!(
        "write → bus (delivery answered, event on the tap queue), ms: {:?}",
        samples
            .iter()
            .map(|(w, t)| (w.as_millis(), t.as_millis()))
            .collect::<Vec<_>>()
    );
}

/// Our template sends as the sender records them, and Meta's statuses for them, some before the
/// sender's record (Meta can be faster than our write), a failure, and the user's replies.
async fn write_a_campaign(w: &World, t0: i64) {
    let number = PhoneNumberId::parse(NUMBER).unwrap();
    let contact = ContactKey::from_stored(format!("{NUMBER}#5215512345678"));
    let record = |wamid: &'static str, name: &'static str, category: &'static str, at: i64| {
        let (number, contact) = (number.clone(), contact.clone());
        let store = w.harness.store().clone();
        async move {
            let wamid = Wamid::parse(wamid).unwrap();
            store
                .record_outbound(&OutboundSend {
                    wamid: &wamid,
                    number: &number,
                    contact: &contact,
                    to: "+5215512345678",
                    category,
                    kind: "template",
                    template_name: Some(name),
                    template_language: Some("es_MX"),
                    idempotency_key: None,
                    callback_data: None,
                    accepted_at: UnixTime::from_secs(at),
                    counts_toward_cap: None,
                    pacing: None,
                    endpoint: None,
                })
                .await
                .unwrap();
        }
    };
    let priced = |items: &[(&str, &str, i64)], category: &str| {
        let mut v = build::statuses("5215512345678", items);
        for s in v["statuses"].as_array_mut().unwrap() {
            s["pricing"] = json!({"billable": true, "pricing_model": "PMP", "category": category, "type": "regular"});
        }
        build::envelope(vec![v])
    };
    // A: a utility template, recorded, then sent → delivered → read.
    record("wamid.A", "order_update", "utility", t0).await;
    w.deliver(&priced(
        &[
            ("wamid.A", "sent", t0 + 1),
            ("wamid.A", "delivered", t0 + 2),
            ("wamid.A", "read", t0 + 3),
        ],
        "utility",
    ))
    .await;
    // B: a marketing template whose statuses beat the sender's record.
    w.deliver(&priced(
        &[
            ("wamid.B", "sent", t0 + 11),
            ("wamid.B", "delivered", t0 + 12),
        ],
        "marketing",
    ))
    .await;
    record("wamid.B", "promo", "marketing", t0 + 10).await;
    // C: the same campaign, failed for the per-user marketing limit.
    record("wamid.C", "promo", "marketing", t0 + 20).await;
    let mut failed = build::statuses("5215512345678", &[("wamid.C", "failed", t0 + 21)]);
    failed["statuses"][0]["errors"] =
        json!([{"code": 131049, "title": "healthy ecosystem engagement"}]);
    w.deliver(&build::envelope(vec![failed])).await;
    // Two messages from the user: both reply to B (delivered last before them); B counts once.
    for (i, body) in ["Me interesa", "¿Cuánto cuesta?"].iter().enumerate() {
        let id = format!("wamid.R{i}");
        w.deliver(&build::envelope(vec![build::text(
            &id,
            Some("5215512345678"),
            None,
            t0 + 100 + i as i64,
            body,
        )]))
        .await;
    }
}

async fn figures(store: &wahook::store::Store, day: &str) -> Vec<(String, BTreeMap<String, i64>)> {
    let mut rows: Vec<(String, BTreeMap<String, i64>)> = store
        .figures_of_day(day)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                format!("{}#{}#{}", r.template, r.language, r.category),
                r.counts,
            )
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn figures_are_exact_under_redelivery_replay_and_any_order() {
    let w = World::new("figures").await;
    let t0 = 1_796_000_000;
    let day = wahook::domain::figures::day_of(t0);
    let webhook_before = w.harness.counter.snapshot();
    write_a_campaign(&w, t0).await;
    let webhook_requests = w.harness.counter.snapshot();
    let records = drain(&w).await;
    // For the closing note and docs (not pass/fail): what the figures cost, and that the webhook's
    // own requests are what they always were (the publisher's are on its own client).
    eprintln!(
        "publisher DynamoDB requests for {records} stream records: {:?}; webhook requests for the campaign: {:?} (before: {webhook_before:?})",
        w.publisher_dynamodb.snapshot(),
        webhook_requests
    );
    let first = figures(w.harness.store(), &day).await;
    let row = |name: &str| -> BTreeMap<String, i64> {
        first
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| panic!("no row {name}: {first:?}"))
    };
    let utility = row("order_update#es_MX#utility");
    let expected_utility: BTreeMap<String, i64> = [
        ("sent", 1),
        ("delivered", 1),
        ("read", 1),
        ("priced__utility__regular", 1),
        ("billable", 1),
        ("cost_micros", 8_500),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(utility, expected_utility);
    let promo = row("promo#es_MX#marketing");
    for (k, v) in [
        ("sent", 2),
        ("delivered", 1),
        ("failed", 1),
        ("failed_131049", 1),
        ("replied", 1),
        ("priced__marketing__regular", 1),
        ("billable", 1),
        ("cost_micros", 43_600),
    ] {
        assert_eq!(promo.get(k), Some(&v), "{k}: {promo:?}");
    }
    assert_eq!(promo.get("read"), None, "{promo:?}");

    // The same records again, from the oldest (a new mapping, a replayed shard).
    let replay = StreamPoller::new(&w.sdk, &w.harness.tables, w.publisher.clone());
    while replay.poll_once().await.unwrap().records > 0 {}
    assert_eq!(
        figures(w.harness.store(), &day).await,
        first,
        "a replay changes nothing"
    );

    // The same records newest first, into figures of their own: the same table.
    let mut records = w.poller.read_all().await.unwrap();
    records.reverse();
    let mut tables = w.harness.tables.clone();
    tables.figures = format!("{}-reversed", tables.figures);
    create_table(&w.harness.client, &FIGURES, &tables.figures)
        .await
        .unwrap();
    let env: Vec<(&str, String)> = vec![
        ("WAHOOK_EVENT_BUS_NAME", w.bus.clone()),
        ("WAHOOK_MESSAGES_TABLE", tables.messages.clone()),
        ("WAHOOK_CONTACTS_TABLE", tables.contacts.clone()),
        ("WAHOOK_SENDS_TABLE", tables.sends.clone()),
        ("WAHOOK_TEMPLATES_TABLE", tables.templates.clone()),
        ("WAHOOK_EVENTS_TABLE", tables.events.clone()),
        ("WAHOOK_FIGURES_TABLE", tables.figures.clone()),
        ("WAHOOK_RATE_CARD", RATE_CARD.to_owned()),
    ];
    let reversed = Publisher::new(
        aws_sdk_eventbridge::Client::new(&w.sdk),
        aws_sdk_dynamodb::Client::new(&w.sdk),
        &PublisherConfig::load(&Env::from_pairs(env)).unwrap(),
        Metrics::disabled("publisher"),
    );
    assert_eq!(
        reversed
            .publish(reversed.read_records(&records), None)
            .await
            .failed_from,
        None
    );
    let store = wahook::store::Store::new(w.harness.client.clone(), tables, 90);
    let rows = figures(&store, &day).await;
    assert_eq!(rows, first, "newest first counts the same");

    // And again into the first figures, in both orders: nothing changes.
    let outcome = w
        .publisher
        .publish(w.publisher.read_records(&records), None)
        .await;
    assert_eq!(outcome.failed_from, None);
    assert_eq!(outcome.facts_counted, 0, "every fact was counted before");
    records.reverse();
    w.publisher
        .publish(w.publisher.read_records(&records), None)
        .await;
    assert_eq!(
        figures(w.harness.store(), &day).await,
        first,
        "order changes nothing"
    );
}

#[tokio::test]
async fn a_reply_filed_under_the_bsuid_counts_when_the_delivery_status_comes_late() {
    let w = World::new("figures-bsuid").await;
    let t0 = 1_796_100_000;
    let day = wahook::domain::figures::day_of(t0);
    let (number, bsuid) = (PhoneNumberId::parse(NUMBER).unwrap(), "MX.1310418412279093");
    // The template goes to the phone: its message is filed under the phone's key.
    let wamid = Wamid::parse("wamid.LATE").unwrap();
    let phone_key = ContactKey::from_stored(format!("{NUMBER}#5215512345678"));
    w.harness
        .store()
        .record_outbound(&OutboundSend {
            wamid: &wamid,
            number: &number,
            contact: &phone_key,
            to: "+5215512345678",
            category: "marketing",
            kind: "template",
            template_name: Some("promo"),
            template_language: Some("es_MX"),
            idempotency_key: None,
            callback_data: None,
            accepted_at: UnixTime::from_secs(t0),
            counts_toward_cap: None,
            pacing: None,
            endpoint: None,
        })
        .await
        .unwrap();
    drain(&w).await;
    // The user answers with both ids: the reply is filed under the BSUID. No delivery is known yet.
    w.deliver(&build::envelope(vec![build::text(
        "wamid.ANSWER",
        Some("5215512345678"),
        Some(bsuid),
        t0 + 100,
        "Sí, me interesa",
    )]))
    .await;
    drain(&w).await;
    // Then Meta's delivered status (timestamped before the reply) arrives, naming both ids.
    let mut late = build::statuses("5215512345678", &[("wamid.LATE", "delivered", t0 + 50)]);
    late["statuses"][0]["recipient_user_id"] = json!(bsuid);
    w.deliver(&build::envelope(vec![late])).await;
    drain(&w).await;
    let rows = figures(w.harness.store(), &day).await;
    let promo = &rows
        .iter()
        .find(|(k, _)| k == "promo#es_MX#marketing")
        .unwrap_or_else(|| panic!("{rows:?}"))
        .1;
    assert_eq!(promo.get("delivered"), Some(&1), "{promo:?}");
    assert_eq!(
        promo.get("replied"),
        Some(&1),
        "found from the template's side: {promo:?}"
    );
}
