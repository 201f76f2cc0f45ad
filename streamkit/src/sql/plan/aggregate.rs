//! `GROUP BY` plans: aggregate functions as an add/subtract/merge state over rows, on plain,
//! windowed and session-windowed groups.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn plan_aggregate(
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

pub(super) fn zero(ty: &SqlType) -> Value {
    match ty {
        SqlType::Int => Value::Int(0),
        SqlType::Double => Value::Double(0.0),
        _ => Value::BigInt(0),
    }
}

pub(super) fn plus(a: &Value, b: &Value, sign: i64) -> Value {
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

pub(super) fn agg_init(calls: &[AggCall]) -> Row {
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

pub(super) fn arg(c: &AggCall, input: &Row) -> Value {
    c.arg
        .as_ref()
        .map(|e| eval_or_null(e, input, "aggregate argument"))
        .unwrap_or(Value::Null)
}

pub(super) fn step(calls: &[AggCall], state: Row, input: &Row, sign: i64) -> Row {
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

pub(super) fn agg_add(calls: &[AggCall], state: Row, input: &Row) -> Row {
    step(calls, state, input, 1)
}

pub(super) fn agg_sub(calls: &[AggCall], state: Row, input: &Row) -> Row {
    step(calls, state, input, -1)
}

pub(super) fn agg_merge(calls: &[AggCall], a: Row, b: Row) -> Row {
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

pub(super) fn agg_final(calls: &[AggCall], state: &Row) -> Vec<Value> {
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
