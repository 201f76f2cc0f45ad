//! [`EmbeddedBroker`]: librdkafka's in-process mock cluster behind a Send + Sync handle.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::error::{Error, Result};

enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        reply: mpsc::Sender<Result<()>>,
    },
    RequestErrors {
        api: RDKafkaApiKey,
        errors: Vec<RDKafkaRespErr>,
        reply: mpsc::Sender<()>,
    },
    /// Takes broker `id` (-1: every broker) down (`up: false`) or brings it back.
    BrokerUp {
        id: i32,
        up: bool,
        reply: mpsc::Sender<Result<()>>,
    },
    RoundTripTime {
        id: i32,
        delay: Duration,
        reply: mpsc::Sender<Result<()>>,
    },
    Shutdown,
}

struct Inner {
    bootstrap: String,
    commands: Mutex<mpsc::Sender<Command>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.commands.lock().map(|tx| tx.send(Command::Shutdown));
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// An in-process Kafka-protocol broker: librdkafka's mock cluster, reachable on a localhost
/// port by any Kafka client (other processes included). It lives until the last clone of the
/// handle is dropped.
///
/// Used by integration tests, by the examples when no `--bootstrap-servers` is given, and by
/// `streamkit broker`. Know its limits (from librdkafka's `rdkafka_mock*.c`):
/// - **no admin API**: CreateTopics and DescribeConfigs are not answered, so internal topics
///   are created through this handle ([`create_topic`](Self::create_topic)), which the runtime
///   does when configured with [`StreamsConfig::embedded`](crate::config::StreamsConfig::embedded);
///   a client that produces to an unknown topic auto-creates it with 4 partitions;
/// - **bounded retention**: each partition keeps only its last ~100k message sets (about
///   5 MiB); older records silently disappear;
/// - **transactions only in part**: producers can init, begin, commit and abort transactions,
///   but Fetch ignores `isolation.level`, so aborted records stay visible to `read_committed`
///   consumers, and transactional offset commits (`send_offsets_to_transaction`) are
///   acknowledged without being stored (the runtime adds a plain offset commit after each
///   transaction on this broker, so that restarts resume) — exactly-once is verified on a
///   real broker (`tests/kafka_exactly_once.rs`). `tests/runtime_exactly_once.rs` asserts both
///   behaviours, so it flags the day they change;
/// - **slow rebalances**: after a member leaves, the mock finishes the rebalance only when the
///   members' session timeout (minus a second) has passed, so applications configured with
///   [`StreamsConfig::embedded`](crate::config::StreamsConfig::embedded) default to
///   `session.timeout.ms=6000` and `heartbeat.interval.ms=1000` (short enough for quick moves,
///   long enough that a loaded machine does not expel members);
/// - **no commits while a rebalance is joining**: an offset commit made in a revocation callback
///   is refused (a real broker accepts it), so a task that moves mid-stream may be processed
///   again from its previous commit — at-least-once, not exact, across such moves;
/// - everything is in memory and gone when the handle drops.
#[derive(Clone)]
pub struct EmbeddedBroker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap_servers", &self.inner.bootstrap)
            .finish()
    }
}

impl EmbeddedBroker {
    /// Starts a one-broker cluster.
    pub fn start() -> Result<Self> {
        Self::with_brokers(1)
    }

    /// Starts a cluster of `brokers` brokers.
    pub fn with_brokers(brokers: i32) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Command>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String>>();
        // MockCluster holds raw pointers (not Send): it lives on its own thread, commands go
        // through a channel.
        let thread = std::thread::Builder::new()
            .name("streamkit-embedded-broker".into())
            .spawn(move || {
                let cluster = match MockCluster::new(brokers) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::Kafka(e)));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                while let Ok(cmd) = rx.recv() {
                    match cmd {
                        Command::CreateTopic {
                            name,
                            partitions,
                            reply,
                        } => {
                            let r = cluster
                                .create_topic(&name, partitions, 1)
                                .map_err(Error::Kafka);
                            let _ = reply.send(r);
                        }
                        Command::RequestErrors { api, errors, reply } => {
                            cluster.request_errors(api, &errors);
                            let _ = reply.send(());
                        }
                        Command::BrokerUp { id, up, reply } => {
                            let r = if up {
                                cluster.broker_up(id)
                            } else {
                                cluster.broker_down(id)
                            };
                            let _ = reply.send(r.map_err(Error::Kafka));
                        }
                        Command::RoundTripTime { id, delay, reply } => {
                            let r = cluster.broker_round_trip_time(id, delay);
                            let _ = reply.send(r.map_err(Error::Kafka));
                        }
                        Command::Shutdown => break,
                    }
                }
            })?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| Error::Internal("embedded broker thread died at start".into()))??;
        tracing::info!(%bootstrap, brokers, "embedded broker started");
        Ok(EmbeddedBroker {
            inner: Arc::new(Inner {
                bootstrap,
                commands: Mutex::new(tx),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// `host:port,…` for clients.
    pub fn bootstrap_servers(&self) -> &str {
        &self.inner.bootstrap
    }

    /// Makes the next requests of kind `api` (from any client) fail, one with each error in
    /// turn: fault injection for tests, e.g. an `ILLEGAL_GENERATION` answer to the next
    /// `TxnOffsetCommit` to abort a transaction. `RD_KAFKA_RESP_ERR__TRANSPORT` closes the
    /// client's connection instead of answering.
    pub fn fail_next_requests(&self, api: RDKafkaApiKey, errors: &[RDKafkaRespErr]) -> Result<()> {
        self.call(|reply| Command::RequestErrors {
            api,
            errors: errors.to_vec(),
            reply,
        })
    }

    /// Takes broker `id` (1-based; -1: every broker) down: its connections close and new ones
    /// are refused until [`broker_up`](Self::broker_up). Partitions keep their leader, so those
    /// it leads are unavailable meanwhile.
    pub fn broker_down(&self, id: i32) -> Result<()> {
        self.call(|reply| Command::BrokerUp {
            id,
            up: false,
            reply,
        })?
    }

    /// Brings broker `id` (-1: every broker) back after [`broker_down`](Self::broker_down).
    pub fn broker_up(&self, id: i32) -> Result<()> {
        self.call(|reply| Command::BrokerUp {
            id,
            up: true,
            reply,
        })?
    }

    /// Delays every response of broker `id` (-1: every broker) by `delay` (zero: none).
    pub fn set_round_trip_time(&self, id: i32, delay: Duration) -> Result<()> {
        self.call(|reply| Command::RoundTripTime { id, delay, reply })?
    }

    /// Sends the broker's thread a command and waits for its reply.
    fn call<T>(&self, command: impl FnOnce(mpsc::Sender<T>) -> Command) -> Result<T> {
        let (reply, rx) = mpsc::channel();
        self.inner
            .commands
            .lock()
            .map_err(|_| Error::Internal("embedded broker lock poisoned".into()))?
            .send(command(reply))
            .map_err(|_| Error::Internal("embedded broker stopped".into()))?;
        rx.recv()
            .map_err(|_| Error::Internal("embedded broker stopped".into()))
    }

    /// Creates a topic (a no-op if it exists with that many partitions).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        self.call(|reply| Command::CreateTopic {
            name: name.to_string(),
            partitions,
            reply,
        })?
    }
}
