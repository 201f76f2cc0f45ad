//! The quickstart runs end to end on the embedded broker with exact results, and its topology
//! behaves the same through the test driver.

use std::collections::BTreeMap;

use streamkit::prelude::*;

#[test]
fn runs_end_to_end_on_the_embedded_broker() {
    let summary = quickstart::run(quickstart::Args {
        application_id: "quickstart-end-to-end".into(),
        ..quickstart::Args::embedded(300)
    })
    .expect("the quickstart runs");
    assert_eq!(summary.records_in, 300);
    // Every 50th report is malformed; the generator is deterministic.
    assert_eq!(summary.malformed, 6);
    assert_eq!(summary.dead_lettered, 6);
    assert_eq!(summary.expected_late, 102);
    assert_eq!(summary.late_out, 102);
    assert_eq!(summary.unexpected, 0);
    assert_eq!(
        summary.late_per_line,
        BTreeMap::from([
            ("B63".to_string(), 20),
            ("BX12".to_string(), 20),
            ("M15".to_string(), 20),
            ("Q58".to_string(), 22),
            ("S79".to_string(), 20),
        ])
    );
    assert!(summary.is_complete());
}

#[test]
fn the_topology_keeps_late_buses_and_dead_letters_the_rest() {
    let driver = TopologyTestDriver::new(quickstart::topology().unwrap()).unwrap();
    let input = driver.input_topic(quickstart::POSITIONS, Serdes::string(), Serdes::bytes());
    let reports = quickstart::reports(100, 1_000);
    for r in &reports {
        input.pipe(r.vehicle.clone(), r.bytes.clone()).unwrap();
    }
    let expected: Vec<(String, String)> = reports
        .iter()
        .filter_map(|r| r.position.as_ref())
        .filter(|p| p.delay_minutes > quickstart::LATE_AFTER_MINUTES)
        .map(|p| (p.line.clone(), quickstart::describe(p)))
        .collect();
    assert_eq!(expected.len(), 33);
    let out = driver.output_topic(quickstart::LATE_BUSES, Serdes::string(), Serdes::string());
    assert_eq!(out.read_key_values(), expected);

    let dlq = driver.output_topic(quickstart::DEAD_LETTERS, Serdes::string(), Serdes::bytes());
    let dead: Vec<Option<u64>> = dlq
        .read_values()
        .iter()
        .map(|v| quickstart::report_id(v))
        .collect();
    assert_eq!(dead, vec![Some(1_049), Some(1_099)]);
}

#[test]
fn report_ids_are_read_from_outputs_and_malformed_reports() {
    assert_eq!(
        quickstart::report_id(b"#42 line M15 bus MTA_7002"),
        Some(42)
    );
    assert_eq!(quickstart::report_id(br#"{"id":7,"line":"M1"#), Some(7));
    assert_eq!(quickstart::report_id(b"garbage"), None);
    assert_eq!(quickstart::report_id(b"#"), None);
}
