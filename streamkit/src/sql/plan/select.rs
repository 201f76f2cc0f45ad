//! The parts of a `SELECT` every plan shares: its clauses, the `WHERE` filter and the
//! projection, compiled against the row scope (key columns, then value columns).

#[allow(clippy::wildcard_imports)]
use super::*;

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

pub(super) fn make_key(names: &[String], values: Vec<Value>) -> Value {
    if values.len() == 1 {
        values.into_iter().next().unwrap_or(Value::Null)
    } else {
        Value::Struct(names.iter().cloned().zip(values).collect())
    }
}

pub(super) fn eval_or_null(e: &Expr, row: &[Value], what: &str) -> Value {
    e.eval(row).unwrap_or_else(|msg| {
        tracing::warn!("sql: {what}: {msg}; using NULL");
        Value::Null
    })
}

pub(super) fn test_or_false(e: &Expr, row: &[Value]) -> bool {
    e.test(row).unwrap_or_else(|msg| {
        tracing::warn!("sql: condition: {msg}; dropping the row");
        false
    })
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
pub(super) fn relation_name(f: &ast::TableFactor) -> Result<(String, Option<String>), SqlError> {
    match f {
        ast::TableFactor::Table { name, alias, .. } => Ok((
            crate::sql::parse::object_name(name)?,
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
    pub(super) text: String,
    pub(super) pos: Pos,
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
pub(super) fn columns(items: &[Item]) -> Vec<Column> {
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
