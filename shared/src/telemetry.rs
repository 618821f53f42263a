//! Structured JSON logs and CloudWatch metrics.
//!
//! Logs never carry message text, secrets or whole phone numbers (DESIGN rule 16): fields are counts,
//! ids, masked identities and error descriptions. Metrics are CloudWatch Embedded Metric Format lines on
//! stdout, which Lambda ships to CloudWatch Logs and CloudWatch turns into metrics with no API call.

use std::io::Write;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// CloudWatch namespace of every metric we emit.
pub const METRIC_NAMESPACE: &str = "wahook";

/// A start-up step's result, its error logged as one `startup_failed` line in plain words (CloudWatch
/// shows it beside the init failure; the `Debug` form `main` would print is for programmers). Every
/// function's `main` passes each step through here: configuration, secrets, clients.
pub fn startup<T, E: std::fmt::Display>(step: &str, result: Result<T, E>) -> Result<T, E> {
    if let Err(e) = &result {
        tracing::error!(event = "startup_failed", step, error = %e, "{step} failed: {e}");
    }
    result
}

/// An error and its causes, each by its `Display`, joined with `: `, at most 2000 bytes: what a log
/// line or a stored reason may say of an error. Never the SDK's `DisplayErrorContext`: it appends the
/// error's `Debug` form, which for an answer the SDK could not parse holds the raw HTTP response (a
/// secret's value from Secrets Manager or SSM, an item's contents from DynamoDB).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    const MAX: usize = 2000;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Wrappers often repeat their cause's words; say each thing once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if text.len() > MAX {
        let cut = (0..=MAX)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// JSON logs to stdout. Level from `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's logging config), then
/// `RUST_LOG`, default `info`.
///
/// The filter is `Targets` (`info`, `wahook=debug,hyper=warn`…), not `EnvFilter`: the span and field
/// directives only `EnvFilter` knows need the `regex` crate in every binary (about 1 MB of each Lambda
/// package), and nothing here uses them. A `RUST_LOG` that `Targets` cannot read falls back to `info`.
pub fn init_logging() {
    let filter = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .and_then(|l| lambda_log_level(&l))
        .map(|level| Targets::new().with_default(level))
        .or_else(|| std::env::var("RUST_LOG").ok().and_then(|l| targets(&l)))
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_filter(pin_noisy_crates(filter));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// `RUST_LOG` as `target=level` directives. Empty pieces are dropped (`Targets` would read `info,` as
/// "errors only"); an empty or unreadable value is `None`, and the default applies.
fn targets(directives: &str) -> Option<Targets> {
    let kept: Vec<&str> = directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if kept.is_empty() {
        return None;
    }
    kept.join(",").parse().ok()
}

/// Lambda's log levels (`TRACE` … `ERROR`, and `FATAL`, which `tracing` has not: read as `ERROR`).
fn lambda_log_level(level: &str) -> Option<tracing::Level> {
    Some(match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => tracing::Level::TRACE,
        "DEBUG" => tracing::Level::DEBUG,
        "INFO" => tracing::Level::INFO,
        "WARN" => tracing::Level::WARN,
        "ERROR" | "FATAL" => tracing::Level::ERROR,
        _ => return None,
    })
}

/// Crates whose debug and trace output carries whole events, request bodies or headers (at trace
/// `lambda_runtime` logs every event: message text, phone numbers): pinned at info whatever
/// `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL` say. Our own `debug` never logs content.
pub const PINNED_AT_INFO: &[&str] = &[
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_config",
    "aws_runtime",
    "aws_sigv4",
    "aws_sdk_dynamodb",
    "aws_sdk_sqs",
    "aws_sdk_secretsmanager",
    "aws_sdk_ssm",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tower",
    "tower_http",
];

/// `filter` with every crate of [`PINNED_AT_INFO`] at info (a directive for the same target replaces
/// the one it had).
pub fn pin_noisy_crates(filter: Targets) -> Targets {
    filter.with_targets(
        PINNED_AT_INFO
            .iter()
            .map(|target| (*target, tracing::Level::INFO)),
    )
}

/// Emits EMF metric lines for one function.
#[derive(Debug, Clone)]
pub struct Metrics {
    service: &'static str,
    enabled: bool,
}

impl Metrics {
    /// On in Lambda (and under `cargo lambda watch`); off in tests so their output stays readable.
    /// `WAHOOK_METRICS=on|off` overrides.
    pub fn for_service(service: &'static str) -> Self {
        let enabled = match std::env::var("WAHOOK_METRICS").as_deref() {
            Ok("on") => true,
            Ok("off") => false,
            _ => std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some(),
        };
        Self { service, enabled }
    }

    pub fn disabled(service: &'static str) -> Self {
        Self {
            service,
            enabled: false,
        }
    }

    /// One EMF line with these counts (zeros are skipped; nothing is printed if all are zero).
    pub fn emit(&self, counts: &[(&str, u64)]) {
        self.emit_with(&[], counts);
    }

    /// Like [`Metrics::emit`], with extra dimensions (e.g. `Outcome`, `Category`) besides `Service`.
    pub fn emit_with(&self, dimensions: &[(&str, &str)], counts: &[(&str, u64)]) {
        if !self.enabled {
            return;
        }
        if let Some(line) = emf_line(self.service, dimensions, counts, now_millis()) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        }
    }
}

fn now_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn emf_line(
    service: &str,
    dimensions: &[(&str, &str)],
    counts: &[(&str, u64)],
    timestamp_ms: u128,
) -> Option<String> {
    let nonzero: Vec<&(&str, u64)> = counts.iter().filter(|(_, v)| *v > 0).collect();
    if nonzero.is_empty() {
        return None;
    }
    let mut root = serde_json::Map::new();
    let definitions: Vec<serde_json::Value> = nonzero
        .iter()
        .map(|(name, _)| serde_json::json!({ "Name": name, "Unit": "Count" }))
        .collect();
    let mut dimension_names = vec!["Service"];
    dimension_names.extend(dimensions.iter().map(|(name, _)| *name));
    // Every prefix is its own metric too (`[Service]`, `[Service, Outcome]`, …): CloudWatch keeps one
    // metric per dimension set, so an alarm on `Outcome` alone needs that set declared.
    let dimension_sets: Vec<&[&str]> = (1..=dimension_names.len())
        .map(|k| &dimension_names[..k])
        .collect();
    root.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms as u64,
            "CloudWatchMetrics": [{
                "Namespace": METRIC_NAMESPACE,
                "Dimensions": dimension_sets,
                "Metrics": definitions,
            }]
        }),
    );
    root.insert("Service".into(), service.into());
    for (name, value) in dimensions {
        root.insert((*name).to_owned(), (*value).into());
    }
    for (name, value) in nonzero {
        root.insert((*name).to_owned(), (*value).into());
    }
    Some(serde_json::Value::Object(root).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_is_told_in_words_without_the_debug_form() {
        #[derive(Debug)]
        struct Inner;
        impl std::fmt::Display for Inner {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("invalid peer certificate: UnknownIssuer")
            }
        }
        impl std::error::Error for Inner {}
        #[derive(Debug)]
        struct Outer {
            #[allow(dead_code)] // only its Debug form would show it
            raw_body: &'static str,
            inner: Inner,
        }
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("dispatch failure")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.inner)
            }
        }
        let e = Outer {
            raw_body: "SECRET-VALUE",
            inner: Inner,
        };
        let text = error_chain(&e);
        assert_eq!(
            text,
            "dispatch failure: invalid peer certificate: UnknownIssuer"
        );
        assert!(!text.contains("SECRET-VALUE"));
    }

    #[test]
    fn trace_everywhere_still_keeps_the_runtime_and_http_crates_at_info() {
        use tracing::Level;
        let f = pin_noisy_crates("trace,lambda_runtime=trace".parse().unwrap());
        for target in [
            "lambda_runtime",
            "aws_smithy_runtime",
            "hyper",
            "reqwest",
            "lambda_runtime::layers",
        ] {
            assert!(!f.would_enable(target, &Level::DEBUG), "{target} in {f}");
            assert!(f.would_enable(target, &Level::INFO), "{target} in {f}");
        }
        assert!(
            f.would_enable("wahook::inbound", &Level::TRACE),
            "our own crates follow the level asked for: {f}"
        );
    }

    #[test]
    fn rust_log_reads_as_targets_without_empty_pieces() {
        use tracing::Level;
        let f = targets("info,").unwrap();
        assert!(f.would_enable("wahook", &Level::INFO), "{f}");
        let f = targets(" wahook=debug , warn ").unwrap();
        assert!(f.would_enable("wahook::outbound", &Level::DEBUG), "{f}");
        assert!(!f.would_enable("tower", &Level::INFO), "{f}");
        assert!(targets("").is_none() && targets(" , ").is_none());
    }

    #[test]
    fn lambdas_log_levels_read_as_levels_and_fatal_as_error() {
        use tracing::Level;
        assert_eq!(lambda_log_level("INFO"), Some(Level::INFO));
        assert_eq!(lambda_log_level("debug"), Some(Level::DEBUG));
        assert_eq!(
            lambda_log_level("FATAL"),
            Some(Level::ERROR),
            "never silence errors"
        );
        assert_eq!(lambda_log_level("loud"), None);
    }

    #[test]
    fn emf_lines_follow_the_embedded_metric_format() {
        let line = emf_line(
            "webhook",
            &[],
            &[("SignatureFailures", 1), ("Messages", 0)],
            1_700_000_000_000,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["SignatureFailures"], 1);
        assert!(v.get("Messages").is_none(), "zero counts are skipped");
        assert_eq!(v["Service"], "webhook");
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "wahook");
        assert_eq!(m["Metrics"][0]["Name"], "SignatureFailures");
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert!(emf_line("webhook", &[], &[("Messages", 0)], 0).is_none());
    }

    #[test]
    fn extra_dimensions_are_declared_and_set() {
        let line = emf_line(
            "sender",
            &[("Outcome", "sent"), ("Category", "utility")],
            &[("Sends", 3)],
            0,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([
                ["Service"],
                ["Service", "Outcome"],
                ["Service", "Outcome", "Category"]
            ]),
            "each prefix is a metric an alarm can watch (the outcome_unknown alarm uses Outcome alone)"
        );
        assert_eq!(
            (
                v["Outcome"].as_str(),
                v["Category"].as_str(),
                v["Sends"].as_u64()
            ),
            (Some("sent"), Some("utility"), Some(3))
        );
    }
}
