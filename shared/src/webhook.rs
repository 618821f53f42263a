//! The webhook endpoint as a request → response function, independent of how it is hosted.
//!
//! - GET: the subscription handshake (DESIGN rule 1).
//! - POST: size limit, signature over the exact bytes (rule 2), then every update durably written
//!   before answering 200; a storage failure answers 503 so Meta redelivers (rule 3).
//! - Anything else: 405.

use std::time::Instant;

use http::{HeaderMap, Method, StatusCode};

use crate::config::WebhookConfig;
use crate::domain::ids::Wamid;
use crate::domain::time::UnixTime;
use crate::inbound::{plan, ApplyReport, InboundRules, InboundWriter, Plan};
use crate::media::MediaQueue;
use crate::retry::try_bounded;
use crate::secret::SecretString;
use crate::signature::{SignatureConfigError, SignatureError, SignatureVerifier, SIGNATURE_HEADER};
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::verification::{self, VerificationQuery};

/// Meta sends at most 3 MB; the margin covers counting differences. Larger bodies are refused unread.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024 + 256 * 1024;

/// What the endpoint received, as plain data.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub query: VerificationQuery<'a>,
    /// The body bytes exactly as sent (base64 already undone by the adapter).
    pub body: &'a [u8],
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
    /// Set on 405: the methods that are allowed.
    pub allow: Option<&'static str>,
}

impl WebhookResponse {
    fn text(status: StatusCode, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            allow: None,
        }
    }
}

/// The body of every 401: the same whatever was wrong (the log says which check failed).
pub const SIGNATURE_REFUSED: &str = "unauthorized: the X-Hub-Signature-256 check failed; the webhook's log says why (check WAHOOK_APP_SECRET)";
/// The body of every 403 to a verification request.
pub const VERIFICATION_REFUSED: &str = "verification failed: check hub.mode and hub.verify_token against WAHOOK_VERIFY_TOKEN; the webhook's log says why";

/// The webhook: verifies Meta, then plans and writes what a delivery says.
#[derive(Debug, Clone)]
pub struct WebhookService {
    verifier: SignatureVerifier,
    verify_token: SecretString,
    rules: InboundRules,
    writer: InboundWriter,
    delivery_deadline: std::time::Duration,
    metrics: Metrics,
    /// Where media jobs go; `None` when inbound media is not fetched (`WAHOOK_MEDIA_QUEUE_URL` unset).
    media_queue: Option<MediaQueue>,
}

impl WebhookService {
    pub fn new(
        config: &WebhookConfig,
        client: aws_sdk_dynamodb::Client,
        metrics: Metrics,
    ) -> Result<Self, SignatureConfigError> {
        let store = config.storage.store(client);
        Ok(Self {
            verifier: SignatureVerifier::new(&config.app_secrets)?,
            verify_token: config.verify_token.clone(),
            rules: InboundRules {
                keywords: config.keywords.clone(),
                numbers: config.inbound_numbers.clone(),
            },
            writer: InboundWriter::new(store, config.write_concurrency),
            delivery_deadline: config.delivery_deadline,
            metrics,
            media_queue: None,
        })
    }

    /// Queues a media job for every stored message with media (`docs/media.md`).
    pub fn with_media_queue(mut self, queue: MediaQueue) -> Self {
        self.media_queue = Some(queue);
        self
    }

    pub fn store(&self) -> &Store {
        self.writer.store()
    }

    pub async fn handle(&self, req: WebhookRequest<'_>) -> WebhookResponse {
        match *req.method {
            Method::GET => self.handshake(req.query),
            Method::POST => self.delivery(req.headers, req.body).await,
            _ => WebhookResponse {
                allow: Some("GET, POST"),
                ..WebhookResponse::text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed: Meta's webhook uses GET (verification) and POST (updates)",
                )
            },
        }
    }

    fn handshake(&self, query: VerificationQuery<'_>) -> WebhookResponse {
        match verification::verify(query, &self.verify_token) {
            Ok(challenge) => {
                tracing::info!(event = "verification_ok", "webhook subscription verified");
                WebhookResponse::text(StatusCode::OK, challenge)
            }
            Err(e) => {
                tracing::warn!(event = "verification_refused", reason = %e, "webhook verification refused");
                self.metrics.emit(&[("VerificationFailures", 1)]);
                // One body for every refusal: which check failed is in the log, not for the caller.
                WebhookResponse::text(StatusCode::FORBIDDEN, VERIFICATION_REFUSED)
            }
        }
    }

    /// The pure part of a POST: signature, parse, rules. This is what the benchmark measures.
    pub fn verify_and_plan<'a>(
        &self,
        headers: &HeaderMap,
        body: &'a [u8],
    ) -> Result<Plan<'a>, SignatureError> {
        let header = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
        self.verifier.verify(header, body)?;
        Ok(plan(body, &self.rules))
    }

    async fn delivery(&self, headers: &HeaderMap, body: &[u8]) -> WebhookResponse {
        if body.len() > MAX_BODY_BYTES {
            tracing::warn!(
                event = "payload_too_large",
                bytes = body.len(),
                "refused an oversized body"
            );
            return WebhookResponse::text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "payload too large: {} bytes; Meta sends at most 3 MB",
                    body.len()
                ),
            );
        }
        let started = Instant::now();
        let plan = match self.verify_and_plan(headers, body) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(event = "signature_refused", reason = ?e, bytes = body.len(), "POST refused: {e}");
                self.metrics.emit(&[("SignatureFailures", 1)]);
                // One body for every refusal: which check failed is in the log, not for the caller.
                return WebhookResponse::text(StatusCode::UNAUTHORIZED, SIGNATURE_REFUSED);
            }
        };
        let counts = plan.counts;
        let stored = tokio::time::timeout(self.delivery_deadline, self.store_delivery(&plan)).await;
        let stored = match stored {
            Ok(stored) => stored,
            Err(_) => {
                // Every write is idempotent, so what was written before the cut is harmless, and the
                // redelivery writes the rest.
                tracing::error!(
                    event = "storage_deadline",
                    deadline_ms = self.delivery_deadline.as_millis() as u64,
                    messages = counts.messages,
                    statuses = counts.statuses,
                    "storage did not finish in time; answering 503 so Meta redelivers"
                );
                self.metrics.emit(&[("StorageFailures", 1)]);
                return WebhookResponse::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage unavailable; please redeliver",
                );
            }
        };
        match stored {
            Ok(report) => {
                self.log_delivery(&plan, &report, started);
                WebhookResponse::text(StatusCode::OK, "ok")
            }
            Err(e) => {
                tracing::error!(
                    event = "storage_failed",
                    error = %e,
                    messages = counts.messages,
                    statuses = counts.statuses,
                    "delivery not stored; answering 503 so Meta redelivers"
                );
                self.metrics.emit(&[("StorageFailures", 1)]);
                WebhookResponse::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage unavailable; please redeliver",
                )
            }
        }
    }

    /// Writes the plan, then queues the media jobs it left to queue: Meta gets its 200 only when both
    /// are durable, so a media file is never forgotten (a redelivery queues what is still pending).
    async fn store_delivery(&self, plan: &Plan<'_>) -> Result<ApplyReport, String> {
        let applied = self
            .writer
            .apply(plan, UnixTime::now())
            .await
            .map_err(|e| e.to_string())?;
        if let (Some(queue), false) = (&self.media_queue, applied.media_unqueued.is_empty()) {
            let wamids: Vec<&Wamid> = applied.media_unqueued.iter().collect();
            queue.enqueue(&wamids).await?;
            let marks = wamids
                .iter()
                .map(|w| self.store().mark_media_queued(w))
                .collect();
            try_bounded(marks, self.writer.concurrency())
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(applied.report)
    }

    fn log_delivery(&self, plan: &Plan<'_>, r: &ApplyReport, started: Instant) {
        let c = plan.counts;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        if c.unparsed > 0 {
            tracing::warn!(
                event = "unparsed_kept",
                unparsed = c.unparsed,
                kinds = ?plan.events.iter().filter(|e| e.is_unparsed()).map(|e| e.kind.to_string()).collect::<Vec<_>>(),
                "authentic content we could not parse was stored raw in the events table"
            );
        }
        tracing::info!(
            event = "delivery_stored",
            entries = c.entries,
            changes = c.changes,
            messages = c.messages,
            statuses = c.statuses,
            preferences = c.preferences,
            other_fields = c.other_fields,
            unknown_message_types = c.unknown_message_types,
            unknown_statuses = c.unknown_statuses,
            unparsed = c.unparsed,
            unattributed = c.unattributed,
            crashed = c.crashed,
            other_numbers = c.other_numbers,
            messages_stored = r.messages_stored,
            messages_duplicate = r.messages_duplicate,
            statuses_written = r.statuses_written,
            statuses_unchanged = r.statuses_unchanged,
            contacts_written = r.contacts_written,
            contacts_unchanged = r.contacts_unchanged,
            contacts_moved = r.contacts_moved,
            events_stored = r.events_stored,
            conflicts = r.conflicts,
            templates_written = r.templates_written,
            templates_older = r.templates_older,
            templates_future = r.templates_future,
            template_unusable = c.template_unusable,
            elapsed_ms,
            "delivery stored"
        );
        self.metrics.emit(&[
            ("Deliveries", 1),
            ("Messages", c.messages as u64),
            ("Statuses", c.statuses as u64),
            ("DuplicateMessages", r.messages_duplicate as u64),
            ("UnparsedKept", c.unparsed as u64),
            ("ItemsTrippedABug", c.crashed as u64),
            ("UnknownMessageTypes", c.unknown_message_types as u64),
            ("OtherFields", c.other_fields as u64),
            ("WriteConflicts", r.conflicts as u64),
            ("TemplateUpdates", r.templates_written as u64),
            ("OtherNumberChanges", c.other_numbers as u64),
        ]);
    }
}
