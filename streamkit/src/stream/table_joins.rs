//! Joins of a stream with a table ([`KStream::join_table`], [`KStream::left_join_table`]) or
//! a global table ([`KStream::join_global`], [`KStream::left_join_global`]): lookups, where
//! each stream record reads the table's current row and table updates emit nothing.

use std::rc::Rc;
use std::sync::Arc;

use super::KStream;
use crate::operators::join::stream_global::{KeyMapper, StreamGlobalJoin};
use crate::operators::join::stream_table::{LookupJoiner, StreamTableJoin};
use crate::processor::Data;
use crate::table::{GlobalKTable, KTable, materialize_for_lookup};

impl<K: Data, V: Data> KStream<K, V> {
    fn table_lookup<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: LookupJoiner<K, V, VT, VR>,
        op: &str,
    ) -> KStream<K, VR> {
        let store = materialize_for_lookup(table, op);
        let store_name = store.clone();
        let out = self.add("KSTREAM-JOIN", move || StreamTableJoin {
            store_name: store_name.clone(),
            joiner: joiner.clone(),
            store: None,
        });
        let mut g = self.graph.borrow_mut();
        if !Rc::ptr_eq(&self.graph, &table.graph) {
            g.errors.push(format!(
                "{op}: the stream and the table come from different StreamsBuilders"
            ));
        }
        if self.key_changed {
            g.errors.push(format!(
                "{op}: the stream's key may have changed since it was read (map, select_key, \
                 flat_map, process); repartition it first so each record reaches the task \
                 holding its key's table row"
            ));
        }
        g.connect_store(out.node, &store);
        // The two sides meet in one task per partition: their topics must be co-partitioned.
        g.require_copartitioned(&[self.node, table.node]);
        drop(g);
        out
    }

    /// Inner stream-table join: each record whose key has a row in `table` at the time the
    /// record is processed is forwarded as `joiner(value, row)`, with the record's key and
    /// timestamp; records without a row are dropped. Table updates emit nothing. Both sides
    /// must be co-partitioned (same partition count, same key partitioning), which
    /// [`KafkaStreams::start`](crate::KafkaStreams::start) checks. A table without a
    /// store of its own (after `filter`) gets one.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let stations = b.table("stations", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("stations"));
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .join_table(&stations, |card, name| format!("{name}: card {card}"))
    ///     .to("named-taps", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// let taps = d.input_topic("taps", Serdes::string(), Serdes::i64());
    /// taps.pipe("40380".into(), 7)?; // no station yet: dropped
    /// d.input_topic("stations", Serdes::string(), Serdes::string()).pipe("40380".into(), "Clark/Lake".into())?;
    /// taps.pipe("40380".into(), 8)?;
    /// let out = d.output_topic("named-taps", Serdes::string(), Serdes::string());
    /// assert_eq!(out.read_values(), vec!["Clark/Lake: card 8"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn join_table<VT: Data, VR: Data, F>(
        &self,
        table: &KTable<K, VT>,
        joiner: F,
    ) -> KStream<K, VR>
    where
        F: Fn(&V, &VT) -> VR + Send + Sync + 'static,
    {
        self.table_lookup(
            table,
            Arc::new(move |_k, v, row| row.map(|t| joiner(v, t))),
            "join_table",
        )
    }

    /// Left stream-table join: every record is forwarded as `joiner(value, row)`, the row
    /// `None` when the table has none for the key. Otherwise as
    /// [`join_table`](Self::join_table).
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let stations = b.table("stations", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("stations"));
    /// b.stream("taps", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .left_join_table(&stations, |card, name| format!("{}: card {card}", name.map_or("?", |n| n.as_str())))
    ///     .to("named-taps", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("taps", Serdes::string(), Serdes::i64()).pipe("40380".into(), 7)?;
    /// let out = d.output_topic("named-taps", Serdes::string(), Serdes::string());
    /// assert_eq!(out.read_values(), vec!["?: card 7"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn left_join_table<VT: Data, VR: Data, F>(
        &self,
        table: &KTable<K, VT>,
        joiner: F,
    ) -> KStream<K, VR>
    where
        F: Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    {
        self.table_lookup(
            table,
            Arc::new(move |_k, v, row| Some(joiner(v, row))),
            "left_join_table",
        )
    }

    fn global_lookup<GK: Data, VT: Data, VR: Data>(
        &self,
        global: &GlobalKTable<GK, VT>,
        key_mapper: KeyMapper<K, V, GK>,
        joiner: LookupJoiner<K, V, VT, VR>,
        op: &str,
    ) -> KStream<K, VR> {
        let store_name = global.store_name.clone();
        let out = self.add("KSTREAM-JOIN", move || StreamGlobalJoin {
            store_name: store_name.clone(),
            key_mapper: key_mapper.clone(),
            joiner: joiner.clone(),
            store: None,
        });
        let mut g = self.graph.borrow_mut();
        if !Rc::ptr_eq(&self.graph, &global.graph) {
            g.errors.push(format!(
                "{op}: the stream and the global table come from different StreamsBuilders"
            ));
        }
        g.connect_store(out.node, &global.store_name);
        drop(g);
        out
    }

    /// Inner stream-global-table join: `key_mapper(key, value)` names the global table's row
    /// to look up; records with a row are forwarded as `joiner(value, row)` with the stream's
    /// key and timestamp, the others dropped. The global table holds every partition of its
    /// topic, so the stream needs no co-partitioning and may have changed its key.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let lines = b.global_table("lines", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("lines"));
    /// // Bus positions keyed by bus, with the line in the value.
    /// b.stream("positions", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .join_global(&lines, |_bus, line| line.clone(), |line, colour| format!("{line} ({colour})"))
    ///     .to("coloured", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("lines", Serdes::string(), Serdes::string()).pipe("M15".into(), "red".into())?;
    /// let positions = d.input_topic("positions", Serdes::string(), Serdes::string());
    /// positions.pipe("bus-1".into(), "M15".into())?;
    /// positions.pipe("bus-2".into(), "B63".into())?; // no such line: dropped
    /// let out = d.output_topic("coloured", Serdes::string(), Serdes::string());
    /// assert_eq!(out.read_key_values(), vec![("bus-1".to_string(), "M15 (red)".to_string())]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn join_global<GK: Data, VT: Data, VR: Data, M, F>(
        &self,
        global: &GlobalKTable<GK, VT>,
        key_mapper: M,
        joiner: F,
    ) -> KStream<K, VR>
    where
        M: Fn(&K, &V) -> GK + Send + Sync + 'static,
        F: Fn(&V, &VT) -> VR + Send + Sync + 'static,
    {
        self.global_lookup(
            global,
            Arc::new(key_mapper),
            Arc::new(move |_k, v, row| row.map(|t| joiner(v, t))),
            "join_global",
        )
    }

    /// Left stream-global-table join: every record is forwarded as `joiner(value, row)`, the
    /// row `None` when the global table has none for `key_mapper(key, value)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let lines = b.global_table("lines", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("lines"));
    /// b.stream("positions", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .left_join_global(&lines, |_bus, line| line.clone(),
    ///         |line: &String, colour: Option<&String>| format!("{line} ({})", colour.map_or("?", |c| c.as_str())))
    ///     .to("coloured", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("lines", Serdes::string(), Serdes::string()).pipe("M15".into(), "red".into())?;
    /// let positions = d.input_topic("positions", Serdes::string(), Serdes::string());
    /// positions.pipe("bus-1".into(), "M15".into())?;
    /// positions.pipe("bus-2".into(), "B63".into())?; // no such line: kept, with None
    /// let out = d.output_topic("coloured", Serdes::string(), Serdes::string());
    /// assert_eq!(out.read_values(), vec!["M15 (red)".to_string(), "B63 (?)".to_string()]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn left_join_global<GK: Data, VT: Data, VR: Data, M, F>(
        &self,
        global: &GlobalKTable<GK, VT>,
        key_mapper: M,
        joiner: F,
    ) -> KStream<K, VR>
    where
        M: Fn(&K, &V) -> GK + Send + Sync + 'static,
        F: Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    {
        self.global_lookup(
            global,
            Arc::new(key_mapper),
            Arc::new(move |_k, v, row| Some(joiner(v, row))),
            "left_join_global",
        )
    }
}
