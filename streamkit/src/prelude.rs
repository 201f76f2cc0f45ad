//! Everything a user imports to write a topology: `use streamkit::prelude::*;`.

pub use crate::KafkaStreams;
pub use crate::config::StreamsConfig;
pub use crate::error::{Error, Result};
pub use crate::error_policy::{
    DeserializationHandler, ProcessingErrorHandler, ProductionErrorHandler,
};
pub use crate::processor::{
    FixedKeyProcessor, FixedKeyProcessorContext, FixedKeyRecord, Processor, ProcessorContext,
    Punctuation, PunctuationType,
};
pub use crate::record::{Headers, Record};
/// The application's lifecycle state (Kafka Streams' `KafkaStreams.State`), named so that it
/// does not collide with axum's `State` extractor in a web handler's imports.
pub use crate::runtime::State as StreamsState;
pub use crate::serde::{Serde, Serdes};
pub use crate::stream::{
    Consumed, Grouped, KStream, Materialized, OffsetReset, Produced, Repartitioned, StreamJoined,
    StreamPartitioner, StreamsBuilder,
};
pub use crate::table::{GlobalKTable, KGroupedTable, KTable, Suppressed};
pub use crate::testing::TopologyTestDriver;
pub use crate::topology::Topology;
pub use crate::window::{
    JoinWindows, SessionWindows, SlidingWindows, TimeWindows, Window, Windowed, WindowedSerde,
};
