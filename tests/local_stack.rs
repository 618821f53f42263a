//! The local stack end to end, as a user runs it: `scripts/dev.sh --detach`, then only its public
//! surfaces (signed HTTP to the webhook, SQS, the simulator's endpoints, DynamoDB reads) and the
//! documented `scripts/dev.sh` subcommands; then `scripts/dev.sh down`, and no process it started may
//! be left. A second test runs the plain command (the demo) and stops it with Ctrl-C.
//!
//! `scripts/test.sh` builds the binaries first and sets `WAHOOK_DEV_BIN_DIR`, so no build runs inside
//! a test.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::Region;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use wahook_tests::local_stack::{
    alive, bin_dir, dev_env, dev_sh, pids, root, tempdir, text, KillOnDrop, StopLeftovers,
};

struct Stack {
    env: BTreeMap<String, String>,
    http: reqwest::Client,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
}

impl Stack {
    async fn new(state: &Path) -> Self {
        let env = dev_env(state);
        let sdk = wahook::aws::sdk_loader()
            .region(Region::new(env["AWS_REGION"].clone()))
            .endpoint_url(&env["AWS_ENDPOINT_URL"])
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "e2e",
            ))
            .load()
            .await;
        Self {
            http: wahook::tls::https_client_builder().build().unwrap(),
            dynamo: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            env,
        }
    }

    async fn sim(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.env["WAHOOK_META_SIM_URL"]))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null)
    }

    async fn user_writes(&self, from: &str, text: &str) -> String {
        let r = self
            .sim("/_sim/inbound", json!({"from": from, "text": text, "name": "E2E", "phone_number_id": self.env["WAHOOK_DEFAULT_PHONE_NUMBER_ID"]}))
            .await;
        assert_eq!(r["webhook_status"], 200, "{r}");
        r["wamid"].as_str().unwrap().to_owned()
    }

    async fn sim_messages(&self) -> Vec<Value> {
        let r = self
            .http
            .get(format!("{}/_sim/messages", self.env["WAHOOK_META_SIM_URL"]))
            .send()
            .await
            .unwrap();
        serde_json::from_str(&r.text().await.unwrap()).unwrap()
    }

    async fn enqueue(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.env["WAHOOK_SENDS_QUEUE_URL"])
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    async fn item(&self, table: &str, key: &str, value: &str) -> Option<BTreeMap<String, String>> {
        self.dynamo
            .get_item()
            .table_name(&self.env[table])
            .key(key, AttributeValue::S(value.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item()
            .map(|i| {
                i.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_s()
                                .or(v.as_n())
                                .cloned()
                                .unwrap_or_else(|_| format!("{v:?}")),
                        )
                    })
                    .collect()
            })
    }

    async fn ledger(&self, key: &str) -> Option<String> {
        self.item("WAHOOK_SENDS_TABLE", "idempotency_key", key)
            .await
            .and_then(|i| i.get("state").cloned())
    }

    async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("timed out waiting for {what}");
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn template(key: &str, to: &str, category: &str) -> String {
    json!({"v": 1, "idempotency_key": key, "to": to, "category": category,
        "template": {"name": "order_shipped", "language": "es_MX"}})
    .to_string()
}

#[tokio::test]
async fn the_detached_stack_carries_a_conversation_end_to_end() {
    let _turn = ONE_STACK_AT_A_TIME.lock().await;
    let state = tempdir("detached");
    let _cleanup = StopLeftovers(state.clone());
    let up = dev_sh(&state, &["--detach"]);
    assert!(up.status.success(), "{}", text(&up));
    let started = pids(&state);
    assert_eq!(
        started.len(),
        3,
        "moto, the simulator and wahook-local: {started:?}"
    );
    let s = Stack::new(&state).await;
    for key in [
        "WAHOOK_WEBHOOK_URL",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "WAHOOK_SENDS_QUEUE_URL",
        "WAHOOK_META_SIM_URL",
        "WAHOOK_CONTACTS_TABLE",
        "WAHOOK_MESSAGES_TABLE",
        "WAHOOK_EVENTS_TABLE",
        "WAHOOK_SENDS_TABLE",
        "WAHOOK_SENDS_DLQ_URL",
        "WAHOOK_APP_SECRET",
        "WAHOOK_VERIFY_TOKEN",
    ] {
        assert!(s.env.contains_key(key), "dev.env lacks {key}");
    }
    assert!(
        s.env.values().all(|v| !v.contains("0.0.0.0")),
        "127.0.0.1 only"
    );
    // The settings hold the local secrets: this user's only, and not guessable.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700, "the state directory");
    assert_eq!(mode(&state.join("dev.env")), 0o600, "dev.env");
    assert!(
        s.env["WAHOOK_APP_SECRET"].len() >= "local-app-secret-".len() + 32,
        "128 random bits"
    );

    // The handshake, over real HTTP.
    let get = s
        .http
        .get(format!(
            "{}?hub.mode=subscribe&hub.challenge=4242&hub.verify_token={}",
            s.env["WAHOOK_WEBHOOK_URL"], s.env["WAHOOK_VERIFY_TOKEN"]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (get.status().as_u16(), get.text().await.unwrap()),
        (200, "4242".to_owned())
    );

    // 1. A conversation from the first message to the read receipt.
    let ana = "+5215512345678";
    s.user_writes(ana, "Hola").await;
    s.enqueue(&template("e2e-order-1", ana, "utility")).await;
    s.eventually("the template sent", || async {
        s.ledger("e2e-order-1").await.as_deref() == Some("sent")
    })
    .await;
    let wamid = s
        .item("WAHOOK_SENDS_TABLE", "idempotency_key", "e2e-order-1")
        .await
        .unwrap()["wamid"]
        .clone();
    s.eventually("its read receipt", || async {
        s.item("WAHOOK_MESSAGES_TABLE", "wamid", &wamid)
            .await
            .is_some_and(|m| m.get("status").map(String::as_str) == Some("read"))
    })
    .await;
    let sent = s.sim_messages().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["body"]["to"], ana);

    // 2. A duplicate webhook: the same signed delivery twice, straight to the webhook.
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881",
            "phone_number_id": s.env["WAHOOK_DEFAULT_PHONE_NUMBER_ID"]},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5215512345678"}],
            "messages": [{"from": "5215512345678", "id": "wamid.E2E.DUPLICATE", "timestamp": "1795400000",
                "type": "text", "text": {"body": "twice"}}]}}]}]})
    .to_string();
    for _ in 0..2 {
        let r = s
            .http
            .post(&s.env["WAHOOK_WEBHOOK_URL"])
            .header("content-type", "application/json")
            .header(
                "x-hub-signature-256",
                sign(&s.env["WAHOOK_APP_SECRET"], body.as_bytes()),
            )
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let stored = s
        .item("WAHOOK_MESSAGES_TABLE", "wamid", "wamid.E2E.DUPLICATE")
        .await
        .unwrap();
    assert_eq!(stored["direction"], "in");
    let unsigned = s
        .http
        .post(&s.env["WAHOOK_WEBHOOK_URL"])
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        unsigned.status().as_u16(),
        401,
        "unsigned POSTs are refused"
    );

    // 3. Out-of-window text with a fallback template: João never wrote.
    let joao = "+5511987654321";
    s.enqueue(
        &json!({"v": 1, "idempotency_key": "e2e-text-1", "to": joao, "category": "utility",
            "text": {"body": "Olá"}, "fallback_template": {"name": "order_update", "language": "pt_BR"}})
        .to_string(),
    )
    .await;
    s.eventually("the fallback sent", || async {
        s.ledger("e2e-text-1").await.as_deref() == Some("sent")
    })
    .await;
    let sent = s.sim_messages().await;
    let to_joao: Vec<&Value> = sent.iter().filter(|m| m["body"]["to"] == joao).collect();
    assert_eq!(to_joao.len(), 1);
    assert_eq!(
        to_joao[0]["body"]["type"], "template",
        "the fallback went, not the text"
    );

    // 4. An opted-out marketing send makes no call.
    s.user_writes(joao, "PARAR").await;
    s.eventually("João's opt-out", || async {
        s.item(
            "WAHOOK_CONTACTS_TABLE",
            "contact",
            &format!("{}#5511987654321", s.env["WAHOOK_DEFAULT_PHONE_NUMBER_ID"]),
        )
        .await
        .is_some_and(|c| {
            c.get("preferences")
                .is_some_and(|p| p.contains("opted_out"))
        })
    })
    .await;
    let before = s.sim_messages().await.len();
    s.enqueue(&template("e2e-promo-1", joao, "marketing")).await;
    s.eventually("the promo suppressed", || async {
        s.ledger("e2e-promo-1").await.as_deref() == Some("suppressed")
    })
    .await;
    assert_eq!(s.sim_messages().await.len(), before, "no call to Meta");

    // 5. A poison message lands on the DLQ with its reason; the documented commands show it all.
    s.enqueue("{not json").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let dlq = loop {
        let out = dev_sh(&state, &["dlq"]);
        let shown = text(&out);
        if shown.contains("invalid_request") || Instant::now() > deadline {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        dlq.contains("invalid_request") && dlq.contains("not a version 1 send request"),
        "{dlq}"
    );
    let timeline = text(&dev_sh(&state, &["timeline", ana]));
    assert!(
        timeline.contains("<- text \"Hola\"")
            && timeline.contains("template order_shipped (utility)  [read]"),
        "{timeline}"
    );
    let status = text(&dev_sh(&state, &["status", "e2e-promo-1"]));
    assert!(
        status.contains("e2e-promo-1: suppressed (the contact opted out of marketing"),
        "{status}"
    );
    let inbound = dev_sh(&state, &["inbound", "--from", ana, "--text", "gracias"]);
    assert!(
        text(&inbound).contains("delivered to the webhook"),
        "{}",
        text(&inbound)
    );
    let send = dev_sh(&state, &["send", "--to", ana, "--text", "de nada"]);
    assert!(text(&send).contains("enqueued dev-"), "{}", text(&send));

    // A second start is refused with advice, and changes nothing.
    let again = dev_sh(&state, &["--detach"]);
    assert!(
        !again.status.success() && text(&again).contains("already running"),
        "{}",
        text(&again)
    );
    assert_eq!(pids(&state), started);

    // Down stops exactly what it started.
    let down = dev_sh(&state, &["down"]);
    assert!(down.status.success(), "{}", text(&down));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left: Vec<&String> = started.iter().filter(|p| alive(p)).collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
    assert!(!state.join("dev.env").exists());
}

#[tokio::test]
async fn the_plain_command_plays_the_demo_and_ctrl_c_stops_everything() {
    let _turn = ONE_STACK_AT_A_TIME.lock().await;
    let state = tempdir("plain");
    let _cleanup = StopLeftovers(state.clone());
    let mut child = Command::new("bash")
        .arg(root().join("scripts/dev.sh"))
        .env("WAHOOK_DEV_DIR", &state)
        .env("WAHOOK_DEV_BIN_DIR", bin_dir())
        .env_remove("AWS_ENDPOINT_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The demo's story goes to stdout, the script's progress lines to stderr: read both, in order
    // of arrival, until the script says the stack keeps running.
    let (lines, arrived) = std::sync::mpsc::channel::<String>();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let to_out = lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = to_out.send(l);
        }
    });
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = lines.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut shown = Vec::new();
    let mut ready = false;
    while !ready && Instant::now() < deadline {
        match arrived.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                ready = line.contains("Ctrl-C stops everything");
                shown.push(line);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let shown = shown.join("\n");
    assert!(ready, "the demo did not finish:\n{shown}");
    for step in [
        "1. Ana writes \"Hola\"",
        "their statuses back: sent → delivered → read",
        "the marketing send suppressed, without a call to Meta",
        "marketing   opted out (keyword",
    ] {
        assert!(shown.contains(step), "missing {step:?} in:\n{shown}");
    }
    let started = pids(&state);
    assert_eq!(started.len(), 3, "{started:?}");
    assert!(
        started.iter().all(|p| alive(p)),
        "the stack keeps running after the demo"
    );

    // Ctrl-C.
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.try_wait().unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "the script did not stop cleanly on Ctrl-C: {status:?}"
    );
    let left: Vec<&String> = started.iter().filter(|p| alive(p)).collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

/// One stack at a time: each is three processes, and CI machines have two cores.
static ONE_STACK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn down_never_signals_a_process_that_reused_a_stale_pid() {
    // A crash left pid files behind, and the PIDs now belong to another program: one whose command
    // line even names ours (someone tailing the stack's logs).
    let state = tempdir("stale-pids");
    std::fs::create_dir_all(state.join("pids")).unwrap();
    let named: Vec<_> = ["wahook-local.log", "meta-sim.log", "moto_server.py"]
        .iter()
        .map(|f| {
            let path = state.join(f);
            std::fs::write(&path, "").unwrap();
            path
        })
        .collect();
    let stranger = KillOnDrop(
        std::process::Command::new("tail")
            .arg("-f")
            .args(&named)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start a stand-in process"),
    );
    let pid = stranger.0.id().to_string();
    for name in ["moto", "meta-sim", "wahook-local"] {
        std::fs::write(state.join(format!("pids/{name}.pid")), &pid).unwrap();
    }
    let down = dev_sh(&state, &["down"]);
    let still_alive = alive(&pid);
    drop(stranger);
    assert!(down.status.success(), "{}", text(&down));
    assert!(still_alive, "down signalled a process it did not start");
    assert!(text(&down).contains("not signalling it"), "{}", text(&down));
    let _ = std::fs::remove_dir_all(&state);
}
