//! The Lambda handlers, hosted locally without changing a line of them.
//!
//! - [`serve_webhook`]: real HTTP on 127.0.0.1, each request turned into the `lambda_http::Request`
//!   that API Gateway's payload v2 would produce, and handed to `wahook_webhook::handle`.
//! - [`SqsPoller`]: what Lambda's SQS event source mapping does: receive up to 10 messages, invoke
//!   `wahook_sender::handle` with a real `SqsEvent`, delete every record the batch response does not
//!   report as failed, and leave the failed ones to come back after their visibility timeout.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use lambda_http::{Body, RequestExt};
use lambda_runtime::{Context, LambdaEvent};

pub mod dev;
pub mod streams;
use wahook::media::MediaService;
use wahook::outbound::Sender;
use wahook::webhook::WebhookService;

/// A synchronous Lambda invocation's payload limit.
pub const LAMBDA_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// Serves the webhook function on `listener` until the future is dropped.
pub async fn serve_webhook(
    service: Arc<WebhookService>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .fallback(invoke_webhook)
        // Lambda's limit, not axum's 2 MB: a 3 MB delivery must reach the handler (which answers 413
        // above Meta's 3 MB) locally as it does behind API Gateway.
        .layer(axum::extract::DefaultBodyLimit::max(LAMBDA_PAYLOAD_BYTES))
        .with_state(service);
    axum::serve(listener, app).await
}

/// The request as API Gateway would pass it: exact body bytes, headers, decoded query parameters.
pub fn lambda_request(
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Bytes,
) -> lambda_http::Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(uri.clone());
    for (name, value) in &headers {
        builder = builder.header(name, value);
    }
    let body = if body.is_empty() {
        Body::Empty
    } else {
        Body::Binary(body.to_vec())
    };
    let request = builder.body(body).expect("a valid request");
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        query
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    request.with_query_string_parameters(query)
}

async fn invoke_webhook(
    State(service): State<Arc<WebhookService>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = lambda_request(method, &uri, headers, body);
    match wahook_webhook::handle(&service, request).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let bytes: Vec<u8> = match body {
                Body::Text(t) => t.into_bytes(),
                Body::Binary(b) => b,
                _ => Vec::new(),
            };
            Response::from_parts(parts, axum::body::Body::from(bytes))
        }
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The context Lambda gives an invocation: its deadline is the function's timeout from now.
pub fn invocation_context(function_timeout: std::time::Duration) -> Context {
    let mut context = Context::default();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    context.deadline = now_ms + function_timeout.as_millis() as u64;
    context
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    pub received: usize,
    /// Reported as failed by the handler: left on the queue to come back.
    pub failed: usize,
    pub deleted: usize,
    /// Receipt handles of the failed records (to make them visible again in tests and demos).
    pub failed_handles: Vec<String>,
}

/// Feeds the sends queue to the sender handler as Lambda's event source mapping would.
#[derive(Clone)]
pub struct SqsPoller {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
    region: String,
    consumer: Consumer,
    /// Each batch gets Lambda's deadline, this long from its start, as the real runtime gives it.
    function_timeout: std::time::Duration,
}

/// The function an event source mapping feeds.
#[derive(Clone)]
enum Consumer {
    Sender(Arc<Sender>),
    Media(Arc<MediaService>),
}

impl SqsPoller {
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue_url: String,
        region: String,
        sender: Arc<Sender>,
    ) -> Self {
        Self::feeding(client, queue_url, region, Consumer::Sender(sender))
    }

    /// A poller that feeds the media function (its queue is the media queue).
    pub fn for_media(
        client: aws_sdk_sqs::Client,
        queue_url: String,
        region: String,
        media: Arc<MediaService>,
    ) -> Self {
        Self::feeding(client, queue_url, region, Consumer::Media(media))
    }

    fn feeding(
        client: aws_sdk_sqs::Client,
        queue_url: String,
        region: String,
        consumer: Consumer,
    ) -> Self {
        // arn:aws:sqs:<region>:<account>:<name>, from the URL's last two segments.
        let mut parts = queue_url.rsplit('/');
        let name = parts.next().unwrap_or_default().to_owned();
        let account = parts.next().unwrap_or("000000000000").to_owned();
        let queue_arn = format!("arn:aws:sqs:{region}:{account}:{name}");
        Self {
            client,
            queue_url,
            queue_arn,
            region,
            consumer,
            function_timeout: std::time::Duration::from_secs(30),
        }
    }

    /// The sender function's timeout (`WAHOOK_FUNCTION_TIMEOUT_SECONDS`), for each batch's deadline.
    pub fn with_function_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.function_timeout = timeout;
        self
    }

    /// Receives one batch (up to 10, waiting up to `wait_secs` for the first) and runs it through the
    /// handler.
    pub async fn poll_once(&self, wait_secs: i32) -> Result<PollReport, String> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_secs)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::Error::from(e).to_string())?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(PollReport::default());
        }
        let mut event = SqsEvent::default();
        let mut handles: HashMap<String, String> = HashMap::new();
        for m in &messages {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id.clone();
            record.receipt_handle = m.receipt_handle.clone();
            record.body = m.body.clone();
            record.md5_of_body = m.md5_of_body.clone();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(self.queue_arn.clone());
            record.aws_region = Some(self.region.clone());
            record.attributes = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            if let (Some(id), Some(handle)) = (&m.message_id, &m.receipt_handle) {
                handles.insert(id.clone(), handle.clone());
            }
            event.records.push(record);
        }
        let event = LambdaEvent::new(event, invocation_context(self.function_timeout));
        let response = match &self.consumer {
            Consumer::Sender(sender) => wahook_sender::handle(sender, event).await,
            Consumer::Media(media) => wahook_media::handle(media, event).await,
        }
        .map_err(|e| format!("the handler failed the whole batch: {e}"))?;
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        let mut report = PollReport {
            received: messages.len(),
            failed: failed.len(),
            ..PollReport::default()
        };
        for (id, handle) in handles {
            if failed.contains(&id) {
                report.failed_handles.push(handle);
                continue;
            }
            self.client
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(handle)
                .send()
                .await
                .map_err(|e| aws_sdk_sqs::Error::from(e).to_string())?;
            report.deleted += 1;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_as_api_gateway_decodes_them() {
        let uri: Uri = "/webhook?hub.mode=subscribe&hub.challenge=a%2Bb%3D&hub.verify_token=t+k"
            .parse()
            .unwrap();
        let req = lambda_request(Method::GET, &uri, HeaderMap::new(), Bytes::new());
        let q = req.query_string_parameters();
        assert_eq!(q.first("hub.mode"), Some("subscribe"));
        assert_eq!(q.first("hub.challenge"), Some("a+b="));
        assert_eq!(q.first("hub.verify_token"), Some("t k"));
    }

    #[test]
    fn the_body_reaches_the_handler_byte_for_byte() {
        let body = Bytes::from_static(br#"{"a":"mang\u00e9 https:\/\/x"}"#);
        let req = lambda_request(
            Method::POST,
            &"/webhook".parse().unwrap(),
            HeaderMap::new(),
            body.clone(),
        );
        assert_eq!(req.body().as_ref(), body.as_ref());
    }
}
