//! Replaying a feed CSV into the positions topic, keyed by vehicle, at a chosen rate.
//!
//! Any file with the 17 feed columns works, in any column order (the header names them):
//! the generated ones and the real MTA dumps. Each row is sent as one CSV line in the
//! canonical column order; a row with the wrong number of fields is sent as it is, so the
//! pipeline dead-letters it instead of losing it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use crate::feed::{COLUMNS, VEHICLE_REF};

/// How to replay.
#[derive(Clone, Default)]
pub struct ReplayOptions {
    /// Rows per second, or `None` for as fast as the broker takes them.
    pub rate: Option<f64>,
    /// Show a progress bar on standard error.
    pub progress: bool,
    /// Stop after this many rows.
    pub limit: Option<u64>,
    /// Stay at most this many rows ahead of what the application has consumed.
    pub throttle: Option<Throttle>,
}

impl std::fmt::Debug for ReplayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayOptions")
            .field("rate", &self.rate)
            .field("progress", &self.progress)
            .field("limit", &self.limit)
            .field("throttle", &self.throttle.as_ref().map(|t| t.max_ahead))
            .finish()
    }
}

/// Keeps the replay from running too far ahead of the application. The embedded broker
/// keeps only the last few MiB of each partition and silently drops older records, so
/// replaying a big file as fast as possible would lose rows the application had not read.
#[derive(Clone)]
pub struct Throttle {
    /// Rows the replay may be ahead of `consumed()`.
    pub max_ahead: u64,
    /// Rows the application has consumed so far.
    pub consumed: Arc<dyn Fn() -> u64 + Send + Sync>,
}

/// What a replay sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayStats {
    /// Rows sent (and acknowledged).
    pub rows: u64,
    /// Of those, rows sent as they were because their field count was wrong.
    pub ragged: u64,
}

/// Counts failed deliveries.
#[derive(Default)]
struct DeliveryCheck {
    failed: AtomicU64,
}

impl ClientContext for DeliveryCheck {}

impl ProducerContext for DeliveryCheck {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::error!(error = %e, "row not delivered");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where each canonical column is in the file, from its header.
fn column_order(header: &csv::ByteRecord) -> anyhow::Result<Vec<usize>> {
    let names: Vec<String> = header
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim()
                .trim_start_matches('\u{feff}')
                .to_string()
        })
        .collect();
    let mut order = Vec::with_capacity(COLUMNS.len());
    let mut missing = Vec::new();
    for column in COLUMNS {
        match names.iter().position(|n| n == column) {
            Some(i) => order.push(i),
            None => missing.push(column),
        }
    }
    if !missing.is_empty() {
        bail!("the file's header lacks the column(s) {missing:?}; found {names:?}");
    }
    Ok(order)
}

/// One CSV line (no line end) of `fields`.
fn csv_line<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(fields)?;
    let mut line = w.into_inner().context("writing a CSV line")?;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(line)
}

/// Replays `path` into `topic` on `servers`, counting rows sent in `sent`; returns when
/// every row is acknowledged, the limit is reached or `stop` is set.
pub fn replay(
    path: &Path,
    servers: &str,
    topic: &str,
    opts: &ReplayOptions,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> anyhow::Result<ReplayStats> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("opening the feed {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(std::io::BufReader::new(file));
    let order = column_order(reader.byte_headers().context("reading the header")?)?;
    let header_len = reader.byte_headers()?.len();

    let producer: BaseProducer<DeliveryCheck> = ClientConfig::new()
        .set("bootstrap.servers", servers)
        // murmur2, as Kafka's Java clients and streamkit partition.
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create_with_context(DeliveryCheck::default())
        .context("creating the producer")?;

    let bar = if opts.progress {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} replaying [{bar:30}] {percent:>3}% {msg} ({elapsed}, eta {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    let started = Instant::now();
    let mut stats = ReplayStats::default();
    let mut record = csv::ByteRecord::new();
    while !stop.load(Ordering::Relaxed) {
        if opts.limit.is_some_and(|l| stats.rows >= l) {
            break;
        }
        let more = reader
            .read_byte_record(&mut record)
            .with_context(|| format!("reading row {} of {}", stats.rows + 1, path.display()))?;
        if !more {
            break;
        }
        let (line, key) = if record.len() == header_len {
            let line = csv_line(order.iter().map(|&i| &record[i]))?;
            (line, record.get(order[VEHICLE_REF]).unwrap_or_default())
        } else {
            stats.ragged += 1;
            let key = record
                .get(order[VEHICLE_REF])
                .filter(|k| k.starts_with(b"NYCT_") || k.starts_with(b"MTA"))
                .unwrap_or_default();
            (csv_line(record.iter())?, key)
        };
        if let Some(rate) = opts.rate.filter(|r| *r > 0.0) {
            let due = started + Duration::from_secs_f64(stats.rows as f64 / rate);
            while let Some(wait) = due.checked_duration_since(Instant::now()) {
                producer.poll(wait.min(Duration::from_millis(50)));
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
        if let Some(t) = &opts.throttle
            && stats.rows.is_multiple_of(1_000)
        {
            while stats.rows.saturating_sub((t.consumed)()) > t.max_ahead
                && !stop.load(Ordering::Relaxed)
            {
                producer.poll(Duration::from_millis(50));
            }
        }
        let mut out = BaseRecord::to(topic).key(key).payload(line.as_slice());
        loop {
            match producer.send(out) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    producer.poll(Duration::from_millis(10));
                    out = back;
                }
                Err((e, _)) => return Err(e).context("producing a row"),
            }
        }
        producer.poll(Duration::ZERO);
        stats.rows += 1;
        sent.store(stats.rows, Ordering::Relaxed);
        if stats.rows.is_multiple_of(256) {
            bar.set_position(reader.position().byte());
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!(
                "{} rows, {:.0} rows/s",
                stats.rows,
                stats.rows as f64 / secs
            ));
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .context("flushing the rows")?;
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} rows were not delivered");
    }
    bar.finish_with_message(format!("{} rows sent", stats.rows));
    Ok(stats)
}

/// [`replay`] on a thread of its own; `stop` ends it early.
pub fn spawn_replay(
    path: std::path::PathBuf,
    servers: String,
    topic: String,
    opts: ReplayOptions,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<anyhow::Result<ReplayStats>> {
    std::thread::Builder::new()
        .name("bus-replay".into())
        .spawn(move || replay(&path, &servers, &topic, &opts, &stop, &sent))
        .expect("spawning the replay thread")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_found_by_name_in_any_order() {
        let mut names: Vec<&str> = COLUMNS.to_vec();
        names.reverse();
        names.insert(3, "Extra");
        let header = csv::ByteRecord::from(names.clone());
        let order = column_order(&header).unwrap();
        for (canonical, at) in COLUMNS.iter().zip(&order) {
            assert_eq!(names[*at], *canonical);
        }
        let err = column_order(&csv::ByteRecord::from(vec!["RecordedAtTime", "VehicleRef"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DirectionRef") && err.contains("ScheduledArrivalTime"),
            "{err}"
        );
    }

    #[test]
    fn lines_are_quoted_where_needed() {
        let line = csv_line([&b"a,b"[..], b"c", b""]).unwrap();
        assert_eq!(line, b"\"a,b\",c,");
        assert_eq!(
            crate::clean::split_line(std::str::from_utf8(&line).unwrap()).unwrap(),
            ["a,b", "c", ""]
        );
    }
}
