//! DynamoDB stream records as the publisher reads them: Lambda's event JSON (the shape of
//! `aws_lambda_events`' DynamoDB event, read here without its `serde_dynamo` dependency) and the
//! local poller's records both become [`ChangeRecord`]s over the store's own [`Item`] type, so the
//! events are derived by one function whichever way the record came.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::store::attrs::Item;
use crate::store::tables::TableNames;

/// Which of our tables a record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceTable {
    Messages,
    Contacts,
    Sends,
    Templates,
    Events,
}

impl SourceTable {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceTable::Messages => "messages",
            SourceTable::Contacts => "contacts",
            SourceTable::Sends => "sends",
            SourceTable::Templates => "templates",
            SourceTable::Events => "events",
        }
    }

    /// The table a stream ARN (`arn:aws:dynamodb:…:table/NAME/stream/LABEL`) belongs to, by the
    /// configured physical names.
    pub fn of_stream_arn(arn: &str, names: &TableNames) -> Option<SourceTable> {
        let name = arn.split("table/").nth(1)?.split('/').next()?;
        [
            (&names.messages, SourceTable::Messages),
            (&names.contacts, SourceTable::Contacts),
            (&names.sends, SourceTable::Sends),
            (&names.templates, SourceTable::Templates),
            (&names.events, SourceTable::Events),
        ]
        .into_iter()
        .find(|(n, _)| n.as_str() == name)
        .map(|(_, t)| t)
    }
}

/// One write as the stream tells it: the item before and after (`NEW_AND_OLD_IMAGES`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRecord {
    pub table: SourceTable,
    /// The stream's position of this record: what a batch failure names.
    pub sequence_number: String,
    pub old: Option<Item>,
    pub new: Option<Item>,
}

impl ChangeRecord {
    /// A write that changed nothing (moto emits these; AWS does not): no transition, no event.
    pub fn is_noop(&self) -> bool {
        self.old == self.new
    }
}

/// Why a record of Lambda's event could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the record is not a DynamoDB stream record: {0}")]
    Shape(String),
    #[error("the record comes from {arn:?}, which is none of the configured tables (WAHOOK_*_TABLE): set the publisher's table names as the other functions' are")]
    UnknownTable { arn: String },
    #[error("attribute {name:?}: {problem}")]
    Attribute { name: String, problem: String },
}

#[derive(Deserialize)]
struct LambdaRecord {
    #[serde(rename = "eventSourceARN", default)]
    event_source_arn: String,
    dynamodb: LambdaStreamRecord,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LambdaStreamRecord {
    #[serde(default)]
    sequence_number: String,
    #[serde(default)]
    old_image: Option<HashMap<String, Value>>,
    #[serde(default)]
    new_image: Option<HashMap<String, Value>>,
}

/// One record of Lambda's DynamoDB stream event (`Records[i]`), read alone so that one bad record
/// names itself instead of failing its batch. The error carries the sequence number when the
/// record has one, so the batch can still name it as failed.
pub fn read_lambda_record(
    record: &Value,
    names: &TableNames,
) -> Result<ChangeRecord, (Option<String>, RecordError)> {
    let sequence = record
        .pointer("/dynamodb/SequenceNumber")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let fail = |e: RecordError| (sequence.clone(), e);
    let r = LambdaRecord::deserialize(record)
        .map_err(|e| fail(RecordError::Shape(shape_problem(&e))))?;
    let table = SourceTable::of_stream_arn(&r.event_source_arn, names).ok_or_else(|| {
        fail(RecordError::UnknownTable {
            arn: r.event_source_arn.clone(),
        })
    })?;
    let image = |i: Option<HashMap<String, Value>>| i.map(|m| item_from_json(&m)).transpose();
    Ok(ChangeRecord {
        table,
        sequence_number: r.dynamodb.sequence_number,
        old: image(r.dynamodb.old_image).map_err(fail)?,
        new: image(r.dynamodb.new_image).map_err(fail)?,
    })
}

/// serde's words for what is wrong, without the values it quotes (a record's values may be a
/// user's message, and this goes to the logs).
fn shape_problem(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("missing field") {
        text
    } else {
        "a field has the wrong type".to_owned()
    }
}

/// An item in DynamoDB's JSON (`{"S": "…"}`, `{"N": "…"}`, `{"M": {…}}`…).
pub fn item_from_json(map: &HashMap<String, Value>) -> Result<Item, RecordError> {
    map.iter()
        .map(|(k, v)| {
            attribute_from_json(v)
                .map(|a| (k.clone(), a))
                .map_err(|problem| RecordError::Attribute {
                    name: k.clone(),
                    problem,
                })
        })
        .collect()
}

fn attribute_from_json(v: &Value) -> Result<AttributeValue, String> {
    let obj = v
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or("not a one-key DynamoDB attribute object")?;
    let (tag, inner) = obj.iter().next().expect("one key");
    let text = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .ok_or(format!("{tag} is not a string"))
    };
    let texts = |v: &Value| -> Result<Vec<String>, String> {
        v.as_array()
            .ok_or(format!("{tag} is not a list"))?
            .iter()
            .map(text)
            .collect()
    };
    let blob = |v: &Value| -> Result<Blob, String> {
        let t = text(v)?;
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .map(Blob::new)
            .map_err(|e| format!("{tag} is not base64: {e}"))
    };
    Ok(match tag.as_str() {
        "S" => AttributeValue::S(text(inner)?),
        "N" => AttributeValue::N(text(inner)?),
        "B" => AttributeValue::B(blob(inner)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or("BOOL is not a boolean")?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(texts(inner)?),
        "NS" => AttributeValue::Ns(texts(inner)?),
        "BS" => AttributeValue::Bs(
            inner
                .as_array()
                .ok_or("BS is not a list")?
                .iter()
                .map(blob)
                .collect::<Result<_, _>>()?,
        ),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .ok_or("L is not a list")?
                .iter()
                .map(attribute_from_json)
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(
            inner
                .as_object()
                .ok_or("M is not an object")?
                .iter()
                .map(|(k, v)| attribute_from_json(v).map(|a| (k.clone(), a)))
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(format!("unknown attribute type {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names() -> TableNames {
        TableNames::with_prefix("dev")
    }

    #[test]
    fn a_lambda_record_reads_into_the_stores_item_type() {
        let record = json!({
            "eventID": "1", "eventName": "MODIFY", "eventSource": "aws:dynamodb",
            "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123:table/dev-messages/stream/2026-01-01T00:00:00.000",
            "dynamodb": {
                "SequenceNumber": "111",
                "Keys": {"wamid": {"S": "wamid.A"}},
                "OldImage": {"wamid": {"S": "wamid.A"}, "status_rank": {"N": "1"}},
                "NewImage": {"wamid": {"S": "wamid.A"}, "status_rank": {"N": "3"},
                    "billable": {"BOOL": true}, "raw": {"B": "aGk="}, "gone": {"NULL": true},
                    "status_events": {"M": {"read": {"M": {"at": {"N": "5"}}}}},
                    "tags": {"SS": ["a"]}, "list": {"L": [{"N": "1"}]}}
            }
        });
        let r = read_lambda_record(&record, &names()).unwrap();
        assert_eq!(r.table, SourceTable::Messages);
        assert_eq!(r.sequence_number, "111");
        let new = r.new.as_ref().unwrap();
        assert_eq!(new["status_rank"], AttributeValue::N("3".into()));
        assert_eq!(new["raw"], AttributeValue::B(Blob::new(b"hi".to_vec())));
        assert!(!r.is_noop());
    }

    #[test]
    fn a_bad_record_names_itself_and_its_position() {
        let unknown = json!({"eventSourceARN": "arn:aws:dynamodb:r:1:table/other/stream/x",
            "dynamodb": {"SequenceNumber": "7"}});
        let (seq, e) = read_lambda_record(&unknown, &names()).unwrap_err();
        assert_eq!(seq.as_deref(), Some("7"));
        assert!(e.to_string().contains("WAHOOK_*_TABLE"), "{e}");
        let bad = json!({"eventSourceARN": "arn:aws:dynamodb:r:1:table/dev-sends/stream/x",
            "dynamodb": {"SequenceNumber": "8", "NewImage": {"state": {"X": 1}}}});
        let (seq, e) = read_lambda_record(&bad, &names()).unwrap_err();
        assert_eq!(seq.as_deref(), Some("8"));
        assert!(e.to_string().contains("state"), "{e}");
        let (seq, _) = read_lambda_record(&json!("nope"), &names()).unwrap_err();
        assert_eq!(seq, None);
    }
}
