//! What Lambda's DynamoDB stream event source mapping does, locally: read each table's stream from a
//! checkpoint, hand the records to `wahook_publisher::handle` as a real stream event, and move the
//! checkpoint past what the batch response does not name as failed.
//!
//! Every poll takes a fresh `AFTER_SEQUENCE_NUMBER` iterator from the checkpoint instead of following
//! `NextShardIterator`: moto 5.2 replaces a table's stream shard with a copy when a transaction is
//! cancelled, and an iterator kept across polls would go on reading the dead shard (docs/events.md).
//! Checkpoints live in memory: the local stack's moto starts empty with the stack, so a fresh
//! poller starting from the oldest record (`TRIM_HORIZON`) publishes each record once.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use lambda_runtime::LambdaEvent;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use wahook::publish::Publisher;
use wahook::store::tables::{TableNames, STREAMED_TABLES};
use wahook_publisher::StreamEvent;

/// What one poll did, over every table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamPollReport {
    pub records: usize,
    /// Batches whose response named a failed record: the checkpoint stayed before it.
    pub failed_batches: usize,
}

pub struct StreamPoller {
    streams: aws_sdk_dynamodbstreams::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    tables: Vec<String>,
    region: String,
    publisher: Arc<Publisher>,
    /// `table/shard` → the last sequence number handed over and not failed.
    checkpoints: Mutex<BTreeMap<String, String>>,
    function_timeout: std::time::Duration,
}

impl StreamPoller {
    /// A poller of every table's stream (`tables`: their physical names).
    pub fn new(
        sdk: &aws_config::SdkConfig,
        tables: &TableNames,
        publisher: Arc<Publisher>,
    ) -> Self {
        Self {
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            tables: STREAMED_TABLES
                .iter()
                .map(|def| tables.name_of(def).to_owned())
                .collect(),
            region: sdk
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "us-east-1".into()),
            publisher,
            checkpoints: Mutex::new(BTreeMap::new()),
            function_timeout: std::time::Duration::from_secs(60),
        }
    }

    /// The publisher function's timeout, for each batch's deadline.
    pub fn with_function_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.function_timeout = timeout;
        self
    }

    /// Reads every table's stream once (up to 100 records per shard) and publishes what it read.
    pub async fn poll_once(&self) -> Result<StreamPollReport, String> {
        let mut report = StreamPollReport::default();
        // Table by table: one table's lookup failing does not hold back the tables before it.
        for table in &self.tables {
            for (arn, shard_id) in self.shards(table).await? {
                let key = format!("{table}/{shard_id}");
                let (records, failed) = self.poll_shard(&arn, &shard_id, &key).await?;
                report.records += records;
                report.failed_batches += usize::from(failed);
            }
        }
        Ok(report)
    }

    /// Every record every stream holds, oldest first per shard, in Lambda's record shape, without
    /// publishing anything or moving a checkpoint: what a replay feeds the publisher again.
    pub async fn read_all(&self) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for table in &self.tables {
            for (arn, shard_id) in self.shards(table).await? {
                let mut iterator = self.shard_iterator(&arn, &shard_id, None).await?;
                while let Some(it) = iterator {
                    let got = self.records(it, None).await?;
                    if got.records().is_empty() {
                        break;
                    }
                    out.extend(got.records().iter().map(|r| self.lambda_record(&arn, r)));
                    iterator = got.next_shard_iterator;
                }
            }
        }
        Ok(out)
    }

    /// (stream ARN, shard id) of every shard of `table`'s stream; none when it has no stream (the
    /// local stack enables them; a table without one has nothing to publish).
    async fn shards(&self, table: &str) -> Result<Vec<(String, String)>, String> {
        let described = self
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "DescribeTable {table}: {}",
                    aws_sdk_dynamodb::Error::from(e)
                )
            })?;
        let Some(arn) = described.table().and_then(|t| t.latest_stream_arn()) else {
            return Ok(Vec::new());
        };
        let stream = self
            .streams
            .describe_stream()
            .stream_arn(arn)
            .send()
            .await
            .map_err(|e| streams_error(&format!("DescribeStream {arn}"), e))?;
        let shards = stream
            .stream_description()
            .map(|d| d.shards())
            .unwrap_or_default();
        Ok(shards
            .iter()
            .filter_map(|s| s.shard_id())
            .map(|id| (arn.to_owned(), id.to_owned()))
            .collect())
    }

    /// A fresh iterator: after `checkpoint`, or from the oldest record.
    async fn shard_iterator(
        &self,
        arn: &str,
        shard_id: &str,
        checkpoint: Option<&str>,
    ) -> Result<Option<String>, String> {
        let request = self
            .streams
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(shard_id);
        let request = match checkpoint {
            Some(seq) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        Ok(request
            .send()
            .await
            .map_err(|e| streams_error("GetShardIterator", e))?
            .shard_iterator)
    }

    /// One GetRecords call (up to `limit` records).
    async fn records(
        &self,
        iterator: String,
        limit: Option<i32>,
    ) -> Result<aws_sdk_dynamodbstreams::operation::get_records::GetRecordsOutput, String> {
        self.streams
            .get_records()
            .shard_iterator(iterator)
            .set_limit(limit)
            .send()
            .await
            .map_err(|e| streams_error("GetRecords", e))
    }

    async fn poll_shard(
        &self,
        arn: &str,
        shard_id: &str,
        key: &str,
    ) -> Result<(usize, bool), String> {
        let checkpoint = self.checkpoints.lock().await.get(key).cloned();
        let iterator = self
            .shard_iterator(arn, shard_id, checkpoint.as_deref())
            .await?
            .ok_or("GetShardIterator answered no iterator")?;
        let out = self.records(iterator, Some(100)).await?;
        let records = out.records();
        if records.is_empty() {
            return Ok((0, false));
        }
        let sequences: Vec<String> = records
            .iter()
            .map(|r| {
                r.dynamodb()
                    .and_then(|d| d.sequence_number())
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        let event = StreamEvent {
            records: records.iter().map(|r| self.lambda_record(arn, r)).collect(),
        };
        let context = crate::invocation_context(self.function_timeout);
        let response = wahook_publisher::handle(&self.publisher, LambdaEvent::new(event, context))
            .await
            .map_err(|e| format!("the publisher failed the whole batch: {e}"))?;
        let failed_at = response
            .batch_item_failures
            .first()
            .map(|f| f.item_identifier.clone());
        // Past everything before the first failed record; an unknown identifier fails the batch.
        let done = match &failed_at {
            None => sequences.last().cloned(),
            Some(f) => sequences
                .iter()
                .position(|s| s == f)
                .and_then(|i| i.checked_sub(1))
                .map(|i| sequences[i].clone()),
        };
        if let Some(done) = done {
            self.checkpoints.lock().await.insert(key.to_owned(), done);
        }
        Ok((records.len(), failed_at.is_some()))
    }

    /// A record in Lambda's event shape.
    fn lambda_record(&self, arn: &str, r: &Record) -> Value {
        let d = r.dynamodb();
        let image = |i: Option<&std::collections::HashMap<String, AttributeValue>>| {
            i.map(|m| Value::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()))
        };
        let mut dynamodb = json!({
            "SequenceNumber": d.and_then(|d| d.sequence_number()),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "Keys": image(d.and_then(|d| d.keys.as_ref())),
        });
        if let Some(new) = image(d.and_then(|d| d.new_image.as_ref())) {
            dynamodb["NewImage"] = new;
        }
        if let Some(old) = image(d.and_then(|d| d.old_image.as_ref())) {
            dynamodb["OldImage"] = old;
        }
        json!({
            "eventID": r.event_id(),
            "eventName": r.event_name().map(|n| n.as_str()),
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self.region,
            "eventSourceARN": arn,
            "dynamodb": dynamodb,
        })
    }
}

fn streams_error<E, R>(operation: &str, e: aws_sdk_dynamodbstreams::error::SdkError<E, R>) -> String
where
    aws_sdk_dynamodbstreams::Error: From<aws_sdk_dynamodbstreams::error::SdkError<E, R>>,
{
    format!("{operation}: {}", aws_sdk_dynamodbstreams::Error::from(e))
}

fn to_json(v: &AttributeValue) -> Value {
    use base64::Engine;
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        json!(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
    };
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(v) => json!({ "L": v.iter().map(to_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => {
            json!({ "M": m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect::<serde_json::Map<_, _>>() })
        }
        _ => json!({ "NULL": true }),
    }
}
