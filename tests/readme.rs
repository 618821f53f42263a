//! The README cannot rot: every command in it is run here, or by CI, or (for the four that need an
//! AWS account, the internet or minutes of benchmarking) has what it names checked. A command this
//! file does not know fails the first test, so a new command in the README needs a check here.
//!
//! - The local-stack block runs line by line against a detached stack (`scripts/dev.sh --detach` …
//!   `down`), with only `.wahook/` replaced by the test's own state directory.
//! - The producer snippets (aws CLI, boto3, Node, Rust) each put a request on a fresh queue in the
//!   test run's moto; the bodies that arrive must be what the sender accepts.
//! - The JSON examples must pass the sender's own parser.
//! - The deploy section's `aws secretsmanager` commands run against moto; `scripts/build-lambdas.sh`
//!   runs up to its arm64 target check.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wahook::domain::consent_request::ConsentRequest;
use wahook::domain::send_request::SendRequest;
use wahook::domain::time::UnixTime;
use wahook_tests::local_stack::{alive, bin_dir, pids, root, tempdir, text, StopLeftovers};

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

struct Block {
    lang: String,
    body: String,
    /// The README line of the opening fence, for failure messages.
    line: usize,
}

/// Fenced blocks, also those indented inside list items.
fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize, usize, Vec<String>)> = None;
    for (n, line) in md.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let fence = line.trim_start();
        match open.as_mut() {
            None if fence.starts_with("```") => {
                open = Some((fence[3..].trim().to_owned(), indent, n + 1, Vec::new()))
            }
            Some(_) if fence == "```" => {
                let (lang, _, line, body) = open.take().unwrap();
                out.push(Block {
                    lang,
                    body: body.join("\n"),
                    line,
                });
            }
            Some((_, indent, _, body)) => {
                body.push(line.get(*indent..).unwrap_or(line.trim_start()).to_owned())
            }
            None => {}
        }
    }
    assert!(open.is_none(), "README.md has an unclosed code fence");
    out
}

/// Every command of the README, in README order: each line of a `sh` block, and each inline code
/// span that starts with one of our scripts or an AWS tool.
fn commands(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    for line in md.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("```") {
            fence = match fence {
                None => Some(rest.trim().to_owned()),
                Some(_) => None,
            };
            continue;
        }
        match fence.as_deref() {
            Some("sh") => {
                let l = trimmed.split(" #").next().unwrap().trim();
                if !l.is_empty() && !l.starts_with('#') {
                    out.push(l.to_owned());
                }
            }
            Some(_) => {}
            None => {
                // Paths (`scripts/node/`) and names (`aws secretsmanager`) are not commands.
                for span in line.split('`').skip(1).step_by(2) {
                    let words: Vec<&str> = span.split_whitespace().collect();
                    let command = match words.first() {
                        Some(w) if w.starts_with("scripts/") => w.ends_with(".sh"),
                        Some(&"aws") => words.len() >= 3,
                        Some(w) => ["sam", "rustup", "curl"].contains(w),
                        None => false,
                    };
                    if command {
                        out.push(span.to_owned());
                    }
                }
            }
        }
    }
    out
}

#[derive(Debug, PartialEq)]
enum Check {
    /// The local-stack session in this file.
    LocalSession,
    /// The producer snippets test in this file.
    Producer,
    /// The deploy test in this file.
    Deploy,
    /// `scripts/test.sh` itself: what `.ci/run` runs.
    Ci,
    /// Run by the named test of `tests/local_stack.rs`.
    LocalStackTest(&'static str),
    /// Not runnable here; what it names is checked by the deploy or benchmark test.
    NamesChecked,
}

fn check_for(cmd: &str) -> Option<Check> {
    let first_word = cmd.split_whitespace().next().unwrap_or("");
    Some(match first_word {
        "scripts/test.sh" => Check::Ci,
        "scripts/dev.sh" if cmd == "scripts/dev.sh" => {
            Check::LocalStackTest("the_plain_command_plays_the_demo_and_ctrl_c_stops_everything")
        }
        "scripts/dev.sh" | "curl" => Check::LocalSession,
        "set" if cmd == "set -a; . .wahook/dev.env; set +a" => Check::LocalSession,
        "aws" if cmd.starts_with("aws sqs send-message ") => Check::Producer,
        "aws" if cmd.starts_with("aws secretsmanager ") => Check::Deploy,
        "scripts/build-lambdas.sh" => Check::Deploy,
        "rustup" | "sam" | "scripts/bench.sh" => Check::NamesChecked,
        _ => return None,
    })
}

#[test]
fn every_command_in_the_readme_is_checked() {
    let md = readme();
    let unknown: Vec<String> = commands(&md)
        .into_iter()
        .filter(|c| check_for(c).is_none())
        .collect();
    assert!(
        unknown.is_empty(),
        "README commands that no test runs or checks (add a check to tests/readme.rs): {unknown:#?}"
    );
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "exec bash scripts/test.sh"),
        ".ci/run must run the README's test command"
    );
    let local_stack = std::fs::read_to_string(root().join("tests/local_stack.rs")).unwrap();
    for c in commands(&md) {
        if let Some(Check::LocalStackTest(name)) = check_for(&c) {
            assert!(
                local_stack.contains(&format!("async fn {name}()")),
                "{c:?} is said to be run by tests/local_stack.rs::{name}, which does not exist"
            );
        }
    }
    for b in blocks(&md) {
        assert!(
            ["sh", "json", "python", "js", "rust", "text", "yaml", ""].contains(&b.lang.as_str()),
            "README.md:{}: a ```{} block that no test checks",
            b.line,
            b.lang
        );
    }
    for lang in ["python", "js", "rust"] {
        assert_eq!(
            blocks(&md).iter().filter(|b| b.lang == lang).count(),
            1,
            "one ```{lang} producer example is run by the producer test; more need more checks"
        );
    }
}

/// The consumer rules (the one ```yaml block): rules on the bus, for events the stack publishes.
#[test]
fn the_consumer_rules_match_what_the_publisher_publishes() {
    let md = readme();
    let yaml: Vec<Block> = blocks(&md)
        .into_iter()
        .filter(|b| b.lang == "yaml")
        .collect();
    assert_eq!(
        yaml.len(),
        1,
        "one ```yaml block (the Events section's rules)"
    );
    let rules: serde_norway::Value = serde_norway::from_str(&yaml[0].body)
        .unwrap_or_else(|e| panic!("README.md:{}: not YAML: {e}", yaml[0].line));
    let rules = rules.as_mapping().expect("rules by logical name");
    assert_eq!(
        rules.len(),
        2,
        "one rule for an SQS queue, one for a Lambda"
    );
    for (name, rule) in rules {
        assert_eq!(rule["Type"].as_str(), Some("AWS::Events::Rule"), "{name:?}");
        let p = &rule["Properties"];
        assert_eq!(
            p["EventBusName"].as_str(),
            Some("wahook-events"),
            "{name:?}"
        );
        let pattern = &p["EventPattern"];
        assert_eq!(
            pattern["source"][0].as_str(),
            Some(wahook::publish::EVENT_SOURCE),
            "{name:?}"
        );
        for t in pattern["detail-type"]
            .as_sequence()
            .expect("detail-type list")
        {
            let t = t.as_str().unwrap();
            assert!(
                wahook::publish::EVENT_TYPES.contains(&t),
                "{name:?}: {t} is not an event the publisher publishes"
            );
        }
        assert!(
            matches!(
                p["Targets"][0]["Arn"],
                serde_norway::Value::String(_) | serde_norway::Value::Tagged(_)
            ),
            "{name:?} has a target"
        );
    }
    // The bot's rule filters on a detail field the schema has.
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/events/message.received.v1.json")).unwrap(),
    )
    .unwrap();
    assert!(schema["properties"]["type"].is_object());
}

#[test]
fn the_json_examples_are_requests_the_sender_accepts() {
    let md = readme();
    let examples: Vec<Block> = blocks(&md)
        .into_iter()
        .filter(|b| b.lang == "json")
        .collect();
    assert!(examples.len() >= 2, "the producer guide shows its examples");
    for b in &examples {
        let kind = serde_json::from_str::<Value>(&b.body)
            .ok()
            .and_then(|v| v["kind"].as_str().map(str::to_owned));
        let refused = match kind.as_deref() {
            Some("consent") => ConsentRequest::parse(&b.body, UnixTime::now())
                .err()
                .map(|e| e.to_string()),
            _ => SendRequest::parse(&b.body).err().map(|e| e.to_string()),
        };
        if let Some(e) = refused {
            panic!(
                "README.md:{}: the sender refuses this example: {}",
                b.line, e
            );
        }
    }
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("events/send-request.json")).unwrap(),
    )
    .unwrap();
    let first: Value = serde_json::from_str(&examples[0].body).unwrap();
    assert_eq!(
        first, file,
        "the README's first example and events/send-request.json must stay the same request"
    );
}

/// `bash -c CMD` from the repository's root, with `env` on top of a clean AWS environment.
fn shell(cmd: &str, env: &BTreeMap<&str, String>) -> Output {
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!("set -euo pipefail\n{cmd}"))
        .current_dir(root())
        .stdin(Stdio::null());
    for k in [
        "AWS_ENDPOINT_URL",
        "WAHOOK_SENDS_QUEUE_URL",
        "WAHOOK_META_SIM_URL",
        "WAHOOK_DEV_DIR",
    ] {
        c.env_remove(k);
    }
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    c.output().expect("run bash")
}

#[test]
fn the_local_stack_commands_work_as_written() {
    let md = readme();
    let state = tempdir("readme");
    let _cleanup = StopLeftovers(state.clone());
    let state_s = state.to_str().unwrap().to_owned();
    let env = BTreeMap::from([
        ("WAHOOK_DEV_DIR", state_s.clone()),
        ("WAHOOK_DEV_BIN_DIR", bin_dir()),
    ]);
    // Each line runs in a fresh shell that has what `set -a; . .wahook/dev.env` gives a user's
    // shell, once the stack is up.
    let prelude = format!("set -a; [ -f '{state_s}/dev.env' ] && . '{state_s}/dev.env'; set +a\n");
    let session: Vec<String> = commands(&md)
        .into_iter()
        .filter(|c| check_for(c) == Some(Check::LocalSession))
        .collect();
    assert!(
        session.first().map(String::as_str) == Some("scripts/dev.sh --detach")
            && session.iter().any(|c| c == "scripts/dev.sh down"),
        "the README's local session starts with --detach and ends with down: {session:#?}"
    );
    let mut started = Vec::new();
    for cmd in &session {
        let line = cmd.replace(".wahook/", &format!("{state_s}/"));
        let run = |line: &str| shell(&format!("{prelude}{line}"), &env);
        let mut out = run(&line);
        assert!(out.status.success(), "`{cmd}` failed:\n{}", text(&out));
        if cmd == "scripts/dev.sh --detach" {
            started = pids(&state);
            assert_eq!(started.len(), 3, "{started:?}");
        }
        // A user reads `status` after the send has had time to go out; so does the test.
        if cmd.starts_with("scripts/dev.sh status ") {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !text(&out).contains(": sent") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(300));
                out = run(&line);
            }
            assert!(text(&out).contains(": sent"), "`{cmd}`: {}", text(&out));
            for want in [
                "template  order_shipped (es_MX), category utility",
                "via /messages",
            ] {
                assert!(
                    text(&out).contains(want),
                    "`{cmd}` lacks {want:?}: {}",
                    text(&out)
                );
            }
        }
        if cmd.starts_with("scripts/dev.sh timeline ") {
            let wants = [
                "<- text \"Hola\"",
                "marketing   opted out",
                "order_shipped",
                // `inbound --image` ran before; a user looks again if the file is not in S3 yet.
                "<- [image]  [media stored: s3://wahook-local-media/inbound/",
                // and `send --image`: the file went from the local bucket to the simulator.
                "-> image (service)",
            ];
            let deadline = Instant::now() + Duration::from_secs(30);
            while !wants.iter().all(|w| text(&out).contains(w)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(300));
                out = run(&line);
            }
            let shown = text(&out);
            for want in wants {
                assert!(shown.contains(want), "`{cmd}` lacks {want:?}:\n{shown}");
            }
        }
        if cmd == "scripts/dev.sh templates sync" {
            assert!(
                text(&out).contains("synced 1 templates in 1 pages"),
                "`{cmd}`: {}",
                text(&out)
            );
        }
        if cmd == "scripts/dev.sh templates" {
            let shown = text(&out);
            for want in [
                "#ticket_update#es_MX",
                "status    PAUSED",
                "category  utility",
            ] {
                assert!(shown.contains(want), "`{cmd}` lacks {want:?}:\n{shown}");
            }
        }
        if cmd == "scripts/dev.sh events" {
            // Everything the session did before, as events. Each is shown once, so a second look
            // (for what the publisher had not yet read) adds to the first.
            let wants = [
                "message.received",
                "conversation.human_requested",
                "\"matched\":\"agente\"",
                "message.status_changed",
                "send.outcome",
                "consent.changed",
                "template.changed",
            ];
            let mut shown = text(&out);
            let deadline = Instant::now() + Duration::from_secs(30);
            while !wants.iter().all(|w| shown.contains(w)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
                shown.push_str(&text(&run(&line)));
            }
            for want in wants {
                assert!(shown.contains(want), "`{cmd}` lacks {want:?}:\n{shown}");
            }
        }
        if cmd == "scripts/dev.sh report" {
            // The session's utility template went out and was read: today's figures count it.
            let wants = ["order_shipped", "es_MX", "utility", "est. cost"];
            let deadline = Instant::now() + Duration::from_secs(30);
            while !wants.iter().all(|w| text(&out).contains(w)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
                out = run(&line);
            }
            for want in wants {
                assert!(
                    text(&out).contains(want),
                    "`{cmd}` lacks {want:?}:\n{}",
                    text(&out)
                );
            }
        }
        if cmd.starts_with("curl ") {
            let accepted: Vec<Value> = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("`{cmd}` is not the JSON list of sends: {e}"));
            assert!(
                accepted.len() >= 3,
                "the template, the reply and the file's request reached the simulator: {accepted:#?}"
            );
        }
    }
    assert!(!started.is_empty());
    let left: Vec<&String> = started.iter().filter(|p| alive(p)).collect();
    assert!(left.is_empty(), "`scripts/dev.sh down` left {left:?}");
    assert!(!state.join("dev.env").exists(), "dev.env is gone once down");
}

/// The test run's moto (exported by scripts/test.sh).
fn moto_env() -> BTreeMap<&'static str, String> {
    let endpoint = wahook_tests::endpoint();
    BTreeMap::from([
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
    ])
}

fn venv_tool(path: &str) -> String {
    let p = root().join(".venv").join(path);
    assert!(
        p.exists(),
        "{} is missing: scripts/test.sh installs it",
        p.display()
    );
    p.to_str().unwrap().to_owned()
}

fn the_block(md: &str, lang: &str) -> String {
    blocks(md)
        .into_iter()
        .find(|b| b.lang == lang)
        .unwrap_or_else(|| panic!("no ```{lang} block"))
        .body
}

/// The README's Rust example, compiled from the README by tests/build.rs.
async fn readme_rust_example(
    queue_url: &str,
    request: &Value,
) -> Result<(), Box<dyn std::error::Error>> {
    include!(concat!(env!("OUT_DIR"), "/readme_rust_example.rs"));
    Ok(())
}

#[tokio::test]
async fn the_producer_snippets_put_requests_the_sender_accepts_on_the_queue() {
    let md = readme();
    let sqs = aws_sdk_sqs::Client::new(&wahook_tests::sdk_config().await);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("readme-{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("events/send-request.json")).unwrap(),
    )
    .unwrap();
    let request_for = |key: &str| {
        let mut r = file.clone();
        r["idempotency_key"] = Value::from(key);
        r
    };
    let mut expected = BTreeMap::from([("order-1234-shipped".to_owned(), file.clone())]);
    let mut env = moto_env();
    env.insert("WAHOOK_SENDS_QUEUE_URL", queue_url.clone());
    let run_dir = tempdir("readme-producers");
    let _cleanup = StopLeftovers(run_dir.clone());

    // The aws CLI, with the --endpoint-url the README says v1 needs locally.
    let cli: Vec<String> = commands(&md)
        .into_iter()
        .filter(|c| check_for(c) == Some(Check::Producer))
        .collect();
    assert_eq!(cli.len(), 1, "{cli:?}");
    let aws = venv_tool("awscli/bin/aws");
    let line = cli[0].replacen(
        "aws ",
        &format!("'{aws}' --endpoint-url \"$AWS_ENDPOINT_URL\" "),
        1,
    );
    let out = shell(&line, &env);
    assert!(out.status.success(), "`{}`: {}", cli[0], text(&out));

    // boto3, from the moto venv (boto3 comes with moto).
    let request = request_for("readme-python");
    expected.insert("readme-python".into(), request.clone());
    let script = run_dir.join("producer.py");
    std::fs::write(
        &script,
        format!(
            "import json, os\nqueue_url = os.environ['WAHOOK_SENDS_QUEUE_URL']\nrequest = json.loads({:?})\n{}\n",
            request.to_string(),
            the_block(&md, "python")
        ),
    )
    .unwrap();
    let out = shell(
        &format!("'{}' '{}'", venv_tool("moto/bin/python"), script.display()),
        &env,
    );
    assert!(out.status.success(), "the Python example: {}", text(&out));

    // Node, with the pinned SDK scripts/test.sh installed (skipped only where there is no Node).
    if std::env::var("WAHOOK_README_NODE").as_deref() == Ok("skip") {
        eprintln!("Node.js is not installed: the README's Node example is not run");
    } else {
        let request = request_for("readme-node");
        expected.insert("readme-node".into(), request.clone());
        let dir = venv_tool("node");
        let script = Path::new(&dir).join("readme-example.mjs");
        std::fs::write(
            &script,
            format!(
                "const queueUrl = process.env.WAHOOK_SENDS_QUEUE_URL;\nconst request = {request};\n{}\n",
                the_block(&md, "js")
            ),
        )
        .unwrap();
        let out = shell(&format!("cd '{dir}' && node readme-example.mjs"), &env);
        assert!(out.status.success(), "the Node example: {}", text(&out));
    }

    // Rust, compiled from the README.
    let request = request_for("readme-rust");
    expected.insert("readme-rust".into(), request.clone());
    readme_rust_example(&queue_url, &request)
        .await
        .expect("the Rust example");

    // What arrived is exactly what was meant, and the sender accepts it.
    let mut arrived = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while arrived.len() < expected.len() && Instant::now() < deadline {
        let got = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in got.messages() {
            let body = m.body().unwrap();
            let parsed = SendRequest::parse(body)
                .unwrap_or_else(|e| panic!("the sender refuses {body}: {e}"));
            let v: Value = serde_json::from_str(body).unwrap();
            arrived.insert(parsed.idempotency_key.as_str().to_owned(), v);
        }
    }
    assert_eq!(arrived, expected);
}

#[test]
fn the_deploy_commands_run_or_name_what_exists() {
    let md = readme();
    let cmds = commands(&md);
    let mut env = moto_env();
    env.insert(
        "PATH",
        format!(
            "{}:{}",
            Path::new(&venv_tool("awscli/bin/aws"))
                .parent()
                .unwrap()
                .display(),
            std::env::var("PATH").unwrap()
        ),
    );
    let template = std::fs::read_to_string(root().join("infra/template.yaml")).unwrap();
    let template: serde_norway::Value = serde_norway::from_str(&template).unwrap();
    let build_script = std::fs::read_to_string(root().join("scripts/build-lambdas.sh")).unwrap();
    let aarch64 = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("aarch64-unknown-linux-gnu"))
        .unwrap_or(false);

    let mut secrets_created = 0;
    for cmd in &cmds {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        match check_for(cmd) {
            Some(Check::Deploy) if words[0] == "aws" => {
                // Each run of scripts/test.sh has a fresh moto, so the fixed names are free.
                let out = shell(cmd, &env);
                assert!(out.status.success(), "`{cmd}`: {}", text(&out));
                if words[2] == "create-secret" {
                    secrets_created += 1;
                }
            }
            Some(Check::Deploy) => {
                assert_eq!(cmd, "scripts/build-lambdas.sh");
                if aarch64 {
                    eprintln!(
                        "the arm64 target is installed: not running a minutes-long release build"
                    );
                } else {
                    let out = shell(cmd, &BTreeMap::new());
                    assert!(
                        !out.status.success()
                            && text(&out)
                                .contains("run 'rustup target add aarch64-unknown-linux-gnu'"),
                        "without the arm64 target, build-lambdas.sh says how to add it: {}",
                        text(&out)
                    );
                }
            }
            Some(Check::NamesChecked) if words[0] == "rustup" => {
                assert!(
                    build_script.contains(cmd.as_str()),
                    "scripts/build-lambdas.sh names `{cmd}`"
                );
            }
            Some(Check::NamesChecked) if words[0] == "sam" => {
                for flag in ["--template-file", "--config-file"] {
                    if let Some(i) = words.iter().position(|w| *w == flag) {
                        assert!(
                            root().join(words[i + 1]).is_file(),
                            "`{cmd}`: {} does not exist",
                            words[i + 1]
                        );
                    }
                }
                if let Some(i) = words.iter().position(|w| *w == "--stack-name") {
                    let samconfig =
                        std::fs::read_to_string(root().join("infra/samconfig.toml")).unwrap();
                    assert!(
                        samconfig.contains(&format!("stack_name = \"{}\"", words[i + 1])),
                        "`{cmd}`: infra/samconfig.toml deploys another stack name"
                    );
                }
            }
            Some(Check::NamesChecked) => {
                let bench = std::fs::read_to_string(root().join("scripts/bench.sh")).unwrap();
                for mode in words.iter().skip(1) {
                    assert!(
                        bench.contains(&format!("= {mode} ]")),
                        "`{cmd}`: scripts/bench.sh has no mode {mode}"
                    );
                }
            }
            _ => {}
        }
    }
    assert_eq!(secrets_created, 3, "the three secrets");

    // Every stack parameter and output the deploy section names exists in the template.
    let section = &md[md.find("## Deploy to AWS").unwrap()..];
    let section = &section[..section[3..].find("\n## ").unwrap()];
    // CamelCase words in code spans: `AppSecretArn`, `SenderMaximumConcurrency × (…)`.
    let names: Vec<&str> = section
        .split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|span| span.split(|c: char| c.is_whitespace() || "()=".contains(c)))
        .filter(|w| {
            w.chars().all(|c| c.is_ascii_alphanumeric())
                && w.starts_with(|c: char| c.is_ascii_uppercase())
                && w.chars().skip(1).any(|c| c.is_ascii_uppercase())
                && w.chars().any(|c| c.is_ascii_lowercase())
        })
        .collect();
    assert!(names.len() >= 5, "{names:?}");
    for name in names {
        assert!(
            template["Parameters"].get(name).is_some() || template["Outputs"].get(name).is_some(),
            "the README's deploy section names `{name}`, which is neither a parameter nor an output of infra/template.yaml"
        );
    }
}
