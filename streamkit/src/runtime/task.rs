//! A task: the live instance of one sub-topology for one input partition.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::TaskIdle;
use crate::error::{Error, Result, panic_message};
use crate::error_policy::{
    DeserializationHandler, ProcessingErrorHandler, STAGE_PROCESSING, STAGE_PRODUCTION,
    dead_letter_headers as h,
};
use crate::metrics::TaskMetrics;
use crate::metrics::names::{REASON_ERROR, REASON_PRODUCTION};
use crate::processor::task_state::{
    NO_NODE, OutKind, OutRecord, RecordCollector, Refused, TaskState,
};
use crate::processor::{Punctuation, PunctuationType};
use crate::record::Headers;
use crate::record::RecordMetadata;
use crate::record::TaskId;
use crate::runtime::partition_group::{BufferedRecord, Lag, PartitionGroup};
use crate::runtime::restore::RestoreRequest;
use crate::state::checkpoint::Checkpoint;
use crate::state::rocksdb::RocksDbShared;
use crate::state::store::StoreRegistry;
use crate::state::store::TaskStore;
use crate::state::store::TaskStores;
use crate::topology::node::{ExternalCommitter, NodeControl, RawRecord, RawSource};
use crate::topology::{NodeKind, Topology};

/// What a task needs from its owner besides the topology.
pub(crate) struct TaskSetup {
    pub app_id: Arc<str>,
    /// The thread running the task, named by [`Error::Panicked`].
    pub thread: Arc<str>,
    pub collector: Box<dyn RecordCollector>,
    pub default_handler: DeserializationHandler,
    /// What a record whose processing fails becomes.
    pub processing_handler: ProcessingErrorHandler,
    pub metrics: TaskMetrics,
    pub wall_clock_ms: i64,
    /// This task's state directory, `state_dir/<application-id>/<task>`.
    pub state_dir: PathBuf,
    /// Where the task's stores are published for interactive queries.
    pub registry: StoreRegistry,
    /// Memory shared by the RocksDB stores.
    pub rocksdb: RocksDbShared,
    /// The record-cache budget the task's caching stores share with the thread's other tasks.
    pub cache: std::sync::Arc<crate::state::cache::CacheBudget>,
    /// The global tables' stores, read-only for this task's processors.
    pub global_stores: TaskStores,
}

/// A resolved topic and the source node reading it.
type SourceRoute = (Arc<str>, Rc<RefCell<dyn RawSource>>);

/// The input record being processed, as read: what a dead letter carries.
struct InputRecord<'a> {
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    timestamp: i64,
    headers: Headers,
}

/// How the processing of a record failed.
enum Failure {
    Error(Error),
    /// A panic, with its message.
    Panic(String),
}

pub(crate) struct Task {
    pub id: TaskId,
    ctx: TaskState,
    /// Live nodes by their index in the topology.
    nodes: HashMap<usize, Rc<RefCell<dyn NodeControl>>>,
    /// (resolved topic, source node) for each topic the task reads.
    sources: Vec<SourceRoute>,
    closed: bool,
    registry: StoreRegistry,
    state_dir: PathBuf,
    /// Per store, the changelog offset its contents reflect (restored or written).
    changelog_offsets: HashMap<String, i64>,
    /// Per store, a flag it raises when it queues a changelog write: after a record only the
    /// stores it wrote are locked to send their writes.
    changelog_unsent: Vec<(String, Arc<AtomicBool>)>,
    /// The sink committing this task's progress outside Kafka, if there is one.
    external: Option<Rc<RefCell<dyn ExternalCommitter>>>,
    /// Per source: the next offset to process (from the external committer at start, then
    /// from the records processed).
    positions: Vec<Option<i64>>,
    processing_handler: ProcessingErrorHandler,
    /// Whether the collector keeps records refused at send time for a dead letter.
    keeps_refused: bool,
    /// Whether a dead letter may need the input record as read (its headers are copied
    /// before the source takes them).
    keeps_input: bool,
    /// The thread running the task.
    thread: Arc<str>,
    /// Names of the task's nodes by index, to name the one that panicked.
    node_names: HashMap<usize, Arc<str>>,
    /// Polled records not processed yet, per source.
    group: PartitionGroup,
    /// Records processed since the last one whose processing was timed (see
    /// [`LATENCY_SAMPLE_EVERY`]).
    untimed: u32,
}

/// One input record in this many has its processing timed for the process-latency
/// histogram: two clock reads per record cost as much as a simple record's whole processing
/// (≈20 ns each on a VM), and one in 16 still shows the distribution.
pub(crate) const LATENCY_SAMPLE_EVERY: u32 = 16;

/// A task whose nodes exist and whose stores are open, but not yet restored from their
/// changelogs: no processor has seen them. Its owner restores the stores of every task it
/// opens together ([`crate::runtime::restore::ChangelogRestorer`]), then starts each.
pub(crate) struct OpenedTask {
    id: TaskId,
    setup: TaskSetup,
    nodes: HashMap<usize, Rc<RefCell<dyn NodeControl>>>,
    /// Node indices in `init` order.
    init_order: Vec<usize>,
    sources: Vec<SourceRoute>,
    external: Option<Rc<RefCell<dyn ExternalCommitter>>>,
    stores: TaskStores,
    positions: Vec<Option<i64>>,
    /// The local checkpoint, when the stores restore from their changelogs (`None` when an
    /// external committer loaded them).
    checkpoint: Option<Checkpoint>,
    node_stores: HashMap<usize, Vec<String>>,
    node_names: HashMap<usize, Arc<str>>,
}

impl OpenedTask {
    /// The task.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// What the restorer needs to bring this task's logged stores up to date; `None` when
    /// they are loaded from elsewhere (an external committer did it in [`Task::open`]).
    pub fn restore_request(&self) -> Option<RestoreRequest<'_>> {
        self.checkpoint.as_ref().map(|checkpoint| RestoreRequest {
            task: self.id,
            stores: &self.stores,
            checkpoint,
        })
    }

    /// Calls `init` on every node and publishes the stores; `restored` is the changelog
    /// offset each store's contents reflect (what the restorer reached).
    pub fn start(self, restored: HashMap<String, i64>) -> Result<Task> {
        let OpenedTask {
            id,
            setup,
            nodes,
            init_order,
            sources,
            external,
            stores,
            positions,
            checkpoint: _,
            node_stores,
            node_names,
        } = self;
        let mut ctx = TaskState {
            app_id: setup.app_id,
            task_id: id,
            meta: None,
            stream_time: i64::MIN,
            wall_clock_ms: setup.wall_clock_ms,
            schedules: Vec::new(),
            next_schedule_id: 0,
            collector: setup.collector,
            default_deserialization_handler: setup.default_handler,
            metrics: setup.metrics,
            stores,
            global_stores: setup.global_stores,
            clock: Arc::new(crate::processor::task_state::TaskClock::new(
                setup.wall_clock_ms,
            )),
            node_stores,
            current_node: NO_NODE,
            commit_requested: false,
        };
        let keeps_refused = ctx.collector.keeps_refused();
        let changelog_unsent: Vec<(String, Arc<AtomicBool>)> = ctx
            .stores
            .iter()
            .map(|(name, store)| {
                let flag = Arc::new(AtomicBool::new(false));
                store
                    .lock()
                    .expect("store lock")
                    .share_unsent_flag(flag.clone());
                (name.clone(), flag)
            })
            .collect();
        for i in &init_order {
            nodes[i].borrow_mut().init(&mut ctx)?;
        }
        setup.registry.register(id, &ctx.stores);
        let sources_len = sources.len();
        let mut task = Task {
            id,
            ctx,
            nodes,
            sources,
            closed: false,
            registry: setup.registry,
            state_dir: setup.state_dir,
            changelog_offsets: restored,
            changelog_unsent,
            external,
            group: PartitionGroup::new(sources_len),
            positions,
            keeps_input: keeps_refused
                || matches!(
                    setup.processing_handler,
                    ProcessingErrorHandler::DeadLetter(_)
                ),
            keeps_refused,
            processing_handler: setup.processing_handler,
            thread: setup.thread,
            node_names,
            untimed: 0,
        };
        // Store writes made in `init` go to the changelog like any other.
        task.send_changelogs()?;
        Ok(task)
    }
}

impl Task {
    /// A task whose logged stores start as they are on disk, never restored from their
    /// changelogs (the test driver, the global tables, which load their stores themselves).
    pub fn new(topology: &Topology, id: TaskId, setup: TaskSetup) -> Result<Task> {
        Task::open(topology, id, setup)?.start(HashMap::new())
    }

    /// Instantiates every node of sub-topology `id.subtopology` (children first, so parents
    /// can hold typed handles to them) and opens its stores; [`OpenedTask::start`] then calls
    /// `init` on each node, once the stores are restored.
    pub fn open(topology: &Topology, id: TaskId, setup: TaskSetup) -> Result<OpenedTask> {
        let sub = topology
            .subtopology(id.subtopology)
            .ok_or_else(|| Error::Internal(format!("no sub-topology {}", id.subtopology)))?;
        let mut inputs: HashMap<usize, Rc<dyn Any>> = HashMap::new();
        let mut nodes = HashMap::new();
        let mut sources = Vec::new();
        let mut external: Option<Rc<RefCell<dyn ExternalCommitter>>> = None;
        for &i in sub.nodes.iter().rev() {
            let def = &topology.nodes[i];
            let children: Vec<(Arc<str>, Rc<dyn Any>)> = def
                .children
                .iter()
                .map(|c| {
                    let input = inputs.get(c).cloned().ok_or_else(|| {
                        Error::Internal(format!(
                            "child {} of {} not built",
                            topology.nodes[*c].name, def.name
                        ))
                    })?;
                    Ok((topology.nodes[*c].name.clone(), input))
                })
                .collect::<Result<_>>()?;
            let instance = def
                .factory
                .instantiate(&def.name, i, &setup.app_id, &children)?;
            if let Some(input) = instance.input {
                inputs.insert(i, input);
            }
            if let Some(c) = instance.committer {
                if let Some(first) = &external {
                    return Err(Error::Topology(format!(
                        "sub-topology {} has two sinks that commit outside Kafka ({} and {}); \
                         at most one is supported",
                        id.subtopology,
                        first.borrow().describe(),
                        c.borrow().describe()
                    )));
                }
                external = Some(c);
            }
            if let (Some(source), NodeKind::Source { topics }) = (instance.source, &def.kind) {
                for t in topics {
                    sources.push((Arc::from(t.resolve(&setup.app_id)), source.clone()));
                }
            }
            nodes.insert(i, instance.control);
        }
        let mut stores = HashMap::new();
        for spec in &sub.stores {
            let store = TaskStore::open(
                spec.clone(),
                &setup.app_id,
                id.partition,
                &setup.state_dir,
                &setup.rocksdb,
                &setup.cache,
            )?;
            stores.insert(spec.name.clone(), Arc::new(std::sync::Mutex::new(store)));
        }
        // An external committer loads the stores here; changelogs are read by the owner,
        // between `open` and `start`, for every task it opens at once.
        let (checkpoint, positions) = match &external {
            Some(committer) => {
                // The external system holds the state that matches its offsets; the
                // changelogs may be ahead of it and are not read.
                for store in stores.values() {
                    store.lock().expect("store lock").capture = true;
                }
                Checkpoint::remove(&setup.state_dir)?;
                let topics: Vec<&str> = sources.iter().map(|(t, _)| &**t).collect();
                let starts = committer.borrow_mut().load(id, &stores, &topics)?;
                (None, starts)
            }
            None => (
                Some(Checkpoint::read(&setup.state_dir)?),
                vec![None; sources.len()],
            ),
        };
        let node_stores = sub
            .nodes
            .iter()
            .filter(|&&i| !topology.nodes[i].stores.is_empty())
            .map(|&i| (i, topology.nodes[i].stores.clone()))
            .collect();
        let node_names = sub
            .nodes
            .iter()
            .map(|&i| (i, topology.nodes[i].name.clone()))
            .collect();
        Ok(OpenedTask {
            id,
            setup,
            nodes,
            init_order: sub.nodes.clone(),
            sources,
            external,
            stores,
            positions,
            checkpoint,
            node_stores,
            node_names,
        })
    }

    /// The task's own stores.
    pub fn stores(&self) -> &TaskStores {
        &self.ctx.stores
    }

    /// Resolved topics this task reads, in source order (index = `source` in [`Task::process`]).
    pub fn source_topics(&self) -> impl Iterator<Item = &Arc<str>> {
        self.sources.iter().map(|(t, _)| t)
    }

    /// Whether records of `source` can be processed as they are polled, without buffering:
    /// the task has one source and nothing buffered, so there is no order to choose.
    pub fn unbuffered(&self) -> bool {
        self.group.sources() == 1 && self.group.is_empty()
    }

    /// Queues a polled record of `source` for [`Task::process_next`]; returns how many
    /// records of that source are buffered now. The timestamp it is ordered by is extracted
    /// here; a record that cannot be deserialized is ordered by its Kafka timestamp and
    /// meets its deserialization handler when it is processed.
    pub fn buffer(&mut self, source: usize, offset: i64, raw: RawRecord<'_>) -> usize {
        let (topic, node) = &self.sources[source];
        let order_ts = node.borrow().order_timestamp(topic, &raw);
        self.group.push(
            source,
            BufferedRecord {
                offset,
                order_ts,
                timestamp: raw.timestamp,
                key: raw.key.map(<[u8]>::to_vec),
                value: raw.value.map(<[u8]>::to_vec),
                headers: raw.headers,
            },
        );
        self.group.len(source)
    }

    /// Records of `source` buffered and not processed.
    pub fn buffered(&self, source: usize) -> usize {
        self.group.len(source)
    }

    /// Offset of the first buffered (unprocessed) record of `source`.
    pub fn buffered_head(&self, source: usize) -> Option<i64> {
        self.group.head_offset(source)
    }

    /// Processes the buffered record with the lowest timestamp, if the task may process now
    /// (see [`PartitionGroup::next`]); returns its source and offset.
    pub fn process_next(
        &mut self,
        idle: TaskIdle,
        now: std::time::Instant,
        lag: impl FnMut(usize) -> Lag,
    ) -> Result<Option<(usize, i64)>> {
        let Some((source, r)) = self.group.next(idle, now, lag) else {
            return Ok(None);
        };
        let raw = RawRecord {
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            timestamp: r.timestamp,
            headers: r.headers,
        };
        self.process(source, r.offset, raw)?;
        Ok(Some((source, r.offset)))
    }

    /// Processes one input record read from `self.source_topics()[source]`.
    pub fn process(&mut self, source: usize, offset: i64, raw: RawRecord<'_>) -> Result<()> {
        let (topic, node) = &self.sources[source];
        self.ctx.meta = Some(RecordMetadata {
            topic: topic.clone(),
            partition: self.id.partition,
            offset,
        });
        // The first record and then one in `LATENCY_SAMPLE_EVERY` are timed.
        let started = if self.untimed == 0 {
            self.untimed = LATENCY_SAMPLE_EVERY - 1;
            Some(std::time::Instant::now())
        } else {
            self.untimed -= 1;
            None
        };
        // A dead letter carries the record as it was read: its headers are copied before the
        // source takes them, only when a dead letter may need them.
        let input = self.keeps_input.then(|| InputRecord {
            key: raw.key,
            value: raw.value,
            timestamp: raw.timestamp,
            headers: raw.headers.clone(),
        });
        self.ctx.current_node = NO_NODE;
        // A panic in a user closure is this record's processing error, like an error it
        // returns. Unwinding releases the nodes' `RefCell` borrows; a store whose lock it
        // poisoned is checked in `on_failure`. (The guard costs nothing unless a panic
        // unwinds through it: `bench/micro/catch_unwind.rs` measures it.)
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            node.borrow_mut().receive_raw(&mut self.ctx, raw)
        }));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.on_failure(Failure::Error(e), input.as_ref())?,
            Err(payload) => {
                self.on_failure(Failure::Panic(panic_message(&*payload)), input.as_ref())?;
            }
        }
        if self.keeps_refused {
            self.dead_letter_refused(input.as_ref())?;
        }
        self.positions[source] = Some(offset + 1);
        if let Some(started) = started {
            self.ctx
                .metrics
                .process_latency
                .observe(started.elapsed().as_secs_f64());
        }
        self.ctx.metrics.processed.inc();
        self.punctuate(PunctuationType::StreamTime, self.ctx.stream_time)?;
        self.send_changelogs()
    }

    /// Where an external committer wants this task's sources to start: (topic, next offset;
    /// `None` = the beginning) per source. `None` without an external committer.
    pub fn external_start(&self) -> Option<Vec<(Arc<str>, Option<i64>)>> {
        self.external.as_ref()?;
        Some(
            self.sources
                .iter()
                .zip(&self.positions)
                .map(|((t, _), p)| (t.clone(), *p))
                .collect(),
        )
    }

    /// Commits the external committer's buffered writes with the positions they cover (after
    /// [`Task::flush`]).
    pub fn commit_external(&mut self) -> Result<()> {
        let Some(committer) = &self.external else {
            return Ok(());
        };
        let positions: Vec<(String, i64)> = self
            .sources
            .iter()
            .zip(&self.positions)
            .filter_map(|((t, _), p)| p.map(|p| (t.to_string(), p)))
            .collect();
        committer.borrow_mut().commit(&positions)
    }

    /// Applies the processing error handler to the failure of the record being processed.
    fn on_failure(&mut self, failure: Failure, input: Option<&InputRecord<'_>>) -> Result<()> {
        let (error, node) = match failure {
            Failure::Error(e) => {
                if !self.processing_handler.handles(&e) {
                    return Err(e);
                }
                match e {
                    Error::Processor { node, source } => (source.to_string(), node),
                    e => (e.to_string(), String::new()),
                }
            }
            Failure::Panic(message) => {
                let node = self
                    .node_names
                    .get(&self.ctx.current_node)
                    .map_or_else(String::new, |n| n.to_string());
                // A store locked while the panic unwound may hold half a write: the record
                // is not skipped. The lock is released for the thread's shutdown, which
                // closes the task as after any error.
                let mut poisoned = false;
                for store in self.ctx.stores.values().filter(|s| s.is_poisoned()) {
                    store.clear_poison();
                    poisoned = true;
                }
                if self.processing_handler == ProcessingErrorHandler::Fail || poisoned {
                    tracing::error!(task = %self.id, %node, panic = %message, "a processor panicked");
                    let message = if poisoned {
                        format!(
                            "{message} (in {node}, with a state store locked: its contents \
                             cannot be trusted, so the record is not skipped)"
                        )
                    } else {
                        message
                    };
                    return Err(Error::Panicked {
                        thread: self.thread.to_string(),
                        message,
                    });
                }
                (format!("panicked: {message}"), node)
            }
        };
        let (topic, partition, offset) = self.origin();
        match &self.processing_handler {
            ProcessingErrorHandler::Fail => {
                return Err(Error::Internal("the fail handler skipped a record".into()));
            }
            ProcessingErrorHandler::LogAndContinue => {
                tracing::warn!(task = %self.id, %topic, partition, offset, %node, %error,
                    "skipping record whose processing failed");
            }
            ProcessingErrorHandler::DeadLetter(dlq) => {
                let dlq = dlq.clone();
                let input = input.ok_or_else(|| {
                    Error::Internal("no input record kept for a dead letter".into())
                })?;
                let mut headers = input.headers.clone();
                headers
                    .add(h::ERROR, error.as_str())
                    .add(h::STAGE, STAGE_PROCESSING)
                    .add(h::NODE, node.as_str());
                self.send_dead_letter(&dlq, input.key, input.value, input.timestamp, headers)?;
                tracing::debug!(task = %self.id, %topic, partition, offset, %node, %error,
                    dead_letter_topic = %dlq, "sent record whose processing failed to the dead-letter topic");
            }
        }
        self.ctx.metrics.dropped(REASON_ERROR);
        Ok(())
    }

    /// Topic, partition and offset of the record being processed (empty, -1, -1 outside one).
    fn origin(&self) -> (Arc<str>, i32, i64) {
        match &self.ctx.meta {
            Some(m) => (m.topic.clone(), m.partition, m.offset),
            None => (Arc::from(""), -1, -1),
        }
    }

    /// Sends a dead letter, adding the origin headers of the record being processed.
    fn send_dead_letter(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        mut headers: Headers,
    ) -> Result<()> {
        if let Some(m) = &self.ctx.meta {
            headers
                .add(h::TOPIC, m.topic.as_bytes())
                .add(h::PARTITION, m.partition.to_string())
                .add(h::OFFSET, m.offset.to_string());
        }
        self.ctx.collector.send(OutRecord {
            topic,
            partition: None,
            key,
            value,
            timestamp,
            headers: &headers,
            kind: OutKind::DeadLetter,
        })?;
        self.ctx.metrics.dead_letter.inc();
        Ok(())
    }

    /// Dead-letters the records the producer refused at send time: with `input`, the record
    /// being processed (Kafka Streams' KIP-1034); without (a punctuator, a cache flush), the
    /// refused record itself.
    fn dead_letter_refused(&mut self, input: Option<&InputRecord<'_>>) -> Result<()> {
        for refused in self.ctx.collector.take_refused() {
            let Refused {
                dead_letter,
                topic,
                error,
                key,
                value,
                truncated,
                timestamp,
                headers,
            } = refused;
            let production = |mut headers: Headers| {
                headers
                    .add(h::ERROR, error.as_str())
                    .add(h::STAGE, STAGE_PRODUCTION)
                    .add(h::TARGET_TOPIC, topic.as_str());
                headers
            };
            match input {
                Some(input) => {
                    let headers = production(input.headers.clone());
                    self.send_dead_letter(
                        &dead_letter,
                        input.key,
                        input.value,
                        input.timestamp,
                        headers,
                    )?;
                }
                None => {
                    let mut headers = production(headers);
                    if let Some(len) = truncated {
                        headers.add(h::TRUNCATED, len.to_string());
                    }
                    self.send_dead_letter(
                        &dead_letter,
                        key.as_deref(),
                        value.as_deref(),
                        timestamp,
                        headers,
                    )?;
                }
            }
            tracing::warn!(task = %self.id, %topic, %error, dead_letter_topic = %dead_letter,
                "output record refused by the producer; sent a dead letter");
            self.ctx.metrics.dropped(REASON_PRODUCTION);
        }
        Ok(())
    }

    /// Sends the stores' pending writes to their changelog partitions (and shows them to
    /// the external committer).
    fn send_changelogs(&mut self) -> Result<()> {
        if self.keeps_refused {
            // Refused output of punctuators and cache flushes, which have no input record.
            self.dead_letter_refused(None)?;
        }
        let no_headers = Headers::new();
        for (name, unsent) in &self.changelog_unsent {
            if !unsent.swap(false, Ordering::AcqRel) {
                continue;
            }
            let Some(store) = self.ctx.stores.get(name) else {
                continue;
            };
            let mut store = store.lock().expect("store lock");
            if store.pending.is_empty() {
                continue;
            }
            if let Some(committer) = &self.external {
                let mut c = committer.borrow_mut();
                for (key, value) in &store.pending {
                    c.capture(name, key, value.as_deref());
                }
            }
            let Some((topic, partition)) = store.changelog.clone() else {
                store.pending.clear();
                continue;
            };
            for (key, value) in store.pending.drain(..) {
                self.ctx.collector.send(OutRecord {
                    topic: &topic,
                    partition: Some(partition),
                    key: Some(&key),
                    value: value.as_deref(),
                    timestamp: self.ctx.stream_time.max(0),
                    headers: &no_headers,
                    kind: OutKind::Changelog,
                })?;
            }
        }
        Ok(())
    }

    /// Records how far each store's changelog partition was written (`lookup(topic,
    /// partition)` gives the next offset).
    pub fn changelog_written(&mut self, lookup: impl Fn(&str, i32) -> Option<i64>) {
        for (name, store) in &self.ctx.stores {
            let store = store.lock().expect("store lock");
            if let Some((topic, partition)) = &store.changelog
                && let Some(offset) = lookup(topic, *partition)
            {
                self.changelog_offsets.insert(name.clone(), offset);
            }
        }
    }

    /// Writes the checkpoint of the persistent logged stores (after a flush). Not for a task
    /// with an external committer, whose stores are loaded from it.
    pub fn write_checkpoint(&self) -> Result<()> {
        if self.external.is_some() {
            return Ok(());
        }
        let mut c = Checkpoint::default();
        for (name, store) in &self.ctx.stores {
            let store = store.lock().expect("store lock");
            if store.is_persistent()
                && store.changelog.is_some()
                && let Some(o) = self.changelog_offsets.get(name)
            {
                c.0.insert(name.clone(), *o);
            }
        }
        if c.0.is_empty() {
            Ok(())
        } else {
            c.write(&self.state_dir)
        }
    }

    /// Whether a processor asked for a commit since the last call (which clears it).
    pub fn take_commit_request(&mut self) -> bool {
        std::mem::take(&mut self.ctx.commit_requested)
    }

    /// Writes out the stores' record caches (and their changelog records), without flushing
    /// the backends: what the test driver does after each record.
    pub fn flush_caches(&mut self) -> Result<()> {
        for store in self.ctx.stores.values() {
            store.lock().expect("store lock").flush_cache()?;
        }
        self.send_changelogs()
    }

    /// Flushes every store (before offsets are committed).
    pub fn flush(&mut self) -> Result<()> {
        // Caches first: what they hold must reach the changelog before the producer flush
        // and the offset commit that follow.
        for store in self.ctx.stores.values() {
            store.lock().expect("store lock").flush_cache()?;
        }
        self.send_changelogs()?;
        for store in self.ctx.stores.values() {
            store.lock().expect("store lock").flush()?;
        }
        Ok(())
    }

    /// Fires the wall-clock punctuators that are due at `now_ms`.
    pub fn advance_wall_clock(&mut self, now_ms: i64) -> Result<()> {
        self.ctx.wall_clock_ms = now_ms;
        self.ctx.clock.set_wall_clock(now_ms);
        self.punctuate(PunctuationType::WallClockTime, now_ms)?;
        self.send_changelogs()
    }

    fn punctuate(&mut self, kind: PunctuationType, now: i64) -> Result<()> {
        if now == i64::MIN || !self.ctx.schedules.iter().any(|s| s.kind == kind) {
            return Ok(());
        }
        let mut due = Vec::new();
        for s in self.ctx.schedules.iter_mut().filter(|s| s.kind == kind) {
            match s.next {
                None => {
                    due.push((s.id, s.node));
                    s.next = Some(now + s.interval_ms);
                }
                Some(next) if now >= next => {
                    due.push((s.id, s.node));
                    s.next = Some(next + s.interval_ms * ((now - next) / s.interval_ms + 1));
                }
                Some(_) => {}
            }
        }
        if due.is_empty() {
            return Ok(());
        }
        let meta = self.ctx.meta.take();
        for (id, node) in due {
            // A punctuator cancelled by an earlier one in this round does not fire.
            if self.ctx.schedules.iter().any(|s| s.id == id) {
                let _timer = self.ctx.metrics.punctuate_latency.start_timer();
                self.nodes[&node].borrow_mut().punctuate(
                    &mut self.ctx,
                    Punctuation {
                        id,
                        kind,
                        timestamp: now,
                    },
                )?;
            }
        }
        self.ctx.meta = meta;
        Ok(())
    }

    /// Drops the task without closing its nodes or flushing anything (its state is about to
    /// be rebuilt from the last commit).
    pub fn abandon(&mut self) {
        self.closed = true;
        self.registry.unregister(self.id);
    }

    /// Calls `close` on every node, parents first. Idempotent.
    pub fn close(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        self.ctx.meta = None;
        let mut ids: Vec<usize> = self.nodes.keys().copied().collect();
        ids.sort_unstable();
        let mut first_err = None;
        for i in ids {
            if let Err(e) = self.nodes[&i].borrow_mut().close(&mut self.ctx) {
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = self.flush() {
            first_err.get_or_insert(e);
        }
        self.registry.unregister(self.id);
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use crate::error_policy::{ProcessingErrorHandler as H, dead_letter_headers as h};
    use crate::prelude::*;

    /// `in` → `100 / value` (a closure that panics on 0, and fails on a negative value)
    /// → `out`.
    fn dividing() -> Topology {
        struct Divide;
        impl Processor<String, i64> for Divide {
            type KOut = String;
            type VOut = i64;
            fn process(
                &mut self,
                ctx: &mut ProcessorContext<'_, String, i64>,
                r: Record<String, i64>,
            ) -> Result<()> {
                if r.value < 0 {
                    return Err(Error::custom(format!("negative reading {}", r.value)));
                }
                let value = 100 / r.value;
                ctx.forward(Record { value, ..r })
            }
        }
        let b = StreamsBuilder::new();
        b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
            .map_values(|v: i64| v)
            .process(|| Divide)
            .to("out", Produced::with(Serdes::string(), Serdes::i64()));
        b.build().unwrap()
    }

    fn driver(handler: H) -> TopologyTestDriver {
        TopologyTestDriver::with_config(
            dividing(),
            StreamsConfig::new("handlers").processing_error_handler(handler),
        )
        .unwrap()
    }

    fn pipe(d: &TopologyTestDriver, values: &[i64]) -> Vec<Result<()>> {
        let input = d.input_topic("in", Serdes::string(), Serdes::i64());
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut r = Record::new(format!("k{i}"), *v, 1000 + i as i64);
                r.headers.add("trace", format!("t{i}"));
                input.pipe_record(r)
            })
            .collect()
    }

    #[test]
    fn a_panic_under_fail_is_an_error_naming_the_thread_and_the_message() {
        let d = driver(H::Fail);
        let results = pipe(&d, &[4, 0]);
        assert!(results[0].is_ok());
        match &results[1] {
            Err(Error::Panicked { thread, message }) => {
                assert_eq!(thread, "test-driver");
                assert!(message.contains("divide by zero"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_panic_under_log_and_continue_drops_the_record_and_processing_goes_on() {
        let d = driver(H::LogAndContinue);
        for r in pipe(&d, &[4, 0, 5, -1, 10]) {
            r.unwrap();
        }
        let out = d.output_topic("out", Serdes::string(), Serdes::i64());
        assert_eq!(out.read_values(), vec![25, 20, 10]);
        assert_eq!(d.metrics().dropped_records("error"), 2);
        assert_eq!(d.metrics().dead_letter_records(), 0);
    }

    #[test]
    fn a_panic_and_an_error_under_dead_letter_send_the_input_record_as_read() {
        let d = driver(H::DeadLetter("in-dlq".into()));
        for r in pipe(&d, &[4, 0, 5, -1]) {
            r.unwrap();
        }
        let out = d.output_topic("out", Serdes::string(), Serdes::i64());
        assert_eq!(out.read_values(), vec![25, 20]);
        let dlq = d.output_topic("in-dlq", Serdes::string(), Serdes::bytes());
        let dead = dlq.read_records();
        assert_eq!(dead.len(), 2);
        let (panicked, failed) = (&dead[0], &dead[1]);
        // The input record as read: key, value bytes, timestamp and headers.
        assert_eq!(panicked.key, "k1");
        assert_eq!(panicked.value, 0i64.to_be_bytes().to_vec());
        assert_eq!(panicked.timestamp, 1001);
        assert_eq!(panicked.headers.last_str("trace"), Some("t1"));
        let error = panicked.headers.last_str(h::ERROR).unwrap();
        assert!(
            error.starts_with("panicked: ") && error.contains("divide by zero"),
            "{error}"
        );
        assert_eq!(panicked.headers.last_str(h::STAGE), Some("processing"));
        assert!(
            panicked
                .headers
                .last_str(h::NODE)
                .is_some_and(|n| n.starts_with("KSTREAM-PROCESSOR-")),
            "the node that panicked, not the one that called it: {:?}",
            panicked.headers.last_str(h::NODE)
        );
        assert_eq!(panicked.headers.last_str(h::TOPIC), Some("in"));
        assert_eq!(panicked.headers.last_str(h::PARTITION), Some("0"));
        assert_eq!(panicked.headers.last_str(h::OFFSET), Some("1"));

        assert_eq!(failed.key, "k3");
        assert_eq!(
            failed.headers.last_str(h::ERROR),
            Some("negative reading -1")
        );
        assert!(
            failed
                .headers
                .last_str(h::NODE)
                .is_some_and(|n| n.starts_with("KSTREAM-PROCESSOR-"))
        );
        assert_eq!(failed.headers.last_str(h::OFFSET), Some("3"));
        assert_eq!(d.metrics().dropped_records("error"), 2);
        assert_eq!(d.metrics().dead_letter_records(), 2);
    }

    #[test]
    fn a_panic_with_a_store_locked_fails_whatever_the_handler() {
        /// Serializes like an i64, but panics on 0: a user serde that panics while the store
        /// is locked.
        struct Touchy;
        impl Serde<i64> for Touchy {
            fn serialize(
                &self,
                _topic: &str,
                v: &i64,
                out: &mut Vec<u8>,
            ) -> std::result::Result<(), crate::SerdeError> {
                assert_ne!(*v, 0, "cannot store 0");
                out.extend_from_slice(&v.to_be_bytes());
                Ok(())
            }
            fn deserialize(
                &self,
                _topic: &str,
                data: &[u8],
            ) -> std::result::Result<i64, crate::SerdeError> {
                Ok(i64::from_be_bytes(data.try_into().unwrap()))
            }
        }
        let b = StreamsBuilder::new();
        b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
            .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
            .aggregate(
                || 1,
                |_, v, _| *v,
                Materialized::named("last").value_serde(Touchy),
            )
            .to_stream()
            .to("out", Produced::with(Serdes::string(), Serdes::i64()));
        let d = TopologyTestDriver::with_config(
            b.build().unwrap(),
            StreamsConfig::new("poisoned").processing_error_handler(H::LogAndContinue),
        )
        .unwrap();
        let input = d.input_topic("in", Serdes::string(), Serdes::i64());
        input.pipe("a".into(), 3).unwrap();
        match input.pipe("a".into(), 0) {
            Err(Error::Panicked { message, .. }) => {
                assert!(message.contains("cannot store 0"), "{message}");
                assert!(message.contains("state store locked"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // The lock was released: the driver still closes.
        d.close().unwrap();
    }
}
