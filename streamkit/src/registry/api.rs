//! The registry's HTTP routes: Confluent Schema Registry's paths, JSON shapes and error codes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value as Json, json};

use super::log::Log;
use super::store::{self, Level, LogRecord, Refusal, State as Schemas, Version};
use crate::serde::avro::RegistryAuth;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub(crate) struct Registry {
    /// One lock for reads and writes: a write holds it until its record is acknowledged, so
    /// changes reach the topic in the order they were decided.
    state: tokio::sync::Mutex<Schemas>,
    log: Log,
    /// The exact `Authorization` header value every request must carry.
    authorization: Option<String>,
}

impl Registry {
    pub fn new(state: Schemas, log: Log, auth: RegistryAuth) -> Arc<Self> {
        let authorization = match auth {
            RegistryAuth::Bearer(t) => Some(format!("Bearer {t}")),
            RegistryAuth::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            _ => None,
        };
        Arc::new(Registry {
            state: tokio::sync::Mutex::new(state),
            log,
            authorization,
        })
    }

    async fn write(&self, state: &mut Schemas, records: &[LogRecord]) -> Result<(), Reply> {
        for r in records {
            self.log.append(r).await.map_err(|e| {
                tracing::error!(error = %e, "schema registry cannot write its topic");
                Reply::error(500, 50001, &format!("Error while storing the schema: {e}"))
            })?;
            state.apply(r);
        }
        Ok(())
    }
}

type Shared = Arc<Registry>;
type Params = Query<HashMap<String, String>>;

pub(crate) fn router(registry: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { Reply::ok(json!({})) }))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route(
            "/schemas/types",
            get(|| async { Reply::ok(json!(["AVRO"])) }),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route("/schemas/ids/{id}/subjects", get(id_subjects))
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatible_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatible_with),
        )
        .route("/config", get(global_config).put(set_global_config))
        .route(
            "/config/{subject}",
            get(subject_config)
                .put(set_subject_config)
                .delete(delete_subject_config),
        )
        .layer(axum::middleware::from_fn_with_state(
            registry.clone(),
            authenticate,
        ))
        .with_state(registry)
}

/// A JSON answer with the registry's content type.
struct Reply(StatusCode, Json);

impl Reply {
    fn ok(body: Json) -> Reply {
        Reply(StatusCode::OK, body)
    }
    fn error(status: u16, code: u32, message: &str) -> Reply {
        Reply(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            json!({"error_code": code, "message": message}),
        )
    }
}

impl From<Refusal> for Reply {
    fn from(r: Refusal) -> Reply {
        Reply::error(r.status, r.code, &r.message)
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut r = (self.0, self.1.to_string()).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        r
    }
}

type Answer = Result<Reply, Reply>;

async fn authenticate(State(reg): State<Shared>, request: Request, next: Next) -> Response {
    let Some(expected) = &reg.authorization else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if crate::server::auth::constant_time_eq(given, expected.as_bytes()) {
        return next.run(request).await;
    }
    let scheme = if expected.starts_with("Basic") {
        "Basic realm=\"schema-registry\""
    } else {
        "Bearer"
    };
    let mut r = Reply::error(401, 401, "Unauthorized").into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
    r
}

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A request body's schema, type (default `AVRO`) and references.
fn schema_body(body: &[u8]) -> Result<(String, String, Json), Reply> {
    let v: Json = serde_json::from_slice(body)
        .map_err(|e| Reply::error(422, 42201, &format!("Invalid schema: request body: {e}")))?;
    let schema = v
        .get("schema")
        .and_then(Json::as_str)
        .ok_or_else(|| {
            Reply::error(
                422,
                42201,
                "Invalid schema: the body has no \"schema\" string",
            )
        })?
        .to_string();
    let schema_type = v
        .get("schemaType")
        .and_then(Json::as_str)
        .unwrap_or("AVRO")
        .to_ascii_uppercase();
    let references = v.get("references").cloned().unwrap_or(json!([]));
    store::parse(&schema, &schema_type)?;
    Ok((schema, schema_type, references))
}

fn version_json(s: &Schemas, subject: &str, v: Version) -> Json {
    let stored = s.schema(v.id);
    let mut out = json!({
        "subject": subject,
        "version": v.version,
        "id": v.id,
        "schema": stored.map(|x| x.schema.as_str()).unwrap_or_default(),
    });
    if let Some(st) = stored {
        if st.schema_type != "AVRO" {
            out["schemaType"] = json!(st.schema_type);
        }
        if st.references.as_array().is_some_and(|r| !r.is_empty()) {
            out["references"] = st.references.clone();
        }
    }
    out
}

async fn subjects(State(reg): State<Shared>, Query(q): Params) -> Answer {
    let s = reg.state.lock().await;
    Ok(Reply::ok(json!(s.subjects(flag(&q, "deleted")))))
}

async fn register(State(reg): State<Shared>, Path(subject): Path<String>, body: Bytes) -> Answer {
    let (schema, schema_type, references) = schema_body(&body)?;
    let mut s = reg.state.lock().await;
    let id = match s.register(&subject, &schema, &schema_type, references)? {
        Ok(id) => id,
        Err(record) => {
            reg.write(&mut s, std::slice::from_ref(&record)).await?;
            let id = record
                .1
                .as_ref()
                .and_then(|v| v["id"].as_u64())
                .unwrap_or(0);
            tracing::info!(%subject, id, "schema registered");
            id as u32
        }
    };
    Ok(Reply::ok(json!({ "id": id })))
}

async fn lookup(
    State(reg): State<Shared>,
    Path(subject): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Answer {
    let (schema, schema_type, _) = schema_body(&body)?;
    let s = reg.state.lock().await;
    let v = s.lookup(&subject, &schema, &schema_type, flag(&q, "deleted"))?;
    Ok(Reply::ok(version_json(&s, &subject, v)))
}

async fn versions(
    State(reg): State<Shared>,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Answer {
    let s = reg.state.lock().await;
    let v = s.versions(&subject, flag(&q, "deleted"))?;
    Ok(Reply::ok(json!(
        v.iter().map(|x| x.version).collect::<Vec<_>>()
    )))
}

async fn version(
    State(reg): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Answer {
    let s = reg.state.lock().await;
    let v = s.version(&subject, &version, flag(&q, "deleted"))?;
    Ok(Reply::ok(version_json(&s, &subject, v)))
}

async fn version_schema(
    State(reg): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Answer {
    let s = reg.state.lock().await;
    let v = s.version(&subject, &version, flag(&q, "deleted"))?;
    raw(s.schema(v.id).map(|x| x.schema.as_str()))
}

/// The schema text itself as the JSON body (it is JSON for Avro).
fn raw(schema: Option<&str>) -> Answer {
    let text = schema.ok_or_else(|| Reply::from(Refusal::schema_not_found()))?;
    Ok(Reply::ok(
        serde_json::from_str(text).unwrap_or_else(|_| json!(text)),
    ))
}

async fn delete_subject(
    State(reg): State<Shared>,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Answer {
    let permanent = flag(&q, "permanent");
    let mut s = reg.state.lock().await;
    let all = s.versions(&subject, true)?;
    let live: Vec<Version> = all.iter().filter(|v| !v.deleted).copied().collect();
    let targets = if permanent {
        if !live.is_empty() {
            return Err(Reply::error(
                404,
                40405,
                &format!(
                    "Subject '{subject}' was not deleted first before being permanently deleted"
                ),
            ));
        }
        all
    } else {
        if live.is_empty() {
            return Err(Reply::error(
                404,
                40404,
                &format!(
                    "Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
                ),
            ));
        }
        live
    };
    let records = s.delete_records(&subject, &targets, permanent);
    reg.write(&mut s, &records).await?;
    Ok(Reply::ok(json!(
        targets.iter().map(|v| v.version).collect::<Vec<_>>()
    )))
}

async fn delete_version(
    State(reg): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
) -> Answer {
    let permanent = flag(&q, "permanent");
    let mut s = reg.state.lock().await;
    let v = s.version(&subject, &version, permanent)?;
    if permanent && !v.deleted {
        return Err(Reply::error(
            404,
            40407,
            &format!(
                "Subject '{subject}' Version {} was not deleted first before being permanently deleted",
                v.version
            ),
        ));
    }
    let records = s.delete_records(&subject, &[v], permanent);
    reg.write(&mut s, &records).await?;
    Ok(Reply::ok(json!(v.version)))
}

fn schema_id(id: &str) -> Result<u32, Reply> {
    id.parse()
        .map_err(|_| Reply::from(Refusal::schema_not_found()))
}

async fn schema_by_id(State(reg): State<Shared>, Path(id): Path<String>) -> Answer {
    let id = schema_id(&id)?;
    let s = reg.state.lock().await;
    let stored = s
        .schema(id)
        .ok_or_else(|| Reply::error(404, 40403, &format!("Schema {id} not found")))?;
    let mut out = json!({ "schema": stored.schema });
    if stored.schema_type != "AVRO" {
        out["schemaType"] = json!(stored.schema_type);
    }
    if stored.references.as_array().is_some_and(|r| !r.is_empty()) {
        out["references"] = stored.references.clone();
    }
    Ok(Reply::ok(out))
}

async fn raw_schema_by_id(State(reg): State<Shared>, Path(id): Path<String>) -> Answer {
    let id = schema_id(&id)?;
    let s = reg.state.lock().await;
    raw(s.schema(id).map(|x| x.schema.as_str()))
}

async fn id_versions(State(reg): State<Shared>, Path(id): Path<String>) -> Answer {
    let id = schema_id(&id)?;
    let s = reg.state.lock().await;
    s.schema(id)
        .ok_or_else(|| Reply::error(404, 40403, &format!("Schema {id} not found")))?;
    let uses: Vec<Json> = s
        .usages(id)
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(Reply::ok(json!(uses)))
}

async fn id_subjects(State(reg): State<Shared>, Path(id): Path<String>) -> Answer {
    let id = schema_id(&id)?;
    let s = reg.state.lock().await;
    s.schema(id)
        .ok_or_else(|| Reply::error(404, 40403, &format!("Schema {id} not found")))?;
    let mut subjects: Vec<String> = s.usages(id).into_iter().map(|(s, _)| s).collect();
    subjects.dedup();
    Ok(Reply::ok(json!(subjects)))
}

fn compatibility(result: Result<(), Vec<String>>, verbose: bool) -> Reply {
    let mut out = json!({ "is_compatible": result.is_ok() });
    if verbose {
        out["messages"] = json!(result.err().unwrap_or_default());
    }
    Reply::ok(out)
}

async fn compatible_all(
    State(reg): State<Shared>,
    Path(subject): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Answer {
    let (schema, schema_type, _) = schema_body(&body)?;
    let s = reg.state.lock().await;
    let result = s.check(&subject, &schema, &schema_type, None)?;
    Ok(compatibility(result, flag(&q, "verbose")))
}

async fn compatible_with(
    State(reg): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Params,
    body: Bytes,
) -> Answer {
    let (schema, schema_type, _) = schema_body(&body)?;
    let s = reg.state.lock().await;
    let v = s.version(&subject, &version, false)?;
    let result = s.check(&subject, &schema, &schema_type, Some(v))?;
    Ok(compatibility(result, flag(&q, "verbose")))
}

async fn global_config(State(reg): State<Shared>) -> Answer {
    let s = reg.state.lock().await;
    Ok(Reply::ok(
        json!({"compatibilityLevel": s.global_level().name()}),
    ))
}

async fn subject_config(
    State(reg): State<Shared>,
    Path(subject): Path<String>,
    Query(q): Params,
) -> Answer {
    let s = reg.state.lock().await;
    match s.subject_level(&subject) {
        Some(l) => Ok(Reply::ok(json!({"compatibilityLevel": l.name()}))),
        None if flag(&q, "defaultToGlobal") => Ok(Reply::ok(
            json!({"compatibilityLevel": s.global_level().name()}),
        )),
        None => Err(Reply::error(
            404,
            40408,
            &format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )),
    }
}

/// The level in a `PUT /config` body (`compatibility`, or `compatibilityLevel` as newer
/// clients send it).
fn level_body(body: &[u8]) -> Result<Level, Reply> {
    let v: Json = serde_json::from_slice(body)
        .map_err(|e| Reply::error(422, 42203, &format!("Invalid compatibility level: {e}")))?;
    let name = v
        .get("compatibility")
        .or_else(|| v.get("compatibilityLevel"))
        .and_then(Json::as_str)
        .unwrap_or_default();
    Level::parse(name).ok_or_else(|| Refusal::invalid_level(name).into())
}

async fn set_global_config(State(reg): State<Shared>, body: Bytes) -> Answer {
    let level = level_body(&body)?;
    let mut s = reg.state.lock().await;
    reg.write(&mut s, &[store::config_record(None, Some(level))])
        .await?;
    Ok(Reply::ok(json!({"compatibility": level.name()})))
}

async fn set_subject_config(
    State(reg): State<Shared>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Answer {
    let level = level_body(&body)?;
    let mut s = reg.state.lock().await;
    reg.write(&mut s, &[store::config_record(Some(&subject), Some(level))])
        .await?;
    Ok(Reply::ok(json!({"compatibility": level.name()})))
}

async fn delete_subject_config(State(reg): State<Shared>, Path(subject): Path<String>) -> Answer {
    let mut s = reg.state.lock().await;
    let level = s
        .subject_level(&subject)
        .ok_or_else(|| Reply::from(Refusal::subject_not_found(&subject)))?;
    reg.write(&mut s, &[store::config_record(Some(&subject), None)])
        .await?;
    Ok(Reply::ok(json!({"compatibilityLevel": level.name()})))
}
