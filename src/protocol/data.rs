//! Reading the fields of a request's `data` object (docs/protocol.md section 3):
//! keys ASCII-case-insensitive, strings trimmed, numbers as decimal text.
//!
//! The parser keeps only the keys in [`DATA_KEYS`] ([`DataFields`]), each
//! found as a lookup in the whole object would find it ([`data_text`] on a
//! map): the key spelt exactly, else the first other spelling of it; of
//! duplicates of one spelling, the last value.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::error::WsError;
use crate::json::{first_key, visit_scalars_as, FirstKey, Scalar, Skip, Text};

/// Every `data` key the worker reads: the common ones and each request
/// kind's own (`RequestKind::data_fields`). Other keys are skipped unread.
pub const DATA_KEYS: [&str; 3] = ["callid", "AccountNumber", "ParentBusinessOutcomeId"];

/// A `data` field's text, its key matched ASCII-case-insensitively:
/// strings trimmed, numbers as decimal text; `None` when absent, null or
/// blank; `Malformed` for other JSON types.
pub fn data_text(data: &Map<String, Value>, key: &str) -> Result<Option<String>, WsError> {
    let value = get_ci(data, key).cloned().map(Scalar::from_value);
    Ok(scalar_text(value.as_ref(), key)?.map(Cow::into_owned))
}

/// The text of a field's value, by the rules of [`data_text`].
fn scalar_text<'a>(
    value: Option<&'a Scalar<'_>>,
    key: &str,
) -> Result<Option<Cow<'a, str>>, WsError> {
    let text = match value {
        None | Some(Scalar::Null) => return Ok(None),
        Some(Scalar::Text(s)) => Cow::Borrowed(s.trim()),
        Some(Scalar::Other(other)) => match &**other {
            Value::Number(n) => Cow::Owned(n.to_string()),
            _ => {
                return Err(WsError::Malformed(format!(
                    "{key} is not a string or number"
                )))
            }
        },
    };
    Ok(Some(text).filter(|t| !t.is_empty()))
}

/// Looks a key up ASCII-case-insensitively (docs/protocol.md section 3).
pub(super) fn get_ci<'a>(data: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    data.get(key).or_else(|| {
        data.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The values of a `data` object under the [`DATA_KEYS`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DataFields<'de> {
    slots: [Slot<'de>; DATA_KEYS.len()],
}

/// What an object holds under one of the [`DATA_KEYS`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Slot<'de> {
    /// The value under the key spelt exactly so.
    exact: Option<Scalar<'de>>,
    /// The first other spelling met, and the value under it.
    folded: Option<(Cow<'de, str>, Scalar<'de>)>,
}

impl<'de> DataFields<'de> {
    /// The text of field `key` (one of the [`DATA_KEYS`]), by the rules of
    /// [`data_text`].
    pub fn text(&self, key: &str) -> Result<Option<Cow<'_, str>>, WsError> {
        scalar_text(self.get(key), key)
    }

    /// The value of field `key` (one of the [`DATA_KEYS`]).
    pub fn get(&self, key: &str) -> Option<&Scalar<'de>> {
        let slot = &self.slots[DATA_KEYS.iter().position(|k| *k == key)?];
        slot.exact.as_ref().or(slot.folded.as_ref().map(|(_, v)| v))
    }

    /// The same fields, owning their text.
    pub fn into_owned(self) -> DataFields<'static> {
        DataFields {
            slots: self.slots.map(|slot| Slot {
                exact: slot.exact.map(Scalar::into_owned),
                folded: slot
                    .folded
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned())),
            }),
        }
    }

    /// The fields of an object read as a tree.
    pub fn from_map(object: &Map<String, Value>) -> DataFields<'static> {
        let mut fields = DataFields::default();
        for (slot, key) in fields.slots.iter_mut().zip(DATA_KEYS) {
            slot.exact = get_ci(object, key).cloned().map(Scalar::from_value);
        }
        fields
    }

    /// Reads the value of `key`, keeping it if it is one of the [`DATA_KEYS`].
    fn read<A: MapAccess<'de>>(&mut self, key: Cow<'de, str>, map: &mut A) -> Result<(), A::Error> {
        let Some(index) = DATA_KEYS.iter().position(|k| k.eq_ignore_ascii_case(&key)) else {
            map.next_value::<Skip>()?;
            return Ok(());
        };
        let value: Scalar<'de> = map.next_value()?;
        let slot = &mut self.slots[index];
        // As a map keeps them: one entry per spelling, in the order first
        // met, holding the last value given under that spelling.
        if key == DATA_KEYS[index] {
            slot.exact = Some(value);
        } else {
            match &mut slot.folded {
                None => slot.folded = Some((key, value)),
                Some((first, kept)) if *first == key => *kept = value,
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The `data` member of a request as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data<'de> {
    /// An object.
    Fields(DataFields<'de>),
    /// A string, which should hold an object.
    Text(Cow<'de, str>),
    /// `null`.
    Null,
    /// A number, a boolean or an array.
    Other,
}

impl<'de> Deserialize<'de> for Data<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DataVisitor)
    }
}

struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = Data<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    visit_scalars_as!(Data::Other);
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Data::Text(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Data::Text(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Data::Text(Cow::Owned(s)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Data::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Data::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = DataFields::default();
        match first_key(&mut map)? {
            FirstKey::Number(_) => return Ok(Data::Other),
            FirstKey::End => {}
            FirstKey::Key(key) => {
                fields.read(key, &mut map)?;
                while let Some(Text(key)) = map.next_key()? {
                    fields.read(key, &mut map)?;
                }
            }
        }
        Ok(Data::Fields(fields))
    }
}
