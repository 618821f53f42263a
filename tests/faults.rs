//! The fault suite: real outages of real parts, bounded in time and always undone.
//!
//! - A DynamoDB that stops answering (a moto of this test's own, paused with SIGSTOP mid-POST): the
//!   webhook answers 503 within its deadline, and the same POST after SIGCONT is stored once.
//! - An account that cannot send (the simulator answers 190 to every send, as after a revoked
//!   token): 30 queued sends are held, not failed, with a handful of Graph calls; once the account
//!   works, each goes exactly once.
//! - A token rotated in its secret is read again and used without a cold start.
//! - A connection reset after Meta read the request: reconciled, never resent.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client as SecretsClient;
use serde_json::json;
use wahook::domain::ledger::SendState;
use wahook_meta_sim::Fault;
use wahook_tests::fixtures;
use wahook_tests::sender::{World, ACCESS_TOKEN};
use wahook_tests::{sdk_config, Harness};

fn template(key: &str, to: &str) -> String {
    json!({
        "v": 1, "idempotency_key": key, "to": to, "category": "utility",
        "template": {"name": "order_shipped", "language": "es_MX"}
    })
    .to_string()
}

/// A moto server of this test's own, so pausing it stalls no other test. Resumed and stopped on drop.
struct PrivateMoto {
    child: Child,
    endpoint: String,
}

impl PrivateMoto {
    async fn start() -> PrivateMoto {
        let python = std::env::var("WAHOOK_MOTO_PYTHON")
            .unwrap_or_else(|_| format!("{}/../.venv/moto/bin/python", env!("CARGO_MANIFEST_DIR")));
        let script = format!("{}/../scripts/moto_server.py", env!("CARGO_MANIFEST_DIR"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(&python)
            .args([&script, "127.0.0.1", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start moto with {python} (scripts/test.sh installs it and sets WAHOOK_MOTO_PYTHON): {e}")
            });
        let moto = PrivateMoto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let http = wahook::tls::https_client_builder().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if http
                .get(format!("{}/moto-api/", moto.endpoint))
                .send()
                .await
                .is_ok()
            {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto did not start on {}", moto.endpoint);
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {}", self.child.id());
    }
}

impl Drop for PrivateMoto {
    fn drop(&mut self) {
        // Always resumed before it is stopped, whatever the test did.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_paused_dynamodb_gets_a_503_within_the_deadline_and_the_redelivery_is_stored_once() {
    let moto = PrivateMoto::start().await;
    let h = Harness::build("fault-sigstop", &moto.endpoint, true, |c| {
        c.deadlines.aws_operation = Duration::from_millis(800);
        c.deadlines.aws_attempt = Duration::from_millis(400);
        c.delivery_deadline = Duration::from_millis(1_500);
    })
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let body = fixtures::build::envelope(vec![fixtures::build::text(
        "wamid.SIGSTOP1",
        Some("5215512345678"),
        None,
        now,
        "hola",
    )]);

    moto.signal("-STOP");
    let started = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(10), h.deliver(&body))
        .await
        .expect("the webhook answered while DynamoDB was paused");
    let took = started.elapsed();
    moto.signal("-CONT");
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(
        took < Duration::from_millis(3_000),
        "503 after {took:?}, beyond the 1.5 s deadline's bound"
    );
    println!(
        "fault figure: paused DynamoDB -> 503 in {} ms (deadline 1500 ms)",
        took.as_millis()
    );

    // Meta redelivers the same POST: stored once, and a second redelivery is a duplicate.
    assert_eq!(h.deliver(&body).await.status, 200);
    assert_eq!(h.deliver(&body).await.status, 200);
    assert!(h.message_item("wamid.SIGSTOP1").await.is_some());
}

#[tokio::test]
async fn a_revoked_token_holds_thirty_sends_and_each_goes_once_when_it_works_again() {
    let w = World::with("fault-account", |o| {
        o.account.pause = Duration::from_millis(800);
        o.account.hold_secs = 1;
    })
    .await;
    w.sim.set_account_fault(Some(190));
    let keys: Vec<String> = (0..30).map(|i| format!("acct-{i:02}")).collect();
    for (i, key) in keys.iter().enumerate() {
        w.enqueue(&template(key, &format!("+55119876543{i:02}")))
            .await;
    }
    // Three seconds of a revoked token: every batch the queue gives back.
    let until = Instant::now() + Duration::from_secs(3);
    let mut held = 0;
    while Instant::now() < until {
        let r = w.run().await;
        held += r.failed;
        assert_eq!(
            r.deleted, 0,
            "nothing is finished while the account is broken"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls_while_revoked = w.sim.calls();
    assert!(w.sim.accepted().is_empty());
    for key in &keys {
        let e = w.ledger(key).await.expect("every send was seen");
        assert_eq!(e.state, SendState::Held, "{key}: held, never failed");
        assert!(e.reason.unwrap_or_default().contains("190"), "{key}");
    }
    assert!(
        calls_while_revoked <= 6,
        "{calls_while_revoked} Graph calls while the token was revoked (one probe per pause)"
    );

    // The account works again: every held send goes out, exactly once.
    w.sim.set_account_fault(None);
    let calls_before = w.sim.calls();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        w.run().await;
        let mut sent = 0;
        for key in &keys {
            if w.ledger(key).await.map(|e| e.state) == Some(SendState::Sent) {
                sent += 1;
            }
        }
        if sent == keys.len() {
            break;
        }
        assert!(
            Instant::now() < until,
            "only {sent} of 30 sent after recovery"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bodies = w.sent();
    let sent_keys: BTreeSet<String> = bodies
        .iter()
        .filter_map(|b| b["biz_opaque_callback_data"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(bodies.len(), 30, "each send exactly once");
    assert_eq!(sent_keys.len(), 30);
    println!(
        "fault figure: revoked token, 30 queued sends: {held} held deliveries, {calls_while_revoked} Graph calls while revoked, {} calls and {} sends after recovery",
        w.sim.calls() - calls_before,
        bodies.len()
    );
}

#[tokio::test]
async fn a_token_rotated_in_its_secret_is_read_again_and_used() {
    let sdk = sdk_config().await;
    let secrets = SecretsClient::new(&sdk);
    let name = format!("wahook-token-{}", uuid::Uuid::new_v4().simple());
    let arn = secrets
        .create_secret()
        .name(&name)
        .secret_string("EAAG-revoked-token")
        .send()
        .await
        .expect("create the token secret in moto")
        .arn
        .unwrap();
    let w = World::with("fault-token", |o| {
        o.token = "EAAG-revoked-token".into();
        o.token_secret = Some(arn.clone());
        o.account.pause = Duration::from_millis(300);
        o.account.hold_secs = 1;
    })
    .await;
    w.enqueue(&template("tok-1", "+5511987654321")).await;
    let first = w.run().await;
    assert_eq!(first.failed, 1);
    assert_eq!(w.ledger("tok-1").await.unwrap().state, SendState::Held);

    // A person rotates the secret in place; the running sender picks it up at the next probe.
    secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(ACCESS_TOKEN)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    w.expedite(&first).await;
    let second = w.run().await;
    assert_eq!((second.failed, second.deleted), (0, 1));
    assert_eq!(w.ledger("tok-1").await.unwrap().state, SendState::Sent);
    assert_eq!(w.sent().len(), 1);
}

#[tokio::test]
async fn a_reset_after_meta_read_the_request_is_reconciled_not_resent() {
    let w = World::new("fault-reset").await;
    w.sim.script("+5215512345678", Fault::Reset, 1);
    w.enqueue(&template("reset-1", "+5215512345678")).await;
    let report = w.run().await;
    assert_eq!(report.failed, 1);
    assert_eq!(
        w.ledger("reset-1").await.unwrap().state,
        SendState::Unknown,
        "a broken answer is lost, not a reason to resend"
    );
    let wamid = w.sim.accepted()[0].wamid.clone();
    w.eventually("the sent status", || async {
        w.harness.message_item(&wamid).await.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.expedite(&report).await;
    w.run().await;
    assert_eq!(w.ledger("reset-1").await.unwrap().state, SendState::Sent);
    assert_eq!(w.sent().len(), 1, "no second send");
}

#[tokio::test]
async fn a_send_held_on_its_last_allowed_delivery_goes_back_on_the_queue_not_to_the_dlq() {
    let w = World::with("fault-held-requeue", |o| {
        o.max_receive_count = 1;
        o.account.pause = Duration::from_millis(300);
        o.account.hold_secs = 1;
    })
    .await;
    w.sim.set_account_fault(Some(131_042));
    w.enqueue(&template("requeue-1", "+5511987654321")).await;
    let first = w.run().await;
    assert_eq!(
        (first.failed, first.deleted),
        (0, 1),
        "this copy is done; a fresh one waits on the queue"
    );
    assert!(
        w.dead_letters().await.is_empty(),
        "an account outage never dead-letters"
    );
    assert_eq!(w.ledger("requeue-1").await.unwrap().state, SendState::Held);

    w.sim.set_account_fault(None);
    let until = Instant::now() + Duration::from_secs(15);
    while w.ledger("requeue-1").await.unwrap().state != SendState::Sent {
        assert!(Instant::now() < until, "the requeued copy was not sent");
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.run().await;
    }
    assert_eq!(w.sent().len(), 1);
}
