//! What windowed operators do with late records: count them and, if asked, send them to a
//! dead-letter topic.

use crate::error::Result;
use crate::error_policy::dead_letter_headers as h;
use crate::metrics::names::REASON_LATE;
use crate::processor::ProcessorContext;
use crate::processor::task_state::{OutKind, OutRecord};
use crate::record::Record;
use crate::serde::{SerdeRef, encode};

pub(crate) struct LateRecords<K, V> {
    /// Dead-letter topic for late records, if any.
    pub topic: Option<String>,
    pub key_serde: SerdeRef<K>,
    pub value_serde: SerdeRef<V>,
}

impl<K, V> Clone for LateRecords<K, V> {
    fn clone(&self) -> Self {
        LateRecords {
            topic: self.topic.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
        }
    }
}

impl<K: 'static, V: 'static> LateRecords<K, V> {
    /// Counts the dropped record and dead-letters it when configured.
    pub fn drop<KO, VO>(
        &self,
        ctx: &mut ProcessorContext<'_, KO, VO>,
        record: &Record<K, V>,
    ) -> Result<()> {
        ctx.record_dropped(REASON_LATE);
        tracing::debug!(
            timestamp = record.timestamp,
            stream_time = ctx.stream_time(),
            "dropping late record"
        );
        let Some(topic) = &self.topic else {
            return Ok(());
        };
        let (mut k, mut v) = (Vec::new(), Vec::new());
        let has_key = encode(&*self.key_serde, topic, &record.key, &mut k)?;
        let has_value = encode(&*self.value_serde, topic, &record.value, &mut v)?;
        let mut headers = record.headers.clone();
        headers.add(
            h::ERROR,
            format!(
                "late record: its window closed (stream time {})",
                ctx.stream_time()
            ),
        );
        headers.add(h::STAGE, "window");
        if let Some(m) = ctx.record_metadata().cloned() {
            headers
                .add(h::TOPIC, m.topic.as_bytes())
                .add(h::PARTITION, m.partition.to_string())
                .add(h::OFFSET, m.offset.to_string());
        }
        ctx.send(OutRecord {
            topic,
            partition: None,
            key: has_key.then_some(k.as_slice()),
            value: has_value.then_some(v.as_slice()),
            timestamp: record.timestamp,
            headers: &headers,
            kind: OutKind::Output,
        })
    }
}
