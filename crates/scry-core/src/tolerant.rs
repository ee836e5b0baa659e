//! Tolerant decoding for answers from outside (a vendor's API, a stored answer of an older
//! version): a field of an unexpected shape decodes as absent, and a list element of an
//! unexpected shape is left out, rather than failing the whole answer.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::Value;

/// A value that is decoded if it can be, and is `None` otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Lenient<T>(pub Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Lenient<T> {
        Lenient(None)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Lenient<T>, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Ok(Lenient(serde_json::from_value(value).ok()))
    }
}

/// For `#[serde(deserialize_with = "lenient")]` on an `Option<T>` field.
pub fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Ok(Lenient::<T>::deserialize(deserializer)?.0)
}

/// For `#[serde(deserialize_with = "lenient_list")]` on a `Vec<T>` field: the elements that
/// decode; nothing when it is not a list.
pub fn lenient_list<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    Ok(match value {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
        _ => Vec::new(),
    })
}
