//! A forward-only reader of JSON text, for the webhook's one pass over a common delivery.
//!
//! serde reads an item's bytes once to find where it ends (to keep them exact) and again to read it;
//! this reads a status where it lies, and knows where it ended. It reads only the plain shape Meta
//! sends: wherever it meets anything else (an escaped key, a number where text was expected, a key
//! given twice, nesting deeper than Meta's) it stops with [`Stop`], and the caller hands that part, or
//! the whole delivery, to serde. So it never has to agree with serde on anything but the plain shape,
//! and the mutation fuzzer checks that it does (`inbound::plan::one_pass`).
//!
//! What it accepts must be JSON serde accepts: it checks the grammar of every value it skips (strings
//! without control characters, escapes checked by serde itself, numbers, literals, nesting).

use std::borrow::Cow;

/// Met something the fast reading leaves to serde.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Stop;

pub(crate) type Scan<T> = Result<T, Stop>;

/// Deeper than any payload of Meta's; deeper values are left to serde (whose limit is 128).
const MAX_DEPTH: usize = 64;

pub(crate) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The text from a position this scanner reported to where it is now.
    pub(crate) fn text_since(&self, start: usize) -> &'a str {
        &self.text[start..self.pos]
    }

    /// Back to a position this scanner reported (to read a part again another way).
    pub(crate) fn rewind(&mut self, pos: usize) {
        self.pos = pos;
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn ws(&mut self) {
        let b = self.bytes();
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = b.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Scan<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Stop)
        }
    }

    /// Only whitespace is left.
    pub(crate) fn end(&mut self) -> Scan<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Stop),
        }
    }

    /// Reads an object, calling `field` with each key and the scanner before its value; `field` must
    /// read or skip the value. A key with escapes stops (serde would match it unescaped).
    pub(crate) fn object(&mut self, field: impl FnMut(&mut Self, &'a str) -> Scan<()>) -> Scan<()> {
        self.members(false, field)
    }

    /// [`Scanner::object`]; a key with escapes is checked by serde and passed on as written if
    /// `escaped_keys` (for an object that is only skipped), else it stops.
    fn members(
        &mut self,
        escaped_keys: bool,
        mut field: impl FnMut(&mut Self, &'a str) -> Scan<()>,
    ) -> Scan<()> {
        self.eat(b'{')?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.eat(b'"')?;
            let start = self.pos - 1;
            let (key, escaped) = self.string_body()?;
            if escaped {
                if !escaped_keys {
                    return Err(Stop);
                }
                self.check_escapes(start)?;
            }
            self.eat(b':')?;
            field(self, key)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Stop),
            }
        }
    }

    /// Reads an array, calling `element` with the scanner before each element; `element` must read or
    /// skip it.
    pub(crate) fn array(&mut self, mut element: impl FnMut(&mut Self) -> Scan<()>) -> Scan<()> {
        self.eat(b'[')?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            element(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(Stop),
            }
        }
    }

    /// [`Scanner::array`], with `null` read as an empty list (as serde's readings of Meta's lists
    /// take it).
    pub(crate) fn list(&mut self, element: impl FnMut(&mut Self) -> Scan<()>) -> Scan<()> {
        if self.peek() == Some(b'n') {
            return self.null();
        }
        self.array(element)
    }

    /// The text of a string value: borrowed, or unescaped by serde if it has escapes.
    pub(crate) fn string(&mut self) -> Scan<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.pos - 1;
        let (body, escaped) = self.string_body()?;
        if !escaped {
            return Ok(Cow::Borrowed(body));
        }
        if let Some(text) = unescape(body) {
            return Ok(Cow::Owned(text));
        }
        // Anything unusual (a lone surrogate, a bad escape): serde's answer, which is an error.
        let quoted = &self.text[start..self.pos];
        serde_json::from_str::<String>(quoted)
            .map(Cow::Owned)
            .map_err(|_| Stop)
    }

    /// `null`, consumed.
    pub(crate) fn null(&mut self) -> Scan<()> {
        self.literal("null")
    }

    /// `true` or `false`.
    pub(crate) fn boolean(&mut self) -> Scan<bool> {
        match self.peek() {
            Some(b't') => self.literal("true").map(|()| true),
            Some(b'f') => self.literal("false").map(|()| false),
            _ => Err(Stop),
        }
    }

    /// Skips one value, checking its grammar, and returns its exact text.
    pub(crate) fn skip(&mut self) -> Scan<&'a str> {
        self.ws();
        let start = self.pos;
        self.skip_value(0)?;
        Ok(&self.text[start..self.pos])
    }

    fn skip_value(&mut self, depth: usize) -> Scan<()> {
        if depth > MAX_DEPTH {
            return Err(Stop);
        }
        match self.peek().ok_or(Stop)? {
            b'"' => {
                self.pos += 1;
                let start = self.pos - 1;
                let (_, escaped) = self.string_body()?;
                if escaped {
                    self.check_escapes(start)?;
                }
                Ok(())
            }
            b'{' => self.members(true, |s, _| s.skip_value(depth + 1)),
            b'[' => self.array(|s| s.skip_value(depth + 1)),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Stop),
        }
    }

    /// The escapes of the string from `start` (its opening quote) to here, checked as serde checks
    /// them where it skips a value.
    fn check_escapes(&self, start: usize) -> Scan<()> {
        serde_json::from_str::<serde::de::IgnoredAny>(&self.text[start..self.pos])
            .map(|_| ())
            .map_err(|_| Stop)
    }

    fn literal(&mut self, word: &str) -> Scan<()> {
        self.ws();
        if self.bytes()[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Stop)
        }
    }

    /// After the opening quote: up to and past the closing one. Returns the text between them and
    /// whether it has escapes.
    fn string_body(&mut self) -> Scan<(&'a str, bool)> {
        let bytes = self.bytes();
        let start = self.pos;
        let mut escaped = false;
        let mut i = start;
        loop {
            i = plain_run(bytes, i);
            match bytes.get(i) {
                None => return Err(Stop),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    // The escaped byte cannot end the string; serde checks what it means.
                    if bytes.get(i + 1).is_none() {
                        return Err(Stop);
                    }
                    i += 2;
                }
                // serde refuses control characters inside strings.
                Some(&b) if b < 0x20 => return Err(Stop),
                Some(_) => i += 1,
            }
        }
        self.pos = i + 1;
        // Both ends are ASCII quotes in UTF-8 text, so this is a char boundary.
        Ok((&self.text[start..i], escaped))
    }

    /// JSON's number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Scan<()> {
        let bytes = self.bytes();
        let mut i = self.pos;
        let digits = |i: &mut usize| {
            let from = *i;
            while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        match bytes.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                digits(&mut i);
            }
            _ => return Err(Stop),
        }
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return Err(Stop);
            }
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            if !digits(&mut i) {
                return Err(Stop);
            }
        }
        self.pos = i;
        Ok(())
    }
}

/// The text of a JSON string's body with escapes, as serde reads it; `None` for anything but the
/// escapes JSON defines and whole surrogate pairs (left to serde, which refuses them).
fn unescape(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        // The escaped byte must be one of JSON's (ASCII): anything else is serde's to refuse, and
        // cutting after it could split a character.
        let escape = rest.as_bytes().get(at + 1).filter(|b| b.is_ascii())?;
        rest = &rest[at + 2..];
        let c = match escape {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = hex4(rest)?;
                rest = &rest[4..];
                match unit {
                    0xD800..=0xDBFF => {
                        let low = rest.strip_prefix("\\u").and_then(hex4)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        rest = &rest[6..];
                        char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => char::from_u32(unit)?,
                }
            }
            _ => return None,
        };
        out.push(c);
    }
    out.push_str(rest);
    Some(out)
}

/// Four hex digits at the start of `s`, as a UTF-16 unit.
fn hex4(s: &str) -> Option<u32> {
    let digits = s.get(..4)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// The end of the run of plain string bytes from `i`: the first quote, backslash or control
/// character (or the end). Eight bytes at a time: most of a payload is such runs.
fn plain_run(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A high bit per byte of `x` that is zero (exact for the lowest such byte, which is all we use).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let special = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            // Bytes below 0x20 (a byte with its high bit set is not one, hence `& !x`).
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while bytes
        .get(i)
        .is_some_and(|&b| b != b'"' && b != b'\\' && b >= 0x20)
    {
        i += 1;
    }
    i
}

/// Which of a struct's fields were read, to stop at a repeat (serde refuses an object that repeats a
/// field of the struct it is read into).
#[derive(Default)]
pub(crate) struct Seen(u64);

impl Seen {
    /// Marks field `i` (< 64) read; a second time stops.
    pub(crate) fn once(&mut self, i: u32) -> Scan<()> {
        let bit = 1u64 << i;
        if self.0 & bit != 0 {
            return Err(Stop);
        }
        self.0 |= bit;
        Ok(())
    }

    /// Whether field `i` was read.
    pub(crate) fn has(&self, i: u32) -> bool {
        self.0 & (1u64 << i) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipping_returns_exact_text_and_accepts_what_serde_accepts() {
        for json in [
            r#"{"a":[1,-2.5e+3,0,true,false,null,"x\"y\u00e9"],"b":{}}"#,
            "[]",
            r#""\ud83c\udf5d""#,
            "-0",
            " 17 ",
        ] {
            let mut s = Scanner::new(json);
            let skipped = s.skip().unwrap();
            assert_eq!(skipped, json.trim());
            assert!(s.end().is_ok());
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(json).is_ok());
        }
    }

    #[test]
    fn what_serde_refuses_stops() {
        for json in [
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "tru",
            "nul",
            r#""\x""#,
            "\"a\u{1}b\"",
            r#"{"a":1,}"#,
            r#"[1,]"#,
            r#"{"a" 1}"#,
            r#""open"#,
            "+1",
        ] {
            let mut s = Scanner::new(json);
            let scanned = s.skip().and_then(|_| s.end());
            assert!(scanned.is_err(), "{json:?} was accepted");
            assert!(
                serde_json::from_str::<serde::de::IgnoredAny>(json).is_err(),
                "{json:?}: serde accepts it, so the scanner must"
            );
        }
    }

    #[test]
    fn a_lone_surrogate_is_skipped_as_serde_skips_it_but_not_read_as_text() {
        // serde's scan of a value it does not read accepts it; reading it as a string does not.
        let lone = r#""\ud800""#;
        assert!(serde_json::from_str::<serde::de::IgnoredAny>(lone).is_ok());
        assert!(Scanner::new(lone).skip().is_ok());
        assert!(serde_json::from_str::<String>(lone).is_err());
        assert_eq!(Scanner::new(lone).string(), Err(Stop));
    }

    #[test]
    fn escaped_keys_are_left_to_serde_where_read_and_skipped_where_not() {
        let mut read = Vec::new();
        let escaped = Scanner::new(r#"{"\u0061":1}"#).object(|s, key| {
            read.push(key);
            s.skip().map(|_| ())
        });
        assert_eq!(escaped, Err(Stop));
        assert!(read.is_empty());
        assert_eq!(
            Scanner::new(r#"{"\u0061":{"\u0062":1}}"#).skip(),
            Ok(r#"{"\u0061":{"\u0062":1}}"#)
        );
        assert_eq!(Scanner::new(r#"{"\x":1}"#).skip(), Err(Stop));
    }

    #[test]
    fn deep_nesting_is_left_to_serde() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(Scanner::new(&deep).skip(), Err(Stop));
    }

    #[test]
    fn the_plain_run_stops_at_the_first_special_byte_wherever_it_lies() {
        for len in 0..40 {
            for special in [b'"', b'\\', 0x01, 0x1f] {
                for at in 0..=len {
                    let mut bytes = vec![b'a'; len];
                    // Bytes that look special to a careless test: high bit set, 0x20 itself.
                    if len > 3 {
                        bytes[len / 2] = 0xC3;
                        bytes[len / 3] = 0x20;
                    }
                    if at < len {
                        bytes[at] = special;
                    }
                    let expected = bytes
                        .iter()
                        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                        .unwrap_or(len);
                    assert_eq!(plain_run(&bytes, 0), expected, "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn escapes_read_as_serde_reads_them() {
        for body in [
            r#"Ana Garc\u00eda"#,
            r#"\u00bfsigue? \ud83c\udf5d \"q\" a\/b \\ \b\f\n\r\t \u0000 \uFFFF"#,
            r#"\ud800"#,
            r#"\udc00x"#,
            r#"\ud800\u0041"#,
            r#"\u12"#,
            r#"\u12G4"#,
            r#"\x"#,
            r#"end\"#,
            // Found in review: a non-ASCII byte after the backslash (slicing after it panicked).
            r#"tel \é"#,
            r#"\€x"#,
        ] {
            let serde = serde_json::from_str::<String>(&format!("\"{body}\"")).ok();
            match unescape(body) {
                Some(ours) => assert_eq!(Some(ours), serde, "{body}"),
                None => assert!(serde.is_none(), "{body}: serde reads it, so must we"),
            }
        }
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let mut s = Scanner::new(r#"["plain","a\/b"]"#);
        let mut read = Vec::new();
        s.array(|s| {
            read.push(s.string()?);
            Ok(())
        })
        .unwrap();
        assert!(matches!(read[0], Cow::Borrowed("plain")));
        assert!(matches!(&read[1], Cow::Owned(t) if t == "a/b"));
    }
}
