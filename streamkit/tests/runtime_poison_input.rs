//! The poison-input figure (issue 15): a stateful topology — parse JSON, select a key,
//! repartition, count per key, plus an enriched copy of each event to a sink — fed 1 % of each
//! kind of poison record: bad JSON, an event whose enriched output is over the producer's
//! `message.max.bytes`, an event with no user (a null grouping key) and an event that makes a
//! user closure panic. The first, second and fourth kinds end up in the dead-letter topic with
//! their reason in headers; the null keys are dropped by the count and counted
//! (`reason="null_key"`), as Kafka Streams' aggregations drop them. Everything else is exact:
//! the enriched output and every count update equal an oracle's. At least once and exactly
//! once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use streamkit::config::ProcessingGuarantee;
use streamkit::error_policy::dead_letter_headers as h;
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

const RECORDS: usize = 2000;
/// The producer's limit on a record, under the enriched output of a `Big` event.
const MAX_MESSAGE_BYTES: usize = 20_000;
const DLQ: &str = "poison-dlq";

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
struct Event {
    user: Option<String>,
    amount: u32,
    /// Length of the note the enriched output carries.
    note: usize,
}

/// What input record `i` is: 1 % of each kind of poison, at fixed places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Good,
    /// Not JSON: the deserialization handler's.
    BadJson,
    /// Its enriched output is over `MAX_MESSAGE_BYTES`: the production handler's.
    Big,
    /// No user, so a null key where the count needs one: dropped by the count.
    NullKey,
    /// Amount 13, on which the scoring closure panics: the processing handler's.
    Panics,
}

fn kind(i: usize) -> Kind {
    match i % 100 {
        7 => Kind::BadJson,
        31 => Kind::Big,
        53 => Kind::NullKey,
        89 => Kind::Panics,
        _ => Kind::Good,
    }
}

fn event(i: usize) -> Event {
    Event {
        user: (kind(i) != Kind::NullKey).then(|| format!("u{}", i % 37)),
        amount: if kind(i) == Kind::Panics {
            13
        } else {
            (i % 12) as u32
        },
        note: if kind(i) == Kind::Big {
            MAX_MESSAGE_BYTES + 1000
        } else {
            i % 20
        },
    }
}

fn input() -> Vec<(String, Vec<u8>)> {
    (0..RECORDS)
        .map(|i| {
            let value = match kind(i) {
                Kind::BadJson => format!("{{\"user\": \"u{i}\", \"amount\": ").into_bytes(),
                _ => serde_json::to_vec(&event(i)).unwrap(),
            };
            (format!("e{i}"), value)
        })
        .collect()
}

/// The enriched copy of an event.
fn enrich(e: &Event) -> String {
    format!(
        "{}|{}|{}",
        e.user.as_deref().unwrap_or("-"),
        e.amount * 10,
        "n".repeat(e.note)
    )
}

fn topology() -> Topology {
    let b = StreamsBuilder::new();
    let scored = b
        .stream(
            "events",
            Consumed::with(Serdes::string(), Serdes::json::<Event>()),
        )
        .map_values(|e: Event| {
            assert_ne!(e.amount, 13, "unlucky amount");
            e
        });
    scored.map_values(|e: Event| enrich(&e)).to(
        "enriched",
        Produced::with(Serdes::string(), Serdes::string()),
    );
    scored
        .select_key(|_, e: &Event| e.user.clone())
        .group_by_key(Grouped::with(
            Serdes::option(Serdes::string()),
            Serdes::json::<Event>(),
        ))
        .count(Materialized::named("per-user"))
        .to_stream()
        .to(
            "user-counts",
            Produced::with(Serdes::option(Serdes::string()), Serdes::i64()),
        );
    b.build().unwrap()
}

fn poison_figure(guarantee: ProcessingGuarantee, app_id: &str) {
    let broker = EmbeddedBroker::start().unwrap();
    for (topic, partitions) in [("events", 2), ("enriched", 2), ("user-counts", 2), (DLQ, 1)] {
        broker.create_topic(topic, partitions).unwrap();
    }
    let servers = broker.bootstrap_servers().to_string();
    let state = tempfile::tempdir().unwrap();
    let app = KafkaStreams::new(
        topology(),
        StreamsConfig::new(app_id)
            .embedded(&broker)
            .state_dir(state.path())
            .processing_guarantee(guarantee)
            .commit_interval(Duration::from_millis(200))
            .set("producer.message.max.bytes", MAX_MESSAGE_BYTES.to_string())
            .default_deserialization_handler(DeserializationHandler::DeadLetter(DLQ.into()))
            .processing_error_handler(ProcessingErrorHandler::DeadLetter(DLQ.into()))
            .production_error_handler(ProductionErrorHandler::DeadLetter(DLQ.into())),
    )
    .unwrap();
    app.start().unwrap();
    assert!(app.wait_for_state(StreamsState::Running, Duration::from_secs(30)));
    common::produce(&servers, "events", &input());

    // Everything is processed and committed: its output is in the topics.
    common::wait_committed(&servers, app_id, "events", 2, RECORDS as i64);
    let poison = |k: Kind| (0..RECORDS).filter(move |&i| kind(i) == k);
    let per_kind = RECORDS / 100;
    for k in [Kind::BadJson, Kind::Big, Kind::NullKey, Kind::Panics] {
        assert_eq!(poison(k).count(), per_kind, "{k:?}");
    }

    // The oracle.
    let mut enriched_expected: BTreeMap<String, String> = BTreeMap::new();
    let mut counts_expected: BTreeMap<String, i64> = BTreeMap::new();
    for i in 0..RECORDS {
        let e = event(i);
        match kind(i) {
            Kind::BadJson | Kind::Panics => continue,
            Kind::Big => {}
            Kind::Good | Kind::NullKey => {
                enriched_expected.insert(format!("e{i}"), enrich(&e));
            }
        }
        if let Some(user) = e.user {
            *counts_expected.entry(user).or_default() += 1;
        }
    }

    let enriched = common::read_all(&servers, "enriched", Duration::from_secs(30));
    let got: BTreeMap<String, String> = enriched
        .iter()
        .map(|r| (r.key_str().to_string(), r.value_str().to_string()))
        .collect();
    assert_eq!(enriched.len(), got.len(), "an enriched event written twice");
    assert_eq!(got, enriched_expected);

    // Every count update, in order per user: 1, 2, …, n.
    let updates = common::read_all(&servers, "user-counts", Duration::from_secs(30));
    let mut per_user: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in &updates {
        assert!(r.key.is_some(), "a null key was counted");
        let count = i64::from_be_bytes(r.value.as_deref().unwrap().try_into().unwrap());
        per_user
            .entry(r.key_str().to_string())
            .or_default()
            .push(count);
    }
    assert_eq!(
        per_user.keys().collect::<Vec<_>>(),
        counts_expected.keys().collect::<Vec<_>>()
    );
    for (user, n) in &counts_expected {
        assert_eq!(per_user[user], (1..=*n).collect::<Vec<_>>(), "{user}");
    }

    // The dead letters: each kind's records, as read, with its reason.
    let dead = common::read_all(&servers, DLQ, Duration::from_secs(30));
    let mut by_stage: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let raw = input();
    for d in &dead {
        let stage = d.headers[h::STAGE].clone();
        let i: usize = d.key_str()[1..].parse().unwrap();
        assert_eq!(
            d.value.as_deref(),
            Some(raw[i].1.as_slice()),
            "as read: {i}"
        );
        assert_eq!(d.headers[h::TOPIC], "events");
        assert!(d.headers.contains_key(h::PARTITION) && d.headers.contains_key(h::OFFSET));
        let error = &d.headers[h::ERROR];
        match (kind(i), stage.as_str()) {
            (Kind::BadJson, "value") => {
                assert!(error.contains("json"), "{error}");
                assert!(d.headers[h::NODE].starts_with("KSTREAM-SOURCE-"));
            }
            (Kind::Big, "production") => {
                assert!(error.contains("too large"), "{error}");
                assert_eq!(d.headers[h::TARGET_TOPIC], "enriched");
            }
            (Kind::Panics, "processing") => {
                assert!(
                    error.starts_with("panicked: ") && error.contains("unlucky amount"),
                    "{error}"
                );
                assert!(d.headers[h::NODE].starts_with("KSTREAM-MAPVALUES-"));
            }
            other => panic!("record {i} dead-lettered as {other:?}: {error}"),
        }
        by_stage
            .entry(stage)
            .or_default()
            .insert(d.key_str().into());
    }
    let keys = |k: Kind| poison(k).map(|i| format!("e{i}")).collect::<BTreeSet<_>>();
    assert_eq!(dead.len(), 3 * per_kind, "a dead letter written twice");
    assert_eq!(by_stage["value"], keys(Kind::BadJson));
    assert_eq!(by_stage["production"], keys(Kind::Big));
    assert_eq!(by_stage["processing"], keys(Kind::Panics));

    let m = app.metrics();
    assert_eq!(m.dropped_records("deserialization"), per_kind as u64);
    assert_eq!(m.dropped_records("production"), per_kind as u64);
    assert_eq!(m.dropped_records("error"), per_kind as u64);
    assert_eq!(m.dropped_records("null_key"), per_kind as u64);
    assert_eq!(m.dead_letter_records(), 3 * per_kind as u64);
    assert_eq!(app.state(), StreamsState::Running);
    app.close().unwrap();
}

#[test]
fn one_percent_of_each_poison_kind_is_dead_lettered_or_dropped_and_the_rest_is_exact() {
    poison_figure(ProcessingGuarantee::AtLeastOnce, "poison-alos");
}

#[test]
fn under_exactly_once_one_percent_of_each_poison_kind_leaves_the_rest_exact() {
    poison_figure(ProcessingGuarantee::ExactlyOnce, "poison-eos");
}
