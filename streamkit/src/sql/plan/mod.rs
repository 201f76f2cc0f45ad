//! Planning a `SELECT` into DSL operators: source → WHERE (`filter`) → GROUP BY
//! (`map` + `group_by_key` or the table `group_by`) → WINDOW (`windowed_by*`) → aggregate
//! (adder, and a subtractor for tables) → EMIT FINAL (`suppress`) → HAVING (`filter`) →
//! projection (`map_values_with_key`) → sink.

use std::sync::Arc;
use std::time::Duration;

use sqlparser::ast;

use super::SqlError;
use super::engine::SourceInfo;
use super::expr::{
    AggCall, AggContext, AggFunc, Compiler, Expr, ScopeCol, err, has_aggregate, pos,
};
use super::format::{Column, Format, KeySerde, RowSerde, StateSerde};
use super::parse::{Emit, Kind, Pos, Query, WindowSpec, ident_name};
use super::value::{Row, SqlType, Value};
use crate::error_policy::DeserializationHandler;
use crate::serde::Serdes;
use crate::stream::{Consumed, Grouped, KStream, Materialized, Produced, StreamsBuilder};
use crate::table::{KTable, Suppressed};
use crate::window::{SessionWindows, TimeWindows, Windowed, WindowedSerde};

mod aggregate;
mod select;

use aggregate::plan_aggregate;
use select::{Item, SelectParts, columns, eval_or_null, make_key, relation_name, test_or_false};
pub(crate) use select::{compile_where, projection, scope_row, select_parts};

/// ksqlDB's default grace period when a window names none.
const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

/// A query's id, which prefixes its stores and internal topics, and where its stores live.
#[derive(Clone, Copy)]
pub(crate) struct Qid<'a> {
    /// The query id.
    pub id: &'a str,
    /// In-memory stores (offline planning for the test driver) instead of RocksDB.
    pub memory: bool,
    /// Sources already read in this topology, by name, when several queries share one
    /// topology (offline planning): a topic can have one source node only.
    pub shared: Option<&'a SharedSources>,
}

/// See [`Qid::shared`].
pub(crate) type SharedSources = std::cell::RefCell<std::collections::BTreeMap<String, Handle>>;

impl std::fmt::Display for Qid<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id)
    }
}

impl Qid<'_> {
    /// A store named `name`, in memory when planning offline.
    pub fn mat<K: crate::processor::Data, V: crate::processor::Data>(
        &self,
        name: String,
    ) -> Materialized<K, V> {
        let m = Materialized::named(name);
        if self.memory { m.in_memory() } else { m }
    }
}

/// How a windowed key is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Tumbling or hopping windows of this size (ms).
    Time(i64),
    /// Session windows.
    Session,
}

/// A relation while planning: its DSL handle and columns.
#[derive(Clone)]
pub(crate) enum Handle {
    Stream(KStream<Value, Row>),
    Table(KTable<Value, Row>),
}

/// The planned query's output, ready for a sink.
pub(crate) struct Planned {
    /// Stream or table.
    pub kind: Kind,
    /// Key columns.
    pub key: Vec<Column>,
    /// Value columns.
    pub value: Vec<Column>,
    /// Windowed key, for windowed aggregations.
    pub window: Option<WindowKind>,
    /// The store holding the result, for pull queries (tables only).
    pub store: Option<String>,
    /// LIMIT of a transient query.
    pub limit: Option<usize>,
    out: Out,
}

enum Out {
    Stream(KStream<Value, Row>),
    Table(KTable<Value, Row>),
    Windowed(KTable<Windowed<Value>, Row>),
}

/// A row delivered to a transient query: key, window, value (`None` = deleted).
pub(crate) type RowSink = Arc<dyn Fn(Value, Option<(i64, i64)>, Option<Row>) + Send + Sync>;

impl Planned {
    /// Writes the output to `sink`'s topic in its formats.
    pub fn to_topic(&self, sink: &SourceInfo) {
        let topic = sink.topic.as_str();
        let registry = sink.registry.as_ref();
        let key = KeySerde::new(sink.key_format, self.key.clone()).registry(registry);
        let value = RowSerde::new(sink.value_format, self.value.clone()).registry(registry);
        match &self.out {
            Out::Stream(s) => s.to(topic, Produced::with(key, value)),
            Out::Table(t) => t
                .to_change_stream()
                .to(topic, Produced::with(key, Serdes::option(value))),
            Out::Windowed(t) => {
                let wkey = match self.window {
                    Some(WindowKind::Time(size)) => WindowedSerde::time(key, size),
                    _ => WindowedSerde::session(key),
                };
                t.to_change_stream()
                    .to(topic, Produced::with(wkey, Serdes::option(value)));
            }
        }
    }

    /// Hands every output row to `sink`.
    pub fn to_fn(&self, sink: RowSink) {
        match &self.out {
            Out::Stream(s) => s.foreach(move |k, v| sink(k.clone(), None, Some(v.clone()))),
            Out::Table(t) => t
                .to_change_stream()
                .foreach(move |k, v| sink(k.clone(), None, v.clone())),
            Out::Windowed(t) => t.to_change_stream().foreach(move |k, v| {
                sink(
                    k.key.clone(),
                    Some((k.window.start, k.window.end)),
                    v.clone(),
                )
            }),
        }
    }
}

/// Loads a declared stream or table as a relation.
pub(crate) fn load(
    b: &StreamsBuilder,
    src: &SourceInfo,
    qid: Qid<'_>,
) -> Result<(Handle, Vec<ScopeCol>), SqlError> {
    if src.window.is_some() {
        return Err(SqlError::new(format!(
            "{} is windowed; reading windowed sources is not supported yet",
            src.name
        )));
    }
    let key_serde = if src.key_hint.is_some() {
        KeySerde::message_key()
    } else {
        KeySerde::new(
            src.key_format,
            if src.key_in_value.is_some() {
                vec![]
            } else {
                src.key.clone()
            },
        )
        .registry(src.registry.as_ref())
    };
    let read_serde =
        RowSerde::new(src.value_format, src.read_columns()).registry(src.registry.as_ref());
    let ts = src.timestamp;
    let mut consumed = Consumed::with(key_serde, read_serde)
        .on_deserialization_error(DeserializationHandler::LogAndContinue);
    if let Some(idx) = ts {
        consumed = consumed.with_timestamp_extractor(move |_k, v: &Row, ts| match v.get(idx) {
            Some(Value::BigInt(t)) => *t,
            Some(Value::Int(t)) => i64::from(*t),
            _ => ts,
        });
    }
    let mut scope: Vec<ScopeCol> = src
        .key
        .iter()
        .chain(&src.value)
        .map(|c| ScopeCol {
            qualifier: vec![src.name.clone()],
            name: c.name.clone(),
            ty: c.ty.clone(),
        })
        .collect();
    scope.shrink_to_fit();
    if let Some(h) = qid.shared.and_then(|c| c.borrow().get(&src.name).cloned()) {
        return Ok((h, scope));
    }
    let handle = match (src.kind, src.key_in_value) {
        (Kind::Stream, None) => Handle::Stream(b.stream(&src.topic, consumed)),
        (Kind::Stream, Some(k)) => {
            Handle::Stream(b.stream(&src.topic, consumed).map(move |_, mut row: Row| {
                let key = row.remove(k);
                (key, row)
            }))
        }
        // A table's legacy `KEY='col'` leaves no key in the value (see `SourceInfo::key_hint`).
        (Kind::Table, _) => Handle::Table(b.table(
            &src.topic,
            consumed,
            qid.mat(format!("{qid}-KsqlTopic-Reduce")),
        )),
    };
    if let Some(c) = qid.shared {
        c.borrow_mut().insert(src.name.clone(), handle.clone());
    }
    Ok((handle, scope))
}

/// Plans `query` over the sources in `lookup` into `b`; `qid` prefixes every store and
/// internal topic so several queries can share one builder.
pub(crate) fn plan(
    b: &StreamsBuilder,
    lookup: &dyn Fn(&str) -> Option<SourceInfo>,
    query: &Query,
    qid: Qid<'_>,
) -> Result<Planned, SqlError> {
    let parts = select_parts(query)?;
    let (name, alias) = relation_name(&parts.from.relation)?;
    let src =
        lookup(&name).ok_or_else(|| err(&parts.from.relation, format!("{name} does not exist")))?;
    let (mut handle, mut scope) = load(b, &src, qid)?;
    if let Some(a) = &alias {
        for c in &mut scope {
            c.qualifier.push(a.clone());
        }
    }
    if let Some((_, p)) = query.within
        && parts.from.joins.is_empty()
    {
        return Err(SqlError::at(p, "WITHIN needs a JOIN"));
    }
    let mut nkeys = src.key.len();
    let mut key_cols = src.key.clone();
    let mut key_positions: Vec<usize> = (0..nkeys).collect();
    if !parts.from.joins.is_empty() {
        let joined = super::join::plan_joins(
            b,
            lookup,
            query,
            &parts.from.joins,
            qid,
            handle,
            scope,
            &src,
        )?;
        handle = joined.0;
        scope = joined.1;
        key_cols = joined.2;
        key_positions = joined.3;
        // The joined row holds every column as a value; the join key is the record key.
        nkeys = 0;
    }
    let select = parts.select;
    let where_ = compile_where(select, &scope)?;
    let aggregating = !parts.group_by.is_empty()
        || select.projection.iter().any(|i| match i {
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                has_aggregate(e)
            }
            _ => false,
        });
    if let Some((_, p)) = query.window
        && !aggregating
    {
        return Err(SqlError::at(p, "WINDOW needs a GROUP BY"));
    }
    if let Some(p) = &query.partition_by {
        if aggregating {
            return Err(err(
                p.as_ref(),
                "PARTITION BY cannot be combined with GROUP BY",
            ));
        }
        if matches!(handle, Handle::Table(_)) {
            return Err(err(p.as_ref(), "PARTITION BY needs a STREAM source"));
        }
    }
    if aggregating {
        return plan_aggregate(query, &parts, handle, scope, nkeys, where_, qid);
    }
    if query.emit == Some(Emit::Final) {
        return Err(SqlError::new("EMIT FINAL needs a windowed aggregation"));
    }
    if let Some(h) = &select.having {
        return Err(err(h, "HAVING needs a GROUP BY"));
    }
    let items = projection(
        &select.projection,
        &mut Compiler {
            scope: &scope,
            agg: None,
        },
        &scope,
    )?;
    if let (Some(p), Handle::Stream(s)) = (&query.partition_by, &handle) {
        return partition_by(s, p, items, &scope, nkeys, where_, parts.limit);
    }
    // Items selecting a key column as it is become the key (under their names); the rest
    // is the value. A key not selected stays the key, under its own name.
    let mut taken: Vec<usize> = Vec::new();
    let is_key: Vec<bool> = items
        .iter()
        .map(|i| match i.expr {
            Expr::Col(c) if key_positions.contains(&c) && !taken.contains(&c) => {
                taken.push(c);
                true
            }
            _ => false,
        })
        .collect();
    let all_keys = taken.len() == key_cols.len();
    let (key_items, value_items): (Vec<Item>, Vec<Item>) = if all_keys {
        let (k, v): (Vec<_>, Vec<_>) = items.into_iter().zip(is_key).partition(|(_, k)| *k);
        (
            k.into_iter().map(|(i, _)| i).collect(),
            v.into_iter().map(|(i, _)| i).collect(),
        )
    } else {
        (Vec::new(), items)
    };
    let key = if key_items.is_empty() {
        key_cols.clone()
    } else {
        columns(&key_items)
    };
    let value: Vec<Column> = columns(&value_items);
    let exprs: Arc<Vec<Expr>> = Arc::new(value_items.into_iter().map(|i| i.expr).collect());
    let where_ = where_.map(Arc::new);
    let project = move |k: &Value, row: &Row| -> Row {
        let s = scope_row(nkeys, k, row);
        exprs
            .iter()
            .map(|e| eval_or_null(e, &s, "projection"))
            .collect()
    };
    let keep = move |k: &Value, row: &Row| -> bool {
        where_
            .as_ref()
            .is_none_or(|w| test_or_false(w, &scope_row(nkeys, k, row)))
    };
    let (kind, out, store) = match handle {
        Handle::Stream(s) => (
            Kind::Stream,
            Out::Stream(
                s.filter(keep)
                    .map_values_with_key(move |k, v| project(k, &v)),
            ),
            None,
        ),
        Handle::Table(t) => {
            let store = format!("{qid}-Project-Materialize");
            let t = t
                .filter(keep)
                .map_values_with_key(move |k, v| project(k, v))
                .materialize(
                    qid.mat(store.clone())
                        .key_serde(KeySerde::new(Format::Json, key.clone()))
                        .value_serde(RowSerde::new(Format::Json, value.clone())),
                );
            (Kind::Table, Out::Table(t), Some(store))
        }
    };
    Ok(Planned {
        kind,
        key,
        value,
        window: None,
        store,
        limit: parts.limit,
        out,
    })
}

/// `PARTITION BY expr`: the expression's value becomes the key (repartitioned downstream
/// by whoever groups or joins); a projection item selecting it is the key column.
fn partition_by(
    s: &KStream<Value, Row>,
    p: &ast::Expr,
    items: Vec<Item>,
    scope: &[ScopeCol],
    nkeys: usize,
    where_: Option<Expr>,
    limit: Option<usize>,
) -> Result<Planned, SqlError> {
    let (pexpr, pty) = Compiler { scope, agg: None }.compile(p)?;
    let text = p.to_string().to_uppercase();
    let key_name = items
        .iter()
        .find(|i| i.text == text)
        .map(|i| i.name.clone())
        .unwrap_or_else(|| match p {
            ast::Expr::Identifier(i) => ident_name(i),
            ast::Expr::CompoundIdentifier(parts) => ident_name(parts.last().expect("a name")),
            _ => "KSQL_COL_0".into(),
        });
    let key = vec![Column {
        name: key_name,
        ty: pty.unwrap_or(SqlType::String),
    }];
    let value_items: Vec<Item> = items.into_iter().filter(|i| i.text != text).collect();
    let value: Vec<Column> = columns(&value_items);
    let exprs: Arc<Vec<Expr>> = Arc::new(value_items.into_iter().map(|i| i.expr).collect());
    let out = s
        .filter(move |k, row| {
            where_
                .as_ref()
                .is_none_or(|w| test_or_false(w, &scope_row(nkeys, k, row)))
        })
        .map(move |k, row| {
            let sr = scope_row(nkeys, &k, &row);
            let key = eval_or_null(&pexpr, &sr, "PARTITION BY");
            let v = exprs
                .iter()
                .map(|e| eval_or_null(e, &sr, "projection"))
                .collect();
            (key, v)
        });
    Ok(Planned {
        kind: Kind::Stream,
        key,
        value,
        window: None,
        store: None,
        limit,
        out: Out::Stream(out),
    })
}
