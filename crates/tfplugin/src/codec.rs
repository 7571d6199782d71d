//! `DynamicValue` ↔ Rust: MessagePack (what Terraform sends) and JSON (raw state) are read into
//! one tree ([`rmpv::Value`]), which a serde deserializer turns into typed structs; values go
//! back as MessagePack with serde.
//!
//! The deserializer knows where it is, so a value of the wrong shape fails with its attribute
//! path (`vlan_id: a whole number is needed, not 12.5`), and it tells [`crate::Value`] apart
//! from null (`None`) and unknown (a unit; cty writes unknown as extension type 0, or 12 when
//! Terraform refined it).

use std::fmt;

use rmpv::Value as Mp;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, Visitor};
use serde::Deserialize;

use crate::diagnostics::{AttributePath, Diagnostics, Step};

/// A decoded value tree, before it is typed.
pub type Tree = Mp;

/// Why a value could not be typed, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    /// Innermost step first (errors are built while unwinding).
    rev_path: Vec<Step>,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ErrorKind {
    /// A number with a fractional part (or out of range) where a whole number is needed.
    NotWhole(String),
    /// Unknown where the Rust type has no room for it.
    Unknown,
    /// Anything else serde reports (wrong type, missing attribute).
    Other(String),
}

impl DecodeError {
    fn at(mut self, step: Step) -> Self {
        self.rev_path.push(step);
        self
    }

    pub fn path(&self) -> AttributePath {
        AttributePath {
            steps: self.rev_path.iter().rev().cloned().collect(),
        }
    }

    /// This error as a diagnostic on its attribute.
    pub fn report(&self, diags: &mut Diagnostics, what: &str) {
        let path = self.path();
        let at = if path.is_root() {
            what.to_string()
        } else {
            format!("`{path}`")
        };
        let (summary, detail) = match &self.kind {
            ErrorKind::NotWhole(n) => (
                "A whole number is needed".to_string(),
                format!("{at} takes a whole number, not {n}. Write it without a fraction, for example {}.", whole_hint(n)),
            ),
            ErrorKind::Unknown => (
                "Value not known yet".to_string(),
                format!("{at} must be known when this is planned; use a value that does not depend on resources created in the same apply."),
            ),
            ErrorKind::Other(m) => (
                "Invalid value".to_string(),
                format!("{at}: {m}. Check the type this attribute takes in the provider documentation."),
            ),
        };
        diags.error(summary, detail, path);
    }
}

fn whole_hint(n: &str) -> String {
    n.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && f.abs() < 1e15)
        .map(|f| format!("{}", f.trunc() as i64))
        .unwrap_or_else(|| "12".into())
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = match &self.kind {
            ErrorKind::NotWhole(n) => format!("a whole number is needed, not {n}"),
            ErrorKind::Unknown => "value not known yet".into(),
            ErrorKind::Other(m) => m.clone(),
        };
        let path = self.path();
        if path.is_root() {
            f.write_str(&m)
        } else {
            write!(f, "{path}: {m}")
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError {
            rev_path: Vec::new(),
            kind: ErrorKind::Other(msg.to_string()),
        }
    }
}

fn is_unknown(v: &Mp) -> bool {
    matches!(v, Mp::Ext(0 | 12, _))
}

/// Reads MessagePack bytes into a tree; empty bytes are null.
pub fn read_msgpack(bytes: &[u8]) -> Result<Tree, DecodeError> {
    if bytes.is_empty() {
        return Ok(Mp::Nil);
    }
    let mut cursor = bytes;
    let v = rmpv::decode::read_value(&mut cursor)
        .map_err(|e| de::Error::custom(format!("malformed MessagePack value ({e})")))?;
    if !cursor.is_empty() {
        return Err(de::Error::custom(
            "malformed MessagePack value (trailing bytes)",
        ));
    }
    Ok(v)
}

/// Reads JSON bytes (raw state, or a `DynamicValue` sent as JSON) into a tree.
pub fn read_json(bytes: &[u8]) -> Result<Tree, DecodeError> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| de::Error::custom(format!("malformed JSON value ({e})")))?;
    Ok(from_json(v))
}

pub fn from_json(v: serde_json::Value) -> Tree {
    match v {
        serde_json::Value::Null => Mp::Nil,
        serde_json::Value::Bool(b) => Mp::Boolean(b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Mp::from(i)
            } else if let Some(u) = n.as_u64() {
                Mp::from(u)
            } else {
                Mp::F64(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Mp::from(s),
        serde_json::Value::Array(a) => Mp::Array(a.into_iter().map(from_json).collect()),
        serde_json::Value::Object(o) => Mp::Map(
            o.into_iter()
                .map(|(k, v)| (Mp::from(k), from_json(v)))
                .collect(),
        ),
    }
}

/// Types a tree.
pub fn from_tree<'de, T: Deserialize<'de>>(tree: &'de Tree) -> Result<T, DecodeError> {
    T::deserialize(Node(tree))
}

/// Writes a value as MessagePack, structs as maps (what Terraform reads).
pub fn to_msgpack<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(value).map_err(|e| e.to_string())
}

/// Writes a tree as MessagePack.
pub fn tree_to_msgpack(tree: &Tree) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, tree);
    out
}

pub(crate) fn get<'t>(map: &'t Tree, key: &str) -> Option<&'t Tree> {
    match map {
        Mp::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

fn describe(v: &Mp) -> String {
    match v {
        Mp::Nil => "null".into(),
        Mp::Boolean(b) => format!("bool {b}"),
        Mp::Integer(i) => format!("number {i}"),
        Mp::F32(f) => format!("number {f}"),
        Mp::F64(f) => format!("number {f}"),
        Mp::String(s) => format!("string {:?}", s.as_str().unwrap_or("?")),
        Mp::Binary(_) => "bytes".into(),
        Mp::Array(_) => "a list".into(),
        Mp::Map(_) => "an object".into(),
        Mp::Ext(..) => "an unknown value".into(),
    }
}

/// One node of the tree as a serde deserializer.
#[derive(Clone, Copy)]
struct Node<'de>(&'de Mp);

impl<'de> Node<'de> {
    fn mismatch(self, expected: &str) -> DecodeError {
        if is_unknown(self.0) {
            return DecodeError {
                rev_path: Vec::new(),
                kind: ErrorKind::Unknown,
            };
        }
        de::Error::custom(format!("expected {expected}, got {}", describe(self.0)))
    }

    fn number_text(self) -> Option<String> {
        match self.0 {
            Mp::Integer(i) => Some(i.to_string()),
            Mp::F64(f) => Some(f.to_string()),
            Mp::F32(f) => Some(f.to_string()),
            Mp::String(s) => s.as_str().map(str::to_string),
            _ => None,
        }
    }

    /// A whole number in i64 or u64 range, from an integer, a whole float or a numeric string
    /// (cty writes numbers that don't fit a float64 as strings).
    fn whole<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let not_whole = |n: String| DecodeError {
            rev_path: Vec::new(),
            kind: ErrorKind::NotWhole(n),
        };
        let float = |f: f64| -> Result<i64, DecodeError> {
            if f.fract() == 0.0 && (-9.2e18..=9.2e18).contains(&f) {
                Ok(f as i64)
            } else {
                Err(not_whole(f.to_string()))
            }
        };
        let n = match self.0 {
            Mp::Integer(i) => match (i.as_i64(), i.as_u64()) {
                (Some(n), _) => n,
                (None, Some(n)) => return visitor.visit_u64(n),
                _ => return Err(not_whole(i.to_string())),
            },
            Mp::F64(f) => float(*f)?,
            Mp::F32(f) => float(*f as f64)?,
            Mp::String(s) => {
                let s = s.as_str().unwrap_or("");
                if let Ok(n) = s.parse::<i64>() {
                    n
                } else if let Ok(f) = s.parse::<f64>() {
                    float(f).map_err(|_| not_whole(s.to_string()))?
                } else {
                    return Err(self.mismatch("a number"));
                }
            }
            _ => return Err(self.mismatch("a number")),
        };
        visitor.visit_i64(n)
    }
}

macro_rules! whole_numbers {
    ($($m:ident)*) => {$(
        fn $m<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            self.whole(visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for Node<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Mp::Nil => visitor.visit_unit(),
            Mp::Boolean(b) => visitor.visit_bool(*b),
            Mp::Integer(i) => match (i.as_i64(), i.as_u64()) {
                (Some(n), _) => visitor.visit_i64(n),
                (None, Some(n)) => visitor.visit_u64(n),
                _ => visitor.visit_f64(i.as_f64().unwrap_or(f64::NAN)),
            },
            Mp::F32(f) => visitor.visit_f64(*f as f64),
            Mp::F64(f) => visitor.visit_f64(*f),
            Mp::String(s) => match s.as_str() {
                Some(s) => visitor.visit_borrowed_str(s),
                None => visitor.visit_borrowed_bytes(s.as_bytes()),
            },
            Mp::Binary(b) => visitor.visit_borrowed_bytes(b),
            Mp::Array(items) => visitor.visit_seq(Seq {
                items: items.iter(),
                index: 0,
            }),
            Mp::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
                attributes: false,
            }),
            Mp::Ext(..) => Err(self.mismatch("a known value")),
        }
    }

    whole_numbers!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64);

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Mp::Integer(i) => visitor.visit_f64(i.as_f64().unwrap_or(f64::NAN)),
            Mp::F64(f) => visitor.visit_f64(*f),
            Mp::F32(f) => visitor.visit_f64(*f as f64),
            Mp::String(s) => match s.as_str().and_then(|s| s.parse::<f64>().ok()) {
                Some(f) => visitor.visit_f64(f),
                None => Err(self.mismatch("a number")),
            },
            _ => Err(self.mismatch("a number")),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Mp::Boolean(b) => visitor.visit_bool(*b),
            _ => Err(self.mismatch("true or false")),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Mp::String(s) => match s.as_str() {
                Some(s) => visitor.visit_borrowed_str(s),
                None => Err(de::Error::custom("a string that is not UTF-8")),
            },
            // cty converts numbers and bools to strings where a string is declared; a tree
            // from raw JSON state may still hold them unconverted.
            Mp::Integer(_) | Mp::F64(_) | Mp::F32(_) => {
                visitor.visit_string(self.number_text().unwrap_or_default())
            }
            Mp::Boolean(b) => visitor.visit_string(b.to_string()),
            _ => Err(self.mismatch("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Mp::Nil => visitor.visit_none(),
            v if is_unknown(v) => visitor.visit_unit(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Mp::Nil => visitor.visit_unit(),
            _ => Err(self.mismatch("null")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Mp::Array(items) => visitor.visit_seq(Seq {
                items: items.iter(),
                index: 0,
            }),
            _ => Err(self.mismatch("a list")),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Mp::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
                attributes: false,
            }),
            _ => Err(self.mismatch("a map")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.0 {
            Mp::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                value: None,
                attributes: true,
            }),
            _ => Err(self.mismatch("an object")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.0 {
            Mp::String(s) => match s.as_str() {
                Some(s) => {
                    visitor.visit_enum(IntoDeserializer::<DecodeError>::into_deserializer(s))
                }
                None => Err(self.mismatch("a string")),
            },
            _ => Err(self.mismatch("a string")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit_struct tuple tuple_struct identifier
    }
}

struct Seq<'de> {
    items: std::slice::Iter<'de, Mp>,
    index: i64,
}

impl<'de> de::SeqAccess<'de> for Seq<'de> {
    type Error = DecodeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(Node(item))
            .map(Some)
            .map_err(|e| e.at(Step::Index(index)))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'de> {
    entries: std::slice::Iter<'de, (Mp, Mp)>,
    value: Option<(&'de str, &'de Mp)>,
    /// Keys are attribute names (an object) rather than map keys.
    attributes: bool,
}

impl<'de> de::MapAccess<'de> for Map<'de> {
    type Error = DecodeError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let Some((k, v)) = self.entries.next() else {
            return Ok(None);
        };
        let Some(key) = k.as_str() else {
            return Err(de::Error::custom("an object key that is not a string"));
        };
        self.value = Some((key, v));
        seed.deserialize(de::value::BorrowedStrDeserializer::new(key))
            .map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let Some((key, v)) = self.value.take() else {
            return Err(de::Error::custom("a map value without its key"));
        };
        let step = if self.attributes {
            Step::Attribute(key.to_string())
        } else {
            Step::Key(key.to_string())
        };
        seed.deserialize(Node(v)).map_err(|e| e.at(step))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Value, ValueList, ValueNumber, ValueString};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    struct Nic<'a> {
        ip: ValueString<'a>,
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    struct State<'a> {
        name: ValueString<'a>,
        vlan_id: ValueNumber,
        nics: ValueList<Value<Nic<'a>>>,
    }

    fn mp(v: serde_json::Value) -> Tree {
        from_json(v)
    }

    #[test]
    fn known_null_and_unknown_round_trip_at_any_depth() {
        let state = State {
            name: Value::Unknown,
            vlan_id: Value::Null,
            nics: Value::Value(vec![
                Value::Value(Nic { ip: Value::Unknown }),
                Value::Null,
                Value::Value(Nic {
                    ip: "10.0.0.1".into(),
                }),
            ]),
        };
        let bytes = to_msgpack(&state).unwrap();
        let tree = read_msgpack(&bytes).unwrap();
        // Unknown is cty's extension type 0.
        assert!(matches!(get(&tree, "name"), Some(Mp::Ext(0, _))));
        let back: State = from_tree(&tree).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn an_optional_block_is_a_list_of_at_most_one() {
        #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
        struct Outer<'a> {
            #[serde(with = "crate::value::serde_as_vec")]
            linux: Value<Nic<'a>>,
        }
        for v in [
            Value::Null,
            Value::Unknown,
            Value::Value(Nic { ip: "x".into() }),
        ] {
            let o = Outer { linux: v };
            let tree = read_msgpack(&to_msgpack(&o).unwrap()).unwrap();
            assert_eq!(from_tree::<Outer>(&tree).unwrap(), o);
        }
        let null = read_msgpack(&to_msgpack(&Outer::default()).unwrap()).unwrap();
        assert_eq!(get(&null, "linux"), Some(&Mp::Array(vec![])));
        let two = mp(serde_json::json!({"linux": [{"ip": "a"}, {"ip": "b"}]}));
        let e = from_tree::<Outer>(&two).unwrap_err();
        assert_eq!(e.path(), AttributePath::new("linux"));
    }

    #[test]
    fn refined_unknowns_are_unknown() {
        let tree = Mp::Map(vec![
            (Mp::from("name"), Mp::Ext(12, vec![0x80])),
            (Mp::from("vlan_id"), Mp::from(3)),
            (Mp::from("nics"), Mp::Ext(0, vec![0])),
        ]);
        let s: State = from_tree(&tree).unwrap();
        assert_eq!(s.name, Value::Unknown);
        assert_eq!(s.nics, Value::Unknown);
        assert_eq!(s.vlan_id, Value::Value(3));
    }

    #[test]
    fn a_fraction_where_a_whole_number_goes_names_the_attribute() {
        let tree = mp(serde_json::json!({"name": "a", "vlan_id": 12.5, "nics": null}));
        let e = from_tree::<State>(&tree).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotWhole("12.5".into()));
        assert_eq!(e.path(), AttributePath::new("vlan_id"));
        let mut diags = Diagnostics::default();
        e.report(&mut diags, "the configuration");
        assert_eq!(diags.errors[0].summary, "A whole number is needed");
        assert!(
            diags.errors[0].detail.contains("not 12.5"),
            "{:?}",
            diags.errors
        );
        // Whole floats and numeric strings are fine.
        let tree = mp(serde_json::json!({"name": "a", "vlan_id": 12.0, "nics": null}));
        assert_eq!(from_tree::<State>(&tree).unwrap().vlan_id, Value::Value(12));
        let tree = mp(serde_json::json!({"name": "a", "vlan_id": "120", "nics": null}));
        assert_eq!(
            from_tree::<State>(&tree).unwrap().vlan_id,
            Value::Value(120)
        );
    }

    #[test]
    fn a_wrong_shape_deep_inside_names_its_path() {
        let tree =
            mp(serde_json::json!({"name": "a", "vlan_id": 1, "nics": [{"ip": "x"}, {"ip": [1]}]}));
        let e = from_tree::<State>(&tree).unwrap_err();
        assert_eq!(
            e.path(),
            AttributePath::new("nics").index(1).attribute("ip")
        );
        assert!(
            e.to_string().starts_with("nics[1].ip: expected a string"),
            "{e}"
        );
    }

    #[test]
    fn malformed_bytes_are_an_error_not_a_panic() {
        assert!(read_msgpack(&[0xdb, 0xff, 0xff]).is_err());
        assert!(read_msgpack(&[0x92, 0x01]).is_err());
        assert!(read_msgpack(&[0x81, 0xa1]).is_err());
        assert!(read_json(b"{").is_err());
        assert_eq!(read_msgpack(&[]).unwrap(), Mp::Nil);
    }

    #[test]
    fn unknown_where_no_unknown_fits_is_reported() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Plain {
            name: String,
        }
        let tree = Mp::Map(vec![(Mp::from("name"), Mp::Ext(0, vec![0]))]);
        let e = from_tree::<Plain>(&tree).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unknown);
        assert_eq!(e.path(), AttributePath::new("name"));
    }
}
