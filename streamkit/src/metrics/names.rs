//! Metric names and label keys, in one place so dashboards and code agree.

/// Records processed by a task (counter).
pub const RECORDS_PROCESSED: &str = "streamkit_records_processed_total";
/// Records dropped, by reason (counter).
pub const DROPPED_RECORDS: &str = "streamkit_dropped_records_total";
/// Records sent to a dead-letter topic (counter).
pub const DEAD_LETTER_RECORDS: &str = "streamkit_dead_letter_records_total";
/// Time to commit (flush producer, commit offsets), seconds (histogram).
pub const COMMIT_LATENCY: &str = "streamkit_commit_latency_seconds";
/// Changelog records restored into a store (counter).
pub const RESTORED_RECORDS: &str = "streamkit_restored_records_total";
/// Changelog records still to restore for a store of a task (gauge; 0 when done).
pub const RESTORE_REMAINING: &str = "streamkit_restore_remaining_records";
/// Label: the state store's name.
pub const STORE_LABEL: &str = "store";
/// Number of tasks a stream thread owns (gauge).
pub const ACTIVE_TASKS: &str = "streamkit_active_tasks";

/// Constant label: the application id.
pub const APPLICATION_ID_LABEL: &str = "application_id";
/// Label: the stream thread's name.
pub const THREAD_LABEL: &str = "thread";
/// Label: the task id, `<sub-topology>_<partition>`.
pub const TASK_LABEL: &str = "task";
/// Label: why a record was dropped.
pub const REASON_LABEL: &str = "reason";

/// Drop reason: the key or value could not be deserialized.
pub const REASON_DESERIALIZATION: &str = "deserialization";
/// Drop reason: the record arrived after its window closed.
pub const REASON_LATE: &str = "late";
