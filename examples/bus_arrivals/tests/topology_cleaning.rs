//! Cleaning and delay computation through the test driver, on hand-written rows: the
//! midnight wrap, missing values, malformed lines, running means kept in the state store,
//! the vehicle table and the per-line hopping windows.

use bus_arrivals::clean::ProcessedRow;
use bus_arrivals::topology::{
    self, CLEAN_STATE, CleanState, DelayStats, LINE_STATS, TopologyConfig, VEHICLES,
};
use streamkit::error_policy::dead_letter_headers;
use streamkit::prelude::*;
use streamkit::window::WindowedSerde;

const HEADER_FREE_ROW: &str = "2017-06-01 00:03:34,0,B8,4 AV/95 ST,40.616104,-74.031143,BROWNSVILLE ROCKAWAY AV,40.656048,-73.907379,NYCT_430,40.635170,-73.960803,FOSTER AV/E 18 ST,approaching,76.0,2017-06-01 00:03:59,24:06:14";

/// A row with its fields replaced at the given indexes.
fn row(changes: &[(usize, &str)]) -> String {
    let mut fields: Vec<String> = HEADER_FREE_ROW.split(',').map(String::from).collect();
    for (i, v) in changes {
        fields[*i] = v.to_string();
    }
    fields.join(",")
}

struct Harness {
    driver: TopologyTestDriver,
}

impl Harness {
    fn new() -> Self {
        let topology = topology::topology(&TopologyConfig::default()).unwrap();
        Harness {
            driver: {
                let d = TopologyTestDriver::new(topology).unwrap();
                d.set_commit_every(1_000);
                d
            },
        }
    }

    fn pipe(&self, vehicle: &str, line: &str) {
        self.driver
            .input_topic(topology::POSITIONS, Serdes::string(), Serdes::string())
            .pipe(vehicle.into(), line.into())
            .unwrap();
    }

    fn processed(&self) -> Vec<ProcessedRow> {
        self.driver
            .output_topic(
                topology::PROCESSED,
                Serdes::string(),
                Serdes::json::<ProcessedRow>(),
            )
            .read_values()
    }

    fn dead_letters(&self) -> Vec<Record<String, Vec<u8>>> {
        self.driver
            .output_topic(topology::DEAD_LETTERS, Serdes::string(), Serdes::bytes())
            .read_records()
    }

    fn state(&self) -> CleanState {
        self.driver
            .key_value_store::<String, CleanState>(CLEAN_STATE)
            .unwrap()
            .get(&"state".to_string())
            .unwrap()
            .unwrap()
    }
}

#[test]
fn delays_are_expected_minus_scheduled_across_midnight() {
    let h = Harness::new();
    // Expected 00:03:59 on June 1st, scheduled "24:06:14": 00:06:14 of the same calendar
    // day, 2.25 minutes early.
    h.pipe("NYCT_430", HEADER_FREE_ROW);
    // Scheduled 23:58:00 the evening before an expected 00:01:30: 3.5 minutes late.
    h.pipe(
        "NYCT_431",
        &row(&[
            (9, "NYCT_431"),
            (15, "2017-06-02 00:01:30"),
            (16, "23:58:00"),
        ]),
    );
    // Scheduled after midnight, expected before it: 00:02:00 vs 23:59:00, 3 minutes early.
    h.pipe(
        "NYCT_432",
        &row(&[
            (9, "NYCT_432"),
            (0, "2017-06-01 23:55:00"),
            (15, "2017-06-01 23:59:00"),
            (16, "24:02:00"),
        ]),
    );
    // An ordinary daytime row, 12 minutes late.
    h.pipe(
        "NYCT_433",
        &row(&[
            (9, "NYCT_433"),
            (0, "2017-06-01 08:10:00"),
            (15, "2017-06-01 08:20:00"),
            (16, "08:08:00"),
        ]),
    );
    let rows = h.processed();
    let delays: Vec<(String, f64)> = rows
        .iter()
        .map(|r| (r.vehicle.clone(), r.delay_minutes))
        .collect();
    assert_eq!(
        delays,
        vec![
            ("NYCT_430".to_string(), -2.25),
            ("NYCT_431".to_string(), 3.5),
            ("NYCT_432".to_string(), -3.0),
            ("NYCT_433".to_string(), 12.0),
        ]
    );
    // Timestamps split into numeric parts; 24:06:14 is hour 0.
    let first = &rows[0];
    assert_eq!(
        (
            first.recorded_year,
            first.recorded_month,
            first.recorded_day,
            first.recorded_hour,
            first.recorded_minute,
            first.recorded_second,
            first.recorded_weekday
        ),
        (2017, 6, 1, 0, 3, 34, 3)
    );
    assert_eq!(
        (
            first.expected_hour,
            first.expected_minute,
            first.expected_second
        ),
        (0, 3, 59)
    );
    assert_eq!(
        (
            first.scheduled_hour,
            first.scheduled_minute,
            first.scheduled_second
        ),
        (0, 6, 14)
    );
    assert_eq!(first.line, "B8");
    assert_eq!(first.proximity, "approaching");
    assert_eq!(first.distance_from_stop, 76.0);
}

#[test]
fn missing_values_are_filled_and_rows_without_arrival_times_dropped() {
    let h = Harness::new();
    // Two complete rows: DistanceFromStop 100 and 300, latitude 40.0 and 41.0.
    h.pipe("NYCT_1", &row(&[(9, "NYCT_1"), (14, "100"), (10, "40.0")]));
    h.pipe("NYCT_2", &row(&[(9, "NYCT_2"), (14, "300"), (10, "41.0")]));
    // Missing distance, latitude, next stop and proximity: the means 200 and 40.5, empty strings.
    h.pipe(
        "NYCT_3",
        &row(&[(9, "NYCT_3"), (14, ""), (10, ""), (12, ""), (13, "")]),
    );
    // No expected / no scheduled arrival time: dropped, but their numbers still count
    // towards the means (distance 600 → the mean of 100, 300, 600, 600 is 400).
    h.pipe("NYCT_4", &row(&[(9, "NYCT_4"), (15, ""), (14, "600")]));
    h.pipe("NYCT_5", &row(&[(9, "NYCT_5"), (16, " "), (14, "600")]));
    h.pipe("NYCT_6", &row(&[(9, "NYCT_6"), (14, "")]));

    let rows = h.processed();
    let vehicles: Vec<&str> = rows.iter().map(|r| r.vehicle.as_str()).collect();
    assert_eq!(vehicles, ["NYCT_1", "NYCT_2", "NYCT_3", "NYCT_6"]);
    let third = &rows[2];
    assert_eq!(third.distance_from_stop, 200.0);
    assert_eq!(third.latitude, 40.5);
    assert_eq!(third.next_stop, "");
    assert_eq!(third.proximity, "");
    assert_eq!(rows[3].distance_from_stop, 400.0);

    let state = h.state();
    assert_eq!(
        (state.rows, state.missing_arrival, state.malformed),
        (4, 2, 0)
    );
    // DistanceFromStop is the last numeric column: 4 values summing to 1600.
    assert_eq!(state.means.columns[6], (4, 1_600.0));
    assert_eq!(
        h.driver.metrics().dropped_records("missing-arrival-time"),
        2
    );
}

#[test]
fn malformed_lines_go_to_the_dead_letter_topic_as_read() {
    let h = Harness::new();
    let short = "2017-06-01 00:03:34,0,B8,4 AV/95 ST,40.61,-74.03,BROWNSVILLE,40.65,-73.90,NYCT_7";
    let bad_number = row(&[(9, "NYCT_8"), (14, "far")]);
    let bad_date = row(&[(9, "NYCT_9"), (15, "2017-13-45 99:00:00")]);
    let bad_schedule = row(&[(9, "NYCT_10"), (16, "7 pm")]);
    let unterminated_quote = format!("{HEADER_FREE_ROW},\"oops");
    h.pipe("NYCT_7", short);
    h.pipe("NYCT_8", &bad_number);
    h.pipe("NYCT_9", &bad_date);
    h.pipe("NYCT_10", &bad_schedule);
    h.pipe("NYCT_11", &unterminated_quote);
    h.pipe("NYCT_430", HEADER_FREE_ROW);
    // Bytes that are not UTF-8 at all are dead-lettered by the source.
    h.driver
        .input_topic(topology::POSITIONS, Serdes::string(), Serdes::bytes())
        .pipe("NYCT_12".into(), vec![0xff, 0xfe, b',', 0x80])
        .unwrap();

    assert_eq!(h.processed().len(), 1);
    let dead = h.dead_letters();
    let values: Vec<&[u8]> = dead.iter().map(|r| r.value.as_slice()).collect();
    assert_eq!(
        values,
        [
            short.as_bytes(),
            bad_number.as_bytes(),
            bad_date.as_bytes(),
            bad_schedule.as_bytes(),
            unterminated_quote.as_bytes(),
            &[0xff, 0xfe, b',', 0x80][..],
        ]
    );
    let errors: Vec<&str> = dead[..5]
        .iter()
        .map(|r| r.headers.last_str(dead_letter_headers::ERROR).unwrap())
        .collect();
    assert_eq!(errors[0], "expected 17 fields, found 10");
    assert!(
        errors[1].contains("DistanceFromStop") && errors[1].contains("\"far\""),
        "{}",
        errors[1]
    );
    assert!(errors[2].contains("ExpectedArrivalTime"), "{}", errors[2]);
    assert!(errors[3].contains("ScheduledArrivalTime"), "{}", errors[3]);
    assert_eq!(errors[4], "expected 17 fields, found 18");
    assert_eq!(
        dead[0].headers.last_str(dead_letter_headers::TOPIC),
        Some(topology::POSITIONS)
    );
    assert_eq!(dead[5].key, "NYCT_12");
    assert_eq!(
        dead[5].headers.last_str(dead_letter_headers::STAGE),
        Some("value")
    );
    // Five malformed lines counted by the cleaning step (the sixth never reached it).
    assert_eq!(h.state().malformed, 5);
}

#[test]
fn the_vehicle_table_keeps_the_latest_report_and_lines_get_windowed_statistics() {
    let h = Harness::new();
    // Out of order: the 08:11 report arrives after the 08:12 one and must not replace it.
    for (time, expected, delay_scheduled) in [
        ("08:10:00", "08:20:00", "08:18:00"),
        ("08:12:00", "08:22:00", "08:16:00"),
        ("08:11:00", "08:21:00", "08:21:00"),
    ] {
        h.pipe(
            "NYCT_1",
            &row(&[
                (0, &format!("2017-06-01 {time}")),
                (9, "NYCT_1"),
                (2, "M15"),
                (15, &format!("2017-06-01 {expected}")),
                (16, delay_scheduled),
            ]),
        );
    }
    let vehicles = h
        .driver
        .key_value_store::<String, ProcessedRow>(VEHICLES)
        .unwrap();
    let latest = vehicles.get(&"NYCT_1".to_string()).unwrap().unwrap();
    assert_eq!(latest.recorded_at_time, "2017-06-01 08:12:00");
    assert_eq!(latest.delay_minutes, 6.0);

    // Delays 2, 6, 0 at 08:10, 08:12, 08:11: every 10-minute window that holds all three
    // (starts 08:03 … 08:10) has count 3, mean 8/3, min 0, max 6.
    let stats = h
        .driver
        .window_store::<String, DelayStats>(LINE_STATS)
        .unwrap();
    let all = stats.fetch(&"M15".to_string(), i64::MIN, i64::MAX).unwrap();
    let start_0810 = bus_arrivals::clean::parse_datetime("2017-06-01 08:10:00").unwrap() * 1_000;
    let full: Vec<&(i64, DelayStats)> = all.iter().filter(|(_, s)| s.count == 3).collect();
    assert_eq!(full.len(), 8, "{all:?}");
    assert!(full.iter().all(|(start, s)| *start <= start_0810
        && *start > start_0810 - 600_000
        && s.min == 0.0
        && s.max == 6.0
        && (s.mean() - 8.0 / 3.0).abs() < 1e-9));
    // Windows starting 08:01, 08:02, 08:11 and 08:12 hold one or two of them.
    assert_eq!(all.len(), 12, "{all:?}");

    // Final results: the window starting 08:01 closed when stream time reached 08:12 (end
    // + 1 min grace); a report at 08:30 on another line closes the rest. Each leaves once.
    let finals = h.driver.output_topic(
        topology::LINE_DELAYS,
        WindowedSerde::time(Serdes::string(), 600_000),
        Serdes::json::<DelayStats>(),
    );
    assert_eq!(finals.queue_size(), 1);
    h.pipe(
        "NYCT_2",
        &row(&[
            (0, "2017-06-01 08:30:00"),
            (9, "NYCT_2"),
            (2, "B63"),
            (15, "2017-06-01 08:31:00"),
            (16, "08:31:00"),
        ]),
    );
    let emitted: Vec<(String, i64, u64)> = finals
        .read_key_values()
        .into_iter()
        .map(|(k, s)| (k.key, k.window.start, s.count))
        .collect();
    let m15: Vec<&(String, i64, u64)> = emitted.iter().filter(|(l, _, _)| l == "M15").collect();
    assert_eq!(m15.len(), 12, "{emitted:?}");
    assert_eq!(m15.iter().filter(|(_, _, n)| *n == 3).count(), 8);
}
