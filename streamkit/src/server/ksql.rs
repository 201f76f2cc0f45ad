//! The ksqlDB-compatible REST API over a SQL [`Engine`]: `POST /ksql`, `POST /query`,
//! `GET /info`, with ksqlDB's request and response JSON and the
//! `application/vnd.ksql.v1+json` content type, so ksqlDB clients and scripts work.
//!
//! A statement starts Kafka clients on this host, so every request passes a guard first: the
//! engine config's [`query_server_token`](crate::config::StreamsConfig::query_server_token)
//! as a bearer token when one is set; on a loopback address a loopback `Host` (a page on
//! another site reaching `127.0.0.1` through DNS rebinding names its own host); an `Origin`,
//! when a browser sends one, equal to the server's own; and a JSON content type on `POST`, which
//! a cross-site form cannot send without a CORS preflight this server never grants.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request as HttpRequest, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value as Json, json};

use super::http_thread::{HttpThread, Shutdown};
use crate::error::{Error, Result};
use crate::sql::{
    Column, Engine, Kind, QueryResult, SourceInfo, SqlError, SqlType, StatementResult,
};

/// ksqlDB's content type.
pub const KSQL_CONTENT_TYPE: &str = "application/vnd.ksql.v1+json";

/// The ksqlDB version whose API shapes this server follows.
const KSQL_VERSION: &str = "0.29.0";

type Shared = Arc<Mutex<Engine>>;

/// A running ksqlDB-compatible server; stopped by [`KsqlServer::stop`] or on drop.
pub struct KsqlServer {
    addr: SocketAddr,
    engine: Shared,
    http: HttpThread,
}

impl KsqlServer {
    /// Serves `engine` on `bind` (`host:port`; port 0 picks a free one).
    pub fn start(engine: Engine, bind: &str) -> Result<Self> {
        let token = engine.token();
        let engine: Shared = Arc::new(Mutex::new(engine));
        let listener = std::net::TcpListener::bind(bind)
            .map_err(|e| Error::Config(format!("ksql server cannot bind {bind}: {e}")))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() && token.is_none() {
            tracing::warn!(%addr, "the ksql server is reachable beyond this host without authentication; set StreamsConfig::query_server_token");
        }
        let guard = Guard {
            token,
            loopback: addr.ip().is_loopback(),
        };
        let app = router(engine.clone()).layer(axum::middleware::from_fn_with_state(
            Arc::new(guard),
            require_guard,
        ));
        // Push queries never end on their own: no graceful shutdown.
        let http = HttpThread::spawn("ksql-server", 2, listener, app, Shutdown::Abrupt)?;
        tracing::info!(
            "ksqlDB-compatible server on http://{addr}: POST /ksql, POST /query, GET /info"
        );
        Ok(KsqlServer { addr, engine, http })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The engine, shared with the handlers.
    pub fn engine(&self) -> Arc<Mutex<Engine>> {
        self.engine.clone()
    }

    /// Stops serving.
    pub fn stop(&mut self) {
        self.http.stop();
    }
}

/// What every request must satisfy (see the module docs).
struct Guard {
    token: Option<String>,
    /// Bound to a loopback address: only loopback `Host` names are served.
    loopback: bool,
}

impl Guard {
    fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> std::result::Result<(), Box<Response>> {
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(token) = &self.token {
            let given = text(header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer "));
            if !given.is_some_and(|g| super::auth::constant_time_eq(g.as_bytes(), token.as_bytes()))
            {
                let mut r = generic_error(
                    StatusCode::UNAUTHORIZED,
                    40100,
                    "missing or wrong bearer token",
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                return Err(Box::new(r));
            }
        }
        let host = text(header::HOST).unwrap_or_default();
        if self.loopback && !super::is_loopback_host(host) {
            return Err(Box::new(generic_error(
                StatusCode::FORBIDDEN,
                40300,
                &format!("host {host:?} is not served: this server answers loopback names only"),
            )));
        }
        if let Some(origin) = text(header::ORIGIN) {
            let own = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            if own != Some(host) {
                return Err(Box::new(generic_error(
                    StatusCode::FORBIDDEN,
                    40300,
                    &format!("cross-origin requests are refused (origin {origin})"),
                )));
            }
        }
        if method == Method::POST {
            let ct = text(header::CONTENT_TYPE).unwrap_or_default();
            let essence = ct.split(';').next().unwrap_or_default().trim();
            if !essence.eq_ignore_ascii_case(KSQL_CONTENT_TYPE)
                && !essence.eq_ignore_ascii_case("application/json")
            {
                return Err(Box::new(generic_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    41500,
                    &format!(
                        "content type {ct:?} is not accepted: send {KSQL_CONTENT_TYPE} or application/json"
                    ),
                )));
            }
        }
        Ok(())
    }
}

async fn require_guard(
    State(guard): State<Arc<Guard>>,
    request: HttpRequest,
    next: Next,
) -> Response {
    match guard.check(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(r) => *r,
    }
}

fn generic_error(status: StatusCode, code: u32, message: &str) -> Response {
    reply(
        status,
        &json!({"@type": "generic_error", "error_code": code, "message": message}),
    )
}

/// Locks the engine. A statement that panicked while holding it (answered with a 500) leaves
/// the engine as far as it got; later requests are still served rather than all failing on
/// the poisoned lock.
fn lock(engine: &Shared) -> std::sync::MutexGuard<'_, Engine> {
    engine.lock().unwrap_or_else(|poisoned| {
        tracing::warn!("a statement panicked while holding the SQL engine; continuing");
        poisoned.into_inner()
    })
}

/// The routes, without the request guard [`KsqlServer::start`] puts in front of them: for
/// embedding in a server that has its own.
pub fn router(engine: Arc<Mutex<Engine>>) -> Router {
    Router::new()
        .route("/ksql", post(ksql))
        .route("/query", post(query))
        .route("/info", get(info))
        .with_state(engine)
}

fn reply(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, KSQL_CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, code: u32, message: &str, statement: &str) -> Response {
    reply(
        status,
        &json!({
            "@type": "statement_error",
            "error_code": code,
            "message": message,
            "statementText": statement,
            "entities": [],
        }),
    )
}

/// The body of `/ksql` and `/query`.
struct Request {
    ksql: String,
    properties: BTreeMap<String, String>,
}

fn parse_request(body: &Bytes) -> std::result::Result<Request, String> {
    let bad = |m: String| m;
    let json: Json = serde_json::from_slice(body).map_err(|e| bad(format!("request body: {e}")))?;
    let ksql = json
        .get("ksql")
        .and_then(Json::as_str)
        .ok_or_else(|| bad("the request needs a \"ksql\" string".into()))?
        .to_string();
    let mut properties = BTreeMap::new();
    if let Some(p) = json.get("streamsProperties").and_then(Json::as_object) {
        for (k, v) in p {
            let v = match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            properties.insert(k.clone(), v);
        }
    }
    Ok(Request { ksql, properties })
}

async fn info() -> Response {
    reply(
        StatusCode::OK,
        &json!({"KsqlServerInfo": {
            "version": KSQL_VERSION,
            "kafkaClusterId": "streamkit",
            "ksqlServiceId": "streamkit_",
            "serverStatus": "RUNNING",
        }}),
    )
}

/// ksqlDB's name for a column type in schemas and descriptions.
fn ksql_type(ty: &SqlType) -> String {
    match ty {
        SqlType::Boolean => "BOOLEAN".into(),
        SqlType::Int => "INTEGER".into(),
        SqlType::BigInt => "BIGINT".into(),
        SqlType::Double => "DOUBLE".into(),
        SqlType::String => "STRING".into(),
        SqlType::Array(t) => format!("ARRAY<{}>", ksql_type(t)),
        SqlType::Struct(fields) => format!(
            "STRUCT<{}>",
            fields
                .iter()
                .map(|(n, t)| format!("`{n}` {}", ksql_type(t)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        // `SqlType` is non-exhaustive.
        #[allow(unreachable_patterns)]
        other => other.to_string(),
    }
}

fn schema_json(ty: &SqlType) -> Json {
    match ty {
        SqlType::Array(t) => {
            json!({"type": "ARRAY", "fields": null, "memberSchema": schema_json(t)})
        }
        SqlType::Struct(fields) => json!({
            "type": "STRUCT",
            "fields": fields
                .iter()
                .map(|(n, t)| json!({"name": n, "schema": schema_json(t)}))
                .collect::<Vec<_>>(),
            "memberSchema": null,
        }),
        t => json!({"type": ksql_type(t), "fields": null, "memberSchema": null}),
    }
}

fn source_summary(s: &SourceInfo) -> Json {
    json!({
        "type": s.kind.name(),
        "name": s.name,
        "topic": s.topic,
        "keyFormat": s.key_format.name(),
        "valueFormat": s.value_format.name(),
        "isWindowed": s.window.is_some(),
    })
}

fn fields(key: &[Column], value: &[Column]) -> Json {
    Json::Array(
        key.iter()
            .map(|c| json!({"name": c.name, "schema": schema_json(&c.ty), "type": "KEY"}))
            .chain(
                value
                    .iter()
                    .map(|c| json!({"name": c.name, "schema": schema_json(&c.ty)})),
            )
            .collect(),
    )
}

fn entity(r: StatementResult, seq: usize) -> Json {
    match r {
        StatementResult::Status {
            statement,
            message,
            query_id,
        } => json!({
            "@type": "currentStatus",
            "statementText": statement,
            "commandId": format!("streamkit/{seq}"),
            "commandStatus": {"status": "SUCCESS", "message": message, "queryId": query_id},
            "commandSequenceNumber": seq,
            "warnings": [],
        }),
        StatementResult::Sources { statement, sources } => {
            let tables = sources.first().is_some_and(|s| s.kind == Kind::Table)
                || statement.to_uppercase().contains("TABLES");
            let list: Vec<Json> = sources.iter().map(source_summary).collect();
            if tables {
                json!({"@type": "tables", "statementText": statement, "tables": list, "warnings": []})
            } else {
                json!({"@type": "streams", "statementText": statement, "streams": list, "warnings": []})
            }
        }
        StatementResult::Queries { statement, queries } => json!({
            "@type": "queries",
            "statementText": statement,
            "queries": queries.iter().map(|q| json!({
                "queryString": q.statement,
                "sinks": [q.sink],
                "id": q.id,
                "statusCount": {"RUNNING": 1},
                "queryType": "PERSISTENT",
                "state": "RUNNING",
            })).collect::<Vec<_>>(),
            "warnings": [],
        }),
        StatementResult::Description {
            statement,
            source,
            read_by,
        } => json!({
            "@type": "sourceDescription",
            "statementText": statement,
            "sourceDescription": {
                "name": source.name,
                "windowType": source.window.map(|w| match w {
                    crate::sql::WindowKind::Time(_) => "TUMBLING_OR_HOPPING",
                    crate::sql::WindowKind::Session => "SESSION",
                }),
                "readQueries": read_by.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
                "writeQueries": source.writer.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
                "fields": fields(&source.key, &source.value),
                "type": source.kind.name(),
                "timestamp": "",
                "statistics": "",
                "errorStats": "",
                "extended": false,
                "keyFormat": source.key_format.name(),
                "valueFormat": source.value_format.name(),
                "topic": source.topic,
                "partitions": 0,
                "replication": 0,
                "statement": source.statement,
            },
            "warnings": [],
        }),
        StatementResult::Explain {
            statement,
            query,
            topology,
        } => json!({
            "@type": "queryDescription",
            "statementText": statement,
            "queryDescription": {
                "statementText": query,
                "topologyDescription": topology,
                "executionPlan": topology,
                "overriddenProperties": {},
                "queryType": "PERSISTENT",
            },
            "warnings": [],
        }),
        StatementResult::Rows {
            statement,
            columns,
            rows,
        } => json!({
            "@type": "rows",
            "statementText": statement,
            "schema": header_schema(&columns),
            "rows": rows.iter().map(|r| r.iter().map(crate::sql::Value::to_json).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "warnings": [],
        }),
    }
}

fn header_schema(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| format!("`{}` {}", c.name, ksql_type(&c.ty)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn sql_error(e: &SqlError, statement: &str) -> Response {
    error(StatusCode::BAD_REQUEST, 40001, &e.to_string(), statement)
}

async fn ksql(State(engine): State<Shared>, body: Bytes) -> Response {
    let req = match parse_request(&body) {
        Ok(r) => r,
        Err(m) => return error(StatusCode::BAD_REQUEST, 40000, &m, ""),
    };
    let result = tokio::task::spawn_blocking(move || {
        let mut engine = lock(&engine);
        engine.execute_with(&req.ksql, &req.properties)
    })
    .await;
    match result {
        Ok(Ok(results)) => reply(
            StatusCode::OK,
            &Json::Array(
                results
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| entity(r, i))
                    .collect(),
            ),
        ),
        // ksqlDB answers the first failing statement with an error naming it; statements
        // before it stay executed.
        Ok(Err((_done, e))) => sql_error(&e, ""),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, 50000, &e.to_string(), ""),
    }
}

async fn query(State(engine): State<Shared>, body: Bytes) -> Response {
    let req = match parse_request(&body) {
        Ok(r) => r,
        Err(m) => return error(StatusCode::BAD_REQUEST, 40000, &m, ""),
    };
    let text = req.ksql.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut engine = lock(&engine);
        engine.query(&req.ksql, &req.properties)
    })
    .await;
    let result = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return sql_error(&e, &text),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                50000,
                &e.to_string(),
                &text,
            );
        }
    };
    let query_id = format!("query_{}", std::process::id());
    match result {
        QueryResult::Pull { columns, rows } => {
            let mut items =
                vec![json!({"header": {"queryId": query_id, "schema": header_schema(&columns)}})];
            items.extend(rows.iter().map(|r| {
                json!({"row": {"columns": r.iter().map(crate::sql::Value::to_json).collect::<Vec<_>>()}})
            }));
            reply(StatusCode::OK, &Json::Array(items))
        }
        QueryResult::Push(push) => {
            // A JSON array streamed one element per line, as ksqlDB writes it; the query
            // stops when the client goes away (the stream, and the query with it, drop).
            let header = format!(
                "[{},\n",
                json!({"header": {"queryId": query_id, "schema": header_schema(&push.columns)}})
            );
            let stream = futures_util::stream::unfold(
                (Some(header), Some(push)),
                |(first, push)| async move {
                    if let Some(h) = first {
                        return Some((Ok::<Bytes, std::io::Error>(Bytes::from(h)), (None, push)));
                    }
                    let mut push = push?;
                    let Some(row) = push.rows.recv().await else {
                        // The engine dropped a reader that fell too far behind: say so, once,
                        // and end the array.
                        if push.overflowed() {
                            let message = format!(
                                "{}]\n",
                                json!({"errorMessage": {"message": format!(
                                    "the client read too slowly: more than {} rows waited, so the push query was stopped",
                                    crate::sql::PUSH_BUFFER_ROWS
                                )}})
                            );
                            return Some((Ok(Bytes::from(message)), (None, None)));
                        }
                        return None;
                    };
                    let line = format!(
                        "{},\n",
                        json!({"row": {"columns": row.iter().map(crate::sql::Value::to_json).collect::<Vec<_>>()}})
                    );
                    Some((Ok(Bytes::from(line)), (None, Some(push))))
                },
            );
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, KSQL_CONTENT_TYPE)
                .body(Body::from_stream(stream))
                .unwrap_or_else(|e| {
                    error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        50000,
                        &e.to_string(),
                        &text,
                    )
                })
        }
    }
}
