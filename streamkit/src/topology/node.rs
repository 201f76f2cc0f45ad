//! How a node definition becomes a live, typed node inside a task.
//!
//! The graph is stored type-erased (so one `Topology` can hold nodes of any key and value
//! types and be shared by every thread), but the edges of a live task are typed:
//! a parent holds `Rc<RefCell<dyn Downstream<K, V>>>` handles to its children and calls them
//! directly, so a record crosses an edge with one virtual call and no allocation. The
//! downcast from the erased handle happens once, when the task is built.

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::processor::task_state::TaskState;
use crate::processor::{Child, Data, Downstream, Processor, ProcessorContext, Punctuation};
use crate::record::TaskId;
use crate::record::{Headers, Record};
use crate::state::store::TaskStores;

/// A sink that commits its writes, together with the input offsets and store writes they
/// correspond to, to a system outside Kafka, and from which the task's state is loaded when
/// the task starts (the Postgres sink). It replaces the changelog restore of its task.
pub(crate) trait ExternalCommitter {
    /// Names the sink in logs and errors.
    fn describe(&self) -> String;
    /// Empties and loads the task's stores; returns, for each of `sources` (resolved topics,
    /// partition = the task's), the next offset to read, `None` for the beginning.
    fn load(
        &mut self,
        task: TaskId,
        stores: &TaskStores,
        sources: &[&str],
    ) -> Result<Vec<Option<i64>>>;
    /// Records a store write (`None` = delete) made since the last commit.
    fn capture(&mut self, store: &str, key: &[u8], value: Option<&[u8]>);
    /// Commits the buffered writes with the next offset of each source topic.
    fn commit(&mut self, positions: &[(String, i64)]) -> Result<()>;
}

/// Type-erased lifecycle of a live node, called by its task.
pub(crate) trait NodeControl {
    fn init(&mut self, task: &mut TaskState) -> Result<()>;
    fn punctuate(&mut self, task: &mut TaskState, punctuation: Punctuation) -> Result<()>;
    fn close(&mut self, task: &mut TaskState) -> Result<()>;
}

/// An undecoded input record as read from Kafka.
pub(crate) struct RawRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp: i64,
    pub headers: Headers,
}

/// Entry point of a sub-topology: decodes raw records.
pub(crate) trait RawSource {
    fn receive_raw(&mut self, task: &mut TaskState, record: RawRecord<'_>) -> Result<()>;
    /// The timestamp a polled record of `topic` is ordered by among the task's inputs: what
    /// the source's timestamp extractor makes of it, the Kafka timestamp when it has none
    /// or the record cannot be deserialized.
    fn order_timestamp(&self, topic: &str, record: &RawRecord<'_>) -> i64 {
        let _ = topic;
        record.timestamp
    }
}

/// A node instantiated for one task.
pub(crate) struct Instance {
    /// `Rc<RefCell<dyn Downstream<K, V>>>` for the node's input types; `None` for sources.
    pub input: Option<Rc<dyn Any>>,
    pub control: Rc<RefCell<dyn NodeControl>>,
    pub source: Option<Rc<RefCell<dyn RawSource>>>,
    /// Set by sinks that commit to an external system together with the input offsets (the
    /// Postgres sink).
    pub committer: Option<Rc<RefCell<dyn ExternalCommitter>>>,
}

/// Creates a node's live instance for a task. Stored in the topology, shared by all threads.
pub(crate) trait NodeFactory: Send + Sync {
    /// `children` are the already-built inputs of the node's children, in edge order.
    fn instantiate(
        &self,
        name: &Arc<str>,
        index: usize,
        app_id: &str,
        children: &[(Arc<str>, Rc<dyn Any>)],
    ) -> Result<Instance>;
}

/// Downcasts erased child inputs to the typed handles a parent forwards to.
pub(crate) fn typed_children<K: 'static, V: 'static>(
    parent: &str,
    children: &[(Arc<str>, Rc<dyn Any>)],
) -> Result<Vec<Child<K, V>>> {
    children
        .iter()
        .map(|(name, input)| {
            input
                .downcast_ref::<Rc<RefCell<dyn Downstream<K, V>>>>()
                .map(|node| Child { name: name.clone(), node: node.clone() })
                .ok_or_else(|| {
                    Error::Topology(format!(
                        "node {name} cannot take the records of {parent}: it expects other key/value types than ({}, {})",
                        std::any::type_name::<K>(),
                        std::any::type_name::<V>()
                    ))
                })
        })
        .collect()
}

/// Wraps a typed downstream as the erased input handle a parent looks up.
pub(crate) fn erase_input<K: 'static, V: 'static>(
    node: Rc<RefCell<dyn Downstream<K, V>>>,
) -> Rc<dyn Any> {
    Rc::new(node)
}

/// Factory for any [`Processor`], from a supplier called once per task.
pub(crate) struct ProcessorFactory<KIn, VIn, P, F> {
    supplier: F,
    _types: PhantomData<fn(KIn, VIn) -> P>,
}

impl<KIn, VIn, P, F> ProcessorFactory<KIn, VIn, P, F> {
    pub fn new(supplier: F) -> Self {
        ProcessorFactory {
            supplier,
            _types: PhantomData,
        }
    }
}

impl<KIn, VIn, P, F> NodeFactory for ProcessorFactory<KIn, VIn, P, F>
where
    KIn: Data,
    VIn: Data,
    P: Processor<KIn, VIn>,
    F: Fn() -> P + Send + Sync,
{
    fn instantiate(
        &self,
        name: &Arc<str>,
        index: usize,
        _app_id: &str,
        children: &[(Arc<str>, Rc<dyn Any>)],
    ) -> Result<Instance> {
        let node = Rc::new(RefCell::new(ProcessorNode {
            name: name.clone(),
            index,
            processor: (self.supplier)(),
            children: typed_children::<P::KOut, P::VOut>(name, children)?,
            received: None,
            _in: PhantomData::<fn(KIn, VIn)>,
        }));
        let input: Rc<RefCell<dyn Downstream<KIn, VIn>>> = node.clone();
        Ok(Instance {
            input: Some(erase_input(input)),
            control: node,
            source: None,
            committer: None,
        })
    }
}

/// A live processor and its typed children.
struct ProcessorNode<KIn, VIn, P: Processor<KIn, VIn>> {
    name: Arc<str>,
    index: usize,
    processor: P,
    children: Vec<Child<P::KOut, P::VOut>>,
    /// Records received (`streamkit_processor_records_total`), resolved at `init`.
    received: Option<prometheus::IntCounter>,
    _in: PhantomData<fn(KIn, VIn)>,
}

impl<KIn, VIn, P: Processor<KIn, VIn>> ProcessorNode<KIn, VIn, P> {
    fn context<'a>(
        task: &'a mut TaskState,
        children: &'a [Child<P::KOut, P::VOut>],
        index: usize,
    ) -> ProcessorContext<'a, P::KOut, P::VOut> {
        ProcessorContext {
            task,
            children,
            node: index,
        }
    }
}

impl<KIn, VIn, P: Processor<KIn, VIn>> Downstream<KIn, VIn> for ProcessorNode<KIn, VIn, P> {
    fn receive(&mut self, task: &mut TaskState, record: Record<KIn, VIn>) -> Result<()> {
        if let Some(c) = &self.received {
            c.inc();
        }
        let caller = std::mem::replace(&mut task.current_node, self.index);
        let mut ctx = Self::context(task, &self.children, self.index);
        let result = self
            .processor
            .process(&mut ctx, record)
            .map_err(|e| e.in_node(&self.name));
        task.current_node = caller;
        result
    }
}

impl<KIn, VIn, P: Processor<KIn, VIn>> NodeControl for ProcessorNode<KIn, VIn, P> {
    fn init(&mut self, task: &mut TaskState) -> Result<()> {
        self.received = Some(task.metrics.processor(&self.name));
        let mut ctx = Self::context(task, &self.children, self.index);
        self.processor
            .init(&mut ctx)
            .map_err(|e| e.in_node(&self.name))
    }
    fn punctuate(&mut self, task: &mut TaskState, punctuation: Punctuation) -> Result<()> {
        let mut ctx = Self::context(task, &self.children, self.index);
        self.processor
            .punctuate(&mut ctx, punctuation)
            .map_err(|e| e.in_node(&self.name))
    }
    fn close(&mut self, task: &mut TaskState) -> Result<()> {
        let mut ctx = Self::context(task, &self.children, self.index);
        self.processor
            .close(&mut ctx)
            .map_err(|e| e.in_node(&self.name))
    }
}
