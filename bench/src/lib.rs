//! Shared pieces of the benchmarks: deterministic inputs, process measurements and reporting.

use std::time::Duration;

pub mod report;

/// A deterministic xorshift generator, so every run sees the same input.
pub struct Rng(pub u64);

impl Rng {
    /// The next pseudo-random number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Sends streamkit's and librdkafka's warnings and errors to stderr (the harness shows its tail
/// when a run fails); `RUST_LOG=info` for more.
pub fn init_logs() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// `n` records: (key from `keys` distinct values, timestamp in ms), time advancing by about
/// 1 ms per record with some disorder. Keys are skewed (a Zipf-like square law) when `skewed`.
pub fn records(n: usize, keys: u64, skewed: bool) -> Vec<(String, i64)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|i| {
            let r = rng.next_u64();
            let k = if skewed {
                let x = (r % 1_000_000) as f64 / 1_000_000.0;
                ((x * x) * keys as f64) as u64
            } else {
                r % keys
            };
            (format!("key-{k:06}"), i as i64 - (r % 50) as i64)
        })
        .collect()
}

/// The broker workloads' input record `i`: a key out of `keys` distinct values and a JSON
/// value of about 100 bytes. Deterministic in `i`.
pub fn kafka_record(i: u64, keys: u64) -> (String, String) {
    let mut rng = Rng(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let r = rng.next_u64();
    let key = format!("key-{:06}", r % keys);
    let value = format!(
        r#"{{"id":{i},"sensor":"{key}","reading":{:.3},"status":"ok","note":"bench-{:08x}"}}"#,
        (rng.next_u64() % 100_000) as f64 / 1000.0,
        rng.next_u64() as u32,
    );
    (key, value)
}

/// Median of measurements (the upper middle of an even count); `NaN` when there are none.
pub fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Records per second.
pub fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system) this process has used so far, from `/proc/self/stat`.
pub fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_stat_cpu(&s))
        .unwrap_or(f64::NAN)
}

/// utime + stime of a `/proc/<pid>/stat` line, in seconds.
pub fn parse_stat_cpu(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces: fields are counted after its `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// Peak resident set size of this process in KiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_status_kib(&s, "VmHWM:"))
        .unwrap_or(0)
}

/// A `Name:   123 kB` field of `/proc/<pid>/status`.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
        assert!(median(vec![]).is_nan());
    }

    #[test]
    fn stat_cpu_counts_fields_after_the_command_name() {
        let stat = "4242 (my (odd) prog) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100";
        assert_eq!(parse_stat_cpu(stat), Some(3.0));
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn status_field_in_kib() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t  1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(1234));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn kafka_records_are_deterministic_json_of_about_100_bytes() {
        let (k, v) = kafka_record(7, 10_000);
        assert_eq!((k.clone(), v.clone()), kafka_record(7, 10_000));
        let json: serde_json::Value = serde_json::from_str(&v).unwrap();
        assert_eq!(json["sensor"].as_str(), Some(k.as_str()));
        assert!((80..=120).contains(&v.len()), "{} bytes: {v}", v.len());
        let keys: std::collections::HashSet<_> =
            (0..50_000).map(|i| kafka_record(i, 10_000).0).collect();
        assert!(keys.len() > 9_900 && keys.len() <= 10_000);
    }
}
