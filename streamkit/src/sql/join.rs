//! Joins: stream-table, table-table, and stream-stream `WITHIN`.

use sqlparser::ast;

use super::SqlError;
use super::engine::SourceInfo;
use super::expr::{ScopeCol, err};
use super::format::Column;
use super::parse::Query;
use super::plan::Handle;
use crate::stream::StreamsBuilder;

/// Plans the JOINs of a query onto the FROM relation.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_joins(
    _b: &StreamsBuilder,
    _lookup: &dyn Fn(&str) -> Option<SourceInfo>,
    _query: &Query,
    joins: &[ast::Join],
    _qid: &str,
    _left: Handle,
    _scope: Vec<ScopeCol>,
    _src: &SourceInfo,
) -> Result<(Handle, Vec<ScopeCol>, Vec<Column>), SqlError> {
    Err(err(&joins[0].relation, "JOIN is not supported yet"))
}
