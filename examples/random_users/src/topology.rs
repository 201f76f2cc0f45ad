//! The topology, as a function tests call through the driver.
//!
//! ```text
//! random-users-json (the API's users as polled, JSON, key login.uuid)
//!   ─▶ parsed as RandomUser (malformed: the deserialization handler, by default the
//!      dead-letter topic random-users-dlq)
//!   ─▶ random-users (Avro, schema in the registry: subject random-users-value)
//!
//! random-users (Avro)
//!   ─▶ clean (the Spark job's columns)   invalid ─▶ random-users-rejected (key, reason)
//!        ├─▶ created-users (Avro)         ─▶ the Cassandra sink: spark_streams.created_users
//!        ├─▶ latest per id                 (store "users")
//!        │     ├─▶ count per country|gender (store "users-by-country-gender")
//!        │     └─▶ count per age band        (store "users-by-age-band")
//!        └─▶ the live model                 (store "gender-model") ─▶ gender-model-eval
//! ```
//!
//! The aggregates count the users table, not the stream, so a user polled twice (a replay
//! after a crash, or the real API repeating someone) counts once.

use streamkit::prelude::*;
use streamkit::serde::avro::{Avro, RegistryClient};

use crate::learn::{self, Evaluation, Trainer};
use crate::model::{self, CreatedUser, RandomUser, Rejected};

/// The users as polled: JSON, one record per user.
pub const RAW_TOPIC: &str = "random-users-json";
/// The users in Avro through the schema registry (the original's `users_created`).
pub const USERS_TOPIC: &str = "random-users";
/// The cleaned users (Avro): what the Cassandra sink writes.
pub const CREATED_TOPIC: &str = "created-users";
/// Users that parsed but failed the cleaning's checks, with the reason (JSON).
pub const REJECTED_TOPIC: &str = "random-users-rejected";
/// Records of the raw topic that do not parse as a user (with the default handler).
pub const DEAD_LETTER_TOPIC: &str = "random-users-dlq";

/// Store: the latest cleaned user per id.
pub const USERS_STORE: &str = "users";
/// Store: users per `country|gender`.
pub const BY_COUNTRY_GENDER: &str = "users-by-country-gender";
/// Store: users per age band ([`model::AGE_BANDS`]).
pub const BY_AGE_BAND: &str = "users-by-age-band";

/// The topics the application reads and writes, with their partition counts.
pub const TOPICS: [(&str, i32); 6] = [
    (RAW_TOPIC, 1),
    (USERS_TOPIC, 1),
    (CREATED_TOPIC, 1),
    (REJECTED_TOPIC, 1),
    (DEAD_LETTER_TOPIC, 1),
    (learn::EVAL_TOPIC, 1),
];

/// How the topology reads its input.
pub struct TopologyConfig {
    /// The schema registry the Avro serdes use.
    pub registry: RegistryClient,
    /// Poll the API into [`RAW_TOPIC`] inside the application; `None`: read the topic (tests,
    /// or a source run elsewhere).
    pub source: Option<streamkit::connect::http_poll::HttpPollSource>,
    /// What a raw record that does not parse becomes.
    pub on_malformed: DeserializationHandler,
}

impl TopologyConfig {
    /// Reads [`RAW_TOPIC`], malformed records to [`DEAD_LETTER_TOPIC`].
    pub fn new(registry: &RegistryClient) -> Self {
        TopologyConfig {
            registry: registry.clone(),
            source: None,
            on_malformed: DeserializationHandler::DeadLetter(DEAD_LETTER_TOPIC.to_string()),
        }
    }
}

/// The Avro serde of [`RandomUser`] values.
pub fn users_serde(registry: &RegistryClient) -> Avro<RandomUser> {
    Avro::<RandomUser>::registry(registry)
}

/// The Avro serde of [`CreatedUser`] values.
pub fn created_serde(registry: &RegistryClient) -> Avro<CreatedUser> {
    Avro::<CreatedUser>::registry(registry)
}

/// Builds the topology.
pub fn topology(config: &TopologyConfig) -> Result<Topology> {
    let b = StreamsBuilder::new();
    let raw = Consumed::with(Serdes::string(), Serdes::json::<RandomUser>())
        .on_deserialization_error(config.on_malformed.clone());
    let polled = match &config.source {
        Some(source) => b.stream_from_connector(source.clone(), raw),
        None => b.stream(RAW_TOPIC, raw),
    };
    polled.to(
        USERS_TOPIC,
        Produced::with(Serdes::string(), users_serde(&config.registry)),
    );

    let users = b.stream(
        USERS_TOPIC,
        Consumed::with(Serdes::string(), users_serde(&config.registry)),
    );
    let cleaned = users.map_values_with_key(|key, u| {
        model::clean(&u).map_err(|reason| Rejected {
            key: key.clone(),
            reason,
        })
    });
    cleaned.flat_map_values(|r| r.clone().err()).to(
        REJECTED_TOPIC,
        Produced::with(Serdes::string(), Serdes::json::<Rejected>()),
    );
    // Keyed by the cleaned id (the polled key may differ in case or be missing).
    let created = cleaned
        .flat_map_values(|r| r.clone().ok())
        .select_key(|_k, u| u.id.clone());
    created.to(
        CREATED_TOPIC,
        Produced::with(Serdes::string(), created_serde(&config.registry)),
    );

    let table = created
        .group_by_key(
            Grouped::with(Serdes::string(), Serdes::json::<CreatedUser>()).named("users-by-id"),
        )
        .reduce(
            |_old, new| new,
            Materialized::named(USERS_STORE).value_serde(Serdes::json::<CreatedUser>()),
        );
    table
        .group_by(
            |_id, u| (model::country_gender_key(u), ()),
            Grouped::with(Serdes::string(), Serdes::unit()).named("by-country-gender"),
        )
        .count(Materialized::named(BY_COUNTRY_GENDER));
    table
        .group_by(
            |_id, u| (model::age_band(u.age).to_string(), ()),
            Grouped::with(Serdes::string(), Serdes::unit()).named("by-age-band"),
        )
        .count(Materialized::named(BY_AGE_BAND));

    b.add_state_store(learn::model_store());
    created
        .process_with_stores(|| Trainer, &[learn::MODEL_STORE])
        .to(
            learn::EVAL_TOPIC,
            Produced::with(Serdes::string(), Serdes::json::<Evaluation>()),
        );
    b.build()
}
