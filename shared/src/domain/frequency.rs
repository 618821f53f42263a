//! No over-messaging (DESIGN rule 20): at most `max` marketing templates to one person in a rolling
//! window, counted from our own record of what Meta accepted. Meta caps marketing per person too
//! (131049, "healthy ecosystem engagement") but says so only after the call, and bills nothing
//! for it: refusing before the call keeps the budget for the sends that would land.

use super::time::UnixTime;

/// The per-person marketing cap (`WAHOOK_MARKETING_CAP` per `WAHOOK_MARKETING_CAP_DAYS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrequencyCap {
    pub max: u32,
    pub window_days: u32,
}

impl FrequencyCap {
    pub fn window_secs(&self) -> i64 {
        i64::from(self.window_days) * 86_400
    }

    /// The sends of `sent_at` that still count at `now`.
    pub fn counted(&self, sent_at: &[UnixTime], now: UnixTime) -> u32 {
        let since = now.secs() - self.window_secs();
        sent_at.iter().filter(|t| t.secs() > since).count() as u32
    }

    /// Why one more marketing send at `now` would exceed the cap, given `earlier` sends that still
    /// count (ours, and this batch's); `None` when it may go.
    pub fn refusal(&self, earlier: u32) -> Option<String> {
        (earlier >= self.max).then(|| {
            format!(
                "{earlier} marketing template{} already sent to this person in the last {} day{} (WAHOOK_MARKETING_CAP={} per WAHOOK_MARKETING_CAP_DAYS={}): not sent, so the person is not over-messaged",
                if earlier == 1 { "" } else { "s" },
                self.window_days,
                if self.window_days == 1 { "" } else { "s" },
                self.max,
                self.window_days
            )
        })
    }

    /// How long the record of a send must be kept to count it: the window, and a day of slack for
    /// DynamoDB's TTL, which deletes late.
    pub fn keep_until(&self, now: UnixTime) -> UnixTime {
        UnixTime::from_secs(now.secs() + self.window_secs() + 86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = UnixTime::from_secs(1_795_401_000);
    const CAP: FrequencyCap = FrequencyCap {
        max: 2,
        window_days: 7,
    };

    #[test]
    fn only_sends_inside_the_window_count() {
        let day = 86_400;
        let sent = [
            UnixTime::from_secs(NOW.secs() - 8 * day),
            UnixTime::from_secs(NOW.secs() - 7 * day),
            UnixTime::from_secs(NOW.secs() - 7 * day + 1),
            UnixTime::from_secs(NOW.secs() - 60),
        ];
        assert_eq!(CAP.counted(&sent, NOW), 2);
        assert_eq!(CAP.counted(&[], NOW), 0);
    }

    #[test]
    fn the_send_that_would_exceed_the_cap_is_refused_with_the_numbers() {
        assert_eq!(CAP.refusal(0), None);
        assert_eq!(CAP.refusal(1), None);
        let why = CAP.refusal(2).unwrap();
        assert!(
            why.contains("2 marketing templates already sent to this person in the last 7 days"),
            "{why}"
        );
        assert!(why.contains("WAHOOK_MARKETING_CAP=2"), "{why}");
    }

    #[test]
    fn the_record_outlives_the_window() {
        assert!(CAP.keep_until(NOW).secs() > NOW.secs() + CAP.window_secs());
    }
}
