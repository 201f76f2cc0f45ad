//! The model survives a restart: the application is closed and started again on the same
//! state directory and broker; the model's counts and held-out evaluation are there as they
//! were left, and it keeps learning from there (the new users only, none counted twice).

mod common;

use std::time::{Duration, Instant};

use random_users::learn::{self, Entry, Evaluation, Prediction};
use random_users::topology::{self, RAW_TOPIC, TOPICS, TopologyConfig};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;
use streamkit::prelude::*;
use streamkit::serde::avro::RegistryClient;
use streamkit::testing::EmbeddedBroker;

fn produce(servers: &str, users: &[Value]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()
        .unwrap();
    for u in users {
        let key = u["login"]["uuid"].as_str().unwrap().to_string();
        let value = serde_json::to_vec(u).unwrap();
        producer
            .send(
                BaseRecord::to(RAW_TOPIC)
                    .key(&key)
                    .payload(&value)
                    .partition(0),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

fn app(
    broker: &EmbeddedBroker,
    registry: &RegistryClient,
    state: &std::path::Path,
) -> KafkaStreams {
    let app = KafkaStreams::new(
        topology::topology(&TopologyConfig::new(registry)).unwrap(),
        StreamsConfig::new("random-users-restart")
            .embedded(broker)
            .commit_interval(Duration::from_millis(200))
            .state_dir(state),
    )
    .unwrap();
    app.start().unwrap();
    app
}

/// (prediction for "", the evaluation) once the model has taken `users` users into account.
fn wait_for(app: &KafkaStreams, users: u64) -> (Prediction, Evaluation) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(app.error().is_none(), "{:?}", app.error());
        if let Ok(store) = app.store::<String, Entry>(learn::MODEL_STORE) {
            let get = |k: &str| store.get(&k.to_string()).ok().flatten();
            let eval = learn::evaluation_in(get);
            if let Some(p) = learn::predict("", "", learn::counts_in(get))
                && p.trained_on + eval.seen >= users
            {
                assert_eq!(p.trained_on + eval.seen, users, "nothing counted twice");
                return (p, eval);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the model did not take {users} users in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_model_is_reloaded_after_a_restart_and_keeps_learning() {
    let (broker, _registry, client) = common::registry();
    streamkit::runtime::ensure_topics(&StreamsConfig::new("t").embedded(&broker), &TOPICS).unwrap();
    let state = tempfile::tempdir().unwrap();
    let users = common::users("restart", 400);

    let first = app(&broker, &client, state.path());
    produce(broker.bootstrap_servers(), &users[..250]);
    let (before, eval_before) = wait_for(&first, 250);
    let maria = |app: &KafkaStreams| {
        let store = app.store::<String, Entry>(learn::MODEL_STORE).unwrap();
        learn::predict(
            "Maria",
            "Brazil",
            learn::counts_in(|k| store.get(&k.to_string()).ok().flatten()),
        )
        .unwrap()
    };
    let maria_before = maria(&first);
    first.close().unwrap();

    // Reopened: the same model, before any new user.
    let second = app(&broker, &client, state.path());
    let (after, eval_after) = wait_for(&second, 250);
    assert_eq!(after, before);
    assert_eq!(eval_after, eval_before);
    assert_eq!(maria(&second), maria_before);
    // Users polled again after the restart are not learned twice; new ones are.
    produce(broker.bootstrap_servers(), &users[200..]);
    let (more, eval_more) = wait_for(&second, 400);
    assert!(more.trained_on > before.trained_on);
    assert!(eval_more.seen > eval_before.seen);
    second.close().unwrap();
}
