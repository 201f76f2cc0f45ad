//! The built-in DSL operators, one file each, every one a [`Processor`](crate::processor::Processor)
//! written on the public API (sources, which decode raw bytes, are the one exception).

pub(crate) mod aggregate;
pub(crate) mod branch;
pub(crate) mod filter;
pub(crate) mod flat_map;
pub(crate) mod flat_map_values;
pub(crate) mod foreach;
pub(crate) mod join;
pub(crate) mod late;
pub(crate) mod map;
pub(crate) mod map_values;
pub(crate) mod merge;
pub(crate) mod peek;
pub(crate) mod select_key;
pub(crate) mod session_aggregate;
pub(crate) mod sink;
pub(crate) mod sliding_aggregate;
pub(crate) mod source;
pub(crate) mod suppress;
pub(crate) mod table_aggregate;
pub(crate) mod table_changes;
pub(crate) mod table_filter;
pub(crate) mod table_group_by;
pub(crate) mod table_map_values;
pub(crate) mod table_materialize;
pub(crate) mod table_source;
pub(crate) mod table_suppress;
pub(crate) mod to_table;
pub(crate) mod window_aggregate;
