//! Windowed keys on Kafka topics, in Kafka Streams' byte layouts.

use std::sync::Arc;

use super::{Window, Windowed};
use crate::serde::{Serde, SerdeError, SerdeRef};

/// Serde for [`Windowed`] keys: `key ‖ start` (time windows; the end is `start + size`) or
/// `key ‖ end ‖ start` (sessions), every timestamp 8 bytes big-endian, as Kafka Streams'
/// `TimeWindowedSerde` and `SessionWindowedSerde` write them.
///
/// # Examples
///
/// ```
/// use streamkit::serde::{Serde, Serdes};
/// use streamkit::window::{Window, Windowed, WindowedSerde};
/// let serde = WindowedSerde::time(Serdes::string(), 60_000);
/// let key = Windowed { key: "M15".to_string(), window: Window::new(120_000, 180_000) };
/// let mut buf = Vec::new();
/// serde.serialize("t", &key, &mut buf).unwrap();
/// assert_eq!(&buf[..3], b"M15");
/// assert_eq!(serde.deserialize("t", &buf).unwrap(), key);
/// ```
pub struct WindowedSerde<K> {
    inner: SerdeRef<K>,
    /// `Some(size)` for time windows, `None` for sessions.
    size_ms: Option<i64>,
}

impl<K> Clone for WindowedSerde<K> {
    fn clone(&self) -> Self {
        WindowedSerde {
            inner: self.inner.clone(),
            size_ms: self.size_ms,
        }
    }
}

impl<K: 'static> WindowedSerde<K> {
    /// For tumbling, hopping and sliding windows of `size_ms` (needed to rebuild the end).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::serde::{Serde, Serdes};
    /// use streamkit::window::{Window, Windowed, WindowedSerde};
    /// let serde = WindowedSerde::time(Serdes::string(), 60_000);
    /// let key = Windowed { key: "a".to_string(), window: Window::new(60_000, 120_000) };
    /// let mut buf = Vec::new();
    /// serde.serialize("t", &key, &mut buf).unwrap();
    /// assert_eq!(buf.len(), 1 + 8); // key ‖ start; the end comes from the size
    /// assert_eq!(serde.deserialize("t", &buf).unwrap(), key);
    /// ```
    pub fn time(inner: impl Serde<K>, size_ms: i64) -> Self {
        WindowedSerde {
            inner: Arc::new(inner),
            size_ms: Some(size_ms),
        }
    }

    /// For session windows.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::serde::{Serde, Serdes};
    /// use streamkit::window::{Window, Windowed, WindowedSerde};
    /// let serde = WindowedSerde::session(Serdes::string());
    /// let key = Windowed { key: "a".to_string(), window: Window::new(1_000, 5_000) };
    /// let mut buf = Vec::new();
    /// serde.serialize("t", &key, &mut buf).unwrap();
    /// assert_eq!(buf.len(), 1 + 16); // key ‖ end ‖ start
    /// assert_eq!(serde.deserialize("t", &buf).unwrap(), key);
    /// ```
    pub fn session(inner: impl Serde<K>) -> Self {
        WindowedSerde {
            inner: Arc::new(inner),
            size_ms: None,
        }
    }
}

fn read_i64(data: &[u8]) -> i64 {
    i64::from_be_bytes(data.try_into().expect("8 bytes"))
}

impl<K: 'static> Serde<Windowed<K>> for WindowedSerde<K> {
    fn serialize(
        &self,
        topic: &str,
        value: &Windowed<K>,
        out: &mut Vec<u8>,
    ) -> Result<(), SerdeError> {
        self.inner.serialize(topic, &value.key, out)?;
        if self.size_ms.is_none() {
            out.extend_from_slice(&value.window.end.to_be_bytes());
        }
        out.extend_from_slice(&value.window.start.to_be_bytes());
        Ok(())
    }

    fn deserialize(&self, topic: &str, data: &[u8]) -> Result<Windowed<K>, SerdeError> {
        let suffix = if self.size_ms.is_some() { 8 } else { 16 };
        if data.len() < suffix {
            return Err(SerdeError::Invalid(format!(
                "windowed key of {} bytes, need at least {suffix}",
                data.len()
            )));
        }
        let (key, times) = data.split_at(data.len() - suffix);
        let key = self.inner.deserialize(topic, key)?;
        let window = match self.size_ms {
            Some(size) => {
                let start = read_i64(times);
                Window::new(start, start + size)
            }
            None => Window::new(read_i64(&times[8..]), read_i64(&times[..8])),
        };
        Ok(Windowed { key, window })
    }

    /// `{"key": <key>, "window": {"start": ms, "end": ms}}`.
    fn to_json(&self, value: &Windowed<K>) -> Result<serde_json::Value, SerdeError> {
        Ok(serde_json::json!({
            "key": self.inner.to_json(&value.key)?,
            "window": {"start": value.window.start, "end": value.window.end},
        }))
    }

    /// The same shape as [`to_json`](Self::to_json) writes; a time window's end may be left out.
    fn parse_json(&self, json: &serde_json::Value) -> Result<Windowed<K>, SerdeError> {
        let field = |v: Option<&serde_json::Value>, what: &str| {
            v.and_then(serde_json::Value::as_i64)
                .ok_or_else(|| SerdeError::Invalid(format!("windowed key: no integer {what}")))
        };
        let key = json
            .get("key")
            .ok_or_else(|| SerdeError::Invalid("windowed key: no \"key\"".into()))?;
        let window = json.get("window");
        let start = field(window.and_then(|w| w.get("start")), "window.start")?;
        let end = match self.size_ms {
            Some(size) => start + size,
            None => field(window.and_then(|w| w.get("end")), "window.end")?,
        };
        Ok(Windowed {
            key: self.inner.parse_json(key)?,
            window: Window::new(start, end),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::Serdes;

    #[test]
    fn session_keys_put_end_before_start() {
        let s = WindowedSerde::session(Serdes::i32());
        let key = Windowed {
            key: 7,
            window: Window::new(100, 250),
        };
        let mut buf = Vec::new();
        s.serialize("t", &key, &mut buf).unwrap();
        assert_eq!(&buf[4..12], &250i64.to_be_bytes());
        assert_eq!(&buf[12..], &100i64.to_be_bytes());
        assert_eq!(s.deserialize("t", &buf).unwrap(), key);
        assert!(s.deserialize("t", &buf[..10]).is_err());
    }
}
