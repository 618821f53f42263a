//! DynamoDB repositories for contacts, messages and events.
//!
//! Every write is idempotent: inbound messages and events are put only if absent; contacts and status'd
//! messages are read, joined in memory (the domain's merge functions), and written back only if they
//! changed, guarded by a version so a concurrent writer's update is never lost.

pub mod attrs;
pub mod contacts;
pub mod events;
pub mod figures;
pub mod media;
pub mod messages;
pub mod sends;
pub mod tables;
pub mod templates;

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure,
};
use aws_sdk_dynamodb::Client;

use crate::retry::backoff;
use attrs::Item;
pub use tables::TableNames;

/// A storage failure. The webhook answers 5xx on any of these so Meta redelivers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB {operation} on table {table} failed: {message}")]
    Dynamo {
        operation: &'static str,
        table: String,
        message: String,
    },
    #[error("{what} {key} kept changing under concurrent writers; gave up after {attempts} attempts (Meta will redeliver)")]
    Contention {
        what: &'static str,
        key: String,
        attempts: u32,
    },
    #[error("the item {key} in table {table} exists but cannot be read as a ledger entry: inspect it; the record is retried (and dead-lettered by SQS after maxReceiveCount) and nothing is sent meanwhile")]
    Unreadable { table: String, key: String },
}

impl StoreError {
    pub(crate) fn dynamo<E, R>(operation: &'static str, table: &str, err: SdkError<E, R>) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: std::fmt::Debug + 'static,
    {
        // A service error reads best as its code and message; a transport failure (timeout, no route)
        // needs the whole chain of causes.
        let message = match err
            .as_service_error()
            .and_then(|e| e.code().map(|c| (c, e.message())))
        {
            Some((code, message)) => format!("{code}: {}", message.unwrap_or("no message")),
            None => crate::telemetry::error_chain(&err),
        };
        StoreError::Dynamo {
            operation,
            table: table.to_owned(),
            message,
        }
    }
}

/// What a put-if-absent found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Duplicate,
}

/// What a versioned write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// Someone else wrote first: read again and retry.
    Conflict,
}

/// How long items live after their payload time, and the client and table names.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) client: Client,
    pub(crate) tables: TableNames,
    pub(crate) retention_secs: i64,
}

impl Store {
    pub fn new(client: Client, tables: TableNames, retention_days: u32) -> Self {
        Self {
            client,
            tables,
            retention_secs: i64::from(retention_days) * 24 * 60 * 60,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn tables(&self) -> &TableNames {
        &self.tables
    }

    /// Puts `item` unless an item with its key exists: the dedupe of everything immutable.
    pub(crate) async fn put_if_absent(
        &self,
        table: &str,
        key_attr: &str,
        item: Item,
    ) -> Result<PutOutcome, StoreError> {
        Ok(match self.put_new(table, key_attr, item).await? {
            None => PutOutcome::Created,
            Some(_) => PutOutcome::Duplicate,
        })
    }

    /// Puts `item` unless an item with its key exists; returns that item if it does (DynamoDB hands it
    /// back with the failed condition, so no extra read).
    pub(crate) async fn put_new(
        &self,
        table: &str,
        key_attr: &str,
        item: Item,
    ) -> Result<Option<Item>, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", key_attr)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(e) if condition_failed(&e) => Ok(Some(
                match e.into_service_error() {
                    PutItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                }
                .unwrap_or_default(),
            )),
            Err(e) => Err(StoreError::dynamo("PutItem", table, e)),
        }
    }

    /// Strongly consistent BatchGetItem of `keys` (any number; chunked by 100, unprocessed keys
    /// retried). Returns the items found, keyed by the partition key's string value.
    pub(crate) async fn batch_get(
        &self,
        table: &str,
        key_attr: &str,
        keys: &[String],
    ) -> Result<HashMap<String, Item>, StoreError> {
        let mut found = HashMap::new();
        let mut unique: Vec<&String> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(100) {
            let mut request: Vec<Item> = chunk
                .iter()
                .map(|k| HashMap::from([(key_attr.to_owned(), AttributeValue::S((*k).clone()))]))
                .collect();
            let mut attempt = 0u32;
            while !request.is_empty() {
                let kaa = KeysAndAttributes::builder()
                    .set_keys(Some(request))
                    .consistent_read(true)
                    .build()
                    .expect("keys are set");
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(table, kaa)
                    .send()
                    .await
                    .map_err(|e| StoreError::dynamo("BatchGetItem", table, e))?;
                for item in out
                    .responses
                    .unwrap_or_default()
                    .remove(table)
                    .unwrap_or_default()
                {
                    if let Some(k) = attrs::get_s(&item, key_attr) {
                        found.insert(k.to_owned(), item.clone());
                    }
                }
                request = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !request.is_empty() {
                    attempt += 1;
                    if attempt > 8 {
                        return Err(StoreError::Dynamo {
                            operation: "BatchGetItem",
                            table: table.to_owned(),
                            message: format!(
                                "{} keys still unprocessed after {attempt} attempts (throttled)",
                                request.len()
                            ),
                        });
                    }
                    backoff(attempt).await;
                }
            }
        }
        Ok(found)
    }
}

/// A transaction cancelled because a condition failed: on item `item` of it, or on any (`None`).
pub(crate) fn cancelled_by_condition<R>(
    err: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
    item: Option<usize>,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    let failed = |r: &aws_sdk_dynamodb::types::CancellationReason| {
        r.code() == Some("ConditionalCheckFailed")
    };
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
            let reasons = e.cancellation_reasons();
            match item {
                Some(i) => reasons.get(i).is_some_and(failed),
                None => reasons.iter().any(failed),
            }
        }
        _ => false,
    }
}

/// Whether a conditional write found the item not as expected (a duplicate, or a lost race).
pub(crate) fn condition_failed<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// What a conditional (versioned) write's answer means: written, lost a race (read again and retry),
/// or a storage failure.
pub(crate) fn versioned_outcome<T, E, R>(
    result: Result<T, SdkError<E, R>>,
    operation: &'static str,
    table: &str,
) -> Result<WriteOutcome, StoreError>
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug + 'static,
{
    match result {
        Ok(_) => Ok(WriteOutcome::Written),
        Err(e) if condition_failed(&e) => Ok(WriteOutcome::Conflict),
        Err(e) => Err(StoreError::dynamo(operation, table, e)),
    }
}
