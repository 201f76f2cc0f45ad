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
use crate::runtime::DeserializationHandler;
use crate::serde::Serdes;
use crate::stream::{Consumed, Grouped, KStream, Materialized, Produced, StreamsBuilder};
use crate::table::{KTable, Suppressed};
use crate::window::{SessionWindows, TimeWindows, Windowed, WindowedSerde};

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

/// Builds the row expressions see: key columns, then value columns.
pub(crate) fn scope_row(nkeys: usize, key: &Value, row: &Row) -> Row {
    let mut out = Vec::with_capacity(nkeys + row.len());
    match (nkeys, key) {
        (0, _) => {}
        (1, k) => out.push(k.clone()),
        (_, Value::Struct(fields)) => out.extend(fields.iter().map(|(_, v)| v.clone())),
        (n, _) => out.extend(std::iter::repeat_n(Value::Null, n)),
    }
    out.extend(row.iter().cloned());
    out
}

fn make_key(names: &[String], values: Vec<Value>) -> Value {
    if values.len() == 1 {
        values.into_iter().next().unwrap_or(Value::Null)
    } else {
        Value::Struct(names.iter().cloned().zip(values).collect())
    }
}

fn eval_or_null(e: &Expr, row: &[Value], what: &str) -> Value {
    e.eval(row).unwrap_or_else(|msg| {
        tracing::warn!("sql: {what}: {msg}; using NULL");
        Value::Null
    })
}

fn test_or_false(e: &Expr, row: &[Value]) -> bool {
    e.test(row).unwrap_or_else(|msg| {
        tracing::warn!("sql: condition: {msg}; dropping the row");
        false
    })
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

/// The parts of a `SELECT` the planner reads.
pub(crate) struct SelectParts<'a> {
    pub select: &'a ast::Select,
    pub from: &'a ast::TableWithJoins,
    pub group_by: Vec<&'a ast::Expr>,
    pub limit: Option<usize>,
}

pub(crate) fn select_parts(q: &Query) -> Result<SelectParts<'_>, SqlError> {
    let select = match q.select.body.as_ref() {
        ast::SetExpr::Select(s) => s.as_ref(),
        other => return Err(err(other, "expected a plain SELECT")),
    };
    if select.distinct.is_some() {
        return Err(err(select, "DISTINCT is not supported"));
    }
    let from = match select.from.as_slice() {
        [f] => f,
        [] => return Err(err(select, "SELECT needs a FROM")),
        [_, second, ..] => return Err(err(second, "one FROM source (use JOIN for more)")),
    };
    let group_by = match &select.group_by {
        ast::GroupByExpr::Expressions(e, _) => e.iter().collect(),
        ast::GroupByExpr::All(_) => return Err(err(select, "GROUP BY ALL is not supported")),
    };
    let limit = match &q.select.limit_clause {
        Some(ast::LimitClause::LimitOffset { limit: Some(l), .. }) => match l {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) => Some(
                    n.to_string()
                        .parse()
                        .map_err(|_| err(l, "LIMIT needs a whole number"))?,
                ),
                _ => return Err(err(l, "LIMIT needs a whole number")),
            },
            _ => return Err(err(l, "LIMIT needs a whole number")),
        },
        _ => None,
    };
    if q.select.order_by.is_some() {
        return Err(SqlError::at(
            pos(select),
            "ORDER BY is not supported on streams",
        ));
    }
    Ok(SelectParts {
        select,
        from,
        group_by,
        limit,
    })
}

/// Names of a relation (the source name and its alias).
fn relation_name(f: &ast::TableFactor) -> Result<(String, Option<String>), SqlError> {
    match f {
        ast::TableFactor::Table { name, alias, .. } => Ok((
            super::parse::object_name(name)?,
            alias.as_ref().map(|a| ident_name(&a.name)),
        )),
        other => Err(err(other, "expected a stream or table name")),
    }
}

/// A projection item compiled: output name and expression.
pub(crate) struct Item {
    pub name: String,
    pub expr: Expr,
    pub ty: SqlType,
    /// The source expression's text, to match GROUP BY expressions.
    text: String,
    pos: Pos,
}

/// Compiles a `SELECT`'s `WHERE` clause over `scope` (aggregates are refused: they belong in
/// `HAVING`).
pub(crate) fn compile_where(
    select: &ast::Select,
    scope: &[ScopeCol],
) -> Result<Option<Expr>, SqlError> {
    select
        .selection
        .as_ref()
        .map(|w| {
            if has_aggregate(w) {
                return Err(err(w, "WHERE cannot hold aggregates; use HAVING"));
            }
            Ok(Compiler { scope, agg: None }.compile(w)?.0)
        })
        .transpose()
}

/// The output columns of projected items.
fn columns(items: &[Item]) -> Vec<Column> {
    items
        .iter()
        .map(|i| Column {
            name: i.name.clone(),
            ty: i.ty.clone(),
        })
        .collect()
}

pub(crate) fn projection(
    items: &[ast::SelectItem],
    compiler: &mut Compiler<'_>,
    scope_names: &[ScopeCol],
) -> Result<Vec<Item>, SqlError> {
    let mut out = Vec::new();
    let mut generated = 0;
    for item in items {
        match item {
            ast::SelectItem::Wildcard(_) => {
                for (i, c) in scope_names.iter().enumerate() {
                    out.push(Item {
                        name: c.name.clone(),
                        expr: Expr::Col(i),
                        ty: c.ty.clone(),
                        text: c.name.clone(),
                        pos: pos(item),
                    });
                }
            }
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                let (expr, ty) = compiler.compile(e)?;
                let name = match item {
                    ast::SelectItem::ExprWithAlias { alias, .. } => ident_name(alias),
                    _ => match e {
                        ast::Expr::Identifier(i) => ident_name(i),
                        ast::Expr::CompoundIdentifier(parts) => {
                            ident_name(parts.last().expect("a name"))
                        }
                        // `s->f` is named after its field, as in ksqlDB.
                        ast::Expr::BinaryOp {
                            op: ast::BinaryOperator::Arrow,
                            right,
                            ..
                        } if matches!(right.as_ref(), ast::Expr::Identifier(_)) => {
                            match right.as_ref() {
                                ast::Expr::Identifier(i) => ident_name(i),
                                _ => String::new(),
                            }
                        }
                        _ => {
                            let n = format!("KSQL_COL_{generated}");
                            generated += 1;
                            n
                        }
                    },
                };
                out.push(Item {
                    name,
                    expr,
                    ty: ty.unwrap_or(SqlType::String),
                    text: e.to_string().to_uppercase(),
                    pos: pos(e),
                });
            }
            other => return Err(err(other, "qualified wildcards are not supported")),
        }
    }
    for (i, a) in out.iter().enumerate() {
        if out[..i].iter().any(|b| b.name == a.name) {
            return Err(SqlError::at(a.pos, format!("duplicate column {}", a.name)));
        }
    }
    Ok(out)
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

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[allow(clippy::too_many_arguments)]
fn plan_aggregate(
    query: &Query,
    parts: &SelectParts<'_>,
    handle: Handle,
    scope: Vec<ScopeCol>,
    nkeys: usize,
    where_: Option<Expr>,
    qid: Qid<'_>,
) -> Result<Planned, SqlError> {
    let select = parts.select;
    if parts.group_by.is_empty() {
        return Err(err(select, "aggregates need a GROUP BY"));
    }
    // Grouping expressions over the input row.
    let mut group_exprs = Vec::new();
    let mut group_types = Vec::new();
    for g in &parts.group_by {
        if has_aggregate(g) {
            return Err(err(*g, "GROUP BY cannot hold aggregates"));
        }
        let (e, t) = Compiler {
            scope: &scope,
            agg: None,
        }
        .compile(g)?;
        group_exprs.push(e);
        group_types.push(t.unwrap_or(SqlType::String));
    }
    let mut ctx = AggContext {
        input: scope.clone(),
        group_by: parts
            .group_by
            .iter()
            .map(|g| g.to_string().to_uppercase())
            .zip(group_types.iter().cloned())
            .collect(),
        aggs: Vec::new(),
    };
    let out_scope: Vec<ScopeCol> = Vec::new();
    let items = projection(
        &select.projection,
        &mut Compiler {
            scope: &out_scope,
            agg: Some(&mut ctx),
        },
        &out_scope,
    )?;
    let having = select
        .having
        .as_ref()
        .map(|h| {
            Ok::<_, SqlError>(
                Compiler {
                    scope: &out_scope,
                    agg: Some(&mut ctx),
                }
                .compile(h)?
                .0,
            )
        })
        .transpose()?;
    let ngroup = group_exprs.len();
    // Key columns: named after the projection item that selects the grouping expression.
    let mut key = Vec::new();
    let mut generated = items.len();
    for (i, g) in parts.group_by.iter().enumerate() {
        let text = g.to_string().to_uppercase();
        let name = items
            .iter()
            .find(|it| it.text == text)
            .map(|it| it.name.clone())
            .unwrap_or_else(|| match g {
                ast::Expr::Identifier(id) => ident_name(id),
                ast::Expr::CompoundIdentifier(p) => ident_name(p.last().expect("a name")),
                _ => {
                    generated += 1;
                    format!("KSQL_COL_{}", generated - 1)
                }
            });
        key.push(Column {
            name,
            ty: group_types[i].clone(),
        });
    }
    let value_items: Vec<Item> = items
        .into_iter()
        .filter(|it| !matches!(it.expr, Expr::Col(c) if c < ngroup))
        .collect();
    let value: Vec<Column> = columns(&value_items);
    let calls: Arc<Vec<AggCall>> = Arc::new(ctx.aggs);
    let key_names: Arc<Vec<String>> = Arc::new(key.iter().map(|c| c.name.clone()).collect());
    let key_serde = KeySerde::new(Format::Json, key.clone());
    let group_exprs = Arc::new(group_exprs);
    let where_ = where_.map(Arc::new);
    let grouped = Grouped::with(key_serde.clone(), StateSerde).named(format!("{qid}-GroupBy"));
    let store = format!("{qid}-Aggregate-Materialize");
    let materialized = || {
        qid.mat::<Value, Row>(format!("{qid}-Aggregate-Aggregate"))
            .key_serde(key_serde.clone())
            .value_serde(StateSerde)
    };
    let (c1, c2) = (calls.clone(), calls.clone());
    let init = move || agg_init(&c1);
    let add = move |_: &Value, input: &Row, state: Row| agg_add(&c2, state, input);
    let regroup = {
        let (names, exprs, where_) = (key_names.clone(), group_exprs.clone(), where_.clone());
        move |k: &Value, row: &Row| -> Option<(Value, Row)> {
            let s = scope_row(nkeys, k, row);
            if let Some(w) = &where_
                && !test_or_false(w, &s)
            {
                return None;
            }
            let values: Vec<Value> = exprs
                .iter()
                .map(|e| eval_or_null(e, &s, "GROUP BY"))
                .collect();
            // ksqlDB drops rows whose grouping key is NULL.
            if values.iter().any(Value::is_null) {
                return None;
            }
            Some((make_key(&names, values), s))
        }
    };
    let window = query.window.map(|(w, _)| w);
    if query.emit == Some(Emit::Final) && window.is_none() {
        return Err(SqlError::new("EMIT FINAL needs a WINDOW"));
    }
    let value_exprs: Arc<Vec<Expr>> = Arc::new(value_items.into_iter().map(|i| i.expr).collect());
    let having = having.map(Arc::new);
    let finish = {
        let calls = calls.clone();
        move |key: &Value, win: (i64, i64), state: &Row| -> Row {
            let mut row = scope_row(ngroup, key, &Vec::new());
            row.push(Value::BigInt(win.0));
            row.push(Value::BigInt(win.1));
            row.extend(agg_final(&calls, state));
            row
        }
    };
    let finish = Arc::new(finish);
    let (h_ok, project) = {
        let (f1, f2, having, exprs) = (
            finish.clone(),
            finish.clone(),
            having.clone(),
            value_exprs.clone(),
        );
        (
            move |k: &Value, w: (i64, i64), state: &Row| {
                having
                    .as_ref()
                    .is_none_or(|h| test_or_false(h, &f1(k, w, state)))
            },
            move |k: &Value, w: (i64, i64), state: &Row| -> Row {
                let s = f2(k, w, state);
                exprs
                    .iter()
                    .map(|e| eval_or_null(e, &s, "projection"))
                    .collect()
            },
        )
    };
    let out_key = KeySerde::new(Format::Json, key.clone());
    let out_value = RowSerde::new(Format::Json, value.clone());
    match (handle, window) {
        (Handle::Table(t), None) => {
            if let Some(c) = calls.iter().find(|c| {
                matches!(
                    c.func,
                    AggFunc::Min | AggFunc::Max | AggFunc::LatestByOffset
                )
            }) {
                return Err(SqlError::at(
                    c.pos,
                    format!(
                        "{} cannot be undone, so it is not supported over a table",
                        format!("{:?}", c.func).to_uppercase()
                    ),
                ));
            }
            let c4 = calls.clone();
            let sub = move |_: &Value, input: &Row, state: Row| agg_sub(&c4, state, input);
            let table = t
                .filter({
                    let r = regroup.clone();
                    move |k, v| r(k, v).is_some()
                })
                .group_by(move |k, v| regroup(k, v).expect("filtered"), grouped)
                .aggregate(init, add, sub, materialized())
                .filter(move |k, s| h_ok(k, (0, 0), s))
                .map_values_with_key(move |k, s| project(k, (0, 0), s))
                .materialize(
                    qid.mat(store.clone())
                        .key_serde(out_key)
                        .value_serde(out_value),
                );
            Ok(Planned {
                kind: Kind::Table,
                key,
                value,
                window: None,
                store: Some(store),
                limit: parts.limit,
                out: Out::Table(table),
            })
        }
        (Handle::Table(_), Some(_)) => Err(query
            .window
            .map(|(_, p)| SqlError::at(p, "windowed aggregation needs a STREAM source"))
            .expect("window")),
        (Handle::Stream(s), window) => {
            let grouped_stream = s
                .flat_map(move |k, v| regroup(&k, &v))
                .group_by_key(grouped);
            let (table, kind) = match window {
                None => {
                    let t = grouped_stream
                        .aggregate(init, add, materialized())
                        .filter(move |k, s| h_ok(k, (0, 0), s))
                        .map_values_with_key(move |k, s| project(k, (0, 0), s))
                        .materialize(
                            qid.mat(store.clone())
                                .key_serde(out_key)
                                .value_serde(out_value),
                        );
                    return Ok(Planned {
                        kind: Kind::Table,
                        key,
                        value,
                        window: None,
                        store: Some(store),
                        limit: parts.limit,
                        out: Out::Table(t),
                    });
                }
                Some(WindowSpec::Tumbling { size, grace }) => (
                    grouped_stream
                        .windowed_by(
                            TimeWindows::tumbling(size).grace(grace.unwrap_or(DEFAULT_GRACE)),
                        )
                        .aggregate(init, add, materialized()),
                    WindowKind::Time(millis(size)),
                ),
                Some(WindowSpec::Hopping {
                    size,
                    advance,
                    grace,
                }) => (
                    grouped_stream
                        .windowed_by(
                            TimeWindows::hopping(size, advance)
                                .grace(grace.unwrap_or(DEFAULT_GRACE)),
                        )
                        .aggregate(init, add, materialized()),
                    WindowKind::Time(millis(size)),
                ),
                Some(WindowSpec::Session { gap, grace }) => {
                    let c5 = calls.clone();
                    (
                        grouped_stream
                            .windowed_by_session(
                                SessionWindows::with_inactivity_gap(gap)
                                    .grace(grace.unwrap_or(DEFAULT_GRACE)),
                            )
                            .aggregate(
                                init,
                                add,
                                move |_, a, b| agg_merge(&c5, a, b),
                                materialized(),
                            ),
                        WindowKind::Session,
                    )
                }
            };
            let table = if query.emit == Some(Emit::Final) {
                table.suppress(Suppressed::until_window_closes())
            } else {
                table
            };
            let wkey = match kind {
                WindowKind::Time(size) => WindowedSerde::time(out_key, size),
                WindowKind::Session => WindowedSerde::session(out_key),
            };
            let bounds = |k: &Windowed<Value>| (k.window.start, k.window.end);
            let t = table
                .filter(move |k, s| h_ok(&k.key, bounds(k), s))
                .map_values_with_key(move |k, s| project(&k.key, bounds(k), s))
                .materialize(
                    qid.mat(store.clone())
                        .key_serde(wkey)
                        .value_serde(out_value),
                );
            Ok(Planned {
                kind: Kind::Table,
                key,
                value,
                window: Some(kind),
                store: Some(store),
                limit: parts.limit,
                out: Out::Windowed(t),
            })
        }
    }
}

fn zero(ty: &SqlType) -> Value {
    match ty {
        SqlType::Int => Value::Int(0),
        SqlType::Double => Value::Double(0.0),
        _ => Value::BigInt(0),
    }
}

fn plus(a: &Value, b: &Value, sign: i64) -> Value {
    match (a, b) {
        (Value::Null, x) | (x, Value::Null) => x.clone(),
        (Value::Int(x), Value::Int(y)) => Value::Int(x.wrapping_add(y.wrapping_mul(sign as i32))),
        (Value::Double(_), _) | (_, Value::Double(_)) => {
            Value::Double(a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0) * sign as f64)
        }
        _ => {
            let i = |v: &Value| match v {
                Value::Int(i) => i64::from(*i),
                Value::BigInt(i) => *i,
                _ => 0,
            };
            Value::BigInt(i(a).wrapping_add(i(b).wrapping_mul(sign)))
        }
    }
}

fn agg_init(calls: &[AggCall]) -> Row {
    calls
        .iter()
        .map(|c| match c.func {
            AggFunc::CountStar | AggFunc::Count => Value::BigInt(0),
            AggFunc::Sum => zero(&c.arg_ty),
            AggFunc::Avg => Value::Array(vec![Value::Double(0.0), Value::BigInt(0)]),
            AggFunc::Min | AggFunc::Max | AggFunc::LatestByOffset => Value::Null,
            AggFunc::CollectList => Value::Array(Vec::new()),
        })
        .collect()
}

fn arg(c: &AggCall, input: &Row) -> Value {
    c.arg
        .as_ref()
        .map(|e| eval_or_null(e, input, "aggregate argument"))
        .unwrap_or(Value::Null)
}

fn step(calls: &[AggCall], state: Row, input: &Row, sign: i64) -> Row {
    calls
        .iter()
        .zip(state)
        .map(|(c, s)| {
            let v = arg(c, input);
            match c.func {
                AggFunc::CountStar => plus(&s, &Value::BigInt(1), sign),
                AggFunc::Count if v.is_null() => s,
                AggFunc::Count => plus(&s, &Value::BigInt(1), sign),
                AggFunc::Sum => plus(&s, &v, sign),
                AggFunc::Avg => match (s, v.as_f64()) {
                    (Value::Array(p), Some(x)) if p.len() == 2 => Value::Array(vec![
                        plus(&p[0], &Value::Double(x), sign),
                        plus(&p[1], &Value::BigInt(1), sign),
                    ]),
                    (s, _) => s,
                },
                AggFunc::Min | AggFunc::Max => {
                    let better = match v.compare(&s) {
                        _ if v.is_null() => false,
                        None => true,
                        Some(o) => {
                            (o == std::cmp::Ordering::Less) == (c.func == AggFunc::Min)
                                && o != std::cmp::Ordering::Equal
                        }
                    };
                    if better { v } else { s }
                }
                AggFunc::LatestByOffset => {
                    if v.is_null() {
                        s
                    } else {
                        v
                    }
                }
                AggFunc::CollectList => match s {
                    Value::Array(mut items) => {
                        if sign > 0 {
                            items.push(v);
                        } else if let Some(i) = items.iter().position(|x| *x == v) {
                            items.remove(i);
                        }
                        Value::Array(items)
                    }
                    other => other,
                },
            }
        })
        .collect()
}

fn agg_add(calls: &[AggCall], state: Row, input: &Row) -> Row {
    step(calls, state, input, 1)
}

fn agg_sub(calls: &[AggCall], state: Row, input: &Row) -> Row {
    step(calls, state, input, -1)
}

fn agg_merge(calls: &[AggCall], a: Row, b: Row) -> Row {
    calls
        .iter()
        .zip(a.into_iter().zip(b))
        .map(|(c, (x, y))| match c.func {
            AggFunc::CountStar | AggFunc::Count | AggFunc::Sum => plus(&x, &y, 1),
            AggFunc::Avg => match (x, y) {
                (Value::Array(p), Value::Array(q)) if p.len() == 2 && q.len() == 2 => {
                    Value::Array(vec![plus(&p[0], &q[0], 1), plus(&p[1], &q[1], 1)])
                }
                (x, _) => x,
            },
            AggFunc::Min | AggFunc::Max => match x.compare(&y) {
                None if x.is_null() => y,
                None => x,
                Some(o) => {
                    if (o == std::cmp::Ordering::Less) == (c.func == AggFunc::Min) {
                        x
                    } else {
                        y
                    }
                }
            },
            AggFunc::LatestByOffset => {
                if y.is_null() {
                    x
                } else {
                    y
                }
            }
            AggFunc::CollectList => match (x, y) {
                (Value::Array(mut p), Value::Array(q)) => {
                    p.extend(q);
                    Value::Array(p)
                }
                (x, _) => x,
            },
        })
        .collect()
}

fn agg_final(calls: &[AggCall], state: &Row) -> Vec<Value> {
    calls
        .iter()
        .zip(state)
        .map(|(c, s)| match (c.func, s) {
            (AggFunc::Avg, Value::Array(p)) if p.len() == 2 => match (p[0].as_f64(), &p[1]) {
                (Some(sum), Value::BigInt(n)) if *n > 0 => Value::Double(sum / *n as f64),
                _ => Value::Null,
            },
            (_, s) => s.clone(),
        })
        .collect()
}
