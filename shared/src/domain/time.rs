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
    pub fn parse_meta(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        raw.parse().ok().map(Self)
    }
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
