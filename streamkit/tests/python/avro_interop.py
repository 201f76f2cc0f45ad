"""Confluent's own Python client against streamkit's schema registry and Avro topics.

Run by streamkit/tests/registry_python_interop.rs with the venv scripts/lib.sh installs.
Each command prints one JSON document on stdout.

  produce BOOTSTRAP REGISTRY TOPIC N     AvroSerializer: N turnstile events, keys "s<i>"
  consume BOOTSTRAP REGISTRY TOPIC N     AvroDeserializer: the first N records as JSON
  compat REGISTRY SUBJECT                register, test compatibility, refuse an incompatible change
"""

import json
import sys

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

TURNSTILE = json.dumps({
    "type": "record",
    "name": "Turnstile",
    "namespace": "org.chicago.cta",
    "fields": [
        {"name": "station_id", "type": "int"},
        {"name": "station_name", "type": "string"},
        {"name": "line", "type": "string"},
    ],
})


def produce(bootstrap, registry, topic, n):
    sr = SchemaRegistryClient({"url": registry})
    serialize = AvroSerializer(sr, TURNSTILE)
    key = StringSerializer("utf_8")
    p = Producer({"bootstrap.servers": bootstrap})
    lines = ["blue", "red", "green"]
    for i in range(n):
        event = {"station_id": 40000 + i % 5, "station_name": f"station {i % 5}", "line": lines[i % 3]}
        ctx = SerializationContext(topic, MessageField.VALUE)
        p.produce(topic, key=key(f"s{i}"), value=serialize(event, ctx), partition=0)
    assert p.flush(30) == 0, "records left unsent"
    print(json.dumps({"produced": n, "subjects": sr.get_subjects()}))


def consume(bootstrap, registry, topic, n):
    sr = SchemaRegistryClient({"url": registry})
    deserialize = AvroDeserializer(sr)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "python-interop",
                  "enable.auto.commit": False})
    md = c.list_topics(topic, timeout=10)
    c.assign([TopicPartition(topic, p, 0) for p in md.topics[topic].partitions])
    out = []
    idle = 0
    while len(out) < n and idle < 60:
        m = c.poll(0.5)
        if m is None:
            idle += 1
            continue
        if m.error():
            raise RuntimeError(m.error())
        value = deserialize(m.value(), SerializationContext(topic, MessageField.VALUE))
        out.append({"key": (m.key() or b"").hex(), "value": value, "schema_id": int.from_bytes(m.value()[1:5], "big")})
    c.close()
    print(json.dumps(out))


def compat(registry, subject):
    sr = SchemaRegistryClient({"url": registry})
    v1 = Schema(TURNSTILE, "AVRO")
    fields = json.loads(TURNSTILE)
    with_default = dict(fields, fields=fields["fields"] + [{"name": "entries", "type": "long", "default": 0}])
    without_default = dict(fields, fields=fields["fields"] + [{"name": "entries", "type": "long"}])
    out = {}
    out["id"] = sr.register_schema(subject, v1)
    out["id_again"] = sr.register_schema(subject, v1)
    out["level"] = sr.get_compatibility()
    out["compatible_with_default"] = sr.test_compatibility(subject, Schema(json.dumps(with_default), "AVRO"))
    out["compatible_without_default"] = sr.test_compatibility(subject, Schema(json.dumps(without_default), "AVRO"))
    try:
        sr.register_schema(subject, Schema(json.dumps(without_default), "AVRO"))
        out["incompatible_refused"] = None
    except SchemaRegistryError as e:
        out["incompatible_refused"] = {"http_status": e.http_status_code, "error_code": e.error_code}
    out["evolved_id"] = sr.register_schema(subject, Schema(json.dumps(with_default), "AVRO"))
    latest = sr.get_latest_version(subject)
    out["latest"] = {"version": latest.version, "id": latest.schema_id}
    out["versions"] = sr.get_versions(subject)
    found = sr.lookup_schema(subject, v1)
    out["lookup_v1"] = {"version": found.version, "id": found.schema_id}
    sr.set_compatibility(subject, "NONE")
    out["subject_level"] = sr.get_compatibility(subject)
    out["after_none"] = sr.register_schema(subject, Schema(json.dumps(without_default), "AVRO"))
    try:
        sr.get_schema(999999)
        out["unknown_id"] = None
    except SchemaRegistryError as e:
        out["unknown_id"] = {"http_status": e.http_status_code, "error_code": e.error_code}
    print(json.dumps(out))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "produce":
        produce(args[0], args[1], args[2], int(args[3]))
    elif cmd == "consume":
        consume(args[0], args[1], args[2], int(args[3]))
    elif cmd == "compat":
        compat(args[0], args[1])
    else:
        sys.exit(f"unknown command {cmd}")
