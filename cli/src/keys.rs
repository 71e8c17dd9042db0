//! Partition keys for lines: a constant, a hash of the line, or a field of the line read
//! as JSON; and the JSON checks of `--format ndjson`.
//!
//! Only the tool's own refusals are decided here (`invalid_json`, `key_field_missing`).
//! Whether a key is valid (empty, too long, not UTF-8) and whether the record fits is
//! always the core's answer, when the record is pushed.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::args::{Format, KeySpec};
use crate::report::Why;

/// A line refused before it reaches the core, and why.
#[derive(Debug)]
pub struct KeyError {
    /// `invalid_json` or `key_field_missing`.
    pub why: Why,
    /// What exactly, for the per-refusal message.
    pub detail: String,
}

/// Derives each line's partition key, and checks JSON lines.
pub struct KeyMaker {
    spec: KeySpec,
    ndjson: bool,
    /// The hex digits of the last hash key.
    hex: [u8; 16],
    /// The last key-field string that had escapes, decoded: UTF-8, or for a string with
    /// an unpaired UTF-16 surrogate escape, WTF-8 (the surrogate as the 3 bytes that
    /// UTF-8 forbids), which the core refuses as `key_not_utf8`.
    decoded: Vec<u8>,
}

impl KeyMaker {
    /// Keys as `spec` says, lines checked as `format` says.
    pub fn new(spec: KeySpec, format: Format) -> KeyMaker {
        KeyMaker {
            spec,
            ndjson: format == Format::Ndjson,
            hex: [b'0'; 16],
            decoded: Vec::new(),
        }
    }

    /// The key field's name, with `--key-field`.
    pub fn field(&self) -> Option<&str> {
        match &self.spec {
            KeySpec::Field(name) => Some(name),
            _ => None,
        }
    }

    /// The key of `line`, after the JSON checks the format asks for.
    pub fn key<'a>(&'a mut self, line: &'a [u8]) -> Result<&'a [u8], KeyError> {
        match &self.spec {
            KeySpec::Field(name) => match find_field(line, name) {
                Err(error) => Err(invalid_json(&error)),
                Ok(Found::Value(raw)) => {
                    let text = raw.get();
                    match text.as_bytes().first() {
                        Some(b'"') if !text.contains('\\') => {
                            // Lossless: the quotes are one byte each.
                            Ok(&text.as_bytes()[1..text.len() - 1])
                        }
                        Some(b'"') => {
                            // Valid JSON, already parsed: decoding cannot fail, and an
                            // unpaired surrogate (`"\ud800"`) is valid JSON too. It is
                            // decoded as bytes, not refused here as invalid_json.
                            let mut de = serde_json::Deserializer::from_str(text);
                            de.deserialize_bytes(Decode(&mut self.decoded))
                                .map_err(|e| invalid_json(&e))?;
                            Ok(&self.decoded)
                        }
                        Some(b'-' | b'0'..=b'9') => Ok(text.as_bytes()),
                        first => {
                            let kind = match first {
                                Some(b'n') => "null",
                                Some(b't' | b'f') => "a boolean",
                                Some(b'{') => "an object",
                                _ => "an array",
                            };
                            Err(missing(format!(
                                "field \"{name}\" is {kind}, not a string or number"
                            )))
                        }
                    }
                }
                Ok(Found::Missing) => Err(missing(format!("no field \"{name}\""))),
                Ok(Found::NotObject(kind)) => Err(missing(format!(
                    "the line is {kind}, not an object with \"{name}\""
                ))),
            },
            spec => {
                if self.ndjson
                    && let Err(error) = serde_json::from_slice::<IgnoredAny>(line)
                {
                    return Err(invalid_json(&error));
                }
                Ok(match spec {
                    KeySpec::Hash => hash_key(&mut self.hex, line),
                    KeySpec::Constant(key) => key.as_bytes(),
                    _ => b"",
                })
            }
        }
    }

    /// The key of a line that is not parsed because it is over the record cap: the
    /// core refuses it as too large whatever its key. With `--key-field` there is no
    /// key to read, so a one-byte stand-in is used; `is_stand_in` says so.
    pub fn unparsed_key<'a>(&'a mut self, line: &'a [u8]) -> &'a [u8] {
        match &self.spec {
            KeySpec::Hash => hash_key(&mut self.hex, line),
            KeySpec::Constant(key) => key.as_bytes(),
            KeySpec::Field(_) => b"-",
            KeySpec::None => b"",
        }
    }

    /// Whether [`KeyMaker::unparsed_key`] gives a stand-in rather than the line's key.
    pub fn is_stand_in(&self) -> bool {
        matches!(self.spec, KeySpec::Field(_))
    }
}

fn missing(detail: String) -> KeyError {
    KeyError {
        why: Why::KeyFieldMissing,
        detail,
    }
}

/// serde_json's message without its position, then the column: a line is always line 1.
fn invalid_json(error: &serde_json::Error) -> KeyError {
    let text = error.to_string();
    let message = text
        .rfind(" at line ")
        .map_or(text.as_str(), |at| &text[..at]);
    KeyError {
        why: Why::InvalidJson,
        detail: format!("{message} at column {}", error.column()),
    }
}

/// FNV-1a 64 of `line` (the core's key hash), written as 16 lowercase hex digits.
fn hash_key<'a>(hex: &'a mut [u8; 16], line: &[u8]) -> &'a [u8] {
    let hash = kinesis_batcher::cost::fnv1a(line);
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = DIGITS[((hash >> (60 - 4 * i)) & 0xf) as usize];
    }
    hex
}

/// What a line holds under the key field's name.
enum Found<'de> {
    /// The field's value, as JSON text borrowed from the line.
    Value(&'de RawValue),
    /// An object without the field.
    Missing,
    /// Valid JSON, but not an object: what it is.
    NotObject(&'static str),
}

/// Reads `line` as one JSON value and finds the top-level field `name` in one pass,
/// without building a tree. The last occurrence wins, as in most JSON readers.
fn find_field<'de>(line: &'de [u8], name: &str) -> Result<Found<'de>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let found = FindField { name }.deserialize(&mut de)?;
    de.end()?;
    Ok(found)
}

struct FindField<'n> {
    name: &'n str,
}

impl<'de> DeserializeSeed<'de> for FindField<'_> {
    type Value = Found<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FindField<'_> {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = Found::Missing;
        while let Some(is_it) = map.next_key_seed(IsName(self.name))? {
            if is_it {
                found = Found::Value(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Found::NotObject("an array"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Found::NotObject("a string"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Found::NotObject("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Found::NotObject("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Found::NotObject("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Found::NotObject("a number"))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Found::NotObject("null"))
    }
}

/// Compares an object key with the field name, borrowing when it has no escapes. Read as
/// bytes, so that a name with an unpaired surrogate escape (valid JSON) is just another
/// name: it is never the field's, whose name is UTF-8.
struct IsName<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for IsName<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for IsName<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_bytes<E>(self, name: &[u8]) -> Result<bool, E> {
        Ok(name == self.0.as_bytes())
    }
}

/// Decodes a JSON string into a buffer, unpaired surrogates as WTF-8.
struct Decode<'b>(&'b mut Vec<u8>);

impl<'de> Visitor<'de> for Decode<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_bytes<E>(self, bytes: &[u8]) -> Result<(), E> {
        self.0.clear();
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_key(line: &str) -> Result<String, String> {
        let mut keys = KeyMaker::new(KeySpec::Field("device".into()), Format::Ndjson);
        keys.key(line.as_bytes())
            .map(|key| String::from_utf8_lossy(key).into_owned())
            .map_err(|e| format!("{}: {}", e.why.id(), e.detail))
    }

    #[test]
    fn key_field() {
        assert_eq!(
            field_key(r#"{"device":"d-1","x":[1,{"device":2}]}"#),
            Ok("d-1".into())
        );
        assert_eq!(
            field_key(r#"{"a":1,"device":"caf\u00e9"}"#),
            Ok("café".into())
        );
        assert_eq!(field_key(r#"{"dev\u0069ce":"esc"}"#), Ok("esc".into()));
        assert_eq!(field_key(r#"{"device":1.50}"#), Ok("1.50".into()));
        assert_eq!(field_key(r#"{"device":-7}"#), Ok("-7".into()));
        assert_eq!(field_key(r#"{"device":""}"#), Ok("".into()));
        assert_eq!(
            field_key(r#" {"device":"a","device":"b"} "#),
            Ok("b".into())
        );
        let missing = |line| {
            field_key(line)
                .unwrap_err()
                .starts_with("key_field_missing")
        };
        assert!(missing(r#"{"other":"x"}"#));
        assert!(missing(r#"{"device":null}"#));
        assert!(missing(r#"{"device":{"id":1}}"#));
        assert!(missing(r#"[1,2]"#));
        assert!(missing(r#""device""#));
        let invalid = |line| field_key(line).unwrap_err().starts_with("invalid_json");
        assert!(invalid(r#"{"device":"x""#));
        assert!(invalid(r#"{"device":"x"} trailing"#));
        assert!(invalid("not json"));
        assert!(invalid("{\"device\":\"\u{1}\"}"));
    }

    #[test]
    fn key_field_with_unpaired_surrogates() {
        let mut keys = KeyMaker::new(KeySpec::Field("d".into()), Format::Ndjson);
        let mut key = |line: &str| {
            keys.key(line.as_bytes())
                .map(<[u8]>::to_vec)
                .map_err(|e| format!("{}: {}", e.why.id(), e.detail))
        };
        // Valid JSON whose key cannot be UTF-8: the bytes the core refuses as not UTF-8.
        assert_eq!(
            key(r#"{"d":"\ud800","p":""}"#),
            Ok(b"\xED\xA0\x80".to_vec())
        );
        assert_eq!(key(r#"{"d":"a\uDC00"}"#), Ok(b"a\xED\xB0\x80".to_vec()));
        // A pair is one character.
        assert_eq!(key(r#"{"d":"\ud83d\ude00"}"#), Ok("😀".as_bytes().to_vec()));
        // An unpaired surrogate in another field's name is not this field's name.
        assert_eq!(key(r#"{"\ud800":1,"d":"x"}"#), Ok(b"x".to_vec()));
        assert_eq!(
            key(r#"{"\ud800":"y"}"#),
            Err("key_field_missing: no field \"d\"".into())
        );
    }

    #[test]
    fn hash() {
        let mut hex = [0; 16];
        // FNV-1a 64 reference values.
        assert_eq!(hash_key(&mut hex, b""), b"cbf29ce484222325");
        assert_eq!(hash_key(&mut hex, b"a"), b"af63dc4c8601ec8c");
    }
}
