//! What happens to an input record that cannot be deserialized, or whose processing fails.

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

/// The policy for a record whose processing fails with an error about the record itself: user
/// code returned one ([`Error::custom`](crate::Error::custom)) or a key or value could not be
/// serialized. Other errors (Kafka, I/O, a store refusing writes) always stop the instance.
/// Set with
/// [`StreamsConfig::processing_error_handler`](crate::config::StreamsConfig::processing_error_handler).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessingErrorHandler {
    /// Stop the instance with the error. Default.
    #[default]
    Fail,
    /// Log a warning, count the record as dropped (`reason="error"`), go on with the next
    /// record. What the record did before the error (records forwarded, store writes) stays,
    /// as with Kafka Streams' `ProcessingExceptionHandler`.
    LogAndContinue,
}

impl ProcessingErrorHandler {
    /// Whether processing goes on after `error`.
    pub(crate) fn skips(self, error: &crate::Error) -> bool {
        use crate::Error;
        self == ProcessingErrorHandler::LogAndContinue
            && matches!(error, Error::Processor { source, .. }
                if matches!(**source, Error::Custom(_) | Error::Serde(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::ProcessingErrorHandler as H;
    use crate::{Error, SerdeError};

    fn in_node(e: Error) -> Error {
        e.in_node("KSTREAM-PROCESSOR-0000000001")
    }

    #[test]
    fn only_errors_about_the_record_are_skipped() {
        let custom = in_node(Error::custom("bad reading"));
        let serde = in_node(Error::Serde(SerdeError::Encode("too big".into())));
        let poisoned = in_node(Error::IllegalState("store refuses writes".into()));
        let produce = Error::Produce {
            topic: "out".into(),
            reason: "broker down".into(),
        };
        assert!(H::LogAndContinue.skips(&custom));
        assert!(H::LogAndContinue.skips(&serde));
        assert!(!H::LogAndContinue.skips(&poisoned));
        assert!(!H::LogAndContinue.skips(&produce));
        assert!(!H::Fail.skips(&custom));
    }
}
