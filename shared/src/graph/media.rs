//! Inbound media from Meta in two steps (whatsapp-platform.md §10): `GET /{version}/{media_id}` gives a
//! short-lived URL, and `GET <url>` with the same bearer token gives the bytes, read as a stream so a
//! 100 MB document never sits in memory.

use std::time::Duration;

use serde::Deserialize;

use super::{
    check_base_url, parse_error, read_capped, GraphClient, GraphError, GraphSetupError,
    MAX_ANSWER_BYTES,
};
use crate::domain::ids::PhoneNumberId;
use crate::telemetry::error_chain;

/// Meta's answer to `GET /{media_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MediaLocation {
    pub url: String,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default, deserialize_with = "lenient_size")]
    pub file_size: Option<u64>,
}

/// Why a step did not give what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaFetchError {
    /// Meta no longer has it (404: deleted, or older than the 7 days media ids last): final.
    #[error("Meta no longer has this media: {0}")]
    Gone(String),
    /// Meta says it cannot load it (code 100). That is what an expired id gets, and also what a token
    /// without access to the number gets: the caller tells them apart by the message's age.
    #[error("Meta cannot load this media: {0}")]
    Unavailable(String),
    /// The download URL was refused (expired after its 5 minutes, or not ours): ask for a fresh one.
    #[error("the download URL was refused: {0}")]
    Expired(String),
    /// Worth another try later (no answer, 5xx, throttling, a token Meta refused).
    #[error("{0}")]
    Retry(String),
}

/// Where media may be downloaded from and how long a download may stall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDownloadConfig {
    /// Hosts the bearer token may be sent to for a download: exact names or `*.suffix`. UNSURE: Meta's
    /// URLs have been on `lookaside.fbsbx.com`; the list is `WAHOOK_MEDIA_DOWNLOAD_HOSTS`.
    pub allowed_hosts: Vec<String>,
    /// The longest wait for the next bytes; a download as a whole has no limit but the function's.
    pub read_timeout: Duration,
    pub connect_timeout: Duration,
}

pub const DEFAULT_MEDIA_DOWNLOAD_HOSTS: &[&str] = &[
    "lookaside.fbsbx.com",
    "*.fbsbx.com",
    "*.whatsapp.net",
    "*.fbcdn.net",
];

impl Default for MediaDownloadConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: DEFAULT_MEDIA_DOWNLOAD_HOSTS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
            read_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// Resolves media ids and streams their bytes. Shares the Graph client's token.
#[derive(Debug, Clone)]
pub struct MediaClient {
    graph: GraphClient,
    download: reqwest::Client,
    config: MediaDownloadConfig,
}

/// An answer whose body is read a chunk at a time.
pub struct MediaBody {
    response: reqwest::Response,
}

impl MediaBody {
    /// `Content-Length`, when the server sends it.
    pub fn length(&self) -> Option<u64> {
        self.response.content_length()
    }

    pub fn content_type(&self) -> Option<String> {
        self.response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The next bytes, `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, MediaFetchError> {
        self.response.chunk().await.map_err(|e| {
            MediaFetchError::Retry(format!(
                "the download broke off: {}",
                error_chain(&e.without_url())
            ))
        })
    }
}

impl MediaClient {
    pub fn new(graph: GraphClient, config: MediaDownloadConfig) -> Result<Self, GraphSetupError> {
        let download = crate::tls::https_client_builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            // A redirect would carry the bearer token to a host nobody checked.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wahook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(GraphSetupError::HttpClient)?;
        Ok(Self {
            graph,
            download,
            config,
        })
    }

    pub fn graph(&self) -> &GraphClient {
        &self.graph
    }

    /// `GET {base}/{version}/{media_id}?phone_number_id={number}`: Meta checks the media belongs to
    /// that number.
    pub async fn locate(
        &self,
        media_id: &str,
        number: &str,
    ) -> Result<MediaLocation, MediaFetchError> {
        let retry = |e: GraphError| MediaFetchError::Retry(e.to_string());
        let mut url = self.graph.node_url(media_id, None).map_err(retry)?;
        url.query_pairs_mut().append_pair("phone_number_id", number);
        let (status, bytes) = self
            .graph
            .get_capped(url, "the answer to GET /{media_id}")
            .await
            .map_err(retry)?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|e| {
                MediaFetchError::Retry(format!(
                    "Graph answered HTTP {status} without a media URL ({e})"
                ))
            });
        }
        let error = parse_error(status, &bytes);
        let code = error.code.map_or_else(|| "none".into(), |c| c.to_string());
        let what = format!(
            "GET /{{media_id}} answered HTTP {status}, code {code}: {}",
            error.message
        );
        Err(match (status, error.code) {
            (404, _) => MediaFetchError::Gone(what),
            (_, Some(100)) => MediaFetchError::Unavailable(what),
            _ => MediaFetchError::Retry(what),
        })
    }

    /// `GET <url>` with the bearer token, if the URL's host is one the token may go to.
    pub async fn open(&self, url: &str) -> Result<MediaBody, MediaFetchError> {
        self.check_download_url(url)?;
        let token = self.graph.bearer();
        let response = self
            .download
            .get(url)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| {
                // Without the URL: it is a signed, short-lived link to a user's file.
                MediaFetchError::Retry(format!(
                    "could not reach the media host: {}",
                    error_chain(&e.without_url())
                ))
            })?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(MediaBody { response }),
            401 | 403 | 404 | 410 => Err(MediaFetchError::Expired(format!(
                "the media host answered HTTP {status}"
            ))),
            _ => Err(MediaFetchError::Retry(format!(
                "the media host answered HTTP {status}"
            ))),
        }
    }

    /// `POST {base}/{version}/{number}/media`: uploads a file for sends from `number`, streamed
    /// from `body` (`len` bytes); Meta's media id, good for 30 days. Nothing is sent to anyone by
    /// this call, so a failure that never got an answer is `NotSent`.
    pub async fn upload(
        &self,
        number: &PhoneNumberId,
        mime_type: &str,
        filename: &str,
        len: u64,
        body: reqwest::Body,
    ) -> Result<String, GraphError> {
        let url = format!(
            "{}/{}/{}/media",
            self.graph.config.base_url.trim_end_matches('/'),
            self.graph.config.api_version,
            number.as_str(),
        );
        let file = reqwest::multipart::Part::stream_with_length(body, len)
            .file_name(filename.to_owned())
            .mime_str(mime_type)
            .map_err(|e| GraphError::NotSent(format!("bad MIME type {mime_type:?}: {e}")))?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", mime_type.to_owned())
            .part("file", file);
        let token = self.graph.bearer();
        let response = self
            .download
            .post(url)
            .bearer_auth(token.expose())
            .multipart(form)
            .send()
            .await
            .map_err(|e| {
                GraphError::NotSent(format!(
                    "uploading the file to Meta failed: {}",
                    error_chain(&e)
                ))
            })?;
        let status = response.status().as_u16();
        // No message was sent whatever happened here: an unreadable answer to an upload is NotSent.
        let bytes = read_capped(response, MAX_ANSWER_BYTES, "the answer to the upload")
            .await
            .map_err(|e| GraphError::NotSent(format!("uploading the file to Meta: {e}")))?;
        if (200..300).contains(&status) {
            #[derive(Deserialize)]
            struct Uploaded {
                id: serde_json::Value,
            }
            // Meta writes ids as strings; a number reads too.
            return serde_json::from_slice::<Uploaded>(&bytes)
                .ok()
                .and_then(|u| match u.id {
                    serde_json::Value::String(s) if !s.is_empty() => Some(s),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .ok_or_else(|| {
                    GraphError::NotSent(format!(
                        "Meta answered the upload with HTTP {status} but no media id"
                    ))
                });
        }
        Err(GraphError::Meta(parse_error(status, &bytes)))
    }

    /// The token goes over TLS to an allowed host, or to a simulator on this machine.
    fn check_download_url(&self, url: &str) -> Result<(), MediaFetchError> {
        let refuse = |why: String| {
            Err(MediaFetchError::Retry(format!(
                "refused to send the access token to the media URL Meta gave: {why}; if Meta moved its media host, add it to WAHOOK_MEDIA_DOWNLOAD_HOSTS"
            )))
        };
        // Only the scheme and host are named: the URL itself is a signed link to a user's file.
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return refuse("it is not a URL".into());
        };
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        if let Err(e) = check_base_url(url) {
            let why = match e {
                GraphSetupError::BaseUrl { problem, .. } => problem,
                GraphSetupError::HttpClient(_) | GraphSetupError::NoTrustedRoots { .. } => {
                    "is not usable"
                }
            };
            return refuse(format!("{}://{host} {why}", parsed.scheme()));
        }
        if parsed.scheme() == "http" {
            // check_base_url allows plain http to loopback only; and only a simulator on this
            // machine (a loopback Graph base URL) hands out such URLs. In Lambda, loopback is the
            // runtime API: never send it a request on Meta's word.
            let graph_is_local = reqwest::Url::parse(&self.graph.config.base_url)
                .is_ok_and(|g| g.scheme() == "http");
            return if graph_is_local {
                Ok(())
            } else {
                refuse("a plain-http URL while Graph is reached over TLS".into())
            };
        }
        if host_allowed(&host, &self.config.allowed_hosts) {
            Ok(())
        } else {
            refuse(format!("host {host} is not in the allowed list"))
        }
    }
}

fn host_allowed(host: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|pattern| {
        let pattern = pattern.trim().to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            None => host == pattern,
        }
    })
}

/// Meta writes sizes as numbers; a string of digits reads too, anything else as unknown.
fn lenient_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_to_allowed_media_hosts() {
        let allowed: Vec<String> = DEFAULT_MEDIA_DOWNLOAD_HOSTS
            .iter()
            .map(|h| (*h).to_owned())
            .collect();
        for ok in [
            "lookaside.fbsbx.com",
            "scontent.whatsapp.net",
            "a.b.fbcdn.net",
        ] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "evil.com",
            "fbsbx.com.evil.com",
            "xfbsbx.com",
            "whatsapp.net",
            ".fbsbx.com",
        ] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
    }

    fn client(base_url: &str) -> MediaClient {
        let graph = GraphClient::new(
            crate::graph::GraphConfig {
                base_url: base_url.into(),
                ..Default::default()
            },
            crate::secret::SecretString::new("t"),
        )
        .unwrap();
        MediaClient::new(graph, MediaDownloadConfig::default()).unwrap()
    }

    #[test]
    fn download_urls_are_checked_before_the_token_is_sent() {
        let meta = client("https://graph.facebook.com");
        assert!(meta
            .check_download_url("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1")
            .is_ok());
        for refused in [
            "https://evil.example/x",
            "http://lookaside.fbsbx.com/x",
            // Lambda's runtime API listens on loopback: never on Meta's word.
            "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next",
            "https://user:pw@lookaside.fbsbx.com/x",
            "ftp://lookaside.fbsbx.com/x",
            "not a url",
        ] {
            let e = meta.check_download_url(refused).unwrap_err().to_string();
            assert!(
                e.contains("refused to send the access token"),
                "{refused}: {e}"
            );
        }
        let sim = client("http://127.0.0.1:8080");
        assert!(sim
            .check_download_url("http://127.0.0.1:8080/_sim/media/abc")
            .is_ok());
        assert!(sim
            .check_download_url("http://10.0.0.1/_sim/media/abc")
            .is_err());
    }

    #[test]
    fn meta_media_answers_read_with_sizes_as_numbers_or_strings() {
        let a: MediaLocation = serde_json::from_str(
            r#"{"messaging_product":"whatsapp","url":"https://lookaside.fbsbx.com/x","mime_type":"image/jpeg","sha256":"ab","file_size":"303833","id":"1"}"#,
        )
        .unwrap();
        assert_eq!(a.file_size, Some(303_833));
        let b: MediaLocation =
            serde_json::from_str(r#"{"url":"u","file_size":12,"sha256":null}"#).unwrap();
        assert_eq!((b.file_size, b.sha256), (Some(12), None));
    }
}
