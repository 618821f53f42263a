//! Reading a field of the wrong shape as absent.
//!
//! Meta's payloads are read field by field: a field of an unexpected type reads as absent instead of
//! failing the item around it. A nested object is borrowed as raw JSON (serde's skip, which checks
//! only the grammar) and parsed on its own, so nothing inside it (a repeated field, a string with a
//! lone surrogate, a number out of range, not an object at all) can derail the parser of the item:
//! it reads as absent. The webhook's one pass (`payload::scan`) reads the common shape of the hot
//! objects itself and leaves anything else to these.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::domain::time::UnixTime;

/// A string, or a number read as its decimal text (some tools send ids as numbers). Else absent.
/// Borrowed from the input unless the JSON string has escapes (or was a number).
pub(crate) fn lenient_str<'de, D>(d: D) -> Result<Option<Cow<'de, str>>, D::Error>
where
    D: Deserializer<'de>,
{
    d.deserialize_any(Scalar).map(|s| match s {
        ScalarValue::Borrowed(t) => Some(Cow::Borrowed(t)),
        ScalarValue::Text(t) => Some(Cow::Owned(t)),
        ScalarValue::Int(i) => Some(Cow::Owned(i.to_string())),
        ScalarValue::Float(f) => Some(Cow::Owned(f.to_string())),
        ScalarValue::Other => None,
    })
}

/// [`lenient_str`], owned: for the fields a plan keeps.
pub(crate) fn lenient_string<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    lenient_str(d).map(|s| s.map(Cow::into_owned))
}

/// Meta's `"1795000000"`, or a number. Anything else is absent.
pub(crate) fn lenient_timestamp<'de, D>(d: D) -> Result<Option<UnixTime>, D::Error>
where
    D: Deserializer<'de>,
{
    d.deserialize_any(Scalar).map(|s| match s {
        ScalarValue::Borrowed(t) => UnixTime::parse_meta(t),
        ScalarValue::Text(t) => UnixTime::parse_meta(&t),
        ScalarValue::Int(i) if (0..=UnixTime::MAX_PAYLOAD_SECS).contains(&i) => {
            Some(UnixTime::from_secs(i))
        }
        _ => None,
    })
}

/// `true` or `false`; anything else is absent.
pub(crate) fn lenient_bool<'de, D>(d: D) -> Result<Option<bool>, D::Error>
where
    D: Deserializer<'de>,
{
    lenient(d)
}

/// A JSON integer that fits an `i64`; anything else (a string, a fraction) is absent.
pub(crate) fn lenient_i64<'de, D>(d: D) -> Result<Option<i64>, D::Error>
where
    D: Deserializer<'de>,
{
    lenient(d)
}

/// A value read as `T`, or absent if it is not one: borrowed as raw JSON and parsed on its own (see
/// the module documentation).
pub(crate) fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let raw = Option::<&'de RawValue>::deserialize(d)?;
    Ok(raw.and_then(|r| parse_unless_array(r.get())))
}

/// A list whose elements that are not a `T` (by [`lenient`]'s rule) are skipped; anything but a list
/// reads as empty.
pub(crate) fn lenient_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let raw = Option::<&'de RawValue>::deserialize(d)?;
    let Some(items) = raw.and_then(|r| serde_json::from_str::<Vec<&'de RawValue>>(r.get()).ok())
    else {
        return Ok(Vec::new());
    };
    Ok(items
        .into_iter()
        .filter_map(|r| parse_unless_array(r.get()))
        .collect())
}

// serde would read a struct from an array of its fields in order; no field of Meta's is that.
fn parse_unless_array<'de, T: Deserialize<'de>>(json: &'de str) -> Option<T> {
    if json.trim_start().starts_with('[') {
        None
    } else {
        serde_json::from_str(json).ok()
    }
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A JSON scalar without building a `serde_json::Value`; objects and arrays are skipped.
enum ScalarValue<'de> {
    /// A string without escapes, borrowed from the input.
    Borrowed(&'de str),
    Text(String),
    Int(i64),
    Float(f64),
    Other,
}

struct Scalar;

impl<'de> Visitor<'de> for Scalar {
    type Value = ScalarValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Text(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Text(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<ScalarValue<'de>, E> {
        Ok(i64::try_from(v).map_or(ScalarValue::Float(v as f64), ScalarValue::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Float(v))
    }
    fn visit_bool<E>(self, _: bool) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Other)
    }
    fn visit_unit<E>(self) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Other)
    }
    fn visit_none<E>(self) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Other)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<ScalarValue<'de>, D::Error> {
        d.deserialize_any(Scalar)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ScalarValue<'de>, A::Error> {
        skip_seq(seq).map(|()| ScalarValue::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ScalarValue<'de>, A::Error> {
        skip_map(map).map(|()| ScalarValue::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        #[serde(default, deserialize_with = "lenient_string")]
        a: Option<String>,
        #[serde(rename = "type", default, deserialize_with = "lenient_i64")]
        kind: Option<i64>,
    }

    #[derive(Debug, Deserialize)]
    struct Outer {
        #[serde(default, deserialize_with = "lenient")]
        inner: Option<Inner>,
        #[serde(default, deserialize_with = "lenient_list")]
        list: Vec<Inner>,
        #[serde(default, deserialize_with = "lenient_string")]
        after: Option<String>,
    }

    /// What the first reading gave: the nested object parsed on its own from its raw JSON.
    fn parsed_alone(raw: &str) -> Option<Inner> {
        if raw.trim_start().starts_with('[') {
            return None;
        }
        serde_json::from_str(raw).ok()
    }

    #[test]
    fn a_nested_object_reads_as_it_did_when_parsed_on_its_own_and_the_parser_goes_on() {
        for raw in [
            r#"{"a":"x","type":3}"#,
            r#"{"a":"x","a":"y"}"#,
            r#"{"type":1,"zzz":{"type":[1,{"a":2}]},"type":2}"#,
            r#"{"zzz":1,"zzz":2,"a":"ok"}"#,
            r#"{"\u0061":"escaped key","type":"3"}"#,
            r#"{"\u0061":"x","a":"y"}"#,
            r#"{"a":"cut \ud83d","type":1}"#,
            r#"{"a":"x","type":1e400}"#,
            r#"{"\udc00":1,"a":"x"}"#,
            r#"["x",3]"#,
            r#""text""#,
            "null",
            "17",
            "true",
            "{}",
        ] {
            let body = format!(r#"{{"inner":{raw},"list":[{raw},{raw}],"after":"read"}}"#);
            let outer: Outer = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{raw}: {e}"));
            let expected = parsed_alone(raw);
            assert_eq!(outer.inner, expected, "{raw}");
            let listed: Vec<Inner> = expected.into_iter().chain(parsed_alone(raw)).collect();
            assert_eq!(outer.list, listed, "{raw}");
            assert_eq!(
                outer.after.as_deref(),
                Some("read"),
                "{raw}: the parser went on"
            );
        }
    }

    #[test]
    fn a_list_that_is_not_a_list_reads_as_empty() {
        for list in [r#"{"a":"x"}"#, "null", "3", r#""x""#] {
            let outer: Outer =
                serde_json::from_str(&format!(r#"{{"list":{list},"after":"read"}}"#)).unwrap();
            assert!(outer.list.is_empty(), "{list}");
            assert_eq!(outer.after.as_deref(), Some("read"));
        }
    }

    #[test]
    fn broken_syntax_inside_still_fails_the_whole() {
        assert!(serde_json::from_str::<Outer>(r#"{"inner":{"a":"x",}}"#).is_err());
        assert!(serde_json::from_str::<Outer>(r#"{"inner":{"a":"x","a":}}"#).is_err());
    }

    #[test]
    fn scalars_read_as_the_old_parse_of_their_raw_text_did() {
        #[derive(Deserialize)]
        struct S {
            #[serde(default, deserialize_with = "lenient_bool")]
            b: Option<bool>,
            #[serde(default, deserialize_with = "lenient_i64")]
            i: Option<i64>,
        }
        for raw in [
            "true",
            "false",
            "1",
            "-0",
            "1.5",
            "1e3",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "1e400",
            r#""12""#,
            "null",
            "[1]",
            r#"{"x":1}"#,
        ] {
            let s: S = serde_json::from_str(&format!(r#"{{"b":{raw},"i":{raw}}}"#)).unwrap();
            assert_eq!(s.b, serde_json::from_str::<bool>(raw).ok(), "{raw}");
            assert_eq!(s.i, serde_json::from_str::<i64>(raw).ok(), "{raw}");
        }
    }
}
