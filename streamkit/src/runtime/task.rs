//! A task: the live instance of one sub-topology for one input partition.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::TaskIdle;
use crate::error::{Error, Result};
use crate::error_policy::{DeserializationHandler, ProcessingErrorHandler};
use crate::metrics::TaskMetrics;
use crate::processor::task_state::{OutRecord, RecordCollector, TaskState};
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
        };
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
            processing_handler: setup.processing_handler,
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
        if let Err(e) = node.borrow_mut().receive_raw(&mut self.ctx, raw) {
            if !self.processing_handler.skips(&e) {
                return Err(e);
            }
            tracing::warn!(task = %self.id, %topic, offset, error = %e, "skipping record whose processing failed");
            self.ctx
                .metrics
                .dropped(crate::metrics::names::REASON_ERROR);
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

    /// Sends the stores' pending writes to their changelog partitions (and shows them to
    /// the external committer).
    fn send_changelogs(&mut self) -> Result<()> {
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
