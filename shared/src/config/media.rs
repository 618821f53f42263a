//! The media function's configuration: the bucket and caps, the Graph client and its token, where
//! downloads may come from, and the messages table it records results in.

use std::time::Duration;

use super::deadlines::{Deadlines, Function};
use super::env::{list, parse_number, ConfigError, Env};
use super::secrets::SecretResolver;
use super::sender::graph_config;
use super::StorageConfig;
use crate::domain::media::MediaCaps;
use crate::graph::media::MediaDownloadConfig;
use crate::graph::GraphConfig;
use crate::secret::SecretString;

/// Where inbound media goes in the bucket (the stack's role may write there only).
pub const MEDIA_PREFIX: &str = "inbound/";

/// `WAHOOK_MEDIA_DOWNLOAD_HOSTS`: host names or `*.domain.tld` patterns; the access token goes to
/// them, so nothing broader than one registered domain's subdomains.
fn download_hosts(hosts: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let bad = |value: &str, why: &str| {
        ConfigError::Invalid {
        var: "WAHOOK_MEDIA_DOWNLOAD_HOSTS".into(),
        value: value.into(),
        expected: format!("{why}: comma-separated host names or *.domain.tld patterns (default lookaside.fbsbx.com, *.fbsbx.com, *.whatsapp.net, *.fbcdn.net)"),
    }
    };
    if hosts.is_empty() {
        return Err(bad("", "at least one host (the access token goes to them)"));
    }
    for h in &hosts {
        let name = h.strip_prefix("*.").unwrap_or(h);
        let labels: Vec<&str> = name.split('.').collect();
        let plain = labels
            .iter()
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        if !plain || (h.starts_with("*.") && labels.len() < 2) || name.contains('*') {
            return Err(bad(h, "a host name, or *. followed by a domain with a dot"));
        }
    }
    Ok(hosts)
}

#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub access_token: SecretString,
    pub deadlines: Deadlines,
    pub graph: GraphConfig,
    pub download: MediaDownloadConfig,
    pub storage: StorageConfig,
    /// `WAHOOK_MEDIA_BUCKET`: where verified files go.
    pub bucket: String,
    /// Keys are `{prefix}{phone_number_id}/{wamid}`; `inbound/`, the prefix the stack's role may
    /// write under.
    pub prefix: String,
    pub caps: MediaCaps,
    /// How long a worker holds a message's media before another may take it over.
    pub lease: Duration,
}

impl MediaConfig {
    pub async fn load(env: &Env, secrets: &SecretResolver) -> Result<Self, ConfigError> {
        let bucket = env
            .get("WAHOOK_MEDIA_BUCKET")
            .map(|b| b.trim().to_owned())
            .filter(|b| !b.is_empty())
            .ok_or_else(|| ConfigError::Invalid {
                var: "WAHOOK_MEDIA_BUCKET".into(),
                value: String::new(),
                expected: "the S3 bucket inbound media is stored in (the stack's MediaBucket)"
                    .into(),
            })?;
        let prefix = MEDIA_PREFIX.to_owned();
        let defaults = MediaCaps::default();
        let cap = |var: &str, default: u64| parse_number(env, var, default, 1..=100 * 1024 * 1024);
        let caps = MediaCaps {
            image: cap("WAHOOK_MEDIA_MAX_IMAGE_BYTES", defaults.image)?,
            video: cap("WAHOOK_MEDIA_MAX_VIDEO_BYTES", defaults.video)?,
            audio: cap("WAHOOK_MEDIA_MAX_AUDIO_BYTES", defaults.audio)?,
            document: cap("WAHOOK_MEDIA_MAX_DOCUMENT_BYTES", defaults.document)?,
            sticker: cap("WAHOOK_MEDIA_MAX_STICKER_BYTES", defaults.sticker)?,
        };
        let mut download = MediaDownloadConfig::default();
        if let Some(hosts) = list(env, "WAHOOK_MEDIA_DOWNLOAD_HOSTS") {
            download.allowed_hosts = download_hosts(hosts)?;
        }
        download.read_timeout = Duration::from_millis(parse_number(
            env,
            "WAHOOK_MEDIA_READ_TIMEOUT_MS",
            30_000,
            1_000..=120_000,
        )?);
        let deadlines = Deadlines::load(env, Function::Media)?;
        let lease = deadlines.function_timeout + Duration::from_secs(30);
        let access_token = secrets.required(env, "WAHOOK_ACCESS_TOKEN").await?;
        Ok(Self {
            access_token,
            graph: graph_config(env)?,
            download,
            storage: StorageConfig::load(env)?,
            deadlines,
            bucket,
            prefix,
            caps,
            lease,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver() -> SecretResolver {
        SecretResolver::new(
            aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .build(),
        )
    }

    #[tokio::test]
    async fn the_bucket_is_required_and_caps_are_checked() {
        let e = MediaConfig::load(
            &Env::from_pairs([("WAHOOK_ACCESS_TOKEN", "t")]),
            &resolver(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("WAHOOK_MEDIA_BUCKET"), "{e}");
        let e = MediaConfig::load(
            &Env::from_pairs([
                ("WAHOOK_ACCESS_TOKEN", "t"),
                ("WAHOOK_MEDIA_BUCKET", "b"),
                ("WAHOOK_MEDIA_MAX_IMAGE_BYTES", "0"),
            ]),
            &resolver(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("WAHOOK_MEDIA_MAX_IMAGE_BYTES"), "{e}");
        let ok = MediaConfig::load(
            &Env::from_pairs([
                ("WAHOOK_ACCESS_TOKEN", "t"),
                ("WAHOOK_MEDIA_BUCKET", "b"),
                ("WAHOOK_MEDIA_MAX_DOCUMENT_BYTES", "1048576"),
                ("WAHOOK_MEDIA_DOWNLOAD_HOSTS", "media.example.net"),
            ]),
            &resolver(),
        )
        .await
        .unwrap();
        assert_eq!(ok.caps.document, 1_048_576);
        assert_eq!(ok.prefix, "inbound/");
        assert_eq!(ok.download.allowed_hosts, vec!["media.example.net"]);
        for hosts in [" , ", "*", "*.com", "a.*.b", "evil.com/x", "*."] {
            let e = MediaConfig::load(
                &Env::from_pairs([
                    ("WAHOOK_ACCESS_TOKEN", "t"),
                    ("WAHOOK_MEDIA_BUCKET", "b"),
                    ("WAHOOK_MEDIA_DOWNLOAD_HOSTS", hosts),
                ]),
                &resolver(),
            )
            .await
            .unwrap_err()
            .to_string();
            assert!(e.contains("WAHOOK_MEDIA_DOWNLOAD_HOSTS"), "{hosts:?}: {e}");
        }
    }
}
