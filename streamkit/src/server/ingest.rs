//! Kafka REST Proxy v2 produce API on the query server: `POST /topics/{topic}` and
//! `POST /topics/{topic}/partitions/{partition}` with `application/vnd.kafka.json.v2+json`,
//! `…avro.v2+json` or `…binary.v2+json` bodies, answered with the REST Proxy's `offsets`,
//! schema ids and error codes, so HTTP producers written for it (the CTA weather station's
//! `requests.post`) work unchanged. Enabled with
//! [`StreamsConfig::rest_ingest`](crate::config::StreamsConfig::rest_ingest).
//!
//! A request is checked and converted whole before anything is sent (as the REST Proxy does,
//! so a bad record fails the request, never half of it); then every record is handed to one
//! producer and the answer waits for every delivery report.
//!
//! | status / `error_code` | when |
//! |---|---|
//! | `200`, `offsets[i].error_code` null / 50002 / 50003 | delivered / refused by the broker / refused, retriable |
//! | `400` / 400 | the body is not JSON, or a field has the wrong type (base64 included) |
//! | `422` / 422 | no `records`, or a negative `partition` |
//! | `404` / 40401, 40402 | unknown topic, unknown partition |
//! | `422` / 42201, 42202 | Avro keys or values without a key or value schema |
//! | `422` / 42203 | a key or value does not match its Avro schema |
//! | `422` / 42205 | an Avro schema that does not parse |
//! | `408` / 40801 | the registry failed (unknown id, incompatible schema, none configured) |
//! | `413` / 413, `415` / 415 | body over the limit, content type not a v2 produce type |

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt as _;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaRespErr;
use serde_json::{Value as Json, json};

use super::ServerContext;
use crate::config::{RestIngest, StreamsConfig};
use crate::error::{Result, SerdeError};
use crate::serde::avro::RegistryClient;
use crate::serde::avro::json::encode_json;

/// The REST Proxy's response content type.
const V2_CONTENT_TYPE: &str = "application/vnd.kafka.v2+json";

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// What the ingest handlers share: one producer for every request.
pub(crate) struct Ingest {
    producer: FutureProducer,
    registry: Option<RegistryClient>,
    max_body_bytes: usize,
    /// The server listens on a loopback address: only loopback `Host` names are served.
    loopback: bool,
}

impl Ingest {
    /// The producer takes the application's `producer` settings, with Kafka's Java defaults
    /// where librdkafka's differ (murmur2 partitioning of keys, idempotence), and does not
    /// create missing topics: the REST Proxy answers 40401 for them.
    pub fn new(config: &StreamsConfig, ingest: &RestIngest, loopback: bool) -> Result<Ingest> {
        let mut c = crate::runtime::admin::base_client_config(config, "producer")?;
        c.set(
            "client.id",
            format!("{}-rest-ingest", config.application_id),
        );
        let own = config.client_settings("producer");
        for (k, v) in [
            ("partitioner", "murmur2_random"),
            ("enable.idempotence", "true"),
            ("allow.auto.create.topics", "false"),
        ] {
            if !own.contains_key(k) {
                c.set(k, v);
            }
        }
        Ok(Ingest {
            producer: c.create()?,
            registry: ingest.registry.clone(),
            max_body_bytes: ingest.max_body_bytes,
            loopback,
        })
    }
}

/// The embedded format a content type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Binary,
    Json,
    Avro,
}

/// A REST Proxy error: HTTP status, its `error_code` and `message`.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    code: u32,
    message: String,
}

fn fail(status: StatusCode, code: u32, message: impl Into<String>) -> Failure {
    Failure {
        status,
        code,
        message: message.into(),
    }
}

/// `400`: the body is not JSON or does not have the request's shape.
fn bad_request(message: impl Into<String>) -> Failure {
    fail(StatusCode::BAD_REQUEST, 400, message)
}

/// `422`: a constraint of the request is violated.
fn unprocessable(code: u32, message: impl Into<String>) -> Failure {
    fail(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// `408`/40801, the REST Proxy's answer to any registry failure.
fn registry_failed(e: impl std::fmt::Display) -> Failure {
    fail(
        StatusCode::REQUEST_TIMEOUT,
        40801,
        format!("Schema registration or lookup failed: {e}"),
    )
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        reply(
            self.status,
            &json!({"error_code": self.code, "message": self.message}),
        )
    }
}

fn reply(status: StatusCode, body: &Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, V2_CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

/// `POST /topics/{topic}`: records go to the partition they name, else the partitioner's.
pub(crate) async fn produce_to_topic(
    State(ctx): State<Arc<ServerContext>>,
    Path(topic): Path<String>,
    request: Request,
) -> Response {
    produce(ctx, topic, None, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /topics/{topic}/partitions/{partition}`: every record to that partition.
pub(crate) async fn produce_to_partition(
    State(ctx): State<Arc<ServerContext>>,
    Path((topic, partition)): Path<(String, String)>,
    request: Request,
) -> Response {
    let partition = match partition.parse::<i32>() {
        Ok(p) if p >= 0 => p,
        _ => return fail(StatusCode::NOT_FOUND, 40402, "Partition not found.").into_response(),
    };
    produce(ctx, topic, Some(partition), request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn produce(
    ctx: Arc<ServerContext>,
    topic: String,
    url_partition: Option<i32>,
    request: Request,
) -> std::result::Result<Response, Failure> {
    let Some(ingest) = ctx.ingest.clone() else {
        return Err(fail(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found"));
    };
    guard(&ingest, request.headers())?;
    let format = format(request.headers())?;
    let body = read_body(request.into_body(), ingest.max_body_bytes).await?;
    let parsed = parse_request(&body, format, url_partition.is_none())?;

    let partitions = topic_partitions(&ingest, &topic).await?;
    for p in url_partition
        .iter()
        .chain(parsed.records.iter().filter_map(|r| r.partition.as_ref()))
    {
        if *p >= partitions {
            return Err(fail(
                StatusCode::NOT_FOUND,
                40402,
                format!(
                    "Partition not found. (topic {topic} has {partitions} partitions, asked for {p})"
                ),
            ));
        }
    }

    let encoded = {
        let (ingest, topic) = (ingest.clone(), topic.clone());
        // The registry client blocks: schema registration and lookups run off the runtime.
        tokio::task::spawn_blocking(move || encode(&ingest, &topic, format, parsed))
            .await
            .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, 500, e.to_string()))??
    };

    let offsets = send(&ingest, &topic, url_partition, &encoded.records).await;
    Ok(reply(
        StatusCode::OK,
        &json!({
            "offsets": offsets,
            "key_schema_id": encoded.key_schema_id,
            "value_schema_id": encoded.value_schema_id,
        }),
    ))
}

/// On a loopback address, a loopback `Host` (a page elsewhere reaching `127.0.0.1` through DNS
/// rebinding names its own host), and an `Origin`, when a browser sends one, equal to it. The
/// accepted content types are not ones a cross-site form can send without a CORS preflight,
/// which this server never grants.
fn guard(ingest: &Ingest, headers: &HeaderMap) -> std::result::Result<(), Failure> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST).unwrap_or_default();
    if ingest.loopback && !super::is_loopback_host(host) {
        return Err(fail(
            StatusCode::FORBIDDEN,
            403,
            format!("host {host:?} is not served: this server answers loopback names only"),
        ));
    }
    if let Some(origin) = text(header::ORIGIN) {
        let own = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if own != Some(host) {
            return Err(fail(
                StatusCode::FORBIDDEN,
                403,
                format!("cross-origin requests are refused (origin {origin})"),
            ));
        }
    }
    Ok(())
}

/// The embedded format of `Content-Type`: `application/vnd.kafka.{binary,json,avro}.v2+json`;
/// with no embedded format named (`application/vnd.kafka.v2+json`, `application/vnd.kafka+json`,
/// `application/json`) binary, as the REST Proxy assumes.
fn format(headers: &HeaderMap) -> std::result::Result<Format, Failure> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/vnd.kafka.binary.v2+json"
        | "application/vnd.kafka.v2+json"
        | "application/vnd.kafka+json"
        | "application/json" => Ok(Format::Binary),
        "application/vnd.kafka.json.v2+json" => Ok(Format::Json),
        "application/vnd.kafka.avro.v2+json" => Ok(Format::Avro),
        _ => Err(fail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            415,
            format!(
                "HTTP 415 Unsupported Media Type: content type {ct:?} is not accepted; send \
                 application/vnd.kafka.json.v2+json, application/vnd.kafka.avro.v2+json or \
                 application/vnd.kafka.binary.v2+json"
            ),
        )),
    }
}

/// The body, or `413` past `limit` bytes (checked against `Content-Length` before reading).
async fn read_body(body: Body, limit: usize) -> std::result::Result<Vec<u8>, Failure> {
    let too_large = || {
        fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            413,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    };
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| bad_request(format!("cannot read the body: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A record of the request: key and value as given (`None`: absent or `null`).
#[derive(Debug)]
struct RecordIn {
    key: Option<Json>,
    value: Option<Json>,
    partition: Option<i32>,
}

/// A schema given in the request: its text, or its registry id.
#[derive(Debug)]
enum SchemaRef {
    Text(String),
    Id(u32),
}

#[derive(Debug)]
struct ProduceRequest {
    records: Vec<RecordIn>,
    key_schema: Option<SchemaRef>,
    value_schema: Option<SchemaRef>,
}

/// Parses the body as the REST Proxy's Jackson binding does: `400` for a body that is not JSON
/// or whose fields have the wrong type; `422` for no records or a negative partition. Unknown
/// fields are ignored; so is a record's `partition` on the partition endpoint.
fn parse_request(
    body: &[u8],
    format: Format,
    record_partitions: bool,
) -> std::result::Result<ProduceRequest, Failure> {
    let json: Json = serde_json::from_slice(body)
        .map_err(|e| bad_request(format!("the body is not JSON: {e}")))?;
    let Json::Object(mut top) = json else {
        return Err(bad_request(
            "the body must be a JSON object with \"records\"",
        ));
    };
    let records = match top.remove("records") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(a)) => a,
        Some(other) => {
            return Err(bad_request(format!(
                "\"records\" must be an array, got {other}"
            )));
        }
    };
    if records.is_empty() {
        return Err(unprocessable(422, "records must not be empty"));
    }
    let records = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let Json::Object(mut r) = r else {
                return Err(bad_request(format!(
                    "records[{i}] must be an object with \"key\", \"value\" and \"partition\""
                )));
            };
            let partition = match r.remove("partition") {
                Some(p) if record_partitions && !p.is_null() => {
                    let p = p.as_i64().ok_or_else(|| {
                        bad_request(format!(
                            "records[{i}].partition must be an integer, got {p}"
                        ))
                    })?;
                    if p < 0 {
                        return Err(unprocessable(
                            422,
                            format!("records[{i}].partition must be greater than or equal to 0"),
                        ));
                    }
                    Some(i32::try_from(p).map_err(|_| {
                        bad_request(format!("records[{i}].partition {p} is out of range"))
                    })?)
                }
                _ => None,
            };
            let present = |v: Option<Json>| v.filter(|v| !v.is_null());
            Ok(RecordIn {
                key: present(r.remove("key")),
                value: present(r.remove("value")),
                partition,
            })
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let (key_schema, value_schema) = if format == Format::Avro {
        (
            schema_ref(&mut top, "key_schema")?,
            schema_ref(&mut top, "value_schema")?,
        )
    } else {
        (None, None)
    };
    Ok(ProduceRequest {
        records,
        key_schema,
        value_schema,
    })
}

/// `<part>_schema_id` (preferred, as the REST Proxy does) or `<part>_schema`: the schema's
/// JSON as a string; a schema written as JSON itself is taken too.
fn schema_ref(
    top: &mut serde_json::Map<String, Json>,
    field: &str,
) -> std::result::Result<Option<SchemaRef>, Failure> {
    let id_field = format!("{field}_id");
    match top.remove(&id_field) {
        None | Some(Json::Null) => {}
        Some(id) => {
            return id
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(|id| Some(SchemaRef::Id(id)))
                .ok_or_else(|| bad_request(format!("{id_field} must be a schema id, got {id}")));
        }
    }
    Ok(match top.remove(field) {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(SchemaRef::Text(s)),
        Some(other @ (Json::Object(_) | Json::Array(_))) => {
            Some(SchemaRef::Text(other.to_string()))
        }
        Some(other) => {
            return Err(bad_request(format!(
                "{field} must be a schema (JSON text), got {other}"
            )));
        }
    })
}

/// Partition count of `topic`; `404`/40401 when it does not exist.
async fn topic_partitions(ingest: &Arc<Ingest>, topic: &str) -> std::result::Result<i32, Failure> {
    let (ingest, name) = (ingest.clone(), topic.to_string());
    let md = tokio::task::spawn_blocking(move || {
        ingest
            .producer
            .client()
            .fetch_metadata(Some(&name), METADATA_TIMEOUT)
    })
    .await
    .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, 500, e.to_string()))?
    .map_err(|e| {
        fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            50003,
            format!("Retriable Kafka error: cannot read the metadata of topic {topic}: {e}"),
        )
    })?;
    let found = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .filter(|t| t.error().is_none() && !t.partitions().is_empty());
    match found {
        Some(t) => Ok(t.partitions().len() as i32),
        None => {
            let why = md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .and_then(|t| t.error());
            if let Some(e) = why
                && e != RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
            {
                tracing::debug!(topic, error = ?e, "rest ingest: topic metadata error");
            }
            Err(fail(StatusCode::NOT_FOUND, 40401, "Topic not found."))
        }
    }
}

/// The records as bytes to produce, and the ids of the schemas they were written with.
struct Encoded {
    records: Vec<EncodedRecord>,
    key_schema_id: Option<u32>,
    value_schema_id: Option<u32>,
}

struct EncodedRecord {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    partition: Option<i32>,
}

/// Base64 as Jackson reads it into `byte[]`: standard alphabet, padding optional.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

fn encode(
    ingest: &Ingest,
    topic: &str,
    format: Format,
    request: ProduceRequest,
) -> std::result::Result<Encoded, Failure> {
    let ProduceRequest {
        records,
        key_schema,
        value_schema,
    } = request;
    match format {
        Format::Binary => {
            let decode = |i: usize, part: &str, v: Option<Json>| match v {
                None => Ok(None),
                Some(Json::String(s)) => BASE64.decode(s.as_bytes()).map(Some).map_err(|e| {
                    bad_request(format!("records[{i}].{part} is not valid base64: {e}"))
                }),
                Some(other) => Err(bad_request(format!(
                    "records[{i}].{part} must be a base64 string, got {other}"
                ))),
            };
            let records = records
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    Ok(EncodedRecord {
                        key: decode(i, "key", r.key)?,
                        value: decode(i, "value", r.value)?,
                        partition: r.partition,
                    })
                })
                .collect::<std::result::Result<_, Failure>>()?;
            Ok(Encoded {
                records,
                key_schema_id: None,
                value_schema_id: None,
            })
        }
        Format::Json => {
            let bytes = |v: Option<Json>| v.map(|v| v.to_string().into_bytes());
            Ok(Encoded {
                records: records
                    .into_iter()
                    .map(|r| EncodedRecord {
                        key: bytes(r.key),
                        value: bytes(r.value),
                        partition: r.partition,
                    })
                    .collect(),
                key_schema_id: None,
                value_schema_id: None,
            })
        }
        Format::Avro => {
            if records.iter().any(|r| r.key.is_some()) && key_schema.is_none() {
                return Err(unprocessable(
                    42201,
                    "Request includes keys but does not include key schema",
                ));
            }
            if records.iter().any(|r| r.value.is_some()) && value_schema.is_none() {
                return Err(unprocessable(
                    42202,
                    "Request includes values but does not include value schema",
                ));
            }
            let key = resolve_schema(ingest, topic, "key", key_schema)?;
            let value = resolve_schema(ingest, topic, "value", value_schema)?;
            let convert =
                |i: usize,
                 part: &str,
                 json: Option<Json>,
                 schema: &Option<(u32, Arc<apache_avro::Schema>)>| {
                    match (json, schema) {
                    (Some(json), Some((id, schema))) => encode_json(&json, schema, *id)
                        .map(Some)
                        .map_err(|e| {
                            let reason = match e {
                                SerdeError::Invalid(m) | SerdeError::Encode(m) => m,
                                other => other.to_string(),
                            };
                            unprocessable(
                                42203,
                                format!(
                                    "Conversion of JSON to Avro failed: records[{i}].{part}{}{reason}",
                                    if reason.starts_with('.') { "" } else { ": " }
                                ),
                            )
                        }),
                    _ => Ok(None),
                }
                };
            let records = records
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    Ok(EncodedRecord {
                        key: convert(i, "key", r.key, &key)?,
                        value: convert(i, "value", r.value, &value)?,
                        partition: r.partition,
                    })
                })
                .collect::<std::result::Result<_, Failure>>()?;
            Ok(Encoded {
                records,
                key_schema_id: key.as_ref().map(|(id, _)| *id),
                value_schema_id: value.as_ref().map(|(id, _)| *id),
            })
        }
    }
}

/// A schema given by id (looked up) or as text (parsed, then registered under
/// `<topic>-<part>`), with its id.
fn resolve_schema(
    ingest: &Ingest,
    topic: &str,
    part: &str,
    given: Option<SchemaRef>,
) -> std::result::Result<Option<(u32, Arc<apache_avro::Schema>)>, Failure> {
    let registry = || {
        ingest.registry.as_ref().ok_or_else(|| {
            registry_failed(
                "no schema registry is configured for REST ingest (RestIngest::schema_registry)",
            )
        })
    };
    match given {
        None => Ok(None),
        Some(SchemaRef::Id(id)) => registry()?
            .schema_by_id(id)
            .map(|s| Some((id, s)))
            .map_err(registry_failed),
        Some(SchemaRef::Text(text)) => {
            // Parsed before the registry is asked: an invalid schema is the request's fault.
            let schema = apache_avro::Schema::parse_str(&text)
                .map_err(|e| unprocessable(42205, format!("Invalid schema: {part}_schema: {e}")))?;
            let id = registry()?
                .register(&format!("{topic}-{part}"), &schema)
                .map_err(registry_failed)?;
            Ok(Some((id, Arc::new(schema))))
        }
    }
}

/// Hands every record to the producer, then waits for each delivery report: the REST Proxy's
/// `offsets`, one per record in order, with `error_code` 50002 (or 50003 when retrying could
/// succeed) and `error` for a record the broker did not take.
async fn send(
    ingest: &Ingest,
    topic: &str,
    url_partition: Option<i32>,
    records: &[EncodedRecord],
) -> Vec<Json> {
    let mut pending = Vec::with_capacity(records.len());
    for r in records {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        if let Some(k) = &r.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            record = record.payload(v.as_slice());
        }
        if let Some(p) = url_partition.or(r.partition) {
            record = record.partition(p);
        }
        let delivery = loop {
            match ingest.producer.send_result(record) {
                Ok(d) => break Ok(d),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => break Err(e),
            }
        };
        pending.push(delivery);
    }
    let mut offsets = Vec::with_capacity(pending.len());
    for p in pending {
        let result = match p {
            Ok(d) => match d.await {
                Ok(Ok(delivered)) => Ok(delivered),
                Ok(Err((e, _))) => Err(e),
                Err(_) => Err(KafkaError::Canceled),
            },
            Err(e) => Err(e),
        };
        offsets.push(match result {
            Ok(d) => json!({
                "partition": d.partition,
                "offset": d.offset,
                "error_code": null,
                "error": null,
            }),
            Err(e) => {
                let (code, prefix) = if retriable(&e) {
                    (50003, "Retriable Kafka error")
                } else {
                    (50002, "Kafka error")
                };
                json!({
                    "partition": null,
                    "offset": null,
                    "error_code": code,
                    "error": format!("{prefix}: {e}"),
                })
            }
        });
    }
    offsets
}

fn retriable(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageTimedOut
                | C::RequestTimedOut
                | C::QueueFull
                | C::NotLeaderForPartition
                | C::LeaderNotAvailable
                | C::NotEnoughReplicas
                | C::NotEnoughReplicasAfterAppend
                | C::BrokerNotAvailable
                | C::NetworkException
                | C::AllBrokersDown
                | C::BrokerTransportFailure
                | C::OperationTimedOut
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        h
    }

    #[test]
    fn content_types_name_the_embedded_format() {
        let f = |ct: &str| format(&headers(ct)).map_err(|e| (e.status.as_u16(), e.code));
        assert_eq!(f("application/vnd.kafka.avro.v2+json"), Ok(Format::Avro));
        assert_eq!(
            f("application/vnd.kafka.JSON.v2+json; charset=utf-8"),
            Ok(Format::Json)
        );
        assert_eq!(
            f("application/vnd.kafka.binary.v2+json"),
            Ok(Format::Binary)
        );
        assert_eq!(f("application/vnd.kafka.v2+json"), Ok(Format::Binary));
        assert_eq!(f("application/json"), Ok(Format::Binary));
        assert_eq!(f("text/plain"), Err((415, 415)));
        assert_eq!(f("application/vnd.kafka.protobuf.v2+json"), Err((415, 415)));
        assert_eq!(f("application/vnd.kafka.avro.v1+json"), Err((415, 415)));
    }

    #[test]
    fn bodies_fail_as_the_rest_proxy_binding_does() {
        let p = |body: &str| {
            parse_request(body.as_bytes(), Format::Avro, true)
                .map(|r| r.records.len())
                .map_err(|e| (e.status.as_u16(), e.code))
        };
        assert_eq!(p("{\"records\": [{\"value\": 1}]}"), Ok(1));
        assert_eq!(p("{\"records\": [{\"value\": 1}"), Err((400, 400)));
        assert_eq!(p("[]"), Err((400, 400)));
        assert_eq!(p("{}"), Err((422, 422)));
        assert_eq!(p("{\"records\": []}"), Err((422, 422)));
        assert_eq!(p("{\"records\": {}}"), Err((400, 400)));
        assert_eq!(p("{\"records\": [1]}"), Err((400, 400)));
        assert_eq!(p("{\"records\": [{\"partition\": -1}]}"), Err((422, 422)));
        assert_eq!(
            p("{\"records\": [{\"partition\": \"a\"}]}"),
            Err((400, 400))
        );
        assert_eq!(
            p("{\"records\": [{}], \"value_schema_id\": \"x\"}"),
            Err((400, 400))
        );
        let r = parse_request(
            br#"{"records":[{"key":null,"value":{"a":1},"partition":2}],"key_schema":"\"string\"","value_schema_id":7}"#,
            Format::Avro,
            true,
        )
        .unwrap();
        assert!(r.records[0].key.is_none());
        assert_eq!(r.records[0].partition, Some(2));
        assert!(matches!(r.key_schema, Some(SchemaRef::Text(ref t)) if t == "\"string\""));
        assert!(matches!(r.value_schema, Some(SchemaRef::Id(7))));
        // On the partition endpoint a record's partition is ignored.
        let r = parse_request(
            br#"{"records":[{"value":"x","partition":-4}]}"#,
            Format::Json,
            false,
        )
        .unwrap();
        assert_eq!(r.records[0].partition, None);
    }
}
