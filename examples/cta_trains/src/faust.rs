//! The Faust-style stations transform (the original's `faust_stream.py`): an agent over the
//! raw stations the Postgres source writes, keeping `(station_id, station_name, order, line)`
//! in a table keyed by station id and writing each transformed station to
//! `org.chicago.cta.stations.table.v1`.
//!
//! ```text
//! app = faust.App("stations-stream", …)                      application id "stations-stream"
//! topic = app.topic("org.chicago.cta.stations", value_type=Station)
//! table = app.Table("org.chicago.cta.stations.table.v1",     FaustTable (a changelogged store)
//!                   default=TransformedStation, partitions=1,
//!                   changelog_topic=out_topic)
//! @app.agent(topic)                                          agent "process_station"
//! async def process_station(stations):
//!     async for station in stations:
//!         table[station.station_id] = TransformedStation(…)  table.set + forward to the topic
//! ```
//!
//! streamkit names a table's changelog `<application id>-<table>-changelog` and has no
//! `changelog_topic=`, so the agent also forwards every station it writes to
//! `org.chicago.cta.stations.table.v1` (an agent with a sink): that topic holds what Faust's
//! changelog held, one record per write, keyed by station id (JSON, as Faust's default key
//! serializer writes it).
//!
//! Platforms of the lines the table does not flag (brown, purple, …) have no line colour and
//! are left out, counted by the agent in its log.

use streamkit::agent::AgentStream;
use streamkit::prelude::*;
use streamkit::table::FaustTable;

use crate::data::Station;
use crate::model::{STATIONS_TABLE_TOPIC, STATIONS_TOPIC, TransformedStation};

/// The Faust application's id.
pub const APPLICATION_ID: &str = "stations-stream";
/// The table's name (its store's), as the original named it.
pub const TABLE: &str = "org.chicago.cta.stations.table.v1";
/// The agent's name.
pub const AGENT: &str = "process_station";

/// The table: station id → transformed station.
pub fn table() -> FaustTable<i32, TransformedStation> {
    FaustTable::new(
        TABLE,
        Serdes::json::<i32>(),
        Serdes::json::<TransformedStation>(),
    )
}

/// `TransformedStation(station_id, station_name, order, line)` of a raw station, or `None`
/// when it is on none of the three lines.
pub fn transform(station: &Station) -> Option<TransformedStation> {
    Some(TransformedStation {
        station_id: station.station_id,
        station_name: station.station_name.clone(),
        order: station.order,
        line: station.line()?.as_str().to_string(),
    })
}

/// The transform's topology: `org.chicago.cta.stations` (JSON rows, keyed by `stop_id`) →
/// agent `process_station` with table [`TABLE`] → `org.chicago.cta.stations.table.v1`.
///
/// ```
/// use streamkit::prelude::*;
/// use cta_trains::{data, faust, model::TransformedStation};
/// let driver = TopologyTestDriver::new(faust::topology()?)?;
/// let rows = driver.input_topic("org.chicago.cta.stations", Serdes::string(), Serdes::json::<data::Station>());
/// let harlem = data::stations()?.into_iter().find(|s| s.stop_id == 30004).unwrap();
/// rows.pipe(harlem.stop_id.to_string(), harlem)?;
/// let out = driver.output_topic("org.chicago.cta.stations.table.v1", Serdes::json::<i32>(), Serdes::json::<TransformedStation>());
/// let (id, station) = out.read_key_value().unwrap();
/// assert_eq!((id, station.station_name.as_str(), station.order, station.line.as_str()), (40020, "Harlem/Lake", 0, "green"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn topology() -> streamkit::Result<Topology> {
    let table = table();
    let builder = StreamsBuilder::new();
    builder.add_state_store(table.store());
    let def = table.clone();
    builder
        .stream(
            STATIONS_TOPIC,
            Consumed::with(Serdes::string(), Serdes::json::<Station>())
                .on_deserialization_error(DeserializationHandler::LogAndContinue)
                .named("stations"),
        )
        .agent_with_output(
            AGENT,
            &[table.name()],
            move |mut stations: AgentStream<String, Station, i32, TransformedStation>| {
                let def = def.clone();
                async move {
                    let table = stations.table(&def)?;
                    let mut other_lines = 0u64;
                    while let Some(station) = stations.next().await {
                        let Some(transformed) = transform(&station.value) else {
                            other_lines += 1;
                            tracing::debug!(
                                stop_id = station.value.stop_id,
                                other_lines,
                                "a platform of another line: left out"
                            );
                            continue;
                        };
                        table.set(&transformed.station_id, &transformed)?;
                        stations.forward(Record::new(
                            transformed.station_id,
                            transformed,
                            station.timestamp,
                        ));
                    }
                    Ok(())
                }
            },
        )
        .to(
            STATIONS_TABLE_TOPIC,
            Produced::with(Serdes::json::<i32>(), Serdes::json::<TransformedStation>()),
        );
    builder.build()
}
