//! Windowed Faust-style tables: values per (key, time window) in a window store, read
//! relative to the wall clock (`now`), the current record (`current`) or a delta back.
//!
//! A write goes to every window containing the current record's event time (one for tumbling
//! windows, `size / step` for hopping ones), as Faust's `table[k] += 1` on a windowed table
//! does. A read picks one window: the *newest* window containing the chosen time (Faust's
//! `Window.current`), i.e. the one starting at `t - t mod step`.
//!
//! Windows expire `expires` after they end, measured against the largest event time the task
//! has seen: an expired window reads as absent at once and is removed from the store (and its
//! changelog gets a tombstone) by the next write once stream time has moved a step further.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::processor::task_state::TaskClock;
use crate::processor::{Data, ProcessorContext, StoreBuilder, WindowStore};
use crate::state::StoreBackend;
use crate::state::spec::StoreKind;
use crate::state::store::SharedStore;
use crate::table::faust::{DefaultFn, FaustTable};
use crate::window::Window;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Which time [`WindowSet::value`] reads at (Faust's `relative_to_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RelativeTo {
    /// The current record's event time (Faust's `relative_to_stream()`). The default.
    #[default]
    Stream,
    /// The wall clock (Faust's `relative_to_now()`).
    Now,
}

/// The declaration of a windowed Faust-style table, made with [`FaustTable::tumbling`] or
/// [`FaustTable::hopping`]. Register its store with
/// [`StreamsBuilder::add_state_store`](crate::stream::StreamsBuilder::add_state_store) and
/// open a [`WindowedTable`] in the processors connected to it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use streamkit::prelude::*;
/// use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
///
/// /// Counts page views per minute; forwards (this minute, the minute before) per record.
/// struct Views { def: WindowedFaustTable<String, i64>, table: Option<WindowedTable<String, i64>> }
///
/// impl Processor<String, String> for Views {
///     type KOut = String;
///     type VOut = (i64, i64);
///     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, (i64, i64)>) -> Result<()> {
///         self.table = Some(self.def.open(ctx)?);
///         Ok(())
///     }
///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, (i64, i64)>, r: Record<String, String>) -> Result<()> {
///         let views = self.table.as_ref().unwrap();
///         views.update(&r.key, |n| n + 1)?;
///         let page = views.get(&r.key);
///         let (now, before) = (page.current()?, page.delta(Duration::from_secs(60))?);
///         ctx.forward(r.with_value((now.unwrap_or(0), before.unwrap_or(0))))
///     }
/// }
///
/// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
///     .with_default(|| 0)
///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600));
/// let b = StreamsBuilder::new();
/// b.add_state_store(views.store());
/// let def = views.clone();
/// b.stream("page-views", Consumed::with(Serdes::string(), Serdes::string()))
///     .process_with_stores(move || Views { def: def.clone(), table: None }, &[views.name()])
///     .to("view-rates", Produced::with(Serdes::string(), Serdes::json::<(i64, i64)>()));
///
/// let driver = TopologyTestDriver::new(b.build()?)?;
/// let input = driver.input_topic("page-views", Serdes::string(), Serdes::string());
/// input.pipe_at("/".into(), "u1".into(), 10_000)?;   // minute 0
/// input.pipe_at("/".into(), "u2".into(), 20_000)?;   // minute 0
/// input.pipe_at("/".into(), "u3".into(), 70_000)?;   // minute 1
/// let out = driver.output_topic("view-rates", Serdes::string(), Serdes::json::<(i64, i64)>());
/// assert_eq!(out.read_values(), vec![(1, 0), (2, 0), (1, 2)]);
/// # Ok::<(), streamkit::Error>(())
/// ```
pub struct WindowedFaustTable<K, V> {
    base: FaustTable<K, V>,
    size_ms: i64,
    step_ms: i64,
    expires_ms: i64,
    relative_to: RelativeTo,
}

impl<K, V> Clone for WindowedFaustTable<K, V> {
    fn clone(&self) -> Self {
        WindowedFaustTable {
            base: self.base.clone(),
            size_ms: self.size_ms,
            step_ms: self.step_ms,
            expires_ms: self.expires_ms,
            relative_to: self.relative_to,
        }
    }
}

impl<K: Data, V: Data> WindowedFaustTable<K, V> {
    pub(crate) fn new(
        base: FaustTable<K, V>,
        size: Duration,
        step: Duration,
        expires: Duration,
    ) -> Self {
        let size_ms = millis(size).max(1);
        WindowedFaustTable {
            base,
            size_ms,
            step_ms: millis(step).clamp(1, size_ms),
            expires_ms: millis(expires),
            relative_to: RelativeTo::Stream,
        }
    }

    /// [`WindowSet::value`] reads the window of the wall clock (Faust's `relative_to_now()`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// // The test driver's wall clock stays at 0: `value()` keeps reading minute 0.
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600))
    ///     .relative_to_now();
    /// let out = run(views, |t, k, _| { t.update(k, |n| n + 1)?; Ok(format!("{:?}", t.get(k).value()?)) },
    ///     &[("a", "", 10_000), ("a", "", 70_000), ("a", "", 80_000)])?;
    /// assert_eq!(out, ["Some(1)", "Some(1)", "Some(1)"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn relative_to_now(mut self) -> Self {
        self.relative_to = RelativeTo::Now;
        self
    }

    /// [`WindowSet::value`] reads the window of the current record's event time (Faust's
    /// `relative_to_stream()`). The default.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600))
    ///     .relative_to_stream();
    /// let out = run(views, |t, k, _| { t.update(k, |n| n + 1)?; Ok(format!("{:?}", t.get(k).value()?)) },
    ///     &[("a", "", 10_000), ("a", "", 70_000), ("a", "", 80_000)])?;
    /// assert_eq!(out, ["Some(1)", "Some(1)", "Some(2)"]); // the record's own minute
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn relative_to_stream(mut self) -> Self {
        self.relative_to = RelativeTo::Stream;
        self
    }

    /// The table's name, which is its store's name.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600));
    /// assert_eq!(views.name(), "views"); // the store's name, for process_with_stores
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        self.base.name()
    }

    /// The logged window store holding the table, for
    /// [`StreamsBuilder::add_state_store`](crate::stream::StreamsBuilder::add_state_store).
    /// Its changelog keeps windows for `size + expires` (plus a day, as every window
    /// changelog does).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600));
    /// let b = StreamsBuilder::new();
    /// b.add_state_store(views.store());
    /// let def = views.clone();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .process_with_stores(move || P { def: def.clone(), t: None, op: |t, k, _| Ok(t.update(k, |n| n + 1)?.to_string()) }, &[views.name()]);
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::string()).pipe_at("a".into(), "".into(), 70_000)?;
    /// let store = d.window_store::<String, i64>("views")?;
    /// assert_eq!(store.fetch(&"a".to_string(), 0, 120_000)?, vec![(60_000, 1)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn store(&self) -> StoreBuilder {
        let b = StoreBuilder::from_refs(
            &self.base.name,
            StoreKind::Window {
                retention_ms: self.size_ms.saturating_add(self.expires_ms),
            },
            self.base.key.clone(),
            self.base.value.clone(),
        );
        match self.base.backend {
            StoreBackend::InMemory => b.in_memory(),
            StoreBackend::RocksDb => b,
        }
    }

    /// A handle on this task's part of the table, for a processor connected to the table's
    /// store (open it in `init`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600));
    /// // `run` opens the table in its processor's `init` with `self.def.open(ctx)?`.
    /// let out = run(views, |t, k, _| Ok(t.update(k, |n| n + 1)?.to_string()), &[("a", "", 0), ("a", "", 1)])?;
    /// assert_eq!(out, ["1", "2"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn open<K2, V2>(
        &self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
    ) -> Result<WindowedTable<K, V>> {
        let store = ctx.window_store(self.name())?;
        let clock = ctx.clock();
        Ok(self.handle(store, clock))
    }

    /// A handle on an already opened store (agents).
    pub(crate) fn open_shared(
        &self,
        store: SharedStore,
        clock: Arc<TaskClock>,
    ) -> Result<WindowedTable<K, V>> {
        Ok(self.handle(WindowStore::open(store)?, clock))
    }

    fn handle(&self, store: WindowStore<K, V>, clock: Arc<TaskClock>) -> WindowedTable<K, V> {
        WindowedTable {
            name: self.base.name.clone(),
            store,
            default: self.base.default.clone(),
            size_ms: self.size_ms,
            step_ms: self.step_ms,
            expires_ms: self.expires_ms,
            relative_to: self.relative_to,
            clock,
            cleaned_at: Cell::new(i64::MIN),
        }
    }
}

/// A task's part of a windowed Faust-style table; see [`WindowedFaustTable`] for an example.
pub struct WindowedTable<K, V> {
    name: String,
    store: WindowStore<K, V>,
    default: Option<DefaultFn<V>>,
    size_ms: i64,
    step_ms: i64,
    expires_ms: i64,
    relative_to: RelativeTo,
    clock: Arc<TaskClock>,
    /// Stream time of the last removal of expired windows.
    cleaned_at: Cell<i64>,
}

impl<K: Data, V: Data> WindowedTable<K, V> {
    /// The windows of `key`, to read at a chosen time (Faust's `table[key]`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600));
    /// let out = run(views, |t, k, _| {
    ///     t.update(k, |n| n + 1)?;
    ///     let page = t.get(k);
    ///     Ok(format!("{:?} {:?}", page.current()?, page.at(0)?))
    /// }, &[("a", "", 10_000), ("a", "", 70_000)])?;
    /// assert_eq!(out, ["Some(1) Some(1)", "Some(1) Some(1)"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn get(&self, key: &K) -> WindowSet<'_, K, V> {
        WindowSet {
            table: self,
            key: key.clone(),
        }
    }

    /// Every window of `key` that has not expired, oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600));
    /// let out = run(views, |t, k, _| {
    ///     t.update(k, |n| n + 1)?;
    ///     Ok(t.windows(k)?.iter().map(|(w, n)| format!("{}:{n}", w.start)).collect::<Vec<_>>().join(","))
    /// }, &[("a", "", 10_000), ("a", "", 20_000), ("a", "", 70_000)])?;
    /// assert_eq!(out[2], "0:2,60000:1");
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn windows(&self, key: &K) -> Result<Vec<(Window, V)>> {
        let min = self.min_live_start();
        Ok(self
            .store
            .fetch_range(key, min, i64::MAX)?
            .into_iter()
            .map(|(start, v)| (Window::new(start, start + self.size_ms), v))
            .collect())
    }

    /// Every `(key, window, value)` of this task's part that has not expired.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600));
    /// let out = run(views, |t, k, _| {
    ///     t.update(k, |n| n + 1)?;
    ///     Ok(t.items()?.iter().map(|(k, w, n)| format!("{k}@{}:{n}", w.start)).collect::<Vec<_>>().join(","))
    /// }, &[("a", "", 10_000), ("b", "", 70_000)])?;
    /// assert_eq!(out[1], "a@0:1,b@60000:1");
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn items(&self) -> Result<Vec<(K, Window, V)>> {
        let min = self.min_live_start();
        Ok(self
            .store
            .all()?
            .into_iter()
            .filter(|(_, start, _)| *start >= min)
            .map(|(k, start, v)| (k, Window::new(start, start + self.size_ms), v))
            .collect())
    }

    /// Applies `f` to the value of `key` in every window containing the current record's
    /// event time, starting from the table's default in windows where the key is not set
    /// (Faust's `table[k] += 1`). Returns the new value in the newest of those windows.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// // 2-minute windows every minute: a record lands in two of them.
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .hopping(Duration::from_secs(120), Duration::from_secs(60), Duration::from_secs(3600));
    /// let out = run(views, |t, k, _| {
    ///     let newest = t.update(k, |n| n + 1)?;
    ///     Ok(format!("{newest} {:?}", t.windows(k)?.iter().map(|(w, n)| (w.start, *n)).collect::<Vec<_>>()))
    /// }, &[("a", "", 70_000), ("a", "", 130_000)])?;
    /// assert_eq!(out, ["1 [(0, 1), (60000, 1)]", "1 [(0, 1), (60000, 2), (120000, 1)]"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn update(&self, key: &K, f: impl Fn(V) -> V) -> Result<V> {
        let ts = self.event_time("update")?;
        let mut newest = None;
        for w in self.windows_containing(ts) {
            let old = match self.store.fetch(key, w.start)? {
                Some(v) => v,
                None => self.default_value()?,
            };
            let new = f(old);
            self.store.put(key, w.start, Some(&new))?;
            newest = Some(new);
        }
        self.expire(ts)?;
        newest.ok_or_else(|| Error::Internal("a timestamp lies in no window".into()))
    }

    /// Sets `key` to `value` in every window containing the current record's event time.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600));
    /// let out = run(views, |t, k, v| {
    ///     t.set(k, &v.parse().unwrap())?;
    ///     Ok(format!("{:?}", t.get(k).current()?))
    /// }, &[("a", "42", 10_000)])?;
    /// assert_eq!(out, ["Some(42)"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn set(&self, key: &K, value: &V) -> Result<()> {
        let ts = self.event_time("set")?;
        for w in self.windows_containing(ts) {
            self.store.put(key, w.start, Some(value))?;
        }
        self.expire(ts)
    }

    /// Removes `key` from every window containing the current record's event time (each
    /// removal logs a tombstone).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600));
    /// let out = run(views, |t, k, v| {
    ///     if v == "del" { t.delete(k)?; } else { t.update(k, |n| n + 1)?; }
    ///     Ok(format!("{:?}", t.get(k).current()?))
    /// }, &[("a", "", 10_000), ("a", "del", 20_000)])?;
    /// assert_eq!(out, ["Some(1)", "None"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn delete(&self, key: &K) -> Result<()> {
        let ts = self.event_time("delete")?;
        for w in self.windows_containing(ts) {
            if self.store.fetch(key, w.start)?.is_some() {
                self.store.put(key, w.start, None)?;
            }
        }
        self.expire(ts)
    }

    /// The windows containing `ts`, oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// // 2-minute windows every minute: a record lands in two of them.
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .hopping(Duration::from_secs(120), Duration::from_secs(60), Duration::from_secs(3600));
    /// let out = run(views, |t, _, _| {
    ///     Ok(format!("{:?}", t.windows_containing(70_000).iter().map(|w| (w.start, w.end)).collect::<Vec<_>>()))
    /// }, &[("a", "", 0)])?;
    /// assert_eq!(out, ["[(0, 120000), (60000, 180000)]"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn windows_containing(&self, ts: i64) -> Vec<Window> {
        let newest = self.window_start(ts);
        let mut starts = Vec::new();
        let mut s = newest;
        while s > ts - self.size_ms {
            starts.push(s);
            s -= self.step_ms;
        }
        starts
            .into_iter()
            .rev()
            .map(|s| Window::new(s, s + self.size_ms))
            .collect()
    }

    /// Start of the newest window containing `ts`.
    fn window_start(&self, ts: i64) -> i64 {
        ts - ts.rem_euclid(self.step_ms)
    }

    /// The smallest window start that has not expired at the task's stream time.
    fn min_live_start(&self) -> i64 {
        let latest = self.clock.max_event_time();
        if latest == i64::MIN {
            return i64::MIN;
        }
        // A window [s, s + size) lives while s + size + expires > latest.
        latest
            .saturating_sub(self.size_ms)
            .saturating_sub(self.expires_ms)
            .saturating_add(1)
    }

    /// Removes expired windows, at most once per step of stream time (a scan of the store).
    fn expire(&self, ts: i64) -> Result<()> {
        let latest = self.clock.max_event_time().max(ts);
        let last = self.cleaned_at.get();
        if last != i64::MIN && latest < last.saturating_add(self.step_ms) {
            return Ok(());
        }
        self.cleaned_at.set(latest);
        self.store.remove_older_than(self.min_live_start())?;
        Ok(())
    }

    fn event_time(&self, op: &str) -> Result<i64> {
        match self.clock.event_time() {
            i64::MIN => Err(Error::IllegalState(format!(
                "windowed table {}: {op} needs the current record's event time; call it while processing a record",
                self.name
            ))),
            ts => Ok(ts),
        }
    }

    fn default_value(&self) -> Result<V> {
        self.default.as_ref().map(|d| d()).ok_or_else(|| {
            Error::IllegalState(format!(
                "table {} has no default value; declare one with FaustTable::with_default",
                self.name
            ))
        })
    }

    fn read_at(&self, key: &K, ts: i64) -> Result<Option<V>> {
        let start = self.window_start(ts);
        if start < self.min_live_start() {
            return Ok(None);
        }
        self.store.fetch(key, start)
    }
}

/// The windows of one key of a [`WindowedTable`], read at a chosen time. Every read returns
/// the value in the newest window containing that time, `None` if the key has no value
/// there or the window expired.
pub struct WindowSet<'a, K, V> {
    table: &'a WindowedTable<K, V>,
    key: K,
}

impl<K: Data, V: Data> WindowSet<'_, K, V> {
    /// The value in the window of the wall clock (Faust's `.now()`; the test driver's
    /// simulated clock under test).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600));
    /// // The test driver's wall clock is at 0, in minute 0.
    /// let out = run(views, |t, k, _| {
    ///     t.update(k, |n| n + 1)?;
    ///     Ok(format!("{:?} {:?}", t.get(k).now()?, t.get(k).current()?))
    /// }, &[("a", "", 70_000)])?;
    /// assert_eq!(out, ["None Some(1)"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn now(&self) -> Result<Option<V>> {
        self.at(self.table.clock.wall_clock())
    }

    /// The value in the window of the current record's event time (Faust's `.current()`).
    /// Outside record processing it is the last record's time; fails before any record.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600));
    /// let out = run(views, |t, k, _| { t.update(k, |n| n + 1)?; Ok(format!("{:?}", t.get(k).current()?)) },
    ///     &[("a", "", 10_000), ("a", "", 20_000), ("a", "", 70_000)])?;
    /// assert_eq!(out, ["Some(1)", "Some(2)", "Some(1)"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn current(&self) -> Result<Option<V>> {
        self.at(self.table.event_time("current")?)
    }

    /// The value in the window `d` before the current record's event time (Faust's
    /// `.delta(d)`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600));
    /// // This minute's count and the one before.
    /// let out = run(views, |t, k, _| {
    ///     t.update(k, |n| n + 1)?;
    ///     let page = t.get(k);
    ///     Ok(format!("{:?} {:?}", page.current()?, page.delta(Duration::from_secs(60))?))
    /// }, &[("a", "", 10_000), ("a", "", 20_000), ("a", "", 70_000)])?;
    /// assert_eq!(out[2], "Some(1) Some(2)");
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn delta(&self, d: Duration) -> Result<Option<V>> {
        self.at(self.table.event_time("delta")?.saturating_sub(millis(d)))
    }

    /// The value at the table's [`RelativeTo`] time (Faust's `.value()`): the current record's
    /// event time by default, the wall clock after
    /// [`relative_to_now`](WindowedFaustTable::relative_to_now).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600));
    /// // Relative to the stream (the default): the current record's window.
    /// let out = run(views, |t, k, _| { t.update(k, |n| n + 1)?; Ok(format!("{:?}", t.get(k).value()?)) },
    ///     &[("a", "", 10_000), ("a", "", 70_000)])?;
    /// assert_eq!(out, ["Some(1)", "Some(1)"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn value(&self) -> Result<Option<V>> {
        match self.table.relative_to {
            RelativeTo::Stream => self.current(),
            RelativeTo::Now => self.now(),
        }
    }

    /// The value in the window containing `timestamp` (ms).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, WindowedFaustTable, WindowedTable};
    /// # // Runs `op` on the table for each `(key, value, timestamp)` of `input`; returns its answers.
    /// # type Op = fn(&WindowedTable<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: WindowedFaustTable<String, i64>, t: Option<WindowedTable<String, i64>>, op: Op }
    /// # impl Processor<String, String> for P {
    /// #     type KOut = String;
    /// #     type VOut = String;
    /// #     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<()> {
    /// #         self.t = Some(self.def.open(ctx)?);
    /// #         Ok(())
    /// #     }
    /// #     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    /// #         let out = (self.op)(self.t.as_ref().unwrap(), &r.key, &r.value)?;
    /// #         ctx.forward(r.with_value(out))
    /// #     }
    /// # }
    /// # fn run(def: WindowedFaustTable<String, i64>, op: Op, input: &[(&str, &str, i64)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v, ts) in input { i.pipe_at(k.to_string(), v.to_string(), *ts)?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let views = FaustTable::new("views", Serdes::string(), Serdes::i64())
    ///     .with_default(|| 0)
    ///     .tumbling(Duration::from_secs(60), Duration::from_secs(3600));
    /// let out = run(views, |t, k, _| {
    ///     t.update(k, |n| n + 1)?;
    ///     let page = t.get(k);
    ///     Ok(format!("{:?} {:?} {:?}", page.at(5_000)?, page.at(65_000)?, page.at(125_000)?))
    /// }, &[("a", "", 10_000), ("a", "", 20_000), ("a", "", 70_000)])?;
    /// assert_eq!(out[2], "Some(2) Some(1) None");
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn at(&self, timestamp: i64) -> Result<Option<V>> {
        self.table.read_at(&self.key, timestamp)
    }
}
