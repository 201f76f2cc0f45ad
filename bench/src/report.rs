//! Measurements of one contender run, and the Markdown tables of `bench/results/latest.md`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::median;

/// Prefix of the one line on stdout by which a contender process reports its run.
pub const RESULT_PREFIX: &str = "BENCH_RESULT ";

/// One run of one contender: what it processed, in how long, with how much CPU and memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Records (or events) processed.
    pub records: u64,
    /// Wall-clock seconds from the first record to the last one done (output flushed where
    /// the contender controls it).
    pub seconds: f64,
    /// CPU seconds (user + system) the contender's process used over the same interval.
    pub cpu_seconds: f64,
    /// Peak resident set size of the contender's process, KiB.
    pub peak_rss_kib: u64,
}

impl Run {
    /// Records per wall-clock second.
    pub fn rate(&self) -> f64 {
        self.records as f64 / self.seconds
    }

    /// Records per CPU-second of the contender's process (the Nexmark "per core" metric).
    pub fn per_core(&self) -> f64 {
        self.records as f64 / self.cpu_seconds
    }

    /// The line a contender prints for the harness.
    pub fn to_line(&self) -> String {
        format!(
            "{RESULT_PREFIX}{}",
            serde_json::to_string(self).expect("a run serializes")
        )
    }

    /// The run reported in a contender's stdout (its last result line), if any.
    pub fn from_output(stdout: &str) -> Option<Run> {
        stdout
            .lines()
            .rev()
            // Anywhere in the line: some runtimes (Faust) prefix what they print.
            .find_map(|l| l.find(RESULT_PREFIX).map(|i| &l[i + RESULT_PREFIX.len()..]))
            .and_then(|j| serde_json::from_str(j.trim()).ok())
    }
}

/// Which number of a run a table compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Records per wall-clock second.
    Rate,
    /// Records per CPU-second.
    PerCore,
    /// Peak RSS (MiB; lower is better).
    PeakRss,
}

impl Metric {
    fn of(self, run: &Run) -> f64 {
        match self {
            Metric::Rate => run.rate(),
            Metric::PerCore => run.per_core(),
            Metric::PeakRss => run.peak_rss_kib as f64 / 1024.0,
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Metric::Rate => "records/s",
            Metric::PerCore => "records per CPU-second",
            Metric::PeakRss => "peak RSS, MiB",
        }
    }
}

/// One contender's runs (an error text for a run that failed).
#[derive(Debug, Clone)]
pub struct Contender {
    /// Display name.
    pub name: String,
    /// Runs in the order made.
    pub runs: Vec<Result<Run, String>>,
}

impl Contender {
    /// The median of `metric` over the successful runs (`NaN` when none succeeded).
    pub fn median(&self, metric: Metric) -> f64 {
        median(
            self.runs
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .map(|r| metric.of(r))
                .collect(),
        )
    }
}

/// A target a table checks: the subject's ratio against `row` in `metric` (`subject ÷ row`,
/// or for peak RSS `row ÷ subject`, how many times smaller) at least `ratio`.
#[derive(Debug, Clone)]
pub struct Target {
    /// The row compared with the subject.
    pub row: String,
    /// The metric compared (a rate table also shows per CPU-second and peak RSS).
    pub metric: Metric,
    /// The ratio the subject's median must reach against that row's median.
    pub ratio: f64,
}

/// Contenders side by side for one metric, with the subject's ratio against every other row.
#[derive(Debug, Clone)]
pub struct Table {
    /// Heading.
    pub title: String,
    /// The metric compared.
    pub metric: Metric,
    /// Name of the contender the ratios are of (streamkit).
    pub subject: String,
    /// Contenders in display order.
    pub contenders: Vec<Contender>,
    /// Targets checked below the table.
    pub targets: Vec<Target>,
    /// Free text after the table.
    pub note: String,
}

/// `subject ÷ other`, or for peak RSS `other ÷ subject` (how many times smaller).
pub fn ratio(metric: Metric, subject: f64, other: f64) -> f64 {
    match metric {
        Metric::PeakRss => other / subject,
        _ => subject / other,
    }
}

fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        "—".into()
    } else if x >= 100.0 {
        // Thousands separated by a thin space, as in the figures.
        let n = x.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push('\u{202f}');
            }
            out.push(c);
        }
        out
    } else {
        format!("{x:.1}")
    }
}

impl Table {
    fn find(&self, name: &str) -> Option<&Contender> {
        self.contenders.iter().find(|c| c.name == name)
    }

    /// The subject's ratio against `row` in the table's metric (`NaN` if either is missing).
    pub fn ratio_against(&self, row: &str) -> f64 {
        self.ratio_in(self.metric, row)
    }

    /// The subject's ratio against `row` in `metric` (`NaN` if either is missing).
    pub fn ratio_in(&self, metric: Metric, row: &str) -> f64 {
        match (self.find(&self.subject), self.find(row)) {
            (Some(s), Some(o)) => ratio(metric, s.median(metric), o.median(metric)),
            _ => f64::NAN,
        }
    }

    /// The subject's ratio against `c` in `metric` as a cell (`—` for the subject itself).
    fn ratio_cell(&self, metric: Metric, c: &Contender) -> String {
        let r = self.ratio_in(metric, &c.name);
        if c.name == self.subject || r.is_nan() {
            "—".into()
        } else {
            format!("{r:.2}×")
        }
    }

    /// Markdown: one row per contender with every run, the median and the subject's ratio; a
    /// rate table also gives per CPU-second and peak RSS medians with the subject's ratios.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let runs = self
            .contenders
            .iter()
            .map(|c| c.runs.len())
            .max()
            .unwrap_or(0);
        let _ = writeln!(out, "### {}\n", self.title);
        let ratio_head = |metric: Metric| match metric {
            Metric::PeakRss => format!("this ÷ {}", self.subject),
            _ => format!("{} ÷ this", self.subject),
        };
        let _ = write!(out, "| contender |");
        for i in 1..=runs {
            let _ = write!(out, " run {i} |");
        }
        let _ = write!(
            out,
            " median ({}) | {} |",
            self.metric.unit(),
            ratio_head(self.metric)
        );
        // A rate table's extra medians, each with the subject's ratio.
        let extra: &[Metric] = if self.metric == Metric::Rate {
            &[Metric::PerCore, Metric::PeakRss]
        } else {
            &[]
        };
        for m in extra {
            let _ = write!(out, " median {} | {} |", m.unit(), ratio_head(*m));
            if *m == Metric::PerCore {
                let _ = write!(out, " CPU-seconds |");
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "|---|{}---:|---:|{}",
            "---:|".repeat(runs),
            "---:|".repeat(extra.len() * 2 + usize::from(!extra.is_empty()))
        );
        let mut errors = Vec::new();
        for c in &self.contenders {
            let _ = write!(out, "| {} |", c.name);
            for i in 0..runs {
                match c.runs.get(i) {
                    Some(Ok(r)) => {
                        let _ = write!(out, " {} |", fmt_num(self.metric.of(r)));
                    }
                    Some(Err(e)) => {
                        errors.push(format!("{} run {}: {e}", c.name, i + 1));
                        let _ = write!(out, " failed |");
                    }
                    None => {
                        let _ = write!(out, " |");
                    }
                }
            }
            let _ = write!(
                out,
                " {} | {} |",
                fmt_num(c.median(self.metric)),
                self.ratio_cell(self.metric, c)
            );
            for m in extra {
                let _ = write!(
                    out,
                    " {} | {} |",
                    fmt_num(c.median(*m)),
                    self.ratio_cell(*m, c)
                );
                if *m == Metric::PerCore {
                    let cpu = median(
                        c.runs
                            .iter()
                            .filter_map(|r| r.as_ref().ok())
                            .map(|r| r.cpu_seconds)
                            .collect(),
                    );
                    if cpu.is_nan() {
                        let _ = write!(out, " — |");
                    } else {
                        let _ = write!(out, " {cpu:.2} |");
                    }
                }
            }
            let _ = writeln!(out);
        }
        out.push('\n');
        for t in &self.targets {
            let r = self.ratio_in(t.metric, &t.row);
            let verdict = if r.is_nan() {
                "not measured"
            } else if r >= t.ratio {
                "**met**"
            } else {
                "**missed**"
            };
            let what = match t.metric {
                Metric::PeakRss if t.ratio == 1.0 => {
                    format!("{}'s peak RSS below {}'s", self.subject, t.row)
                }
                Metric::PeakRss => {
                    format!("{}'s peak RSS ≤ 1/{} of {}'s", self.subject, t.ratio, t.row)
                }
                Metric::PerCore => format!(
                    "{} ≥ {}× {} in records per CPU-second",
                    self.subject, t.ratio, t.row
                ),
                Metric::Rate => format!("{} ≥ {}× {}", self.subject, t.ratio, t.row),
            };
            let _ = writeln!(out, "- Target: {what} — {r:.2}×, {verdict}");
        }
        for e in errors {
            let _ = writeln!(out, "- Failed: {e}");
        }
        if !self.note.is_empty() {
            let _ = writeln!(out, "\n{}", self.note);
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(records: u64, seconds: f64, cpu: f64, rss: u64) -> Result<Run, String> {
        Ok(Run {
            records,
            seconds,
            cpu_seconds: cpu,
            peak_rss_kib: rss,
        })
    }

    fn table(metric: Metric) -> Table {
        Table {
            title: "t".into(),
            metric,
            subject: "sk".into(),
            contenders: vec![
                Contender {
                    name: "raw".into(),
                    runs: vec![
                        run(1000, 1.0, 1.0, 2048),
                        run(1000, 0.5, 0.5, 4096),
                        run(1000, 2.0, 1.0, 1024),
                    ],
                },
                Contender {
                    name: "sk".into(),
                    runs: vec![
                        run(1000, 1.25, 2.0, 1024),
                        Err("boom".into()),
                        run(1000, 1.25, 2.0, 512),
                    ],
                },
            ],
            targets: vec![Target {
                row: "raw".into(),
                metric,
                ratio: 0.8,
            }],
            note: String::new(),
        }
    }

    #[test]
    fn result_line_round_trips_and_the_last_one_wins() {
        let a = Run {
            records: 5,
            seconds: 2.5,
            cpu_seconds: 1.0,
            peak_rss_kib: 77,
        };
        let b = Run {
            records: 6,
            ..a.clone()
        };
        let out = format!("noise\n{}\nmore\n[log] {}\n", a.to_line(), b.to_line());
        assert_eq!(Run::from_output(&out), Some(b));
        assert_eq!(Run::from_output("nothing here"), None);
    }

    #[test]
    fn medians_skip_failed_runs_and_ratios_divide_medians() {
        let t = table(Metric::Rate);
        // raw: rates 1000, 2000, 500 → median 1000; sk: 800, 800 → 800 (failed run skipped).
        assert_eq!(t.contenders[0].median(Metric::Rate), 1000.0);
        assert_eq!(t.contenders[1].median(Metric::Rate), 800.0);
        assert!((t.ratio_against("raw") - 0.8).abs() < 1e-9);
        let md = t.render();
        // Then per CPU-second (sk 500, raw 1000), CPU-seconds, peak RSS (sk 1.0, raw 2.0 MiB).
        assert!(
            md.contains("| sk | 800 | failed | 800 | 800 | — | 500 | — | 2.00 | 1.0 | — |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| raw | 1\u{202f}000 | 2\u{202f}000 | 500 | 1\u{202f}000 | 0.80× \
                 | 1\u{202f}000 | 0.50× | 1.00 | 2.0 | 2.00× |"
            ),
            "{md}"
        );
        assert_eq!(
            md.lines().nth(3),
            Some("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"),
            "{md}"
        );
        assert!(md.contains("0.80×, **met**"), "{md}");
        assert!(md.contains("Failed: sk run 2: boom"), "{md}");
    }

    #[test]
    fn peak_rss_ratio_is_how_many_times_smaller() {
        let t = table(Metric::PeakRss);
        // raw median 2 MiB, sk median 1 MiB → sk is 2× smaller.
        assert!((t.ratio_against("raw") - 2.0).abs() < 1e-9);
        let mut missed = table(Metric::PerCore);
        missed.targets[0].ratio = 3.0;
        // per core: raw median 1000, sk 500 → 0.5, below 3.
        assert!(missed.render().contains("0.50×, **missed**"));
    }

    #[test]
    fn a_rate_table_checks_targets_in_other_metrics() {
        let mut t = table(Metric::Rate);
        t.targets = vec![
            Target {
                row: "raw".into(),
                metric: Metric::PerCore,
                ratio: 2.0,
            },
            Target {
                row: "raw".into(),
                metric: Metric::PeakRss,
                ratio: 2.0,
            },
        ];
        let md = t.render();
        assert!(
            md.contains("sk ≥ 2× raw in records per CPU-second — 0.50×, **missed**"),
            "{md}"
        );
        assert!(
            md.contains("sk's peak RSS ≤ 1/2 of raw's — 2.00×, **met**"),
            "{md}"
        );
    }
}
