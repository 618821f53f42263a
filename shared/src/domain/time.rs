//! Time as Meta states it: whole Unix seconds. Windows are computed from payload timestamps, never from
//! the clock of arrival, so a redelivery days later changes nothing.

use std::fmt;

/// Seconds since the Unix epoch, as in Meta's `timestamp` fields and our DynamoDB number attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnixTime(i64);

/// The customer service window: 24 h after the user's last message.
pub const CUSTOMER_SERVICE_WINDOW_SECS: i64 = 24 * 60 * 60;
/// The free-entry-point window: 72 h from the business's reply to a Click-to-WhatsApp referral.
pub const FREE_ENTRY_POINT_WINDOW_SECS: i64 = 72 * 60 * 60;

impl UnixTime {
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs)
    }

    pub const fn secs(self) -> i64 {
        self.0
    }

    pub fn plus_secs(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs))
    }

    pub fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Self(secs)
    }

    /// Meta writes timestamps as strings of digits; some tools send numbers. Anything else is `None`.
    /// The largest payload time we accept (12 digits: year 33658). Anything above is not a time Meta
    /// sends, and would freeze "latest wins" state (a window that never closes, an opt-out nothing
    /// can follow).
    pub const MAX_PAYLOAD_SECS: i64 = 999_999_999_999;

    pub fn parse_meta(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        raw.parse().ok().map(Self)
    }
}

impl UnixTime {
    /// Parses an RFC 3339 timestamp (`2026-11-23T12:00:00Z`, `…+01:00`, fractional seconds dropped).
    pub fn parse_rfc3339(raw: &str) -> Option<Self> {
        let b = raw.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let num = |from: usize, to: usize| -> Option<i64> {
            let s = raw.get(from..to)?;
            s.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| s.parse().ok())?
        };
        let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
        let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
        let valid = (1..=12).contains(&month)
            && (1..=days_in_month(year, month)).contains(&day)
            && hour < 24
            && minute < 60
            && second < 61;
        if !valid {
            return None;
        }
        // Optional fraction, then Z or ±hh:mm.
        let mut rest = &raw[19..];
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            rest = &frac[digits..];
        }
        let offset = match rest {
            "Z" | "z" => 0,
            _ => {
                let sign = match rest.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let o = rest.as_bytes();
                if o.len() != 6 || o[3] != b':' {
                    return None;
                }
                let hh: i64 = rest[1..3].parse().ok()?;
                let mm: i64 = rest[4..6].parse().ok()?;
                if hh > 23 || mm > 59 {
                    return None;
                }
                sign * (hh * 3600 + mm * 60)
            }
        };
        let days = days_from_civil(year, month, day);
        Some(Self(
            days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset,
        ))
    }

    /// `2026-11-23T12:00:00Z`.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.rem_euclid(86_400);
        format!(
            "{}T{:02}:{:02}:{:02}Z",
            self.day(),
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        )
    }

    /// The UTC day, `2026-11-23`.
    pub fn day(self) -> String {
        let (y, m, d) = civil_from_days(self.0.div_euclid(86_400));
        format!("{y:04}-{m:02}-{d:02}")
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil calendar algorithms (public domain), days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps_parse_with_offsets_and_fractions() {
        let t = |s: &str| UnixTime::parse_rfc3339(s).map(UnixTime::secs);
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(t("2026-11-23T02:13:20Z"), Some(1_795_400_000));
        assert_eq!(t("2026-11-23T03:13:20+01:00"), Some(1_795_400_000));
        assert_eq!(t("2026-11-22T21:13:20.123-05:00"), Some(1_795_400_000));
        assert_eq!(t("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        for bad in [
            "2026-11-23",
            "2026-11-23T02:13:20",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-23T25:00:00Z",
            "2026-11-23T02:13:20+0100",
            "2026-11-23T02:13:20.Z",
            "tomorrow",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_round_trips() {
        for secs in [0, 1_795_400_000, 951_782_400, 4_102_444_799] {
            let t = UnixTime::from_secs(secs);
            assert_eq!(UnixTime::parse_rfc3339(&t.to_rfc3339()), Some(t));
        }
        assert_eq!(
            UnixTime::from_secs(1_795_400_000).to_rfc3339(),
            "2026-11-23T02:13:20Z"
        );
    }

    #[test]
    fn meta_timestamps_are_strings_of_seconds() {
        assert_eq!(
            UnixTime::parse_meta("1795000000"),
            Some(UnixTime::from_secs(1_795_000_000))
        );
        assert_eq!(UnixTime::parse_meta(" 42 "), Some(UnixTime::from_secs(42)));
        for bad in ["", "-1", "1.5", "12e3", "soon", "9999999999999"] {
            assert_eq!(UnixTime::parse_meta(bad), None, "{bad}");
        }
    }
}
