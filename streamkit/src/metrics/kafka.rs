//! librdkafka statistics (its `stats` callback, every `statistics.interval.ms`) as Prometheus
//! gauges: consumer lag per partition, broker round-trip time and request queues, client
//! message queues; and the Kafka errors a stream thread's clients meet, as counters: those
//! reported to the thread, and the broker faults librdkafka handles itself (from its
//! statistics).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use rdkafka::Statistics;
use rdkafka::error::KafkaError;

use super::names::*;
use super::register;

/// Label values of one gauge series: (client, topic or broker, partition or empty).
type Series = (String, String, String);

/// The broker fault kinds taken from statistics, in the order of [`broker_faults`].
const BROKER_FAULT_KINDS: [&str; 5] = [
    BROKER_DISCONNECTS,
    BROKER_REQUEST_RETRIES,
    BROKER_REQUEST_TIMEOUTS,
    BROKER_SEND_ERRORS,
    BROKER_RECEIVE_ERRORS,
];

/// A broker's fault totals since its client started, in the order of [`BROKER_FAULT_KINDS`].
type BrokerFaults = [u64; 5];

/// The fault totals of a broker's statistics.
fn broker_faults(b: &rdkafka::statistics::Broker) -> BrokerFaults {
    [
        b.disconnects.unwrap_or(0).max(0) as u64,
        b.txretries,
        b.req_timeouts,
        b.txerrs,
        b.rxerrs,
    ]
}

/// The gauges fed from librdkafka statistics.
#[derive(Clone)]
pub(crate) struct KafkaMetrics {
    consumer_lag: IntGaugeVec,
    rtt: GaugeVec,
    outbuf: IntGaugeVec,
    waitresp: IntGaugeVec,
    queue_messages: IntGaugeVec,
    queue_bytes: IntGaugeVec,
    errors: IntCounterVec,
    broker_errors: IntCounterVec,
    /// The broker fault totals of the last report, per (client, broker): statistics carry
    /// totals, the counters grow by the difference.
    broker_totals: Arc<Mutex<HashMap<(String, String), BrokerFaults>>>,
    /// Lag series set by the last update, per client, so partitions that moved away are removed.
    lag_series: Arc<Mutex<HashMap<String, HashSet<Series>>>>,
}

impl KafkaMetrics {
    pub fn new(r: &Registry, opts: &dyn Fn(&str, &str) -> Opts) -> Self {
        let int = |name, help, labels: &[&str]| {
            register(
                r,
                IntGaugeVec::new(opts(name, help), labels).expect("valid metric"),
            )
        };
        KafkaMetrics {
            consumer_lag: int(
                CONSUMER_LAG,
                "consumer lag of an assigned partition (librdkafka statistics)",
                &[CLIENT_LABEL, TOPIC_LABEL, PARTITION_LABEL],
            ),
            rtt: register(
                r,
                GaugeVec::new(
                    opts(KAFKA_BROKER_RTT, "average broker round-trip time, seconds"),
                    &[CLIENT_LABEL, BROKER_LABEL],
                )
                .expect("valid metric"),
            ),
            outbuf: int(
                KAFKA_BROKER_OUTBUF,
                "requests waiting to be sent to a broker",
                &[CLIENT_LABEL, BROKER_LABEL],
            ),
            waitresp: int(
                KAFKA_BROKER_WAITRESP,
                "requests waiting for a broker's response",
                &[CLIENT_LABEL, BROKER_LABEL],
            ),
            queue_messages: int(
                KAFKA_QUEUE_MESSAGES,
                "messages in the client's queues",
                &[CLIENT_LABEL],
            ),
            queue_bytes: int(
                KAFKA_QUEUE_BYTES,
                "bytes of the messages in the client's queues",
                &[CLIENT_LABEL],
            ),
            errors: register(
                r,
                IntCounterVec::new(
                    opts(
                        KAFKA_ERRORS,
                        "errors librdkafka reported to a stream thread's clients",
                    ),
                    &[CLIENT_LABEL, OPERATION_LABEL, ERROR_LABEL],
                )
                .expect("valid metric"),
            ),
            broker_errors: register(
                r,
                IntCounterVec::new(
                    opts(
                        KAFKA_BROKER_ERRORS,
                        "broker faults librdkafka handled itself (librdkafka statistics)",
                    ),
                    &[CLIENT_LABEL, BROKER_LABEL, KIND_LABEL],
                )
                .expect("valid metric"),
            ),
            broker_totals: Arc::default(),
            lag_series: Arc::default(),
        }
    }

    /// Counts an error `client` reported while doing `operation` (an `OPERATION_*` constant).
    pub fn error(&self, client: &str, operation: &str, error: &KafkaError) {
        let code = error
            .rdkafka_error_code()
            .map_or_else(|| "Other".to_string(), |c| format!("{c:?}"));
        self.errors
            .with_label_values(&[client, operation, &code])
            .inc();
    }

    /// Adds what broker `name`'s fault totals grew by since the last report of `client`.
    fn count_broker_faults(&self, client: &str, name: &str, b: &rdkafka::statistics::Broker) {
        let now = broker_faults(b);
        let before = self
            .broker_totals
            .lock()
            .expect("broker totals lock")
            .insert((client.to_string(), name.to_string()), now)
            .unwrap_or_default();
        for ((kind, now), before) in BROKER_FAULT_KINDS.iter().zip(now).zip(before) {
            // A total below the last one: the client was created anew under its name.
            let grown = if now >= before { now - before } else { now };
            self.broker_errors
                .with_label_values(&[client, name, kind])
                .inc_by(grown);
        }
    }

    /// Applies one statistics report (its client is `s.client_id`).
    pub fn report(&self, s: &Statistics) {
        self.update(&s.client_id, s);
    }

    /// Applies one statistics report of client `client`.
    pub fn update(&self, client: &str, s: &Statistics) {
        self.queue_messages
            .with_label_values(&[client])
            .set(s.msg_cnt as i64);
        self.queue_bytes
            .with_label_values(&[client])
            .set(s.msg_size as i64);
        for (name, b) in &s.brokers {
            // The coordinator's handle has a connection (and requests) of its own, and a
            // bootstrap handle's connection can fail too; librdkafka's internal one has none.
            if b.source != "internal" {
                self.count_broker_faults(client, name, b);
            }
            // librdkafka's bootstrap and coordinator handles duplicate real brokers.
            if b.nodeid < 0 {
                continue;
            }
            let labels = [client, name.as_str()];
            if let Some(rtt) = &b.rtt {
                self.rtt
                    .with_label_values(&labels)
                    .set(rtt.avg as f64 / 1e6);
            }
            self.outbuf.with_label_values(&labels).set(b.outbuf_cnt);
            self.waitresp.with_label_values(&labels).set(b.waitresp_cnt);
        }
        let mut now = HashSet::new();
        for (topic, t) in &s.topics {
            for (p, part) in &t.partitions {
                // -1 is librdkafka's "unassigned" pseudo-partition; a negative lag is unknown.
                if *p < 0 || part.consumer_lag < 0 {
                    continue;
                }
                let series = (client.to_string(), topic.clone(), p.to_string());
                self.consumer_lag
                    .with_label_values(&[&series.0, &series.1, &series.2])
                    .set(part.consumer_lag);
                now.insert(series);
            }
        }
        let mut all = self.lag_series.lock().expect("lag series lock");
        let before = all.insert(client.to_string(), now.clone());
        for gone in before.into_iter().flatten().filter(|s| !now.contains(s)) {
            let _ = self
                .consumer_lag
                .remove_label_values(&[&gone.0, &gone.1, &gone.2]);
        }
    }
}

/// librdkafka's statistics interval for stream-thread clients unless the user set one.
pub(crate) const DEFAULT_STATISTICS_INTERVAL_MS: &str = "5000";
