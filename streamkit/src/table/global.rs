//! [`GlobalKTable`]: a table holding every partition of its topic on every instance.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::{add_table_store, nullable_consumed};
use crate::operators::table_source::TableSource;
use crate::processor::Data;
use crate::stream::{Consumed, Materialized, StreamsBuilder};
use crate::topology::node::ProcessorFactory;
use crate::topology::{GraphBuilder, NodeKind, TopicName};

/// A full copy of a topic on every application instance, for lookup joins that need no
/// co-partitioning ([`KStream::join_global`](crate::stream::KStream::join_global)).
///
/// A dedicated global thread reads every partition of the topic (by assignment, outside the
/// consumer group) into the table's store: up to the end of the topic before the stream
/// threads start processing, then continuously. Tasks read the store but never write it; it
/// has no changelog of its own (the topic is one) and is rebuilt from the topic at each start,
/// in a directory of the instance's own (`state_dir/<application-id>/global-<pid>-<n>`,
/// removed at close), so instances sharing a state directory do not collide.
/// Interactive queries see it like any key-value store. In
/// [`TopologyTestDriver`](crate::testing::TopologyTestDriver), records piped into the topic
/// update the store at once.
pub struct GlobalKTable<K, V> {
    pub(crate) graph: Rc<RefCell<GraphBuilder>>,
    pub(crate) store_name: String,
    pub(crate) _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        GlobalKTable {
            graph: self.graph.clone(),
            store_name: self.store_name.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V> GlobalKTable<K, V> {
    /// The name of the store holding the table, for interactive queries.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// let b = StreamsBuilder::new();
    /// let lines = b.global_table("lines", Consumed::with(Serdes::string(), Serdes::string()), Materialized::named("lines-store"));
    /// assert_eq!(lines.queryable_store_name(), "lines-store");
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("lines", Serdes::string(), Serdes::string()).pipe("M15".into(), "red".into())?;
    /// let store = d.key_value_store::<String, String>(lines.queryable_store_name())?;
    /// assert_eq!(store.get(&"M15".to_string())?, Some("red".to_string()));
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn queryable_store_name(&self) -> &str {
        &self.store_name
    }
}

/// The nodes behind [`StreamsBuilder::global_table`]: a source reading the topic and a node
/// writing its rows to a store that is global (not logged, owned by no task).
pub(crate) fn global_table<K: Data, V: Data>(
    builder: &StreamsBuilder,
    topic: &str,
    consumed: Consumed<K, V>,
    mut materialized: Materialized<K, V>,
) -> GlobalKTable<K, V> {
    let (key_serde, value_serde) = (consumed.key_serde.clone(), consumed.value_serde.clone());
    let topic_name = TopicName::External(topic.to_string());
    let source = builder.add_source(vec![topic_name.clone()], nullable_consumed(consumed));
    let mut g = builder.graph.borrow_mut();
    g.global_topics.insert(topic_name);
    // The topic is the table's changelog.
    materialized.logging = false;
    let store = add_table_store(
        &mut g,
        &materialized,
        Some(key_serde),
        Some(value_serde),
        |g| g.generate_name(&format!("{topic}-STATE-STORE")),
        "global_table",
    );
    g.global_stores.insert(store.clone());
    let name = g.generate_name("KTABLE-SOURCE");
    let store_name = store.clone();
    let factory = Arc::new(ProcessorFactory::<K, Option<V>, TableSource<K, V>, _>::new(
        move || TableSource {
            store_name: store_name.clone(),
            store: None,
        },
    ));
    let node = g.add_node(name, NodeKind::Processor, &[source.node], factory);
    g.connect_store(node, &store);
    drop(g);
    GlobalKTable {
        graph: builder.graph.clone(),
        store_name: store,
        _types: PhantomData,
    }
}
