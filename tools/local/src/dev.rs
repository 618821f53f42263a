//! `wahook-dev`: the local stack's human interface. Everything here goes through the stack's public
//! surfaces (the simulator's endpoints, the sends queue, DynamoDB reads) with the values in
//! `.wahook/dev.env`, which `scripts/dev.sh` writes while the stack is up.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::time::{Duration, Instant};

use aws_config::{Region, SdkConfig};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};
use wahook::config::Env;
use wahook::domain::consent_request::ConsentRequest;
use wahook::domain::ids::{ContactKey, PhoneNumberId, UserId};
use wahook::domain::ledger::SendState;
use wahook::domain::preferences::{Category, Consent};
use wahook::domain::send_request::{IdempotencyKey, SendRequest};
use wahook::domain::time::UnixTime;
use wahook::domain::ContactState;
use wahook::outbound::queue::SENDS_QUEUE;
use wahook::store::messages::TimelineEntry;
use wahook::store::tables::{create_all_tables_with, Streams, TableNames};
use wahook::store::Store;

/// The stack's settings: `.wahook/dev.env` (or `WAHOOK_DEV_ENV`), overridden by the environment.
pub struct DevEnv {
    values: BTreeMap<String, String>,
}

impl DevEnv {
    pub fn load() -> Result<Self, String> {
        let path = std::env::var("WAHOOK_DEV_ENV").unwrap_or_else(|_| ".wahook/dev.env".into());
        let mut values = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            {
                if let Some((k, v)) = line.split_once('=') {
                    values.insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
        }
        for (k, v) in std::env::vars() {
            if k.starts_with("WAHOOK_") || k.starts_with("AWS_") {
                values.insert(k, v);
            }
        }
        Ok(Self { values })
    }

    pub fn get(&self, key: &str) -> Result<&str, String> {
        self.values.get(key).map(String::as_str).ok_or_else(|| {
            format!("{key} is not in .wahook/dev.env: is the stack up? Start it with scripts/dev.sh --detach")
        })
    }

    pub async fn sdk(&self) -> Result<SdkConfig, String> {
        Ok(wahook::aws::sdk_loader()
            .region(Region::new(self.get("AWS_REGION")?.to_owned()))
            .endpoint_url(self.get("AWS_ENDPOINT_URL")?)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                self.get("AWS_ACCESS_KEY_ID").unwrap_or("testing"),
                self.get("AWS_SECRET_ACCESS_KEY").unwrap_or("testing"),
                None,
                None,
                "wahook-dev",
            ))
            .load()
            .await)
    }

    pub fn tables(&self) -> TableNames {
        wahook::config::table_names(&Env::from_pairs(self.values.clone()))
    }

    pub async fn store(&self) -> Result<Store, String> {
        let sdk = self.sdk().await?;
        Ok(Store::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            self.tables(),
            90,
        ))
    }

    pub fn number(&self) -> Result<PhoneNumberId, String> {
        PhoneNumberId::parse(self.get("WAHOOK_DEFAULT_PHONE_NUMBER_ID")?).map_err(|e| e.to_string())
    }
}

/// Creates the tables (from the code's definitions, with their streams for the publisher) and the
/// sends queue with its DLQ (from `SENDS_QUEUE`), and returns the two queue URLs.
pub async fn provision(
    sdk: &SdkConfig,
    tables: &TableNames,
    queue_name: &str,
) -> Result<(String, String), String> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    create_all_tables_with(&dynamo, tables, Streams::NewAndOldImages)
        .await
        .map_err(|e| format!("creating the tables failed: {e}"))?;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let create = |name, attrs| create_queue(&sqs, name, attrs);
    let retention = (
        QueueAttributeName::MessageRetentionPeriod,
        SENDS_QUEUE.retention_secs.to_string(),
    );
    let dlq_url = create(format!("{queue_name}-dlq"), vec![retention.clone()]).await?;
    let dlq_arn = queue_arn(&sqs, &dlq_url).await?;
    let redrive =
        json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": SENDS_QUEUE.max_receive_count})
            .to_string();
    let queue_url = create(
        queue_name.to_owned(),
        vec![
            retention,
            (
                QueueAttributeName::VisibilityTimeout,
                SENDS_QUEUE.visibility_timeout_secs.to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive),
        ],
    )
    .await?;
    Ok((queue_url, dlq_url))
}

/// Creates the media queue with its DLQ (as `infra/template.yaml` does) and the media bucket; returns
/// the queue URL and the bucket.
pub async fn provision_media(sdk: &SdkConfig, name: &str) -> Result<(String, String), String> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let create = |name, attrs| create_queue(&sqs, name, attrs);
    let dlq_url = create(format!("{name}-media-dlq"), vec![]).await?;
    let dlq_arn = queue_arn(&sqs, &dlq_url).await?;
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}).to_string();
    let queue_url = create(
        format!("{name}-media"),
        vec![
            // Longer than the media function's timeout (300 s), as the template sets it.
            (QueueAttributeName::VisibilityTimeout, "360".into()),
            (QueueAttributeName::RedrivePolicy, redrive),
        ],
    )
    .await?;
    let bucket = format!("{name}-media");
    let s3 = wahook::aws::s3_client(sdk);
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .map_err(|e| {
            format!(
                "creating bucket {bucket} failed: {}",
                aws_sdk_s3::Error::from(e)
            )
        })?;
    Ok((queue_url, bucket))
}

/// Creates the event bus and a "tap": a rule that sends every wahook event to an SQS queue, which
/// `wahook-dev events` reads. Returns the bus name and the tap queue's URL.
///
/// A queue, not a Lambda target: moto delivers to SQS targets as EventBridge does, but fails
/// `PutEvents` for a Lambda target it cannot run.
pub async fn provision_events(sdk: &SdkConfig, name: &str) -> Result<(String, String), String> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let tap_url = create_queue(&sqs, format!("{name}-events-tap"), vec![]).await?;
    let tap_arn = queue_arn(&sqs, &tap_url).await?;
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let bus = format!("{name}-events");
    let fail = |what: &str, e: aws_sdk_eventbridge::Error| format!("{what} failed: {e}");
    events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .map_err(|e| fail("creating the event bus", e.into()))?;
    let rule = format!("{name}-events-tap");
    events
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(json!({"source": [wahook::publish::EVENT_SOURCE]}).to_string())
        .send()
        .await
        .map_err(|e| fail("creating the tap rule", e.into()))?;
    events
        .put_targets()
        .rule(&rule)
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("tap")
                .arn(tap_arn)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .send()
        .await
        .map_err(|e| fail("pointing the tap rule at its queue", e.into()))?;
    Ok((bus, tap_url))
}

/// Takes what the tap queue holds (waiting up to `wait_secs` for the first), oldest first as far as
/// SQS keeps order, and deletes what it returns: each event is shown once.
pub async fn take_events(dev: &DevEnv, wait_secs: i32) -> Result<Vec<Value>, String> {
    let sqs = aws_sdk_sqs::Client::new(&dev.sdk().await?);
    let mut out = drain_queue(&sqs, dev.get("WAHOOK_EVENTS_TAP_URL")?, wait_secs).await?;
    out.sort_by_key(|e| e["detail"]["at"].as_i64().unwrap_or(0));
    Ok(out)
}

/// Every message a queue holds now (waiting up to `wait_secs` for the first), each body read as
/// JSON, deleted once read.
pub async fn drain_queue(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    wait_secs: i32,
) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(if out.is_empty() { wait_secs } else { 0 })
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::Error::from(e).to_string())?;
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(out);
        }
        for m in messages {
            let body = m.body.as_deref().unwrap_or("{}");
            out.push(serde_json::from_str(body).unwrap_or_else(|_| json!({ "unreadable": body })));
            if let Some(handle) = m.receipt_handle {
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| aws_sdk_sqs::Error::from(e).to_string())?;
            }
        }
    }
}

/// One event as a line a person reads: when, what, and the detail.
pub fn format_event(event: &Value) -> String {
    let detail = &event["detail"];
    let at = detail["at"]
        .as_i64()
        .map(|t| when(UnixTime::from_secs(t)))
        .unwrap_or_else(|| "-".into());
    format!(
        "{at}  {:<30} {}",
        event["detail-type"].as_str().unwrap_or("?"),
        detail
    )
}

/// The figures of one day as `report` prints them: a row per template, language and category, with
/// the reply rate, then failures by code and pricing by category and type.
pub async fn report(dev: &DevEnv, day: &str) -> Result<String, String> {
    let store = dev.store().await?;
    let rows = store.figures_of_day(day).await.map_err(|e| e.to_string())?;
    let mut out = format!("figures for {day} (UTC, by the day each message was sent)\n");
    if rows.is_empty() {
        out.push_str(
            "  nothing sent that day (yet): the publisher counts within a second of each write\n",
        );
        return Ok(out);
    }
    out.push_str(&format!(
        "  {:<24} {:<8} {:<14} {:>5} {:>9} {:>5} {:>6} {:>7} {:>6} {:>8} {:>10}\n",
        "template",
        "language",
        "category",
        "sent",
        "delivered",
        "read",
        "failed",
        "replied",
        "reply",
        "billable",
        "est. cost"
    ));
    let mut details = Vec::new();
    for r in &rows {
        let rate = r
            .reply_rate()
            .map_or_else(|| "-".into(), |rate| format!("{:.0} %", 100.0 * rate));
        let cost = r
            .counts
            .get("cost_micros")
            .map(|m| format!("{:.4}", *m as f64 / 1e6))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "  {:<24} {:<8} {:<14} {:>5} {:>9} {:>5} {:>6} {:>7} {:>6} {:>8} {:>10}\n",
            r.template,
            r.language,
            r.category,
            r.get("sent"),
            r.get("delivered"),
            r.get("read"),
            r.get("failed"),
            r.get("replied"),
            rate,
            r.get("billable"),
            cost
        ));
        let row = format!("{} ({}, {})", r.template, r.language, r.category);
        for (name, count) in &r.counts {
            if let Some(code) = name.strip_prefix("failed_") {
                details.push(format!("  {row}: failed with {code} × {count}"));
            }
            if let Some(pricing) = name.strip_prefix("priced__") {
                let pricing = pricing.replace("__", " / ");
                details.push(format!("  {row}: delivered as {pricing} × {count}"));
            }
            if name == "billable_unrated" {
                details.push(format!(
                    "  {row}: billable with no price on the rate card × {count}"
                ));
            }
        }
    }
    if !details.is_empty() {
        out.push('\n');
        out.push_str(&details.join("\n"));
        out.push('\n');
    }
    Ok(out)
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: String,
    attrs: Vec<(QueueAttributeName, String)>,
) -> Result<String, String> {
    let mut req = sqs.create_queue().queue_name(&name);
    for (k, v) in attrs {
        req = req.attributes(k, v);
    }
    req.send()
        .await
        .map_err(|e| {
            format!(
                "creating queue {name} failed: {}",
                aws_sdk_sqs::Error::from(e)
            )
        })?
        .queue_url
        .ok_or_else(|| format!("no URL for queue {name}"))
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| aws_sdk_sqs::Error::from(e).to_string())?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| format!("the queue {url} has no ARN"))
}

/// Puts a file where producers put what they send (`outbound/` of the media bucket); its S3 URI.
pub async fn put_outbound_file(dev: &DevEnv, path: &str) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read {path}: {e}"))?;
    let name = std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let bucket = dev.get("WAHOOK_MEDIA_BUCKET")?;
    let key = format!(
        "outbound/dev/{}-{name}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let s3 = wahook::aws::s3_client(&dev.sdk().await?);
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .set_content_type(wahook::domain::media::mime_for_name(&name).map(str::to_owned))
        .body(bytes.into())
        .send()
        .await
        .map_err(|e| {
            format!(
                "putting {path} into s3://{bucket}/{key} failed: {}",
                aws_sdk_s3::Error::from(e)
            )
        })?;
    Ok(format!("s3://{bucket}/{key}"))
}

/// A user writes to the business: the simulator posts a signed inbound webhook.
pub struct Inbound {
    pub from: Option<String>,
    pub user_id: Option<String>,
    pub name: String,
    pub text: Option<String>,
    pub button: Option<String>,
    pub referral: bool,
    /// A file the user sends: (kind, path), e.g. ("image", "receipt.jpg").
    pub media: Option<(String, String)>,
    pub caption: Option<String>,
}

/// POSTs `body` to the simulator's `path`; its JSON answer, and the text for errors.
async fn post_to_sim(dev: &DevEnv, path: &str, body: &Value) -> Result<(Value, String), String> {
    let url = format!("{}{path}", dev.get("WAHOOK_META_SIM_URL")?);
    let http = wahook::tls::https_client_builder()
        .build()
        .map_err(|e| format!("could not build an HTTP client: {e}"))?;
    let response = http
        .post(&url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("could not reach the simulator at {url}: {e}"))?;
    let text = response.text().await.unwrap_or_default();
    let v = serde_json::from_str(&text).map_err(|_| format!("the simulator said: {text}"))?;
    Ok((v, text))
}

pub async fn inbound(dev: &DevEnv, msg: &Inbound) -> Result<String, String> {
    let mut body = json!({
        "from": msg.from, "from_user_id": msg.user_id, "name": msg.name, "text": msg.text,
        "button": msg.button, "referral": msg.referral, "phone_number_id": dev.number()?.as_str(),
    });
    if let Some((kind, path)) = &msg.media {
        use base64::Engine;
        let bytes = std::fs::read(path).map_err(|e| format!("read {path}: {e}"))?;
        let file = json!({
            "mime_type": wahook::domain::media::mime_for_name(path).unwrap_or("application/octet-stream"),
            "base64": base64::engine::general_purpose::STANDARD.encode(bytes),
        });
        let (registered, _) = post_to_sim(dev, "/_sim/media", &file).await?;
        let filename = std::path::Path::new(path)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned());
        body["media"] = json!({
            "kind": kind, "id": registered["id"], "caption": msg.caption,
            "filename": (kind == "document").then_some(filename).flatten(),
        });
    }
    let (v, text) = post_to_sim(dev, "/_sim/inbound", &body).await?;
    match v["webhook_status"].as_u64() {
        Some(200) => Ok(v["wamid"].as_str().unwrap_or_default().to_owned()),
        Some(status) => Err(format!(
            "the webhook answered {status} to the simulator's delivery"
        )),
        None => Err(format!("the simulator said: {text}")),
    }
}

/// Changes a template in the simulator as Meta would (it posts the template webhooks to the stack).
pub async fn set_template(
    dev: &DevEnv,
    name: &str,
    language: &str,
    status: &str,
    category: &str,
) -> Result<(), String> {
    let body = json!({"name": name, "language": language, "status": status.to_ascii_uppercase(),
        "category": category.to_ascii_uppercase()});
    let (v, text) = post_to_sim(dev, "/_sim/templates", &body).await?;
    match v["webhook_status"].as_array() {
        Some(answers) if answers.iter().all(|a| a.as_u64() == Some(200)) => Ok(()),
        Some(answers) => Err(format!(
            "the webhook answered {answers:?} to the simulator's template webhooks"
        )),
        None => Err(format!("the simulator said: {text}")),
    }
}

/// Syncs the registry from the simulator's `GET /{waba}/message_templates`, as the deployed sync
/// does from Meta.
pub async fn sync_templates(dev: &DevEnv) -> Result<String, String> {
    let graph = wahook::graph::GraphClient::new(
        wahook::graph::GraphConfig {
            base_url: dev.get("WAHOOK_META_SIM_URL")?.to_owned(),
            ..Default::default()
        },
        wahook::secret::SecretString::new(dev.get("WAHOOK_ACCESS_TOKEN")?),
    )
    .map_err(|e| e.to_string())?;
    let store = dev.store().await?;
    // The deployed function's own entry point, so the local run is the scheduled one.
    let sync = wahook::sync::TemplateSync::new(graph, store, dev.get("WAHOOK_WABA_ID")?.to_owned());
    let r = sync
        .run(wahook::domain::time::UnixTime::now())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = format!(
        "synced {} templates in {} pages ({} parts written, {} already newer, {} skipped)\n",
        r.templates, r.pages, r.written, r.older, r.skipped
    );
    if let Some(word) = &r.marketing_onboarding {
        out.push_str(&format!("marketing messages onboarding: {word}\n"));
    }
    Ok(out)
}

/// The registry, one line per template: key, status, category, quality, and since when.
pub async fn templates(dev: &DevEnv) -> Result<String, String> {
    let store = dev.store().await?;
    let all = store.list_templates().await.map_err(|e| e.to_string())?;
    if all.is_empty() {
        return Ok("the template registry is empty: Meta's template webhooks fill it (scripts/dev.sh templates set NAME LANGUAGE STATUS CATEGORY, locally)\n".into());
    }
    let mut out = String::new();
    for (key, r) in all {
        let part = |v: Option<(String, wahook::domain::time::UnixTime)>| match v {
            Some((value, at)) => format!("{value} (as of {})", at.to_rfc3339()),
            None => "-".into(),
        };
        out.push_str(&format!(
            "{key}\n  status    {}\n  category  {}{}\n  quality   {}\n",
            part(r.status.map(|s| (s.value, s.at))),
            part(r.category.map(|c| (c.value.as_str().to_owned(), c.at))),
            r.impending_category
                .map(|c| format!(" (Meta announced {}, {})", c.value, c.at.to_rfc3339()))
                .unwrap_or_default(),
            part(r.quality.map(|q| (q.value, q.at))),
        ));
    }
    Ok(out)
}

/// Checks a request like the sender will, then puts it on the sends queue; returns its key.
pub async fn send(dev: &DevEnv, request: &Value) -> Result<String, String> {
    let body = request.to_string();
    let parsed = SendRequest::parse(&body).map_err(|e| format!("{e} (nothing was enqueued)"))?;
    enqueue(dev, body).await?;
    Ok(parsed.idempotency_key.as_str().to_owned())
}

/// Checks a consent request like the sender will, then puts it on the sends queue.
pub async fn consent(dev: &DevEnv, request: &Value) -> Result<(), String> {
    let body = request.to_string();
    ConsentRequest::parse(&body, UnixTime::now())
        .map_err(|e| format!("{e} (nothing was enqueued)"))?;
    enqueue(dev, body).await
}

async fn enqueue(dev: &DevEnv, body: String) -> Result<(), String> {
    let sdk = dev.sdk().await?;
    aws_sdk_sqs::Client::new(&sdk)
        .send_message()
        .queue_url(dev.get("WAHOOK_SENDS_QUEUE_URL")?)
        .message_body(body)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("could not enqueue: {}", aws_sdk_sqs::Error::from(e)))
}

/// The ledger state of a key, if any.
pub async fn ledger_state(
    dev: &DevEnv,
    key: &str,
) -> Result<Option<(SendState, Option<String>)>, String> {
    let store = dev.store().await?;
    let key = IdempotencyKey::parse(key).map_err(|e| format!("idempotency key {key:?} {e}"))?;
    Ok(store
        .get_send(&key)
        .await
        .map_err(|e| e.to_string())?
        .map(|e| (e.state, e.reason)))
}

/// What became of a key, as `status KEY` prints it: the state and reason on the first line, then
/// the template and category the gates used, where it went, Meta's pacing, and what the template
/// registry says of the template now.
pub async fn send_status(dev: &DevEnv, key: &str) -> Result<String, String> {
    let store = dev.store().await?;
    let parsed = IdempotencyKey::parse(key).map_err(|e| format!("idempotency key {key:?} {e}"))?;
    let Some(v) = store.send_view(&parsed).await.map_err(|e| e.to_string())? else {
        return Ok(format!("{key}: not in the ledger (yet)\n"));
    };
    let mut out = format!(
        "{key}: {}{}\n",
        v.state,
        v.reason.map(|r| format!(" ({r})")).unwrap_or_default()
    );
    let category = v.category.as_deref().unwrap_or("?");
    match (&v.template_name, &v.template_language) {
        (Some(name), language) => out.push_str(&format!(
            "  template  {name} ({}), category {category}\n",
            language.as_deref().unwrap_or("?")
        )),
        (None, _) => out.push_str(&format!("  message   text, category {category}\n")),
    }
    if let Some(wamid) = &v.wamid {
        let via = v.endpoint.as_deref().unwrap_or("messages");
        out.push_str(&format!("  sent      {wamid} via /{via}\n"));
    }
    if let Some(pacing) = &v.pacing {
        out.push_str(&format!(
            "  pacing    {pacing}: Meta holds it while it assesses quality; a drop fails with 135000\n"
        ));
    }
    if let Some(code) = v.error_code {
        out.push_str(&format!("  error     Meta code {code}\n"));
    }
    if let (Some(name), Some(language), Some(waba)) = (
        &v.template_name,
        &v.template_language,
        dev.values.get("WAHOOK_WABA_ID"),
    ) {
        let k = wahook::domain::template::TemplateKey::new(waba, name, language);
        let found = store
            .find_templates(std::slice::from_ref(&k))
            .await
            .map_err(|e| e.to_string())?;
        match found.get(&k) {
            Some(r) => {
                let part = |v: Option<String>| v.unwrap_or_else(|| "?".into());
                out.push_str(&format!(
                    "  registry  status {}, category {}, quality {} (now)\n",
                    part(r.status.as_ref().map(|s| format!(
                        "{} as of {} UTC",
                        s.value,
                        when(s.at)
                    ))),
                    part(r.category.as_ref().map(|c| c.value.as_str().to_owned())),
                    part(r.quality.as_ref().map(|q| q.value.clone())),
                ));
            }
            None => out.push_str("  registry  the template is not in the registry\n"),
        }
    }
    Ok(out)
}

/// A contact and its messages, oldest first.
pub async fn contact_and_timeline(
    dev: &DevEnv,
    who: &str,
) -> Result<(ContactKey, Option<ContactState>, Vec<TimelineEntry>), String> {
    let store = dev.store().await?;
    let number = dev.number()?;
    let id = UserId::parse(who.trim_start_matches('+')).map_err(|e| e.to_string())?;
    let key = ContactKey::new(&number, &id);
    let found = store.find_contact(&key).await.map_err(|e| e.to_string())?;
    let mut keys = vec![key.clone()];
    let (home, state) = match found {
        Some((home, state)) => {
            if let Some(p) = &state.phone {
                keys.push(ContactKey::new(&number, &UserId::Phone(p.value.clone())));
            }
            keys.push(home.clone());
            (home, Some(state))
        }
        None => (key, None),
    };
    keys.sort();
    keys.dedup();
    let entries = store.timeline(&keys).await.map_err(|e| e.to_string())?;
    Ok((home, state, entries))
}

fn when(t: UnixTime) -> String {
    t.to_rfc3339().replace('T', " ").replace('Z', "")
}

/// The timeline as people read it. Message text is shown: this is the developer's own local data.
pub fn format_timeline(
    home: &ContactKey,
    state: Option<&ContactState>,
    entries: &[TimelineEntry],
    now: UnixTime,
) -> String {
    let mut out = String::new();
    let name = state
        .and_then(|s| s.profile_name.as_ref())
        .map(|n| format!(" ({})", n.value))
        .unwrap_or_default();
    out.push_str(&format!("contact {home}{name}\n"));
    match state.and_then(ContactState::window_expires_at) {
        Some(end) if end > now => {
            out.push_str(&format!("  window      open until {} UTC\n", when(end)))
        }
        Some(end) => out.push_str(&format!("  window      closed since {} UTC\n", when(end))),
        None => out.push_str("  window      never opened (the user has not written)\n"),
    }
    if let Some(end) = state.and_then(ContactState::entry_point_expires_at) {
        out.push_str(&format!("  entry point free until {} UTC\n", when(end)));
    }
    for category in Category::ALL {
        if let Some(p) = state.and_then(|s| s.preference(category)) {
            let what = match p.consent {
                Consent::OptedOut => "opted out",
                Consent::OptedIn => "opted in",
            };
            out.push_str(&format!(
                "  {:<11} {what} ({}, {} UTC)\n",
                category.as_str(),
                p.source.as_str(),
                when(p.at)
            ));
        }
        if let Some((c, s)) = state.and_then(|s| s.consents.get(&category).map(|c| (c, s))) {
            let standing = if s.has_recorded_consent(category) {
                "on record"
            } else {
                "withdrawn by a later opt-out"
            };
            out.push_str(&format!(
                "  {:<11} consent {standing} ({}, {} UTC)\n",
                "",
                c.value.source,
                when(c.at)
            ));
        }
    }
    if entries.is_empty() {
        out.push_str("  (no messages)\n");
    }
    for e in entries {
        let (arrow, what) = if e.direction == "in" {
            let content = e
                .raw
                .as_deref()
                .map(|raw| wahook::payload::MessageContent::parse(&e.kind, raw));
            let what = match &content {
                Some(wahook::payload::MessageContent::Text { body }) => format!("text \"{body}\""),
                Some(c) => c.label(),
                None => e.kind.clone(),
            };
            ("<-", what)
        } else {
            let what = match (&e.template_name, e.kind.as_str()) {
                (Some(t), _) => format!("template {t} ({})", e.category.as_deref().unwrap_or("?")),
                (None, kind) => format!("{kind} ({})", e.category.as_deref().unwrap_or("?")),
            };
            ("->", what)
        };
        let mut status = match (&e.status, e.error_code) {
            (Some(s), Some(code)) => format!("  [{s}, error {code}]"),
            (Some(s), None) => format!("  [{s}]"),
            (None, _) if e.direction == "out" => "  [accepted]".into(),
            _ => String::new(),
        };
        if let Some(p) = &e.pacing {
            status.push_str(&format!(" [{p}]"));
        }
        if let Some(via) = &e.endpoint {
            status.push_str(&format!(" via /{via}"));
        }
        match (&e.media_state, &e.media_where) {
            (Some(state), Some(place)) => status.push_str(&format!("  [media {state}: {place}]")),
            (Some(state), None) => status.push_str(&format!("  [media {state}]")),
            _ => {}
        }
        out.push_str(&format!("  {} UTC  {arrow} {what}{status}\n", when(e.at)));
    }
    out
}

/// Messages on the DLQ with their reasons (peeked: they stay on the queue).
pub async fn dead_letters(
    dev: &DevEnv,
) -> Result<Vec<(String, BTreeMap<String, String>, String)>, String> {
    let sdk = dev.sdk().await?;
    let out = aws_sdk_sqs::Client::new(&sdk)
        .receive_message()
        .queue_url(dev.get("WAHOOK_SENDS_DLQ_URL")?)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| aws_sdk_sqs::Error::from(e).to_string())?;
    Ok(out
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let attrs = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.clone(), v.string_value().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            (
                m.message_id.unwrap_or_default(),
                attrs,
                m.body.unwrap_or_default(),
            )
        })
        .collect())
}

/// Waits for `check`, printing progress, up to `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, String>>,
{
    let start = Instant::now();
    print!("   … {what}");
    let _ = std::io::stdout().flush();
    loop {
        if check().await? {
            println!(" ({:.1} s)", start.elapsed().as_secs_f64());
            return Ok(());
        }
        if start.elapsed() > limit {
            println!();
            return Err(format!(
                "timed out after {} s waiting for {what}",
                limit.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn sim_message_count(dev: &DevEnv) -> Result<usize, String> {
    {
        let url = format!("{}/_sim/messages", dev.get("WAHOOK_META_SIM_URL")?);
        let http = wahook::tls::https_client_builder()
            .build()
            .map_err(|e| e.to_string())?;
        let text = http
            .get(&url)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        let list: Vec<Value> = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        Ok(list.len())
    }
}

/// The scripted walk-through of a plain `scripts/dev.sh` run.
pub async fn demo(dev: &DevEnv) -> Result<(), String> {
    let run = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let ana = "+5215512345678";
    let limit = Duration::from_secs(20);
    let timeline = |who: &'static str| async move {
        let (home, state, entries) = contact_and_timeline(dev, who).await?;
        Ok::<_, String>((home, state, entries))
    };
    let ana_writes = |text: &'static str| async move {
        let message = Inbound {
            from: Some(ana.into()),
            user_id: Some("MX.1310418412279093".into()),
            name: "Ana García".into(),
            text: Some(text.into()),
            button: None,
            referral: false,
            media: None,
            caption: None,
        };
        inbound(dev, &message).await
    };

    println!("\n1. Ana writes \"Hola\" to the business");
    ana_writes("Hola").await?;
    wait_for("the message stored and her window open", limit, || async {
        let (_, state, _) = timeline(ana).await?;
        Ok(state.and_then(|s| s.window_expires_at()).is_some())
    })
    .await?;

    println!("\n   …and a photo of her receipt: the media function stores it in S3, checked");
    let photo = std::env::temp_dir().join(format!("wahook-demo-{run}.jpg"));
    let bytes: Vec<u8> = (0..48 * 1024u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&photo, &bytes).map_err(|e| format!("write {}: {e}", photo.display()))?;
    let sent_photo = inbound(
        dev,
        &Inbound {
            from: Some(ana.into()),
            user_id: Some("MX.1310418412279093".into()),
            name: "Ana García".into(),
            text: None,
            button: None,
            referral: false,
            media: Some(("image".into(), photo.display().to_string())),
            caption: Some("mi recibo".into()),
        },
    )
    .await;
    let _ = std::fs::remove_file(&photo);
    let photo_wamid = sent_photo?;
    wait_for("the photo in S3", limit, || async {
        let (_, _, entries) = timeline(ana).await?;
        Ok(entries
            .iter()
            .any(|e| e.wamid == photo_wamid && e.media_state.as_deref() == Some("stored")))
    })
    .await?;

    println!("\n2. A producer enqueues a utility template and a free-form reply");
    let template_key = format!("demo-{run}-order-shipped");
    let text_key = format!("demo-{run}-reply");
    send(
        dev,
        &json!({"v": 1, "idempotency_key": template_key, "to": ana, "category": "utility",
        "template": {"name": "order_shipped", "language": "es_MX",
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "A-1234"}]}]}}),
    )
    .await?;
    send(
        dev,
        &json!({"v": 1, "idempotency_key": text_key, "to": ana,
        "text": {"body": "¡Gracias! Tu pedido A-1234 sale hoy."}}),
    )
    .await?;
    wait_for("both sent to Meta (the simulator)", limit, || async {
        let a = ledger_state(dev, &template_key).await?;
        let b = ledger_state(dev, &text_key).await?;
        Ok(matches!(
            (a, b),
            (Some((SendState::Sent, _)), Some((SendState::Sent, _)))
        ))
    })
    .await?;
    wait_for(
        "their statuses back: sent → delivered → read",
        limit,
        || async {
            let (_, _, entries) = timeline(ana).await?;
            let out: Vec<_> = entries.iter().filter(|e| e.direction == "out").collect();
            Ok(out.len() == 2 && out.iter().all(|e| e.status.as_deref() == Some("read")))
        },
    )
    .await?;

    println!("\n3. Ana sends \"STOP\"; then a producer enqueues a marketing template");
    ana_writes("STOP").await?;
    wait_for("her opt-out recorded", limit, || async {
        let (_, state, _) = timeline(ana).await?;
        Ok(state
            .and_then(|s| s.preference(Category::Marketing).copied())
            .is_some_and(|p| p.consent == Consent::OptedOut))
    })
    .await?;
    let sent_before = sim_message_count(dev).await?;
    let promo_key = format!("demo-{run}-black-friday");
    send(
        dev,
        &json!({"v": 1, "idempotency_key": promo_key, "to": ana, "category": "marketing",
        "template": {"name": "black_friday", "language": "es_MX"}}),
    )
    .await?;
    wait_for(
        "the marketing send suppressed, without a call to Meta",
        limit,
        || async {
            Ok(matches!(
                ledger_state(dev, &promo_key).await?,
                Some((SendState::Suppressed, _))
            ))
        },
    )
    .await?;
    if sim_message_count(dev).await? != sent_before {
        return Err("the suppressed send reached the simulator".into());
    }

    println!("\n4. Ana's timeline\n");
    let (home, state, entries) = timeline(ana).await?;
    print!(
        "{}",
        format_timeline(&home, state.as_ref(), &entries, UnixTime::now())
    );
    Ok(())
}

/// Minimal flag parsing for the CLI.
pub struct Args(Vec<String>);

impl Args {
    pub fn new(args: Vec<String>) -> Self {
        Self(args)
    }

    /// `--name value`, removed from the list.
    pub fn value(&mut self, name: &str) -> Option<String> {
        let i = self.0.iter().position(|a| a == name)?;
        if i + 1 < self.0.len() {
            let v = self.0.remove(i + 1);
            self.0.remove(i);
            Some(v)
        } else {
            None
        }
    }

    /// `--name`, removed from the list.
    pub fn flag(&mut self, name: &str) -> bool {
        match self.0.iter().position(|a| a == name) {
            Some(i) => {
                self.0.remove(i);
                true
            }
            None => false,
        }
    }

    pub fn positional(&mut self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.remove(0))
    }

    /// Errors if anything was not understood.
    pub fn done(&self) -> Result<(), String> {
        match self.0.first() {
            None => Ok(()),
            Some(a) => Err(format!("unexpected argument {a:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_values_and_leftovers() {
        let mut a = Args::new(
            ["--to", "+1555", "--referral", "x"]
                .map(String::from)
                .to_vec(),
        );
        assert_eq!(a.value("--to").as_deref(), Some("+1555"));
        assert!(a.flag("--referral"));
        assert!(!a.flag("--missing"));
        assert_eq!(a.done().unwrap_err(), "unexpected argument \"x\"");
    }

    #[test]
    fn a_timeline_reads_like_a_conversation() {
        let number = PhoneNumberId::parse("1").unwrap();
        let home = ContactKey::new(&number, &UserId::parse("15551234567").unwrap());
        let mut state = ContactState::default();
        state.observe_inbound(UnixTime::from_secs(1_000));
        state.observe_profile_name("Ana".into(), UnixTime::from_secs(1_000));
        let mut entries = vec![TimelineEntry {
            wamid: "w1".into(),
            at: UnixTime::from_secs(1_000),
            direction: "in".into(),
            kind: "text".into(),
            raw: Some(r#"{"id":"w1","type":"text","text":{"body":"Hola"}}"#.into()),
            status: None,
            template_name: None,
            category: None,
            error_code: None,
            idempotency_key: None,
            pacing: None,
            endpoint: None,
            media_state: None,
            media_where: None,
        }];
        entries.push(TimelineEntry {
            wamid: "w0".into(),
            at: UnixTime::from_secs(1_050),
            direction: "in".into(),
            kind: "image".into(),
            raw: Some(r#"{"id":"w0","type":"image","image":{"id":"9"}}"#.into()),
            media_state: Some("stored".into()),
            media_where: Some("s3://media/inbound/1/w0".into()),
            ..entries[0].clone()
        });
        entries.push(TimelineEntry {
            wamid: "w2".into(),
            at: UnixTime::from_secs(1_100),
            direction: "out".into(),
            kind: "template".into(),
            raw: None,
            status: Some("delivered".into()),
            template_name: Some("spring_sale".into()),
            category: Some("marketing".into()),
            error_code: None,
            idempotency_key: Some("k".into()),
            pacing: Some("held_for_quality_assessment".into()),
            endpoint: Some("marketing_messages".into()),
            media_state: None,
            media_where: None,
        });
        let out = format_timeline(&home, Some(&state), &entries, UnixTime::from_secs(2_000));
        assert!(
            out.contains("-> template spring_sale (marketing)  [delivered] [held_for_quality_assessment] via /marketing_messages"),
            "{out}"
        );
        assert!(out.contains("contact 1#15551234567 (Ana)"), "{out}");
        assert!(
            out.contains("window      open until 1970-01-02 00:16:40 UTC"),
            "{out}"
        );
        assert!(out.contains("<- text \"Hola\""), "{out}");
        assert!(
            out.contains("<- [image]  [media stored: s3://media/inbound/1/w0]"),
            "{out}"
        );
    }
}
