//! Shared pieces of the benchmarks: deterministic inputs and reporting.

use std::time::Duration;

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

/// Median of measurements.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Records per second.
pub fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}
