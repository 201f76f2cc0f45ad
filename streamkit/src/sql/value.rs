//! SQL values and types: the dynamic rows SQL queries carry through the topology.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A SQL column type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SqlType {
    /// `BOOLEAN`.
    Boolean,
    /// `INT` / `INTEGER`: 32-bit signed.
    Int,
    /// `BIGINT`: 64-bit signed.
    BigInt,
    /// `DOUBLE`: 64-bit float.
    Double,
    /// `VARCHAR` / `STRING`.
    String,
    /// `ARRAY<T>`.
    Array(Box<SqlType>),
    /// `STRUCT<name T, …>`: named fields, read with `col->field`.
    Struct(Vec<(String, SqlType)>),
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Boolean => f.write_str("BOOLEAN"),
            SqlType::Int => f.write_str("INTEGER"),
            SqlType::BigInt => f.write_str("BIGINT"),
            SqlType::Double => f.write_str("DOUBLE"),
            SqlType::String => f.write_str("VARCHAR(STRING)"),
            SqlType::Array(t) => write!(f, "ARRAY<{t}>"),
            SqlType::Struct(fields) => {
                f.write_str("STRUCT<")?;
                for (i, (name, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "`{name}` {t}")?;
                }
                f.write_str(">")
            }
        }
    }
}

/// One SQL value. `Null` is SQL NULL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// NULL.
    Null,
    /// A BOOLEAN.
    Boolean(bool),
    /// An INT.
    Int(i32),
    /// A BIGINT.
    BigInt(i64),
    /// A DOUBLE.
    Double(f64),
    /// A VARCHAR.
    String(String),
    /// An ARRAY.
    Array(Vec<Value>),
    /// A STRUCT's fields by name; also several key columns together (`GROUP BY a, b`).
    Struct(Vec<(String, Value)>),
}

/// A row's columns in schema order.
pub type Row = Vec<Value>;

impl Value {
    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The JSON form (ksqlDB's JSON format).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Boolean(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::BigInt(i) => J::from(*i),
            Value::Double(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
            Value::String(s) => J::String(s.clone()),
            Value::Array(a) => J::Array(a.iter().map(Value::to_json).collect()),
            Value::Struct(fields) => J::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Reads a value of type `ty` from JSON, coercing numbers and strings as ksqlDB does.
    pub fn from_json(json: &serde_json::Value, ty: &SqlType) -> Result<Value, String> {
        use serde_json::Value as J;
        Ok(match (json, ty) {
            (J::Null, _) => Value::Null,
            (J::Bool(b), SqlType::Boolean) => Value::Boolean(*b),
            (J::String(s), SqlType::Boolean) => match s.to_ascii_lowercase().as_str() {
                "true" => Value::Boolean(true),
                "false" => Value::Boolean(false),
                _ => return Err(format!("cannot read {json} as BOOLEAN")),
            },
            (J::Number(n), SqlType::Int) => {
                let i = n.as_i64().ok_or_else(|| format!("{n} is not an INT"))?;
                Value::Int(i32::try_from(i).map_err(|_| format!("{n} does not fit an INT"))?)
            }
            (J::Number(n), SqlType::BigInt) => {
                Value::BigInt(n.as_i64().ok_or_else(|| format!("{n} is not a BIGINT"))?)
            }
            (J::Number(n), SqlType::Double) => {
                Value::Double(n.as_f64().ok_or_else(|| format!("{n} is not a DOUBLE"))?)
            }
            (J::String(s), SqlType::Int | SqlType::BigInt | SqlType::Double) => {
                Value::String(s.clone()).cast(ty)?
            }
            (J::String(s), SqlType::String) => Value::String(s.clone()),
            (J::Number(_) | J::Bool(_), SqlType::String) => Value::String(json.to_string()),
            (J::Array(items), SqlType::Array(inner)) => Value::Array(
                items
                    .iter()
                    .map(|i| Value::from_json(i, inner))
                    .collect::<Result<_, _>>()?,
            ),
            (J::Object(obj), SqlType::Struct(fields)) => Value::Struct(
                fields
                    .iter()
                    .map(|(name, t)| {
                        let v = obj
                            .get(name)
                            .or_else(|| {
                                obj.iter()
                                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                                    .map(|(_, v)| v)
                            })
                            .unwrap_or(&J::Null);
                        Ok((
                            name.clone(),
                            Value::from_json(v, t).map_err(|e| format!("field {name}: {e}"))?,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            ),
            _ => return Err(format!("cannot read {json} as {ty}")),
        })
    }

    /// `CAST(self AS ty)`.
    pub fn cast(&self, ty: &SqlType) -> Result<Value, String> {
        let bad = || format!("cannot cast {self} to {ty}");
        Ok(match (self, ty) {
            (Value::Null, _) => Value::Null,
            (Value::Boolean(b), SqlType::Boolean) => Value::Boolean(*b),
            (Value::Boolean(b), SqlType::String) => Value::String(b.to_string()),
            (Value::Int(i), SqlType::Int) => Value::Int(*i),
            (Value::Int(i), SqlType::BigInt) => Value::BigInt(i64::from(*i)),
            (Value::Int(i), SqlType::Double) => Value::Double(f64::from(*i)),
            (Value::BigInt(i), SqlType::Int) => Value::Int(i32::try_from(*i).map_err(|_| bad())?),
            (Value::BigInt(i), SqlType::BigInt) => Value::BigInt(*i),
            (Value::BigInt(i), SqlType::Double) => Value::Double(*i as f64),
            (Value::Double(d), SqlType::Int) => Value::Int(d.trunc() as i32),
            (Value::Double(d), SqlType::BigInt) => Value::BigInt(d.trunc() as i64),
            (Value::Double(d), SqlType::Double) => Value::Double(*d),
            (Value::Int(_) | Value::BigInt(_) | Value::Double(_), SqlType::String) => {
                Value::String(self.to_string())
            }
            (Value::String(s), SqlType::String) => Value::String(s.clone()),
            (Value::String(s), SqlType::Int) => Value::Int(s.trim().parse().map_err(|_| bad())?),
            (Value::String(s), SqlType::BigInt) => {
                Value::BigInt(s.trim().parse().map_err(|_| bad())?)
            }
            (Value::String(s), SqlType::Double) => {
                Value::Double(s.trim().parse().map_err(|_| bad())?)
            }
            (Value::String(s), SqlType::Boolean) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Value::Boolean(true),
                "false" => Value::Boolean(false),
                _ => return Err(bad()),
            },
            (Value::Array(a), SqlType::Array(inner)) => {
                Value::Array(a.iter().map(|v| v.cast(inner)).collect::<Result<_, _>>()?)
            }
            (Value::Struct(_), SqlType::Struct(fields)) => Value::Struct(
                fields
                    .iter()
                    .map(|(name, t)| Ok((name.clone(), self.field(name).cast(t)?)))
                    .collect::<Result<_, String>>()?,
            ),
            _ => return Err(bad()),
        })
    }

    /// `self->name`: a STRUCT's field (matched exactly, else ignoring case); NULL when the
    /// struct is NULL or has no such field.
    pub fn field(&self, name: &str) -> Value {
        match self {
            Value::Struct(fields) => fields
                .iter()
                .find(|(k, _)| k == name)
                .or_else(|| fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                .map_or(Value::Null, |(_, v)| v.clone()),
            _ => Value::Null,
        }
    }

    /// The value as a double, for arithmetic and comparisons across numeric types.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(f64::from(*i)),
            Value::BigInt(i) => Some(*i as f64),
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }

    /// SQL ordering: numbers compare across types, strings and booleans among themselves;
    /// `None` when either side is NULL or the types do not compare.
    pub fn compare(&self, other: &Value) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::BigInt(a), Value::BigInt(b)) => Some(a.cmp(b)),
            (Value::Int(a), Value::BigInt(b)) => Some(i64::from(*a).cmp(b)),
            (Value::BigInt(a), Value::Int(b)) => Some(a.cmp(&i64::from(*b))),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (Value::Boolean(a), Value::Boolean(b)) => Some(a.cmp(b)),
            (a, b) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::BigInt(i) => write!(f, "{i}"),
            Value::Double(d) => {
                if d.fract() == 0.0 && d.abs() < 1e15 {
                    write!(f, "{d:.1}")
                } else {
                    write!(f, "{d}")
                }
            }
            Value::String(s) => f.write_str(s),
            Value::Array(_) | Value::Struct(_) => write!(f, "{}", self.to_json()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_reads_coerce_and_reject() {
        let v = Value::from_json(&serde_json::json!("42"), &SqlType::Int).unwrap();
        assert_eq!(v, Value::Int(42));
        assert!(Value::from_json(&serde_json::json!(true), &SqlType::Int).is_err());
        assert!(Value::from_json(&serde_json::json!(3_000_000_000i64), &SqlType::Int).is_err());
        assert_eq!(
            Value::from_json(
                &serde_json::json!([1, 2]),
                &SqlType::Array(Box::new(SqlType::BigInt))
            )
            .unwrap(),
            Value::Array(vec![Value::BigInt(1), Value::BigInt(2)])
        );
    }

    #[test]
    fn casts_and_comparisons() {
        assert_eq!(
            Value::Double(2.7).cast(&SqlType::Int).unwrap(),
            Value::Int(2)
        );
        assert_eq!(
            Value::Int(3).cast(&SqlType::String).unwrap(),
            Value::String("3".into())
        );
        assert!(Value::String("x".into()).cast(&SqlType::Int).is_err());
        assert_eq!(
            Value::Int(2).compare(&Value::Double(2.5)),
            Some(std::cmp::Ordering::Less)
        );
        assert_eq!(Value::Null.compare(&Value::Int(1)), None);
    }
}
