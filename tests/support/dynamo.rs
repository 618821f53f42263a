//! DynamoDB helpers for tests: reading everything back, counting requests, injecting a failure.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use aws_sdk_dynamodb::config::Intercept;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_types::config_bag::ConfigBag;
use wahook::store::tables::TableNames;

/// Attributes that record when or how often something was written, not what: left out of
/// comparisons between runs that only differ in timing and order.
pub const BOOKKEEPING: &[&str] = &["version", "received_at"];

/// A table's items, each as attribute → rendered value, sorted.
pub type Items = Vec<BTreeMap<String, String>>;

/// Every table's items, without bookkeeping attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    pub contacts: Items,
    pub messages: Items,
    pub events: Items,
    pub sends: Items,
}

impl StoredState {
    /// The items present in one state and not the other, per table: empty when equal.
    pub fn diff(&self, other: &StoredState) -> String {
        let mut out = String::new();
        for (table, a, b) in [
            ("contacts", &self.contacts, &other.contacts),
            ("messages", &self.messages, &other.messages),
            ("events", &self.events, &other.events),
            ("sends", &self.sends, &other.sends),
        ] {
            for item in a.iter().filter(|i| !b.contains(i)) {
                out.push_str(&format!("{table} only in left:  {item:?}\n"));
            }
            for item in b.iter().filter(|i| !a.contains(i)) {
                out.push_str(&format!("{table} only in right: {item:?}\n"));
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty()
            && self.messages.is_empty()
            && self.events.is_empty()
            && self.sends.is_empty()
    }
}

/// Renders an attribute value deterministically (maps sorted), for comparisons and messages.
pub fn render(v: &AttributeValue) -> String {
    match v {
        AttributeValue::S(s) => s.clone(),
        AttributeValue::N(n) => n.clone(),
        AttributeValue::Bool(b) => b.to_string(),
        AttributeValue::B(b) => format!("<{} bytes>", b.as_ref().len()),
        AttributeValue::M(m) => {
            let sorted: BTreeMap<&String, String> = m.iter().map(|(k, v)| (k, render(v))).collect();
            format!("{sorted:?}")
        }
        AttributeValue::L(l) => format!("{:?}", l.iter().map(render).collect::<Vec<_>>()),
        other => format!("{other:?}"),
    }
}

fn normalise(item: &HashMap<String, AttributeValue>) -> BTreeMap<String, String> {
    // An event with no payload time expires relative to its arrival: that is bookkeeping too.
    let arrival_expiry = item.contains_key("event_id") && !item.contains_key("at");
    item.iter()
        .filter(|(k, _)| !BOOKKEEPING.contains(&k.as_str()))
        .filter(|(k, _)| !(arrival_expiry && k.as_str() == "expires_at"))
        .map(|(k, v)| (k.clone(), render(v)))
        .collect()
}

pub async fn scan(client: &Client, table: &str) -> Items {
    let mut items: Items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan a test table");
        items.extend(out.items().iter().map(normalise));
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    items.sort();
    items
}

pub async fn dump(client: &Client, tables: &TableNames) -> StoredState {
    StoredState {
        contacts: scan(client, &tables.contacts).await,
        messages: scan(client, &tables.messages).await,
        events: scan(client, &tables.events).await,
        sends: scan(client, &tables.sends).await,
    }
}

pub async fn get_item(
    client: &Client,
    table: &str,
    key_attr: &str,
    key: &str,
) -> Option<BTreeMap<String, String>> {
    client
        .get_item()
        .table_name(table)
        .key(key_attr, AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("get a test item")
        .item()
        .map(|i| i.iter().map(|(k, v)| (k.clone(), render(v))).collect())
}

/// Counts DynamoDB operations (not retry attempts) by name.
#[derive(Debug, Default)]
pub struct RequestCounter {
    counts: Mutex<BTreeMap<String, usize>>,
}

impl RequestCounter {
    pub fn reset(&self) {
        self.counts.lock().unwrap().clear();
    }

    pub fn get(&self, operation: &str) -> usize {
        self.counts
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// PutItem, UpdateItem, DeleteItem, BatchWriteItem and TransactWriteItems requests.
    pub fn writes(&self) -> usize {
        [
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "BatchWriteItem",
            "TransactWriteItems",
        ]
        .iter()
        .map(|op| self.get(op))
        .sum()
    }

    pub fn snapshot(&self) -> BTreeMap<String, usize> {
        self.counts.lock().unwrap().clone()
    }
}

/// The operation, told by the type of its input (client-level interceptors do not see the
/// operation's metadata in this SDK version).
fn operation_name(context: &BeforeSerializationInterceptorContextRef<'_>) -> &'static str {
    use aws_sdk_dynamodb::operation as op;
    let input = context.input();
    macro_rules! name_of {
        ($($module:ident :: $ty:ident => $name:literal),* $(,)?) => {
            $(if input.downcast_ref::<op::$module::$ty>().is_some() { return $name; })*
        };
    }
    name_of!(
        put_item::PutItemInput => "PutItem",
        update_item::UpdateItemInput => "UpdateItem",
        delete_item::DeleteItemInput => "DeleteItem",
        transact_write_items::TransactWriteItemsInput => "TransactWriteItems",
        batch_write_item::BatchWriteItemInput => "BatchWriteItem",
        get_item::GetItemInput => "GetItem",
        batch_get_item::BatchGetItemInput => "BatchGetItem",
        query::QueryInput => "Query",
        scan::ScanInput => "Scan",
    );
    // The publisher's bus call: the same injector stands in for EventBridge being down.
    if input
        .downcast_ref::<aws_sdk_eventbridge::operation::put_events::PutEventsInput>()
        .is_some()
    {
        return "PutEvents";
    }
    "Other"
}

#[derive(Debug)]
pub struct CountingInterceptor(pub std::sync::Arc<RequestCounter>);

impl Intercept for CountingInterceptor {
    fn name(&self) -> &'static str {
        "wahook-tests-counter"
    }

    // Once per operation, before the retry loop: operations are counted, not attempts.
    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut counts = self.0.counts.lock().unwrap();
        *counts
            .entry(operation_name(context).to_owned())
            .or_insert(0) += 1;
        Ok(())
    }
}

/// Fails write requests once armed: after `fail_after` more writes have gone through, every further
/// write fails until disarmed. Stands in for a DynamoDB outage that moto cannot produce on demand.
#[derive(Debug, Default)]
pub struct FaultInjector {
    armed: Mutex<Option<usize>>,
    /// Fail the next N calls of one operation.
    targeted: Mutex<Option<(&'static str, usize)>>,
    injected: AtomicUsize,
}

impl FaultInjector {
    pub fn fail_writes_after(&self, n: usize) {
        *self.armed.lock().unwrap() = Some(n);
    }

    pub fn disarm(&self) {
        *self.armed.lock().unwrap() = None;
        *self.targeted.lock().unwrap() = None;
    }

    /// The next `times` calls of `operation` fail (others go through).
    pub fn fail_next(&self, operation: &'static str, times: usize) {
        *self.targeted.lock().unwrap() = Some((operation, times));
    }

    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
pub struct FaultInterceptor(pub std::sync::Arc<FaultInjector>);

impl Intercept for FaultInterceptor {
    fn name(&self) -> &'static str {
        "wahook-tests-fault"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation_name(context);
        {
            let mut targeted = self.0.targeted.lock().unwrap();
            if let Some((target, left)) = targeted.as_mut() {
                if *target == op && *left > 0 {
                    *left -= 1;
                    self.0.injected.fetch_add(1, Ordering::SeqCst);
                    return Err(format!("injected failure on {op}").into());
                }
            }
        }
        if !matches!(op, "PutItem" | "UpdateItem" | "TransactWriteItems") {
            return Ok(());
        }
        let mut armed = self.0.armed.lock().unwrap();
        match armed.as_mut() {
            Some(0) => {
                self.0.injected.fetch_add(1, Ordering::SeqCst);
                Err(format!("injected DynamoDB outage on {op}").into())
            }
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}
