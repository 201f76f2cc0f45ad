//! The catalog (ksqlDB's metastore): the declared streams and tables, the running queries,
//! and how a `CREATE STREAM|TABLE` declares a source over a topic.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A declared stream or table.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// Its name.
    pub(crate) name: String,
    /// Stream or table.
    pub(crate) kind: Kind,
    /// The Kafka topic.
    pub(crate) topic: String,
    /// Key columns.
    pub(crate) key: Vec<Column>,
    /// Value columns.
    pub(crate) value: Vec<Column>,
    /// `KEY_FORMAT`.
    pub(crate) key_format: Format,
    /// `VALUE_FORMAT`.
    pub(crate) value_format: Format,
    /// The legacy `KEY='col'` property on a stream: the key column also sits in the value,
    /// at this index.
    pub(crate) key_in_value: Option<usize>,
    /// The legacy `KEY='col'` property on a table, naming `col`: as in KSQL 5 the property is
    /// a hint only, the table is keyed by the message key (the string column `ROWKEY`) and
    /// `col` stays a value column.
    pub(crate) key_hint: Option<String>,
    /// `TIMESTAMP='col'`: index of the value column holding the event time (ms).
    pub(crate) timestamp: Option<usize>,
    /// How the key is windowed, for windowed tables.
    pub(crate) window: Option<WindowKind>,
    /// The statement that declared it.
    pub(crate) statement: String,
    /// The query writing it, for `CREATE … AS SELECT`.
    pub(crate) writer: Option<String>,
    /// The store holding it, for pull queries.
    pub(crate) store: Option<String>,
    /// The schema registry its `AVRO` key or value goes through.
    pub(crate) registry: Option<crate::serde::avro::RegistryClient>,
}

impl SourceInfo {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stream or table.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The Kafka topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Key columns.
    pub fn key(&self) -> &[Column] {
        &self.key
    }

    /// Value columns.
    pub fn value(&self) -> &[Column] {
        &self.value
    }

    /// `KEY_FORMAT`.
    pub fn key_format(&self) -> Format {
        self.key_format
    }

    /// `VALUE_FORMAT`.
    pub fn value_format(&self) -> Format {
        self.value_format
    }

    /// The legacy `KEY='col'` property on a stream: the key column also sits in the value,
    /// at this index.
    pub fn key_in_value(&self) -> Option<usize> {
        self.key_in_value
    }

    /// The legacy `KEY='col'` property on a table, naming `col`: as in KSQL 5 the property is
    /// a hint only, the table is keyed by the message key (the string column `ROWKEY`) and
    /// `col` stays a value column.
    pub fn key_hint(&self) -> Option<&str> {
        self.key_hint.as_deref()
    }

    /// `TIMESTAMP='col'`: index of the value column holding the event time (ms).
    pub fn timestamp(&self) -> Option<usize> {
        self.timestamp
    }

    /// How the key is windowed, for windowed tables.
    pub fn window(&self) -> Option<WindowKind> {
        self.window
    }

    /// The statement that declared it.
    pub fn statement(&self) -> &str {
        &self.statement
    }

    /// The query writing it, for `CREATE … AS SELECT`.
    pub fn writer(&self) -> Option<&str> {
        self.writer.as_deref()
    }

    /// The store holding it, for pull queries.
    pub fn store(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// The schema registry its `AVRO` key or value goes through.
    pub fn registry(&self) -> Option<&crate::serde::avro::RegistryClient> {
        self.registry.as_ref()
    }

    /// The value columns as they are on the topic (the key column too under `KEY='col'`).
    pub fn read_columns(&self) -> Vec<Column> {
        let mut v = self.value.clone();
        if let (Some(k), [key]) = (self.key_in_value, self.key.as_slice()) {
            v.insert(k.min(v.len()), key.clone());
        }
        v
    }
}

/// A persistent query.
#[derive(Clone)]
pub struct QueryInfo {
    /// Its id, `CSAS_<NAME>_<n>`, `CTAS_<NAME>_<n>` or `INSERTQUERY_<n>`.
    pub(crate) id: String,
    /// The statement that started it.
    pub(crate) statement: String,
    /// The stream or table it writes.
    pub(crate) sink: String,
    /// Its topology, described.
    pub(crate) topology: String,
    pub(super) query: Query,
    pub(super) app: Option<Arc<KafkaStreams>>,
}

impl std::fmt::Debug for QueryInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryInfo")
            .field("id", &self.id)
            .field("sink", &self.sink)
            .finish()
    }
}

impl QueryInfo {
    /// Its id, `CSAS_<NAME>_<n>`, `CTAS_<NAME>_<n>` or `INSERTQUERY_<n>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The statement that started it.
    pub fn statement(&self) -> &str {
        &self.statement
    }

    /// The stream or table it writes.
    pub fn sink(&self) -> &str {
        &self.sink
    }

    /// Its topology, described.
    pub fn topology(&self) -> &str {
        &self.topology
    }

    /// The application running it (`None` in offline mode).
    pub fn app(&self) -> Option<&Arc<KafkaStreams>> {
        self.app.as_ref()
    }

    /// The application id it runs under.
    pub fn application_id(&self) -> String {
        application_id(&self.id)
    }
}

pub(super) fn application_id(qid: &str) -> String {
    format!("streamkit-sql-{}", qid.to_lowercase())
}

impl Engine {
    /// Queries reading `name`.
    pub(super) fn readers(&self, name: &str) -> Vec<String> {
        self.queries
            .values()
            .filter(|q| query_sources(&q.query).iter().any(|s| s == name))
            .map(|q| q.id.clone())
            .collect()
    }

    pub(super) fn first_source(&self, query: &Query) -> Result<SourceInfo, SqlError> {
        let names = query_sources(query);
        names
            .first()
            .and_then(|n| self.sources.get(n))
            .cloned()
            .ok_or_else(|| SqlError::new("the query reads no known source"))
    }

    /// Declares a stream or table over a topic.
    pub(super) fn declare(
        &self,
        kind: Kind,
        name: &str,
        columns: Vec<parse::ColumnDef>,
        props: &[Property],
        text: &str,
        pos: Pos,
    ) -> Result<SourceInfo, SqlError> {
        check_props(props)?;
        let topic = prop(props, "KAFKA_TOPIC")
            .ok_or_else(|| SqlError::at(pos, "WITH (KAFKA_TOPIC='…') is required"))?
            .value
            .clone();
        let value_format = format_prop(
            prop(props, "VALUE_FORMAT").or(prop(props, "FORMAT")),
            Format::Json,
        )
        .and_then(|f| {
            if prop(props, "VALUE_FORMAT").is_none() && prop(props, "FORMAT").is_none() {
                Err(SqlError::at(pos, "WITH (VALUE_FORMAT='…') is required"))
            } else {
                Ok(f)
            }
        })?;
        let key_format = format_prop(
            prop(props, "KEY_FORMAT").or(prop(props, "FORMAT")),
            Format::Kafka,
        )?;
        // As ksqlDB does: with no columns listed, an Avro source's value columns come from
        // the latest schema registered for its topic.
        let inferred = match (&self.registry, columns.is_empty(), value_format) {
            (Some(r), true, Format::Avro) => crate::sql::format::avro_columns(r, &topic)
                .map_err(|e| SqlError::at(pos, e.to_string()))?,
            _ => Vec::new(),
        };
        if columns.is_empty() && inferred.is_empty() {
            return Err(SqlError::at(
                pos,
                "columns are required (schema inference needs VALUE_FORMAT='AVRO' and a registry)",
            ));
        }
        let mut key = Vec::new();
        let mut value = Vec::new();
        for c in &columns {
            let col = Column {
                name: c.name.clone(),
                ty: expr::sql_type(&c.ty, c.pos)?,
            };
            if key
                .iter()
                .chain(&value)
                .any(|x: &Column| x.name == col.name)
            {
                return Err(SqlError::at(
                    c.pos,
                    format!("duplicate column {}", col.name),
                ));
            }
            if c.key {
                key.push(col);
            } else {
                value.push(col);
            }
        }
        value.extend(inferred);
        if kind == Kind::Table && key.is_empty() && prop(props, "KEY").is_none() {
            return Err(SqlError::at(pos, "a table needs a PRIMARY KEY column"));
        }
        let mut key_in_value = None;
        let mut key_hint = None;
        let mut key_format = key_format;
        if let Some(p) = prop(props, "KEY") {
            if !key.is_empty() {
                return Err(SqlError::at(p.pos, "KEY='…' conflicts with the KEY column"));
            }
            let wanted = p.value.trim_matches('`').to_uppercase();
            let idx = value.iter().position(|c| c.name == wanted).ok_or_else(|| {
                SqlError::at(p.pos, format!("KEY names an unknown column {}", p.value))
            })?;
            if kind == Kind::Table {
                // KSQL 5 semantics: one row per message key, whatever `col` holds; a table
                // re-keyed by `col` would keep one row per station of the CTA turnstile
                // events (keyed by time) instead of one per entry.
                if let Some(f) = prop(props, "KEY_FORMAT") {
                    return Err(SqlError::at(
                        f.pos,
                        "a table with KEY='…' is keyed by its message key as a string \
                         (ROWKEY); KEY_FORMAT does not apply (declare a PRIMARY KEY column \
                         instead)",
                    ));
                }
                if value.iter().any(|c| c.name == crate::sql::format::ROWKEY) {
                    return Err(SqlError::at(
                        p.pos,
                        "a table with KEY='…' has the key column ROWKEY; rename the ROWKEY column",
                    ));
                }
                key_hint = Some(wanted);
                key_format = Format::Kafka;
                key.push(crate::sql::format::rowkey_column());
            } else {
                key_in_value = Some(idx);
                key.push(value.remove(idx));
            }
        }
        if key_format == Format::Kafka && key.len() > 1 {
            return Err(SqlError::at(
                pos,
                "several key columns need KEY_FORMAT='JSON'",
            ));
        }
        let read = {
            let mut v = value.clone();
            if let Some(k) = key_in_value {
                v.insert(k, key[0].clone());
            }
            v
        };
        if value_format == Format::Kafka && read.len() != 1 {
            return Err(SqlError::at(
                pos,
                "VALUE_FORMAT='KAFKA' holds exactly one value column",
            ));
        }
        let timestamp = match prop(props, "TIMESTAMP") {
            None => None,
            Some(p) => {
                let wanted = p.value.to_uppercase();
                let idx = read.iter().position(|c| c.name == wanted).ok_or_else(|| {
                    SqlError::at(
                        p.pos,
                        format!("TIMESTAMP names an unknown value column {}", p.value),
                    )
                })?;
                if !matches!(
                    read[idx].ty,
                    crate::sql::SqlType::BigInt | crate::sql::SqlType::Int
                ) {
                    return Err(SqlError::at(
                        p.pos,
                        "TIMESTAMP needs a BIGINT column of epoch milliseconds",
                    ));
                }
                Some(idx)
            }
        };
        if let Mode::Live(template) = &self.mode {
            let existing = crate::runtime::admin::topic_partitions(template)
                .map_err(|e| SqlError::new(e.to_string()))?;
            if !existing.contains_key(&topic) {
                match partitions(props)? {
                    Some(n) => crate::runtime::admin::create_topics(
                        template,
                        &[(topic.clone(), n, Vec::new())],
                    )
                    .map_err(|e| SqlError::new(format!("creating topic {topic}: {e}")))?,
                    None => {
                        return Err(SqlError::at(
                            pos,
                            format!("topic {topic} does not exist; give PARTITIONS to create it"),
                        ));
                    }
                }
            }
        }
        Ok(SourceInfo {
            name: name.to_string(),
            kind,
            topic,
            key,
            value,
            key_format,
            value_format,
            key_in_value,
            key_hint,
            timestamp,
            window: None,
            statement: text.to_string(),
            writer: None,
            store: None,
            registry: self.registry.clone(),
        })
    }
}
