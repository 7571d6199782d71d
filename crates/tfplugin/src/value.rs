//! Terraform values as Rust sees them: every attribute is known, null or unknown.
//!
//! [`Value<T>`] carries that third state through serde: a MessagePack unknown is written as
//! extension type 0 (see [`crate::codec`]), and the decoder in `codec` hands an unknown to
//! `Value`'s visitor as a unit, a null as `None`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

/// A known value, a null, or a value Terraform will only know after apply.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value<T> {
    Value(T),
    Null,
    Unknown,
}

pub type ValueString<'a> = Value<Cow<'a, str>>;
pub type ValueNumber = Value<i64>;
pub type ValueFloat = Value<f64>;
pub type ValueBool = Value<bool>;
pub type ValueList<T> = Value<Vec<T>>;
pub type ValueSet<T> = Value<Vec<T>>;
pub type ValueMap<'a, T> = Value<BTreeMap<Cow<'a, str>, T>>;

// Written out: a derived Default would require `T: Default`.
#[allow(clippy::derivable_impls)]
impl<T> Default for Value<T> {
    fn default() -> Self {
        Value::Null
    }
}

impl<T: fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Value(v) => v.fmt(f),
            Value::Null => f.write_str("null"),
            Value::Unknown => f.write_str("(known after apply)"),
        }
    }
}

impl<T> Value<T> {
    pub const fn is_value(&self) -> bool {
        matches!(self, Value::Value(_))
    }
    pub const fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub const fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }
    pub const fn as_ref(&self) -> Value<&T> {
        match self {
            Value::Value(v) => Value::Value(v),
            Value::Null => Value::Null,
            Value::Unknown => Value::Unknown,
        }
    }
    pub fn as_mut(&mut self) -> Value<&mut T> {
        match self {
            Value::Value(v) => Value::Value(v),
            Value::Null => Value::Null,
            Value::Unknown => Value::Unknown,
        }
    }
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Value<U> {
        match self {
            Value::Value(v) => Value::Value(f(v)),
            Value::Null => Value::Null,
            Value::Unknown => Value::Unknown,
        }
    }
    pub fn and_then<U>(self, f: impl FnOnce(T) -> Value<U>) -> Value<U> {
        match self {
            Value::Value(v) => f(v),
            Value::Null => Value::Null,
            Value::Unknown => Value::Unknown,
        }
    }
    pub fn map_or<U>(self, default: U, f: impl FnOnce(T) -> U) -> U {
        match self {
            Value::Value(v) => f(v),
            _ => default,
        }
    }
    /// The known value; null and unknown are `None`.
    pub fn as_option(self) -> Option<T> {
        match self {
            Value::Value(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_ref_option(&self) -> Option<&T> {
        match self {
            Value::Value(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_mut_option(&mut self) -> Option<&mut T> {
        match self {
            Value::Value(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_deref_option(&self) -> Option<&T::Target>
    where
        T: std::ops::Deref,
    {
        self.as_ref_option().map(|v| v.deref())
    }
    pub fn as_deref(&self) -> Value<&T::Target>
    where
        T: std::ops::Deref,
    {
        self.as_ref().map(|v| v.deref())
    }
    pub fn ok_or<E>(self, err: E) -> Result<T, E> {
        self.as_option().ok_or(err)
    }
    pub fn ok_or_else<E>(self, err: impl FnOnce() -> E) -> Result<T, E> {
        self.as_option().ok_or_else(err)
    }
    pub fn or_else(self, f: impl FnOnce() -> Self) -> Self {
        match self {
            Value::Value(_) => self,
            _ => f(),
        }
    }
    pub fn filter(self, keep: impl FnOnce(&T) -> bool) -> Self {
        match self {
            Value::Value(v) if !keep(&v) => Value::Null,
            v => v,
        }
    }
    pub fn unwrap_or(self, default: T) -> T {
        self.as_option().unwrap_or(default)
    }
    pub fn unwrap_or_else(self, f: impl FnOnce() -> T) -> T {
        self.as_option().unwrap_or_else(f)
    }
    pub fn unwrap_or_default(self) -> T
    where
        T: Default,
    {
        self.as_option().unwrap_or_default()
    }
    /// `self` when known, else `other`.
    pub fn or(self, other: Self) -> Self {
        match self {
            Value::Value(_) => self,
            _ => other,
        }
    }
    pub fn take(&mut self) -> Self {
        std::mem::take(self)
    }
    pub fn iter(&self) -> std::option::IntoIter<&T> {
        self.as_ref_option().into_iter()
    }
}

impl<T: Clone> Value<&T> {
    pub fn cloned(self) -> Value<T> {
        self.map(Clone::clone)
    }
}

impl<T: Copy> Value<&T> {
    pub fn copied(self) -> Value<T> {
        self.map(|v| *v)
    }
}

impl<'a> Value<Cow<'a, str>> {
    /// The string, or "" when null or unknown.
    pub fn as_str(&self) -> &str {
        match self {
            Value::Value(s) => s,
            _ => "",
        }
    }
}

impl<T> From<Option<T>> for Value<T> {
    fn from(v: Option<T>) -> Self {
        match v {
            Some(v) => Value::Value(v),
            None => Value::Null,
        }
    }
}

impl<'a> From<&'a str> for Value<Cow<'a, str>> {
    fn from(v: &'a str) -> Self {
        Value::Value(Cow::Borrowed(v))
    }
}

impl From<String> for Value<Cow<'_, str>> {
    fn from(v: String) -> Self {
        Value::Value(Cow::Owned(v))
    }
}

/// The name under which rmp-serde writes a MessagePack extension: (type, bytes).
const EXT: &str = "_ExtStruct";

/// cty's unknown value: extension type 0 with one zero byte.
pub(crate) struct UnknownMarker;

impl Serialize for UnknownMarker {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(EXT, &(0i8, serde_bytes::Bytes::new(&[0])))
    }
}

impl<T: Serialize> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Value(v) => v.serialize(s),
            Value::Null => s.serialize_none(),
            Value::Unknown => UnknownMarker.serialize(s),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Value<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value, null or unknown")
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Value::Null)
            }
            // Only the codec's decoder calls this, for an unknown value.
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Value::Unknown)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                T::deserialize(d).map(Value::Value)
            }
        }
        d.deserialize_option(V(PhantomData))
    }
}

/// The state of something that has no attributes (private state, provider meta).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ValueEmpty;

impl Serialize for ValueEmpty {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_none()
    }
}

impl<'de> Deserialize<'de> for ValueEmpty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::IgnoredAny::deserialize(d).map(|_| ValueEmpty)
    }
}

/// A block that appears at most once ([`crate::schema::NestedBlock::Optional`]) as a
/// `Value<T>` field: Terraform sends a list of zero or one item; null is the empty list.
/// Use with `#[serde(with = "tfplugin::value::serde_as_vec")]`.
pub mod serde_as_vec {
    use super::{UnknownMarker, Value};
    use serde::de::{self, Deserialize, Deserializer};
    use serde::ser::{Serialize, SerializeSeq, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &Value<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Value::Value(t) => {
                let mut seq = s.serialize_seq(Some(1))?;
                seq.serialize_element(t)?;
                seq.end()
            }
            Value::Null => s.serialize_seq(Some(0))?.end(),
            Value::Unknown => UnknownMarker.serialize(s),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Value<T>, D::Error> {
        match Value::<Vec<Value<T>>>::deserialize(d)? {
            Value::Value(mut items) => match items.len() {
                0 => Ok(Value::Null),
                1 => Ok(items.remove(0)),
                n => Err(de::Error::custom(format!(
                    "at most one block is allowed here, not {n}"
                ))),
            },
            Value::Null => Ok(Value::Null),
            Value::Unknown => Ok(Value::Unknown),
        }
    }
}
