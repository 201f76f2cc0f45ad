//! Records flowing between processors, their headers and origin metadata.

use std::fmt;
use std::sync::Arc;

/// A record: key, value, event timestamp (ms since the epoch) and headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Event time in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Headers, carried from the input record to every record derived from it.
    pub headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record with no headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record {
            key,
            value,
            timestamp,
            headers: Headers::new(),
        }
    }

    /// The same record with another key (headers and timestamp kept).
    pub fn with_key<K2>(self, key: K2) -> Record<K2, V> {
        Record {
            key,
            value: self.value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The same record with another value (headers and timestamp kept).
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record {
            key: self.key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The same record with another key and value (headers and timestamp kept).
    pub fn with_key_value<K2, V2>(self, key: K2, value: V2) -> Record<K2, V2> {
        Record {
            key,
            value,
            timestamp: self.timestamp,
            headers: self.headers,
        }
    }

    /// The same record with these headers.
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }

    /// The same record with another timestamp.
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }
}

/// Kafka record headers: an ordered list of (name, optional value). Empty headers allocate nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, Option<Vec<u8>>)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// Appends a header (Kafka allows repeated names).
    pub fn add(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.0.push((name.into(), Some(value.into())));
        self
    }

    /// Appends a header with a null value.
    pub fn add_null(&mut self, name: impl Into<String>) -> &mut Self {
        self.0.push((name.into(), None));
        self
    }

    /// The last value of header `name`, if any.
    pub fn last(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The last value of header `name` as UTF-8 text.
    pub fn last_str(&self, name: &str) -> Option<&str> {
        self.last(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Removes every header called `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| n != name);
    }

    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where the record being processed came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Source topic.
    pub topic: Arc<str>,
    /// Source partition.
    pub partition: i32,
    /// Offset in the source partition.
    pub offset: i64,
}

/// Types that can flow through a topology as keys or values.
///
/// Records are cloned only when a processor forwards to more than one child.
pub trait Data: Clone + 'static {}
impl<T: Clone + 'static> Data for T {}

/// A task: one sub-topology applied to one partition number. Printed `<sub-topology>_<partition>`
/// as in Kafka Streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// The sub-topology.
    pub subtopology: usize,
    /// The partition of its input topics.
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// An update of one key in a table: the new value (`None` = deleted) and the old one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change<V> {
    /// The value after the update; `None` when the key was deleted.
    pub new: Option<V>,
    /// The value before the update; `None` when the key was new.
    pub old: Option<V>,
}
