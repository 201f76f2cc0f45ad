//! [`SqlValue`]: a column value as the sink binds it into statements.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A value bound to a column. Integers and floats are converted to the column's type
/// (`smallint`, `integer`, `bigint`, `real`, `double precision`) when they fit.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SqlValue {
    /// SQL `NULL`.
    Null,
    /// `boolean`.
    Bool(bool),
    /// Any integer column.
    Int(i64),
    /// `double precision` or `real`.
    Float(f64),
    /// `text`, `varchar`, `char`.
    Text(String),
    /// `bytea`.
    Bytes(Vec<u8>),
    /// `json` or `jsonb`.
    Json(serde_json::Value),
}

impl PartialEq for SqlValue {
    fn eq(&self, other: &Self) -> bool {
        use SqlValue::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Text(a), Text(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Json(a), Json(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for SqlValue {}

impl Hash for SqlValue {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            SqlValue::Null => {}
            SqlValue::Bool(b) => b.hash(state),
            SqlValue::Int(i) => i.hash(state),
            SqlValue::Float(f) => f.to_bits().hash(state),
            SqlValue::Text(t) => t.hash(state),
            SqlValue::Bytes(b) => b.hash(state),
            SqlValue::Json(j) => j.to_string().hash(state),
        }
    }
}

pub(super) type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for SqlValue {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, BoxError> {
        let mismatch =
            || -> BoxError { format!("cannot write {self:?} into a column of type {ty}").into() };
        match self {
            SqlValue::Null => Ok(IsNull::Yes),
            SqlValue::Bool(b) => b.to_sql(ty, out),
            SqlValue::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                _ => Err(mismatch()),
            },
            SqlValue::Float(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => Err(mismatch()),
            },
            SqlValue::Text(t) => t.as_str().to_sql(ty, out),
            SqlValue::Bytes(b) => b.as_slice().to_sql(ty, out),
            SqlValue::Json(j) => j.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, where the variant is known.
        true
    }

    to_sql_checked!();
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_string())
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}
