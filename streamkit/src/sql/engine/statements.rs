//! One method per statement kind: what `CREATE`, `INSERT`, `SELECT`, `DROP`, `SHOW`,
//! `DESCRIBE`, `EXPLAIN` and `TERMINATE` do to the catalog and the running queries.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A statement's status result, as ksqlDB's `currentStatus`.
fn status(text: &str, message: String, query_id: Option<String>) -> StatementResult {
    StatementResult::Status {
        statement: text.to_string(),
        message,
        query_id,
    }
}

impl Engine {
    /// `CREATE STREAM|TABLE name (…) WITH (…)`: declares a source over a topic.
    #[allow(
        clippy::too_many_arguments,
        reason = "the fields of `Statement::CreateSource`, passed on as they are matched"
    )]
    pub(super) fn create_source(
        &mut self,
        text: String,
        pos: Pos,
        kind: Kind,
        name: String,
        columns: Vec<parse::ColumnDef>,
        props: Vec<Property>,
        if_not_exists: bool,
    ) -> Result<StatementResult, SqlError> {
        if self.sources.contains_key(&name) {
            if if_not_exists {
                return Ok(status(
                    &text,
                    format!("{} {name} already exists", kind.name()),
                    None,
                ));
            }
            return Err(SqlError::at(pos, format!("{name} already exists")));
        }
        let info = self.declare(kind, &name, columns, &props, &text, pos)?;
        self.sources.insert(name.clone(), info);
        Ok(status(
            &text,
            format!(
                "{} created",
                if kind == Kind::Stream {
                    "Stream"
                } else {
                    "Table"
                }
            ),
            None,
        ))
    }

    /// `CREATE STREAM|TABLE name AS SELECT …`: a persistent query writing a new source.
    pub(super) fn create_as(
        &mut self,
        text: String,
        pos: Pos,
        kind: Kind,
        name: String,
        props: Vec<Property>,
        query: Query,
    ) -> Result<StatementResult, SqlError> {
        if self.sources.contains_key(&name) {
            return Err(SqlError::at(pos, format!("{name} already exists")));
        }
        check_props(&props)?;
        let qid = format!(
            "{}_{}_{}",
            if kind == Kind::Stream { "CSAS" } else { "CTAS" },
            name,
            self.next_query
        );
        let planned = self.plan_query(&query, &qid)?;
        if planned.kind != kind {
            return Err(SqlError::at(
                pos,
                format!(
                    "the query produces a {}; use CREATE {}",
                    planned.kind.name(),
                    planned.kind.name()
                ),
            ));
        }
        let first = self.first_source(&query)?;
        let topic = prop(&props, "KAFKA_TOPIC")
            .map(|p| p.value.clone())
            .unwrap_or_else(|| name.clone());
        let value_format = format_prop(
            prop(&props, "VALUE_FORMAT").or(prop(&props, "FORMAT")),
            first.value_format,
        )?;
        let key_format = format_prop(
            prop(&props, "KEY_FORMAT").or(prop(&props, "FORMAT")),
            first.key_format,
        )?;
        let partitions = partitions(&props)?;
        let info = SourceInfo {
            name: name.clone(),
            kind,
            topic: topic.clone(),
            key: planned.key.clone(),
            value: planned.value.clone(),
            key_format,
            value_format,
            key_in_value: None,
            key_hint: None,
            timestamp: None,
            window: planned.window,
            statement: text.clone(),
            writer: Some(qid.clone()),
            store: planned.store.clone(),
            registry: self.registry.clone(),
        };
        let q = self.start(&qid, &text, &name, query, &info, partitions, &first)?;
        self.sources.insert(name.clone(), info);
        self.queries.insert(qid.clone(), q);
        self.next_query += 1;
        Ok(status(
            &text,
            format!("Created query with ID {qid}"),
            Some(qid),
        ))
    }

    /// `INSERT INTO name SELECT …`: a persistent query writing an existing stream.
    pub(super) fn insert_into(
        &mut self,
        text: String,
        pos: Pos,
        target: String,
        query: Query,
    ) -> Result<StatementResult, SqlError> {
        let sink = self
            .sources
            .get(&target)
            .cloned()
            .ok_or_else(|| SqlError::at(pos, format!("{target} does not exist")))?;
        if sink.kind != Kind::Stream {
            return Err(SqlError::at(pos, "INSERT INTO needs a stream"));
        }
        let qid = format!("INSERTQUERY_{}", self.next_query);
        let planned = self.plan_query(&query, &qid)?;
        let names = |c: &[Column]| {
            c.iter()
                .map(|c| (c.name.clone(), c.ty.clone()))
                .collect::<Vec<_>>()
        };
        if planned.kind != Kind::Stream
            || names(&planned.value) != names(&sink.value)
            || names(&planned.key) != names(&sink.key)
        {
            return Err(SqlError::at(
                pos,
                format!("the query's columns do not match {target}'s"),
            ));
        }
        let first = self.first_source(&query)?;
        let q = self.start(&qid, &text, &target, query, &sink, None, &first)?;
        self.queries.insert(qid.clone(), q);
        self.next_query += 1;
        Ok(status(
            &text,
            format!("Created query with ID {qid}"),
            Some(qid),
        ))
    }

    /// A transient `SELECT`: a pull query (push queries go through [`Engine::push`]).
    pub(super) fn select(
        &mut self,
        text: String,
        pos: Pos,
        query: Query,
    ) -> Result<StatementResult, SqlError> {
        if query.emit.is_some() {
            return Err(SqlError::at(
                pos,
                "push queries (EMIT CHANGES) stream their rows: send them to /query",
            ));
        }
        let (columns, rows) = self.pull(&query, pos)?;
        Ok(StatementResult::Rows {
            statement: text,
            columns,
            rows,
        })
    }

    /// `DROP STREAM|TABLE`: forgets a source no query reads; the query writing it stops.
    pub(super) fn drop_source(
        &mut self,
        text: String,
        pos: Pos,
        kind: Kind,
        name: String,
        if_exists: bool,
        delete_topic: bool,
    ) -> Result<StatementResult, SqlError> {
        let Some(src) = self.sources.get(&name) else {
            if if_exists {
                return Ok(status(&text, format!("{name} does not exist"), None));
            }
            return Err(SqlError::at(pos, format!("{name} does not exist")));
        };
        if src.kind != kind {
            return Err(SqlError::at(
                pos,
                format!("{name} is a {}, not a {}", src.kind.name(), kind.name()),
            ));
        }
        let readers = self.readers(&name);
        if let Some(q) = readers.first() {
            return Err(SqlError::at(
                pos,
                format!("cannot drop {name}: query {q} reads it; TERMINATE it first"),
            ));
        }
        if delete_topic {
            return Err(SqlError::at(pos, "DELETE TOPIC is not supported yet"));
        }
        // The query writing it stops with it, as in ksqlDB.
        let writers: Vec<String> = self
            .queries
            .values()
            .filter(|q| q.sink == name)
            .map(|q| q.id.clone())
            .collect();
        for w in writers {
            self.terminate(&w)?;
        }
        self.sources.remove(&name);
        Ok(status(&text, format!("Source `{name}` was dropped"), None))
    }

    /// `SHOW STREAMS|TABLES|QUERIES`.
    pub(super) fn show(
        &mut self,
        text: String,
        pos: Pos,
        what: String,
    ) -> Result<StatementResult, SqlError> {
        match what.as_str() {
            "STREAMS" | "TABLES" => Ok(StatementResult::Sources {
                statement: text,
                sources: self
                    .sources
                    .values()
                    .filter(|s| (s.kind == Kind::Stream) == (what == "STREAMS"))
                    .cloned()
                    .collect(),
            }),
            "QUERIES" => Ok(StatementResult::Queries {
                statement: text,
                queries: self.queries.values().cloned().collect(),
            }),
            _ => Err(SqlError::at(
                pos,
                format!("SHOW {what} is not supported yet"),
            )),
        }
    }

    /// `DESCRIBE name`.
    pub(super) fn describe(
        &mut self,
        text: String,
        pos: Pos,
        name: String,
    ) -> Result<StatementResult, SqlError> {
        let source = self
            .sources
            .get(&name)
            .cloned()
            .ok_or_else(|| SqlError::at(pos, format!("{name} does not exist")))?;
        Ok(StatementResult::Description {
            statement: text,
            read_by: self.readers(&name),
            source,
        })
    }

    /// `EXPLAIN query-id` or `EXPLAIN statement`: the topology of a running or planned query.
    pub(super) fn explain(
        &mut self,
        text: String,
        pos: Pos,
        target: ExplainTarget,
    ) -> Result<StatementResult, SqlError> {
        match target {
            ExplainTarget::Query(id) => {
                let q = self
                    .queries
                    .get(&id)
                    .ok_or_else(|| SqlError::at(pos, format!("query {id} does not exist")))?;
                Ok(StatementResult::Explain {
                    statement: text,
                    query: q.statement.clone(),
                    topology: q.topology.clone(),
                })
            }
            ExplainTarget::Statement(
                Statement::CreateAs { query, .. }
                | Statement::InsertInto { query, .. }
                | Statement::Select(query),
            ) => {
                let b = StreamsBuilder::new();
                let lookup = |n: &str| self.sources.get(n).cloned();
                let planned = plan::plan(
                    &b,
                    &lookup,
                    &query,
                    Qid {
                        id: "EXPLAIN",
                        memory: false,
                        shared: None,
                    },
                )?;
                planned.to_fn(Arc::new(|_, _, _| {}));
                let topology = b
                    .build()
                    .map_err(|e| SqlError::at(pos, e.to_string()))?
                    .describe()
                    .to_string();
                Ok(StatementResult::Explain {
                    query: text.clone(),
                    statement: text,
                    topology,
                })
            }
            ExplainTarget::Statement(_) => {
                Err(SqlError::at(pos, "EXPLAIN takes a query or a query id"))
            }
        }
    }

    /// `TERMINATE query-id|ALL`.
    pub(super) fn terminate_statement(
        &mut self,
        text: String,
        pos: Pos,
        id: String,
    ) -> Result<StatementResult, SqlError> {
        let ids: Vec<String> = if id == "ALL" {
            self.queries.keys().cloned().collect()
        } else if self.queries.contains_key(&id) {
            vec![id]
        } else {
            return Err(SqlError::at(pos, format!("query {id} does not exist")));
        };
        for id in &ids {
            self.terminate(id)?;
        }
        Ok(status(
            &text,
            format!("Query terminated: {}", ids.join(", ")),
            None,
        ))
    }
}
