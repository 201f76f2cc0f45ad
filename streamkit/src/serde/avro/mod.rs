//! Avro keys and values in the Confluent wire format, with their schemas in a
//! Confluent-compatible schema registry.
//!
//! Every record is magic byte `0`, the writer schema's registry id (4 bytes, big-endian) and
//! the Avro binary, as Confluent's serializers write it, so topics are shared with Java,
//! Python and Go clients. [`Avro<T>`] reads and writes a serde type (derive
//! [`apache_avro::AvroSchema`] for its schema); [`AvroGeneric`] reads and writes
//! [`apache_avro::types::Value`].
//!
//! - **Producing** registers the serde's schema under the subject its
//!   [`SubjectNameStrategy`] names (on by default; with
//!   [`auto_register(false)`](Avro::auto_register) the schema must already be registered).
//! - **Consuming** looks the writer schema up by the id in the record and resolves it to the
//!   serde's reader schema (Avro schema resolution: a field the writer lacks takes its
//!   default).
//! - Both are cached in the [`RegistryClient`]: one registry call per schema, not per record.
//!
//! A record with another magic byte, an unknown schema id, or bytes that do not decode fails
//! with [`SerdeError::Invalid`] naming the reason, so it reaches the source's
//! [`DeserializationHandler`](crate::error_policy::DeserializationHandler) like any bad record.
//!
//! ```no_run
//! use streamkit::serde::avro::{Avro, RegistryClient};
//!
//! #[derive(serde::Serialize, serde::Deserialize, apache_avro::AvroSchema)]
//! struct Turnstile {
//!     station_id: i32,
//!     station_name: String,
//!     line: String,
//! }
//!
//! let sr = RegistryClient::new("http://127.0.0.1:8081").unwrap();
//! let values = Avro::<Turnstile>::registry(&sr); // subject <topic>-value
//! ```

#[cfg(feature = "server")]
pub(crate) mod json;
mod registry;
pub mod wire;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{AvroSchema, Schema};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use registry::{RegistryAuth, RegistryClient};

use super::Serde;
use crate::error::SerdeError;

/// How the registry subject of a topic's keys or values is named (Confluent's
/// `key.subject.name.strategy` / `value.subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` or `<topic>-value`: one schema (and its evolutions) per topic. Default.
    #[default]
    TopicName,
    /// The record's full name: one subject per record type, across topics.
    RecordName,
    /// `<topic>-<record full name>`: several record types per topic.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// The subject for `topic` and a schema named `record` (`None` for unnamed schemas).
    pub fn subject(
        self,
        topic: &str,
        is_key: bool,
        record: Option<&str>,
    ) -> Result<String, SerdeError> {
        let part = if is_key { "key" } else { "value" };
        let named = || {
            record.ok_or_else(|| {
                SerdeError::Encode(format!(
                    "avro: {self:?} strategy needs a named schema (record, enum or fixed)"
                ))
            })
        };
        Ok(match self {
            SubjectNameStrategy::TopicName => format!("{topic}-{part}"),
            SubjectNameStrategy::RecordName => named()?.to_string(),
            SubjectNameStrategy::TopicRecordName => format!("{topic}-{}", named()?),
        })
    }
}

/// The serde's own schema with its names resolved once, and the reader and writer built on
/// it: records written with this schema are read and written without resolving anything or
/// going through [`Value`].
#[ouroboros::self_referencing]
struct OwnCodec {
    schema: Arc<Schema>,
    #[borrows(schema)]
    #[covariant]
    reader: GenericDatumReader<'this>,
    #[borrows(schema)]
    #[covariant]
    writer: GenericDatumWriter<'this>,
}

impl OwnCodec {
    fn resolve(schema: Arc<Schema>) -> Result<Self, String> {
        OwnCodecTryBuilder {
            schema,
            reader_builder: |s: &Arc<Schema>| GenericDatumReader::builder(s).build(),
            writer_builder: |s: &Arc<Schema>| GenericDatumWriter::builder(s).build(),
        }
        .try_build()
        .map_err(|e| format!("avro: the schema does not resolve: {e}"))
    }
}

/// How the records of one schema id become a typed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadPath {
    /// Written with the serde's own schema: decoded straight into the type.
    Direct,
    /// Through [`Value`] and Avro schema resolution: another writer schema, or a type serde
    /// sees differently from the schema where Avro does not care (a record named unlike the
    /// struct).
    Resolve,
}

/// What [`Avro`] and [`AvroGeneric`] share: the registry, the schema, and where ids come from.
struct Core {
    registry: RegistryClient,
    schema: Arc<Schema>,
    /// `schema` resolved once (an error names why it does not resolve).
    own: Result<OwnCodec, String>,
    /// Schema id → how its records are read into a type.
    read_paths: RwLock<HashMap<u32, ReadPath>>,
    record_name: Option<String>,
    strategy: SubjectNameStrategy,
    is_key: bool,
    auto_register: bool,
    /// Topic → id of `schema` under the topic's subject: the per-record path takes a read lock
    /// and never reaches the registry client.
    ids: RwLock<HashMap<String, u32>>,
}

impl Core {
    fn new(registry: &RegistryClient, schema: Schema) -> Self {
        let record_name = schema.name().map(|n| n.fullname(None));
        let schema = Arc::new(schema);
        Core {
            registry: registry.clone(),
            own: OwnCodec::resolve(schema.clone()),
            read_paths: RwLock::default(),
            schema,
            record_name,
            strategy: SubjectNameStrategy::TopicName,
            is_key: false,
            auto_register: true,
            ids: RwLock::default(),
        }
    }

    fn schema_id(&self, topic: &str) -> Result<u32, SerdeError> {
        if let Some(id) = self
            .ids
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
        {
            return Ok(*id);
        }
        let subject = self
            .strategy
            .subject(topic, self.is_key, self.record_name.as_deref())?;
        let id = if self.auto_register {
            self.registry.register(&subject, &self.schema)?
        } else {
            self.registry.lookup(&subject, &self.schema)?
        };
        self.ids
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_string(), id);
        Ok(id)
    }

    /// Reads a record: its schema id, then the datum as the writer wrote it, resolved to
    /// `reader` when given.
    fn read_value(&self, data: &[u8], reader: Option<&Schema>) -> Result<Value, SerdeError> {
        let (id, mut body) = wire::read_header(data)?;
        let writer = self.registry.schema_by_id(id)?;
        let reader = reader.filter(|r| **r != *writer);
        let value = GenericDatumReader::builder(&writer)
            .maybe_reader_schema(reader)
            .build()
            .and_then(|r| r.read_value(&mut body))
            .map_err(|e| SerdeError::Invalid(format!("avro: schema id {id}: {e}")))?;
        // apache-avro reads past the end of a short datum as nulls instead of failing, so a
        // truncated record would decode into a value its schema does not allow.
        if !value.validate(reader.unwrap_or(&writer)) {
            return Err(SerdeError::Invalid(format!(
                "avro: schema id {id}: the datum does not match its schema (truncated or corrupt)"
            )));
        }
        if !body.is_empty() {
            return Err(SerdeError::Invalid(format!(
                "avro: schema id {id}: {} bytes left after the datum",
                body.len()
            )));
        }
        Ok(value)
    }

    fn own(&self) -> Result<&OwnCodec, SerdeError> {
        self.own
            .as_ref()
            .map_err(|e| SerdeError::Invalid(e.clone()))
    }

    /// How records with schema id `id` are read: directly when they were written with this
    /// serde's own schema (the registry is asked once per id).
    fn read_path(&self, id: u32) -> Result<ReadPath, SerdeError> {
        if let Some(path) = self
            .read_paths
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(*path);
        }
        let path = if *self.registry.schema_by_id(id)? == *self.schema {
            ReadPath::Direct
        } else {
            ReadPath::Resolve
        };
        self.set_read_path(id, path);
        Ok(path)
    }

    fn set_read_path(&self, id: u32, path: ReadPath) {
        self.read_paths
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, path);
    }

    fn write_value(&self, topic: &str, value: &Value, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        let id = self.schema_id(topic)?;
        wire::write_header(id, out);
        self.own()?
            .borrow_writer()
            .write_value_ref(out, value)
            .map_err(|e| SerdeError::Encode(format!("avro: {e}")))?;
        Ok(())
    }
}

macro_rules! builder_methods {
    () => {
        /// Makes this a key serde: subjects end in `-key` under
        /// [`SubjectNameStrategy::TopicName`]. Default: a value serde.
        pub fn key(mut self) -> Self {
            self.core.is_key = true;
            self
        }

        /// How subjects are named. Default: [`SubjectNameStrategy::TopicName`].
        pub fn subject_name_strategy(mut self, strategy: SubjectNameStrategy) -> Self {
            self.core.strategy = strategy;
            self
        }

        /// Whether producing registers the schema. Default: `true`; with `false` the schema
        /// must already be registered under the subject, else serialization fails.
        pub fn auto_register(mut self, on: bool) -> Self {
            self.core.auto_register = on;
            self
        }

        /// The schema this serde writes with and reads into.
        pub fn schema(&self) -> &Schema {
            &self.core.schema
        }

        /// The registry client.
        pub fn registry_client(&self) -> &RegistryClient {
            &self.core.registry
        }
    };
}

/// A serde type as Avro in the Confluent wire format. See the [module docs](self).
pub struct Avro<T> {
    core: Core,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Avro<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Avro<{}>", std::any::type_name::<T>())
    }
}

impl<T: AvroSchema> Avro<T> {
    /// A value serde for `T` with the schema `T` derives, against `registry`.
    pub fn registry(registry: &RegistryClient) -> Self {
        Self::with_schema(registry, T::get_schema())
    }
}

impl<T> Avro<T> {
    /// A value serde for `T` with an explicit schema (for types that do not derive
    /// [`AvroSchema`], or to read with an older or newer reader schema than they derive).
    pub fn with_schema(registry: &RegistryClient, schema: Schema) -> Self {
        Avro {
            core: Core::new(registry, schema),
            _t: PhantomData,
        }
    }

    builder_methods!();
}

impl<T: Serialize + DeserializeOwned + 'static> Serde<T> for Avro<T> {
    fn serialize(&self, topic: &str, value: &T, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        let id = self.core.schema_id(topic)?;
        wire::write_header(id, out);
        self.core
            .own()?
            .borrow_writer()
            .write_ser(out, value)
            .map_err(|e| SerdeError::Encode(format!("avro: {e}")))?;
        Ok(())
    }

    fn deserialize(&self, _topic: &str, data: &[u8]) -> Result<T, SerdeError> {
        let (id, mut body) = wire::read_header(data)?;
        if self.core.read_path(id)? == ReadPath::Direct {
            // Written with this serde's schema: straight into `T`, no resolution.
            if let Ok(value) = self.core.own()?.borrow_reader().read_deser(&mut body)
                && body.is_empty()
            {
                return Ok(value);
            }
            // A bad record, or a type serde sees differently from the schema (a record
            // named unlike the struct): the resolving path tells which, and names the reason.
            let value = self.core.read_value(data, Some(&self.core.schema))?;
            let typed: T = apache_avro::from_value(&value)
                .map_err(|e| SerdeError::Invalid(format!("avro: {e}")))?;
            self.core.set_read_path(id, ReadPath::Resolve);
            return Ok(typed);
        }
        let value = self.core.read_value(data, Some(&self.core.schema))?;
        apache_avro::from_value(&value).map_err(|e| SerdeError::Invalid(format!("avro: {e}")))
    }

    fn to_json(&self, value: &T) -> Result<serde_json::Value, SerdeError> {
        serde_json::to_value(value).map_err(|e| SerdeError::Encode(e.to_string()))
    }

    fn parse_json(&self, json: &serde_json::Value) -> Result<T, SerdeError> {
        super::json_from(json)
    }
}

/// Generic Avro values ([`apache_avro::types::Value`]) in the Confluent wire format, written
/// with one schema and read as the writer wrote them (or resolved to a reader schema).
pub struct AvroGeneric {
    core: Core,
    resolve: bool,
}

impl std::fmt::Debug for AvroGeneric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroGeneric")
            .field("schema", &self.core.record_name)
            .finish_non_exhaustive()
    }
}

impl AvroGeneric {
    /// A value serde that writes with `schema` and reads each record with its writer's schema.
    pub fn new(registry: &RegistryClient, schema: Schema) -> Self {
        AvroGeneric {
            core: Core::new(registry, schema),
            resolve: false,
        }
    }

    /// Reads every record resolved to this serde's schema (so values have its shape whatever
    /// schema wrote them). Default: values as written.
    pub fn resolve_to_schema(mut self) -> Self {
        self.resolve = true;
        self
    }

    builder_methods!();
}

impl Serde<Value> for AvroGeneric {
    fn serialize(&self, topic: &str, value: &Value, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        self.core.write_value(topic, value, out)
    }

    fn deserialize(&self, _topic: &str, data: &[u8]) -> Result<Value, SerdeError> {
        let reader = self.resolve.then_some(&*self.core.schema);
        self.core.read_value(data, reader)
    }

    fn to_json(&self, value: &Value) -> Result<serde_json::Value, SerdeError> {
        serde_json::Value::try_from(value.clone())
            .map_err(|e| SerdeError::Encode(format!("avro: {e}")))
    }
}
