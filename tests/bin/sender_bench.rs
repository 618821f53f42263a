//! Performance harness of the sender (not a timed test): run it with `scripts/bench.sh`, which starts
//! moto. Reports, measured in one run:
//! - a batch of 10 against a simulator that answers after 200 ms, concurrent vs one at a time;
//! - pacing at a configured rate over a few hundred sends (first to last request at the simulator);
//! - DynamoDB requests per accepted send.

use std::time::{Duration, Instant};

use futures::StreamExt;

use wahook::outbound::QueuedSend;
use wahook_meta_sim::Fault;
use wahook_tests::sender::World;

fn record(i: usize, key: &str, to: &str) -> QueuedSend {
    QueuedSend {
        message_id: format!("m-{i}"),
        receipt_handle: None,
        body: serde_json::json!({
            "v": 1, "idempotency_key": key, "to": to, "category": "utility",
            "template": {"name": "order_shipped", "language": "en_US"}
        })
        .to_string(),
        receive_count: 1,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median and max time of a batch of 10 through `handle_batch`, with the simulator answering after
/// `answer_after`.
async fn batch_latency(concurrency_one: bool, answer_after: Duration) -> (Duration, Duration) {
    let name = if concurrency_one {
        "bench-seq"
    } else {
        "bench-batch"
    };
    let w = World::with(name, |o| {
        o.status_webhooks = false;
        o.graph_timeout = Duration::from_secs(5);
    })
    .await;
    let sender = if concurrency_one {
        w.sequential_sender().await
    } else {
        w.sender.clone()
    };
    let mut times = Vec::new();
    for round in 0..5 {
        let records: Vec<QueuedSend> = (0..10)
            .map(|i| {
                let to = format!("+1555200{round}{i:03}");
                w.sim.script(&to, Fault::Slow(answer_after), 1);
                record(i, &format!("{name}-{round}-{i}"), &to)
            })
            .collect();
        let start = Instant::now();
        let result = sender.handle_batch(records).await;
        times.push(start.elapsed());
        assert!(result.failures.is_empty(), "{:?}", result.outcomes);
    }
    let max = *times.iter().max().unwrap();
    (median(times), max)
}

async fn pacing(rate: f64, n: usize) -> f64 {
    let w = World::with("bench-pace", |o| {
        o.status_webhooks = false;
        o.rate_per_second = rate;
        o.burst = 1;
    })
    .await;
    let records: Vec<QueuedSend> = (0..n)
        .map(|i| record(i, &format!("pace-{i}"), &format!("+1555300{i:04}")))
        .collect();
    let result = w.sender.handle_batch(records).await;
    let failed: Vec<_> = result
        .outcomes
        .iter()
        .filter(|(_, o)| o.name() == "retry")
        .collect();
    assert!(
        failed.is_empty(),
        "{} records failed: {failed:?}",
        failed.len()
    );
    let mut at: Vec<u128> = w.sim.accepted().iter().map(|m| m.received_at_ms).collect();
    at.sort();
    let span_s = (at[at.len() - 1] - at[0]) as f64 / 1000.0;
    (n - 1) as f64 / span_s
}

/// The pacer alone in front of the Graph client and the simulator, over real HTTP: the on-the-wire rate
/// without DynamoDB (moto cannot keep up with Meta-like rates on this machine).
async fn pacing_on_the_wire(rate: f64, n: usize) -> f64 {
    let sim = wahook_meta_sim::MetaSim::start("127.0.0.1:0".parse().unwrap(), Default::default())
        .await
        .unwrap();
    let graph = wahook::graph::GraphClient::new(
        wahook::graph::GraphConfig {
            base_url: sim.url(),
            ..Default::default()
        },
        wahook::secret::SecretString::new("token"),
    )
    .unwrap();
    let pacer = std::sync::Arc::new(wahook::outbound::Pacer::new(rate, 1));
    let number = wahook::domain::ids::PhoneNumberId::parse("106540352242922").unwrap();
    let sends = (0..n).map(|i| {
        let (graph, pacer, number) = (graph.clone(), pacer.clone(), number.clone());
        async move {
            pacer.acquire(&number).await;
            let body = serde_json::json!({"messaging_product": "whatsapp", "to": format!("+1555500{i:04}"),
                "type": "template", "template": {"name": "t", "language": {"code": "en"}}});
            graph.send(&number, &body).await.unwrap();
        }
    });
    // Ten in flight, as the sender runs them.
    futures::stream::iter(sends)
        .buffer_unordered(10)
        .collect::<Vec<_>>()
        .await;
    let mut at: Vec<u128> = sim.accepted().iter().map(|m| m.received_at_ms).collect();
    at.sort();
    (n - 1) as f64 / ((at[at.len() - 1] - at[0]) as f64 / 1000.0)
}

async fn requests_per_send() -> f64 {
    let w = World::with("bench-cost", |o| o.status_webhooks = false).await;
    let records: Vec<QueuedSend> = (0..10)
        .map(|i| record(i, &format!("cost-{i}"), &format!("+1555400{i:04}")))
        .collect();
    w.harness.counter.reset();
    let result = w.sender.handle_batch(records).await;
    assert!(result.failures.is_empty());
    let total: usize = w.harness.counter.snapshot().values().sum();
    println!(
        "  DynamoDB requests for 10 sends: {:?}",
        w.harness.counter.snapshot()
    );
    total as f64 / 10.0
}

#[tokio::main]
async fn main() {
    let slow = Duration::from_millis(200);
    let (baseline, _) = batch_latency(false, Duration::ZERO).await;
    let (concurrent, concurrent_max) = batch_latency(false, slow).await;
    let (sequential, _) = batch_latency(true, slow).await;
    println!("batch of 10 through handle_batch (median of 5; DynamoDB is moto on this machine):");
    println!(
        "  simulator answering at once:            {baseline:?}  (our DynamoDB + HTTP overhead)"
    );
    println!("  simulator answering after 200 ms:       {concurrent:?} (max {concurrent_max:?})");
    println!(
        "  of which waiting on Meta:               {:?}  (10 calls in flight: one 200 ms wait, not ten)",
        concurrent.saturating_sub(baseline)
    );
    println!("  same, one record at a time:             {sequential:?}");
    println!(
        "  ratio one-at-a-time / concurrent:       {:.1}x",
        sequential.as_secs_f64() / concurrent.as_secs_f64()
    );

    for (rate, n) in [(80.0, 400), (200.0, 400)] {
        let measured = pacing_on_the_wire(rate, n).await;
        println!(
            "pacing, pacer + Graph client over HTTP, {rate}/s over {n} sends: measured {measured:.1}/s ({:+.1}%)",
            (measured / rate - 1.0) * 100.0
        );
    }
    let (rate, n) = (5.0, 150);
    let measured = pacing(rate, n).await;
    println!(
        "pacing, whole sender pipeline with moto, {rate}/s over {n} sends: measured {measured:.2}/s ({:+.1}%)",
        (measured / rate - 1.0) * 100.0
    );

    let per_send = requests_per_send().await;
    println!("DynamoDB requests per accepted send: {per_send:.1}");
}
