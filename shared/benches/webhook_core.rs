//! The webhook's CPU work per delivery: signature check + parse + planning the writes, compared with
//! HMAC-SHA256 alone over the same bytes (the floor any verifying webhook pays).
//!
//! `cargo bench -p wahook --bench webhook_core`. No DynamoDB call is made: planning is pure.

use std::hint::black_box;

use criterion::{criterion_group, Criterion, Throughput};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;
use wahook::config::WebhookConfig;
use wahook::domain::keywords::KeywordRules;
use wahook::secret::SecretString;
use wahook::signature::{sign, SIGNATURE_HEADER};
use wahook::store::tables::TableNames;
use wahook::telemetry::Metrics;
use wahook::webhook::WebhookService;

const SECRET: &str = "bench-app-secret";

fn service() -> WebhookService {
    let config = WebhookConfig {
        app_secrets: vec![SecretString::new(SECRET)],
        verify_token: SecretString::new("token"),
        storage: wahook::config::StorageConfig {
            tables: TableNames::with_prefix("bench"),
            retention_days: 90,
        },
        keywords: KeywordRules::default(),
        inbound_numbers: None,
        write_concurrency: 32,
        deadlines: wahook::config::Deadlines::load(
            &wahook::config::Env::from_pairs::<&str, &str>([]),
            wahook::config::Function::Webhook,
        )
        .unwrap(),
        delivery_deadline: std::time::Duration::from_secs(8),
        media_queue_url: None,
    };
    // A client that is never called: the benchmark stops before any write.
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build(),
    );
    WebhookService::new(&config, client, Metrics::disabled("bench")).unwrap()
}

fn text_payload() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/payloads/text-hola.json"
    ))
    .unwrap()
}

/// 1000 statuses (sent and delivered for 500 messages) in one change, as Meta may batch them.
fn status_batch() -> Vec<u8> {
    let statuses: Vec<String> = (0..1000)
        .map(|i| {
            let (wamid, status) = (i / 2, if i % 2 == 0 { "sent" } else { "delivered" });
            format!(
                r#"{{"id":"wamid.HBgNNTIxNTUxMjM0NTY3OBUCABEYEjQ4RDVC{wamid:06}","status":"{status}","timestamp":"{}","recipient_id":"5215512345678","recipient_user_id":"MX.1310418412279093","biz_opaque_callback_data":"order-{wamid}","pricing":{{"billable":true,"pricing_model":"PMP","category":"utility","type":"regular"}}}}"#,
                1_795_400_000 + i
            )
        })
        .collect();
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102290129340398","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"statuses":[{}]}},"field":"messages"}}]}}]}}"#,
        statuses.join(",")
    )
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let service = service();
    let payloads = [
        ("text_625B", "text-hola.json", text_payload()),
        ("statuses_1000", "statuses-1000.json", status_batch()),
    ];
    // scripts/bench.sh compare runs pywa over the very same bytes.
    if let Some(dir) = std::env::var_os("WAHOOK_BENCH_PAYLOAD_DIR") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (_, file, body) in &payloads {
            std::fs::write(dir.join(file), body).unwrap();
        }
    }
    for (name, _, body) in payloads {
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            sign(&SecretString::new(SECRET), &body).parse().unwrap(),
        );
        let plan = service.verify_and_plan(&headers, &body).unwrap();
        assert!(
            plan.counts.messages + plan.counts.statuses > 0,
            "{name}: the payload plans writes"
        );

        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("hmac_sha256_only", |b| {
            let keyed = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            b.iter(|| {
                let mut mac = keyed.clone();
                mac.update(black_box(&body));
                black_box(mac.finalize().into_bytes())
            })
        });
        group.bench_function("verify_parse_plan", |b| {
            b.iter(|| {
                black_box(
                    service
                        .verify_and_plan(black_box(&headers), black_box(&body))
                        .unwrap(),
                )
            })
        });
        group.finish();
    }
}

/// `WAHOOK_BENCH_COUNT=<case>:<n>` runs only verify+parse+plan (or, with `WAHOOK_BENCH_COUNT_MODE=hmac`,
/// HMAC-SHA256 alone) of one case n times, for an instruction
/// counter (`scripts/bench.sh instructions` runs it under callgrind): counts do not drift with the
/// neighbours' load as times do on a shared machine.
fn count(spec: &str) {
    let (case, n) = spec
        .split_once(':')
        .expect("WAHOOK_BENCH_COUNT=<case>:<iterations>");
    let n: usize = n.parse().expect("a number of iterations");
    let service = service();
    let body = match case {
        "text_625B" => text_payload(),
        "statuses_1000" => status_batch(),
        other => panic!("no case {other}: text_625B or statuses_1000"),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        SIGNATURE_HEADER,
        sign(&SecretString::new(SECRET), &body).parse().unwrap(),
    );
    // WAHOOK_BENCH_COUNT_MODE=hmac: the floor, HMAC-SHA256 alone over the same bytes.
    if std::env::var("WAHOOK_BENCH_COUNT_MODE").as_deref() == Ok("hmac") {
        let keyed = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        for _ in 0..n {
            let mut mac = keyed.clone();
            mac.update(black_box(&body));
            black_box(mac.finalize().into_bytes());
        }
        return;
    }
    for _ in 0..n {
        black_box(
            service
                .verify_and_plan(black_box(&headers), black_box(&body))
                .unwrap(),
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    match std::env::var("WAHOOK_BENCH_COUNT") {
        Ok(spec) => count(&spec),
        Err(_) => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
