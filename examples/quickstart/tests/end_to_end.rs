//! The quickstart runs end to end on the embedded broker with exact results, and its topology
//! behaves through the test driver.

use streamkit::prelude::*;

#[test]
fn runs_end_to_end_on_the_embedded_broker() {
    let dir = std::env::temp_dir().join(format!("quickstart-test-{}", std::process::id()));
    let summary = quickstart::run(quickstart::Args {
        bootstrap_servers: None,
        records: 300,
        application_id: "quickstart-test".into(),
        state_dir: dir.clone(),
    })
    .unwrap();
    assert_eq!(summary.malformed, 6);
    assert_eq!(summary.dead_lettered, 6);
    assert_eq!(summary.late_per_line, summary.expected_late_per_line);
    assert_eq!(summary.late_per_line.values().sum::<i64>(), 120);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_topology_counts_late_buses_per_line() {
    let d = TopologyTestDriver::new(quickstart::topology().unwrap()).unwrap();
    let input = d.input_topic(quickstart::POSITIONS, Serdes::string(), Serdes::bytes());
    for (vehicle, bytes, _) in quickstart::reports(100) {
        input.pipe(vehicle, bytes).unwrap();
    }
    let out = d.output_topic(quickstart::LATE_PER_LINE, Serdes::string(), Serdes::i64());
    let mut last = std::collections::BTreeMap::new();
    for (line, n) in out.read_key_values() {
        last.insert(line, n);
    }
    let expected = quickstart::reports(100)
        .into_iter()
        .filter_map(|(_, _, p)| p)
        .filter(|p| p.delay_minutes > 5.0)
        .fold(std::collections::BTreeMap::new(), |mut m, p| {
            *m.entry(p.line).or_insert(0i64) += 1;
            m
        });
    assert_eq!(last, expected);
    assert_eq!(
        d.output_topic(quickstart::DEAD_LETTERS, Serdes::bytes(), Serdes::bytes())
            .queue_size(),
        2
    );
}
