//! HTTP polling source: GET a JSON API every interval and produce its records to a topic, as
//! the polling loops of the bike-station and random-user pipelines did.
//!
//! Each poll takes the records at a JSON pointer of the body (the body itself by default; an
//! array gives one record per element, anything else one record), keys and timestamps them
//! with extractors, and produces them with the idempotent producer. Errors, 5xx and `429 Too
//! Many Requests` back off exponentially with jitter (`Retry-After` is honoured); the interval
//! restarts after the first success.
//!
//! With [`dedup`](HttpPollSource::dedup) on, a record equal to the one produced last for its
//! key is skipped: an API that returns a full snapshot every few seconds (JCDecaux's station
//! list) becomes a stream of changes. What was produced last per key, and when the last poll
//! succeeded, are kept in a compacted topic (`<name>-http-poll-state`), written after the
//! records are acknowledged, so a restarted source neither repeats unchanged records nor loses
//! changed ones (a crash between the two repeats a record: at least once).
//!
//! ```no_run
//! use std::time::Duration;
//! use streamkit::connect::http_poll::HttpPollSource;
//! use streamkit::prelude::*;
//!
//! # async fn run() -> streamkit::Result<()> {
//! let config = StreamsConfig::new("bikes").bootstrap_servers("localhost:9092");
//! HttpPollSource::new("jcdecaux", "https://api.jcdecaux.com/vls/v1/stations")
//!     .query("contract", "dublin")
//!     .query("apiKey", "…")
//!     .interval(Duration::from_secs(10))
//!     .key_at("/number")
//!     .timestamp_at("/last_update")
//!     .dedup(true)
//!     .run(&config, "bike-stations", tokio::signal::ctrl_c())
//!     .await
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

use crate::config::StreamsConfig;
use crate::connect::state_topic::StateTopic;
use crate::error::{Error, Result};
use crate::metrics::names::*;
use crate::runtime::admin;

type KeyFn = Arc<dyn Fn(&Value) -> Option<String> + Send + Sync>;
type TimestampFn = Arc<dyn Fn(&Value) -> Option<i64> + Send + Sync>;

/// The state topic key under which the time of the last successful poll is kept (a record
/// key is never empty-prefixed with a NUL byte by the extractors, which return text).
const LAST_POLL_KEY: &[u8] = b"\0last-poll";
/// How long a produced record may wait for its acknowledgement.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Polls a URL and produces its JSON records to a topic. See the [module docs](self).
#[derive(Clone)]
pub struct HttpPollSource {
    name: String,
    url: String,
    interval: Duration,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    records_at: Option<String>,
    key: Option<KeyFn>,
    timestamp: Option<TimestampFn>,
    dedup: bool,
    initial_backoff: Duration,
    max_backoff: Duration,
    request_timeout: Duration,
    max_body_bytes: usize,
    topic: Option<String>,
    metrics: PollMetrics,
}

impl std::fmt::Debug for HttpPollSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither headers nor query parameters: they often carry the API key.
        f.debug_struct("HttpPollSource")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("interval", &self.interval)
            .field("dedup", &self.dedup)
            .finish_non_exhaustive()
    }
}

impl HttpPollSource {
    /// A source named `name` (its metrics' `source` label and its state topic's prefix)
    /// polling `url`.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        let name = name.into();
        HttpPollSource {
            metrics: PollMetrics::new(&name),
            name,
            url: url.into(),
            interval: Duration::from_secs(10),
            headers: Vec::new(),
            query: Vec::new(),
            records_at: None,
            key: None,
            timestamp: None,
            dedup: false,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 64 << 20,
            topic: None,
        }
    }

    /// Time between the starts of two polls. Default = 10 s.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// A request header, e.g. `("Authorization", "Bearer …")`; repeatable.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A query parameter, e.g. `("apiKey", "…")`; repeatable.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Where the records are in the body, as a JSON pointer (`/results`). Default = the body
    /// itself. An array there gives one record per element; anything else, one record.
    pub fn records_at(mut self, pointer: impl Into<String>) -> Self {
        self.records_at = Some(pointer.into());
        self
    }

    /// Keys each record with the value at a JSON pointer into it (strings as they are, other
    /// values as JSON text). Default = no key.
    pub fn key_at(self, pointer: impl Into<String>) -> Self {
        let pointer = pointer.into();
        self.key_with(move |record| {
            record.pointer(&pointer).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        })
    }

    /// Keys each record with a function of it (`None`: no key).
    pub fn key_with(
        mut self,
        f: impl Fn(&Value) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.key = Some(Arc::new(f));
        self
    }

    /// Timestamps each record with the epoch milliseconds at a JSON pointer into it (a number).
    /// Default = the time of the poll; a record without the field also gets that.
    pub fn timestamp_at(self, pointer: impl Into<String>) -> Self {
        let pointer = pointer.into();
        self.timestamp_with(move |record| {
            let v = record.pointer(&pointer)?;
            v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
        })
    }

    /// Timestamps each record with a function of it (epoch ms; `None`: the time of the poll).
    pub fn timestamp_with(
        mut self,
        f: impl Fn(&Value) -> Option<i64> + Send + Sync + 'static,
    ) -> Self {
        self.timestamp = Some(Arc::new(f));
        self
    }

    /// Skips a record equal to the last one produced for its key (a keyless record is its own
    /// key). Default = off: every poll produces every record.
    pub fn dedup(mut self, on: bool) -> Self {
        self.dedup = on;
        self
    }

    /// First and longest wait after a failed poll; the wait doubles per failure in a row, with
    /// jitter. Default = 1 s and 5 min.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Timeout of one request. Default = 30 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The largest body accepted; a larger one is a failed poll. Default = 64 MiB.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The topic the source writes when an application runs it
    /// ([`StreamsBuilder::stream_from_connector`](crate::stream::StreamsBuilder::stream_from_connector)).
    /// Default = the source's name.
    pub fn topic_name(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// The topic set with [`topic_name`](Self::topic_name), else the source's name.
    pub fn topic(&self) -> &str {
        self.topic.as_deref().unwrap_or(&self.name)
    }

    /// Registers the source's metrics in `registry` (e.g. the one an application's `/metrics`
    /// serves); without it they live in the source's own registry ([`Self::metrics`]).
    pub fn register_metrics(self, registry: &Registry) -> Result<Self> {
        self.metrics.register(registry)?;
        Ok(self)
    }

    /// The source's metrics (shared with every clone of the source).
    pub fn metrics(&self) -> &PollMetrics {
        &self.metrics
    }

    /// The compacted topic the source keeps its progress in.
    pub fn state_topic(&self) -> String {
        format!("{}-http-poll-state", self.name)
    }

    /// Polls until `shutdown` completes, producing to `topic` on the cluster (or embedded
    /// broker) `config` names. Returns an error only for what polling again cannot fix (the
    /// state topic unreadable, a bad URL); failed polls and failed deliveries are counted,
    /// logged and retried.
    pub async fn run(
        self,
        config: &StreamsConfig,
        topic: &str,
        shutdown: impl Future<Output = impl Sized>,
    ) -> Result<()> {
        let client = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .build()
            .map_err(|e| Error::Config(format!("http poll {}: {e}", self.name)))?;
        let url = reqwest::Url::parse_with_params(&self.url, &self.query).map_err(|e| {
            Error::Config(format!(
                "http poll {}: bad url {}: {e}",
                self.name, self.url
            ))
        })?;
        let (state_topic, state) = {
            let (config, name) = (config.clone(), self.state_topic());
            tokio::task::spawn_blocking(move || StateTopic::open(&config, &name, "http-poll"))
                .await
                .map_err(|e| Error::Config(format!("http poll state: {e}")))??
        };
        let mut progress = Progress::from_records(state);
        let producer: FutureProducer = admin::base_client_config(config, "producer")?
            .set("client.id", format!("{}-http-poll-producer", self.name))
            .set("enable.idempotence", "true")
            .create()?;
        let mut poller = Poller {
            source: &self,
            client,
            url,
            producer,
            topic,
            state_topic,
            jitter: Jitter::seeded(),
        };

        tokio::pin!(shutdown);
        // After a restart, the next poll comes one interval after the last one that succeeded.
        let mut wait = progress
            .last_poll_ms
            .map(|last| {
                Duration::from_millis(
                    (last + self.interval.as_millis() as i64 - now_ms()).max(0) as u64
                )
            })
            .unwrap_or_default()
            .min(self.interval);
        let mut failures = 0u32;
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            let started = tokio::time::Instant::now();
            wait = match poller.poll_once(&mut progress).await {
                Ok(()) => {
                    failures = 0;
                    self.interval.saturating_sub(started.elapsed())
                }
                Err(failure) => {
                    failures += 1;
                    self.metrics
                        .errors
                        .with_label_values(&[failure.reason()])
                        .inc();
                    let backoff = poller.backoff(failures);
                    let wait = match failure {
                        Failure::RateLimited(Some(after)) => after.max(backoff),
                        _ => backoff,
                    };
                    tracing::warn!(source = %self.name, error = %failure, retry_in = ?wait, "poll failed");
                    wait
                }
            };
        }
    }
}

/// What a poll remembers between polls (and restarts): the last record produced per key.
#[derive(Default)]
struct Progress {
    last: HashMap<String, u64>,
    last_poll_ms: Option<i64>,
}

impl Progress {
    fn from_records(records: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Progress {
        let mut p = Progress::default();
        for (key, value) in records {
            if key == LAST_POLL_KEY {
                p.last_poll_ms = value.and_then(|v| Some(i64::from_be_bytes(v.try_into().ok()?)));
                continue;
            }
            let Ok(key) = String::from_utf8(key) else {
                continue;
            };
            match value.and_then(|v| Some(u64::from_be_bytes(v.try_into().ok()?))) {
                Some(hash) => p.last.insert(key, hash),
                None => p.last.remove(&key),
            };
        }
        p
    }
}

/// Why one poll failed.
#[derive(Debug)]
enum Failure {
    Request(reqwest::Error),
    Status(reqwest::StatusCode),
    RateLimited(Option<Duration>),
    Body(String),
    Produce(Error),
}

impl Failure {
    /// The `reason` label of the error counter.
    fn reason(&self) -> &'static str {
        match self {
            Failure::Request(_) => "request",
            Failure::Status(_) => "status",
            Failure::RateLimited(_) => "rate_limited",
            Failure::Body(_) => "body",
            Failure::Produce(_) => "produce",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Request(e) => write!(f, "request failed: {e}"),
            Failure::Status(s) => write!(f, "server answered {s}"),
            Failure::RateLimited(after) => write!(f, "rate limited (retry after {after:?})"),
            Failure::Body(e) => write!(f, "bad body: {e}"),
            Failure::Produce(e) => write!(f, "producing failed: {e}"),
        }
    }
}

struct Poller<'a> {
    source: &'a HttpPollSource,
    client: reqwest::Client,
    url: reqwest::Url,
    producer: FutureProducer,
    topic: &'a str,
    state_topic: StateTopic,
    jitter: Jitter,
}

impl Poller<'_> {
    async fn poll_once(&mut self, progress: &mut Progress) -> std::result::Result<(), Failure> {
        let s = self.source;
        s.metrics.polls.inc();
        let mut request = self.client.get(self.url.clone());
        for (k, v) in &s.headers {
            request = request.header(k, v);
        }
        let mut response = request.send().await.map_err(Failure::Request)?;
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(Failure::RateLimited(after));
        }
        if !status.is_success() {
            return Err(Failure::Status(status));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(Failure::Request)? {
            if body.len() + chunk.len() > s.max_body_bytes {
                return Err(Failure::Body(format!(
                    "larger than {} bytes",
                    s.max_body_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let body: Value =
            serde_json::from_slice(&body).map_err(|e| Failure::Body(e.to_string()))?;
        let found = match &s.records_at {
            Some(p) => body
                .pointer(p)
                .ok_or_else(|| Failure::Body(format!("nothing at {p}")))?,
            None => &body,
        };
        let records: &[Value] = match found {
            Value::Array(items) => items,
            one => std::slice::from_ref(one),
        };

        let polled_at = now_ms();
        // Owned first: the delivery futures borrow keys and payloads until they complete.
        let mut outgoing: Vec<(Option<String>, Vec<u8>, i64)> = Vec::with_capacity(records.len());
        let mut changed = Vec::new();
        for record in records {
            let value = serde_json::to_vec(record).expect("a JSON value serializes");
            let key = s.key.as_ref().and_then(|f| f(record));
            if s.dedup {
                let hash = fnv1a(&value);
                let dedup_key = key.clone().unwrap_or_else(|| format!("{hash:016x}"));
                if progress.last.get(&dedup_key) == Some(&hash) {
                    s.metrics.unchanged.inc();
                    continue;
                }
                changed.push((dedup_key, hash));
            }
            let timestamp = s
                .timestamp
                .as_ref()
                .and_then(|f| f(record))
                .unwrap_or(polled_at);
            outgoing.push((key, value, timestamp));
        }
        let sends: Vec<_> = outgoing
            .iter()
            .map(|(key, value, timestamp)| {
                let mut r = FutureRecord::<str, [u8]>::to(self.topic)
                    .payload(value.as_slice())
                    .timestamp(*timestamp);
                if let Some(k) = key {
                    r = r.key(k.as_str());
                }
                self.producer.send(r, DELIVERY_TIMEOUT)
            })
            .collect();
        let produced = sends.len() as u64;
        for delivery in futures_util::future::join_all(sends).await {
            delivery.map_err(|(e, _)| {
                Failure::Produce(Error::Produce {
                    topic: self.topic.to_string(),
                    reason: e.to_string(),
                })
            })?;
        }
        s.metrics.records.inc_by(produced);

        // Progress only after the records are in Kafka: a crash in between repeats them.
        for (key, hash) in changed {
            self.state_topic
                .append(key.as_bytes(), Some(&hash.to_be_bytes()))
                .await
                .map_err(Failure::Produce)?;
            progress.last.insert(key, hash);
        }
        self.state_topic
            .append(LAST_POLL_KEY, Some(&polled_at.to_be_bytes()))
            .await
            .map_err(Failure::Produce)?;
        progress.last_poll_ms = Some(polled_at);
        s.metrics.last_success.set(polled_at / 1000);
        tracing::debug!(source = %s.name, produced, state_topic = self.state_topic.topic(), "polled");
        Ok(())
    }

    /// `initial × 2^(failures−1)`, capped, then scaled by a random factor in [0.5, 1).
    fn backoff(&mut self, failures: u32) -> Duration {
        let s = self.source;
        let exp = s
            .initial_backoff
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
            .min(s.max_backoff);
        exp.mul_f64(0.5 + self.jitter.next_unit() / 2.0)
    }
}

/// The source's metrics: `streamkit_http_poll_*`, labelled `source`.
#[derive(Clone, Debug)]
pub struct PollMetrics {
    /// Polls attempted.
    pub polls: IntCounter,
    /// Failed polls, by `reason` (request, status, rate_limited, body, produce).
    pub errors: IntCounterVec,
    /// Records produced.
    pub records: IntCounter,
    /// Records skipped as unchanged (with dedup on).
    pub unchanged: IntCounter,
    /// Epoch seconds of the last successful poll.
    pub last_success: IntGauge,
}

impl PollMetrics {
    fn new(source: &str) -> Self {
        let opts = |name: &str, help: &str| Opts::new(name, help).const_label(SOURCE_LABEL, source);
        let registry = Registry::new();
        let m = PollMetrics {
            polls: IntCounter::with_opts(opts(HTTP_POLLS, "HTTP polls attempted"))
                .expect("valid metric"),
            errors: IntCounterVec::new(
                opts(HTTP_POLL_ERRORS, "HTTP polls that failed, by reason"),
                &[REASON_LABEL],
            )
            .expect("valid metric"),
            records: IntCounter::with_opts(opts(
                HTTP_POLL_RECORDS,
                "Records an HTTP poll source produced",
            ))
            .expect("valid metric"),
            unchanged: IntCounter::with_opts(opts(
                HTTP_POLL_UNCHANGED,
                "Records an HTTP poll source skipped as unchanged",
            ))
            .expect("valid metric"),
            last_success: IntGauge::with_opts(opts(
                HTTP_POLL_LAST_SUCCESS,
                "Epoch seconds of the last successful HTTP poll",
            ))
            .expect("valid metric"),
        };
        m.register(&registry).expect("a fresh registry");
        m
    }

    fn register(&self, registry: &Registry) -> Result<()> {
        let err = |e: prometheus::Error| Error::Config(format!("http poll metrics: {e}"));
        registry
            .register(Box::new(self.polls.clone()))
            .map_err(err)?;
        registry
            .register(Box::new(self.errors.clone()))
            .map_err(err)?;
        registry
            .register(Box::new(self.records.clone()))
            .map_err(err)?;
        registry
            .register(Box::new(self.unchanged.clone()))
            .map_err(err)?;
        registry
            .register(Box::new(self.last_success.clone()))
            .map_err(err)?;
        Ok(())
    }
}

/// FNV-1a, 64 bits: a hash that stays the same across builds and Rust versions, as a value
/// kept in a topic must.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// xorshift64*: jitter needs no cryptographic randomness.
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Jitter {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Jitter(nanos | 1)
    }

    /// Uniform in [0, 1).
    fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_published_function() {
        // Test vectors of the FNV reference (draft-eastlake-fnv): "" and "a".
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn progress_replays_the_last_value_per_key_and_tombstones() {
        let records = vec![
            (b"a".to_vec(), Some(1u64.to_be_bytes().to_vec())),
            (b"b".to_vec(), Some(2u64.to_be_bytes().to_vec())),
            (b"a".to_vec(), Some(3u64.to_be_bytes().to_vec())),
            (b"b".to_vec(), None),
            (LAST_POLL_KEY.to_vec(), Some(42i64.to_be_bytes().to_vec())),
        ];
        let p = Progress::from_records(records);
        assert_eq!(p.last.get("a"), Some(&3));
        assert_eq!(p.last.get("b"), None);
        assert_eq!(p.last_poll_ms, Some(42));
    }

    #[test]
    fn jitter_stays_in_the_unit_interval_and_varies() {
        let mut j = Jitter(12345);
        let xs: Vec<f64> = (0..1000).map(|_| j.next_unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((0.4..0.6).contains(&mean), "mean {mean}");
    }

    #[test]
    fn the_key_and_timestamp_extractors_read_json_pointers() {
        let s = HttpPollSource::new("t", "http://x")
            .key_at("/number")
            .timestamp_at("/last_update");
        let r = serde_json::json!({"number": 42, "name": "x", "last_update": 1_700_000_000_123i64});
        assert_eq!(s.key.as_ref().unwrap()(&r).as_deref(), Some("42"));
        assert_eq!(s.timestamp.as_ref().unwrap()(&r), Some(1_700_000_000_123));
        let r = serde_json::json!({"number": "A7"});
        assert_eq!(s.key.as_ref().unwrap()(&r).as_deref(), Some("A7"));
        assert_eq!(s.timestamp.as_ref().unwrap()(&r), None);
    }
}
