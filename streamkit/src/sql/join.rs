//! Joins: stream-table and table-table on the table's PRIMARY KEY, and stream-stream
//! `WITHIN` a time window. The stream side is re-keyed (repartitioned) by its join
//! expression when that is not its key. The joined row holds both sides' columns, each
//! qualified by its source name and alias.

use sqlparser::ast;

use super::SqlError;
use super::engine::SourceInfo;
use super::expr::{Compiler, Expr, ScopeCol, err};
use super::format::{Column, Format, KeySerde, StateSerde};
use super::parse::{Query, ident_name};
use super::plan::{Handle, Qid, load, scope_row};
use super::value::{Row, Value};
use crate::stream::{Repartitioned, StreamJoined, StreamsBuilder};
use crate::window::JoinWindows;

/// A joined relation: handle, scope, key columns, and the row positions holding the key.
pub(crate) type Joined = (Handle, Vec<ScopeCol>, Vec<Column>, Vec<usize>);

#[derive(Clone, Copy, PartialEq, Eq)]
enum JoinType {
    Inner,
    Left,
    Outer,
}

/// A side compiled: its handle with full rows (key columns then values) as values, keyed
/// by the join expression.
fn keyed_stream(
    s: crate::stream::KStream<Value, Row>,
    nkeys: usize,
    on: Expr,
    qid: Qid<'_>,
    side: &str,
    key_col: Column,
) -> crate::stream::KStream<Value, Row> {
    if matches!(on, Expr::Col(0)) && nkeys == 1 {
        return s.map_values_with_key(move |k, v| scope_row(nkeys, k, &v));
    }
    s.map(move |k, v| {
        let row = scope_row(nkeys, &k, &v);
        let key = on.eval(&row).unwrap_or(Value::Null);
        (key, row)
    })
    .filter(|k, _| !k.is_null())
    .repartition(
        Repartitioned::with(KeySerde::new(Format::Json, vec![key_col]), StateSerde)
            .named(format!("{qid}-Join{side}-Rekey")),
    )
}

fn concat(l: &Row, r: Option<&Row>, rlen: usize) -> Row {
    let mut out = l.clone();
    match r {
        Some(r) => out.extend(r.iter().cloned()),
        None => out.extend(std::iter::repeat_n(Value::Null, rlen)),
    }
    out
}

/// Plans the JOINs of a query onto the FROM relation; returns the joined relation, its
/// scope, key columns, and the positions in the joined row that hold the key.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_joins(
    b: &StreamsBuilder,
    lookup: &dyn Fn(&str) -> Option<SourceInfo>,
    query: &Query,
    joins: &[ast::Join],
    qid: Qid<'_>,
    left: Handle,
    left_scope: Vec<ScopeCol>,
    left_src: &SourceInfo,
) -> Result<Joined, SqlError> {
    let [join] = joins else {
        return Err(err(&joins[1].relation, "one JOIN per query is supported"));
    };
    let (jt, constraint) = match &join.join_operator {
        ast::JoinOperator::Join(c) | ast::JoinOperator::Inner(c) => (JoinType::Inner, c),
        ast::JoinOperator::Left(c) | ast::JoinOperator::LeftOuter(c) => (JoinType::Left, c),
        ast::JoinOperator::FullOuter(c) => (JoinType::Outer, c),
        _ => {
            return Err(err(
                &join.relation,
                "expected JOIN, LEFT JOIN or FULL OUTER JOIN",
            ));
        }
    };
    let ast::JoinConstraint::On(on) = constraint else {
        return Err(err(&join.relation, "a JOIN needs ON left = right"));
    };
    let (rname, ralias) = match &join.relation {
        ast::TableFactor::Table { name, alias, .. } => (
            super::parse::object_name(name)?,
            alias.as_ref().map(|a| ident_name(&a.name)),
        ),
        other => return Err(err(other, "expected a stream or table name")),
    };
    let rsrc =
        lookup(&rname).ok_or_else(|| err(&join.relation, format!("{rname} does not exist")))?;
    let right_id = format!("{qid}-Right");
    let right_qid = Qid {
        id: &right_id,
        memory: qid.memory,
        shared: qid.shared,
    };
    let (right, mut right_scope) = load(b, &rsrc, right_qid)?;
    if let Some(a) = &ralias {
        for c in &mut right_scope {
            c.qualifier.push(a.clone());
        }
    }
    // ON: one side's expression over each source.
    let ast::Expr::BinaryOp {
        left: l,
        op: ast::BinaryOperator::Eq,
        right: r,
    } = on
    else {
        return Err(err(on, "a JOIN's ON must be left = right"));
    };
    let compile = |e: &ast::Expr, scope: &[ScopeCol]| Compiler { scope, agg: None }.compile(e);
    let ((lon, lty), (ron, _)) = match (compile(l, &left_scope), compile(r, &right_scope)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => match (compile(r, &left_scope), compile(l, &right_scope)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                // Report the first side that resolves against neither source.
                compile(
                    l,
                    &left_scope
                        .iter()
                        .chain(&right_scope)
                        .cloned()
                        .collect::<Vec<_>>(),
                )?;
                compile(
                    r,
                    &left_scope
                        .iter()
                        .chain(&right_scope)
                        .cloned()
                        .collect::<Vec<_>>(),
                )?;
                return Err(err(on, "ON must compare a column of each side"));
            }
        },
    };
    let key_name = match l.as_ref() {
        ast::Expr::Identifier(i) => ident_name(i),
        ast::Expr::CompoundIdentifier(p) => ident_name(p.last().expect("a name")),
        _ => "ROWKEY".to_string(),
    };
    let key_col = Column {
        name: key_name,
        ty: lty.unwrap_or(super::SqlType::String),
    };
    let (ln, rn) = (left_src.key.len(), rsrc.key.len());
    let rlen = right_scope.len();
    let llen = left_scope.len();
    // Joined-row positions holding the key: the ON columns of both sides.
    let mut key_positions = Vec::new();
    if let Expr::Col(c) = lon {
        key_positions.push(c);
    }
    if let Expr::Col(c) = ron {
        key_positions.push(llen + c);
    }
    let on_right_key = matches!(ron, Expr::Col(0)) && rn == 1;
    let on_left_key = matches!(lon, Expr::Col(0)) && ln == 1;
    let handle = match (left, right) {
        (Handle::Stream(s), Handle::Table(t)) => {
            if !on_right_key {
                return Err(err(
                    on,
                    format!("{rname} is a table: join on its PRIMARY KEY"),
                ));
            }
            if jt == JoinType::Outer {
                return Err(err(on, "a stream-table join is INNER or LEFT"));
            }
            let s = keyed_stream(s, ln, lon, qid, "Left", key_col.clone());
            let t = t
                .map_values_with_key(move |k, v| scope_row(rn, k, v))
                .materialize(
                    qid.mat(format!("{qid}-JoinRight-Materialize"))
                        .key_serde(KeySerde::new(Format::Json, vec![key_col.clone()]))
                        .value_serde(StateSerde),
                );
            Handle::Stream(match jt {
                JoinType::Inner => s.join_table(&t, move |a, b| concat(a, Some(b), rlen)),
                _ => s.left_join_table(&t, move |a, b| concat(a, b, rlen)),
            })
        }
        (Handle::Table(lt), Handle::Table(rt)) => {
            if !(on_left_key && on_right_key) {
                return Err(err(on, "a table-table join is on both PRIMARY KEYs"));
            }
            // Both sides as full rows, materialized for the join's lookups.
            let side = |name: &str| {
                qid.mat(format!("{qid}-Join{name}-Materialize"))
                    .key_serde(KeySerde::new(Format::Json, vec![key_col.clone()]))
                    .value_serde(StateSerde)
            };
            let lt = lt
                .map_values_with_key(move |k, v| scope_row(ln, k, v))
                .materialize(side("Left"));
            let rt = rt
                .map_values_with_key(move |k, v| scope_row(rn, k, v))
                .materialize(side("Right"));
            let m = qid
                .mat(format!("{qid}-Join-Materialize"))
                .key_serde(KeySerde::new(Format::Json, vec![key_col.clone()]))
                .value_serde(StateSerde);
            Handle::Table(match jt {
                JoinType::Inner => lt.join(&rt, move |a, b| concat(a, Some(b), rlen), m),
                JoinType::Left => lt.left_join(&rt, move |a, b| concat(a, b, rlen), m),
                JoinType::Outer => lt.outer_join(
                    &rt,
                    move |a, b| {
                        let mut out = a.cloned().unwrap_or_else(|| vec![Value::Null; llen]);
                        out.extend(b.cloned().unwrap_or_else(|| vec![Value::Null; rlen]));
                        out
                    },
                    m,
                ),
            })
        }
        (Handle::Stream(ls), Handle::Stream(rs)) => {
            let (within, _) = query
                .within
                .ok_or_else(|| err(on, "a stream-stream join needs WITHIN"))?;
            let mut windows = JoinWindows::of(within.before)
                .before(within.before)
                .after(within.after);
            if let Some(g) = within.grace {
                windows = windows.grace(g);
            }
            let ls = keyed_stream(ls, ln, lon, qid, "Left", key_col.clone());
            let rs = keyed_stream(rs, rn, ron, qid, "Right", key_col.clone());
            let joined = StreamJoined::with(
                KeySerde::new(Format::Json, vec![key_col.clone()]),
                StateSerde,
                StateSerde,
            )
            .named(format!("{qid}-Join"));
            let joined = if qid.memory {
                joined.in_memory()
            } else {
                joined
            };
            Handle::Stream(match jt {
                JoinType::Inner => {
                    ls.join(&rs, move |a, b| concat(a, Some(b), rlen), windows, joined)
                }
                JoinType::Left => {
                    ls.left_join(&rs, move |a, b| concat(a, b, rlen), windows, joined)
                }
                JoinType::Outer => ls.outer_join(
                    &rs,
                    move |a, b| {
                        let mut out = a.cloned().unwrap_or_else(|| vec![Value::Null; llen]);
                        out.extend(b.cloned().unwrap_or_else(|| vec![Value::Null; rlen]));
                        out
                    },
                    windows,
                    joined,
                ),
            })
        }
        (Handle::Table(_), Handle::Stream(_)) => {
            return Err(err(
                &join.relation,
                "put the stream on the left of a stream-table join",
            ));
        }
    };
    let mut scope = left_scope;
    scope.extend(right_scope);
    Ok((handle, scope, vec![key_col], key_positions))
}
