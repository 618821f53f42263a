//! Meta's error codes, classified (docs/whatsapp-platform.md §6). Logic keys on the code, never on
//! titles or HTTP statuses, except when Meta sent no code at all.

/// What a failed send calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later; the request itself is fine.
    Transient,
    /// The request or configuration is wrong (template name, token, parameters): retrying won't help.
    FixRequest,
    /// A policy or account restriction: stop, record, alert a human.
    Policy,
    /// This recipient cannot get this message (not on WhatsApp, stopped marketing…).
    Recipient,
    /// The business account itself cannot send (token, permission, payment, locked, unregistered,
    /// blocked): every queued send would fail the same way until a person fixes the account, so
    /// the line stops and the sends wait (`held`) instead of being burnt as `failed`.
    Account,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::FixRequest => "fix_request",
            ErrorClass::Policy => "policy",
            ErrorClass::Recipient => "recipient",
            ErrorClass::Account => "account",
        }
    }
}

/// Throughput of the business number exceeded.
pub const THROUGHPUT_EXCEEDED: i64 = 130_429;
/// Too many messages to this one user (pair rate): back off for this recipient only.
pub const PAIR_RATE_EXCEEDED: i64 = 131_056;
/// Re-engagement: the customer service window is closed.
pub const WINDOW_CLOSED: i64 = 131_047;
/// The user stopped marketing messages from this business.
pub const MARKETING_STOPPED: i64 = 131_050;
/// The account is in maintenance (e.g. a throughput upgrade, up to a minute).
pub const MAINTENANCE: i64 = 131_057;
/// The template is paused (Meta's code; the registry's `PAUSED` holds a send under it too).
pub const TEMPLATE_PAUSED: i64 = 132_015;

/// The Marketing Messages API's refusals of a send it will not take (not eligible, not onboarded,
/// not this template…): nothing was sent, so the send goes once through `/messages` instead.
/// UNSURE what each means exactly (whatsapp-platform.md §12); one entry each.
pub const MARKETING_MESSAGES_REFUSALS: &[i64] = &[131_055, 134_100, 134_102, 1_752_041];

/// Codes about the account, not the message (whatsapp-platform.md §12): 0 and 190 (token invalid or
/// expired), 10 and 200–299 (permission), 131005 (access denied), 131031 (account locked), 131042
/// (payment problem), 133010 (number not registered), 368 (temporarily blocked for policy). One
/// table: a code Meta adds to the list is one entry here.
pub const ACCOUNT_CODES: &[std::ops::RangeInclusive<i64>] = &[
    0..=0,
    10..=10,
    190..=190,
    200..=299,
    368..=368,
    131_005..=131_005,
    131_031..=131_031,
    131_042..=131_042,
    133_010..=133_010,
];

/// Whether `code` says the account (not the message) is what fails.
pub fn is_account_code(code: i64) -> bool {
    ACCOUNT_CODES.iter().any(|r| r.contains(&code))
}

pub fn classify(code: Option<i64>, http_status: u16) -> ErrorClass {
    use ErrorClass::*;
    match code {
        // 0 is Meta's generic AuthException: about the account only when the status says auth, so a
        // proxy's stray `code: 0` cannot halt a number.
        Some(0) if !matches!(http_status, 401 | 403) => FixRequest,
        Some(c) if is_account_code(c) => Account,
        // 134101: the Marketing Messages API has not synced the template yet: retry.
        Some(
            1 | 2 | 4 | 80_007 | 130_429 | 131_000 | 131_016 | 131_056 | 131_057 | 132_069
            | 133_004 | 133_015 | 133_016 | 134_101,
        ) => Transient,
        // 135000 in the pacing era: a paced send Meta dropped (whatsapp-platform.md §12). The
        // Marketing Messages API's other errors (131055, 134100, 134102, 1752041) fall to
        // FixRequest below: UNSURE what each means beyond "not this way"; one entry to move each.
        Some(
            130_472 | 130_497 | 131_048 | 131_049 | 131_064 | 132_007 | 132_015 | 132_016 | 135_000,
        ) => Policy,
        Some(130_403 | 131_026 | 131_050 | 131_052) => Recipient,
        Some(_) => FixRequest,
        // No code: the HTTP status is all there is.
        None if http_status == 429 || http_status >= 500 => Transient,
        None => FixRequest,
    }
}

/// How long a transient failure waits before its next attempt, given how often SQS has delivered the
/// message (1 on the first attempt). Exponential with full jitter, per Meta's guidance per code.
pub fn retry_delay_secs(code: Option<i64>, receive_count: u32, jitter: f64) -> u32 {
    let n = receive_count.clamp(1, 12) - 1;
    let jitter = jitter.clamp(0.0, 1.0);
    let exponential = |base: f64, cap: f64| -> u32 {
        let max = (base * 2f64.powi(n as i32)).min(cap);
        // Full jitter, but never less than the base.
        (base + (max - base) * jitter).round() as u32
    };
    match code {
        // Meta: retry after 4^X seconds; only this recipient's messages wait.
        Some(PAIR_RATE_EXCEEDED) => 4u32.saturating_pow(n).min(43_200),
        // A throughput upgrade takes up to a minute.
        Some(MAINTENANCE) => 60,
        // Number recently deleted, deletion pending: wait 5 minutes.
        Some(133_015) => 300,
        Some(THROUGHPUT_EXCEEDED | 4 | 80_007) => exponential(5.0, 300.0),
        _ => exponential(10.0, 900.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_table() {
        for code in [130_429, 131_056, 131_000, 131_016, 131_057, 2, 4] {
            assert_eq!(classify(Some(code), 400), ErrorClass::Transient, "{code}");
        }
        for code in [131_047, 132_001, 132_000, 100, 131_009] {
            assert_eq!(classify(Some(code), 400), ErrorClass::FixRequest, "{code}");
        }
        for code in [
            0, 10, 190, 200, 250, 299, 368, 131_005, 131_031, 131_042, 133_010,
        ] {
            assert_eq!(classify(Some(code), 401), ErrorClass::Account, "{code}");
        }
        for code in [131_049, 132_015, 131_048, 135_000] {
            assert_eq!(classify(Some(code), 400), ErrorClass::Policy, "{code}");
        }
        assert_eq!(classify(Some(134_101), 400), ErrorClass::Transient);
        for code in [131_055, 134_100, 134_102, 1_752_041] {
            assert_eq!(classify(Some(code), 400), ErrorClass::FixRequest, "{code}");
        }
        for code in [131_050, 131_026, 130_403] {
            assert_eq!(classify(Some(code), 400), ErrorClass::Recipient, "{code}");
        }
    }

    #[test]
    fn code_zero_halts_the_account_only_with_an_auth_status() {
        assert_eq!(classify(Some(0), 401), ErrorClass::Account);
        assert_eq!(classify(Some(0), 400), ErrorClass::FixRequest);
    }

    #[test]
    fn without_a_code_the_http_status_decides() {
        assert_eq!(classify(None, 502), ErrorClass::Transient);
        assert_eq!(classify(None, 429), ErrorClass::Transient);
        assert_eq!(classify(None, 404), ErrorClass::FixRequest);
        assert_eq!(
            classify(Some(131_009), 503),
            ErrorClass::FixRequest,
            "the code wins"
        );
    }

    #[test]
    fn pair_rate_backs_off_four_to_the_x() {
        let d: Vec<u32> = (1..=5)
            .map(|n| retry_delay_secs(Some(PAIR_RATE_EXCEEDED), n, 0.5))
            .collect();
        assert_eq!(d, [1, 4, 16, 64, 256]);
        assert_eq!(
            retry_delay_secs(Some(PAIR_RATE_EXCEEDED), 40, 0.0),
            43_200,
            "capped at SQS's 12 h"
        );
    }

    #[test]
    fn other_transient_errors_back_off_exponentially_with_jitter_and_a_cap() {
        assert_eq!(retry_delay_secs(Some(THROUGHPUT_EXCEEDED), 1, 1.0), 5);
        assert_eq!(retry_delay_secs(Some(THROUGHPUT_EXCEEDED), 3, 1.0), 20);
        assert_eq!(retry_delay_secs(Some(THROUGHPUT_EXCEEDED), 3, 0.0), 5);
        assert_eq!(retry_delay_secs(None, 12, 1.0), 900);
        assert_eq!(retry_delay_secs(Some(MAINTENANCE), 1, 0.3), 60);
    }
}
