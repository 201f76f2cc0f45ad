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
//! for every processor. If the body awaits something other than the stream (a channel, a
//! `futures` combinator), the task's thread blocks until that future wakes it; futures that
//! need a tokio reactor (tokio timers or sockets) must be run on a runtime of their own (for
//! example with `Handle::block_on` inside the body), since the task thread is not one.
//!
//! When the task closes (shutdown, partition revoked) the stream ends: `next()` returns
//! `None` and the body may finish its work. If the body returns an error, the task fails with
//! it (or, with a log-and-continue processing handler, the record is skipped and every later
//! record of that task fails, since the agent is gone). A body that returns `Ok` while the
//! stream still has records makes those records fail likewise: agents run until their stream
//! ends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::processor::{Data, Processor, ProcessorContext};
use crate::record::Record;
use crate::runtime::context::TaskClock;
use crate::runtime::stores::SharedStore;
use crate::stream::{Consumed, KStream, StreamsBuilder};
use crate::table::{FaustTable, Table, WindowedFaustTable, WindowedTable};

/// The hand-off between a task and its agent: at most one record in flight.
struct Slot<K, V> {
    next: Option<Record<K, V>>,
    /// The agent polled `next()` and found nothing: it waits for a record.
    waiting: bool,
    /// The task closed: `next()` returns `None`.
    closed: bool,
}

/// The typed stream an agent's body consumes: one partition's records, in offset order.
/// Also opens the tables the agent was connected to.
pub struct AgentStream<K, V> {
    slot: Rc<RefCell<Slot<K, V>>>,
    stores: HashMap<String, SharedStore>,
    clock: Arc<TaskClock>,
    agent: Arc<str>,
}

impl<K: Data, V: Data> AgentStream<K, V> {
    /// The next record; `None` once the stream has ended (the task is closing). The stream
    /// is also a [`futures_util::Stream`], for its combinators.
    #[allow(clippy::should_implement_trait, reason = "async, like StreamExt::next")]
    pub fn next(&mut self) -> Next<'_, K, V> {
        Next { stream: self }
    }

    /// A handle on the Faust-style `table` (which must be among the agent's stores).
    pub fn table<TK: Data, TV: Data>(&self, table: &FaustTable<TK, TV>) -> Result<Table<TK, TV>> {
        table.open_shared(self.store(table.name())?)
    }

    /// A handle on the windowed Faust-style `table` (which must be among the agent's stores).
    pub fn windowed_table<TK: Data, TV: Data>(
        &self,
        table: &WindowedFaustTable<TK, TV>,
    ) -> Result<WindowedTable<TK, TV>> {
        table.open_shared(self.store(table.name())?, self.clock.clone())
    }

    fn store(&self, name: &str) -> Result<SharedStore> {
        self.stores.get(name).cloned().ok_or_else(|| {
            Error::Topology(format!(
                "agent {} is not connected to store {name:?}; list it in the agent's stores",
                self.agent
            ))
        })
    }
}

/// The future returned by [`AgentStream::next`].
pub struct Next<'a, K, V> {
    stream: &'a mut AgentStream<K, V>,
}

impl<K, V> Future for Next<'_, K, V> {
    type Output = Option<Record<K, V>>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.stream.poll_record()
    }
}

impl<K, V> futures_util::Stream for AgentStream<K, V> {
    type Item = Record<K, V>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Record<K, V>>> {
        self.poll_record()
    }
}

impl<K, V> AgentStream<K, V> {
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

type AgentFuture = Pin<Box<dyn Future<Output = Result<()>>>>;

/// The body of an agent: called once per task with its stream.
type Body<K, V> = Arc<dyn Fn(AgentStream<K, V>) -> AgentFuture + Send + Sync>;

struct AgentProcessor<K, V> {
    name: Arc<str>,
    body: Body<K, V>,
    slot: Rc<RefCell<Slot<K, V>>>,
    future: Option<AgentFuture>,
    /// Why the agent is gone, once it is.
    ended: Option<String>,
    waker: Option<Waker>,
}

impl<K: Data, V: Data> AgentProcessor<K, V> {
    /// Polls the agent until it waits for a record it does not have, or finishes.
    fn drive(&mut self) -> Result<()> {
        let waker = self
            .waker
            .get_or_insert_with(|| Waker::from(Arc::new(ThreadWaker(std::thread::current()))))
            .clone();
        let mut cx = Context::from_waker(&waker);
        while let Some(future) = self.future.as_mut() {
            match future.as_mut().poll(&mut cx) {
                Poll::Ready(result) => {
                    self.future = None;
                    return match result {
                        Ok(()) => {
                            self.ended = Some("returned".into());
                            Ok(())
                        }
                        Err(e) => {
                            self.ended = Some(format!("failed: {e}"));
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

impl<K: Data, V: Data> Processor<K, V> for AgentProcessor<K, V> {
    type KOut = ();
    type VOut = ();

    fn init(&mut self, ctx: &mut ProcessorContext<'_, (), ()>) -> Result<()> {
        let node = ctx.node;
        let task = ctx.task_context();
        let stores = task
            .node_stores
            .get(&node)
            .into_iter()
            .flatten()
            .filter_map(|name| {
                task.stores
                    .get(name)
                    .or_else(|| task.global_stores.get(name))
                    .map(|s| (name.clone(), s.clone()))
            })
            .collect();
        let stream = AgentStream {
            slot: self.slot.clone(),
            stores,
            clock: task.clock.clone(),
            agent: self.name.clone(),
        };
        self.future = Some((self.body)(stream));
        self.drive()
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, (), ()>,
        record: Record<K, V>,
    ) -> Result<()> {
        if self.future.is_none() {
            return Err(Error::IllegalState(format!(
                "agent {} {} before its stream ended; it cannot take more records",
                self.name,
                self.ended.as_deref().unwrap_or("stopped")
            )));
        }
        {
            let mut slot = self.slot.borrow_mut();
            slot.next = Some(record);
            slot.waiting = false;
        }
        self.drive()?;
        if self.slot.borrow_mut().next.take().is_some() {
            return Err(Error::IllegalState(format!(
                "agent {} returned without taking a record; agents must run until their stream ends",
                self.name
            )));
        }
        Ok(())
    }

    fn close(&mut self, _ctx: &mut ProcessorContext<'_, (), ()>) -> Result<()> {
        self.slot.borrow_mut().closed = true;
        self.drive()
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
        let body: Body<K, V> = Arc::new(move |s| Box::pin(body(s)) as AgentFuture);
        let agent_name: Arc<str> = Arc::from(name);
        let _ = self
            .process_with_stores(
                move || AgentProcessor {
                    name: agent_name.clone(),
                    body: body.clone(),
                    slot: Rc::new(RefCell::new(Slot {
                        next: None,
                        waiting: false,
                        closed: false,
                    })),
                    future: None,
                    ended: None,
                    waker: None,
                },
                stores,
            )
            .named(name);
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
