//! RFC 8785 (JSON Canonicalization Scheme) encoding: a serde `Serializer` that writes canonical bytes directly.
//!
//! Object members are buffered per object and sorted by the UTF-16 code units of their keys;
//! numbers are written as ECMAScript's `Number.prototype.toString` writes them (through
//! `ryu-js`); strings use RFC 8785's minimal escaping. Anything JSON cannot carry exactly —
//! non-finite floats, integers beyond ±2^53 that a double would round, non-string map keys,
//! duplicate keys — is an error, never silently changed. `serde_jcs` (the reference encoder
//! named in the design) serves as the differential oracle in this crate's property tests.

use std::borrow::Cow;
use std::fmt::Display;

use serde::ser::{self, Serialize};
use serde_json::Value;

use crate::{CanonError, MAX_SAFE_INTEGER, parse_strict};

/// The RFC 8785 canonical bytes of any serializable value.
///
/// Object keys are sorted by UTF-16 code units, numbers are written as
/// ECMAScript's `Number.prototype.toString` writes them, strings use the
/// minimal escaping of RFC 8785, and there is no whitespace.
///
/// ```
/// let bytes = parmana_canon::to_canonical_vec(&serde_json::json!({"b": [1.5, 2e21], "a": "\u{e9}"})).unwrap();
/// assert_eq!(bytes, "{\"a\":\"\u{e9}\",\"b\":[1.5,2e+21]}".as_bytes());
/// assert!(parmana_canon::to_canonical_vec(&f64::NAN).is_err());
/// ```
pub fn to_canonical_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonError> {
    let mut out = Vec::with_capacity(256);
    value.serialize(Writer::new(&mut out))?;
    Ok(out)
}

/// The RFC 8785 canonical bytes of a parsed JSON value.
pub fn canonicalize_value(value: &Value) -> Result<Vec<u8>, CanonError> {
    to_canonical_vec(value)
}

/// Parses JSON text strictly (see [`parse_strict`]) and returns its RFC 8785 canonical bytes.
pub fn canonicalize(text: &[u8]) -> Result<Vec<u8>, CanonError> {
    canonicalize_value(&parse_strict(text)?)
}

impl ser::Error for CanonError {
    fn custom<T: Display>(msg: T) -> Self {
        CanonError::NotRepresentable {
            message: msg.to_string(),
        }
    }
}

fn not_representable(message: impl Into<String>) -> CanonError {
    CanonError::NotRepresentable {
        message: message.into(),
    }
}

/// Writes a string with RFC 8785 escaping: `"` `\` and C0 controls only.
fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most strings need no escape: find out without branching per byte (this loop vectorizes).
    let needs_escape = bytes.iter().fold(false, |acc, &b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escape {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0a => b"\\n",
            0x0c => b"\\f",
            0x0d => b"\\r",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0x0f)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_f64(out: &mut Vec<u8>, value: f64) -> Result<(), CanonError> {
    if !value.is_finite() {
        return Err(not_representable(format!("{value} is not a JSON number")));
    }
    let mut buffer = ryu_js::Buffer::new();
    out.extend_from_slice(buffer.format_finite(value).as_bytes());
    Ok(())
}

fn write_i128(out: &mut Vec<u8>, value: i128) -> Result<(), CanonError> {
    if value.unsigned_abs() > MAX_SAFE_INTEGER.unsigned_abs().into() {
        // A double holds it exactly only if it is exactly representable; writing it as
        // ECMAScript would is then the canonical form. Otherwise refuse rather than round.
        #[allow(clippy::cast_precision_loss, reason = "checked exact just below")]
        let as_double = value as f64;
        #[allow(
            clippy::cast_possible_truncation,
            reason = "as_double is integral and below 2^127"
        )]
        if as_double as i128 != value || as_double.abs() >= 1.7e38 {
            return Err(not_representable(format!(
                "integer {value} is beyond ±(2^53-1) and a double would round it"
            )));
        }
        return write_f64(out, as_double);
    }
    out.extend_from_slice(value.to_string().as_bytes());
    Ok(())
}

/// The canonical serializer: writes into `out`.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    /// Set only for the string inside a [`RawCanonical`](crate::RawCanonical): it is already
    /// canonical JSON and is copied as it is.
    verbatim: bool,
    /// Set only for the top-level value of [`to_canonical_pair`]: where its object is also
    /// written without one member.
    omit: Option<Omit<'a>>,
}

/// The second output of [`to_canonical_pair`]: the top-level object without the member `key`.
struct Omit<'a> {
    key: &'a str,
    out: &'a mut Vec<u8>,
    written: &'a mut bool,
}

impl<'a> Writer<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            verbatim: false,
            omit: None,
        }
    }
}

/// The canonical bytes of `value`, and of `value` without its top-level member `omit` (the
/// same bytes when it has no such member), from one encoding. `value` must serialize as an
/// object.
pub(crate) fn to_canonical_pair<T: Serialize + ?Sized>(
    value: &T,
    omit: &str,
) -> Result<(Vec<u8>, Vec<u8>), CanonError> {
    let mut out = Vec::with_capacity(256);
    let mut without = Vec::with_capacity(256);
    let mut written = false;
    value.serialize(Writer {
        out: &mut out,
        verbatim: false,
        omit: Some(Omit {
            key: omit,
            out: &mut without,
            written: &mut written,
        }),
    })?;
    if !written {
        return Err(not_representable("the value is not a JSON object"));
    }
    Ok((out, without))
}

/// Compares keys by UTF-16 code units, as RFC 8785 sorts them.
fn utf16_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.as_bytes().cmp(b.as_bytes())
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

/// An object being written: members are serialized into one scratch buffer, then sorted.
struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    /// For the top-level object of [`to_canonical_pair`]: the second output.
    omit: Option<Omit<'a>>,
    scratch: Vec<u8>,
    members: Vec<(Cow<'static, str>, std::ops::Range<usize>)>,
    pending_key: Option<String>,
    /// For struct and tuple variants: the variant name wrapping this object or array.
    variant: Option<&'static str>,
}

impl<'a> ObjectWriter<'a> {
    fn new(out: &'a mut Vec<u8>, len: Option<usize>, variant: Option<&'static str>) -> Self {
        Self {
            out,
            omit: None,
            scratch: Vec::with_capacity(64 * len.unwrap_or(4)),
            members: Vec::with_capacity(len.unwrap_or(4)),
            pending_key: None,
            variant,
        }
    }

    fn member<T: Serialize + ?Sized>(
        &mut self,
        key: Cow<'static, str>,
        value: &T,
    ) -> Result<(), CanonError> {
        let start = self.scratch.len();
        value.serialize(Writer::new(&mut self.scratch))?;
        self.members.push((key, start..self.scratch.len()));
        Ok(())
    }

    fn finish(mut self) -> Result<(), CanonError> {
        // ASCII keys (nearly always) sort by their bytes, which is their UTF-16 order; members
        // that arrive strictly ascending (a sorted map, a struct declared in order) are
        // neither sorted nor checked for duplicates again.
        let ascii = self.members.iter().all(|(key, _)| key.is_ascii());
        let compare = |a: &str, b: &str| {
            if ascii {
                a.as_bytes().cmp(b.as_bytes())
            } else {
                utf16_cmp(a, b)
            }
        };
        let ascending = self
            .members
            .windows(2)
            .all(|pair| compare(&pair[0].0, &pair[1].0).is_lt());
        if !ascending {
            self.members.sort_unstable_by(|a, b| compare(&a.0, &b.0));
            if let Some(pair) = self.members.windows(2).find(|pair| pair[0].0 == pair[1].0) {
                return Err(not_representable(format!(
                    "duplicate object key {:?}",
                    pair[0].0
                )));
            }
        }
        let keys: usize = self.members.iter().map(|(key, _)| key.len() + 4).sum();
        self.out.reserve(self.scratch.len() + keys + 2);
        if let Some(variant) = self.variant {
            self.out.push(b'{');
            write_string(self.out, variant);
            self.out.push(b':');
        }
        self.out.push(b'{');
        for (index, (key, range)) in self.members.iter().enumerate() {
            if index > 0 {
                self.out.push(b',');
            }
            write_string(self.out, key);
            self.out.push(b':');
            self.out.extend_from_slice(&self.scratch[range.clone()]);
        }
        self.out.push(b'}');
        if self.variant.is_some() {
            self.out.push(b'}');
        }
        if let Some(omit) = self.omit.take() {
            omit.out.push(b'{');
            let mut first = true;
            for (key, range) in self.members.iter().filter(|(key, _)| key != omit.key) {
                if !first {
                    omit.out.push(b',');
                }
                first = false;
                write_string(omit.out, key);
                omit.out.push(b':');
                omit.out.extend_from_slice(&self.scratch[range.clone()]);
            }
            omit.out.push(b'}');
            *omit.written = true;
        }
        Ok(())
    }
}

/// An array being written.
struct ArrayWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    variant: Option<&'static str>,
}

impl<'a> ArrayWriter<'a> {
    fn new(out: &'a mut Vec<u8>, variant: Option<&'static str>) -> Self {
        if let Some(variant) = variant {
            out.push(b'{');
            write_string(out, variant);
            out.push(b':');
        }
        out.push(b'[');
        Self {
            out,
            first: true,
            variant,
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        value.serialize(Writer::new(self.out))
    }

    fn finish(self) -> Result<(), CanonError> {
        self.out.push(b']');
        if self.variant.is_some() {
            self.out.push(b'}');
        }
        Ok(())
    }
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = CanonError;
    type SerializeSeq = ArrayWriter<'a>;
    type SerializeTuple = ArrayWriter<'a>;
    type SerializeTupleStruct = ArrayWriter<'a>;
    type SerializeTupleVariant = ArrayWriter<'a>;
    type SerializeMap = ObjectWriter<'a>;
    type SerializeStruct = ObjectWriter<'a>;
    type SerializeStructVariant = ObjectWriter<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), CanonError> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), CanonError> {
        write_i128(self.out, v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), CanonError> {
        write_i128(self.out, v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), CanonError> {
        write_i128(self.out, v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), CanonError> {
        write_i128(self.out, v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<(), CanonError> {
        write_i128(self.out, v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), CanonError> {
        write_i128(self.out, v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), CanonError> {
        write_i128(self.out, v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), CanonError> {
        write_i128(self.out, v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), CanonError> {
        write_i128(self.out, v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<(), CanonError> {
        let v = i128::try_from(v).map_err(|_| not_representable("integer beyond i128"))?;
        write_i128(self.out, v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), CanonError> {
        write_f64(self.out, v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<(), CanonError> {
        write_f64(self.out, v)
    }
    fn serialize_char(self, v: char) -> Result<(), CanonError> {
        write_string(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), CanonError> {
        if self.verbatim {
            self.out.extend_from_slice(v.as_bytes());
        } else {
            write_string(self.out, v);
        }
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), CanonError> {
        let mut array = ArrayWriter::new(self.out, None);
        for byte in v {
            array.element(byte)?;
        }
        array.finish()
    }
    fn serialize_none(self) -> Result<(), CanonError> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), CanonError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), CanonError> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), CanonError> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), CanonError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        let verbatim = name == crate::raw::RAW_TOKEN;
        value.serialize(Writer {
            out: self.out,
            verbatim,
            omit: self.omit,
        })
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        self.out.push(b'{');
        write_string(self.out, variant);
        self.out.push(b':');
        value.serialize(Writer::new(self.out))?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<ArrayWriter<'a>, CanonError> {
        Ok(ArrayWriter::new(self.out, None))
    }
    fn serialize_tuple(self, _len: usize) -> Result<ArrayWriter<'a>, CanonError> {
        Ok(ArrayWriter::new(self.out, None))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<ArrayWriter<'a>, CanonError> {
        Ok(ArrayWriter::new(self.out, None))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<ArrayWriter<'a>, CanonError> {
        Ok(ArrayWriter::new(self.out, Some(variant)))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<ObjectWriter<'a>, CanonError> {
        let mut object = ObjectWriter::new(self.out, len, None);
        object.omit = self.omit;
        Ok(object)
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<ObjectWriter<'a>, CanonError> {
        let mut object = ObjectWriter::new(self.out, Some(len), None);
        object.omit = self.omit;
        Ok(object)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<ObjectWriter<'a>, CanonError> {
        Ok(ObjectWriter::new(self.out, Some(len), Some(variant)))
    }
}

impl ser::SerializeSeq for ArrayWriter<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.element(value)
    }
    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

impl ser::SerializeTuple for ArrayWriter<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.element(value)
    }
    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for ArrayWriter<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.element(value)
    }
    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for ArrayWriter<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.element(value)
    }
    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

impl ser::SerializeMap for ObjectWriter<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), CanonError> {
        self.pending_key = Some(key.serialize(KeyWriter)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        let key = self
            .pending_key
            .take()
            .ok_or_else(|| not_representable("map value without a key"))?;
        self.member(Cow::Owned(key), value)
    }
    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

impl ser::SerializeStruct for ObjectWriter<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        self.member(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for ObjectWriter<'_> {
    type Ok = ();
    type Error = CanonError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        self.member(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

/// Map keys: JSON object keys are strings; other key types are refused.
struct KeyWriter;

fn key_error() -> CanonError {
    not_representable("JSON object keys must be strings")
}

impl ser::Serializer for KeyWriter {
    type Ok = String;
    type Error = CanonError;
    type SerializeSeq = ser::Impossible<String, CanonError>;
    type SerializeTuple = ser::Impossible<String, CanonError>;
    type SerializeTupleStruct = ser::Impossible<String, CanonError>;
    type SerializeTupleVariant = ser::Impossible<String, CanonError>;
    type SerializeMap = ser::Impossible<String, CanonError>;
    type SerializeStruct = ser::Impossible<String, CanonError>;
    type SerializeStructVariant = ser::Impossible<String, CanonError>;

    fn serialize_str(self, v: &str) -> Result<String, CanonError> {
        Ok(v.to_owned())
    }
    fn serialize_char(self, v: char) -> Result<String, CanonError> {
        Ok(v.to_string())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<String, CanonError> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<String, CanonError> {
        if name == crate::raw::RAW_TOKEN {
            return Err(key_error());
        }
        value.serialize(self)
    }
    fn serialize_bool(self, _v: bool) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_i8(self, _v: i8) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_i16(self, _v: i16) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_i32(self, _v: i32) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_i64(self, _v: i64) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_u8(self, _v: u8) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_u16(self, _v: u16) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_u32(self, _v: u32) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_u64(self, _v: u64) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_f32(self, _v: f32) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_f64(self, _v: f64) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_none(self) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_unit(self) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<String, CanonError> {
        Err(key_error())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, CanonError> {
        Err(key_error())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, CanonError> {
        Err(key_error())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, CanonError> {
        Err(key_error())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, CanonError> {
        Err(key_error())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, CanonError> {
        Err(key_error())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, CanonError> {
        Err(key_error())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, CanonError> {
        Err(key_error())
    }
}
