//! Deadlines: every AWS SDK call has an operation and an attempt timeout well inside the function's
//! own timeout, so a DynamoDB or SQS that stops answering turns into a 503 (webhook: Meta
//! redelivers) or a retried record (sender), never a function killed mid-request by Lambda.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;

use super::env::{parse_number, ConfigError, Env};

/// Which function is being configured: each has its own timeout in `infra/template.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Webhook,
    Sender,
    TemplateSync,
    Media,
    Publisher,
}

impl Function {
    /// The template's `Timeout` for the function, and the SDK timeouts that fit inside it.
    fn defaults(self) -> (u64, u64, u64) {
        match self {
            // (function timeout s, operation ms, attempt ms)
            Function::Webhook => (10, 3_000, 1_000),
            Function::Sender => (30, 5_000, 2_000),
            // Pages of templates and their registry writes: minutes at most, hourly.
            Function::TemplateSync => (300, 5_000, 2_000),
            // One download of up to 100 MB (documents) streamed into S3, a part at a time.
            Function::Media => (300, 10_000, 5_000),
            // A stream batch's PutEvents calls, retried inside the invocation before Lambda retries.
            Function::Publisher => (60, 5_000, 2_000),
        }
    }
}

/// How long any one AWS call may take, and the function timeout it is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// The function's timeout (`WAHOOK_FUNCTION_TIMEOUT_SECONDS`, set by the template from the same
    /// value as the function's `Timeout`).
    pub function_timeout: Duration,
    /// One SDK operation, all its retries included.
    pub aws_operation: Duration,
    /// One attempt of an SDK operation.
    pub aws_attempt: Duration,
}

impl Deadlines {
    pub fn load(env: &Env, function: Function) -> Result<Self, ConfigError> {
        let (function_s, operation_ms, attempt_ms) = function.defaults();
        let function_s: u64 =
            parse_number(env, "WAHOOK_FUNCTION_TIMEOUT_SECONDS", function_s, 1..=900)?;
        let operation_ms: u64 = parse_number(
            env,
            "WAHOOK_AWS_OPERATION_TIMEOUT_MS",
            operation_ms,
            100..=60_000,
        )?;
        let attempt_ms: u64 = parse_number(
            env,
            "WAHOOK_AWS_ATTEMPT_TIMEOUT_MS",
            attempt_ms,
            50..=60_000,
        )?;
        if attempt_ms > operation_ms {
            return Err(ConfigError::Invalid {
                var: "WAHOOK_AWS_ATTEMPT_TIMEOUT_MS".into(),
                value: attempt_ms.to_string(),
                expected: format!(
                    "at most WAHOOK_AWS_OPERATION_TIMEOUT_MS ({operation_ms} ms): one attempt cannot outlast the operation"
                ),
            });
        }
        // "Well inside": a request makes several calls, so one may take at most half the function.
        if operation_ms * 2 > function_s * 1_000 {
            return Err(ConfigError::Invalid {
                var: "WAHOOK_AWS_OPERATION_TIMEOUT_MS".into(),
                value: operation_ms.to_string(),
                expected: format!(
                    "at most half the function timeout ({function_s} s, WAHOOK_FUNCTION_TIMEOUT_SECONDS), so a stalled AWS call ends in time to answer"
                ),
            });
        }
        Ok(Self {
            function_timeout: Duration::from_secs(function_s),
            aws_operation: Duration::from_millis(operation_ms),
            aws_attempt: Duration::from_millis(attempt_ms),
        })
    }

    /// The SDK configuration with these timeouts (every client built from it has them).
    pub fn apply(&self, sdk: &SdkConfig) -> SdkConfig {
        sdk.to_builder()
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(self.aws_operation)
                    .operation_attempt_timeout(self.aws_attempt)
                    .connect_timeout(self.aws_attempt.min(Duration::from_secs(1)))
                    .build(),
            )
            .build()
    }

    /// Checks that `what` (`var`, `value`) ends before the function does, with a margin to answer.
    pub(super) fn check_inside(
        &self,
        var: &str,
        value: Duration,
        margin: Duration,
    ) -> Result<(), ConfigError> {
        if value + margin > self.function_timeout {
            return Err(ConfigError::Invalid {
                var: var.into(),
                value: value.as_millis().to_string(),
                expected: format!(
                    "less than the function timeout ({} s) minus {} ms to answer",
                    self.function_timeout.as_secs(),
                    margin.as_millis()
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_each_function() {
        let w = Deadlines::load(&Env::from_pairs::<&str, &str>([]), Function::Webhook).unwrap();
        assert_eq!(w.function_timeout, Duration::from_secs(10));
        assert!(w.aws_operation * 2 <= w.function_timeout);
        let s = Deadlines::load(&Env::from_pairs::<&str, &str>([]), Function::Sender).unwrap();
        assert_eq!(s.function_timeout, Duration::from_secs(30));
    }

    #[test]
    fn a_timeout_that_outlasts_the_function_stops_start_up() {
        let env = Env::from_pairs([
            ("WAHOOK_FUNCTION_TIMEOUT_SECONDS", "3"),
            ("WAHOOK_AWS_OPERATION_TIMEOUT_MS", "2500"),
        ]);
        let e = Deadlines::load(&env, Function::Webhook)
            .unwrap_err()
            .to_string();
        assert!(e.contains("half the function timeout"), "{e}");
        let env = Env::from_pairs([
            ("WAHOOK_AWS_OPERATION_TIMEOUT_MS", "1000"),
            ("WAHOOK_AWS_ATTEMPT_TIMEOUT_MS", "2000"),
        ]);
        let e = Deadlines::load(&env, Function::Webhook)
            .unwrap_err()
            .to_string();
        assert!(e.contains("WAHOOK_AWS_ATTEMPT_TIMEOUT_MS"), "{e}");
    }
}
