//! The embedded schema registry's REST API: Confluent's JSON shapes and error codes, soft
//! deletes, authentication, and a restart that keeps ids from the `_schemas` topic.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};
use streamkit::registry::{EmbeddedRegistry, RegistryConfig};
use streamkit::serde::avro::{RegistryAuth, RegistryClient};
use streamkit::testing::EmbeddedBroker;

const V1: &str =
    r#"{"type":"record","name":"Turnstile","fields":[{"name":"station_id","type":"int"}]}"#;
const V2: &str = r#"{"type":"record","name":"Turnstile","fields":[{"name":"station_id","type":"int"},{"name":"line","type":"string","default":"blue"}]}"#;
const V2_NO_DEFAULT: &str = r#"{"type":"record","name":"Turnstile","fields":[{"name":"station_id","type":"int"},{"name":"line","type":"string"}]}"#;

/// One HTTP/1.1 request; returns the status and the JSON body.
fn call(reg: &EmbeddedRegistry, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    call_as(reg, method, path, body, None)
}

fn call_as(
    reg: &EmbeddedRegistry,
    method: &str,
    path: &str,
    body: Option<Value>,
    authorization: Option<&str>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(reg.addr()).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n{auth}\
         Content-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status: u16 = out[9..12].parse().unwrap();
    let (head, text) = out.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("application/vnd.schemaregistry.v1+json"),
        "content type: {head}"
    );
    (status, serde_json::from_str(text).unwrap_or(Value::Null))
}

fn schema(text: &str) -> Option<Value> {
    Some(json!({ "schema": text }))
}

fn start(broker: &EmbeddedBroker) -> EmbeddedRegistry {
    EmbeddedRegistry::start(RegistryConfig::embedded(broker).listen("127.0.0.1:0")).unwrap()
}

#[test]
fn requests_get_confluent_shapes_and_error_codes() {
    let broker = EmbeddedBroker::start().unwrap();
    let reg = start(&broker);
    let code = |r: (u16, Value)| (r.0, r.1["error_code"].as_u64().unwrap_or(0));

    assert_eq!(
        code(call(&reg, "GET", "/subjects/t-value/versions", None)),
        (404, 40401)
    );
    assert_eq!(
        call(&reg, "POST", "/subjects/t-value/versions", schema(V1)),
        (200, json!({"id": 1}))
    );
    assert_eq!(
        call(&reg, "POST", "/subjects/t-value/versions", schema(V1)),
        (200, json!({"id": 1})),
        "registration is idempotent"
    );
    assert_eq!(
        call(&reg, "GET", "/subjects", None),
        (200, json!(["t-value"]))
    );
    assert_eq!(
        call(&reg, "GET", "/schemas/ids/1", None),
        (200, json!({"schema": V1}))
    );
    assert_eq!(
        code(call(&reg, "GET", "/schemas/ids/77", None)),
        (404, 40403)
    );
    assert_eq!(
        code(call(&reg, "GET", "/subjects/t-value/versions/9", None)),
        (404, 40402)
    );
    assert_eq!(
        code(call(&reg, "GET", "/subjects/t-value/versions/x", None)),
        (422, 42202)
    );
    assert_eq!(
        code(call(
            &reg,
            "POST",
            "/subjects/t-value/versions",
            schema(r#"{"type":"nope"}"#)
        )),
        (422, 42201)
    );
    assert_eq!(
        code(call(
            &reg,
            "PUT",
            "/config",
            Some(json!({"compatibility": "SOMETIMES"}))
        )),
        (422, 42203)
    );
    assert_eq!(
        call(&reg, "GET", "/config", None),
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );

    // BACKWARD: a field without a default cannot read older records.
    assert_eq!(
        call(
            &reg,
            "POST",
            "/compatibility/subjects/t-value/versions/latest",
            schema(V2_NO_DEFAULT)
        ),
        (200, json!({"is_compatible": false}))
    );
    assert_eq!(
        code(call(
            &reg,
            "POST",
            "/subjects/t-value/versions",
            schema(V2_NO_DEFAULT)
        )),
        (409, 409)
    );
    assert_eq!(
        call(&reg, "POST", "/subjects/t-value/versions", schema(V2)),
        (200, json!({"id": 2}))
    );
    assert_eq!(
        call(&reg, "GET", "/subjects/t-value/versions", None),
        (200, json!([1, 2]))
    );
    assert_eq!(
        call(&reg, "GET", "/subjects/t-value/versions/latest", None),
        (
            200,
            json!({"subject": "t-value", "version": 2, "id": 2, "schema": V2})
        )
    );
    assert_eq!(
        call(&reg, "POST", "/subjects/t-value", schema(V1)),
        (
            200,
            json!({"subject": "t-value", "version": 1, "id": 1, "schema": V1})
        )
    );
    assert_eq!(
        code(call(
            &reg,
            "POST",
            "/subjects/t-value",
            schema(V2_NO_DEFAULT)
        )),
        (404, 40403)
    );

    // NONE on the subject lets anything in; the subject level is reported apart from global.
    assert_eq!(
        code(call(&reg, "GET", "/config/t-value", None)),
        (404, 40408)
    );
    assert_eq!(
        call(
            &reg,
            "PUT",
            "/config/t-value",
            Some(json!({"compatibility": "NONE"}))
        ),
        (200, json!({"compatibility": "NONE"}))
    );
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/t-value/versions",
            schema(V2_NO_DEFAULT)
        ),
        (200, json!({"id": 3}))
    );
    // The same schema under another subject keeps its id.
    assert_eq!(
        call(&reg, "POST", "/subjects/u-value/versions", schema(V2)),
        (200, json!({"id": 2}))
    );
    assert_eq!(
        call(&reg, "GET", "/schemas/ids/2/versions", None),
        (
            200,
            json!([{"subject": "t-value", "version": 2}, {"subject": "u-value", "version": 1}])
        )
    );
}

#[test]
fn soft_deleted_subjects_disappear_but_their_schemas_still_resolve() {
    let broker = EmbeddedBroker::start().unwrap();
    let reg = start(&broker);
    call(&reg, "POST", "/subjects/gone/versions", schema(V1));
    assert_eq!(
        call(&reg, "DELETE", "/subjects/gone?permanent=true", None).1["error_code"],
        40405,
        "a hard delete needs a soft delete first"
    );
    assert_eq!(
        call(&reg, "DELETE", "/subjects/gone", None),
        (200, json!([1]))
    );
    assert_eq!(call(&reg, "GET", "/subjects", None), (200, json!([])));
    assert_eq!(
        call(&reg, "GET", "/subjects?deleted=true", None),
        (200, json!(["gone"]))
    );
    assert_eq!(call(&reg, "GET", "/schemas/ids/1", None).0, 200);
    assert_eq!(
        call(&reg, "DELETE", "/subjects/gone?permanent=true", None),
        (200, json!([1]))
    );
    assert_eq!(
        call(&reg, "GET", "/subjects?deleted=true", None),
        (200, json!([]))
    );
}

#[test]
fn a_restart_keeps_ids_versions_and_levels_from_the_schemas_topic() {
    let broker = EmbeddedBroker::start().unwrap();
    let mut reg = start(&broker);
    call(&reg, "POST", "/subjects/a-value/versions", schema(V1));
    call(&reg, "POST", "/subjects/a-value/versions", schema(V2));
    call(
        &reg,
        "PUT",
        "/config",
        Some(json!({"compatibility": "FULL"})),
    );
    call(&reg, "DELETE", "/subjects/a-value/versions/1", None);
    reg.stop();
    drop(reg);

    let reg = start(&broker);
    assert_eq!(
        call(&reg, "GET", "/subjects/a-value/versions", None),
        (200, json!([2]))
    );
    assert_eq!(
        call(&reg, "GET", "/config", None).1["compatibilityLevel"],
        "FULL"
    );
    assert_eq!(call(&reg, "GET", "/schemas/ids/1", None).0, 200);
    let v3 = r#"{"type":"record","name":"Other","fields":[]}"#;
    assert_eq!(
        call(&reg, "POST", "/subjects/b-value/versions", schema(v3)),
        (200, json!({"id": 3})),
        "ids continue after the replayed ones"
    );
}

#[test]
fn credentials_are_required_when_configured() {
    let broker = EmbeddedBroker::start().unwrap();
    let basic = RegistryAuth::Basic {
        user: "app".into(),
        password: "s3cret".into(),
    };
    let reg = EmbeddedRegistry::start(
        RegistryConfig::embedded(&broker)
            .listen("127.0.0.1:0")
            .topic("_schemas_basic")
            .auth(basic.clone()),
    )
    .unwrap();
    assert_eq!(call(&reg, "GET", "/subjects", None).0, 401);
    assert_eq!(
        call_as(
            &reg,
            "GET",
            "/subjects",
            None,
            Some("Basic YXBwOnMzY3JldA==")
        ),
        (200, json!([]))
    );
    let schema = apache_avro::Schema::parse_str(V1).unwrap();
    assert!(
        RegistryClient::new(reg.url())
            .unwrap()
            .register("x", &schema)
            .is_err()
    );
    assert_eq!(reg.client().unwrap().register("x", &schema).unwrap(), 1);

    let bearer = EmbeddedRegistry::start(
        RegistryConfig::embedded(&broker)
            .listen("127.0.0.1:0")
            .topic("_schemas_bearer")
            .auth(RegistryAuth::Bearer("t0ken".into())),
    )
    .unwrap();
    assert_eq!(
        call_as(&bearer, "GET", "/subjects", None, Some("Bearer nope")).0,
        401
    );
    assert_eq!(
        call_as(&bearer, "GET", "/subjects", None, Some("Bearer t0ken")).0,
        200
    );
}
