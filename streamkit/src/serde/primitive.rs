//! String, bytes, big-endian numbers, unit and `Option` serdes.

use serde_json::Value;

use super::{Serde, SerdeError, json_from};

/// UTF-8 strings. See [`Serdes::string`](super::Serdes::string).
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize(&self, _topic: &str, value: &String, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(value.as_bytes());
        Ok(())
    }
    fn deserialize(&self, _topic: &str, data: &[u8]) -> Result<String, SerdeError> {
        std::str::from_utf8(data)
            .map(str::to_owned)
            .map_err(|e| SerdeError::Invalid(format!("not UTF-8: {e}")))
    }
    fn to_json(&self, value: &String) -> Result<Value, SerdeError> {
        Ok(Value::String(value.clone()))
    }
    fn parse_json(&self, json: &Value) -> Result<String, SerdeError> {
        json_from(json)
    }
}

/// Raw bytes. See [`Serdes::bytes`](super::Serdes::bytes).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerde;

impl Serde<Vec<u8>> for BytesSerde {
    fn serialize(
        &self,
        _topic: &str,
        value: &Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), SerdeError> {
        out.extend_from_slice(value);
        Ok(())
    }
    fn deserialize(&self, _topic: &str, data: &[u8]) -> Result<Vec<u8>, SerdeError> {
        Ok(data.to_vec())
    }
    /// An array of byte values.
    fn to_json(&self, value: &Vec<u8>) -> Result<Value, SerdeError> {
        Ok(Value::from(value.as_slice()))
    }
    /// An array of byte values, or a string taken as its UTF-8 bytes.
    fn parse_json(&self, json: &Value) -> Result<Vec<u8>, SerdeError> {
        match json {
            Value::String(s) => Ok(s.as_bytes().to_vec()),
            other => json_from(other),
        }
    }
}

macro_rules! be_number {
    ($name:ident, $ty:ty, $len:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl Serde<$ty> for $name {
            fn serialize(
                &self,
                _topic: &str,
                value: &$ty,
                out: &mut Vec<u8>,
            ) -> Result<(), SerdeError> {
                out.extend_from_slice(&value.to_be_bytes());
                Ok(())
            }
            fn deserialize(&self, _topic: &str, data: &[u8]) -> Result<$ty, SerdeError> {
                let bytes: [u8; $len] = data.try_into().map_err(|_| {
                    SerdeError::Invalid(format!(
                        "expected {} bytes for {}, got {}",
                        $len,
                        stringify!($ty),
                        data.len()
                    ))
                })?;
                Ok(<$ty>::from_be_bytes(bytes))
            }
            fn to_json(&self, value: &$ty) -> Result<Value, SerdeError> {
                Ok(Value::from(*value))
            }
            fn parse_json(&self, json: &Value) -> Result<$ty, SerdeError> {
                json_from(json)
            }
        }
    };
}

be_number!(
    I32Serde,
    i32,
    4,
    "4-byte big-endian `i32` (Kafka `IntegerSerde`)."
);
be_number!(
    I64Serde,
    i64,
    8,
    "8-byte big-endian `i64` (Kafka `LongSerde`)."
);
be_number!(
    F64Serde,
    f64,
    8,
    "8-byte big-endian `f64` (Kafka `DoubleSerde`)."
);

/// `()`: reads anything (null included), writes null. See [`Serdes::unit`](super::Serdes::unit).
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitSerde;

impl Serde<()> for UnitSerde {
    fn serialize(&self, _topic: &str, _value: &(), _out: &mut Vec<u8>) -> Result<(), SerdeError> {
        Ok(())
    }
    fn deserialize(&self, _topic: &str, _data: &[u8]) -> Result<(), SerdeError> {
        Ok(())
    }
    fn is_null(&self, _value: &()) -> bool {
        true
    }
    fn deserialize_null(&self, _topic: &str) -> Result<(), SerdeError> {
        Ok(())
    }
    fn to_json(&self, _value: &()) -> Result<Value, SerdeError> {
        Ok(Value::Null)
    }
    fn parse_json(&self, _json: &Value) -> Result<(), SerdeError> {
        Ok(())
    }
}

/// `Option<T>` with `None` as Kafka null. See [`Serdes::option`](super::Serdes::option).
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionSerde<S>(pub S);

impl<T, S: Serde<T>> Serde<Option<T>> for OptionSerde<S> {
    fn serialize(
        &self,
        topic: &str,
        value: &Option<T>,
        out: &mut Vec<u8>,
    ) -> Result<(), SerdeError> {
        match value {
            Some(v) => self.0.serialize(topic, v, out),
            None => Ok(()),
        }
    }
    fn deserialize(&self, topic: &str, data: &[u8]) -> Result<Option<T>, SerdeError> {
        self.0.deserialize(topic, data).map(Some)
    }
    fn is_null(&self, value: &Option<T>) -> bool {
        value.is_none()
    }
    fn deserialize_null(&self, _topic: &str) -> Result<Option<T>, SerdeError> {
        Ok(None)
    }
    fn to_json(&self, value: &Option<T>) -> Result<Value, SerdeError> {
        value
            .as_ref()
            .map_or(Ok(Value::Null), |v| self.0.to_json(v))
    }
    fn parse_json(&self, json: &Value) -> Result<Option<T>, SerdeError> {
        match json {
            Value::Null => Ok(None),
            other => self.0.parse_json(other).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Serdes, decode, encode};
    use super::*;

    #[test]
    fn json_forms_round_trip() {
        use serde_json::json;
        assert_eq!(
            Serdes::string().to_json(&"M15".into()).unwrap(),
            json!("M15")
        );
        assert_eq!(Serdes::i64().parse_json(&json!(42)).unwrap(), 42);
        assert!(Serdes::i32().parse_json(&json!("x")).is_err());
        assert_eq!(Serdes::f64().to_json(&1.5).unwrap(), json!(1.5));
        assert_eq!(Serdes::bytes().parse_json(&json!("ab")).unwrap(), b"ab");
        assert_eq!(Serdes::bytes().to_json(&vec![1, 2]).unwrap(), json!([1, 2]));
        let opt = Serdes::option(Serdes::i32());
        assert_eq!(opt.to_json(&None).unwrap(), json!(null));
        assert_eq!(opt.parse_json(&json!(7)).unwrap(), Some(7));
    }

    #[test]
    fn numbers_are_big_endian_like_kafka() {
        let mut b = Vec::new();
        Serdes::i32().serialize("t", &-2, &mut b).unwrap();
        assert_eq!(b, [0xff, 0xff, 0xff, 0xfe]);
        b.clear();
        Serdes::f64().serialize("t", &1.5, &mut b).unwrap();
        assert_eq!(b, 1.5f64.to_be_bytes());
        assert_eq!(Serdes::f64().deserialize("t", &b).unwrap(), 1.5);
    }

    #[test]
    fn wrong_length_is_an_error_not_a_panic() {
        let err = Serdes::i64().deserialize("t", &[1, 2, 3]).unwrap_err();
        assert!(err.to_string().contains("expected 8 bytes"), "{err}");
    }

    #[test]
    fn null_is_rejected_unless_optional() {
        assert!(matches!(
            decode(&Serdes::string(), "t", None),
            Err(SerdeError::UnexpectedNull)
        ));
        assert_eq!(
            decode(&Serdes::option(Serdes::string()), "t", None).unwrap(),
            None
        );
        assert_eq!(
            decode(&Serdes::option(Serdes::string()), "t", Some(b"x")).unwrap(),
            Some("x".to_string())
        );
        let mut buf = vec![9];
        assert!(!encode(&Serdes::option(Serdes::i32()), "t", &None, &mut buf).unwrap());
        assert!(buf.is_empty());
        assert!(encode(&Serdes::option(Serdes::i32()), "t", &Some(1), &mut buf).unwrap());
        assert_eq!(buf, [0, 0, 0, 1]);
    }

    #[test]
    fn strings_must_be_utf8() {
        assert!(Serdes::string().deserialize("t", &[0xff, 0xfe]).is_err());
        assert_eq!(
            Serdes::string()
                .deserialize("t", "héllo".as_bytes())
                .unwrap(),
            "héllo"
        );
    }
}
