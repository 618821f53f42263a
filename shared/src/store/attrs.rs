//! Small helpers between DynamoDB attribute values and Rust values. Numbers are epoch seconds or
//! counters stored as DynamoDB numbers (TTL only works on numbers).

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

pub type Item = HashMap<String, AttributeValue>;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub fn b(v: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(v))
}

pub fn m(entries: impl IntoIterator<Item = (String, AttributeValue)>) -> AttributeValue {
    AttributeValue::M(entries.into_iter().collect())
}

pub fn get_s<'i>(item: &'i Item, name: &str) -> Option<&'i str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

pub fn get_m<'i>(item: &'i Item, name: &str) -> Option<&'i Item> {
    item.get(name).and_then(|v| v.as_m().ok())
}

/// The item's `version`, 0 when absent (an item written before versions existed).
pub fn version_of(item: &Item) -> u64 {
    get_n(item, "version").map_or(0, |v| v.max(0) as u64)
}

/// Builds `SET a = :a, …` update expressions with generated placeholders, so attribute names never
/// clash with DynamoDB's reserved words.
#[derive(Default)]
pub struct UpdateBuilder {
    sets: Vec<String>,
    removes: Vec<String>,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl UpdateBuilder {
    fn placeholder(&mut self, name: &str) -> (String, String) {
        let i = self.names.len();
        let (pn, pv) = (format!("#a{i}"), format!(":a{i}"));
        self.names.insert(pn.clone(), name.to_owned());
        (pn, pv)
    }

    /// `name = value`.
    pub fn set(&mut self, name: &str, value: AttributeValue) -> &mut Self {
        let (pn, pv) = self.placeholder(name);
        self.sets.push(format!("{pn} = {pv}"));
        self.values.insert(pv, value);
        self
    }

    /// `name = if_not_exists(name, value)`: written once, never overwritten.
    pub fn set_once(&mut self, name: &str, value: AttributeValue) -> &mut Self {
        let (pn, pv) = self.placeholder(name);
        self.sets.push(format!("{pn} = if_not_exists({pn}, {pv})"));
        self.values.insert(pv, value);
        self
    }

    /// `REMOVE name`.
    pub fn remove(&mut self, name: &str) -> &mut Self {
        let (pn, _) = self.placeholder(name);
        self.removes.push(pn);
        self
    }

    /// A placeholder for `name` in a condition (`#aN`).
    pub fn name_of(&mut self, name: &str) -> String {
        self.placeholder(name).0
    }

    /// `name = value` if `value` is `Some`.
    pub fn set_opt(&mut self, name: &str, value: Option<AttributeValue>) -> &mut Self {
        if let Some(v) = value {
            self.set(name, v);
        }
        self
    }

    /// The condition for optimistic concurrency: the item is absent (`None`) or at `version`. Also sets
    /// the next version.
    pub fn versioned(&mut self, expected: Option<u64>) -> String {
        let next = expected.map_or(1, |v| v + 1);
        let (pn, pv) = self.placeholder("version");
        self.sets.push(format!("{pn} = {pv}"));
        self.values.insert(pv, n(next as i64));
        match expected {
            // Version 0 is how an item without a version attribute reads back: accept it as such.
            None | Some(0) => format!("attribute_not_exists({pn})"),
            Some(v) => {
                self.values.insert(":expected_version".into(), n(v as i64));
                format!("{pn} = :expected_version")
            }
        }
    }

    pub fn expression(&self) -> String {
        let set = format!("SET {}", self.sets.join(", "));
        if self.removes.is_empty() {
            set
        } else {
            format!("{set} REMOVE {}", self.removes.join(", "))
        }
    }
}
