//! JSON values through serde_json.

use std::marker::PhantomData;

use serde::{Serialize, de::DeserializeOwned};

use super::{Serde, SerdeError};

/// Any `Serialize + DeserializeOwned` type as JSON. See [`Serdes::json`](super::Serdes::json).
pub struct Json<T>(PhantomData<fn() -> T>);

impl<T> Json<T> {
    /// A JSON serde for `T`.
    pub fn new() -> Self {
        Json(PhantomData)
    }
}

impl<T> Default for Json<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Json<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Json<{}>", std::any::type_name::<T>())
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for Json<T> {
    fn serialize(&self, _topic: &str, value: &T, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        serde_json::to_writer(out, value).map_err(|e| SerdeError::Encode(e.to_string()))
    }
    fn deserialize(&self, _topic: &str, data: &[u8]) -> Result<T, SerdeError> {
        serde_json::from_slice(data).map_err(|e| SerdeError::Invalid(format!("json: {e}")))
    }
    fn to_json(&self, value: &T) -> Result<serde_json::Value, SerdeError> {
        serde_json::to_value(value).map_err(|e| SerdeError::Encode(e.to_string()))
    }
    fn parse_json(&self, json: &serde_json::Value) -> Result<T, SerdeError> {
        super::json_from(json)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Serdes;
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Bus {
        line: String,
        delay: f64,
    }

    #[test]
    fn round_trips_and_reports_bad_json() {
        let s = Serdes::json::<Bus>();
        let mut buf = Vec::new();
        let bus = Bus {
            line: "M15".into(),
            delay: 2.5,
        };
        s.serialize("t", &bus, &mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf).unwrap(),
            r#"{"line":"M15","delay":2.5}"#
        );
        assert_eq!(s.deserialize("t", &buf).unwrap(), bus);
        let err = s.deserialize("t", b"{\"line\":").unwrap_err();
        assert!(err.to_string().starts_with("invalid data: json:"), "{err}");
    }
}
