//! Metric names and label keys, in one place so dashboards and code agree.

/// Records processed by a task (counter).
pub const RECORDS_PROCESSED: &str = "streamkit_records_processed_total";
/// Records per second a stream thread processed over its last commit interval (gauge).
pub const RECORDS_PROCESSED_RATE: &str = "streamkit_records_processed_rate";
/// Time a task took to process one input record through its sub-topology, seconds
/// (histogram; each task times its first record and then one record in 16, so `_count` is
/// about a sixteenth of the records processed).
pub const PROCESS_LATENCY: &str = "streamkit_process_latency_seconds";
/// Records a processor node received (counter).
pub const PROCESSOR_RECORDS: &str = "streamkit_processor_records_total";
/// Records dropped, by reason (counter).
pub const DROPPED_RECORDS: &str = "streamkit_dropped_records_total";
/// Records sent to a dead-letter topic (counter).
pub const DEAD_LETTER_RECORDS: &str = "streamkit_dead_letter_records_total";
/// Time to commit (flush producer, commit offsets), seconds (histogram).
pub const COMMIT_LATENCY: &str = "streamkit_commit_latency_seconds";
/// Time a punctuator took, seconds (histogram).
pub const PUNCTUATE_LATENCY: &str = "streamkit_punctuate_latency_seconds";
/// Changelog records restored into a store (counter).
pub const RESTORED_RECORDS: &str = "streamkit_restored_records_total";
/// Changelog records still to restore for a store of a task (gauge; 0 when done).
pub const RESTORE_REMAINING: &str = "streamkit_restore_remaining_records";
/// Number of tasks a stream thread owns (gauge).
pub const ACTIVE_TASKS: &str = "streamkit_active_tasks";
/// Approximate entries in a store of a task (gauge, refreshed at each scrape).
pub const STORE_ENTRIES: &str = "streamkit_store_entries";
/// Memory of the instance's RocksDB stores, by `kind` (gauge, refreshed at each scrape).
pub const ROCKSDB_MEMORY: &str = "streamkit_rocksdb_memory_bytes";
/// Consumer lag of an assigned partition, from librdkafka statistics (gauge).
pub const CONSUMER_LAG: &str = "streamkit_consumer_lag";
/// Broker round-trip time (average over librdkafka's window), seconds (gauge).
pub const KAFKA_BROKER_RTT: &str = "streamkit_kafka_broker_rtt_seconds";
/// Requests waiting to be sent to a broker (gauge).
pub const KAFKA_BROKER_OUTBUF: &str = "streamkit_kafka_broker_outbuf_requests";
/// Requests sent to a broker and waiting for a response (gauge).
pub const KAFKA_BROKER_WAITRESP: &str = "streamkit_kafka_broker_waitresp_requests";
/// Messages in a client's queues (producer: waiting for delivery) (gauge).
pub const KAFKA_QUEUE_MESSAGES: &str = "streamkit_kafka_queue_messages";
/// Bytes of the messages in a client's queues (gauge).
pub const KAFKA_QUEUE_BYTES: &str = "streamkit_kafka_queue_bytes";
/// Errors librdkafka reported to a stream thread's clients, by `operation` (one of the
/// `OPERATION_*` constants) and `error`, librdkafka's name for the error code (counter). Most
/// pass: the thread logs them and goes on, as the error's handling in the runtime says.
pub const KAFKA_ERRORS: &str = "streamkit_kafka_errors_total";
/// Broker faults a client met that librdkafka handles itself (it reconnects, retries), from
/// its statistics, by `kind` (one of the `BROKER_*` constants) (counter).
pub const KAFKA_BROKER_ERRORS: &str = "streamkit_kafka_broker_errors_total";

/// Polls an HTTP polling source attempted (counter).
pub const HTTP_POLLS: &str = "streamkit_http_poll_requests_total";
/// Polls of an HTTP polling source that failed, by `reason` (counter).
pub const HTTP_POLL_ERRORS: &str = "streamkit_http_poll_errors_total";
/// Records an HTTP polling source produced (counter).
pub const HTTP_POLL_RECORDS: &str = "streamkit_http_poll_records_total";
/// Records an HTTP polling source skipped as unchanged since the last poll (counter).
pub const HTTP_POLL_UNCHANGED: &str = "streamkit_http_poll_unchanged_records_total";
/// Epoch seconds of an HTTP polling source's last successful poll (gauge).
pub const HTTP_POLL_LAST_SUCCESS: &str = "streamkit_http_poll_last_success_seconds";

/// Constant label: the application id.
pub const APPLICATION_ID_LABEL: &str = "application_id";
/// Label: the stream thread's name.
pub const THREAD_LABEL: &str = "thread";
/// Label: the task id, `<sub-topology>_<partition>`.
pub const TASK_LABEL: &str = "task";
/// Label: the processor node's name.
pub const PROCESSOR_LABEL: &str = "processor";
/// Label: the state store's name.
pub const STORE_LABEL: &str = "store";
/// Label: why a record was dropped.
pub const REASON_LABEL: &str = "reason";
/// Label: the librdkafka client (`client.id`).
pub const CLIENT_LABEL: &str = "client";
/// Label: a broker, as librdkafka names it (`host:port/id`).
pub const BROKER_LABEL: &str = "broker";
/// Label: a topic.
pub const TOPIC_LABEL: &str = "topic";
/// Label: a partition number.
pub const PARTITION_LABEL: &str = "partition";
/// Label: what a memory gauge measures.
pub const KIND_LABEL: &str = "kind";
/// Label: what a client was doing when an error was reported.
pub const OPERATION_LABEL: &str = "operation";
/// Label: librdkafka's name for an error code (`BrokerTransportFailure`, …).
pub const ERROR_LABEL: &str = "error";
/// Constant label: a connector source's name.
pub const SOURCE_LABEL: &str = "source";

/// Drop reason: the key or value could not be deserialized.
pub const REASON_DESERIALIZATION: &str = "deserialization";
/// Drop reason: the record arrived after its window closed.
pub const REASON_LATE: &str = "late";
/// Drop reason: processing the record failed (an error about the record, or a panic) and the
/// [`ProcessingErrorHandler`](crate::error_policy::ProcessingErrorHandler) skipped or
/// dead-lettered it (or a processor reported it through `ProcessorContext::record_dropped`).
pub const REASON_ERROR: &str = "error";
/// Drop reason: the producer refused an output record (too large, invalid) and the
/// [`ProductionErrorHandler`](crate::error_policy::ProductionErrorHandler) skipped or
/// dead-lettered it.
pub const REASON_PRODUCTION: &str = "production";
/// Drop reason: a record with a null key reached an aggregation, which needs a key (Kafka
/// Streams drops these too).
pub const REASON_NULL_KEY: &str = "null_key";

/// RocksDB memory kind: block cache in use (memtables are charged to it too).
pub const ROCKSDB_BLOCK_CACHE: &str = "block_cache";
/// RocksDB memory kind: pinned block cache entries.
pub const ROCKSDB_BLOCK_CACHE_PINNED: &str = "block_cache_pinned";
/// RocksDB memory kind: memtables, as the write-buffer manager counts them.
pub const ROCKSDB_WRITE_BUFFERS: &str = "write_buffers";

/// Operation: an error the consumer's poll returned (a fetch that failed, a broker that
/// cannot be reached).
pub const OPERATION_CONSUME: &str = "consume";
/// Operation: an error the producer reported (a broker that cannot be reached, a record not
/// delivered).
pub const OPERATION_PRODUCE: &str = "produce";
/// Operation: an offset commit refused or failed (a deferred one included).
pub const OPERATION_COMMIT: &str = "commit";
/// Operation: a transactional call (send offsets, commit, abort) that failed.
pub const OPERATION_TRANSACTION: &str = "transaction";

/// Broker fault: a connection to the broker closed or failed.
pub const BROKER_DISCONNECTS: &str = "disconnect";
/// Broker fault: a request sent again after it failed.
pub const BROKER_REQUEST_RETRIES: &str = "request_retry";
/// Broker fault: a request that got no response in time.
pub const BROKER_REQUEST_TIMEOUTS: &str = "request_timeout";
/// Broker fault: a request that could not be sent.
pub const BROKER_SEND_ERRORS: &str = "send_error";
/// Broker fault: a response that could not be read.
pub const BROKER_RECEIVE_ERRORS: &str = "receive_error";
