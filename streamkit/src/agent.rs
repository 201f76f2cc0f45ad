//! Faust-style agents: an async function over a typed stream, with access to Faust-style
//! tables, run inside the topology like any processor.
//!
//! ```
//! use streamkit::prelude::*;
//! use streamkit::table::FaustTable;
//!
//! // Faust:
//! //   counts = app.Table('counts', default=int)
//! //   @app.agent(clicks_topic)
//! //   async def count(clicks):
//! //       async for click in clicks.items():
//! //           counts[click.key] += 1
//! let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
//! let b = StreamsBuilder::new();
//! b.add_state_store(counts.store());
//! let table = counts.clone();
//! b.agent("count", "clicks", Consumed::with(Serdes::string(), Serdes::string()), &[counts.name()],
//!     move |mut clicks| {
//!         let table = table.clone();
//!         async move {
//!             let counts = clicks.table(&table)?;
//!             while let Some(click) = clicks.next().await {
//!                 counts.update(&click.key, |n| n + 1)?;
//!             }
//!             Ok(())
//!         }
//!     });
//!
//! let driver = TopologyTestDriver::new(b.build()?)?;
//! let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
//! clicks.pipe_all([("a".into(), "/".into()), ("b".into(), "/".into()), ("a".into(), "/x".into())])?;
//! let store = driver.key_value_store::<String, i64>("counts")?;
//! assert_eq!(store.get(&"a".into())?, Some(2));
//! assert_eq!(store.get(&"b".into())?, Some(1));
//! # Ok::<(), streamkit::Error>(())
//! ```
//!
//! **How it runs.** Each task (input partition) gets its own instance of the agent's future,
//! created when the task starts and driven on the task's thread: when a record arrives, it is
//! handed to the stream and the future is polled until it asks for the *next* record (or
//! finishes). Only then does processing of that record count as done, so its offset is
//! committed only after the agent has consumed it and gone back for more: at-least-once, as
//! for every processor. If the body awaits something other than the stream — a tokio timer or
//! socket (an HTTP call per event, say), a channel — the task's thread blocks until that
//! future wakes it: the body is polled inside a small process-wide tokio runtime (one worker
//! thread) that drives tokio's timers and I/O, so tokio futures work in agent bodies, and
//! `tokio::spawn` from a body runs on that runtime. The task's other partitions wait
//! meanwhile, as they would for a slow synchronous processor.
//!
//! An agent made with [`KStream::agent_with_output`] also emits records
//! ([`AgentStream::forward`], Faust's `yield` in an agent with a sink); they continue as a
//! stream, forwarded in order each time the body waits for the next record.
//!
//! When the task closes (shutdown, partition revoked) the stream ends: `next()` returns
//! `None` and the body may finish its work. If the body returns an error, the task fails with
//! it, or, with a log-and-continue processing handler, the record is skipped and counted; the
//! next record starts a fresh instance of the body (as Faust's supervisor restarts a crashed
//! agent). A body that returns `Ok` while the stream still has records makes those records
//! fail: agents run until their stream ends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::processor::task_state::TaskClock;
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Record;
use crate::state::store::SharedStore;
use crate::stream::{Consumed, KStream, StreamsBuilder};
use crate::table::{FaustTable, Table, WindowedFaustTable, WindowedTable};

/// The hand-off between a task and its agent: at most one record in flight, and the records
/// the agent forwards, sent downstream when it yields.
struct Slot<K, V, KO, VO> {
    next: Option<Record<K, V>>,
    out: Vec<Record<KO, VO>>,
    /// The agent polled `next()` and found nothing: it waits for a record.
    waiting: bool,
    /// The task closed: `next()` returns `None`.
    closed: bool,
}

/// The stores an agent is connected to, by name; `true` for a global table's (read-only).
type AgentStores = HashMap<String, (SharedStore, bool)>;

/// The typed stream an agent's body consumes: one partition's records, in offset order.
/// Also opens the tables the agent was connected to, and forwards records downstream for
/// agents made with [`KStream::agent_with_output`] (output types `KO`, `VO`).
pub struct AgentStream<K, V, KO = (), VO = ()> {
    slot: Rc<RefCell<Slot<K, V, KO, VO>>>,
    stores: AgentStores,
    clock: Arc<TaskClock>,
    agent: Arc<str>,
}

impl<K: Data, V: Data, KO: Data, VO: Data> AgentStream<K, V, KO, VO> {
    /// Sends `record` downstream (Faust's `yield` in an agent with a sink). Records are
    /// forwarded, in order, as soon as the body next waits for the stream or finishes.
    pub fn forward(&self, record: Record<KO, VO>) {
        self.slot.borrow_mut().out.push(record);
    }

    /// The next record; `None` once the stream has ended (the task is closing). The stream
    /// is also a [`futures_util::Stream`], for its combinators.
    #[allow(clippy::should_implement_trait, reason = "async, like StreamExt::next")]
    pub fn next(&mut self) -> Next<'_, K, V, KO, VO> {
        Next { stream: self }
    }

    /// A handle on the Faust-style `table` (which must be among the agent's stores).
    pub fn table<TK: Data, TV: Data>(&self, table: &FaustTable<TK, TV>) -> Result<Table<TK, TV>> {
        let (store, global) = self.store(table.name())?;
        table.open_shared(store, global)
    }

    /// A handle on the windowed Faust-style `table` (which must be among the agent's stores).
    pub fn windowed_table<TK: Data, TV: Data>(
        &self,
        table: &WindowedFaustTable<TK, TV>,
    ) -> Result<WindowedTable<TK, TV>> {
        table.open_shared(self.store(table.name())?.0, self.clock.clone())
    }

    fn store(&self, name: &str) -> Result<(SharedStore, bool)> {
        self.stores.get(name).cloned().ok_or_else(|| {
            Error::Topology(format!(
                "agent {} is not connected to store {name:?}; list it in the agent's stores",
                self.agent
            ))
        })
    }
}

/// The future returned by [`AgentStream::next`].
pub struct Next<'a, K, V, KO = (), VO = ()> {
    stream: &'a mut AgentStream<K, V, KO, VO>,
}

impl<K, V, KO, VO> Future for Next<'_, K, V, KO, VO> {
    type Output = Option<Record<K, V>>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.stream.poll_record()
    }
}

impl<K, V, KO, VO> futures_util::Stream for AgentStream<K, V, KO, VO> {
    type Item = Record<K, V>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Record<K, V>>> {
        self.poll_record()
    }
}

impl<K, V, KO, VO> AgentStream<K, V, KO, VO> {
    fn poll_record(&self) -> Poll<Option<Record<K, V>>> {
        let mut slot = self.slot.borrow_mut();
        if let Some(r) = slot.next.take() {
            slot.waiting = false;
            return Poll::Ready(Some(r));
        }
        if slot.closed {
            return Poll::Ready(None);
        }
        // The task polls again after handing over the next record; no wake-up needed.
        slot.waiting = true;
        Poll::Pending
    }
}

/// Wakes the task thread when a future the agent awaits (other than the stream) is ready.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// The tokio runtime whose I/O and timer drivers serve every agent of the process (one
/// worker thread; agent bodies themselves run on their tasks' threads).
fn io_runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("streamkit-agent-io")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Internal(format!("cannot start the agents' tokio runtime: {e}")))
}

type AgentFuture = Pin<Box<dyn Future<Output = Result<()>>>>;

/// The body of an agent: called once per task with its stream.
type Body<K, V, KO, VO> = Arc<dyn Fn(AgentStream<K, V, KO, VO>) -> AgentFuture + Send + Sync>;

struct AgentProcessor<K, V, KO, VO> {
    name: Arc<str>,
    body: Body<K, V, KO, VO>,
    slot: Rc<RefCell<Slot<K, V, KO, VO>>>,
    future: Option<AgentFuture>,
    /// Why the agent is gone, once it is.
    ended: Option<Ended>,
    /// Wakes the thread that polls the body (its task's thread).
    waker: Option<(std::thread::ThreadId, Waker)>,
    /// The task's stores connected to the agent, and its clock: what a (re)started body gets.
    parts: Option<(AgentStores, Arc<TaskClock>)>,
}

/// How an agent's body ended before its stream did.
enum Ended {
    Returned,
    Failed,
}

impl<K: Data, V: Data, KO: Data, VO: Data> AgentProcessor<K, V, KO, VO> {
    /// Polls the agent until it waits for a record it does not have, or finishes, then
    /// forwards what it emitted.
    fn drive(&mut self, ctx: &mut ProcessorContext<'_, KO, VO>) -> Result<()> {
        let polled = self.poll();
        let out = std::mem::take(&mut self.slot.borrow_mut().out);
        for r in out {
            ctx.forward(r)?;
        }
        polled
    }

    /// Calls the body with a fresh stream and runs it to its first `next()`.
    fn start(&mut self, ctx: &mut ProcessorContext<'_, KO, VO>) -> Result<()> {
        let (stores, clock) = self
            .parts
            .clone()
            .ok_or_else(|| Error::Internal("agent started before init".into()))?;
        {
            let mut slot = self.slot.borrow_mut();
            slot.next = None;
            slot.waiting = false;
        }
        let stream = AgentStream {
            slot: self.slot.clone(),
            stores,
            clock,
            agent: self.name.clone(),
        };
        self.ended = None;
        self.future = Some((self.body)(stream));
        self.drive(ctx)
    }

    fn poll(&mut self) -> Result<()> {
        let here = std::thread::current();
        let waker = match &self.waker {
            Some((id, w)) if *id == here.id() => w.clone(),
            _ => {
                let w = Waker::from(Arc::new(ThreadWaker(here.clone())));
                self.waker = Some((here.id(), w.clone()));
                w
            }
        };
        let mut cx = Context::from_waker(&waker);
        // Tokio timers and sockets the body creates register with the agents' runtime, whose
        // worker drives them and wakes this thread.
        let _tokio = io_runtime()?.enter();
        while let Some(future) = self.future.as_mut() {
            match future.as_mut().poll(&mut cx) {
                Poll::Ready(result) => {
                    self.future = None;
                    return match result {
                        Ok(()) => {
                            self.ended = Some(Ended::Returned);
                            Ok(())
                        }
                        Err(e) => {
                            self.ended = Some(Ended::Failed);
                            Err(e.in_node(&self.name))
                        }
                    };
                }
                Poll::Pending => {
                    let slot = self.slot.borrow();
                    if slot.waiting && slot.next.is_none() {
                        return Ok(());
                    }
                    drop(slot);
                    // Awaiting something else: sleep until woken (the timeout only bounds a
                    // missed wake-up).
                    std::thread::park_timeout(Duration::from_millis(50));
                }
            }
        }
        Ok(())
    }
}

impl<K: Data, V: Data, KO: Data, VO: Data> Processor<K, V> for AgentProcessor<K, V, KO, VO> {
    type KOut = KO;
    type VOut = VO;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, KO, VO>) -> Result<()> {
        let stores = ctx
            .connected_stores()
            .into_iter()
            .map(|(name, store, global)| (name, (store, global)))
            .collect();
        self.parts = Some((stores, ctx.clock()));
        self.start(ctx)
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KO, VO>,
        record: Record<K, V>,
    ) -> Result<()> {
        match self.ended {
            None => {}
            Some(Ended::Failed) => {
                // Like Faust's supervisor: a crashed agent restarts (the record it failed on
                // was failed or skipped by the processing error handler).
                tracing::warn!(agent = %self.name, "restarting the agent after its failure");
                self.start(ctx)?;
            }
            Some(Ended::Returned) => {
                return Err(Error::IllegalState(format!(
                    "agent {} returned before its stream ended; agents must run until their stream ends",
                    self.name
                )));
            }
        }
        {
            let mut slot = self.slot.borrow_mut();
            slot.next = Some(record);
            slot.waiting = false;
        }
        self.drive(ctx)?;
        if self.slot.borrow_mut().next.take().is_some() {
            return Err(Error::IllegalState(format!(
                "agent {} returned without taking a record; agents must run until their stream ends",
                self.name
            )));
        }
        Ok(())
    }

    fn close(&mut self, ctx: &mut ProcessorContext<'_, KO, VO>) -> Result<()> {
        self.slot.borrow_mut().closed = true;
        self.drive(ctx)
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Runs `body`, an async function over this stream, as a Faust-style agent called `name`
    /// with access to the `stores` listed (Faust-style tables and any other store). `body` is
    /// called once per task with that task's [`AgentStream`]; see the
    /// [`agent` module](crate::agent) for how it runs and an example.
    pub fn agent<F, Fut>(&self, name: &str, stores: &[&str], body: F)
    where
        F: Fn(AgentStream<K, V>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        let _ = self.agent_with_output(name, stores, body);
    }

    /// Like [`agent`](Self::agent), for an agent that emits records with
    /// [`AgentStream::forward`] (Faust's agent with a `sink`): they continue as the returned
    /// stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use streamkit::prelude::*;
    /// use streamkit::agent::AgentStream;
    ///
    /// let b = StreamsBuilder::new();
    /// b.stream("orders", Consumed::with(Serdes::string(), Serdes::i64()))
    ///     .agent_with_output("big-orders", &[], |mut orders: AgentStream<String, i64, String, String>| async move {
    ///         while let Some(order) = orders.next().await {
    ///             if order.value >= 100 {
    ///                 let text = format!("{} ordered {}", order.key, order.value);
    ///                 orders.forward(order.with_value(text));
    ///             }
    ///         }
    ///         Ok(())
    ///     })
    ///     .to("alerts", Produced::with(Serdes::string(), Serdes::string()));
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("orders", Serdes::string(), Serdes::i64())
    ///     .pipe_all([("ann".to_string(), 120), ("bob".to_string(), 5)])?;
    /// assert_eq!(
    ///     d.output_topic("alerts", Serdes::string(), Serdes::string()).read_values(),
    ///     vec!["ann ordered 120".to_string()]
    /// );
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn agent_with_output<KO: Data, VO: Data, F, Fut>(
        &self,
        name: &str,
        stores: &[&str],
        body: F,
    ) -> KStream<KO, VO>
    where
        F: Fn(AgentStream<K, V, KO, VO>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        let body: Body<K, V, KO, VO> = Arc::new(move |s| Box::pin(body(s)) as AgentFuture);
        let agent_name: Arc<str> = Arc::from(name);
        self.process_with_stores(
            move || AgentProcessor {
                name: agent_name.clone(),
                body: body.clone(),
                slot: Rc::new(RefCell::new(Slot {
                    next: None,
                    out: Vec::new(),
                    waiting: false,
                    closed: false,
                })),
                future: None,
                ended: None,
                waker: None,
                parts: None,
            },
            stores,
        )
        .named(name)
    }
}

impl StreamsBuilder {
    /// Runs `body` as a Faust-style agent called `name` over the records of `topic` (Faust's
    /// `@app.agent(topic)`): shorthand for [`stream`](Self::stream) then
    /// [`KStream::agent`]. See the [`agent` module](crate::agent) for an example.
    pub fn agent<K: Data, V: Data, F, Fut>(
        &self,
        name: &str,
        topic: &str,
        consumed: Consumed<K, V>,
        stores: &[&str],
        body: F,
    ) where
        F: Fn(AgentStream<K, V>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        self.stream(topic, consumed).agent(name, stores, body);
    }
}
