//! The HTTP query server: an application instance's stores, change streams, topology, health
//! and Prometheus metrics on one port, enabled with
//! [`StreamsConfig::query_server`](crate::config::StreamsConfig::query_server).
//!
//! | endpoint | answers |
//! |---|---|
//! | `GET /stores` | the topology's stores: kind, backend, changelog, partitions held here, approximate entries |
//! | `GET /stores/{name}/{key}` | a key's value (key-value store), its windows (`?from=&to=` in ms, window store) or its sessions |
//! | `GET /stores/{name}?from=&to=&limit=&after=[&scope=all]` | entries with keys in `[from, to]` in key-byte order, paged: of this instance's partitions, or of every instance's (fanned out and merged) |
//! | `GET /stores/{name}/changes[?key=]` | server-sent events, one per write to the store on this instance |
//! | `GET /topology[?format=text\|mermaid\|dot]` | `describe()` output, or a diagram |
//! | `GET /instances` | the instances of the application and the store partitions each holds |
//! | `GET /health` | the instance's state; `200` while starting, rebalancing or running, else `503` |
//! | `GET /metrics` | Prometheus text format |
//! | `POST /topics/{topic}`, `POST /topics/{topic}/partitions/{p}` | with [`StreamsConfig::rest_ingest`](crate::config::StreamsConfig::rest_ingest): Kafka REST Proxy v2 produce (`application/vnd.kafka.{json,avro,binary}.v2+json`) → `{"offsets", "key_schema_id", "value_schema_id"}`; the REST Proxy's error codes (see `ingest.rs`) |
//!
//! Keys in paths and query strings are JSON (`/stores/counts/42`, `/stores/trips/%7B%22line%22%3A1%7D`);
//! text that is not JSON is taken as a string (`/stores/counts/M15`). Keys and values are
//! converted through the store's serdes ([`Serde::to_json`](crate::serde::Serde::to_json)).
//!
//! **Several instances.** Each instance publishes its `application_server` and the store
//! partitions it holds to the compacted topic `<application-id>-instances` and reads the
//! others' entries (see `instances.rs`). A key query computes the key's partition as the
//! producer did (murmur2 of the serialized key, Kafka's default partitioner) and, when another
//! instance holds it, proxies the query there or redirects to it
//! ([`QueryForwarding`]). A range query covers the instance
//! asked unless `scope=all`; a change stream covers the instance asked.

pub(crate) mod auth;
mod forward;
pub(crate) mod http_thread;
mod ingest;
mod instances;
#[cfg(feature = "sql")]
pub mod ksql;
mod metrics;
mod store_endpoints;
mod topology;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use axum::Router;
use axum::routing::{get, post};

use crate::config::{QueryForwarding, StreamsConfig};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::runtime::State;
use crate::state::spec::StoreSpec;
use crate::state::store::StoreRegistry;
use crate::topology::Topology;

pub(crate) use instances::Directory;

/// Reads the instance's current state.
pub(crate) type StateFn = Arc<dyn Fn() -> State + Send + Sync>;

/// Everything the handlers read.
pub(crate) struct ServerContext {
    pub app_id: String,
    /// `host:port` other instances reach this one at.
    pub endpoint: String,
    pub topology: Arc<Topology>,
    pub registry: StoreRegistry,
    pub metrics: Metrics,
    pub state: StateFn,
    pub token: Option<String>,
    /// The credential instances forward queries with (and accept from each other).
    pub peer_token: Option<String>,
    pub forwarding: QueryForwarding,
    pub directory: Arc<Directory>,
    /// Partition count of each sub-topology's input topics.
    pub partitions: HashMap<usize, i32>,
    pub client: forward::Client,
    /// REST-Proxy-compatible ingest, when enabled.
    pub ingest: Option<Arc<ingest::Ingest>>,
}

impl ServerContext {
    /// The store `name` as the topology declares it, and its sub-topology.
    pub fn store(&self, name: &str) -> Option<(usize, Arc<StoreSpec>)> {
        self.topology.subtopologies.iter().find_map(|s| {
            s.stores
                .iter()
                .find(|x| x.name == name)
                .map(|x| (s.id, x.clone()))
        })
    }
}

/// A running query server; stopped by [`ServerHandle::stop`] or on drop.
pub(crate) struct ServerHandle {
    pub addr: SocketAddr,
    http: http_thread::HttpThread,
    directory_stop: Arc<AtomicBool>,
    directory_thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Withdraws this instance from the directory and stops serving.
    pub fn stop(&mut self) {
        self.directory_stop.store(true, Ordering::Release);
        if let Some(t) = self.directory_thread.take() {
            let _ = t.join();
        }
        self.http.stop();
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What [`start`] needs from the instance.
pub(crate) struct ServerArgs {
    pub config: StreamsConfig,
    pub topology: Arc<Topology>,
    pub registry: StoreRegistry,
    pub metrics: Metrics,
    pub state: StateFn,
}

/// Binds the query server, starts the instance directory and serves on a thread of its own.
pub(crate) fn start(args: ServerArgs) -> Result<ServerHandle> {
    let config = &args.config;
    let bind = config
        .query_server
        .clone()
        .ok_or_else(|| Error::Config("query server not configured".into()))?;
    let bind = bind_address(&bind);
    let listener = std::net::TcpListener::bind(&bind)
        .map_err(|e| Error::Config(format!("query server cannot bind {bind}: {e}")))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let endpoint = config
        .application_server
        .clone()
        .unwrap_or_else(|| addr.to_string());
    let app_id = config.application_id.clone();
    let ingest = config
        .rest_ingest
        .as_ref()
        .map(|i| ingest::Ingest::new(config, i, addr.ip().is_loopback()).map(Arc::new))
        .transpose()?;

    let partitions = subtopology_partitions(config, &args.topology)?;
    let directory = Arc::new(Directory::new(&app_id, &endpoint));
    let directory_stop = Arc::new(AtomicBool::new(false));
    let directory_thread = instances::spawn(
        config,
        directory.clone(),
        args.registry.clone(),
        args.state.clone(),
        directory_stop.clone(),
    )?;

    let ctx = Arc::new(ServerContext {
        app_id: app_id.clone(),
        endpoint: endpoint.clone(),
        topology: args.topology,
        registry: args.registry,
        metrics: args.metrics,
        state: args.state,
        token: config.query_server_token.clone(),
        peer_token: config.inter_instance_token.clone(),
        forwarding: config.query_forwarding,
        directory,
        partitions,
        client: forward::client(),
        ingest,
    });
    let router = router(ctx.clone());

    // Not a graceful shutdown: change streams never end on their own.
    let http = http_thread::HttpThread::spawn(
        &format!("{app_id}-query-server"),
        2,
        listener,
        router,
        http_thread::Shutdown::Abrupt,
    )?;

    let auth = if ctx.token.is_some() {
        "bearer token required (all but /health)"
    } else {
        "no authentication"
    };
    let ingest = if ctx.ingest.is_some() {
        "; REST Proxy ingest: POST /topics/{topic}, /topics/{topic}/partitions/{p}"
    } else {
        ""
    };
    tracing::info!(
        "query server listening on http://{addr} (advertised to other instances as {endpoint}; \
         {auth}): GET /stores, /stores/{{name}}/{{key}}, /stores/{{name}}?from=&to=, \
         /stores/{{name}}/changes (server-sent events), /topology, /instances, /health, /metrics\
         {ingest}"
    );
    if !addr.ip().is_loopback() && ctx.token.is_none() {
        tracing::warn!(%addr, "the query server is reachable beyond this host without authentication; set StreamsConfig::query_server_token");
    }
    if ctx.token.is_some() && ctx.peer_token.is_none() {
        tracing::warn!(
            "query_server_token is set without inter_instance_token: queries this instance \
             forwards to others carry no credential, so instances that require a token refuse \
             them; set StreamsConfig::inter_instance_token on every instance"
        );
    }
    Ok(ServerHandle {
        addr,
        http,
        directory_stop,
        directory_thread: Some(directory_thread),
    })
}

/// `"8080"` or `":8080"` mean `127.0.0.1:8080`: localhost unless a host is given.
fn bind_address(addr: &str) -> String {
    let port = addr.strip_prefix(':').unwrap_or(addr);
    if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) {
        format!("127.0.0.1:{port}")
    } else {
        addr.to_string()
    }
}

/// Partition count of each sub-topology (its input topics are co-partitioned).
fn subtopology_partitions(
    config: &StreamsConfig,
    topology: &Topology,
) -> Result<HashMap<usize, i32>> {
    let existing = crate::runtime::admin::topic_partitions(config)?;
    let app = config.application_id.as_str();
    Ok(topology
        .subtopologies
        .iter()
        .filter_map(|s| {
            s.source_topics
                .iter()
                .filter_map(|t| existing.get(&t.resolve(app)).copied())
                .max()
                .map(|n| (s.id, n))
        })
        .collect())
}

fn router(ctx: Arc<ServerContext>) -> Router {
    let mut routes = Router::new()
        .route("/stores", get(store_endpoints::list))
        .route("/stores/{name}", get(store_endpoints::range))
        .route("/stores/{name}/changes", get(store_endpoints::changes))
        .route("/stores/{name}/{key}", get(store_endpoints::key))
        .route("/topology", get(topology::topology))
        .route("/instances", get(instances::list))
        .route("/metrics", get(metrics::metrics));
    if ctx.ingest.is_some() {
        routes = routes
            .route("/topics/{topic}", post(ingest::produce_to_topic))
            .route(
                "/topics/{topic}/partitions/{partition}",
                post(ingest::produce_to_partition),
            );
    }
    routes
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            auth::require_token,
        ))
        // After the auth layer: probes need no token.
        .route("/health", get(metrics::health))
        .with_state(ctx)
}

/// A JSON error response.
pub(crate) fn error(
    status: axum::http::StatusCode,
    message: impl std::fmt::Display,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        status,
        axum::Json(serde_json::json!({ "error": message.to_string() })),
    )
        .into_response()
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bare_port_binds_localhost() {
        assert_eq!(super::bind_address("8080"), "127.0.0.1:8080");
        assert_eq!(super::bind_address(":0"), "127.0.0.1:0");
        assert_eq!(super::bind_address("0.0.0.0:8080"), "0.0.0.0:8080");
        assert_eq!(super::bind_address("[::1]:80"), "[::1]:80");
    }
}
