//! The figures table: counters per day and row, and a marker item per fact counted. A fact is
//! counted by one transaction: the marker's Put (only if absent) and the row's `ADD`. A fact seen
//! again finds its marker, and the transaction changes nothing: counts are exact under redelivery,
//! retries and replays (docs/events.md).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};

use super::attrs::{get_n, get_s, n, s, Item};
use super::contacts::transaction_conflict;
use super::tables::{FIGURES, MESSAGES_BY_CONTACT};
use super::{cancelled_by_condition, Store, StoreError};
use crate::domain::figures::Fact;
use crate::retry::Rounds;

/// The marker items' partition key prefix (`fact#{id}`); rows are keyed by day.
const MARKER_PREFIX: &str = "fact#";

/// What counting a fact did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Added,
    /// Already counted (its marker exists): nothing changed.
    Before,
}

/// One row as read: its key parts and counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FigureRow {
    pub template: String,
    pub language: String,
    pub category: String,
    pub counts: BTreeMap<String, i64>,
}

impl FigureRow {
    pub fn get(&self, name: &str) -> i64 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    /// Replies per delivered message (what the reply-rate alarm reads), once any was delivered.
    pub fn reply_rate(&self) -> Option<f64> {
        let delivered = self.get("delivered");
        (delivered > 0).then(|| self.get("replied") as f64 / delivered as f64)
    }
}

impl Store {
    /// Adds a fact's counts to its row, unless the fact was counted before.
    pub async fn count_fact(&self, fact: &Fact) -> Result<Counted, StoreError> {
        let table = &self.tables.figures;
        let (pk, sk) = (FIGURES.partition_key.name, "row");
        let expires_at = crate::domain::time::UnixTime::now()
            .secs()
            .saturating_add(self.retention_secs);
        let marker = |id: &str| {
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(HashMap::from([
                    (pk.to_owned(), s(format!("{MARKER_PREFIX}{id}"))),
                    (sk.to_owned(), s("-")),
                    ("expires_at".to_owned(), n(expires_at)),
                ])))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", pk)
                .build()
                .expect("table and item are set");
            TransactWriteItem::builder().put(put).build()
        };
        // The markers first (items 0 and 1): a cancellation on either is "counted before".
        let mut items = vec![marker(&fact.id)];
        if let Some(other) = &fact.exclusive_with {
            items.push(marker(other));
        }
        let markers = items.len();
        let mut names = HashMap::from([
            ("#template".to_owned(), "template".to_owned()),
            ("#language".to_owned(), "language".to_owned()),
            ("#category".to_owned(), "category".to_owned()),
        ]);
        let mut values = HashMap::from([
            (":template".to_owned(), s(&fact.key.template)),
            (":language".to_owned(), s(&fact.key.language)),
            (":category".to_owned(), s(&fact.key.category)),
        ]);
        let mut adds = Vec::new();
        for (i, (counter, by)) in fact.counts.iter().enumerate() {
            names.insert(format!("#c{i}"), counter.clone());
            values.insert(format!(":c{i}"), n(*by));
            adds.push(format!("#c{i} :c{i}"));
        }
        let mut expression =
            "SET #template = :template, #language = :language, #category = :category".to_owned();
        if !adds.is_empty() {
            expression.push_str(" ADD ");
            expression.push_str(&adds.join(", "));
        }
        let row = Update::builder()
            .table_name(table)
            .key(pk, s(&fact.key.day))
            .key(sk, s(fact.key.row()))
            .update_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .expect("table, key and expression are set");
        // A campaign's facts land on one row at once, and DynamoDB cancels a transaction that
        // meets another on the same item (`TransactionConflict`): those go again, with backoff.
        let mut rounds = Rounds::new();
        let mut last = None;
        while rounds.next().await.is_some() {
            let mut all = items.clone();
            all.push(TransactWriteItem::builder().update(row.clone()).build());
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(all))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Counted::Added),
                // The marker's condition failed: counted before (or by this very call, whose
                // answer a retry of the SDK's did not see).
                Err(e) if (0..markers).any(|i| cancelled_by_condition(&e, Some(i))) => {
                    return Ok(Counted::Before)
                }
                Err(e) if transaction_conflict(&e) => last = Some(e),
                Err(e) => return Err(StoreError::dynamo("TransactWriteItems", table, e)),
            }
        }
        Err(StoreError::dynamo(
            "TransactWriteItems",
            table,
            last.expect("at least one round ran"),
        ))
    }

    /// The rows of one day (`YYYY-MM-DD`), by template, language and category.
    pub async fn figures_of_day(&self, day: &str) -> Result<Vec<FigureRow>, StoreError> {
        let table = &self.tables.figures;
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(table)
            .key_condition_expression("#d = :d")
            .expression_attribute_names("#d", FIGURES.partition_key.name)
            .expression_attribute_values(":d", s(day))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| StoreError::dynamo("Query", table, e))?;
        Ok(items.iter().map(row_from_item).collect())
    }

    /// The messages on one contact's timeline with `at` in `from..=to` (epoch seconds), as stored:
    /// what the reply credit reads.
    pub async fn messages_between(
        &self,
        contact: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<Item>, StoreError> {
        let table = &self.tables.messages;
        self.client
            .query()
            .table_name(table)
            .index_name(MESSAGES_BY_CONTACT.name)
            .key_condition_expression("#c = :c AND #at BETWEEN :from AND :to")
            .expression_attribute_names("#c", "contact")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":c", s(contact))
            .expression_attribute_values(":from", n(from))
            .expression_attribute_values(":to", n(to))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| StoreError::dynamo("Query", table, e))
    }
}

fn row_from_item(item: &Item) -> FigureRow {
    let text = |k: &str| get_s(item, k).unwrap_or("-").to_owned();
    let counts = item
        .keys()
        .filter(|k| {
            !matches!(
                k.as_str(),
                "day" | "row" | "template" | "language" | "category"
            )
        })
        .filter_map(|k| get_n(item, k).map(|v| (k.clone(), v)))
        .collect();
    FigureRow {
        template: text("template"),
        language: text("language"),
        category: text("category"),
        counts,
    }
}
