//! Avro's JSON encoding of a datum, read into a [`Value`] of a given schema: what the Kafka
//! REST Proxy takes as the `key` and `value` of an Avro record.
//!
//! The encoding is the one the Avro specification defines (and Java's `JsonDecoder` reads):
//! a union's non-null branch is an object with the branch's type name as its only key
//! (`{"string": "a"}`, `{"org.example.Point": {...}}`, `null` for the null branch); `bytes` and
//! `fixed` are strings whose code points 0–255 are the bytes; an enum is its symbol; a logical
//! type is its underlying type's encoding. A record field left out takes its default.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{
    InnerDecimalSchema, Name, RecordField, ResolvedSchema, UnionSchema, UuidSchema,
};
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use serde_json::Value as Json;

use crate::error::SerdeError;

/// Reads `json`, in Avro's JSON encoding, as a datum of `schema`.
///
/// Fails with [`SerdeError::Invalid`] naming where (`.field[2]`) the datum departs from the
/// schema.
pub(crate) fn from_json(json: &Json, schema: &Schema) -> Result<Value, SerdeError> {
    let resolved = ResolvedSchema::new(schema)
        .map_err(|e| SerdeError::Invalid(format!("avro: schema does not resolve: {e}")))?;
    let reader = Reader {
        names: resolved.get_names(),
    };
    let mut path = String::new();
    let value = reader
        .read(json, schema, &mut path)
        .map_err(|m| SerdeError::Invalid(m.to_string()))?;
    // The writer checks too; this names the datum rather than a write error.
    if !value.validate(schema) {
        return Err(SerdeError::Invalid(
            "the datum does not match its schema".into(),
        ));
    }
    Ok(value)
}

/// Reads `json` as a datum of `schema` ([`from_json`]) and writes it in the Confluent wire
/// format with `schema_id`.
pub(crate) fn encode_json(
    json: &Json,
    schema: &Schema,
    schema_id: u32,
) -> Result<Vec<u8>, SerdeError> {
    let value = from_json(json, schema)?;
    let mut out = Vec::new();
    super::wire::write_header(schema_id, &mut out);
    GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_ref(&mut out, &value))
        .map_err(|e| SerdeError::Encode(format!("avro: {e}")))?;
    Ok(out)
}

struct Reader<'a, 's> {
    names: &'a HashMap<Name, &'s Schema>,
}

/// Where a datum departs from its schema.
struct Mismatch {
    path: String,
    message: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

type Read = Result<Value, Mismatch>;

fn mismatch(path: &str, message: impl Into<String>) -> Mismatch {
    Mismatch {
        path: path.to_string(),
        message: message.into(),
    }
}

/// A short rendering of a JSON value for messages.
fn shown(json: &Json) -> String {
    let s = json.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

impl<'s> Reader<'_, 's> {
    fn read(&self, json: &Json, schema: &Schema, path: &mut String) -> Read {
        let expected = |what: &str| mismatch(path, format!("expected {what}, got {}", shown(json)));
        match schema {
            Schema::Ref { name } => {
                let target = self
                    .names
                    .get(name)
                    .ok_or_else(|| mismatch(path, format!("unknown named type {name}")))?;
                self.read(json, target, path)
            }
            Schema::Null => match json {
                Json::Null => Ok(Value::Null),
                _ => Err(expected("null")),
            },
            Schema::Boolean => json
                .as_bool()
                .map(Value::Boolean)
                .ok_or_else(|| expected("a boolean")),
            Schema::Int => int(json).map(Value::Int).ok_or_else(|| expected("an int")),
            Schema::Long => json
                .as_i64()
                .map(Value::Long)
                .ok_or_else(|| expected("a long")),
            Schema::Float => float(json)
                .map(|f| Value::Float(f as f32))
                .ok_or_else(|| expected("a float")),
            Schema::Double => float(json)
                .map(Value::Double)
                .ok_or_else(|| expected("a double")),
            Schema::Bytes => bytes(json, path).map(Value::Bytes),
            Schema::String => json
                .as_str()
                .map(|s| Value::String(s.to_string()))
                .ok_or_else(|| expected("a string")),
            Schema::Fixed(f) => fixed(json, f.size, path).map(|b| Value::Fixed(f.size, b)),
            Schema::Enum(e) => {
                let symbol = json.as_str().ok_or_else(|| expected("an enum symbol"))?;
                let index = e.symbols.iter().position(|s| s == symbol).ok_or_else(|| {
                    mismatch(
                        path,
                        format!(
                            "{symbol:?} is not a symbol of enum {} ({})",
                            e.name.fullname(None),
                            e.symbols.join(", ")
                        ),
                    )
                })?;
                Ok(Value::Enum(index as u32, symbol.to_string()))
            }
            Schema::Array(a) => {
                let items = json.as_array().ok_or_else(|| expected("an array"))?;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    out.push(self.read(item, &a.items, path)?);
                    path.truncate(len);
                }
                Ok(Value::Array(out))
            }
            Schema::Map(m) => {
                let entries = json
                    .as_object()
                    .ok_or_else(|| expected("a map (JSON object)"))?;
                let mut out = HashMap::with_capacity(entries.len());
                for (k, v) in entries {
                    let len = path.len();
                    path.push_str(&format!("[{k:?}]"));
                    out.insert(k.clone(), self.read(v, &m.types, path)?);
                    path.truncate(len);
                }
                Ok(Value::Map(out))
            }
            Schema::Union(u) => self.read_union(json, u, path),
            Schema::Record(r) => {
                let object = json.as_object().ok_or_else(|| {
                    mismatch(
                        path,
                        format!(
                            "expected a {} record (JSON object), got {}",
                            r.name.fullname(None),
                            shown(json)
                        ),
                    )
                })?;
                let mut fields = Vec::with_capacity(r.fields.len());
                for field in &r.fields {
                    let len = path.len();
                    path.push('.');
                    path.push_str(&field.name);
                    let value = match object.get(&field.name) {
                        Some(v) => self.read(v, &field.schema, path)?,
                        None => self.default(field, path)?,
                    };
                    path.truncate(len);
                    fields.push((field.name.clone(), value));
                }
                Ok(Value::Record(fields))
            }
            // Logical types: read the underlying type, then let apache-avro convert it.
            Schema::Date | Schema::TimeMillis => self.logical(json, &Schema::Int, schema, path),
            Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => self.logical(json, &Schema::Long, schema, path),
            Schema::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => self.logical(json, &Schema::Bytes, schema, path),
                InnerDecimalSchema::Fixed(f) => {
                    self.logical(json, &Schema::Fixed(f.clone()), schema, path)
                }
            },
            Schema::BigDecimal => self.logical(json, &Schema::Bytes, schema, path),
            Schema::Uuid(UuidSchema::String) => self.logical(json, &Schema::String, schema, path),
            Schema::Uuid(UuidSchema::Bytes) => self.logical(json, &Schema::Bytes, schema, path),
            Schema::Uuid(UuidSchema::Fixed(f)) | Schema::Duration(f) => {
                self.logical(json, &Schema::Fixed(f.clone()), schema, path)
            }
        }
    }

    fn logical(
        &self,
        json: &Json,
        underlying: &Schema,
        schema: &Schema,
        path: &mut String,
    ) -> Read {
        let base = self.read(json, underlying, path)?;
        base.resolve(schema)
            .map_err(|e| mismatch(path, format!("not a valid {}: {e}", kind_name(schema))))
    }

    /// `null` for a null branch, else `{"<branch type name>": datum}`.
    fn read_union(&self, json: &Json, union: &UnionSchema, path: &mut String) -> Read {
        let variants = union.variants();
        if json.is_null() {
            return match variants.iter().position(|v| matches!(v, Schema::Null)) {
                Some(i) => Ok(Value::Union(i as u32, Box::new(Value::Null))),
                None => Err(mismatch(path, "null is not a branch of this union")),
            };
        }
        let branches = || {
            variants
                .iter()
                .map(branch_name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (tag, inner) = match json.as_object() {
            Some(o) if o.len() == 1 => o.iter().next().expect("one entry"),
            _ => {
                return Err(mismatch(
                    path,
                    format!(
                        "a union value is null or an object naming its branch, as {{\"{}\": …}} \
                         (branches: {}), got {}",
                        variants
                            .iter()
                            .map(branch_name)
                            .find(|n| n != "null")
                            .unwrap_or_default(),
                        branches(),
                        shown(json)
                    ),
                ));
            }
        };
        // The full name, as the specification says; a named type's short name is taken too
        // when no other branch has it.
        let index = variants
            .iter()
            .position(|v| branch_name(v) == *tag)
            .or_else(|| {
                let mut short = variants
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.name().is_some_and(|n| n.name() == tag.as_str()));
                match (short.next(), short.next()) {
                    (Some((i, _)), None) => Some(i),
                    _ => None,
                }
            })
            .ok_or_else(|| {
                mismatch(
                    path,
                    format!("{tag:?} is not a branch of this union ({})", branches()),
                )
            })?;
        let len = path.len();
        path.push_str(&format!("<{tag}>"));
        let value = self.read(inner, &variants[index], path)?;
        path.truncate(len);
        Ok(Value::Union(index as u32, Box::new(value)))
    }

    /// A missing field's default. Defaults are written in the JSON encoding too, except that a
    /// union's default is a datum of its first branch, without the branch name.
    fn default(&self, field: &RecordField, path: &mut String) -> Read {
        let Some(default) = &field.default else {
            return Err(mismatch(path, "missing field (it has no default)"));
        };
        let mut schema = &field.schema;
        if let Schema::Ref { name } = schema
            && let Some(target) = self.names.get(name)
        {
            schema = target;
        }
        match schema {
            Schema::Union(u) => {
                let first = u
                    .variants()
                    .first()
                    .ok_or_else(|| mismatch(path, "empty union"))?;
                let value = self.read(default, first, path)?;
                Ok(Value::Union(0, Box::new(value)))
            }
            other => self.read(default, other, path),
        }
    }
}

/// The name a union value is tagged with in the JSON encoding.
fn branch_name(schema: &Schema) -> String {
    match schema {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int | Schema::Date | Schema::TimeMillis => "int".into(),
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes
        | Schema::BigDecimal
        | Schema::Uuid(UuidSchema::Bytes)
        | Schema::Decimal(apache_avro::schema::DecimalSchema {
            inner: InnerDecimalSchema::Bytes,
            ..
        }) => "bytes".into(),
        Schema::String | Schema::Uuid(UuidSchema::String) => "string".into(),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        // Unions do not nest.
        Schema::Union(_) => "union".into(),
        named => named
            .name()
            .map(|n| n.fullname(None))
            .unwrap_or_else(|| "?".into()),
    }
}

fn kind_name(schema: &Schema) -> String {
    format!("{:?}", apache_avro::schema::SchemaKind::from(schema)).to_lowercase()
}

fn int(json: &Json) -> Option<i32> {
    json.as_i64().and_then(|n| i32::try_from(n).ok())
}

/// A JSON number, or `"NaN"`, `"Infinity"`, `"-Infinity"` (Avro's JSON encoder writes those).
fn float(json: &Json) -> Option<f64> {
    match json {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// A string whose code points are bytes (0–255), as Avro's JSON encoding writes `bytes`.
fn bytes(json: &Json, path: &str) -> Result<Vec<u8>, Mismatch> {
    let s = json.as_str().ok_or_else(|| {
        mismatch(
            path,
            format!(
                "expected bytes (a string of code points 0-255), got {}",
                shown(json)
            ),
        )
    })?;
    s.chars()
        .map(|c| {
            u8::try_from(u32::from(c)).map_err(|_| {
                mismatch(
                    path,
                    format!(
                        "{c:?} (U+{:04X}) is not a byte: bytes are code points 0-255",
                        u32::from(c)
                    ),
                )
            })
        })
        .collect()
}

fn fixed(json: &Json, size: usize, path: &str) -> Result<Vec<u8>, Mismatch> {
    let b = bytes(json, path)?;
    if b.len() != size {
        return Err(mismatch(
            path,
            format!("expected {size} bytes of fixed, got {}", b.len()),
        ));
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(schema: &str, json: Json) -> Result<Value, String> {
        let schema = Schema::parse_str(schema).unwrap();
        from_json(&json, &schema).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_the_cta_weather_records() {
        let key = r#"{"namespace":"com.udacity","type":"record","name":"weather.key",
            "fields":[{"name":"timestamp","type":"long"}]}"#;
        let value = r#"{"namespace":"com.udacity","type":"record","name":"weather.value",
            "fields":[{"name":"temperature","type":"float"},
                      {"name":"status","type":{"type":"enum","name":"status",
                       "symbols":["sunny","partly_cloudy","cloudy","windy","precipitation"]}}]}"#;
        assert_eq!(
            read(key, json!({"timestamp": 1_567_000_000_000_i64})).unwrap(),
            Value::Record(vec![("timestamp".into(), Value::Long(1_567_000_000_000))])
        );
        assert_eq!(
            read(value, json!({"temperature": 71.5, "status": "windy"})).unwrap(),
            Value::Record(vec![
                ("temperature".into(), Value::Float(71.5)),
                ("status".into(), Value::Enum(3, "windy".into())),
            ])
        );
        // An integer is a float too.
        assert!(read(value, json!({"temperature": 70, "status": "sunny"})).is_ok());
        let err = read(value, json!({"temperature": 70, "status": "snowy"})).unwrap_err();
        assert!(
            err.contains(".status: \"snowy\" is not a symbol of enum"),
            "{err}"
        );
        let err = read(value, json!({"status": "sunny"})).unwrap_err();
        assert!(err.contains(".temperature: missing field"), "{err}");
        let err = read(key, json!({"timestamp": "noon"})).unwrap_err();
        assert!(
            err.contains(".timestamp: expected a long, got \"noon\""),
            "{err}"
        );
    }

    #[test]
    fn unions_name_their_branch() {
        let schema = r#"{"type":"record","name":"R","namespace":"n","fields":[
            {"name":"a","type":["null","string"],"default":null},
            {"name":"b","type":["null",{"type":"record","name":"P","fields":[{"name":"x","type":"int"}]}]},
            {"name":"c","type":["int","string"],"default":7}]}"#;
        let v = read(
            schema,
            json!({"a": {"string": "s"}, "b": {"n.P": {"x": 1}}}),
        )
        .unwrap();
        assert_eq!(
            v,
            Value::Record(vec![
                (
                    "a".into(),
                    Value::Union(1, Box::new(Value::String("s".into())))
                ),
                (
                    "b".into(),
                    Value::Union(
                        1,
                        Box::new(Value::Record(vec![("x".into(), Value::Int(1))]))
                    )
                ),
                ("c".into(), Value::Union(0, Box::new(Value::Int(7)))),
            ])
        );
        // The short name of a named branch, and null.
        let v = read(
            schema,
            json!({"a": null, "b": {"P": {"x": 2}}, "c": {"string": "t"}}),
        )
        .unwrap();
        let Value::Record(fields) = v else { panic!() };
        assert_eq!(fields[0].1, Value::Union(0, Box::new(Value::Null)));
        assert_eq!(
            fields[2].1,
            Value::Union(1, Box::new(Value::String("t".into())))
        );
        // A bare value is not a union value.
        let err = read(schema, json!({"a": "s", "b": null})).unwrap_err();
        assert!(
            err.contains(
                ".a: a union value is null or an object naming its branch, as {\"string\": …}"
            ),
            "{err}"
        );
        let err = read(schema, json!({"b": {"long": 1}})).unwrap_err();
        assert!(
            err.contains(".b: \"long\" is not a branch of this union (null, n.P)"),
            "{err}"
        );
    }

    #[test]
    fn arrays_maps_bytes_fixed_and_logical_types() {
        let schema = r#"{"type":"record","name":"R","fields":[
            {"name":"xs","type":{"type":"array","items":"double"}},
            {"name":"m","type":{"type":"map","values":"boolean"}},
            {"name":"b","type":"bytes"},
            {"name":"f","type":{"type":"fixed","name":"F","size":2}},
            {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"d","type":{"type":"int","logicalType":"date"}},
            {"name":"opt_ts","type":["null",{"type":"long","logicalType":"timestamp-millis"}]}]}"#;
        let v = read(
            schema,
            json!({"xs": [1.5, 2], "m": {"k": true}, "b": "\u{00ff}A", "f": "ab",
                   "ts": 1000, "d": 3, "opt_ts": {"long": 5}}),
        )
        .unwrap();
        let Value::Record(fields) = v else { panic!() };
        assert_eq!(
            fields[0].1,
            Value::Array(vec![Value::Double(1.5), Value::Double(2.0)])
        );
        assert_eq!(
            fields[1].1,
            Value::Map(HashMap::from([("k".to_string(), Value::Boolean(true))]))
        );
        assert_eq!(fields[2].1, Value::Bytes(vec![0xff, b'A']));
        assert_eq!(fields[3].1, Value::Fixed(2, b"ab".to_vec()));
        assert_eq!(fields[4].1, Value::TimestampMillis(1000));
        assert_eq!(fields[5].1, Value::Date(3));
        assert_eq!(
            fields[6].1,
            Value::Union(1, Box::new(Value::TimestampMillis(5)))
        );
        let err = read(
            schema,
            json!({"xs": [1, "x"], "m": {}, "b": "", "f": "ab", "ts": 1, "d": 1, "opt_ts": null}),
        )
        .unwrap_err();
        assert!(err.contains(".xs[1]: expected a double"), "{err}");
        let err = read(
            schema,
            json!({"xs": [], "m": {}, "b": "€", "f": "ab", "ts": 1, "d": 1, "opt_ts": null}),
        )
        .unwrap_err();
        assert!(err.contains(".b: '€' (U+20AC) is not a byte"), "{err}");
        let err = read(
            schema,
            json!({"xs": [], "m": {}, "b": "", "f": "abc", "ts": 1, "d": 1, "opt_ts": null}),
        )
        .unwrap_err();
        assert!(
            err.contains(".f: expected 2 bytes of fixed, got 3"),
            "{err}"
        );
    }

    #[test]
    fn primitives_and_recursive_types() {
        assert_eq!(
            read(r#""string""#, json!("x")).unwrap(),
            Value::String("x".into())
        );
        assert_eq!(read(r#""int""#, json!(7)).unwrap(), Value::Int(7));
        assert!(read(r#""int""#, json!(1_i64 << 40)).is_err());
        assert!(read(r#""long""#, json!(1.5)).is_err());
        assert_eq!(read(r#""null""#, json!(null)).unwrap(), Value::Null);
        assert_eq!(
            read(r#""double""#, json!("NaN")).map(|v| matches!(v, Value::Double(d) if d.is_nan())),
            Ok(true)
        );
        let list = r#"{"type":"record","name":"Node","fields":[
            {"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}"#;
        let v = read(
            list,
            json!({"v": 1, "next": {"Node": {"v": 2, "next": null}}}),
        )
        .unwrap();
        assert_eq!(
            v,
            Value::Record(vec![
                ("v".into(), Value::Int(1)),
                (
                    "next".into(),
                    Value::Union(
                        1,
                        Box::new(Value::Record(vec![
                            ("v".into(), Value::Int(2)),
                            ("next".into(), Value::Union(0, Box::new(Value::Null))),
                        ]))
                    )
                ),
            ])
        );
    }
}
