//! Trying again, in one place: jittered backoff, the bound on attempts, the versioned
//! read-merge-write loop, and running a batch's futures with a bound on how many are in flight.
//! Both paths and the store use these; none of them knows what it is retrying.

use std::future::Future;
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};

/// A write that keeps losing races (or keeps failing) is tried this many times before giving up.
pub const MAX_ATTEMPTS: u32 = 6;

/// Exponential backoff with full jitter: 25 ms × 2^attempt, capped at 1 s.
pub async fn backoff(attempt: u32) {
    let cap = 25u64.saturating_mul(1 << attempt.min(6)).min(1_000);
    tokio::time::sleep(Duration::from_millis(random_up_to(cap))).await;
}

/// A random fraction in `[0, 1]` for jittered backoffs.
pub fn jitter() -> f64 {
    random_up_to(1_000_000) as f64 / 1_000_000.0
}

/// A cheap random number in `0..=max` (no RNG dependency for this one use).
fn random_up_to(max: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() % (max + 1)
}

/// The attempts of a versioned read-merge-write (read, merge, conditional write; on a lost race,
/// read again). Used as `while let Some(attempt) = rounds.next().await { … }`: it backs off before
/// every attempt after the first and ends after [`MAX_ATTEMPTS`], when the caller reports contention.
///
/// A loop rather than a retry combinator taking a closure: an async closure that borrows the
/// caller's state makes the combined future lose `Send`, which the Lambda runtime needs.
#[derive(Debug, Default)]
pub struct Rounds {
    started: u32,
}

impl Rounds {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next attempt's number (0 first), after its backoff; `None` once the bound is reached.
    pub async fn next(&mut self) -> Option<u32> {
        if self.started >= MAX_ATTEMPTS {
            return None;
        }
        if self.started > 0 {
            backoff(self.started).await;
        }
        self.started += 1;
        Some(self.started - 1)
    }
}

/// Runs already-built (still idle) futures with at most `limit` in flight, keeping every result.
///
/// Building the futures first, rather than mapping a closure inside the stream, keeps the combined
/// future `Send` for the Lambda runtime (rustc cannot prove it through a borrowing closure).
pub async fn bounded<T, F: Future<Output = T>>(futures: Vec<F>, limit: usize) -> Vec<T> {
    stream::iter(futures)
        .buffer_unordered(limit.max(1))
        .collect()
        .await
}

/// [`bounded`] for fallible futures: the first error wins.
pub async fn try_bounded<T, E, F>(futures: Vec<F>, limit: usize) -> Result<Vec<T>, E>
where
    F: Future<Output = Result<T, E>>,
{
    stream::iter(futures)
        .buffer_unordered(limit.max(1))
        .try_collect()
        .await
}

/// The invocation's deadline (Lambda's, in Unix milliseconds) as an `Instant`; `None` when the
/// runtime gave none (0).
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Option<std::time::Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(deadline_ms);
    let left = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    Some(std::time::Instant::now() + left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_the_unit_interval() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..=1.0).contains(&j), "{j}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rounds_back_off_between_attempts_and_the_bound_holds() {
        let start = tokio::time::Instant::now();
        let mut rounds = Rounds::new();
        assert_eq!(rounds.next().await, Some(0));
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the first attempt does not wait"
        );
        let mut seen = vec![0];
        while let Some(attempt) = rounds.next().await {
            seen.push(attempt);
        }
        assert_eq!(seen, (0..MAX_ATTEMPTS).collect::<Vec<_>>());
        assert_eq!(rounds.next().await, None, "the bound stays reached");
    }

    #[tokio::test]
    async fn bounded_keeps_every_result() {
        let futures: Vec<_> = (0..20).map(|i| async move { i * 2 }).collect();
        let mut out = bounded(futures, 3).await;
        out.sort();
        assert_eq!(out, (0..20).map(|i| i * 2).collect::<Vec<_>>());
        let failing: Vec<_> = (0..5)
            .map(|i| async move {
                if i == 3 {
                    Err(i)
                } else {
                    Ok(i)
                }
            })
            .collect();
        assert_eq!(try_bounded(failing, 2).await, Err(3));
    }
}
