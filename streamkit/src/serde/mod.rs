//! How bytes become typed keys and values: the [`Serde`] trait and the built-in [`Serdes`].
//!
//! A serde converts one type to and from Kafka bytes. Kafka records may carry a *null* key or
//! value (an absent key, or a tombstone that deletes a key from a table); a plain serde rejects
//! null with [`SerdeError::UnexpectedNull`], and [`Serdes::option`] wraps any serde so that
//! `None` ⇄ null.
//!
//! Integers and floats are big-endian, as Kafka's Java `IntegerSerializer`, `LongSerializer`
//! and `DoubleSerializer` write them, so topics are readable from either side.

pub mod avro;
mod json;
mod primitive;
pub(crate) mod table;

pub use avro::{Avro, AvroGeneric, RegistryClient};
pub use json::Json;
pub use primitive::{
    BytesSerde, F64Serde, I32Serde, I64Serde, OptionSerde, StringSerde, UnitSerde,
};

use std::sync::Arc;

pub use crate::error::SerdeError;

/// Converts values of `T` to and from the bytes of a Kafka key or value.
///
/// Implementations must be cheap to call concurrently: one instance is shared by every task.
pub trait Serde<T>: Send + Sync + 'static {
    /// Appends the encoding of `value` to `out` (which the caller cleared).
    fn serialize(&self, topic: &str, value: &T, out: &mut Vec<u8>) -> Result<(), SerdeError>;

    /// Decodes a non-null key or value.
    fn deserialize(&self, topic: &str, data: &[u8]) -> Result<T, SerdeError>;

    /// Whether `value` is written as Kafka null (a tombstone or absent key). Default: never.
    fn is_null(&self, _value: &T) -> bool {
        false
    }

    /// The value a Kafka null decodes to. Default: [`SerdeError::UnexpectedNull`].
    fn deserialize_null(&self, _topic: &str) -> Result<T, SerdeError> {
        Err(SerdeError::UnexpectedNull)
    }

    /// The JSON form of `value`, as the query server shows keys and values. Default:
    /// [`SerdeError::NoJson`]; the built-in serdes all have one.
    fn to_json(&self, _value: &T) -> Result<serde_json::Value, SerdeError> {
        Err(SerdeError::NoJson(
            std::any::type_name::<Self>().to_string(),
        ))
    }

    /// Parses a value from its JSON form (a key given to the query server). Default:
    /// [`SerdeError::NoJson`].
    fn parse_json(&self, _json: &serde_json::Value) -> Result<T, SerdeError> {
        Err(SerdeError::NoJson(
            std::any::type_name::<Self>().to_string(),
        ))
    }
}

/// Reads `T` from JSON with serde, for [`Serde::parse_json`] implementations.
pub(crate) fn json_from<T: serde::de::DeserializeOwned>(
    json: &serde_json::Value,
) -> Result<T, SerdeError> {
    T::deserialize(json).map_err(|e| SerdeError::Invalid(format!("json: {e}")))
}

/// A shared, type-erased serde.
pub type SerdeRef<T> = Arc<dyn Serde<T>>;

/// Decodes optional bytes (null-aware).
pub(crate) fn decode<T: 'static>(
    serde: &dyn Serde<T>,
    topic: &str,
    data: Option<&[u8]>,
) -> Result<T, SerdeError> {
    match data {
        Some(d) => serde.deserialize(topic, d),
        None => serde.deserialize_null(topic),
    }
}

/// Encodes into `buf`; returns `false` when the value is written as null.
pub(crate) fn encode<T: 'static>(
    serde: &dyn Serde<T>,
    topic: &str,
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<bool, SerdeError> {
    buf.clear();
    if serde.is_null(value) {
        return Ok(false);
    }
    serde.serialize(topic, value, buf)?;
    Ok(true)
}

/// Constructors for the built-in serdes.
///
/// ```
/// use streamkit::serde::{Serde, Serdes};
/// let s = Serdes::i64();
/// let mut buf = Vec::new();
/// s.serialize("t", &258, &mut buf).unwrap();
/// assert_eq!(buf, [0, 0, 0, 0, 0, 0, 1, 2]); // big-endian, like Kafka's LongSerializer
/// assert_eq!(s.deserialize("t", &buf).unwrap(), 258);
/// ```
pub struct Serdes;

impl Serdes {
    /// UTF-8 strings.
    pub fn string() -> StringSerde {
        StringSerde
    }
    /// Raw bytes, unchanged.
    pub fn bytes() -> BytesSerde {
        BytesSerde
    }
    /// 4-byte big-endian signed integers.
    pub fn i32() -> I32Serde {
        I32Serde
    }
    /// 8-byte big-endian signed integers.
    pub fn i64() -> I64Serde {
        I64Serde
    }
    /// 8-byte big-endian IEEE-754 doubles.
    pub fn f64() -> F64Serde {
        F64Serde
    }
    /// Any `serde` type as JSON (serde_json).
    pub fn json<T>() -> Json<T> {
        Json::new()
    }
    /// `()` for topics whose keys (or values) are ignored: every input, null included, is `()`,
    /// and `()` is written as null.
    pub fn unit() -> UnitSerde {
        UnitSerde
    }
    /// `Option<T>` where `None` is Kafka null: tombstones and absent keys.
    pub fn option<T, S: Serde<T>>(inner: S) -> OptionSerde<S> {
        OptionSerde(inner)
    }
}
