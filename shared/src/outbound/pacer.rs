//! Per business number pacing (DESIGN rule 15), as the generic cell rate algorithm: a burst of
//! `burst` sends, then one every `1/rate` seconds. A caller reserves its slot before it sleeps, so
//! concurrent sends through one number queue up in order instead of racing.
//!
//! In any one-second window one invocation sends at most `rate + burst` messages per number. Meta's
//! limit (80 mps by default) applies to the number across all invocations: see `docs/sender.md` for
//! how to set rate, burst and the event source's maximum concurrency together.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::ids::PhoneNumberId;

#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    /// How far ahead of the steady pace a burst may run.
    tolerance: Duration,
    /// Per number: the theoretical arrival time of the next send.
    next: Mutex<HashMap<PhoneNumberId, Instant>>,
}

impl Pacer {
    /// `rate` sends per second after a burst of `burst` (at least 1).
    pub fn new(rate: f64, burst: u32) -> Self {
        let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
        Self {
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            next: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until this number may send once more.
    pub async fn acquire(&self, number: &PhoneNumberId) {
        let start_at = {
            let now = Instant::now();
            let mut next = self.next.lock().expect("pacer lock");
            let tat = next.get(number).copied().map_or(now, |t| t.max(now));
            // Allowed once the theoretical time is within the burst tolerance of now.
            let allowed = tat.checked_sub(self.tolerance).unwrap_or(now).max(now);
            next.insert(number.clone(), tat + self.interval);
            allowed
        };
        tokio::time::sleep_until(start_at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(n: &str) -> PhoneNumberId {
        PhoneNumberId::parse(n).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_the_rate_holds() {
        let pacer = Pacer::new(10.0, 5);
        let start = Instant::now();
        let n = number("1");
        for _ in 0..5 {
            pacer.acquire(&n).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst does not wait");
        for _ in 0..20 {
            pacer.acquire(&n).await;
        }
        // 25 sends at 10/s with a burst of 5: the 25th goes at (25 - 5) / 10 = 2 s.
        assert_eq!(start.elapsed(), Duration::from_millis(2_000));
    }

    #[tokio::test(start_paused = true)]
    async fn numbers_are_paced_independently() {
        let pacer = Pacer::new(1.0, 1);
        let start = Instant::now();
        pacer.acquire(&number("1")).await;
        pacer.acquire(&number("2")).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        pacer.acquire(&number("1")).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_get_consecutive_slots() {
        let pacer = std::sync::Arc::new(Pacer::new(4.0, 1));
        let start = Instant::now();
        let waits: Vec<_> = (0..8)
            .map(|_| {
                let p = pacer.clone();
                tokio::spawn(async move {
                    p.acquire(&number("1")).await;
                    start.elapsed()
                })
            })
            .collect();
        let mut done = Vec::new();
        for w in waits {
            done.push(w.await.unwrap());
        }
        done.sort();
        let expected: Vec<Duration> = (0..8).map(|i| Duration::from_millis(250 * i)).collect();
        assert_eq!(done, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_number_regains_its_burst() {
        let pacer = Pacer::new(10.0, 3);
        let n = number("1");
        for _ in 0..6 {
            pacer.acquire(&n).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = Instant::now();
        for _ in 0..3 {
            pacer.acquire(&n).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
