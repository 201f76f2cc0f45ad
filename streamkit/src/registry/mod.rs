//! An embedded schema registry for zero-setup runs: Confluent Schema Registry's REST API,
//! its state kept in a compacted Kafka topic (`_schemas`) as the original keeps it.
//!
//! Start one in-process with [`EmbeddedRegistry::start`] (tests, examples) or from the
//! command line with `streamkit registry`. Any Confluent client talks to it: streamkit's
//! [`RegistryClient`], Java's and Python's serializers, `curl`.
//!
//! | endpoint | answers |
//! |---|---|
//! | `POST /subjects/{s}/versions` | registers a schema (idempotent) → `{"id"}`; `409` when incompatible, `422`/42201 when invalid |
//! | `POST /subjects/{s}` | looks a schema up → `{"subject","version","id","schema"}`; 40401, 40403 |
//! | `GET /schemas/ids/{id}` | `{"schema"}` (`schemaType` when not Avro); 40403 |
//! | `GET /schemas/ids/{id}/versions`, `/schemas/ids/{id}/subjects` | where the schema is used |
//! | `GET /subjects`, `/subjects/{s}/versions`, `/subjects/{s}/versions/{v\|latest}[/schema]` | subjects, versions, one version; 40401, 40402, 42202 |
//! | `DELETE /subjects/{s}[?permanent=true]`, `/subjects/{s}/versions/{v}` | soft (or hard) delete |
//! | `POST /compatibility/subjects/{s}/versions[/{v}]` | `{"is_compatible"}` (`messages` with `?verbose=true`) |
//! | `GET`/`PUT /config`, `GET`/`PUT`/`DELETE /config/{s}` | compatibility: `BACKWARD` (default), `FORWARD`, `FULL`, `NONE`, and `_TRANSITIVE` variants; 42203 |
//!
//! **Persistence.** Every change is a record in the topic (keys
//! `{"keytype":"SCHEMA","subject","version","magic":1}` and `{"keytype":"CONFIG",…}`, values as
//! the original writes them; a hard delete is a tombstone), produced and acknowledged before
//! the request is answered. At start the registry reads the topic to its end, so a restart
//! keeps ids and versions. One registry writes to a topic at a time (there is no leader
//! election).
//!
//! Listens on `127.0.0.1` by default; [`RegistryConfig::auth`] requires a bearer token or basic
//! credentials on every request.

mod api;
mod log;
mod store;

use std::net::SocketAddr;

use crate::error::{Error, Result, SerdeError};
use crate::serde::avro::{RegistryAuth, RegistryClient};
use crate::server::http_thread::{HttpThread, Shutdown};
use crate::testing::EmbeddedBroker;

/// Where an [`EmbeddedRegistry`] keeps its state and listens.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    bootstrap_servers: Option<String>,
    embedded: Option<EmbeddedBroker>,
    listen: String,
    topic: String,
    auth: RegistryAuth,
}

impl RegistryConfig {
    /// Kept in `_schemas` on the cluster at `bootstrap_servers`.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        RegistryConfig {
            bootstrap_servers: Some(bootstrap_servers.into()),
            embedded: None,
            listen: "127.0.0.1:8081".into(),
            topic: "_schemas".into(),
            auth: RegistryAuth::None,
        }
    }

    /// Kept in `_schemas` on an in-process [`EmbeddedBroker`] (which has no admin API, so the
    /// topic is created through the handle).
    pub fn embedded(broker: &EmbeddedBroker) -> Self {
        RegistryConfig {
            embedded: Some(broker.clone()),
            ..Self::new(broker.bootstrap_servers())
        }
    }

    /// Where to listen, `host:port` (port 0 picks a free one). Default = `127.0.0.1:8081`.
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen = addr.into();
        self
    }

    /// The topic the schemas are kept in. Default = `_schemas`.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    /// Credentials every request must carry. Default = [`RegistryAuth::None`].
    pub fn auth(mut self, auth: RegistryAuth) -> Self {
        self.auth = auth;
        self
    }

    fn streams_config(&self) -> crate::config::StreamsConfig {
        let c = crate::config::StreamsConfig::new("streamkit-schema-registry");
        match (&self.embedded, &self.bootstrap_servers) {
            (Some(b), _) => c.embedded(b),
            (None, Some(s)) => c.bootstrap_servers(s.clone()),
            (None, None) => c,
        }
    }
}

/// A running schema registry; stops on [`stop`](Self::stop) or drop.
pub struct EmbeddedRegistry {
    addr: SocketAddr,
    url: String,
    auth: RegistryAuth,
    http: HttpThread,
}

impl std::fmt::Debug for EmbeddedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedRegistry")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl EmbeddedRegistry {
    /// Creates the topic if missing, reads it to its end, and serves on a thread of its own.
    pub fn start(config: RegistryConfig) -> Result<Self> {
        let listener = std::net::TcpListener::bind(&config.listen).map_err(|e| {
            Error::Config(format!(
                "schema registry cannot bind {}: {e}",
                config.listen
            ))
        })?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let (log, state) = log::Log::open(&config.streams_config(), &config.topic)?;
        let schemas = state.subjects(true).len();
        let router = api::router(api::Registry::new(state, log, config.auth.clone()));

        let http = HttpThread::spawn("schema-registry", 1, listener, router, Shutdown::Graceful)?;
        tracing::info!(%url, topic = %config.topic, subjects = schemas, "schema registry listening");
        if !addr.ip().is_loopback() && config.auth == RegistryAuth::None {
            tracing::warn!(%addr, "the schema registry is reachable beyond this host without authentication");
        }
        Ok(EmbeddedRegistry {
            addr,
            url,
            auth: config.auth,
            http,
        })
    }

    /// The base URL clients use, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client of this registry (with its credentials).
    pub fn client(&self) -> std::result::Result<RegistryClient, SerdeError> {
        RegistryClient::with_auth(&self.url, self.auth.clone())
    }

    /// Stops serving (waits for requests in flight).
    pub fn stop(&mut self) {
        self.http.stop();
    }
}
