//! The metastore statements: SHOW, DESCRIBE, EXPLAIN, DROP, TERMINATE, and the errors that
//! guard them (offline engine: planned, nothing runs).

use streamkit::sql::{Engine, Kind, SqlType, StatementResult};

fn engine() -> Engine {
    let mut e = Engine::offline();
    e.execute(
        "CREATE STREAM taps (station VARCHAR KEY, fare INT) WITH (KAFKA_TOPIC='taps', VALUE_FORMAT='JSON');
         CREATE TABLE fares AS SELECT station, SUM(fare) AS total FROM taps GROUP BY station;",
    )
    .unwrap();
    e
}

fn one(e: &mut Engine, sql: &str) -> StatementResult {
    e.execute(sql).unwrap().pop().unwrap()
}

#[test]
fn show_and_describe_list_the_metastore() {
    let mut e = engine();
    match one(&mut e, "SHOW STREAMS;") {
        StatementResult::Sources { sources, .. } => {
            assert_eq!(sources.len(), 1);
            assert_eq!(
                (sources[0].name(), sources[0].kind()),
                ("TAPS", Kind::Stream)
            );
        }
        other => panic!("{other:?}"),
    }
    match one(&mut e, "LIST TABLES;") {
        StatementResult::Sources { sources, .. } => assert_eq!(sources[0].name(), "FARES"),
        other => panic!("{other:?}"),
    }
    match one(&mut e, "SHOW QUERIES;") {
        StatementResult::Queries { queries, .. } => {
            assert_eq!(queries[0].id(), "CTAS_FARES_0");
            assert_eq!(queries[0].sink(), "FARES");
        }
        other => panic!("{other:?}"),
    }
    match one(&mut e, "DESCRIBE fares;") {
        StatementResult::Description {
            source, read_by, ..
        } => {
            assert_eq!(source.key()[0].name, "STATION");
            assert_eq!(source.value()[0].name, "TOTAL");
            assert_eq!(source.value()[0].ty, SqlType::Int);
            assert_eq!(source.writer(), Some("CTAS_FARES_0"));
            assert!(read_by.is_empty());
        }
        other => panic!("{other:?}"),
    }
    match one(&mut e, "DESCRIBE taps;") {
        StatementResult::Description { read_by, .. } => assert_eq!(read_by, ["CTAS_FARES_0"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn explain_prints_the_topology_of_a_query_or_a_statement() {
    let mut e = engine();
    match one(&mut e, "EXPLAIN CTAS_FARES_0;") {
        StatementResult::Explain {
            topology, query, ..
        } => {
            assert!(query.starts_with("CREATE TABLE fares"), "{query}");
            assert!(
                topology.contains("Source:") && topology.contains("(topic: FARES)"),
                "{topology}"
            );
            assert!(
                topology.contains("CTAS_FARES_0-GroupBy-repartition"),
                "{topology}"
            );
        }
        other => panic!("{other:?}"),
    }
    match one(
        &mut e,
        "EXPLAIN SELECT station, fare FROM taps WHERE fare > 1 EMIT CHANGES;",
    ) {
        StatementResult::Explain { topology, .. } => {
            assert!(topology.contains("KSTREAM-FILTER"), "{topology}")
        }
        other => panic!("{other:?}"),
    }
    // Explaining did not start anything.
    assert_eq!(e.queries().count(), 1);
}

#[test]
fn drop_refuses_sources_in_use_until_their_readers_are_terminated() {
    let mut e = engine();
    let err = e.execute("DROP STREAM taps;").unwrap_err();
    assert!(
        err.to_string().contains("query CTAS_FARES_0 reads it"),
        "{err}"
    );
    let err = e.execute("DROP TABLE taps;").unwrap_err();
    assert!(
        err.to_string().contains("TAPS is a STREAM, not a TABLE"),
        "{err}"
    );
    // Dropping the table stops the query writing it; then the stream can go.
    one(&mut e, "DROP TABLE fares;");
    assert_eq!(e.queries().count(), 0);
    one(&mut e, "DROP STREAM taps;");
    assert!(e.source("taps").is_none());
    one(&mut e, "DROP STREAM IF EXISTS taps;");
    let err = e.execute("DROP STREAM taps;").unwrap_err();
    assert!(err.to_string().contains("TAPS does not exist"), "{err}");
}

#[test]
fn terminate_stops_a_query_and_bad_statements_say_where() {
    let mut e = engine();
    one(&mut e, "TERMINATE CTAS_FARES_0;");
    assert_eq!(e.queries().count(), 0);
    let cases = [
        (
            "CREATE STREAM taps (a INT) WITH (KAFKA_TOPIC='x', VALUE_FORMAT='JSON');",
            "line 1:1: TAPS already exists",
        ),
        (
            "CREATE TABLE t (a INT) WITH (KAFKA_TOPIC='x', VALUE_FORMAT='JSON');",
            "a table needs a PRIMARY KEY",
        ),
        (
            "CREATE STREAM s (a INT) WITH (KAFKA_TOPIC='x', VALUE_FORMAT='JSON', COLOUR='red');",
            "line 1:69: unknown property COLOUR",
        ),
        (
            "CREATE STREAM s (a INT) WITH (VALUE_FORMAT='JSON');",
            "KAFKA_TOPIC",
        ),
        (
            "CREATE STREAM s (a MAP<VARCHAR, INT>) WITH (KAFKA_TOPIC='x', VALUE_FORMAT='JSON');",
            "line 1:23: Expected",
        ),
        (
            "CREATE STREAM o AS SELECT station, fare FROM taps\n  WINDOW TUMBLING (SIZE 1 MINUTE);",
            "line 2:3: WINDOW needs a GROUP BY",
        ),
        (
            "CREATE STREAM o AS SELECT station FROM taps EMIT FINAL;",
            "EMIT FINAL needs a windowed aggregation",
        ),
        (
            "CREATE TABLE o AS SELECT station, COUNT(*) FROM taps GROUP BY station EMIT FINAL;",
            "EMIT FINAL needs a WINDOW",
        ),
        (
            "CREATE TABLE o AS SELECT station, fare, COUNT(*) FROM taps GROUP BY station;",
            "line 1:35: column FARE must be in GROUP BY",
        ),
        (
            "CREATE STREAM o AS SELECT * FROM nowhere;",
            "line 1:34: NOWHERE does not exist",
        ),
        ("INSERT INTO taps SELECT station FROM taps;", "do not match"),
        ("SELECT * FROM taps EMIT CHANGES;", "send them to /query"),
        ("SELECT * FROM taps;", "not materialized"),
        (
            "CREATE TABLE o AS SELECT station, COUNT(*) FROM taps GROUP BY station\n  PARTITION BY station;",
            "line 2:16: PARTITION BY cannot be combined with GROUP BY",
        ),
        (
            "CREATE STREAM o AS SELECT * FROM taps PARTITION BY;",
            "expected an expression after PARTITION BY",
        ),
        ("TERMINATE CTAS_NOPE_9;", "query CTAS_NOPE_9 does not exist"),
        ("FLY ME TO THE MOON;", "line 1:1: unknown statement 'FLY'"),
    ];
    for (sql, want) in cases {
        let err = e.execute(sql).unwrap_err().to_string();
        assert!(err.contains(want), "{sql}: {err}");
    }
}

#[test]
fn unsupported_types_are_named() {
    let mut e = Engine::offline();
    let err = e
        .execute("CREATE STREAM s (a DATE) WITH (KAFKA_TOPIC='x', VALUE_FORMAT='JSON');")
        .unwrap_err();
    assert_eq!(
        err.pos().map(|p| (p.line, p.column)),
        Some((1, 18)),
        "{err}"
    );
    assert!(err.to_string().contains("unsupported type DATE"), "{err}");
}
