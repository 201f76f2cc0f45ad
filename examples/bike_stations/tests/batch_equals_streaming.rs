//! The daily batch, run bounded on the embedded broker over a simulated day (and the records
//! before and after it), computes exactly the hourly availability the streaming topology
//! emits for that day: the same topology steps, over the same records, stopped at the end.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bike_stations::batch::{self, Cluster};
use bike_stations::topology::{self, BatchConfig};
use bike_stations::{BATCH_LOOKBACK, produce};
use streamkit::prelude::*;
use streamkit::testing::EmbeddedBroker;

#[test]
fn the_bounded_batch_equals_the_streaming_hours_of_the_same_day() {
    let day = common::test_day();
    let records = common::day_records(day);
    let broker = EmbeddedBroker::start().unwrap();
    let cluster = Cluster {
        servers: broker.bootstrap_servers().to_string(),
        embedded: Some(broker.clone()),
    };
    streamkit::runtime::ensure_topics(
        &StreamsConfig::new("topics").embedded(&broker),
        &topology::TOPICS,
    )
    .unwrap();
    produce(&cluster.servers, &records).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = BatchConfig {
        day,
        lookback: BATCH_LOOKBACK,
        postgres_url: None,
    };
    let report = batch::run(&cluster, &config, dir.path(), Duration::from_secs(120)).unwrap();
    assert_eq!(report.day, "2026-12-02");
    assert_eq!(report.application_id, "bike-stations-batch-2026-12-02");
    assert_eq!(
        report.offsets,
        (0, records.len() as i64),
        "bounded by the end of the partition"
    );
    assert!(!report.loaded);

    let batch: BTreeMap<(String, i64), _> = report
        .hours
        .iter()
        .map(|(w, a)| ((w.key.clone(), w.window.start), a.clone()))
        .collect();
    let streaming = common::streaming_hours(&records, day);
    assert!(streaming.len() > 600, "{} station-hours", streaming.len());
    assert_eq!(batch.len(), streaming.len());
    for (k, a) in &streaming {
        assert_eq!(batch.get(k), Some(a), "{k:?}");
    }
    assert_eq!(report.facts, streaming.len());
    assert_eq!(report.stations, 50);
    assert_eq!(
        report.bikes_taken,
        streaming.values().map(|a| a.taken).sum::<i64>()
    );
    assert!(report.bikes_taken > 1000, "{}", report.bikes_taken);
}
