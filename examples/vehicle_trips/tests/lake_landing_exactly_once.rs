//! Landing through the topology: every offset in exactly one file, named by partition and
//! offset range, also when the records are processed again from an older commit.

mod common;

use std::collections::BTreeSet;

use vehicle_trips::lake::parse_landing_name;
use vehicle_trips::topology::POSITIONS;

#[test]
fn every_offset_lands_once_even_when_replayed_from_an_older_commit() {
    let (_dir, lake) = common::temp_lake();
    let mut records = common::raw(&common::simulated_reports());
    // Something that is not a report lands too: landing keeps what arrived.
    records.insert(10, ("t1".into(), "not json".into(), records[10].2));
    let n = records.len();
    assert!(n > 1000, "{n}");

    // The first run processes two thirds and lands them.
    let first = n * 2 / 3;
    common::land(&lake, &records[..first]).close().unwrap();
    let files = lake.landing_files(POSITIONS).unwrap();
    assert!(!files.is_empty());
    assert_eq!(lake.landed_up_to(POSITIONS, 0).unwrap(), first as i64 - 1);

    // A crash: the next run starts from an older commit (offset 0 here, in a fresh driver
    // with its stores lost) and processes everything again.
    common::land(&lake, &records).close().unwrap();
    let files = lake.landing_files(POSITIONS).unwrap();
    let mut offsets = BTreeSet::new();
    let mut rows = 0;
    for (path, range) in &files {
        // Named by partition and range, under the hour of its records.
        assert!(
            path.starts_with("landing/vehicle-positions/date=2026-12-02/hour=1"),
            "{path}"
        );
        let name = path.rsplit('/').next().unwrap();
        assert_eq!(parse_landing_name(name), Some(*range));
        let batches = vehicle_trips::lake::from_parquet(lake.get(path).unwrap()).unwrap();
        for b in &batches {
            for r in vehicle_trips::lake::landing_rows(b).unwrap() {
                assert!(r.offset >= range.first && r.offset <= range.last);
                assert!(offsets.insert(r.offset), "offset {} landed twice", r.offset);
                assert_eq!(
                    (
                        r.key.as_ref().unwrap(),
                        r.value.as_ref().unwrap(),
                        r.timestamp
                    ),
                    (
                        &records[r.offset as usize].0,
                        &records[r.offset as usize].1,
                        records[r.offset as usize].2
                    )
                );
                rows += 1;
            }
        }
    }
    assert_eq!(rows, n);
    assert_eq!(offsets, (0..n as i64).collect::<BTreeSet<_>>());
    // Both hours have files; the second run's first file starts where the first run stopped.
    let hours: BTreeSet<&str> = files
        .iter()
        .map(|(p, _)| p.rsplit_once('/').unwrap().0)
        .collect();
    assert_eq!(hours.len(), 2, "{hours:?}");
    assert!(files.iter().any(|(_, r)| r.first == first as i64));
}
