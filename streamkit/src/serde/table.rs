//! Serdes the table layer adds around a value serde: null-aware table input, and the
//! [`Change`] records a table `group_by` sends through its repartition topic.

use crate::error::SerdeError;
use crate::record::Change;
use crate::serde::{Serde, SerdeRef};

/// Reads a table topic: a null value (a tombstone) is `None`, anything else goes through the
/// value serde, so a malformed value is still a deserialization error.
pub(crate) struct NullableSerde<V>(pub SerdeRef<V>);

impl<V: 'static> Serde<Option<V>> for NullableSerde<V> {
    fn serialize(
        &self,
        topic: &str,
        value: &Option<V>,
        out: &mut Vec<u8>,
    ) -> Result<(), SerdeError> {
        match value {
            Some(v) => self.0.serialize(topic, v, out),
            None => Ok(()),
        }
    }
    fn deserialize(&self, topic: &str, data: &[u8]) -> Result<Option<V>, SerdeError> {
        self.0.deserialize(topic, data).map(Some)
    }
    fn is_null(&self, value: &Option<V>) -> bool {
        value.is_none() || value.as_ref().is_some_and(|v| self.0.is_null(v))
    }
    fn deserialize_null(&self, _topic: &str) -> Result<Option<V>, SerdeError> {
        Ok(None)
    }
}

/// A [`Change`] as bytes: one flag byte (bit 0 = new present, bit 1 = old present), then the
/// new value's length (u32 big-endian) and bytes, then the old value's bytes.
pub(crate) struct ChangeSerde<V>(pub SerdeRef<V>);

const NEW: u8 = 1;
const OLD: u8 = 2;

impl<V: 'static> Serde<Change<V>> for ChangeSerde<V> {
    fn serialize(&self, topic: &str, c: &Change<V>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        let flags = if c.new.is_some() { NEW } else { 0 } | if c.old.is_some() { OLD } else { 0 };
        out.push(flags);
        if let Some(new) = &c.new {
            let mut buf = Vec::new();
            self.0.serialize(topic, new, &mut buf)?;
            let len = u32::try_from(buf.len())
                .map_err(|_| SerdeError::Encode("value longer than 4 GiB".into()))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&buf);
        }
        if let Some(old) = &c.old {
            self.0.serialize(topic, old, out)?;
        }
        Ok(())
    }

    fn deserialize(&self, topic: &str, data: &[u8]) -> Result<Change<V>, SerdeError> {
        let truncated = || SerdeError::Invalid("truncated table change".into());
        let (&flags, mut rest) = data.split_first().ok_or_else(truncated)?;
        if flags & !(NEW | OLD) != 0 {
            return Err(SerdeError::Invalid(format!(
                "table change with unknown flags {flags:#04x}"
            )));
        }
        let new = if flags & NEW != 0 {
            let len = rest.get(..4).ok_or_else(truncated)?;
            let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
            let bytes = rest.get(4..4 + len).ok_or_else(truncated)?;
            rest = &rest[4 + len..];
            Some(self.0.deserialize(topic, bytes)?)
        } else {
            None
        };
        let old = if flags & OLD != 0 {
            Some(self.0.deserialize(topic, rest)?)
        } else if !rest.is_empty() {
            return Err(SerdeError::Invalid(
                "trailing bytes after a table change".into(),
            ));
        } else {
            None
        };
        Ok(Change { new, old })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::serde::{Serdes, decode};

    #[test]
    fn changes_round_trip_and_reject_garbage() {
        let s = ChangeSerde::<String>(Arc::new(Serdes::string()));
        let cases = [
            Change {
                new: Some("new".to_string()),
                old: Some("old".to_string()),
            },
            Change {
                new: Some(String::new()),
                old: None,
            },
            Change {
                new: None,
                old: Some("gone".to_string()),
            },
            Change {
                new: None,
                old: None,
            },
        ];
        for c in cases {
            let mut buf = Vec::new();
            s.serialize("t", &c, &mut buf).unwrap();
            assert_eq!(s.deserialize("t", &buf).unwrap(), c);
        }
        assert!(s.deserialize("t", &[]).is_err());
        assert!(s.deserialize("t", &[NEW, 0, 0, 0, 9, b'a']).is_err());
        assert!(s.deserialize("t", &[8]).is_err());
        assert!(s.deserialize("t", &[0, b'x']).is_err());
    }

    #[test]
    fn table_values_decode_null_as_a_tombstone() {
        let s = NullableSerde::<i64>(Arc::new(Serdes::i64()));
        assert_eq!(decode(&s, "t", None).unwrap(), None);
        assert_eq!(decode(&s, "t", Some(&7i64.to_be_bytes())).unwrap(), Some(7));
        assert!(decode(&s, "t", Some(b"short")).is_err());
    }
}
