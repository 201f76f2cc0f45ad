//! Pull queries: `SELECT … FROM table [WHERE …]` answered from the table's store.

use super::SqlError;
use super::engine::SourceInfo;
use super::expr::{Compiler, ScopeCol, err};
use super::format::Column;
use super::parse::Query;
use super::plan::{compile_where, projection, scope_row, select_parts};
use super::value::{Row, Value};

/// Filters and projects the stored `rows` of `src` as `query` says.
pub(crate) fn answer(
    query: &Query,
    src: &SourceInfo,
    rows: Vec<(Value, Row)>,
) -> Result<(Vec<Column>, Vec<Row>), SqlError> {
    let parts = select_parts(query)?;
    let select = parts.select;
    if !parts.group_by.is_empty() || select.having.is_some() {
        return Err(err(select, "pull queries cannot aggregate"));
    }
    if !parts.from.joins.is_empty() {
        return Err(err(select, "pull queries cannot join"));
    }
    let scope: Vec<ScopeCol> = src
        .key
        .iter()
        .chain(&src.value)
        .map(|c| ScopeCol {
            qualifier: vec![src.name.clone()],
            name: c.name.clone(),
            ty: c.ty.clone(),
        })
        .collect();
    let where_ = compile_where(select, &scope)?;
    let items = projection(
        &select.projection,
        &mut Compiler {
            scope: &scope,
            agg: None,
        },
        &scope,
    )?;
    let nkeys = src.key.len();
    let mut out = Vec::new();
    for (k, v) in rows {
        let s = scope_row(nkeys, &k, &v);
        if let Some(w) = &where_
            && !w.test(&s).map_err(SqlError::new)?
        {
            continue;
        }
        out.push(
            items
                .iter()
                .map(|i| i.expr.eval(&s).map_err(SqlError::new))
                .collect::<Result<Row, _>>()?,
        );
        if parts.limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    let columns = items
        .iter()
        .map(|i| Column {
            name: i.name.clone(),
            ty: i.ty.clone(),
        })
        .collect();
    Ok((columns, out))
}

/// The key of a pull query whose WHERE is `key-column = literal` (either way round).
pub(crate) fn key_lookup(query: &Query, src: &SourceInfo) -> Option<Value> {
    let [key] = src.key.as_slice() else {
        return None;
    };
    let select = select_parts(query).ok()?.select;
    let sqlparser::ast::Expr::BinaryOp {
        left,
        op: sqlparser::ast::BinaryOperator::Eq,
        right,
    } = select.selection.as_ref()?
    else {
        return None;
    };
    let is_key = |e: &sqlparser::ast::Expr| match e {
        sqlparser::ast::Expr::Identifier(i) => super::parse::ident_name(i) == key.name,
        sqlparser::ast::Expr::CompoundIdentifier(p) => p
            .last()
            .is_some_and(|i| super::parse::ident_name(i) == key.name),
        _ => false,
    };
    let literal = if is_key(left) {
        right
    } else if is_key(right) {
        left
    } else {
        return None;
    };
    let (e, _) = Compiler {
        scope: &[],
        agg: None,
    }
    .compile(literal)
    .ok()?;
    e.eval(&[]).ok()?.cast(&key.ty).ok()
}
