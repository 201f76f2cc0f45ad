//! Joins, one file per kind.

pub(crate) mod stream_global;
pub(crate) mod stream_table;
