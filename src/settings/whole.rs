//! Numeric keys take whole numbers only. The `config` crate rounds a
//! fraction (`LCM__AMQP__PREFETCH=1.5` would become 2); this deserializer
//! refuses it instead, and `config` adds the key to the message.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};

/// Deserializes a whole number of 0 or more that fits `T`, from an
/// integer, a float without fraction, or a string holding one of them.
pub(super) fn whole<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    deserializer.deserialize_any(Whole(PhantomData))
}

struct Whole<T>(PhantomData<T>);

impl<T: TryFrom<u64>> Visitor<'_> for Whole<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a whole number")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        T::try_from(value).map_err(|_| E::custom(format!("{value} is too large")))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(E::custom(format!("{value} is negative"))),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
        if value.fract() != 0.0 || !value.is_finite() {
            return Err(E::custom(format!("{value} is not a whole number")));
        }
        if value < 0.0 {
            return Err(E::custom(format!("{value} is negative")));
        }
        if value >= u64::MAX as f64 {
            return Err(E::custom(format!("{value} is too large")));
        }
        // Whole and within u64, as just checked.
        self.visit_u64(value as u64)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        let text = text.trim();
        if let Ok(value) = text.parse::<u64>() {
            return self.visit_u64(value);
        }
        if let Ok(value) = text.parse::<i64>() {
            return self.visit_i64(value);
        }
        match text.parse::<f64>() {
            Ok(value) => self.visit_f64(value),
            Err(_) => Err(E::custom(format!("`{text}` is not a whole number"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::de::value::{Error, F64Deserializer, I64Deserializer, StrDeserializer};
    use serde::de::IntoDeserializer;

    use super::*;

    fn from_str(text: &str) -> Result<u16, Error> {
        let deserializer: StrDeserializer<'_, Error> = text.into_deserializer();
        whole(deserializer)
    }

    #[test]
    fn whole_numbers_pass_in_every_form() {
        assert_eq!(from_str("8"), Ok(8));
        assert_eq!(from_str(" 8 "), Ok(8));
        assert_eq!(from_str("8.0"), Ok(8));
        let float: F64Deserializer<Error> = 8.0.into_deserializer();
        assert_eq!(whole::<_, u16>(float), Ok(8));
        let int: I64Deserializer<Error> = 8_i64.into_deserializer();
        assert_eq!(whole::<_, u16>(int), Ok(8));
    }

    #[test]
    fn fractions_negatives_words_and_overflows_are_refused_not_rounded() {
        for (text, reason) in [
            ("1.5", "1.5 is not a whole number"),
            ("-1", "-1 is negative"),
            ("-2.0", "-2 is negative"),
            ("lots", "`lots` is not a whole number"),
            ("", "`` is not a whole number"),
            ("NaN", "NaN is not a whole number"),
            ("65536", "65536 is too large"),
            ("1e30", "1000000000000000000000000000000 is too large"),
        ] {
            assert_eq!(from_str(text).unwrap_err().to_string(), reason, "{text}");
        }
        let float: F64Deserializer<Error> = 1.5.into_deserializer();
        assert!(whole::<_, u16>(float).is_err());
    }
}
