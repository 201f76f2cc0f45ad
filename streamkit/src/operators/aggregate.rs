//! `aggregate` / `count` / `reduce` on a grouped stream: one running value per key, kept in a
//! key-value store, every update forwarded as a table change.

use std::sync::Arc;

use crate::error::Result;
use crate::metrics::names::REASON_NULL_KEY;
use crate::processor::{Data, KeyValueStore, Processor, ProcessorContext};
use crate::record::Change;
use crate::record::Record;

/// Drops a record whose key is null, as Kafka Streams' aggregations of a grouped stream do
/// ("Skipping record due to null key"): it has no group. Logged and counted
/// (`streamkit_dropped_records_total{reason="null_key"}`), never an error.
pub(crate) fn drop_null_key<K, V>(ctx: &ProcessorContext<'_, K, V>) -> Result<()> {
    match ctx.record_metadata() {
        Some(m) => tracing::warn!(topic = %m.topic, partition = m.partition, offset = m.offset,
            "skipping record due to null key: an aggregation needs a key"),
        None => tracing::warn!("skipping record due to null key: an aggregation needs a key"),
    }
    ctx.record_dropped(REASON_NULL_KEY);
    Ok(())
}

/// Folds a value into the aggregate: `(key, value, aggregate or None for the first) -> aggregate`.
pub(crate) type Fold<K, V, A> = Arc<dyn Fn(&K, &V, Option<A>) -> A + Send + Sync>;

pub(crate) struct Aggregate<K, V, A> {
    pub store_name: String,
    pub fold: Fold<K, V, A>,
    pub store: Option<KeyValueStore<K, A>>,
}

impl<K: Data, V: Data, A: Data> Processor<K, V> for Aggregate<K, V, A> {
    type KOut = K;
    type VOut = Change<A>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<A>>) -> Result<()> {
        self.store = Some(ctx.key_value_store(&self.store_name)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<A>>,
        record: Record<K, V>,
    ) -> Result<()> {
        let store = self.store.as_ref().expect("initialized");
        if store.is_null_key(&record.key) {
            return drop_null_key(ctx);
        }
        let old = store.get(&record.key)?;
        let new = (self.fold)(&record.key, &record.value, old.clone());
        store.put(&record.key, &new)?;
        let Record {
            key,
            timestamp,
            headers,
            ..
        } = record;
        ctx.forward(Record {
            key,
            value: Change {
                new: Some(new),
                old,
            },
            timestamp,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::prelude::*;

    type Key = Option<String>;

    fn key_serde() -> impl Serde<Key> {
        Serdes::option(Serdes::string())
    }

    /// Pipes a, null, a, null, b into `topology` and returns the driver.
    fn run(topology: Topology) -> TopologyTestDriver {
        let d = TopologyTestDriver::new(topology).unwrap();
        let input = d.input_topic("in", key_serde(), Serdes::string());
        for (i, k) in [Some("a"), None, Some("a"), None, Some("b")]
            .into_iter()
            .enumerate()
        {
            input
                .pipe_at(k.map(str::to_string), "v".into(), 1000 + i as i64)
                .unwrap();
        }
        d
    }

    fn grouped() -> (StreamsBuilder, KGroupedStreamOf) {
        let b = StreamsBuilder::new();
        let g = b
            .stream("in", Consumed::with(key_serde(), Serdes::string()))
            .group_by_key(Grouped::with(key_serde(), Serdes::string()));
        (b, g)
    }

    type KGroupedStreamOf = crate::stream::KGroupedStream<Key, String>;

    #[test]
    fn records_with_a_null_key_are_dropped_by_a_count_and_counted() {
        let (b, g) = grouped();
        g.count(Materialized::named("counts"))
            .to_stream()
            .to("out", Produced::with(key_serde(), Serdes::i64()));
        let d = run(b.build().unwrap());
        let out = d.output_topic("out", key_serde(), Serdes::i64());
        assert_eq!(
            out.read_key_values(),
            vec![
                (Some("a".to_string()), 1),
                (Some("a".to_string()), 2),
                (Some("b".to_string()), 1)
            ]
        );
        assert_eq!(d.metrics().dropped_records("null_key"), 2);
    }

    #[test]
    fn records_with_a_null_key_are_dropped_by_windowed_aggregations() {
        let (b, g) = grouped();
        g.windowed_by(TimeWindows::tumbling(Duration::from_secs(60)))
            .count(Materialized::named("tumbling"));
        g.windowed_by_session(SessionWindows::with_inactivity_gap(Duration::from_secs(60)))
            .count(Materialized::named("sessions"));
        g.windowed_by_sliding(SlidingWindows::with_time_difference(Duration::from_secs(
            60,
        )))
        .count(Materialized::named("sliding"));
        let d = run(b.build().unwrap());
        assert_eq!(d.metrics().dropped_records("null_key"), 3 * 2);
    }
}
