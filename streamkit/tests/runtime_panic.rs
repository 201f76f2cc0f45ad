//! A panic in a stream thread (here: in a user closure) is a thread failure, never a thread
//! silently gone: by default the instance goes to `Error`, its listener is told, `/health`
//! answers 503 and `close()` returns the panic's message; with
//! `UncaughtExceptionResponse::ReplaceThread` a new thread takes over and every record still
//! arrives.

mod common;
#[path = "common/http.rs"]
mod http;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamkit::config::UncaughtExceptionResponse;
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

/// `in` → upper-cased → `out`, panicking on the value "boom" while `armed` is set (and
/// disarming itself when `once`).
fn panicking(armed: Arc<AtomicBool>, once: bool) -> Topology {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .map_values(move |v: String| {
            if v == "boom" && armed.load(Ordering::SeqCst) {
                if once {
                    armed.store(false, Ordering::SeqCst);
                }
                panic!("the closure cannot take {v:?}");
            }
            v.to_uppercase()
        })
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    b.build().unwrap()
}

fn records(values: &[&str]) -> Vec<(String, Vec<u8>)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("k{i}"), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn a_panicking_closure_stops_the_instance_with_the_panic_as_its_error() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("in", 1).unwrap();
    broker.create_topic("out", 1).unwrap();
    let app = KafkaStreams::new(
        panicking(Arc::new(AtomicBool::new(true)), false),
        StreamsConfig::new("panic-app")
            .embedded(&broker)
            .query_server("127.0.0.1:0"),
    )
    .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    app.set_state_listener(move |old, new| log.lock().unwrap().push((old, new)));
    app.start().unwrap();
    assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    let addr = app.query_server_addr().unwrap().to_string();
    assert_eq!(http::get(&addr, "/health", None).status, 200);

    common::produce(
        broker.bootstrap_servers(),
        "in",
        &records(&["a", "boom", "b"]),
    );
    assert!(
        app.wait_for_state(StreamsState::Error, Duration::from_secs(30)),
        "state {:?}",
        app.state()
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|(_, new)| *new == StreamsState::Error)
    );
    let error = app.error().expect("the panic is the instance's error");
    assert!(
        error.contains(r#"panicked: the closure cannot take "boom""#),
        "{error}"
    );
    assert!(error.contains("panic-app-StreamThread-1"), "{error}");
    assert_eq!(http::get(&addr, "/health", None).status, 503);
    let closed = app.close().unwrap_err();
    assert!(matches!(closed, Error::Panicked { .. }), "{closed:?}");
    assert_eq!(app.state(), StreamsState::Error);
}

#[test]
fn a_replaced_thread_takes_over_and_every_record_arrives() {
    let broker = EmbeddedBroker::start().unwrap();
    broker.create_topic("in", 1).unwrap();
    broker.create_topic("out", 1).unwrap();
    let app = KafkaStreams::new(
        panicking(Arc::new(AtomicBool::new(true)), true),
        StreamsConfig::new("replace-app")
            .embedded(&broker)
            .commit_interval(Duration::from_millis(100))
            .uncaught_exception_response(UncaughtExceptionResponse::ReplaceThread),
    )
    .unwrap();
    app.start().unwrap();
    assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    common::produce(
        broker.bootstrap_servers(),
        "in",
        &records(&["a", "boom", "b"]),
    );
    let out = common::read_until(
        broker.bootstrap_servers(),
        "out",
        Duration::from_secs(60),
        |r| r.iter().any(|r| r.value_str() == "B"),
    );
    let values: Vec<&str> = out.iter().map(|r| r.value_str()).collect();
    // At least once: "A" may come twice (processed again by the new thread), nothing is lost.
    for v in ["A", "BOOM", "B"] {
        assert!(values.contains(&v), "{values:?}");
    }
    assert!(
        app.wait_for_state(StreamsState::Running, Duration::from_secs(30)),
        "{:?}",
        app.state()
    );
    assert_eq!(app.error(), None);
    app.close().unwrap();
}
