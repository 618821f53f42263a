//! Re-reading the access token after Meta refused it: a secret rotated in place (or fixed by a
//! person at 02:00) reaches the running sender without a cold start. Rate-limited, because every
//! record of a halted account would otherwise ask Secrets Manager again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{SecretRef, SecretResolver};
use crate::graph::GraphClient;

/// Where the token came from, and when it was last read.
pub struct TokenSource {
    var: &'static str,
    reference: SecretRef,
    resolver: SecretResolver,
    min_interval: Duration,
    last_read: Mutex<Option<Instant>>,
}

/// What a re-read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reread {
    /// Read too recently; nothing done.
    TooSoon,
    /// The same token as before.
    Unchanged,
    /// A new token, now in use.
    Changed,
    /// The read failed (the old token stays in use).
    Failed(String),
}

impl TokenSource {
    pub fn new(
        var: &'static str,
        reference: SecretRef,
        resolver: SecretResolver,
        min_interval: Duration,
    ) -> Self {
        Self {
            var,
            reference,
            resolver,
            min_interval,
            // The token was read at start-up.
            last_read: Mutex::new(Some(Instant::now())),
        }
    }

    /// Reads the token again if the last read is older than the minimum interval, and gives it to
    /// `graph`.
    pub async fn reread(&self, graph: &GraphClient) -> Reread {
        {
            let mut last = self.last_read.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < self.min_interval) {
                return Reread::TooSoon;
            }
            *last = Some(Instant::now());
        }
        match self.resolver.fetch(self.var, &self.reference).await {
            Ok(token) => match graph.set_token(token) {
                true => Reread::Changed,
                false => Reread::Unchanged,
            },
            Err(e) => Reread::Failed(e.to_string()),
        }
    }
}
