//! Testing without and with a broker: [`TopologyTestDriver`] (no broker, deterministic) and
//! [`EmbeddedBroker`] (librdkafka's in-process mock cluster, a real Kafka-protocol endpoint).

mod driver;
mod embedded;

pub use driver::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
pub use embedded::EmbeddedBroker;
