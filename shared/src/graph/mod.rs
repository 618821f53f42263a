//! The Graph API client: `POST /{version}/{phone_number_id}/messages`, Meta's answers parsed, and
//! failures told apart by whether the request can have reached Meta.

pub mod errors;
pub mod media;
pub mod message;
pub mod templates;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

pub use errors::{classify, retry_delay_secs, ErrorClass};

use crate::domain::ids::{PhoneNumberId, Wamid};
use crate::secret::SecretString;
use crate::telemetry::error_chain;

pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.facebook.com";
/// v25.0: released 2026-02-18, supported until 2028-07-29 (v26.0 exists; its end date is not announced).
pub const DEFAULT_GRAPH_API_VERSION: &str = "v25.0";

/// Where and how to call Graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphConfig {
    pub base_url: String,
    pub api_version: String,
    /// The whole request, answer included.
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_GRAPH_BASE_URL.into(),
            api_version: DEFAULT_GRAPH_API_VERSION.into(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// The most of an answer we read. Meta's answers are well under 4 KiB; anything bigger is not Meta
/// (a proxy's page, a misconfigured base URL) and is not worth the memory.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why a Graph client could not be built (at start-up, before any send).
#[derive(Debug, thiserror::Error)]
pub enum GraphSetupError {
    #[error("could not build the HTTP client for the Graph API: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("WAHOOK_GRAPH_BASE_URL {url:?} {problem}: use https://graph.facebook.com (plain http only for a simulator on 127.0.0.1 or localhost)")]
    BaseUrl { url: String, problem: &'static str },
    #[error("no trusted root certificates, so no TLS connection to {url} can succeed: if SSL_CERT_FILE or SSL_CERT_DIR is set, it replaces the system's certificates and must name a readable PEM bundle or directory; otherwise install the ca-certificates package")]
    NoTrustedRoots { url: String },
}

/// The bearer token goes to `base_url` only over TLS, except to a simulator on this machine.
pub fn check_base_url(url: &str) -> Result<(), GraphSetupError> {
    let bad = |problem| {
        Err(GraphSetupError::BaseUrl {
            url: url.to_owned(),
            problem,
        })
    };
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return bad("is not a URL");
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return bad("carries credentials");
    }
    let Some(host) = parsed.host_str() else {
        return bad("has no host");
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => bad("is plain http to another machine (the access token would travel in clear)"),
        _ => bad("is not http(s)"),
    }
}

/// Meta accepted the message (delivery comes later, in status webhooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub wamid: Wamid,
    /// Meta's canonical id of the recipient (may differ from what we sent, e.g. in Mexico or Brazil).
    pub wa_id: Option<String>,
    /// The recipient's business-scoped user id, when Meta names it.
    pub user_id: Option<String>,
    /// `accepted` or `held_for_quality_assessment` (template pacing).
    pub message_status: Option<String>,
}

/// Where a message is posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Endpoint {
    /// `/messages`: everything.
    #[default]
    Messages,
    /// `/marketing_messages`: the Marketing Messages API, for marketing templates only.
    MarketingMessages,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Messages => "messages",
            Endpoint::MarketingMessages => "marketing_messages",
        }
    }
}

/// Meta's error object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaApiError {
    pub http_status: u16,
    pub code: Option<i64>,
    pub message: String,
    pub details: Option<String>,
    pub fbtrace_id: Option<String>,
    pub class: ErrorClass,
}

/// Why a send did not end in [`Accepted`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("Meta refused the send: HTTP {} code {:?}: {}", .0.http_status, .0.code, .0.message)]
    Meta(MetaApiError),
    /// The request never left (no connection): safe to send again.
    #[error("could not reach Graph ({0}); the request was not sent")]
    NotSent(String),
    /// The request may have reached Meta but no usable answer came back: it may have been sent.
    #[error("no usable answer from Graph ({0}); the message may or may not have been sent")]
    Unknown(String),
}

/// Calls Graph with the access token. Cheap to clone (one connection pool, one token: a re-read
/// token reaches every clone).
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    config: GraphConfig,
    token: Arc<RwLock<SecretString>>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("config", &self.config)
            .field("token", &self.token)
            .finish()
    }
}

#[derive(Deserialize)]
struct SuccessBody {
    #[serde(default, deserialize_with = "lenient_contacts")]
    contacts: Vec<SuccessContact>,
    #[serde(default)]
    messages: Vec<SuccessMessage>,
}

/// Read leniently: a field of an unexpected type is ignored, never a reason to lose the wamid.
#[derive(Deserialize)]
struct SuccessContact {
    #[serde(default)]
    wa_id: Value,
    #[serde(default)]
    user_id: Value,
}

#[derive(Deserialize)]
struct SuccessMessage {
    id: Option<String>,
    message_status: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorObject,
}

#[derive(Deserialize)]
struct ErrorObject {
    message: Option<String>,
    code: Option<i64>,
    error_data: Option<ErrorData>,
    fbtrace_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorData {
    details: Option<String>,
}

impl GraphClient {
    pub fn new(config: GraphConfig, token: SecretString) -> Result<Self, GraphSetupError> {
        check_base_url(&config.base_url)?;
        // check_base_url has parsed it; the scheme is read the same way (it trims and lowercases).
        let over_tls =
            reqwest::Url::parse(&config.base_url).is_ok_and(|url| url.scheme() == "https");
        if over_tls && crate::tls::trusted_root_count() == 0 {
            return Err(GraphSetupError::NoTrustedRoots {
                url: config.base_url,
            });
        }
        let http = crate::tls::https_client_builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            // Graph never redirects a send; following one would hand the bearer token (and the
            // message) to wherever a proxy or a hijacked DNS name points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wahook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(GraphSetupError::HttpClient)?;
        Ok(Self {
            http,
            config,
            token: Arc::new(RwLock::new(token)),
        })
    }

    pub fn config(&self) -> &GraphConfig {
        &self.config
    }

    /// Replaces the access token (re-read after Meta refused it). `true` if it changed.
    pub fn set_token(&self, token: SecretString) -> bool {
        let mut current = self.token.write().unwrap_or_else(|p| p.into_inner());
        let changed = current.expose() != token.expose();
        *current = token;
        changed
    }

    fn bearer(&self) -> SecretString {
        self.token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `POST {base}/{version}/{from}/messages` with `body` (Meta's message JSON).
    pub async fn send(&self, from: &PhoneNumberId, body: &Value) -> Result<Accepted, GraphError> {
        self.send_to(from, Endpoint::Messages, body).await
    }

    /// `POST {base}/{version}/{from}/{endpoint}` with `body`: the same answer and errors on both.
    pub async fn send_to(
        &self,
        from: &PhoneNumberId,
        endpoint: Endpoint,
        body: &Value,
    ) -> Result<Accepted, GraphError> {
        let url = format!(
            "{}/{}/{}/{}",
            self.config.base_url.trim_end_matches('/'),
            self.config.api_version,
            from.as_str(),
            endpoint.path()
        );
        let token = self.bearer();
        let mut response = self
            .http
            .post(url)
            .bearer_auth(token.expose())
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("a JSON value serializes"))
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        // Read in chunks up to the cap: a huge answer is not Meta's, and must not cost the memory.
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if bytes.len() + chunk.len() > MAX_ANSWER_BYTES => {
                    return Err(GraphError::Unknown(format!(
                        "HTTP {status} with an answer over {MAX_ANSWER_BYTES} bytes, which is not Meta's; the message may or may not have been sent"
                    )));
                }
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    return Err(GraphError::Unknown(format!(
                        "reading the answer failed: {}",
                        error_chain(&e)
                    )))
                }
            }
        }
        if (300..400).contains(&status) {
            // Redirects are not followed; the request was written, so Meta may have it.
            return Err(GraphError::Unknown(format!(
                "HTTP {status} (a redirect, not followed: check WAHOOK_GRAPH_BASE_URL)"
            )));
        }
        if (200..300).contains(&status) {
            return parse_success(&bytes);
        }
        let error = parse_error(status, &bytes);
        if error.code.is_none() && status >= 500 {
            // A gateway's 502/504 and the like, without Meta's error object: the request was written,
            // and may have reached Meta. Lost is lost: reconcile from status webhooks, never resend
            // blindly.
            return Err(GraphError::Unknown(format!(
                "{}; the request may have reached Meta",
                error.message
            )));
        }
        Err(GraphError::Meta(error))
    }
}

/// A connection that was never made cannot have sent anything; everything else might have.
fn transport_error(e: reqwest::Error) -> GraphError {
    let text = error_chain(&e);
    if e.is_connect() || e.is_builder() {
        GraphError::NotSent(text)
    } else {
        GraphError::Unknown(text)
    }
}

/// An answer read in chunks up to `cap` bytes (`what` names it in the error): a huge answer is not
/// Meta's, and must not cost the memory.
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
    what: &str,
) -> Result<Vec<u8>, GraphError> {
    let status = response.status().as_u16();
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        GraphError::Unknown(format!(
            "reading the answer failed: {}",
            error_chain(&e.without_url())
        ))
    })? {
        if bytes.len() + chunk.len() > cap {
            return Err(GraphError::Unknown(format!(
                "HTTP {status}: {what} over {cap} bytes is not Meta's"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn lenient_contacts<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<SuccessContact>, D::Error> {
    let raw = Value::deserialize(d)?;
    Ok(match raw {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
        _ => Vec::new(),
    })
}

fn parse_success(bytes: &[u8]) -> Result<Accepted, GraphError> {
    let body: SuccessBody = serde_json::from_slice(bytes)
        .map_err(|e| GraphError::Unknown(format!("a 2xx answer that is not Meta's JSON: {e}")))?;
    let message = body.messages.into_iter().next();
    let wamid = message
        .as_ref()
        .and_then(|m| m.id.as_deref())
        .and_then(|id| Wamid::parse(id).ok())
        .ok_or_else(|| GraphError::Unknown("a 2xx answer without a message id".into()))?;
    let contact = body.contacts.into_iter().next();
    let text = |v: &Value| v.as_str().map(str::to_owned);
    Ok(Accepted {
        wamid,
        wa_id: contact.as_ref().and_then(|c| text(&c.wa_id)),
        user_id: contact.as_ref().and_then(|c| text(&c.user_id)),
        message_status: message.and_then(|m| m.message_status),
    })
}

fn parse_error(status: u16, bytes: &[u8]) -> MetaApiError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(ErrorBody { error }) => MetaApiError {
            http_status: status,
            code: error.code,
            message: error.message.unwrap_or_else(|| "no message".into()),
            details: error.error_data.and_then(|d| d.details),
            fbtrace_id: error.fbtrace_id,
            class: classify(error.code, status),
        },
        Err(_) => MetaApiError {
            http_status: status,
            code: None,
            // Not Meta's words: a proxy's page may echo the request (the message text), so only
            // its size goes into reasons and logs.
            message: format!(
                "HTTP {status} without Meta's error object ({} bytes of something else)",
                bytes.len()
            ),
            details: None,
            fbtrace_id: None,
            class: classify(None, status),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_answer_gives_the_wamid_and_canonical_recipient() {
        let a = parse_success(
            br#"{"messaging_product":"whatsapp","contacts":[{"input":"+5215512345678","wa_id":"5215512345678"}],"messages":[{"id":"wamid.HBgL","message_status":"accepted"}]}"#,
        )
        .unwrap();
        assert_eq!(a.wamid.as_str(), "wamid.HBgL");
        assert_eq!(a.wa_id.as_deref(), Some("5215512345678"));
        assert_eq!(a.message_status.as_deref(), Some("accepted"));
    }

    #[test]
    fn a_2xx_we_cannot_read_means_the_outcome_is_unknown() {
        assert!(matches!(
            parse_success(b"<html>"),
            Err(GraphError::Unknown(_))
        ));
        assert!(matches!(
            parse_success(br#"{"messages":[]}"#),
            Err(GraphError::Unknown(_))
        ));
    }

    #[test]
    fn meta_error_objects_are_parsed_and_classified() {
        let e = parse_error(
            400,
            br#"{"error":{"message":"(#132001) Template name does not exist in the translation","type":"OAuthException","code":132001,"error_data":{"messaging_product":"whatsapp","details":"template name (order_shiped) does not exist in es_MX"},"fbtrace_id":"AbC"}}"#,
        );
        assert_eq!(e.code, Some(132_001));
        assert_eq!(e.class, ErrorClass::FixRequest);
        assert!(e.details.unwrap().contains("order_shiped"));
        let e = parse_error(503, b"Service Unavailable");
        assert_eq!((e.code, e.class), (None, ErrorClass::Transient));
        assert!(e.message.contains("HTTP 503"));
    }

    #[test]
    fn the_token_goes_over_tls_or_to_this_machine_only() {
        for ok in [
            "https://graph.facebook.com",
            "http://127.0.0.1:9000",
            "http://localhost:9000/",
            "http://[::1]:9000",
        ] {
            assert!(check_base_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://graph.facebook.com",
            "http://10.0.0.5:8080",
            "ftp://graph.facebook.com",
            "https://user:pw@graph.facebook.com",
            "graph.facebook.com",
        ] {
            let e = check_base_url(bad).unwrap_err().to_string();
            assert!(e.contains("WAHOOK_GRAPH_BASE_URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_new_token_reaches_every_clone() {
        let c = GraphClient::new(GraphConfig::default(), SecretString::new("old")).unwrap();
        let clone = c.clone();
        assert!(!c.set_token(SecretString::new("old")), "unchanged");
        assert!(c.set_token(SecretString::new("new")));
        assert_eq!(clone.bearer().expose(), "new");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let c = GraphClient::new(
            GraphConfig::default(),
            SecretString::new("EAAG-secret-token"),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("EAAG"));
    }
}
