//! Reading JSON without building a `serde_json::Value` tree: the few shapes
//! the fields of a request or a stored outcome list can take, borrowed from
//! the text unless an escape forces a copy. Pure; `protocol` and `outcomes`
//! read through it.
//!
//! Each reader keeps what `Value` would have made of the same text, so the
//! checks decide exactly as they did over the tree:
//! - every container is entered through `deserialize_any`, so serde_json's
//!   nesting limit applies as before (its `IgnoredAny` skips without it,
//!   and without checking escapes: it is never used here);
//! - strings are read in full, escapes checked;
//! - a number is kept as its text: with `arbitrary_precision` serde_json
//!   hands it over as a one-entry map under [`NUMBER_TOKEN`], which `Value`
//!   reads the same way even when a body spells that map out itself.
//!
//! An object whose first key is serde_json's `RawValue` token means, to
//! `Value`, the JSON inside the string under it. The readers give an error
//! there; their callers then read the text through `Value`, as they do for
//! any text the readers refuse, so the rare case keeps the tree's reading.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::SeqAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The key under which serde_json (`arbitrary_precision`) hands a number
/// to a visitor.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";
/// The key `Value` reads as "the JSON in this string" (`raw_value`).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// A string, borrowed from the input where it holds no escape.
pub struct Text<'de>(pub Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// Visitor methods for a boolean or a number (with `arbitrary_precision`,
/// numbers come as maps; these are for completeness) that a reader only
/// notes: each answers `$value`. `visit_scalars_as!(and strings $value)`
/// does the same for a string and null too.
macro_rules! visit_scalars_as {
    (and strings $value:expr) => {
        visit_scalars_as!($value);
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
    ($value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}
pub(crate) use visit_scalars_as;

/// The first key of an object, as `Value` classifies it.
pub enum FirstKey<'de> {
    /// The object is a number (see the module doc); its value is read.
    Number(Number),
    /// An ordinary key; its value is next.
    Key(Cow<'de, str>),
    /// The object is empty.
    End,
}

/// Reads an object's first key the way `Value` does.
pub fn first_key<'de, A: MapAccess<'de>>(map: &mut A) -> Result<FirstKey<'de>, A::Error> {
    let Some(Text(key)) = map.next_key()? else {
        return Ok(FirstKey::End);
    };
    match key.as_ref() {
        NUMBER_TOKEN => {
            let NumberText(number) = map.next_value()?;
            Ok(FirstKey::Number(number))
        }
        RAW_VALUE_TOKEN => Err(de::Error::custom(
            "an object under serde_json's RawValue key: read it as a Value",
        )),
        _ => Ok(FirstKey::Key(key)),
    }
}

/// The string under [`NUMBER_TOKEN`], parsed as serde_json parses it.
struct NumberText(Number);

impl<'de> Deserialize<'de> for NumberText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = NumberText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string holding a number")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                s.parse().map(NumberText).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_str(NumberVisitor)
    }
}

/// Any JSON value, read in full and dropped.
pub struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    visit_scalars_as!(Skip);
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        if let FirstKey::Key(_) = first_key(&mut map)? {
            map.next_value::<Skip>()?;
            while map.next_entry::<Skip, Skip>()?.is_some() {}
        }
        Ok(Skip)
    }
}

/// A field's value: a string, null, or anything else kept as the `Value`
/// it is (a number for its text, the rest for an echoed subtopic). The
/// `Value` is boxed: it is rare, and a `Scalar` moves often while a body
/// is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar<'de> {
    /// `null`.
    Null,
    /// A string, untrimmed.
    Text(Cow<'de, str>),
    /// A number, boolean, array or object.
    Other(Box<Value>),
}

impl Scalar<'_> {
    /// The same value, owning its text.
    pub fn into_owned(self) -> Scalar<'static> {
        match self {
            Scalar::Null => Scalar::Null,
            Scalar::Text(text) => Scalar::Text(Cow::Owned(text.into_owned())),
            Scalar::Other(value) => Scalar::Other(value),
        }
    }

    /// The value as the tree holds it.
    pub fn from_value(value: Value) -> Scalar<'static> {
        match value {
            Value::Null => Scalar::Null,
            Value::String(text) => Scalar::Text(Cow::Owned(text)),
            other => Scalar::Other(Box::new(other)),
        }
    }

    /// The value as a tree node.
    pub fn to_value(&self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Text(text) => Value::String(text.as_ref().to_owned()),
            Scalar::Other(value) => (**value).clone(),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Other(Box::new(Value::Bool(b))))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Other(Box::new(n.into())))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Other(Box::new(n.into())))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Other(Box::new(n.into())))
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Scalar::Text(Cow::Owned(s)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(|v| Scalar::Other(Box::new(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // As `Value` builds an object: later duplicates replace earlier ones.
        let object = match first_key(&mut map)? {
            FirstKey::Number(number) => return Ok(Scalar::Other(Box::new(Value::Number(number)))),
            FirstKey::End => Map::new(),
            FirstKey::Key(key) => {
                let mut object = Map::new();
                object.insert(key.into_owned(), map.next_value()?);
                while let Some((key, value)) = map.next_entry()? {
                    object.insert(key, value);
                }
                object
            }
        };
        Ok(Scalar::Other(Box::new(Value::Object(object))))
    }
}
