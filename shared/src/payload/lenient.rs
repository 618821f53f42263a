//! Reading a field of the wrong shape as absent, in the same pass as the object around it.
//!
//! Meta's payloads are read field by field: a field of an unexpected type reads as absent instead of
//! failing the item around it. The first reading of a nested object borrowed it as raw JSON and parsed
//! that on its own, so a misfit could not derail the item's parser; it also read every nested object's
//! bytes twice. Here the nested object is read in place, and every way it could fail on its own is
//! turned into "absent" without leaving the parser mid-object:
//!
//! - not an object (a scalar, `null`, an array: serde would read a struct from an array of its fields
//!   in order, and no field of Meta's is that) is skipped and reads as absent;
//! - an object that repeats one of the struct's fields (serde refuses it) reads as absent, the rest of
//!   it skipped;
//! - every field of these structs is itself lenient, so nothing else inside can fail but the JSON's
//!   syntax, which fails the whole body either way.
//!
//! One difference remains, and only for JSON nested deeper than any Meta sends: serde_json's depth
//! limit (128) now counts from the item, not from the nested object.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde::Deserialize;

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
        ScalarValue::Bool(_) | ScalarValue::Other => None,
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
    d.deserialize_any(Scalar).map(|s| match s {
        ScalarValue::Bool(b) => Some(b),
        _ => None,
    })
}

/// A JSON integer that fits an `i64`; anything else (a string, a fraction) is absent.
pub(crate) fn lenient_i64<'de, D>(d: D) -> Result<Option<i64>, D::Error>
where
    D: Deserializer<'de>,
{
    d.deserialize_any(Scalar).map(|s| match s {
        ScalarValue::Int(i) => Some(i),
        _ => None,
    })
}

/// A nested object read as `T`, or absent if it is not one `T` can be read from (see the module
/// documentation). `T`'s fields must all be lenient themselves.
pub(crate) fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_any(LenientStruct(PhantomData))
}

/// A list whose elements that are not a `T` (by [`lenient`]'s rule) are skipped; anything but a list
/// reads as empty.
pub(crate) fn lenient_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_any(LenientList(PhantomData))
}

struct LenientStruct<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for LenientStruct<T> {
    type Value = Option<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for LenientStruct<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
        let mut once = FieldsOnce {
            map,
            fields: &[],
            seen: 0,
            repeated: false,
        };
        let value = T::deserialize(&mut once)?;
        Ok((!once.repeated).then_some(value))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<T>, A::Error> {
        skip_seq(seq).map(|()| None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_none<E>(self) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Option<T>, E> {
        Ok(None)
    }
}

struct LenientList<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for LenientList<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(LenientStruct::<T>(PhantomData))? {
            items.extend(item);
        }
        Ok(items)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<T>, A::Error> {
        skip_map(map).map(|()| Vec::new())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_none<E>(self) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }
    fn visit_unit<E>(self) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }
    fn visit_bool<E>(self, _: bool) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }
    fn visit_str<E>(self, _: &str) -> Result<Vec<T>, E> {
        Ok(Vec::new())
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

/// An object handed to a derived `Deserialize` that ends, as if closed, at the first repeat of one of
/// the struct's fields (the rest skipped, `repeated` set), where serde would fail mid-object.
struct FieldsOnce<A> {
    map: A,
    /// The struct's field names, as serde's derive passes them to `deserialize_struct`.
    fields: &'static [&'static str],
    /// One bit per field seen (the structs read this way have far fewer than 64).
    seen: u64,
    repeated: bool,
}

impl<'de, A: MapAccess<'de>> Deserializer<'de> for &mut FieldsOnce<A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_map(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        if fields.len() > 64 {
            return Err(A::Error::custom("lenient structs have at most 64 fields"));
        }
        self.fields = fields;
        visitor.visit_map(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for &mut FieldsOnce<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        if self.repeated {
            return Ok(None);
        }
        let Some(key) = self.map.next_key::<Key<'de>>()? else {
            return Ok(None);
        };
        if let Some(i) = self.fields.iter().position(|f| *f == key.as_str()) {
            let bit = 1u64 << i;
            if self.seen & bit != 0 {
                self.repeated = true;
                self.map.next_value::<IgnoredAny>()?;
                skip_map(&mut self.map)?;
                return Ok(None);
            }
            self.seen |= bit;
        }
        match key {
            Key(Cow::Borrowed(k)) => seed.deserialize(BorrowedStrDeserializer::new(k)),
            Key(Cow::Owned(k)) => seed.deserialize(StringDeserializer::new(k)),
        }
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// An object's key, borrowed unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl Key<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

/// A JSON scalar without building a `serde_json::Value`; objects and arrays are skipped.
enum ScalarValue<'de> {
    /// A string without escapes, borrowed from the input.
    Borrowed(&'de str),
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
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
    fn visit_bool<E>(self, v: bool) -> Result<ScalarValue<'de>, E> {
        Ok(ScalarValue::Bool(v))
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
