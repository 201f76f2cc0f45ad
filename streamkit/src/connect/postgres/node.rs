//! The sink's node in a task: table changes (or stream values) in, buffered rows out to the
//! committer.

#[allow(clippy::wildcard_imports)]
use super::*;

/// What the sink receives: a table change or a changelog record, either giving a key's new
/// value or none (delete).
pub(super) trait RowChange<V>: Data {
    fn new_value(&self) -> Option<&V>;
}

pub(super) struct PostgresSinkFactory<K, V, In> {
    pub(super) sink: PostgresSink<K, V>,
    pub(super) _input: PhantomData<fn(In)>,
}

/// The live sink of one task: maps changes to rows for its committer.
///
/// Not a [`Processor`](crate::processor::Processor) like the other built-in nodes: it is also
/// its task's external committer, which the task consults before its stores are restored and
/// at every commit — hooks the Processor API does not offer (a processor only sees records,
/// punctuations and close).
pub(super) struct SinkNode<K, V, In> {
    pub(super) committer: Rc<RefCell<PostgresCommitter>>,
    pub(super) key_fn: Columns<K>,
    pub(super) value_fn: Columns<V>,
    pub(super) _types: PhantomData<fn(K, V, In)>,
}

impl<V: Data> RowChange<V> for Change<V> {
    fn new_value(&self) -> Option<&V> {
        self.new.as_ref()
    }
}

impl<V: Data> RowChange<V> for Option<V> {
    fn new_value(&self) -> Option<&V> {
        self.as_ref()
    }
}

impl<K: Data, V: Data, In: RowChange<V>> NodeFactory for PostgresSinkFactory<K, V, In> {
    fn instantiate(
        &self,
        _name: &Arc<str>,
        _index: usize,
        app_id: &str,
        _children: &[(Arc<str>, Rc<dyn std::any::Any>)],
    ) -> Result<Instance> {
        let (Some(key_fn), Some(value_fn)) = (self.sink.key_fn.clone(), self.sink.value_fn.clone())
        else {
            return Err(Error::Topology(format!(
                "postgres sink {}: key and value columns are required",
                self.sink.table
            )));
        };
        let committer = Rc::new(RefCell::new(PostgresCommitter::new(&self.sink, app_id)?));
        let node = Rc::new(RefCell::new(SinkNode::<K, V, In> {
            committer: committer.clone(),
            key_fn,
            value_fn,
            _types: PhantomData,
        }));
        let input: Rc<RefCell<dyn Downstream<K, In>>> = node.clone();
        let committer: Rc<RefCell<dyn ExternalCommitter>> = committer;
        Ok(Instance {
            input: Some(erase_input(input)),
            control: node,
            source: None,
            committer: Some(committer),
        })
    }
}

impl<K, V: Data, In: RowChange<V>> Downstream<K, In> for SinkNode<K, V, In> {
    fn receive(&mut self, _task: &mut TaskState, record: Record<K, In>) -> Result<()> {
        let key = (self.key_fn)(&record.key);
        let row = record.value.new_value().map(|v| (self.value_fn)(v));
        let mut committer = self.committer.borrow_mut();
        committer
            .write_row(key, row)
            .map_err(|e| e.in_node(&committer.describe()))
    }
}

impl<K, V, In> NodeControl for SinkNode<K, V, In> {
    fn init(&mut self, _task: &mut TaskState) -> Result<()> {
        Ok(())
    }
    fn punctuate(&mut self, _task: &mut TaskState, _p: Punctuation) -> Result<()> {
        Ok(())
    }
    fn close(&mut self, _task: &mut TaskState) -> Result<()> {
        Ok(())
    }
}
