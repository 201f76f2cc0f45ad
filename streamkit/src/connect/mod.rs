//! Connectors between a topology and systems other than Kafka.
//!
//! - [`postgres`]: [`KTable::to_postgres`](crate::table::KTable::to_postgres) upserts a
//!   table's changes into PostgreSQL, exactly once, with the input offsets and store contents
//!   kept in the same Postgres transactions.

pub mod postgres;
