//! Key and value formats (`KEY_FORMAT`, `VALUE_FORMAT`): serdes for SQL keys and rows.

use std::sync::Arc;

use super::value::{Row, SqlType, Value};
use crate::serde::avro::{AvroGeneric, RegistryClient};
use crate::serde::{Serde, SerdeError};

/// A serialization format named in `WITH (VALUE_FORMAT=…, KEY_FORMAT=…)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON object per row (one field per column); a JSON value for a key.
    Json,
    /// One primitive column in Kafka's own encodings: big-endian integers and doubles, UTF-8.
    Kafka,
    /// Avro in the Confluent wire format, through a schema registry: a record per row (one
    /// nullable field per column), the bare column for a one-column key.
    Avro,
}

impl Format {
    /// The format's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Kafka => "KAFKA",
            Format::Avro => "AVRO",
        }
    }
}

/// A column: name, type, and whether it belongs to the key.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The column's name (upper-cased unless quoted in SQL, as ksqlDB does).
    pub name: String,
    /// Its type.
    pub ty: SqlType,
}

fn kafka_encode(value: &Value, out: &mut Vec<u8>) -> Result<(), SerdeError> {
    match value {
        Value::Int(i) => out.extend_from_slice(&i.to_be_bytes()),
        Value::BigInt(i) => out.extend_from_slice(&i.to_be_bytes()),
        Value::Double(d) => out.extend_from_slice(&d.to_be_bytes()),
        Value::String(s) => out.extend_from_slice(s.as_bytes()),
        Value::Boolean(b) => out.push(u8::from(*b)),
        other => {
            return Err(SerdeError::Encode(format!(
                "the KAFKA format cannot hold {other}"
            )));
        }
    }
    Ok(())
}

fn kafka_decode(ty: &SqlType, data: &[u8]) -> Result<Value, SerdeError> {
    let size = |n: usize| {
        if data.len() == n {
            Ok(())
        } else {
            Err(SerdeError::Invalid(format!(
                "KAFKA {ty} needs {n} bytes, got {}",
                data.len()
            )))
        }
    };
    Ok(match ty {
        SqlType::Int => {
            size(4)?;
            Value::Int(i32::from_be_bytes(data.try_into().expect("4 bytes")))
        }
        SqlType::BigInt => {
            size(8)?;
            Value::BigInt(i64::from_be_bytes(data.try_into().expect("8 bytes")))
        }
        SqlType::Double => {
            size(8)?;
            Value::Double(f64::from_be_bytes(data.try_into().expect("8 bytes")))
        }
        SqlType::String => Value::String(
            String::from_utf8(data.to_vec())
                .map_err(|e| SerdeError::Invalid(format!("KAFKA VARCHAR: {e}")))?,
        ),
        SqlType::Boolean => {
            size(1)?;
            Value::Boolean(data[0] != 0)
        }
        other => {
            return Err(SerdeError::Invalid(format!(
                "the KAFKA format cannot hold {other}"
            )));
        }
    })
}

/// The key of a SQL stream or table: NULL when it has no key column, the column's value for
/// one key column, a [`Value::Struct`] for several.
#[derive(Clone)]
pub struct KeySerde {
    format: Format,
    columns: Arc<Vec<Column>>,
    avro: Option<Arc<AvroGeneric>>,
    message_key: bool,
}

/// The name of the implicit key column of a table declared with the legacy `KEY='col'`
/// property: the message key as a string, as KSQL 5 had it.
pub const ROWKEY: &str = "ROWKEY";

impl KeySerde {
    /// A key serde for `columns` (possibly none) in `format`.
    pub fn new(format: Format, columns: Vec<Column>) -> Self {
        KeySerde {
            format,
            columns: Arc::new(columns),
            avro: None,
            message_key: false,
        }
    }

    /// The key of a table declared with the legacy `KEY='col'` property: the message key's
    /// bytes as one `ROWKEY` string, whatever format wrote them. UTF-8 stays as it is; any
    /// other key (an Avro or binary key) reads as its bytes with the non-printable ones
    /// escaped (`\x00`), so distinct keys stay distinct.
    pub fn message_key() -> Self {
        KeySerde {
            message_key: true,
            ..KeySerde::new(Format::Kafka, vec![rowkey_column()])
        }
    }

    /// The schema registry the `AVRO` format reads and writes through (others ignore it).
    pub fn registry(mut self, registry: Option<&RegistryClient>) -> Self {
        self.avro = avro_codec(self.format, registry, &self.columns, true);
        self
    }

    fn read_json(&self, json: &serde_json::Value) -> Result<Value, SerdeError> {
        let bad = |e: String| SerdeError::Invalid(format!("key: {e}"));
        match self.columns.as_slice() {
            [] => Ok(Value::Null),
            [c] => Value::from_json(json, &c.ty).map_err(bad),
            cols => {
                let obj = json
                    .as_object()
                    .ok_or_else(|| bad(format!("expected an object, got {json}")))?;
                let fields = cols
                    .iter()
                    .map(|c| {
                        let v = field(obj, &c.name).unwrap_or(&serde_json::Value::Null);
                        Ok((c.name.clone(), Value::from_json(v, &c.ty).map_err(bad)?))
                    })
                    .collect::<Result<_, SerdeError>>()?;
                Ok(Value::Struct(fields))
            }
        }
    }
}

impl Serde<Value> for KeySerde {
    fn serialize(&self, topic: &str, value: &Value, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        match self.format {
            Format::Kafka => kafka_encode(value, out),
            Format::Json => serde_json::to_writer(out, &value.to_json())
                .map_err(|e| SerdeError::Encode(e.to_string())),
            Format::Avro => {
                let avro = avro_value(value, self.columns.first().map(|c| &c.ty))?;
                codec(&self.avro)?.serialize(topic, &avro, out)
            }
        }
    }

    fn deserialize(&self, topic: &str, data: &[u8]) -> Result<Value, SerdeError> {
        if self.message_key {
            return Ok(Value::String(match std::str::from_utf8(data) {
                Ok(s) => s.to_string(),
                Err(_) => data.escape_ascii().to_string(),
            }));
        }
        match (self.format, self.columns.as_slice()) {
            (_, []) => Ok(Value::Null),
            (Format::Avro, _) => {
                let json = avro_json(codec(&self.avro)?.deserialize(topic, data)?)?;
                self.read_json(&json)
            }
            (Format::Kafka, [c]) => kafka_decode(&c.ty, data),
            (Format::Kafka, _) => Err(SerdeError::Invalid(
                "the KAFKA key format holds one column; use KEY_FORMAT='JSON'".into(),
            )),
            (Format::Json, _) => {
                let json: serde_json::Value = serde_json::from_slice(data)
                    .map_err(|e| SerdeError::Invalid(format!("key json: {e}")))?;
                self.read_json(&json)
            }
        }
    }

    fn is_null(&self, value: &Value) -> bool {
        value.is_null()
    }

    fn deserialize_null(&self, _topic: &str) -> Result<Value, SerdeError> {
        Ok(Value::Null)
    }

    fn to_json(&self, value: &Value) -> Result<serde_json::Value, SerdeError> {
        Ok(value.to_json())
    }

    fn parse_json(&self, json: &serde_json::Value) -> Result<Value, SerdeError> {
        self.read_json(json)
    }
}

fn field<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a serde_json::Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// The `ROWKEY VARCHAR` key column of a table declared with `KEY='col'`.
pub fn rowkey_column() -> Column {
    Column {
        name: ROWKEY.to_string(),
        ty: SqlType::String,
    }
}

/// The value columns of a SQL stream or table as a JSON object, or a single KAFKA column.
#[derive(Clone)]
pub struct RowSerde {
    format: Format,
    columns: Arc<Vec<Column>>,
    avro: Option<Arc<AvroGeneric>>,
}

impl RowSerde {
    /// A serde for rows of `columns` in `format`.
    pub fn new(format: Format, columns: Vec<Column>) -> Self {
        RowSerde {
            format,
            columns: Arc::new(columns),
            avro: None,
        }
    }

    /// The schema registry the `AVRO` format reads and writes through (others ignore it).
    pub fn registry(mut self, registry: Option<&RegistryClient>) -> Self {
        self.avro = avro_codec(self.format, registry, &self.columns, false);
        self
    }

    fn read_json(&self, json: &serde_json::Value) -> Result<Row, SerdeError> {
        let obj = json
            .as_object()
            .ok_or_else(|| SerdeError::Invalid(format!("expected a JSON object, got {json}")))?;
        self.columns
            .iter()
            .map(|c| {
                let v = field(obj, &c.name).unwrap_or(&serde_json::Value::Null);
                Value::from_json(v, &c.ty)
                    .map_err(|e| SerdeError::Invalid(format!("column {}: {e}", c.name)))
            })
            .collect()
    }

    fn to_json_value(&self, row: &Row) -> serde_json::Value {
        serde_json::Value::Object(
            self.columns
                .iter()
                .zip(row)
                .map(|(c, v)| (c.name.clone(), v.to_json()))
                .collect(),
        )
    }
}

impl Serde<Row> for RowSerde {
    fn serialize(&self, topic: &str, row: &Row, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        match self.format {
            Format::Avro => {
                let fields = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| Ok((c.name.clone(), nullable(avro_value(v, Some(&c.ty))?))))
                    .collect::<Result<_, SerdeError>>()?;
                codec(&self.avro)?.serialize(topic, &AvroValue::Record(fields), out)
            }
            Format::Json => {
                // Written by hand to keep the columns in schema order.
                out.push(b'{');
                for (i, (c, v)) in self.columns.iter().zip(row).enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut *out, &c.name)
                        .and_then(|()| {
                            out.push(b':');
                            serde_json::to_writer(&mut *out, &v.to_json())
                        })
                        .map_err(|e| SerdeError::Encode(e.to_string()))?;
                }
                out.push(b'}');
                Ok(())
            }
            Format::Kafka => match row.as_slice() {
                [v] => kafka_encode(v, out),
                _ => Err(SerdeError::Encode(
                    "the KAFKA value format holds one column".into(),
                )),
            },
        }
    }

    fn deserialize(&self, topic: &str, data: &[u8]) -> Result<Row, SerdeError> {
        match (self.format, self.columns.as_slice()) {
            (Format::Avro, _) => {
                let json = avro_json(codec(&self.avro)?.deserialize(topic, data)?)?;
                self.read_json(&json)
            }
            (Format::Json, _) => {
                let json: serde_json::Value = serde_json::from_slice(data)
                    .map_err(|e| SerdeError::Invalid(format!("json: {e}")))?;
                self.read_json(&json)
            }
            (Format::Kafka, [c]) => Ok(vec![kafka_decode(&c.ty, data)?]),
            (Format::Kafka, _) => Err(SerdeError::Invalid(
                "the KAFKA value format holds one column".into(),
            )),
        }
    }

    fn to_json(&self, row: &Row) -> Result<serde_json::Value, SerdeError> {
        Ok(self.to_json_value(row))
    }

    fn parse_json(&self, json: &serde_json::Value) -> Result<Row, SerdeError> {
        self.read_json(json)
    }
}

type AvroValue = apache_avro::types::Value;

/// The Avro serde for `columns`, when `format` is `AVRO` and a registry is configured. Rows are
/// written with the schema ksqlDB derives (a `KsqlDataSourceSchema` record of nullable
/// fields); a one-column key as the bare column.
fn avro_codec(
    format: Format,
    registry: Option<&RegistryClient>,
    columns: &[Column],
    is_key: bool,
) -> Option<Arc<AvroGeneric>> {
    let registry = registry.filter(|_| format == Format::Avro)?;
    let schema = match (is_key, columns) {
        (true, [c]) => avro_type(&c.ty, &format!("KsqlDataSourceSchema_{}", c.name)),
        _ => serde_json::json!({
            "type": "record",
            "name": "KsqlDataSourceSchema",
            "namespace": "io.confluent.ksql.avro_schemas",
            "fields": columns.iter().map(|c| serde_json::json!({
                "name": c.name,
                "type": ["null", avro_type(&c.ty, &format!("KsqlDataSourceSchema_{}", c.name))],
                "default": null,
            })).collect::<Vec<_>>(),
        }),
    };
    let schema = apache_avro::Schema::parse(&schema).ok()?;
    let serde = AvroGeneric::new(registry, schema);
    Some(Arc::new(if is_key { serde.key() } else { serde }))
}

fn codec(avro: &Option<Arc<AvroGeneric>>) -> Result<&AvroGeneric, SerdeError> {
    avro.as_deref().ok_or_else(|| {
        SerdeError::Registry(
            "the AVRO format needs a schema registry (streamkit sql --schema-registry URL)".into(),
        )
    })
}

/// The Avro type of a column; a STRUCT becomes a record named, as ksqlDB names it, after the
/// path to it (`KsqlDataSourceSchema_ADDRESS`), which keeps names unique in one schema.
fn avro_type(ty: &SqlType, path: &str) -> serde_json::Value {
    use serde_json::json;
    match ty {
        SqlType::Boolean => json!("boolean"),
        SqlType::Int => json!("int"),
        SqlType::BigInt => json!("long"),
        SqlType::Double => json!("double"),
        SqlType::String => json!("string"),
        SqlType::Array(t) => json!({"type": "array", "items": ["null", avro_type(t, path)]}),
        SqlType::Struct(fields) => json!({
            "type": "record",
            "name": path,
            "fields": fields.iter().map(|(name, t)| json!({
                "name": name,
                "type": ["null", avro_type(t, &format!("{path}_{name}"))],
                "default": null,
            })).collect::<Vec<_>>(),
        }),
    }
}

/// The value columns of `topic` from the latest schema of its `<topic>-value` subject: one
/// per record field, upper-cased as ksqlDB does.
pub(crate) fn avro_columns(
    registry: &RegistryClient,
    topic: &str,
) -> Result<Vec<Column>, SerdeError> {
    let (_, schema) = registry.latest(&format!("{topic}-value"))?;
    let apache_avro::Schema::Record(record) = &*schema else {
        return Err(SerdeError::Invalid(format!(
            "the schema of {topic}-value is not a record"
        )));
    };
    record
        .fields
        .iter()
        .map(|f| {
            Ok(Column {
                name: f.name.to_uppercase(),
                ty: sql_type(&f.schema).ok_or_else(|| {
                    SerdeError::Invalid(format!(
                        "field {} of {topic}-value has a type SQL cannot hold yet",
                        f.name
                    ))
                })?,
            })
        })
        .collect()
}

fn sql_type(schema: &apache_avro::Schema) -> Option<SqlType> {
    use apache_avro::Schema as S;
    Some(match schema {
        S::Boolean => SqlType::Boolean,
        S::Int => SqlType::Int,
        S::Long => SqlType::BigInt,
        S::Float | S::Double => SqlType::Double,
        S::String | S::Enum(_) => SqlType::String,
        S::Array(a) => SqlType::Array(Box::new(sql_type(&a.items)?)),
        S::Record(r) => SqlType::Struct(
            r.fields
                .iter()
                .map(|f| Some((f.name.to_uppercase(), sql_type(&f.schema)?)))
                .collect::<Option<_>>()?,
        ),
        S::Union(u) => {
            let mut branches = u.variants().iter().filter(|v| !matches!(v, S::Null));
            let only = branches.next()?;
            if branches.next().is_some() {
                return None;
            }
            sql_type(only)?
        }
        _ => return None,
    })
}

/// A field of a `["null", T]` union.
fn nullable(v: AvroValue) -> AvroValue {
    match v {
        AvroValue::Null => AvroValue::Union(0, Box::new(AvroValue::Null)),
        v => AvroValue::Union(1, Box::new(v)),
    }
}

fn avro_value(v: &Value, ty: Option<&SqlType>) -> Result<AvroValue, SerdeError> {
    Ok(match (v, ty) {
        (Value::Null, _) => AvroValue::Null,
        (Value::Boolean(b), _) => AvroValue::Boolean(*b),
        (Value::Int(i), Some(SqlType::BigInt)) => AvroValue::Long(i64::from(*i)),
        (Value::Int(i), _) => AvroValue::Int(*i),
        (Value::BigInt(i), _) => AvroValue::Long(*i),
        (Value::Double(d), _) => AvroValue::Double(*d),
        (Value::String(s), _) => AvroValue::String(s.clone()),
        (Value::Array(items), t) => {
            let inner = match t {
                Some(SqlType::Array(t)) => Some(&**t),
                _ => None,
            };
            AvroValue::Array(
                items
                    .iter()
                    .map(|x| avro_value(x, inner).map(nullable))
                    .collect::<Result<_, _>>()?,
            )
        }
        (Value::Struct(_), Some(SqlType::Struct(fields))) => AvroValue::Record(
            fields
                .iter()
                .map(|(name, t)| Ok((name.clone(), nullable(avro_value(&v.field(name), Some(t))?))))
                .collect::<Result<_, SerdeError>>()?,
        ),
        (Value::Struct(_), _) => {
            return Err(SerdeError::Encode(format!(
                "cannot write {v} as Avro without its STRUCT type"
            )));
        }
    })
}

/// An Avro value in its JSON form (unions unwrapped), which the JSON readers map to columns
/// by name.
fn avro_json(v: AvroValue) -> Result<serde_json::Value, SerdeError> {
    serde_json::Value::try_from(v).map_err(|e| SerdeError::Invalid(format!("avro: {e}")))
}

/// Aggregation state: a list of values in a self-describing JSON form (internal topics and
/// stores only).
#[derive(Clone, Copy)]
pub struct StateSerde;

impl Serde<Row> for StateSerde {
    fn serialize(&self, _topic: &str, row: &Row, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        serde_json::to_writer(out, row).map_err(|e| SerdeError::Encode(e.to_string()))
    }

    fn deserialize(&self, _topic: &str, data: &[u8]) -> Result<Row, SerdeError> {
        serde_json::from_slice(data).map_err(|e| SerdeError::Invalid(format!("state: {e}")))
    }

    fn to_json(&self, row: &Row) -> Result<serde_json::Value, SerdeError> {
        Ok(serde_json::Value::Array(
            row.iter().map(Value::to_json).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: SqlType) -> Column {
        Column {
            name: name.into(),
            ty,
        }
    }

    #[test]
    fn a_message_key_reads_as_text_or_as_escaped_bytes_and_distinct_keys_stay_distinct() {
        let s = KeySerde::message_key();
        let read = |b: &[u8]| s.deserialize("t", b).unwrap();
        assert_eq!(
            read(br#"{"timestamp":1}"#),
            Value::String(r#"{"timestamp":1}"#.into())
        );
        assert_eq!(read("Zürich".as_bytes()), Value::String("Zürich".into()));
        // Confluent-framed Avro longs: not UTF-8.
        let a = read(&[0, 0, 0, 0, 1, 0x80, 0xa0, 0xbe, 0xe8, 0x9d, 0x5d]);
        let b = read(&[0, 0, 0, 0, 1, 0x80, 0xa0, 0xbe, 0xe8, 0x9d, 0x5e]);
        assert_eq!(
            a,
            Value::String(r"\x00\x00\x00\x00\x01\x80\xa0\xbe\xe8\x9d]".into())
        );
        assert_ne!(a, b);
        let mut out = Vec::new();
        s.serialize("t", &Value::String("k1".into()), &mut out)
            .unwrap();
        assert_eq!(out, b"k1");
    }

    #[test]
    fn json_rows_match_names_case_insensitively() {
        let s = RowSerde::new(
            Format::Json,
            vec![
                col("STATION_ID", SqlType::Int),
                col("LINE", SqlType::String),
            ],
        );
        let row = s
            .deserialize("t", br#"{"station_id": 7, "extra": 1}"#)
            .unwrap();
        assert_eq!(row, vec![Value::Int(7), Value::Null]);
        let mut out = Vec::new();
        s.serialize("t", &row, &mut out).unwrap();
        assert_eq!(out, br#"{"STATION_ID":7,"LINE":null}"#);
        assert!(s.deserialize("t", b"[1]").is_err());
    }

    #[test]
    fn kafka_keys_are_big_endian() {
        let s = KeySerde::new(Format::Kafka, vec![col("ID", SqlType::Int)]);
        let mut out = Vec::new();
        s.serialize("t", &Value::Int(258), &mut out).unwrap();
        assert_eq!(out, [0, 0, 1, 2]);
        assert_eq!(s.deserialize("t", &out).unwrap(), Value::Int(258));
        assert!(s.deserialize("t", &[1, 2]).is_err());
    }
}
