//! Faust-style tables: a dict-like, changelog-backed [`Table`] handle that processors and
//! agents read and write directly, declared with [`FaustTable`].
//!
//! A Faust table is an ordinary key-value store of the task (RocksDB by default) with a
//! changelog topic `<application-id>-<table>-changelog`: every `set`/`update` is logged, every
//! `delete` logs a tombstone, and the table is restored from the changelog when its task
//! restarts or moves. Like in Faust, a table is partitioned like the stream that writes it:
//! each task owns the rows whose key maps to its partition, so write a table under the
//! stream's own key (re-key first with [`KStream::select_key`](crate::stream::KStream::select_key)
//! or [`KStream::repartition`](crate::stream::KStream::repartition), as Faust's `group_by`
//! does). Tables are registered for interactive queries like every store, so the query
//! server answers `GET /stores/<table>/<key>`.
//!
//! | Faust (Python)                        | streamkit                                  |
//! |---------------------------------------|--------------------------------------------|
//! | `app.Table('totals', default=int)`    | `FaustTable::new("totals", ks, vs).with_default(\|\| 0)` + `add_state_store` |
//! | `table[k]`                            | [`Table::get_or_default`]                  |
//! | `table.get(k)`, `k in table`          | [`Table::get`], [`Table::contains`]        |
//! | `table[k] = v`                        | [`Table::set`]                             |
//! | `table[k] += 1`                       | [`Table::update`]                          |
//! | `del table[k]`                        | [`Table::delete`] (a tombstone in the changelog) |
//! | `table.items()`                       | [`Table::items`]                           |
//! | `.tumbling(size, expires=…)`          | [`FaustTable::tumbling`] → [`WindowedTable`](super::WindowedTable) |

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::processor::{Data, KeyValueStore, ProcessorContext, StoreBuilder};
use crate::serde::{Serde, SerdeRef};
use crate::state::StoreBackend;
use crate::state::spec::StoreKind;
use crate::state::store::SharedStore;
use crate::table::faust_windowed::WindowedFaustTable;

/// Builds a table's default value (Faust's `default=`).
pub(crate) type DefaultFn<V> = Arc<dyn Fn() -> V + Send + Sync>;

/// The declaration of a Faust-style table: its name, serdes and default value. Register its
/// store with [`StreamsBuilder::add_state_store`](crate::stream::StreamsBuilder::add_state_store)
/// (`builder.add_state_store(table.store())`), connect the processors that use it by
/// [`name`](Self::name), and open a [`Table`] handle in their `init`.
///
/// Cheap to clone and `Send + Sync`, so processor suppliers and agents can capture it.
///
/// # Examples
///
/// ```
/// use streamkit::prelude::*;
/// use streamkit::table::{FaustTable, Table};
///
/// /// Counts events per key into a table (Faust: `counts[event.key] += 1`).
/// struct Count { def: FaustTable<String, i64>, table: Option<Table<String, i64>> }
///
/// impl Processor<String, String> for Count {
///     type KOut = String;
///     type VOut = i64;
///     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<()> {
///         self.table = Some(self.def.open(ctx)?);
///         Ok(())
///     }
///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, i64>, r: Record<String, String>) -> Result<()> {
///         let table = self.table.as_ref().unwrap();
///         if r.value == "reset" {
///             table.delete(&r.key)?;
///             return Ok(());
///         }
///         let n = table.update(&r.key, |n| n + 1)?;
///         ctx.forward(r.with_value(n))
///     }
/// }
///
/// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
/// let b = StreamsBuilder::new();
/// b.add_state_store(counts.store());
/// let def = counts.clone();
/// b.stream("clicks", Consumed::with(Serdes::string(), Serdes::string()))
///     .process_with_stores(move || Count { def: def.clone(), table: None }, &[counts.name()])
///     .to("click-counts", Produced::with(Serdes::string(), Serdes::i64()));
///
/// let driver = TopologyTestDriver::new(b.build()?)?;
/// let clicks = driver.input_topic("clicks", Serdes::string(), Serdes::string());
/// clicks.pipe_all([("a".into(), "x".into()), ("a".into(), "y".into()), ("b".into(), "z".into())])?;
/// clicks.pipe("a".into(), "reset".into())?;
/// assert_eq!(driver.key_value_store::<String, i64>("counts")?.get(&"b".into())?, Some(1));
/// assert_eq!(driver.key_value_store::<String, i64>("counts")?.get(&"a".into())?, None);
/// // The changelog holds every write, and a tombstone for the delete.
/// let changelog = driver.output_topic("test-app-counts-changelog", Serdes::string(), Serdes::option(Serdes::i64()));
/// assert_eq!(changelog.read_values(), vec![Some(1), Some(2), Some(1), None]);
/// # Ok::<(), streamkit::Error>(())
/// ```
pub struct FaustTable<K, V> {
    pub(crate) name: String,
    pub(crate) key: SerdeRef<K>,
    pub(crate) value: SerdeRef<V>,
    pub(crate) default: Option<DefaultFn<V>>,
    pub(crate) backend: StoreBackend,
}

impl<K, V> Clone for FaustTable<K, V> {
    fn clone(&self) -> Self {
        FaustTable {
            name: self.name.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
            default: self.default.clone(),
            backend: self.backend,
        }
    }
}

impl<K: Data, V: Data> FaustTable<K, V> {
    /// A table called `name` (its store's name; the changelog is
    /// `<application-id>-<name>-changelog`), with no default value and a RocksDB store.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64());
    /// assert_eq!(counts.name(), "counts");
    /// let out = run(counts, |t, k, v| { t.set(k, &v.parse().unwrap())?; Ok(format!("{:?}", t.get(k)?)) }, &[("a", "4")])?;
    /// assert_eq!(out, ["Some(4)"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn new(name: &str, key: impl Serde<K>, value: impl Serde<V>) -> Self {
        FaustTable {
            name: name.to_string(),
            key: Arc::new(key),
            value: Arc::new(value),
            default: None,
            backend: StoreBackend::RocksDb,
        }
    }

    /// The value a missing key reads as in [`Table::get_or_default`] and starts from in
    /// [`Table::update`] (Faust's `default=int` is `with_default(|| 0)`). Default = none:
    /// those calls fail for a missing key.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 10);
    /// let out = run(counts, |t, k, _| Ok(t.update(k, |n| n + 1)?.to_string()), &[("a", "")])?;
    /// assert_eq!(out, ["11"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn with_default(mut self, default: impl Fn() -> V + Send + Sync + 'static) -> Self {
        self.default = Some(Arc::new(default));
        self
    }

    /// Keep the table in memory (rebuilt from its changelog on restart). Default = RocksDB.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0).in_memory();
    /// let out = run(counts, |t, k, _| Ok(t.update(k, |n| n + 1)?.to_string()), &[("a", ""), ("a", "")])?;
    /// assert_eq!(out, ["1", "2"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn in_memory(mut self) -> Self {
        self.backend = StoreBackend::InMemory;
        self
    }

    /// The table's name, which is its store's name.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64());
    /// assert_eq!(counts.name(), "counts"); // the store's name, for process_with_stores
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The logged key-value store holding the table, for
    /// [`StreamsBuilder::add_state_store`](crate::stream::StreamsBuilder::add_state_store).
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
    /// let b = StreamsBuilder::new();
    /// b.add_state_store(counts.store());
    /// let def = counts.clone();
    /// b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .process_with_stores(move || P { def: def.clone(), t: None, op: |t, k, _| Ok(t.update(k, |n| n + 1)?.to_string()) }, &[counts.name()]);
    /// let d = TopologyTestDriver::new(b.build()?)?;
    /// d.input_topic("in", Serdes::string(), Serdes::string()).pipe("a".into(), "".into())?;
    /// // A logged store: the write reached the changelog.
    /// let changelog = d.output_topic("test-app-counts-changelog", Serdes::string(), Serdes::i64());
    /// assert_eq!(changelog.read_key_values(), vec![("a".to_string(), 1)]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn store(&self) -> StoreBuilder {
        let b = StoreBuilder::from_refs(
            &self.name,
            StoreKind::KeyValue,
            self.key.clone(),
            self.value.clone(),
        );
        match self.backend {
            StoreBackend::InMemory => b.in_memory(),
            StoreBackend::RocksDb => b,
        }
    }

    /// A windowed table of non-overlapping windows of `size`, each kept until `expires` after
    /// it ends (Faust's `.tumbling(size, expires=…)`).
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
    ///     Ok(format!("{:?}", t.windows_containing(70_000).iter().map(|w| (w.start, w.end)).collect::<Vec<_>>()))
    /// }, &[("a", "", 0)])?;
    /// assert_eq!(out, ["[(60000, 120000)]"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn tumbling(self, size: Duration, expires: Duration) -> WindowedFaustTable<K, V> {
        WindowedFaustTable::new(self, size, size, expires)
    }

    /// A windowed table of windows of `size` starting every `step` (`0 < step <= size`), each
    /// kept until `expires` after it ends (Faust's `.hopping(size, step, expires=…)`).
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
    /// let out = run(views, |t, k, _| Ok(t.update(k, |n| n + 1)?.to_string()), &[("a", "", 70_000), ("a", "", 100_000)])?;
    /// // Both records fall in [0 s, 120 s) and [60 s, 180 s); the newest of those holds 2.
    /// assert_eq!(out, ["1", "2"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn hopping(
        self,
        size: Duration,
        step: Duration,
        expires: Duration,
    ) -> WindowedFaustTable<K, V> {
        WindowedFaustTable::new(self, size, step, expires)
    }

    /// A handle on this task's part of the table, for a processor connected to the table's
    /// store (open it in `init`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
    /// // `run` opens the table in its processor's `init` with `self.def.open(ctx)?`.
    /// let out = run(counts, |t, k, _| Ok(t.update(k, |n| n + 10)?.to_string()), &[("a", "")])?;
    /// assert_eq!(out, ["10"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn open<K2, V2>(&self, ctx: &mut ProcessorContext<'_, K2, V2>) -> Result<Table<K, V>> {
        Ok(Table {
            store: ctx.key_value_store(&self.name)?,
            default: self.default.clone(),
        })
    }

    /// A handle on an already opened store (agents); `read_only` for a global table's store.
    pub(crate) fn open_shared(&self, store: SharedStore, read_only: bool) -> Result<Table<K, V>> {
        let store = KeyValueStore::open(store)?;
        Ok(Table {
            store: if read_only { store.read_only() } else { store },
            default: self.default.clone(),
        })
    }
}

/// A task's part of a Faust-style table, used like a map. Opened with [`FaustTable::open`];
/// see there for an example. Writes go to the store and its changelog.
pub struct Table<K, V> {
    store: KeyValueStore<K, V>,
    default: Option<DefaultFn<V>>,
}

impl<K: Data, V: Data> Table<K, V> {
    /// The value of `key`, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
    /// let out = run(counts, |t, k, _| {
    ///     let before = t.get(k)?;
    ///     t.set(k, &7)?;
    ///     Ok(format!("{before:?} -> {:?}", t.get(k)?))
    /// }, &[("a", "")])?;
    /// assert_eq!(out, ["None -> Some(7)"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        self.store.get(key)
    }

    /// Whether `key` is set.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
    /// // Answers whether the key was seen before, then marks it.
    /// let out = run(counts, |t, k, _| {
    ///     let seen = t.contains(k)?;
    ///     t.set(k, &1)?;
    ///     Ok(seen.to_string())
    /// }, &[("a", ""), ("b", ""), ("a", "")])?;
    /// assert_eq!(out, ["false", "false", "true"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn contains(&self, key: &K) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// The value of `key`, or the table's default if it is not set (nothing is written).
    /// Fails for a missing key when the table has no default.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
    /// let out = run(counts, |t, k, v| {
    ///     if !v.is_empty() { t.set(k, &v.parse().unwrap())?; }
    ///     Ok(t.get_or_default(k)?.to_string())
    /// }, &[("a", ""), ("a", "5")])?;
    /// assert_eq!(out, ["0", "5"]);
    /// // Without a default, a missing key is an error.
    /// let strict = FaustTable::new("strict", Serdes::string(), Serdes::i64());
    /// assert!(run(strict, |t, k, _| Ok(t.get_or_default(k)?.to_string()), &[("a", "")]).is_err());
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn get_or_default(&self, key: &K) -> Result<V> {
        match self.get(key)? {
            Some(v) => Ok(v),
            None => self.default_value(),
        }
    }

    /// Sets `key` to `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
    /// let out = run(counts, |t, k, v| {
    ///     t.set(k, &(v.len() as i64))?;
    ///     Ok(t.get(k)?.unwrap().to_string())
    /// }, &[("a", "xyz"), ("a", "x")])?;
    /// assert_eq!(out, ["3", "1"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn set(&self, key: &K, value: &V) -> Result<()> {
        self.store.put(key, value)
    }

    /// Sets `key` to `value`, returning the value it replaces.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
    /// let out = run(counts, |t, k, v| {
    ///     let old = t.insert(k, &v.parse().unwrap())?;
    ///     Ok(format!("{old:?}"))
    /// }, &[("a", "1"), ("a", "2")])?;
    /// assert_eq!(out, ["None", "Some(1)"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn insert(&self, key: &K, value: &V) -> Result<Option<V>> {
        let old = self.get(key)?;
        self.set(key, value)?;
        Ok(old)
    }

    /// Replaces the value of `key` by `f(value)`, starting from the table's default when the
    /// key is not set (Faust's `table[k] += 1`), and returns the new value. Fails for a
    /// missing key when the table has no default.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
    /// // Faust: `counts[k] += 1`.
    /// let out = run(counts, |t, k, _| Ok(t.update(k, |n| n + 1)?.to_string()), &[("a", ""), ("a", ""), ("b", "")])?;
    /// assert_eq!(out, ["1", "2", "1"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn update(&self, key: &K, f: impl FnOnce(V) -> V) -> Result<V> {
        let v = f(self.get_or_default(key)?);
        self.set(key, &v)?;
        Ok(v)
    }

    /// Like [`update`](Self::update), starting from `default` when the key is not set.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// // No table default: each call gives its own.
    /// let totals = FaustTable::new("totals", Serdes::string(), Serdes::i64());
    /// let out = run(totals, |t, k, _| Ok(t.update_or(k, 100, |n| n + 1)?.to_string()), &[("a", ""), ("a", "")])?;
    /// assert_eq!(out, ["101", "102"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn update_or(&self, key: &K, default: V, f: impl FnOnce(V) -> V) -> Result<V> {
        let v = f(self.get(key)?.unwrap_or(default));
        self.set(key, &v)?;
        Ok(v)
    }

    /// Removes `key`, returning its value: the changelog gets a tombstone.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
    /// let out = run(counts, |t, k, v| {
    ///     if v == "del" { return Ok(format!("{:?}", t.delete(k)?)); }
    ///     Ok(t.update(k, |n| n + 1)?.to_string())
    /// }, &[("a", ""), ("a", "del"), ("a", "del")])?;
    /// assert_eq!(out, ["1", "Some(1)", "None"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn delete(&self, key: &K) -> Result<Option<V>> {
        let old = self.get(key)?;
        if old.is_some() {
            self.store.delete(key)?;
        }
        Ok(old)
    }

    /// Every `(key, value)` of this task's part, in key-byte order.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
    /// let out = run(counts, |t, k, _| {
    ///     t.update(k, |n| n + 1)?;
    ///     Ok(format!("{:?}", t.items()?))
    /// }, &[("b", ""), ("a", "")])?;
    /// assert_eq!(out[1], r#"[("a", 1), ("b", 1)]"#);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        self.store.all()
    }

    /// Every key of this task's part, in key-byte order.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
    /// let out = run(counts, |t, k, _| {
    ///     t.set(k, &1)?;
    ///     Ok(t.keys()?.join(","))
    /// }, &[("b", ""), ("a", "")])?;
    /// assert_eq!(out, ["b", "a,b"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn keys(&self) -> Result<Vec<K>> {
        Ok(self.items()?.into_iter().map(|(k, _)| k).collect())
    }

    /// Every value of this task's part, in key-byte order of their keys.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
    /// let out = run(counts, |t, k, v| {
    ///     t.set(k, &v.parse().unwrap())?;
    ///     Ok(format!("{:?}", t.values()?))
    /// }, &[("b", "2"), ("a", "1")])?;
    /// assert_eq!(out, ["[2]", "[1, 2]"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn values(&self) -> Result<Vec<V>> {
        Ok(self.items()?.into_iter().map(|(_, v)| v).collect())
    }

    /// Entries with keys from `from` to `to` (both inclusive), in key-byte order.
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0);
    /// let out = run(counts, |t, k, _| {
    ///     t.set(k, &1)?;
    ///     Ok(format!("{:?}", t.range(&"b".to_string(), &"c".to_string())?))
    /// }, &[("a", ""), ("b", ""), ("c", ""), ("d", "")])?;
    /// assert_eq!(out[3], r#"[("b", 1), ("c", 1)]"#);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        self.store.range(from, to)
    }

    /// Number of entries (exact in memory, estimated for RocksDB).
    ///
    /// # Examples
    ///
    /// ```
    /// # use streamkit::prelude::*;
    /// # use streamkit::table::{FaustTable, Table};
    /// # // Runs `op` on the table for each record of `input` and returns what it answered.
    /// # type Op = fn(&Table<String, i64>, &String, &String) -> Result<String>;
    /// # struct P { def: FaustTable<String, i64>, t: Option<Table<String, i64>>, op: Op }
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
    /// # fn run(def: FaustTable<String, i64>, op: Op, input: &[(&str, &str)]) -> Result<Vec<String>> {
    /// #     let b = StreamsBuilder::new();
    /// #     b.add_state_store(def.store());
    /// #     let name = def.name().to_string();
    /// #     b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
    /// #         .process_with_stores(move || P { def: def.clone(), t: None, op }, &[&name])
    /// #         .to("out", Produced::with(Serdes::string(), Serdes::string()));
    /// #     let d = TopologyTestDriver::new(b.build()?)?;
    /// #     let i = d.input_topic("in", Serdes::string(), Serdes::string());
    /// #     for (k, v) in input { i.pipe(k.to_string(), v.to_string())?; }
    /// #     Ok(d.output_topic("out", Serdes::string(), Serdes::string()).read_values())
    /// # }
    /// let counts = FaustTable::new("counts", Serdes::string(), Serdes::i64()).with_default(|| 0).in_memory();
    /// let out = run(counts, |t, k, _| {
    ///     t.update(k, |n| n + 1)?;
    ///     Ok(t.approximate_len().to_string()) // exact in memory
    /// }, &[("a", ""), ("b", ""), ("a", "")])?;
    /// assert_eq!(out, ["1", "2", "2"]);
    /// # Ok::<(), streamkit::Error>(())
    /// ```
    pub fn approximate_len(&self) -> u64 {
        self.store.approximate_num_entries()
    }

    fn default_value(&self) -> Result<V> {
        self.default.as_ref().map(|d| d()).ok_or_else(|| {
            Error::IllegalState(format!(
                "table {} has no default value; declare one with FaustTable::with_default",
                self.store.store_name()
            ))
        })
    }
}
