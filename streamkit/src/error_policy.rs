//! What happens to an input record that cannot be deserialized, whose processing fails or
//! panics, or whose output the producer refuses.

use rdkafka::types::RDKafkaErrorCode;

/// Header names set on records sent to a dead-letter topic.
pub mod dead_letter_headers {
    /// The error message (for a panic: `panicked: ` and the panic's message).
    pub const ERROR: &str = "streamkit.error.message";
    /// What failed: `key` or `value` (deserialization), `window` (a late record),
    /// `processing` (an error or a panic while processing the record), `production` (the
    /// producer refused an output record).
    pub const STAGE: &str = "streamkit.error.stage";
    /// The topic the record was read from.
    pub const TOPIC: &str = "streamkit.error.topic";
    /// Its partition (decimal text).
    pub const PARTITION: &str = "streamkit.error.partition";
    /// Its offset (decimal text).
    pub const OFFSET: &str = "streamkit.error.offset";
    /// The node that failed: the source node for a deserialization error, the processor
    /// whose code returned the error or panicked for a processing error.
    pub const NODE: &str = "streamkit.error.node";
    /// Production errors: the topic the refused output record was for.
    pub const TARGET_TOPIC: &str = "streamkit.error.target.topic";
    /// Set when the dead letter's value was cut short to fit (a refused record too large to
    /// be sent whole): the original value's length in bytes (decimal text).
    pub const TRUNCATED: &str = "streamkit.error.truncated";
}

/// [`dead_letter_headers::STAGE`] of a processing error or panic.
pub(crate) const STAGE_PROCESSING: &str = "processing";
/// [`dead_letter_headers::STAGE`] of a record the producer refused.
pub(crate) const STAGE_PRODUCTION: &str = "production";

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

/// The policy for a record whose processing fails with an error about the record itself (user
/// code returned one with [`Error::custom`](crate::Error::custom), or a key or value could not
/// be serialized) or panics: a panic in a user closure while one record is processed is that
/// record's processing error. Other errors (Kafka, I/O, a store refusing writes) always stop
/// the instance, and so does a panic that left a state store locked (its contents cannot be
/// trusted). Set with
/// [`StreamsConfig::processing_error_handler`](crate::config::StreamsConfig::processing_error_handler);
/// Kafka Streams' `ProcessingExceptionHandler`, with the dead-letter queue of KIP-1034.
///
/// What the record did before the error (records forwarded, store writes) stays, as in Kafka
/// Streams. A panic in a punctuator is not a record's error: it fails the thread.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProcessingErrorHandler {
    /// Stop the instance with the error ([`Error::Panicked`](crate::Error::Panicked) for a
    /// panic, naming the thread and the panic's message). Default.
    #[default]
    Fail,
    /// Log a warning, count the record as dropped (`reason="error"`), go on with the next
    /// record.
    LogAndContinue,
    /// Send the input record being processed, as it was read (key and value bytes, timestamp,
    /// headers), to this topic with headers naming the error, the node and the record's
    /// origin (see [`dead_letter_headers`]; stage `processing`), count it as dropped
    /// (`reason="error"`) and go on. Under exactly-once the dead letter is part of the
    /// transaction.
    DeadLetter(String),
}

impl ProcessingErrorHandler {
    /// Whether processing goes on after `error` (this handler does not fail on it).
    pub(crate) fn handles(&self, error: &crate::Error) -> bool {
        use crate::Error;
        *self != ProcessingErrorHandler::Fail
            && matches!(error, Error::Processor { source, .. }
                if matches!(**source, Error::Custom(_) | Error::Serde(_)))
    }
}

/// The policy for an output record the producer refuses for what the record is: too large
/// (over the producer's `message.max.bytes`, or the broker's or topic's limit), or invalid
/// in the broker's eyes (`INVALID_RECORD`, a timestamp out of range). Kafka Streams'
/// `ProductionExceptionHandler`. Set with
/// [`StreamsConfig::production_error_handler`](crate::config::StreamsConfig::production_error_handler).
///
/// Other production errors always stop the thread, whatever the handler: a fenced producer,
/// a topic the application may not write, a broker that cannot be reached or a delivery that
/// timed out (they concern every record, not one). So do refused writes to a changelog (the
/// store and its changelog would disagree) and refused dead letters.
///
/// Two kinds of refusals, handled differently:
/// - **at send time** (the producer's own size check): the output is skipped and processing
///   goes on; [`DeadLetter`](Self::DeadLetter) sends the *input* record being processed, as
///   Kafka Streams' KIP-1034 does (or, in a punctuator, which has no input record, the
///   refused record itself);
/// - **on delivery** (the broker refused the batch holding the record): under at-least-once
///   the stream thread handles it before its next commit, with the refused record itself
///   (its value cut short when it is its size that failed; see
///   [`dead_letter_headers::TRUNCATED`]). The broker refuses a whole batch at once, so the
///   records sharing a batch with a too-large one are refused with it. Under exactly-once
///   librdkafka makes the transaction abortable: it is aborted and the tasks go back to the
///   last commit, as for any failed delivery, and processing the same input again stops the
///   thread after [`max_transaction_aborts`](crate::config::StreamsConfig::max_transaction_aborts)
///   aborts in a row. Under exactly-once the handler thus applies to refusals at send time
///   only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProductionErrorHandler {
    /// Stop the thread with the error. Default.
    #[default]
    Fail,
    /// Log a warning, count the record as dropped (`reason="production"`), go on.
    LogAndContinue,
    /// Send a dead letter to this topic with headers naming the error and the refused
    /// record's target topic (stage `production`, see [`dead_letter_headers`]), count the
    /// record as dropped (`reason="production"`), go on.
    DeadLetter(String),
}

impl ProductionErrorHandler {
    /// The dead-letter topic, for [`DeadLetter`](Self::DeadLetter).
    pub(crate) fn dead_letter_topic(&self) -> Option<&str> {
        match self {
            ProductionErrorHandler::DeadLetter(t) => Some(t),
            _ => None,
        }
    }
}

/// Whether the producer refused a record for what the record is (its size, its contents),
/// rather than for a reason every record shares.
pub(crate) fn is_record_error(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::MessageSizeTooLarge
            | C::MessageBatchTooLarge
            | C::InvalidMessageSize
            | C::InvalidRecord
            | C::InvalidTimestamp
    )
}

/// Whether `code` says the record is too large (its value is cut short in a dead letter).
pub(crate) fn is_size_error(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::MessageSizeTooLarge | C::MessageBatchTooLarge | C::InvalidMessageSize
    )
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
        let dead_letter = H::DeadLetter("dlq".into());
        for h in [&H::LogAndContinue, &dead_letter] {
            assert!(h.handles(&custom));
            assert!(h.handles(&serde));
            assert!(!h.handles(&poisoned));
            assert!(!h.handles(&produce));
        }
        assert!(!H::Fail.handles(&custom));
    }

    #[test]
    fn only_refusals_of_the_record_itself_are_production_errors_to_handle() {
        use rdkafka::types::RDKafkaErrorCode as C;
        for code in [
            C::MessageSizeTooLarge,
            C::InvalidRecord,
            C::InvalidTimestamp,
        ] {
            assert!(super::is_record_error(code), "{code:?}");
        }
        for code in [
            C::TopicAuthorizationFailed,
            C::ProducerFenced,
            C::MessageTimedOut,
            C::BrokerTransportFailure,
            C::QueueFull,
            C::UnknownTopicOrPartition,
        ] {
            assert!(!super::is_record_error(code), "{code:?}");
        }
        assert!(super::is_size_error(C::MessageSizeTooLarge));
        assert!(!super::is_size_error(C::InvalidRecord));
    }
}
