//! Where the cleaned users go: `spark_streams.created_users` in Cassandra, the table the
//! original's Spark job wrote, through [`streamkit::connect::cassandra`].

use streamkit::connect::cassandra::{CassandraSink, Cell};
use streamkit::prelude::*;
use streamkit::serde::avro::RegistryClient;

use crate::model::CreatedUser;
use crate::topology::{CREATED_TOPIC, created_serde};

/// The original's keyspace and table.
pub const TABLE: &str = "spark_streams.created_users";

/// The columns after `id uuid`, all `text`, as the Spark job created them (with `dob`).
pub const COLUMNS: [&str; 11] = [
    "first_name",
    "last_name",
    "gender",
    "address",
    "post_code",
    "email",
    "username",
    "dob",
    "registered_date",
    "phone",
    "picture",
];

/// A user's values for [`COLUMNS`], in order.
pub fn row(u: &CreatedUser) -> Vec<Cell> {
    [
        &u.first_name,
        &u.last_name,
        &u.gender,
        &u.address,
        &u.post_code,
        &u.email,
        &u.username,
        &u.dob,
        &u.registered_date,
        &u.phone,
        &u.picture,
    ]
    .into_iter()
    .map(|s| Cell::Text(s.clone()))
    .collect()
}

/// The sink: [`CREATED_TOPIC`] into `table` (`keyspace.table`) of the cluster at `nodes`,
/// keyspace (`SimpleStrategy`, `replication_factor`) and table created when missing.
pub fn cassandra_sink(
    nodes: &[String],
    table: &str,
    replication_factor: u32,
    registry: &RegistryClient,
) -> CassandraSink<String, CreatedUser> {
    CassandraSink::new("random-users", nodes.iter().cloned(), table)
        .topic(CREATED_TOPIC, Serdes::string(), created_serde(registry))
        .key_columns([("id", "uuid")], |id: &String| vec![Cell::uuid_text(id)])
        .value_columns(COLUMNS.map(|c| (c, "text")), row)
        .create_keyspace(replication_factor)
        .create_table(true)
}
