//! A Meta simulator: what wahook talks to instead of Meta when run locally or tested.
//!
//! - `POST /{version}/{phone_number_id}/messages` answers like the Graph API: Meta's validation and
//!   error objects, wamids, `message_status` for templates. Addressing as in 2026: a BSUID in
//!   `recipient`, a phone in `to` wins over it; the answer's `wa_id` is Meta's spelling (Mexico's
//!   `+52…` comes back `521…`; `SimConfig::wa_ids` scripts other spellings).
//! - Faults scripted per recipient (`POST /_sim/faults`): 5xx, any Meta error code, a slow answer, a
//!   hang, or `lost_answer` (the message is accepted and its statuses flow, but the HTTP answer never
//!   comes: the case wahook must not turn into a duplicate).
//! - An account fault (`POST /_sim/account {"code":190}`, `DELETE` clears it): every send gets that
//!   Meta error until cleared, as when a token is revoked or billing fails.
//! - `GET /_sim/messages` lists what was accepted, with the wamids given.
//! - With a webhook target, accepted messages get signed status webhooks (sent → delivered → read),
//!   and `POST /_sim/inbound` / `POST /_sim/statuses` post signed webhooks on demand.
//!
//! Webhook bodies are written the way Meta writes them (ASCII only, `\uXXXX`, `\/`) and signed with
//! an HMAC computed here, independently of wahook's own code.

pub mod media;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

/// Where signed webhooks go.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub app_secret: String,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The bearer token sends must carry; `None` accepts any non-empty token.
    pub access_token: Option<String>,
    pub webhook: Option<WebhookTarget>,
    /// Delays after acceptance of the sent, delivered and read statuses (cumulative).
    pub status_delays: [Duration; 3],
    /// Approved template names; empty accepts any name.
    pub templates: Vec<String>,
    pub display_phone_number: String,
    pub waba_id: String,
    /// Numbers Meta knows by another `wa_id` (digits as sent → `wa_id`), beyond Mexico's rule: how
    /// a test scripts a spelling no rule of ours covers, so the send answer teaches an alias.
    pub wa_ids: HashMap<String, String>,
    /// The account's `marketing_messages_onboarding_status` (`GET /{waba}`); `None` leaves it out.
    pub marketing_onboarding: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            access_token: None,
            webhook: None,
            status_delays: [
                Duration::from_millis(100),
                Duration::from_millis(300),
                Duration::from_millis(800),
            ],
            templates: Vec::new(),
            display_phone_number: "15550783881".into(),
            waba_id: "102290129340398".into(),
            wa_ids: Default::default(),
            marketing_onboarding: None,
        }
    }
}

/// A scripted misbehaviour for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500 with code 2 ("service temporarily unavailable").
    ServerError,
    /// HTTP 400 with this Meta error code (130429, 131056, 131047, 131050, 132001…).
    Code(i64),
    /// Success, after this long.
    Slow(Duration),
    /// No answer at all, nothing accepted.
    Hang,
    /// Accepted (listed, statuses sent), but the answer never comes back.
    LostAnswer,
    /// Accepted (listed, statuses sent), but a proxy in front answers 502 with an HTML page, no
    /// Meta error object: the request reached Meta.
    BadGateway,
    /// Accepted (listed, statuses sent), then the connection breaks mid-answer: the request was
    /// read, the answer never arrives whole.
    Reset,
    /// Accepted, but held by template or portfolio pacing: `message_status`
    /// `held_for_quality_assessment` in the answer.
    Paced,
}

impl Fault {
    /// `5xx`, a code like `130429`, `slow:800` (ms), `hang`, `lost_answer`, `502`.
    pub fn parse(s: &str) -> Option<Fault> {
        Some(match s {
            "5xx" => Fault::ServerError,
            "hang" => Fault::Hang,
            "lost_answer" => Fault::LostAnswer,
            "502" => Fault::BadGateway,
            "reset" => Fault::Reset,
            "paced" => Fault::Paced,
            _ => match s.strip_prefix("slow:") {
                Some(ms) => Fault::Slow(Duration::from_millis(ms.parse().ok()?)),
                None => Fault::Code(s.parse().ok()?),
            },
        })
    }
}

/// A message the simulator accepted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AcceptedMessage {
    pub wamid: String,
    pub phone_number_id: String,
    /// The request body as sent.
    pub body: Value,
    /// When the request arrived, in Unix milliseconds.
    pub received_at_ms: u128,
    /// `messages`, or `marketing_messages` (the Marketing Messages API).
    #[serde(default)]
    pub endpoint: String,
}

#[derive(Default)]
struct SimState {
    config: Mutex<Option<SimConfig>>,
    accepted: Mutex<Vec<AcceptedMessage>>,
    faults: Mutex<HashMap<String, VecDeque<Fault>>>,
    /// A Meta error code every send gets, whoever the recipient, until cleared: the account is
    /// broken (190 token revoked, 131042 payment, 131031 locked…).
    account_fault: Mutex<Option<i64>>,
    /// Every `POST …/messages` that reached the simulator, answered or refused.
    calls: AtomicU64,
    /// Templates as Meta knows them, by (name, language): set at `POST /_sim/templates`, which posts
    /// the template webhooks as Meta does. A send of one that is not approved is refused.
    catalogue: Mutex<HashMap<(String, String), SimTemplate>>,
    /// Pages of `GET …/message_templates` served.
    template_pages: AtomicU64,
    counter: AtomicU64,
    http: Option<reqwest::Client>,
    /// Media files by id (`POST /_sim/media`), the download URLs given out (token → id, expiry),
    /// how many of the next URLs are given out already expired, and what was looked up and served.
    media: Mutex<HashMap<String, media::StoredMedia>>,
    media_urls: Mutex<HashMap<String, (String, std::time::Instant)>>,
    expire_media_urls: AtomicU64,
    media_lookups: AtomicU64,
    media_downloads: AtomicU64,
    /// Files uploaded for sending, in order.
    uploads: Mutex<Vec<media::UploadedMedia>>,
}

impl SimState {
    fn config(&self) -> SimConfig {
        self.config.lock().unwrap().clone().unwrap_or_default()
    }

    fn next_fault(&self, to: &str) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap();
        let queue = faults.get_mut(&digits(to))?;
        queue.pop_front()
    }

    fn add_media(&self, file: media::SimMedia) -> (String, String) {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let id = format!(
            "{}{:06}",
            9_000_000_000u64 + u64::from(std::process::id()),
            n
        );
        let stored = media::StoredMedia::new(file);
        let sha256 = stored.sha256.clone();
        self.media.lock().unwrap().insert(id.clone(), stored);
        (id, sha256)
    }

    fn wamid(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        format!("wamid.SIM{:016X}{:08}", std::process::id(), n)
    }
}

/// A running simulator.
pub struct MetaSim {
    addr: SocketAddr,
    state: Arc<SimState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl MetaSim {
    /// Listens on `bind` (port 0 for any free port) until stopped.
    pub async fn start(bind: SocketAddr, config: SimConfig) -> std::io::Result<MetaSim> {
        // reqwest is built without a crypto provider in this workspace (wahook::tls hands its own
        // clients a configuration); the simulator, which depends on nothing of wahook, installs
        // aws-lc-rs as the process default. Another caller may have installed one first: fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let state = Arc::new(SimState {
            config: Mutex::new(Some(config)),
            http: Some(
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .map_err(std::io::Error::other)?,
            ),
            ..SimState::default()
        });
        let app = Router::new()
            .route("/{version}/{number}/messages", post(send_message))
            .route(
                "/{version}/{number}/marketing_messages",
                post(send_marketing_message),
            )
            .route("/{version}/{waba}", get(get_account))
            .route("/_sim/messages", get(list_messages))
            .route("/_sim/faults", post(add_fault).delete(clear_faults))
            .route("/_sim/account", post(set_account).delete(clear_account))
            .route("/_sim/inbound", post(post_inbound))
            .route("/_sim/statuses", post(post_status))
            .route("/_sim/templates", post(post_template))
            .route("/{version}/{waba}/message_templates", get(list_templates))
            // Meta takes documents up to 100 MB; axum's default body limit is 2 MB.
            .route(
                "/{version}/{number}/media",
                post(media::upload).layer(axum::extract::DefaultBodyLimit::max(110 * 1024 * 1024)),
            )
            .route("/_sim/media", post(media::post_media))
            .route("/_sim/media/{token}", get(media::download))
            .route("/_sim/health", get(|| async { "ok" }))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(MetaSim {
            addr,
            state,
            shutdown: Some(tx),
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What was accepted so far, in order.
    pub fn accepted(&self) -> Vec<AcceptedMessage> {
        self.state.accepted.lock().unwrap().clone()
    }

    /// Every send gets Meta's `code` (an account-level error) until `None` clears it.
    pub fn set_account_fault(&self, code: Option<i64>) {
        *self.state.account_fault.lock().unwrap() = code;
    }

    /// How many send requests reached the simulator, refused ones included.
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// The next `times` sends to `to` misbehave as `fault`.
    pub fn script(&self, to: &str, fault: Fault, times: usize) {
        let mut faults = self.state.faults.lock().unwrap();
        let queue = faults.entry(digits(to)).or_default();
        queue.extend(std::iter::repeat_n(fault, times));
    }

    /// Registers a media file as Meta would hold one a user sent: its id and the SHA-256 webhooks
    /// carry (the true one unless `claimed_sha256` says otherwise).
    pub fn add_media(&self, file: media::SimMedia) -> (String, String) {
        self.state.add_media(file)
    }

    /// Files uploaded for sending (`POST /{version}/{number}/media`), in order.
    pub fn uploads(&self) -> Vec<media::UploadedMedia> {
        self.state.uploads.lock().unwrap().clone()
    }

    /// Meta deletes the file: `GET /{media_id}` answers 404, code 100.
    pub fn delete_media(&self, id: &str) {
        if let Some(m) = self.state.media.lock().unwrap().get_mut(id) {
            m.deleted = true;
        }
    }

    /// The next `n` download URLs are given out already expired.
    pub fn expire_next_media_urls(&self, n: u64) {
        self.state.expire_media_urls.store(n, Ordering::SeqCst);
    }

    /// `GET /{media_id}` lookups and downloads served so far.
    pub fn media_counts(&self) -> (u64, u64) {
        (
            self.state.media_lookups.load(Ordering::SeqCst),
            self.state.media_downloads.load(Ordering::SeqCst),
        )
    }

    /// Changes where webhooks go (e.g. once the webhook is up).
    pub fn set_webhook(&self, target: Option<WebhookTarget>) {
        let mut config = self.state.config.lock().unwrap();
        if let Some(c) = config.as_mut() {
            c.webhook = target;
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

fn digits(to: &str) -> String {
    to.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect()
}

/// Meta's error object.
fn meta_error(status: StatusCode, code: i64, message: &str, details: &str) -> Response {
    let body = json!({
        "error": {
            "message": format!("(#{code}) {message}"),
            "type": "OAuthException",
            "code": code,
            "error_data": { "messaging_product": "whatsapp", "details": details },
            "fbtrace_id": "AsimFbTraceId0"
        }
    });
    (status, Json(body)).into_response()
}

/// Whether the request's bearer token is the configured one (any non-empty one when none is set).
fn token_ok(config: &SimConfig, headers: &HeaderMap) -> bool {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    !token.is_empty() && config.access_token.as_deref().is_none_or(|t| t == token)
}

async fn send_message(
    State(state): State<Arc<SimState>>,
    Path((_version, number)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    send(state, number, headers, body, "messages").await
}

/// `POST …/marketing_messages`: the same send, for marketing templates only.
async fn send_marketing_message(
    State(state): State<Arc<SimState>>,
    Path((_version, number)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let is_template = serde_json::from_slice::<Value>(&body)
        .ok()
        .is_some_and(|v| v["type"].as_str() == Some("template"));
    if !is_template {
        state.calls.fetch_add(1, Ordering::SeqCst);
        return meta_error(
            StatusCode::BAD_REQUEST,
            100,
            "Invalid parameter",
            "the Marketing Messages API sends marketing templates only",
        );
    }
    send(state, number, headers, body, "marketing_messages").await
}

/// Meta's answer to a read of an account with a bad token, or of another account.
fn account_refusal(config: &SimConfig, headers: &HeaderMap, waba: &str) -> Option<Response> {
    if !token_ok(config, headers) {
        return Some(meta_error(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token",
            "",
        ));
    }
    (waba != config.waba_id).then(|| {
        meta_error(
            StatusCode::BAD_REQUEST,
            100,
            "Unsupported get request",
            "no such WhatsApp Business Account",
        )
    })
}

/// `GET /{version}/{waba}`: the account, with its Marketing Messages onboarding when set.
async fn get_account(
    State(state): State<Arc<SimState>>,
    Path((_version, waba)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = media::lookup(&state, &waba, &headers) {
        return answer;
    }
    let config = state.config();
    if let Some(refusal) = account_refusal(&config, &headers, &waba) {
        return refusal;
    }
    let mut account = json!({ "id": waba });
    if let Some(status) = &config.marketing_onboarding {
        account["marketing_messages_onboarding_status"] = json!(status);
    }
    Json(account).into_response()
}

async fn send(
    state: Arc<SimState>,
    number: String,
    headers: HeaderMap,
    body: axum::body::Bytes,
    endpoint: &str,
) -> Response {
    let received_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    state.calls.fetch_add(1, Ordering::SeqCst);
    let config = state.config();
    if !token_ok(&config, &headers) {
        return meta_error(
            StatusCode::UNAUTHORIZED,
            190,
            "Invalid OAuth access token - Cannot parse access token",
            "Invalid OAuth access token",
        );
    }
    let account_fault = *state.account_fault.lock().unwrap();
    if let Some(code) = account_fault {
        let (status, message) = match code {
            190 => (StatusCode::UNAUTHORIZED, "Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons."),
            131_042 => (StatusCode::BAD_REQUEST, "Business eligibility payment issue"),
            131_031 => (StatusCode::BAD_REQUEST, "Business Account locked"),
            133_010 => (StatusCode::BAD_REQUEST, "Phone number Not Registered"),
            10 | 200..=299 => (StatusCode::FORBIDDEN, "Application does not have permission for this action"),
            _ => (StatusCode::BAD_REQUEST, "Simulated account error"),
        };
        return meta_error(status, code, message, "simulated account fault");
    }
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return meta_error(
            StatusCode::BAD_REQUEST,
            100,
            "Invalid parameter",
            "the phone number id in the path is not valid",
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return meta_error(
            StatusCode::BAD_REQUEST,
            100,
            "Invalid parameter",
            "the body is not JSON",
        );
    };
    if request["messaging_product"] != "whatsapp" {
        return meta_error(
            StatusCode::BAD_REQUEST,
            100,
            "The parameter messaging_product is required.",
            "messaging_product must be whatsapp",
        );
    }
    // A BSUID goes in `recipient`; a phone in `to` wins when both are set (§12).
    let Some(to) = addressee(&request) else {
        return meta_error(
            StatusCode::BAD_REQUEST,
            100,
            "The parameter to is required.",
            "to or recipient is required",
        );
    };
    if request["to"].as_str().is_some_and(is_bsuid_form) {
        return meta_error(
            StatusCode::BAD_REQUEST,
            131_009,
            "Parameter value is not valid",
            "to must be a phone number; send a business-scoped user id in recipient",
        );
    }
    let is_bsuid = is_bsuid_form(to);
    let phone_digits = meta_wa_id(&config, to);
    if !is_bsuid && !(6..=15).contains(&phone_digits.len()) {
        return meta_error(
            StatusCode::BAD_REQUEST,
            131_009,
            "Parameter value is not valid",
            "to is not a valid WhatsApp user phone number",
        );
    }
    let kind = request["type"].as_str().unwrap_or("text");
    match kind {
        "template" => {
            let name = request["template"]["name"].as_str();
            let language = request["template"]["language"]["code"].as_str();
            let (Some(name), Some(language)) = (name, language) else {
                return meta_error(
                    StatusCode::BAD_REQUEST,
                    131_008,
                    "Required parameter is missing",
                    "template.name and template.language.code are required",
                );
            };
            let known = state
                .catalogue
                .lock()
                .unwrap()
                .get(&(name.to_owned(), language.to_owned()))
                .cloned();
            if let Some(t) = known {
                let refusal = match t.status.as_str() {
                    "APPROVED" | "REINSTATED" | "UNARCHIVED" | "FLAGGED" => None,
                    "PAUSED" => Some((
                        132_015,
                        "Template is paused",
                        "template is paused due to low quality",
                    )),
                    "DISABLED" => Some((
                        132_016,
                        "Template is disabled",
                        "template was disabled due to low quality",
                    )),
                    _ => Some((
                        132_001,
                        "Template name does not exist in the translation",
                        "template is not approved",
                    )),
                };
                if let Some((code, message, details)) = refusal {
                    return meta_error(StatusCode::BAD_REQUEST, code, message, details);
                }
                if let Some((want, given)) = body_parameter_mismatch(&t, &request["template"]) {
                    return meta_error(
                        StatusCode::BAD_REQUEST,
                        132_000,
                        "Number of parameters does not match the expected number of params",
                        &format!("body: number of localizable_params ({given}) does not match the expected number of params ({want})"),
                    );
                }
            } else if !config.templates.is_empty() && !config.templates.iter().any(|t| t == name) {
                return meta_error(
                    StatusCode::NOT_FOUND,
                    132_001,
                    "Template name does not exist in the translation",
                    &format!("template name ({name}) does not exist in {language}"),
                );
            }
        }
        "image" | "video" | "audio" | "document" | "sticker" => {
            if let Some(refusal) = media::check_media_send(&state, &number, kind, &request[kind]) {
                return refusal;
            }
        }
        "text" => match request["text"]["body"].as_str() {
            None => {
                return meta_error(
                    StatusCode::BAD_REQUEST,
                    131_008,
                    "Required parameter is missing",
                    "text.body is required",
                )
            }
            Some(b) if b.chars().count() > 4096 => {
                return meta_error(
                    StatusCode::BAD_REQUEST,
                    100,
                    "Param text['body'] must be at most 4096 characters long.",
                    "text.body is too long",
                )
            }
            Some(_) => {}
        },
        _ => {}
    }

    let mut lost = false;
    let mut bad_gateway = false;
    let mut reset = false;
    let mut paced = false;
    match state.next_fault(to) {
        Some(Fault::ServerError) => {
            return meta_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                2,
                "Service temporarily unavailable",
                "simulated outage",
            )
        }
        Some(Fault::Code(code)) => {
            let message = match code {
                130_429 => "Rate limit hit",
                131_056 => "(Business Account, Consumer Account) pair rate limit hit",
                131_047 => "Re-engagement message",
                131_050 => "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business",
                132_001 => "Template name does not exist in the translation",
                _ => "Simulated error",
            };
            return meta_error(StatusCode::BAD_REQUEST, code, message, "scripted fault");
        }
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Some(Fault::LostAnswer) => lost = true,
        Some(Fault::BadGateway) => bad_gateway = true,
        Some(Fault::Reset) => reset = true,
        Some(Fault::Paced) => paced = true,
        None => {}
    }

    let wamid = state.wamid();
    state.accepted.lock().unwrap().push(AcceptedMessage {
        wamid: wamid.clone(),
        phone_number_id: number.clone(),
        body: request.clone(),
        received_at_ms,
        endpoint: endpoint.to_owned(),
    });
    if let (Some(target), Some(http)) = (config.webhook.clone(), state.http.clone()) {
        tokio::spawn(send_statuses(
            http,
            target,
            config.clone(),
            number.clone(),
            wamid.clone(),
            request.clone(),
        ));
    }
    if lost {
        // The message went out; the answer never comes back.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if reset {
        // Headers promise a body; the stream fails, and the server drops the connection.
        let broken = futures::stream::once(async {
            Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("simulated reset"))
        });
        return Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("content-length", "512")
            .body(axum::body::Body::from_stream(broken))
            .expect("a valid response");
    }
    if bad_gateway {
        return (
            StatusCode::BAD_GATEWAY,
            [("content-type", "text/html")],
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
            .into_response();
    }
    let mut message = json!({ "id": wamid });
    if kind == "template" {
        message["message_status"] = json!(if paced {
            "held_for_quality_assessment"
        } else {
            "accepted"
        });
    }
    let contact = if is_bsuid {
        json!({ "input": to, "user_id": to })
    } else {
        json!({ "input": to, "wa_id": phone_digits })
    };
    Json(json!({ "messaging_product": "whatsapp", "contacts": [contact], "messages": [message] }))
        .into_response()
}

async fn list_messages(State(state): State<Arc<SimState>>) -> Json<Vec<AcceptedMessage>> {
    Json(state.accepted.lock().unwrap().clone())
}

#[derive(Deserialize)]
struct FaultRequest {
    to: String,
    fault: String,
    #[serde(default = "one")]
    times: usize,
}

fn one() -> usize {
    1
}

async fn add_fault(State(state): State<Arc<SimState>>, Json(req): Json<FaultRequest>) -> Response {
    let Some(fault) = Fault::parse(&req.fault) else {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "unknown fault {:?}: use 5xx, a Meta error code, slow:<ms>, hang, lost_answer, 502 or reset",
                req.fault
            ),
        )
            .into_response();
    };
    let mut faults = state.faults.lock().unwrap();
    faults
        .entry(digits(&req.to))
        .or_default()
        .extend(std::iter::repeat_n(fault, req.times));
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct AccountFaultRequest {
    /// The Meta error code every send gets (190, 131042, 131031, 133010…).
    code: i64,
}

async fn set_account(
    State(state): State<Arc<SimState>>,
    Json(req): Json<AccountFaultRequest>,
) -> StatusCode {
    *state.account_fault.lock().unwrap() = Some(req.code);
    StatusCode::NO_CONTENT
}

async fn clear_account(State(state): State<Arc<SimState>>) -> StatusCode {
    *state.account_fault.lock().unwrap() = None;
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(state): State<Arc<SimState>>) -> StatusCode {
    state.faults.lock().unwrap().clear();
    StatusCode::NO_CONTENT
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Compact JSON the way Meta writes webhooks: non-ASCII as `\uXXXX` (surrogate pairs beyond the BMP)
/// and `/` as `\/`. Outside strings JSON has neither, so escaping the whole text is safe.
pub fn meta_json(value: &Value) -> String {
    let compact = value.to_string();
    let mut out = String::with_capacity(compact.len() + 16);
    for c in compact.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

/// `sha256=<hex>` over the exact body, as Meta signs it.
pub fn signature(app_secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn envelope(config: &SimConfig, number: &str, field: &str, value: Value) -> Value {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] =
        json!({ "display_phone_number": config.display_phone_number, "phone_number_id": number });
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": config.waba_id, "changes": [{ "value": value, "field": field }] }]
    })
}

/// Posts a signed webhook; returns the HTTP status the webhook answered.
pub async fn post_webhook(
    http: &reqwest::Client,
    target: &WebhookTarget,
    payload: &Value,
) -> Result<u16, String> {
    let body = meta_json(payload);
    let response = http
        .post(&target.url)
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            signature(&target.app_secret, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| format!("could not post to {}: {e}", target.url))?;
    Ok(response.status().as_u16())
}

/// Who a send is addressed to: the phone in `to` when set, else the BSUID in `recipient`.
fn addressee(request: &Value) -> Option<&str> {
    request["to"]
        .as_str()
        .or_else(|| request["recipient"].as_str())
}

fn is_bsuid_form(id: &str) -> bool {
    id.as_bytes().get(2) == Some(&b'.')
}

/// Meta's `wa_id` for a phone as sent: digits only, and a Mexican mobile written `+52` and ten
/// digits comes back as `521` and ten digits, as Meta answers; a scripted `wa_ids` entry wins.
fn meta_wa_id(config: &SimConfig, to: &str) -> String {
    let digits: String = to.chars().filter(char::is_ascii_digit).collect();
    if let Some(wa_id) = config.wa_ids.get(&digits) {
        return wa_id.clone();
    }
    match digits.strip_prefix("52") {
        Some(national) if national.len() == 10 => format!("521{national}"),
        _ => digits,
    }
}

fn status_value(
    config: &SimConfig,
    wamid: &str,
    status: &str,
    request: &Value,
    extra: Value,
) -> Value {
    let to = addressee(request).unwrap_or_default();
    let mut item = json!({ "id": wamid, "status": status, "timestamp": now_secs().to_string() });
    if is_bsuid_form(to) {
        item["recipient_user_id"] = json!(to);
    } else {
        item["recipient_id"] = json!(meta_wa_id(config, to));
    }
    if let Some(bsuid) = request["recipient"].as_str().filter(|r| is_bsuid_form(r)) {
        item["recipient_user_id"] = json!(bsuid);
    }
    if let Some(cb) = request["biz_opaque_callback_data"].as_str() {
        item["biz_opaque_callback_data"] = json!(cb);
    }
    if status != "read" && status != "failed" {
        let category = if request["type"] == "template" {
            "utility"
        } else {
            "service"
        };
        item["pricing"] = json!({ "billable": category != "service", "pricing_model": "PMP", "category": category, "type": "regular" });
    }
    if let Some(obj) = extra.as_object() {
        for (k, v) in obj {
            item[k] = v.clone();
        }
    }
    json!({ "statuses": [item] })
}

async fn send_statuses(
    http: reqwest::Client,
    target: WebhookTarget,
    config: SimConfig,
    number: String,
    wamid: String,
    request: Value,
) {
    for (delay, status) in config
        .status_delays
        .iter()
        .zip(["sent", "delivered", "read"])
    {
        tokio::time::sleep(*delay).await;
        let payload = envelope(
            &config,
            &number,
            "messages",
            status_value(&config, &wamid, status, &request, json!({})),
        );
        if let Err(e) = post_webhook(&http, &target, &payload).await {
            tracing::warn!("status webhook {status} for {wamid} failed: {e}");
        }
    }
}

#[derive(Deserialize)]
struct InboundRequest {
    /// The user's phone (E.164 with or without +); omit for a username user.
    from: Option<String>,
    /// The user's business-scoped id.
    from_user_id: Option<String>,
    #[serde(default = "default_name")]
    name: String,
    /// Text of a text message.
    text: Option<String>,
    /// Label of a quick-reply tap (e.g. "Stop promotions").
    button: Option<String>,
    /// Include a Click-to-WhatsApp ad referral.
    #[serde(default)]
    referral: bool,
    /// A media message: the id of a file registered with `POST /_sim/media`.
    media: Option<InboundMedia>,
    phone_number_id: String,
}

#[derive(Deserialize)]
struct InboundMedia {
    /// image, video, audio, document or sticker.
    kind: String,
    id: String,
    caption: Option<String>,
    filename: Option<String>,
}

fn default_name() -> String {
    "Sim User".into()
}

async fn post_inbound(
    State(state): State<Arc<SimState>>,
    Json(req): Json<InboundRequest>,
) -> Response {
    let config = state.config();
    let (Some(target), Some(http)) = (config.webhook.clone(), state.http.clone()) else {
        return (
            StatusCode::CONFLICT,
            "no webhook target configured (WAHOOK_META_SIM_WEBHOOK_URL)",
        )
            .into_response();
    };
    let wamid = state.wamid();
    let phone = req
        .from
        .as_deref()
        .map(|f| f.trim_start_matches('+').to_owned());
    let mut contact = json!({ "profile": { "name": req.name } });
    let mut message = json!({ "id": wamid, "timestamp": now_secs().to_string() });
    if let Some(p) = &phone {
        contact["wa_id"] = json!(p);
        message["from"] = json!(p);
    }
    if let Some(u) = &req.from_user_id {
        contact["user_id"] = json!(u);
        message["from_user_id"] = json!(u);
    }
    match (&req.text, &req.button) {
        _ if req.media.is_some() => {
            let m = req.media.as_ref().expect("checked");
            let Some(file) = state.media.lock().unwrap().get(&m.id).cloned() else {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("no media {} (register it with POST /_sim/media)", m.id),
                )
                    .into_response();
            };
            let mut object = json!({ "id": m.id, "mime_type": file.media.mime_type });
            if !file.media.no_sha256 {
                object["sha256"] = json!(file.sha256);
            }
            if let Some(c) = &m.caption {
                object["caption"] = json!(c);
            }
            if let Some(f) = &m.filename {
                object["filename"] = json!(f);
            }
            message["type"] = json!(m.kind);
            message[m.kind.as_str()] = object;
        }
        (_, Some(label)) => {
            message["type"] = json!("button");
            message["button"] = json!({ "text": label, "payload": label });
        }
        (text, None) => {
            message["type"] = json!("text");
            message["text"] = json!({ "body": text.clone().unwrap_or_else(|| "Hola".into()) });
        }
    }
    if req.referral {
        message["referral"] = json!({
            "source_url": "https://fb.me/sim-ad", "source_id": "120200000000000001", "source_type": "ad",
            "headline": "Simulated ad", "body": "Write to us", "media_type": "image",
            "ctwa_clid": "ARAkSimulatedClickId"
        });
    }
    let payload = envelope(
        &config,
        &req.phone_number_id,
        "messages",
        json!({ "contacts": [contact], "messages": [message] }),
    );
    match post_webhook(&http, &target, &payload).await {
        Ok(status) => Json(json!({ "wamid": wamid, "webhook_status": status })).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e).into_response(),
    }
}

#[derive(Deserialize)]
struct StatusRequest {
    wamid: String,
    status: String,
    error_code: Option<i64>,
}

/// Posts a status for a message the simulator accepted (e.g. a `failed` with 131050).
async fn post_status(
    State(state): State<Arc<SimState>>,
    Json(req): Json<StatusRequest>,
) -> Response {
    let config = state.config();
    let (Some(target), Some(http)) = (config.webhook.clone(), state.http.clone()) else {
        return (StatusCode::CONFLICT, "no webhook target configured").into_response();
    };
    let accepted = state
        .accepted
        .lock()
        .unwrap()
        .iter()
        .find(|m| m.wamid == req.wamid)
        .cloned();
    let Some(accepted) = accepted else {
        return (
            StatusCode::NOT_FOUND,
            format!("no accepted message {}", req.wamid),
        )
            .into_response();
    };
    let extra = match req.error_code {
        Some(code) => {
            json!({ "errors": [{ "code": code, "title": "Simulated failure", "message": "Simulated failure", "error_data": { "details": "scripted" } }] })
        }
        None => json!({}),
    };
    let value = status_value(&config, &req.wamid, &req.status, &accepted.body, extra);
    let payload = envelope(&config, &accepted.phone_number_id, "messages", value);
    match post_webhook(&http, &target, &payload).await {
        Ok(status) => Json(json!({ "webhook_status": status })).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e).into_response(),
    }
}

/// A template in the simulator's catalogue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SimTemplate {
    pub name: String,
    pub language: String,
    /// Meta's status word: `APPROVED`, `PAUSED`, `DISABLED`…
    pub status: String,
    /// Meta's category word: `MARKETING`, `UTILITY`, `AUTHENTICATION`.
    pub category: String,
    /// Meta's components (`HEADER`, `BODY` with `{{1}}` variables, `BUTTONS`…), listed by
    /// `GET …/message_templates`; empty: none known, the listing leaves them out and sends are
    /// not checked against them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Value>,
}

/// The simulator's own count, independent of wahook's: the body's `{{…}}` variables against the
/// send's body parameters, as Meta answers 132000. `None` when they match or nothing is known.
fn body_parameter_mismatch(t: &SimTemplate, sent: &Value) -> Option<(usize, usize)> {
    let body = t
        .components
        .iter()
        .find(|c| c["type"].as_str() == Some("BODY"))?;
    let text = body["text"].as_str().unwrap_or_default();
    let mut vars: Vec<&str> = text
        .split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}").map(|(v, _)| v.trim()))
        .collect();
    vars.sort_unstable();
    vars.dedup();
    let given = sent["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"].as_str() == Some("body"))
        .map(|c| c["parameters"].as_array().map_or(0, Vec::len))
        .sum::<usize>();
    (vars.len() != given).then_some((vars.len(), given))
}

impl MetaSim {
    /// Sets a template as Meta knows it and posts the webhooks Meta would (the status, and the
    /// category change if it moved); returns the webhook's answers.
    pub async fn set_template(&self, template: SimTemplate) -> Result<Vec<u16>, String> {
        set_template(&self.state, template).await
    }

    /// Pages of the template listing served so far.
    pub fn template_pages(&self) -> u64 {
        self.state.template_pages.load(Ordering::SeqCst)
    }
}

async fn set_template(state: &SimState, t: SimTemplate) -> Result<Vec<u16>, String> {
    let previous = state
        .catalogue
        .lock()
        .unwrap()
        .insert((t.name.clone(), t.language.clone()), t.clone());
    let config = state.config();
    let (Some(target), Some(http)) = (config.webhook.clone(), state.http.clone()) else {
        return Ok(Vec::new());
    };
    let template_entry = |field: &str, value: Value| {
        json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": config.waba_id, "time": now_secs(), "changes": [{ "value": value, "field": field }] }]
        })
    };
    let mut answers = Vec::new();
    if let Some(before) = previous.as_ref().filter(|p| p.category != t.category) {
        let value = json!({
            "message_template_id": 1_281_736_273_829_142u64,
            "message_template_name": t.name, "message_template_language": t.language,
            "previous_category": before.category, "new_category": t.category,
        });
        answers.push(
            post_webhook(
                &http,
                &target,
                &template_entry("template_category_update", value),
            )
            .await?,
        );
    }
    let value = json!({
        "event": t.status, "message_template_id": 1_281_736_273_829_142u64,
        "message_template_name": t.name, "message_template_language": t.language,
        "message_template_category": t.category, "reason": "NONE",
    });
    answers.push(
        post_webhook(
            &http,
            &target,
            &template_entry("message_template_status_update", value),
        )
        .await?,
    );
    Ok(answers)
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
}

/// `GET /{version}/{waba}/message_templates`: the catalogue, in pages of `limit` (25 by default, as
/// Meta), with `paging.cursors.after` and `paging.next` while more remain.
async fn list_templates(
    State(state): State<Arc<SimState>>,
    Path((version, waba)): Path<(String, String)>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Response {
    let config = state.config();
    if let Some(refusal) = account_refusal(&config, &headers, &waba) {
        return refusal;
    }
    state.template_pages.fetch_add(1, Ordering::SeqCst);
    let mut all: Vec<SimTemplate> = state.catalogue.lock().unwrap().values().cloned().collect();
    all.sort_by(|a, b| (&a.name, &a.language).cmp(&(&b.name, &b.language)));
    let limit = q.limit.unwrap_or(25).clamp(1, 1000);
    let start = q
        .after
        .as_deref()
        .and_then(|c| c.strip_prefix("sim-"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0)
        .min(all.len());
    let end = (start + limit).min(all.len());
    let data: Vec<Value> = all[start..end]
        .iter()
        .map(|t| {
            let mut listed = json!({"name": t.name, "language": t.language, "status": t.status,
                "category": t.category, "id": "1281736273829142",
                "quality_score": {"score": "GREEN"}});
            if !t.components.is_empty() {
                listed["components"] = json!(t.components);
            }
            listed
        })
        .collect();
    let mut paging =
        json!({"cursors": {"before": format!("sim-{start}"), "after": format!("sim-{end}")}});
    if end < all.len() {
        paging["next"] = json!(format!(
            "https://graph.facebook.com/{version}/{waba}/message_templates?limit={limit}&after=sim-{end}"
        ));
    }
    Json(json!({"data": data, "paging": paging})).into_response()
}

async fn post_template(State(state): State<Arc<SimState>>, Json(t): Json<SimTemplate>) -> Response {
    match set_template(&state, t).await {
        Ok(answers) => Json(json!({ "webhook_status": answers })).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_json_is_escaped_like_metas() {
        let v = json!({"text": "J'ai mangé 🍝 https://x.y"});
        assert_eq!(
            meta_json(&v),
            r#"{"text":"J'ai mang\u00e9 \ud83c\udf5d https:\/\/x.y"}"#
        );
    }

    #[test]
    fn signatures_match_a_known_answer() {
        assert_eq!(
            signature("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn faults_parse_from_their_names() {
        assert_eq!(Fault::parse("130429"), Some(Fault::Code(130_429)));
        assert_eq!(
            Fault::parse("slow:250"),
            Some(Fault::Slow(Duration::from_millis(250)))
        );
        assert_eq!(Fault::parse("lost_answer"), Some(Fault::LostAnswer));
        assert_eq!(Fault::parse("5xx"), Some(Fault::ServerError));
        assert_eq!(Fault::parse("paced"), Some(Fault::Paced));
        assert_eq!(Fault::parse("nope"), None);
    }
}
