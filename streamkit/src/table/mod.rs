//! Tables: [`KTable`], a changelog view of a stream where each key has one current value.
//!
//! Records flowing out of a table operator carry a [`Change`]: the key's new value and the
//! value it replaces, so downstream table aggregations can retract the old value.

mod join;
mod query;

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use query::{ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore};

use crate::operators::suppress::{SuppressSpec, SuppressUntilClose};
use crate::processor::{Data, Processor, ProcessorContext, StoreBuilder};
use crate::record::Record;
use crate::serde::Serdes;
use crate::stream::KStream;
use crate::topology::node::ProcessorFactory;
use crate::topology::{GraphBuilder, NodeKind};
use crate::window::Windowed;

/// An update of one key in a table: the new value (`None` = deleted) and the old one.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<V> {
    /// The value after the update; `None` when the key was deleted.
    pub new: Option<V>,
    /// The value before the update; `None` when the key was new.
    pub old: Option<V>,
}

/// A table: the latest value per key, materialized in a queryable store.
pub struct KTable<K, V> {
    pub(crate) graph: Rc<RefCell<GraphBuilder>>,
    pub(crate) node: usize,
    pub(crate) store_name: Option<String>,
    /// Set for time-windowed aggregations, whose results `suppress` can hold back.
    pub(crate) emit: Option<Arc<Mutex<EmitConfig>>>,
    /// Set for session and sliding aggregations: a `SuppressSpec` of the key and value types,
    /// for a suppression buffer after the aggregation.
    pub(crate) suppress_spec: Option<Arc<dyn std::any::Any + Send + Sync>>,
    pub(crate) _types: PhantomData<fn() -> (K, V)>,
}

/// How a windowed aggregation emits: on every update, or once per window when it closes.
#[derive(Debug, Clone, Default)]
pub(crate) struct EmitConfig {
    pub final_only: bool,
    pub idle_close: Option<Duration>,
    /// The store keeping how far final results were emitted.
    pub marker_store: Option<String>,
}

struct ToStream;

impl<K: Data, V: Data> Processor<K, Change<V>> for ToStream {
    type KOut = K;
    type VOut = V;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        r: Record<K, Change<V>>,
    ) -> crate::Result<()> {
        let Record {
            key,
            value,
            timestamp,
            headers,
        } = r;
        match value.new {
            Some(v) => ctx.forward(Record {
                key,
                value: v,
                timestamp,
                headers,
            }),
            None => Ok(()),
        }
    }
}

struct PassChanges;

impl<K: Data, V: Data> Processor<K, Change<V>> for PassChanges {
    type KOut = K;
    type VOut = Change<V>;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        r: Record<K, Change<V>>,
    ) -> crate::Result<()> {
        ctx.forward(r)
    }
}

/// When a suppressed windowed table emits.
#[derive(Debug, Clone, Default)]
pub struct Suppressed {
    idle_close: Option<Duration>,
}

impl Suppressed {
    /// Emit each window once, with its final value, when stream time passes its end plus
    /// grace (Kafka Streams' `Suppressed.untilWindowCloses`).
    pub fn until_window_closes() -> Self {
        Suppressed::default()
    }

    /// Also close windows when no record arrived for `idle` of wall-clock time: stream time is
    /// then taken to advance with the wall clock, so a quiet feed (buses at night) still gets
    /// its final results. Neither Kafka Streams, ksqlDB nor Quix Streams offer this.
    pub fn close_when_idle(mut self, idle: Duration) -> Self {
        self.idle_close = Some(idle);
        self
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// The stream of the table's updates (deletions are not forwarded).
    pub fn to_stream(&self) -> KStream<K, V> {
        let mut g = self.graph.borrow_mut();
        let name = g.generate_name("KTABLE-TOSTREAM");
        let factory = Arc::new(ProcessorFactory::<K, Change<V>, ToStream, _>::new(|| {
            ToStream
        }));
        let node = g.add_node(name, NodeKind::Processor, &[self.node], factory);
        drop(g);
        KStream::from_node(self.graph.clone(), node)
    }

    /// The name of the store holding the table, for interactive queries.
    pub fn queryable_store_name(&self) -> Option<&str> {
        self.store_name.as_deref()
    }
}

impl<K: Data, V: Data> KTable<Windowed<K>, V> {
    /// Holds results back as [`Suppressed`] says. Must directly follow a windowed aggregation.
    pub fn suppress(&self, suppressed: Suppressed) -> KTable<Windowed<K>, V> {
        let mut g = self.graph.borrow_mut();
        let unsuppressed = g.nodes[self.node].children.is_empty();
        let base = self.store_name.clone().unwrap_or_else(|| "window".into());
        let spec = self
            .suppress_spec
            .as_ref()
            .and_then(|s| s.downcast_ref::<SuppressSpec<K, V>>())
            .cloned();
        let node = match (&self.emit, spec) {
            (Some(emit), _) if unsuppressed => {
                // Tumbling and hopping windows: the aggregation emits final results itself.
                let marker = format!("{base}-emitted");
                let mut e = emit.lock().expect("emit config");
                e.final_only = true;
                e.idle_close = suppressed.idle_close;
                e.marker_store = Some(marker.clone());
                g.add_store(StoreBuilder::key_value(&marker, Serdes::i32(), Serdes::i64()).spec);
                g.connect_store(self.node, &marker);
                let name = g.generate_name("KTABLE-SUPPRESS");
                let factory = Arc::new(
                    ProcessorFactory::<Windowed<K>, Change<V>, PassChanges, _>::new(|| PassChanges),
                );
                g.add_node(name, NodeKind::Processor, &[self.node], factory)
            }
            (None, Some(spec)) if unsuppressed => {
                if suppressed.idle_close.is_some() {
                    g.errors.push(
                        "close_when_idle is supported after tumbling and hopping windows only"
                            .into(),
                    );
                }
                let buffer = format!("{base}-suppress-buffer");
                g.add_store(
                    StoreBuilder::key_value(&buffer, Serdes::bytes(), Serdes::bytes()).spec,
                );
                let name = g.generate_name("KTABLE-SUPPRESS");
                let store_name = buffer.clone();
                let factory = Arc::new(ProcessorFactory::<
                    Windowed<K>,
                    Change<V>,
                    SuppressUntilClose<K, V>,
                    _,
                >::new(move || SuppressUntilClose {
                    spec: spec.clone(),
                    store_name: store_name.clone(),
                    buffer: None,
                }));
                let node = g.add_node(name, NodeKind::Processor, &[self.node], factory);
                g.connect_store(node, &buffer);
                node
            }
            _ => {
                g.errors.push("suppress must directly follow a windowed aggregation (count, reduce or aggregate after windowed_by)".into());
                let name = g.generate_name("KTABLE-SUPPRESS");
                let factory = Arc::new(
                    ProcessorFactory::<Windowed<K>, Change<V>, PassChanges, _>::new(|| PassChanges),
                );
                g.add_node(name, NodeKind::Processor, &[self.node], factory)
            }
        };
        KTable {
            graph: self.graph.clone(),
            node,
            store_name: self.store_name.clone(),
            emit: None,
            suppress_spec: None,
            _types: PhantomData,
        }
    }
}
