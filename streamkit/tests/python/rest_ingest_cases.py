"""Valid and invalid REST Proxy v2 produce requests of every embedded format (json, binary,
avro), sent with `requests` the way the CTA weather producer sent its readings
(`requests.post(url, headers={"Content-Type": ...}, data=json.dumps(body))`). Run by
streamkit/tests/server_rest_ingest.rs against a query server with REST ingest on and a bearer
token; the topics rest-json (2 partitions), rest-binary (2) and rest-avro (1) exist.

  rest_ingest_cases.py URL TOKEN

Prints one JSON object: for each case, the HTTP status, content type and body it got back.
"""

import base64
import json
import sys

import requests

JSON = "application/vnd.kafka.json.v2+json"
BINARY = "application/vnd.kafka.binary.v2+json"
AVRO = "application/vnd.kafka.avro.v2+json"

ARRIVAL = {
    "type": "record",
    "name": "arrival",
    "namespace": "org.chicago.cta",
    "fields": [
        {"name": "station_id", "type": "int"},
        {"name": "train_id", "type": "string"},
        {"name": "direction", "type": {"type": "enum", "name": "direction", "symbols": ["a", "b"]}},
        {"name": "prev_station_id", "type": ["null", "int"]},
        {"name": "cars", "type": {"type": "array", "items": "string"}},
        {"name": "dwell_ms", "type": {"type": "map", "values": "long"}},
        {"name": "line", "type": "string", "default": "blue"},
    ],
}

# A required field more than ARRIVAL: the registry's BACKWARD check refuses it under the subject.
ARRIVAL_INCOMPATIBLE = dict(ARRIVAL, fields=ARRIVAL["fields"] + [{"name": "delay", "type": "int"}])


def arrival(i, prev):
    return {
        "station_id": 40000 + i,
        "train_id": f"BL{i:03}",
        "direction": "a" if i % 2 == 0 else "b",
        "prev_station_id": prev,
        "cars": ["1001", "1002"],
        "dwell_ms": {"40000": 1500},
    }


def b64(data):
    return base64.b64encode(data).decode("ascii")


def main():
    url, token = sys.argv[1], sys.argv[2]
    results = {}

    def post(case, path, content_type, body, auth=token, raw=False):
        headers = {"Content-Type": content_type}
        if auth is not None:
            headers["Authorization"] = f"Bearer {auth}"
        resp = requests.post(
            f"{url}{path}",
            headers=headers,
            data=body if raw else json.dumps(body),
        )
        try:
            answer = resp.json()
        except ValueError:
            answer = resp.text
        results[case] = {
            "status": resp.status_code,
            "content_type": resp.headers.get("Content-Type"),
            "body": answer,
        }
        return resp

    # json: keys and values embedded as JSON.
    post("json_valid", "/topics/rest-json", JSON, {"records": [
        {"key": "somekey", "value": {"foo": "bar"}},
        {"value": ["foo", "bar"], "partition": 1},
        {"value": 53.5},
    ]})
    post("json_partition_endpoint", "/topics/rest-json/partitions/0", JSON,
         {"records": [{"value": {"n": 1}}, {"value": {"n": 2}}]})
    post("json_malformed", "/topics/rest-json", JSON, '{"records": [{"value": 1}', raw=True)
    post("json_no_records", "/topics/rest-json", JSON, {"records": []})
    post("json_missing_records", "/topics/rest-json", JSON, {"value": {"foo": "bar"}})
    post("json_records_not_a_list", "/topics/rest-json", JSON, {"records": {"value": 1}})
    post("json_negative_partition", "/topics/rest-json", JSON,
         {"records": [{"value": 1, "partition": -1}]})
    post("json_partition_out_of_range", "/topics/rest-json", JSON,
         {"records": [{"value": 1, "partition": 7}]})
    post("json_unknown_partition_endpoint", "/topics/rest-json/partitions/9", JSON,
         {"records": [{"value": 1}]})
    post("json_unknown_topic", "/topics/no-such-topic", JSON, {"records": [{"value": 1}]})

    # binary: keys and values base64.
    post("binary_valid", "/topics/rest-binary", BINARY, {"records": [
        {"key": b64(b"station-1"), "value": b64(b"\x00\x01\xffraw")},
        {"value": b64(b"no key")},
    ]})
    post("binary_partition_endpoint", "/topics/rest-binary/partitions/1", BINARY,
         {"records": [{"key": b64(b"k"), "value": b64(b"v")}]})
    post("binary_bad_base64", "/topics/rest-binary", BINARY, {"records": [{"value": "not base64!"}]})
    post("binary_not_a_string", "/topics/rest-binary", BINARY, {"records": [{"value": 12}]})

    # avro: schemas registered (or looked up by id) through the registry.
    valid = post("avro_valid", "/topics/rest-avro", AVRO, {
        "key_schema": json.dumps("string"),
        "value_schema": json.dumps(ARRIVAL),
        "records": [
            {"key": "a1", "value": arrival(1, {"int": 40000})},
            {"key": "a2", "value": arrival(2, None)},
        ],
    }).json()
    post("avro_by_schema_id", "/topics/rest-avro", AVRO, {
        "key_schema_id": valid.get("key_schema_id"),
        "value_schema_id": valid.get("value_schema_id"),
        "records": [{"key": "a3", "value": arrival(3, {"int": 40002})}],
    })
    post("avro_invalid_schema", "/topics/rest-avro", AVRO, {
        "value_schema": json.dumps({"type": "recrd", "name": "x"}),
        "records": [{"value": {"a": 1}}],
    })
    post("avro_not_matching", "/topics/rest-avro", AVRO, {
        "value_schema": json.dumps(ARRIVAL),
        "records": [{"value": dict(arrival(4, None), station_id="forty")}],
    })
    post("avro_bare_union", "/topics/rest-avro", AVRO, {
        "value_schema": json.dumps(ARRIVAL),
        "records": [{"value": arrival(5, 40004)}],
    })
    post("avro_missing_value_schema", "/topics/rest-avro", AVRO,
         {"records": [{"value": arrival(6, None)}]})
    post("avro_missing_key_schema", "/topics/rest-avro", AVRO, {
        "value_schema": json.dumps(ARRIVAL),
        "records": [{"key": "a7", "value": arrival(7, None)}],
    })
    post("avro_unknown_schema_id", "/topics/rest-avro", AVRO,
         {"value_schema_id": 9999, "records": [{"value": arrival(8, None)}]})
    post("avro_incompatible_schema", "/topics/rest-avro", AVRO, {
        "value_schema": json.dumps(ARRIVAL_INCOMPATIBLE),
        "records": [{"value": dict(arrival(9, None), delay=3)}],
    })

    # Any format: content type, token, size.
    post("unsupported_content_type", "/topics/rest-json", "text/plain", {"records": [{"value": 1}]})
    post("no_token", "/topics/rest-json", JSON, {"records": [{"value": 1}]}, auth=None)
    post("wrong_token", "/topics/rest-json", JSON, {"records": [{"value": 1}]}, auth="guess")
    post("too_large", "/topics/rest-json", JSON, {"records": [{"value": "x" * (100 << 10)}]})

    print(json.dumps(results))


if __name__ == "__main__":
    main()
