//! The registry's `_schemas` topic (a [`StateTopic`]): JSON keys and values, replayed into the
//! registry's [`State`] at start, appended to on every change.

use super::store::{LogRecord, State};
use crate::config::StreamsConfig;
use crate::connect::state_topic::StateTopic;
use crate::error::Result;

pub(crate) struct Log(StateTopic);

impl Log {
    /// Ensures the topic exists and replays it into a [`State`].
    pub fn open(config: &StreamsConfig, topic: &str) -> Result<(Log, State)> {
        let (log, records) = StateTopic::open(config, topic, "schema-registry")?;
        let mut state = State::default();
        for (offset, (key, value)) in records.iter().enumerate() {
            let key = serde_json::from_slice::<serde_json::Value>(key).ok();
            let value = value
                .as_deref()
                .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok());
            match key {
                Some(key) => state.apply(&(key, value)),
                None => {
                    tracing::warn!(record = offset, %topic, "skipping a schemas record without a JSON key")
                }
            }
        }
        Ok((Log(log), state))
    }

    /// Appends `record` and waits for the broker to acknowledge it.
    pub async fn append(&self, (key, value): &LogRecord) -> Result<()> {
        let key = key.to_string();
        let value = value.as_ref().map(|v| v.to_string());
        self.0
            .append(key.as_bytes(), value.as_deref().map(str::as_bytes))
            .await
    }
}
