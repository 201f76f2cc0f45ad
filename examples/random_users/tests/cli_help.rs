//! The command line: every example takes --bootstrap-servers, and the Cassandra sink is off
//! without --cassandra.

use clap::Parser;
use random_users::Args;

#[test]
fn flags_parse_and_cassandra_takes_a_list() {
    let a = Args::try_parse_from([
        "random_users",
        "--bootstrap-servers",
        "k:9092",
        "--schema-registry",
        "http://sr:8081",
        "--cassandra",
        "c1:9042,c2:9042",
        "--api-url",
        "https://randomuser.me/api/",
    ])
    .unwrap();
    assert_eq!(a.bootstrap_servers.as_deref(), Some("k:9092"));
    assert_eq!(
        a.cassandra,
        vec!["c1:9042".to_string(), "c2:9042".to_string()]
    );
    assert_eq!(a.cassandra_table, "spark_streams.created_users");
    let d = Args::try_parse_from(["random_users"]).unwrap();
    assert!(d.cassandra.is_empty() || std::env::var("RANDOM_USERS_CASSANDRA").is_ok());
    assert!(d.bootstrap_servers.is_none());
}
