//! A world for the media path: the webhook (queueing media jobs on moto's SQS), the media service
//! (moto's S3 and DynamoDB, the Meta simulator's media over real HTTP), and the queue drained exactly
//! as Lambda's event source mapping would hand it over, one batch at a time.

use std::time::Duration;

use serde_json::json;
use wahook::config::{Deadlines, Env, Function, MediaConfig, StorageConfig};
use wahook::domain::media::MediaCaps;
use wahook::graph::media::{MediaClient, MediaDownloadConfig};
use wahook::graph::{GraphClient, GraphConfig};
use wahook::media::{MediaQueue, MediaService, QueuedJob};
use wahook::secret::SecretString;
use wahook::telemetry::Metrics;
use wahook_meta_sim::media::SimMedia;
use wahook_meta_sim::{MetaSim, SimConfig};

use crate::fixtures::build;
use crate::sender::ACCESS_TOKEN;
use crate::{sdk_config, unique_prefix, Harness, Reply};

pub const ANA: &str = "5215512345678";

pub struct MediaWorld {
    pub harness: Harness,
    pub sim: MetaSim,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub service: MediaService,
    pub config: MediaConfig,
}

impl MediaWorld {
    pub async fn new(name: &str) -> Self {
        Self::with(name, |_| {}).await
    }

    pub async fn with(name: &str, tweak: impl FnOnce(&mut MediaConfig)) -> Self {
        let sdk = sdk_config().await;
        let prefix = unique_prefix(name);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{prefix}-media"))
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                "60",
            )
            .send()
            .await
            .expect("create the media queue")
            .queue_url
            .unwrap();
        let harness = Harness::new(name)
            .await
            .with_media_queue(MediaQueue::new(sqs.clone(), queue_url.clone()));
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        let bucket = prefix.to_lowercase().replace('_', "-");
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create the media bucket in moto");
        let sim = MetaSim::start(
            "127.0.0.1:0".parse().unwrap(),
            SimConfig {
                access_token: Some(ACCESS_TOKEN.into()),
                ..SimConfig::default()
            },
        )
        .await
        .expect("start the Meta simulator");
        let mut config = MediaConfig {
            access_token: SecretString::new(ACCESS_TOKEN),
            deadlines: Deadlines::load(&Env::from_pairs::<&str, &str>([]), Function::Media)
                .unwrap(),
            graph: GraphConfig {
                base_url: sim.url(),
                ..GraphConfig::default()
            },
            download: MediaDownloadConfig::default(),
            storage: StorageConfig {
                tables: harness.tables.clone(),
                retention_days: 90,
            },
            bucket: bucket.clone(),
            prefix: "inbound/".into(),
            caps: MediaCaps::default(),
            lease: Duration::from_secs(330),
        };
        tweak(&mut config);
        let graph = GraphClient::new(config.graph.clone(), config.access_token.clone()).unwrap();
        let client = MediaClient::new(graph, config.download.clone()).unwrap();
        let service = MediaService::new(
            &config,
            harness.store().clone(),
            client,
            s3.clone(),
            Metrics::disabled("media"),
        );
        Self {
            harness,
            sim,
            sqs,
            queue_url,
            s3,
            bucket,
            service,
            config,
        }
    }

    /// Registers `file` at the simulator and delivers a signed webhook with a message carrying it.
    /// Returns the media id.
    pub async fn user_sends(&self, wamid: &str, kind: &str, file: SimMedia) -> (String, Reply) {
        let mime = file.mime_type.clone();
        let no_sha256 = file.no_sha256;
        let (id, sha256) = self.sim.add_media(file);
        let sha256 = (!no_sha256).then_some(sha256.as_str());
        let reply = self.deliver_media(wamid, kind, &id, &mime, sha256).await;
        (id, reply)
    }

    pub async fn deliver_media(
        &self,
        wamid: &str,
        kind: &str,
        media_id: &str,
        mime: &str,
        sha256: Option<&str>,
    ) -> Reply {
        let mut object = json!({"id": media_id, "mime_type": mime, "caption": "the receipt"});
        if let Some(h) = sha256 {
            object["sha256"] = json!(h);
        }
        let body = build::envelope(vec![build::media(wamid, ANA, 1_795_400_000, kind, object)]);
        self.harness.deliver(&body).await
    }

    /// Receives what is on the media queue (waiting briefly), as Lambda's event source mapping would.
    pub async fn receive(&self) -> Vec<(QueuedJob, String)> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from the media queue");
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                (
                    QueuedJob {
                        message_id: m.message_id.unwrap_or_default(),
                        body: m.body.unwrap_or_default(),
                    },
                    m.receipt_handle.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Hands every queued job to the media service (one batch), deleting the ones that succeeded.
    /// Returns how many jobs there were and how many failed.
    pub async fn drain(&self) -> (usize, usize) {
        let received = self.receive().await;
        let n = received.len();
        let (jobs, handles): (Vec<_>, Vec<_>) = received.into_iter().unzip();
        let ids: Vec<String> = jobs.iter().map(|j| j.message_id.clone()).collect();
        let failed = self.service.handle_batch(jobs, None).await;
        for (id, handle) in ids.iter().zip(handles) {
            if !failed.contains(id) {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete a handled job");
            }
        }
        (n, failed.len())
    }

    /// The object's bytes, or `None` if there is none.
    pub async fn object(&self, key: &str) -> Option<Vec<u8>> {
        let out = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(out.body.collect().await.ok()?.into_bytes().to_vec())
    }

    /// Multipart uploads begun and neither completed nor aborted.
    pub async fn open_uploads(&self) -> usize {
        self.s3
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .send()
            .await
            .expect("list multipart uploads")
            .uploads
            .unwrap_or_default()
            .len()
    }

    /// How many objects the bucket holds.
    pub async fn object_count(&self) -> usize {
        self.s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .send()
            .await
            .expect("list the media bucket")
            .contents
            .unwrap_or_default()
            .len()
    }

    pub async fn stop(self) {
        self.sim.stop().await;
    }
}
