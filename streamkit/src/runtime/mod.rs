//! Running a topology against Kafka: [`KafkaStreams`](crate::KafkaStreams), its stream threads and tasks.
//!
//! An application instance ([`KafkaStreams`](crate::KafkaStreams)) joins the consumer group named by its
//! application id with `num_stream_threads` consumers. The group's **range** assignor gives
//! each consumer whole partition numbers across co-partitioned topics, and each
//! (sub-topology, partition) pair becomes a **task** that owns live processor instances. A
//! task runs on exactly one thread, so processors need no locks.
//!
//! Start-up checks that the source topics exist, creates internal (repartition) topics —
//! through the admin API on a real cluster, through the broker handle when embedded — and
//! checks that topics that must be co-partitioned have equal partition counts. Then, if the
//! topology has global tables, a **global thread** reads their topics (every partition, no
//! group) to the end before the stream threads start, and keeps them up to date after.
//!
//! A task with several input partitions (joins, merges) processes the records it has polled
//! lowest timestamp first across them, buffering up to
//! [`buffered_records_per_partition`](crate::config::StreamsConfig::buffered_records_per_partition)
//! per partition and waiting for an empty partition as
//! [`max_task_idle`](crate::config::StreamsConfig::max_task_idle) says.
//!
//! **At-least-once**: a record's offset is stored after the record went through its task;
//! every `commit_interval` (and before partitions are revoked, and at shutdown) the thread
//! flushes its producer and only then commits the stored offsets. A crash replays at most
//! the records since the last commit; none is lost.
//!
//! **Exactly-once** ([`ProcessingGuarantee::ExactlyOnce`](crate::config::ProcessingGuarantee)):
//! each thread's producer is transactional (`transactional.id = <application-id>-<random>-<n>`,
//! EOS v2: zombies are fenced through the group generation the offsets carry). Output,
//! changelog writes and the consumed positions (`send_offsets_to_transaction` with the
//! consumer's group metadata) commit in one transaction per commit interval; consumers read
//! committed records only. A transaction that must be aborted resets the thread's tasks: stores
//! dropped and restored from their changelogs (local checkpoints are deleted while a task runs
//! under exactly-once and written back only after a commit at close), the consumer rewound to
//! the committed offsets. A fenced producer fails the thread with
//! [`Error::ProducerFenced`](crate::Error::ProducerFenced).
//!
//! **External commits**: a sink that commits outside Kafka with the offsets it covers (the
//! Postgres sink, [`crate::connect::postgres`]) replaces its task's changelog restore: the
//! task's stores are loaded from that system and its source partitions seek to the offsets
//! stored there.

pub(crate) mod admin;
pub(crate) mod global;
mod lifecycle;
pub(crate) mod partition_group;
mod partition_map;
pub(crate) mod restore;
pub(crate) mod task;
pub(crate) mod thread;

pub use admin::{
    ResetReport, delete_local_state, ensure_topics, internal_topics_of, is_internal_topic_name,
    reset_application,
};
pub use lifecycle::{State, StateListener};
