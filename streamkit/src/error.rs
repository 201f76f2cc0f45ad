//! The crate's error type, classified by who has to act on it.

use std::fmt;

/// A specialized `Result` for streamkit operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who caused an error, and so who has to act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The topology, configuration or input is wrong: the user must fix it.
    User,
    /// Something outside the process failed (broker, network, disk).
    External,
    /// A bug in streamkit itself.
    Internal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::User => "user",
            ErrorKind::External => "external",
            ErrorKind::Internal => "internal",
        })
    }
}

/// Errors raised while building or running a topology.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The topology is malformed (unknown node, duplicate name, type mismatch between nodes).
    #[error("invalid topology: {0}")]
    Topology(String),
    /// The configuration is invalid or incomplete.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A key or value could not be serialized or deserialized.
    #[error(transparent)]
    Serde(#[from] SerdeError),
    /// A record could not be deserialized and the source's handler is `fail`.
    #[error("cannot deserialize record from {topic}[{partition}]@{offset}: {source}")]
    Deserialization {
        /// The topic the record came from.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// What went wrong.
        source: SerdeError,
    },
    /// Topics that must be co-partitioned have different partition counts.
    #[error("topics not co-partitioned: {0}")]
    CoPartitioning(String),
    /// A source topic does not exist on the cluster.
    #[error("source topic(s) missing on the cluster: {0:?}")]
    MissingSourceTopics(Vec<String>),
    /// The cluster denies the application access to topics (their ACLs).
    #[error("not authorized to access topic(s) {0:?}: the cluster's ACLs deny this application")]
    TopicAuthorization(Vec<String>),
    /// The Kafka client reported an error.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A produced record was not acknowledged by the broker.
    #[error("failed to produce to {topic}: {reason}")]
    Produce {
        /// The target topic.
        topic: String,
        /// The broker's or client's reason.
        reason: String,
    },
    /// The stream thread's transactional producer was fenced: a newer producer with the same
    /// transactional id took over, so this thread must stop (exactly-once).
    #[error(
        "transactional producer {transactional_id} was fenced ({reason}): another producer with its id took over; the stream thread stops"
    )]
    ProducerFenced {
        /// The thread's `transactional.id`.
        transactional_id: String,
        /// The client's error.
        reason: String,
    },
    /// A Kafka transaction failed in a way that cannot be retried or aborted (exactly-once).
    #[error("transaction of producer {transactional_id} failed: {reason}")]
    Transaction {
        /// The thread's `transactional.id`.
        transactional_id: String,
        /// The client's error.
        reason: String,
    },
    /// The cluster did not answer within a bound that waiting longer would not help, such as
    /// output unacknowledged past [`StreamsConfig::task_timeout`](crate::config::StreamsConfig::task_timeout).
    #[error("timed out: {0}")]
    Timeout(String),
    /// An external system written to by a connector (a database) failed.
    #[error("{connector}: {reason}")]
    Connector {
        /// The connector and its target, e.g. `postgres sink bus_counts`.
        connector: String,
        /// What failed.
        reason: String,
        /// Whether retrying may succeed (a lost connection, a serialization failure).
        retriable: bool,
    },
    /// An I/O error (state directory, files).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A user processor returned an error.
    #[error("processor {node}: {source}")]
    Processor {
        /// The node that failed.
        node: String,
        /// The underlying error.
        source: Box<Error>,
    },
    /// An error raised by user code inside a processor.
    #[error("{0}")]
    Custom(String),
    /// The application is not in a state that allows the call.
    #[error("illegal state: {0}")]
    IllegalState(String),
    /// A thread of the instance panicked (in a user closure or in streamkit): the thread is
    /// gone, and the instance stops or replaces it as its
    /// [`UncaughtExceptionResponse`](crate::config::UncaughtExceptionResponse) says.
    #[error("thread {thread} panicked: {message}")]
    Panicked {
        /// The thread's name.
        thread: String,
        /// The panic's message.
        message: String,
    },
    /// A streamkit bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Builds an error from user code (inside a processor, a mapper or a callback).
    pub fn custom(msg: impl fmt::Display) -> Self {
        Error::Custom(msg.to_string())
    }

    /// Who has to act on this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Topology(_)
            | Error::Config(_)
            | Error::Serde(_)
            | Error::Deserialization { .. }
            | Error::CoPartitioning(_)
            | Error::MissingSourceTopics(_)
            | Error::TopicAuthorization(_)
            | Error::Custom(_)
            | Error::IllegalState(_) => ErrorKind::User,
            Error::Kafka(_)
            | Error::Produce { .. }
            | Error::Io(_)
            | Error::ProducerFenced { .. }
            | Error::Transaction { .. }
            | Error::Timeout(_)
            | Error::Connector { .. } => ErrorKind::External,
            Error::Processor { source, .. } => source.kind(),
            Error::Internal(_) | Error::Panicked { .. } => ErrorKind::Internal,
        }
    }

    /// Whether retrying the same operation may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kafka(e) => e.rdkafka_error_code().is_some_and(|c| {
                use rdkafka::types::RDKafkaErrorCode as C;
                matches!(
                    c,
                    C::QueueFull
                        | C::RequestTimedOut
                        | C::NotCoordinator
                        | C::CoordinatorLoadInProgress
                        | C::NetworkException
                        | C::LeaderNotAvailable
                        | C::NotLeaderForPartition
                        | C::BrokerTransportFailure
                )
            }),
            Error::Io(_) => true,
            Error::Connector { retriable, .. } => *retriable,
            Error::Processor { source, .. } => source.is_retriable(),
            _ => false,
        }
    }

    /// Wraps the error with the name of the node it happened in (once: the innermost node wins).
    pub(crate) fn in_node(self, node: &str) -> Self {
        match self {
            e @ (Error::Processor { .. }
            | Error::Deserialization { .. }
            | Error::Produce { .. }) => e,
            e => Error::Processor {
                node: node.to_string(),
                source: Box::new(e),
            },
        }
    }
}

/// A key or value that could not be converted to or from bytes.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SerdeError {
    /// The bytes are not a valid encoding of the type.
    #[error("invalid data: {0}")]
    Invalid(String),
    /// A null (absent) key or value reached a serde that does not accept null.
    #[error("unexpected null; use Serdes::option(..) to accept tombstones and absent keys")]
    UnexpectedNull,
    /// The value could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// A schema registry could not be reached or refused a request (not a fault of the
    /// record itself).
    #[error("schema registry: {0}")]
    Registry(String),
    /// The serde has no JSON form (see [`Serde::to_json`](crate::serde::Serde::to_json)).
    #[error("serde {0} has no JSON form; implement Serde::to_json and Serde::parse_json")]
    NoJson(String),
}

/// Runs `f`, turning a panic into [`Error::Panicked`] naming `thread`.
pub(crate) fn catch_panic<T>(thread: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(Error::Panicked {
            thread: thread.to_string(),
            message: panic_message(&*payload),
        })
    })
}

/// The message a panic was raised with (`panic!`'s formatted text).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}
