//! What happens to an input record that cannot be deserialized.

/// Header names set on records sent to a dead-letter topic.
pub mod dead_letter_headers {
    /// The error message.
    pub const ERROR: &str = "streamkit.error.message";
    /// Which part failed: `key` or `value`.
    pub const STAGE: &str = "streamkit.error.stage";
    /// The topic the record was read from.
    pub const TOPIC: &str = "streamkit.error.topic";
    /// Its partition (decimal text).
    pub const PARTITION: &str = "streamkit.error.partition";
    /// Its offset (decimal text).
    pub const OFFSET: &str = "streamkit.error.offset";
}

/// The policy for records whose key or value cannot be deserialized. Set per source with
/// [`Consumed::on_deserialization_error`](crate::stream::Consumed::on_deserialization_error),
/// or for the whole application with
/// [`StreamsConfig::default_deserialization_handler`](crate::config::StreamsConfig::default_deserialization_handler).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeserializationHandler {
    /// Stop processing with an error naming the topic, partition and offset. Default.
    #[default]
    Fail,
    /// Log a warning, count the record as dropped, go on.
    LogAndContinue,
    /// Send the original bytes to this topic with headers naming the error and the record's
    /// origin (see [`dead_letter_headers`]), count the record as dropped, go on.
    DeadLetter(String),
}
