//! Cold-start harness: what a Lambda cold start costs our function binaries, measured the way Lambda
//! sees it, with no AWS account.
//!
//! For each run it execs the command under a fresh environment pointed at a Runtime API on loopback,
//! and times:
//! - **init**: exec → the first `GET /runtime/invocation/next` (everything `main` does before it is
//!   ready: config, secrets from env, SDK clients), with the resident memory at that moment;
//! - **first invocation**: the event handed over → its response posted;
//! - **peak RSS** (`VmHWM`) once the response is in, i.e. after the first event was handled.
//!
//! ```text
//! coldstart [--runs N] [--event FILE] [--env K=V]... [--env-file FILE] [--label NAME]
//!           [--expect-status CODE] [--json FILE] [--timeout SECONDS] -- COMMAND [ARGS...]
//! ```
//! Figures are min / median / max over the runs. Compare them with another command measured in the
//! same run (scripts/bench.sh compare does), not across machines.

mod runtime_api;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use runtime_api::{Incoming, RuntimeApi};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";

struct Options {
    runs: usize,
    event: Vec<u8>,
    env: BTreeMap<String, String>,
    label: String,
    expect_status: Option<u16>,
    json: Option<PathBuf>,
    timeout: Duration,
    command: Vec<String>,
}

/// One cold start.
#[derive(Debug, Clone, Copy)]
struct Run {
    init: Duration,
    rss_ready_kb: u64,
    invoke: Duration,
    peak_rss_kb: u64,
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1).collect()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("coldstart: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let api = match RuntimeApi::start() {
        Ok(api) => api,
        Err(e) => {
            eprintln!("coldstart: cannot listen on 127.0.0.1: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut runs = Vec::with_capacity(options.runs);
    for n in 1..=options.runs {
        match one_run(&options, &api, n) {
            Ok(run) => runs.push(run),
            Err(e) => {
                eprintln!("coldstart: {} run {n}: {e}", options.label);
                return ExitCode::FAILURE;
            }
        }
    }
    print_summary(&options.label, &runs);
    if let Some(path) = &options.json {
        if let Err(e) = fs::write(path, to_json(&options.label, &runs)) {
            eprintln!("coldstart: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

const USAGE: &str = "usage: coldstart [--runs N] [--event FILE] [--env K=V]... [--env-file FILE] [--label NAME] [--expect-status CODE] [--json FILE] [--timeout SECONDS] -- COMMAND [ARGS...]";

fn parse_args(args: Vec<String>) -> Result<Options, String> {
    let mut o = Options {
        runs: 10,
        event: b"{}".to_vec(),
        env: BTreeMap::new(),
        label: String::new(),
        expect_status: None,
        json: None,
        timeout: Duration::from_secs(20),
        command: Vec::new(),
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            o.command = it.by_ref().collect();
            break;
        }
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => {
                o.runs = value()?
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or("--runs takes a positive number")?
            }
            "--event" => {
                let path = value()?;
                o.event = fs::read(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
            }
            "--env" => {
                let pair = value()?;
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--env takes KEY=VALUE, got {pair:?}"))?;
                o.env.insert(k.into(), v.into());
            }
            "--env-file" => {
                let path = value()?;
                let text =
                    fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
                for line in text.lines().map(str::trim) {
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let (k, v) = line
                        .split_once('=')
                        .ok_or_else(|| format!("{path}: expected KEY=VALUE, got {line:?}"))?;
                    o.env.insert(k.into(), v.into());
                }
            }
            "--label" => o.label = value()?,
            "--expect-status" => {
                o.expect_status = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--expect-status takes an HTTP status code")?,
                )
            }
            "--json" => o.json = Some(value()?.into()),
            "--timeout" => {
                o.timeout = Duration::from_secs(
                    value()?
                        .parse()
                        .map_err(|_| "--timeout takes whole seconds")?,
                )
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if o.command.is_empty() {
        return Err("no command: put it after --".into());
    }
    if o.label.is_empty() {
        o.label = o.command[0].rsplit('/').next().unwrap_or("").to_owned();
    }
    Ok(o)
}

fn one_run(o: &Options, api: &RuntimeApi, n: usize) -> Result<Run, String> {
    // Whatever a previous process left (a request it made while being killed) is not this run's.
    while api.requests.try_recv().is_ok() {}
    let log_path = std::env::temp_dir().join(format!(
        "coldstart-{}-{}-{n}.log",
        std::process::id(),
        o.label.replace('/', "_")
    ));
    let log = File::create(&log_path).map_err(|e| format!("cannot create a log file: {e}"))?;
    let err_log = log.try_clone().map_err(|e| e.to_string())?;

    let mut cmd = Command::new(&o.command[0]);
    cmd.args(&o.command[1..])
        .env_clear()
        .envs(lambda_env(api))
        .envs(&o.env)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot exec {:?}: {e}", o.command[0]))?;
    let mut guard = KillOnDrop(&mut child);
    let result = drive(o, api, &mut guard, started);
    drop(guard);
    match result {
        Ok(run) => {
            let _ = fs::remove_file(&log_path);
            Ok(run)
        }
        Err(e) => {
            let tail = fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(format!(
                "{e}\n--- the process's last output ({}) ---\n{}",
                log_path.display(),
                tail.join("\n")
            ))
        }
    }
}

/// What Lambda sets for every runtime; `lambda_runtime` refuses to start without the first three.
fn lambda_env(api: &RuntimeApi) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_FUNCTION_NAME", "coldstart"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/coldstart"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "coldstart"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([("AWS_LAMBDA_RUNTIME_API".into(), api.addr.to_string())])
    .collect()
}

struct KillOnDrop<'a>(&'a mut Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn drive(
    o: &Options,
    api: &RuntimeApi,
    child: &mut KillOnDrop,
    started: Instant,
) -> Result<Run, String> {
    let pid = child.0.id();
    let first = wait_for(api, child, started, o.timeout, "GET invocation/next")?;
    let init = started.elapsed();
    if first.method == "POST" && first.path.ends_with("/init/error") {
        return Err(format!(
            "the function reported an init error: {}",
            String::from_utf8_lossy(&first.body)
        ));
    }
    if first.method != "GET" || first.path != NEXT {
        return Err(format!(
            "expected GET {NEXT}, got {} {}",
            first.method, first.path
        ));
    }
    let rss_ready_kb = proc_status_kb(pid, "VmRSS:").unwrap_or(0);

    let request_id = format!("coldstart-{pid}");
    let deadline_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() + 30_000)
        .unwrap_or(0);
    let handed = Instant::now();
    first.respond(
        200,
        &[
            ("content-type", "application/json".into()),
            ("lambda-runtime-aws-request-id", request_id.clone()),
            ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:coldstart".into(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
            ),
        ],
        &o.event,
    );
    let answer = wait_for(api, child, started, o.timeout, "the invocation's response")?;
    let invoke = handed.elapsed();
    let expected = format!("/2018-06-01/runtime/invocation/{request_id}/response");
    let is_response = answer.method == "POST" && answer.path == expected;
    let body = String::from_utf8_lossy(&answer.body).into_owned();
    answer.respond(202, &[], br#"{"status":"OK"}"#);
    if !is_response {
        return Err(format!("the invocation failed or was not answered: {body}"));
    }
    if let Some(want) = o.expect_status {
        let got = status_code_of(&body);
        if got != Some(want) {
            return Err(format!(
                "expected statusCode {want} in the response, got {got:?}: {body}"
            ));
        }
    }
    // The process asks for its next event once it is done with this one: its peak memory is final.
    let _ = wait_for(
        api,
        child,
        started,
        o.timeout,
        "the next GET invocation/next",
    )?;
    let peak_rss_kb = proc_status_kb(pid, "VmHWM:").unwrap_or(0);
    Ok(Run {
        init,
        rss_ready_kb,
        invoke,
        peak_rss_kb,
    })
}

/// The next request, or why none came: the process exited or the timeout passed.
fn wait_for(
    api: &RuntimeApi,
    child: &mut KillOnDrop,
    started: Instant,
    timeout: Duration,
    what: &str,
) -> Result<Incoming, String> {
    loop {
        match api.requests.recv_timeout(Duration::from_millis(20)) {
            Ok(request) => return Ok(request),
            Err(RecvTimeoutError::Disconnected) => return Err("the listener stopped".into()),
            Err(RecvTimeoutError::Timeout) => {}
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            return Err(format!("the process exited ({status}) before {what}"));
        }
        if started.elapsed() > timeout {
            return Err(format!(
                "no {what} within {} s (--timeout)",
                timeout.as_secs()
            ));
        }
    }
}

/// A `Vm…:` line of /proc/PID/status, in kB (Linux).
fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `"statusCode": N` in an API Gateway response, without a JSON parser.
fn status_code_of(body: &str) -> Option<u16> {
    let at = body.find("\"statusCode\"")? + "\"statusCode\"".len();
    let rest = body[at..].trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

struct Spread {
    min: f64,
    median: f64,
    max: f64,
}

fn spread(mut values: Vec<f64>) -> Spread {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    let median = if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    };
    Spread {
        min: values[0],
        median,
        max: values[values.len() - 1],
    }
}

type Metric = (&'static str, &'static str, fn(&Run) -> f64);

const METRICS: [Metric; 4] = [
    ("init_ms", "init (exec → first next)", |r| {
        r.init.as_secs_f64() * 1e3
    }),
    ("invoke_ms", "first invocation", |r| {
        r.invoke.as_secs_f64() * 1e3
    }),
    ("rss_ready_mb", "RSS at ready", |r| {
        r.rss_ready_kb as f64 / 1024.0
    }),
    ("peak_rss_mb", "peak RSS after the first event", |r| {
        r.peak_rss_kb as f64 / 1024.0
    }),
];

fn print_summary(label: &str, runs: &[Run]) {
    println!("{label}: {} cold starts", runs.len());
    println!("  {:<32} {:>9} {:>9} {:>9}", "", "min", "median", "max");
    for (_, title, f) in METRICS {
        let s = spread(runs.iter().map(f).collect());
        let unit = if title.contains("RSS") { "MB" } else { "ms" };
        println!(
            "  {:<32} {:>9.2} {:>9.2} {:>9.2}  {unit}",
            title, s.min, s.median, s.max
        );
    }
}

fn to_json(label: &str, runs: &[Run]) -> String {
    let mut out = format!("{{\"label\":{:?},\"runs\":{}", label, runs.len());
    for (key, _, f) in METRICS {
        let values: Vec<f64> = runs.iter().map(f).collect();
        let s = spread(values.clone());
        let list: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
        out.push_str(&format!(
            ",\"{key}\":{{\"min\":{:.3},\"median\":{:.3},\"max\":{:.3},\"all\":[{}]}}",
            s.min,
            s.median,
            s.max,
            list.join(",")
        ));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_code_is_read_from_an_api_gateway_response() {
        assert_eq!(
            status_code_of(r#"{"statusCode": 200,"body":"ok"}"#),
            Some(200)
        );
        assert_eq!(status_code_of(r#"{"statusCode":403}"#), Some(403));
        assert_eq!(status_code_of(r#"{"body":"no code"}"#), None);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let s = spread(vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 2.5, 4.0));
        assert_eq!(spread(vec![5.0]).median, 5.0);
    }

    #[test]
    fn arguments_after_the_separator_are_the_command() {
        let o = parse_args(
            ["--runs", "3", "--env", "A=b=c", "--", "/bin/fn", "--flag"]
                .map(String::from)
                .to_vec(),
        )
        .unwrap();
        assert_eq!(o.runs, 3);
        assert_eq!(o.env["A"], "b=c");
        assert_eq!(o.command, ["/bin/fn", "--flag"]);
        assert_eq!(o.label, "fn");
        assert!(parse_args(vec!["--runs".into(), "0".into()]).is_err());
        assert!(
            parse_args(vec!["--runs".into(), "2".into()]).is_err(),
            "no command"
        );
    }
}
