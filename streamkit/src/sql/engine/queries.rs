//! The lifecycle of queries: planning, starting a persistent query as its own application,
//! terminating it, and running pull and push queries.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Stops a query's application and removes what it leaves behind, as ksqlDB does when a query
/// ends: its local state directory and, on a broker with the admin API, its internal topics
/// and consumer group (the embedded broker has no admin API: its topics stay until it stops).
/// What cannot be removed is logged; only a failure to stop is an error.
pub(super) fn retire(app: &KafkaStreams) -> crate::Result<()> {
    let closed = app.close();
    if app.state() != crate::runtime::State::NotRunning
        && app.state() != crate::runtime::State::Error
    {
        // Threads left behind (close timed out) may still use the state.
        return closed;
    }
    let id = app.config().application_id.clone();
    if let Err(e) = app.cleanup() {
        tracing::warn!(query = %id, error = %e, "cannot delete the query's state directory");
    }
    if app.config().embedded.is_none() {
        let topics = app.internal_topic_names();
        // The group empties as the last member's leave reaches the coordinator.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match crate::runtime::admin::delete_topics_and_group(app.config(), &topics, true) {
                Ok(r) => {
                    tracing::info!(query = %id, topics = ?r.deleted_topics, "query's internal topics and group deleted");
                    break;
                }
                Err(crate::Error::IllegalState(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    tracing::warn!(query = %id, error = %e, "cannot delete the query's internal topics");
                    break;
                }
            }
        }
    }
    closed
}

impl Engine {
    pub(super) fn terminate(&mut self, id: &str) -> Result<(), SqlError> {
        if let Some(q) = self.queries.remove(id)
            && let Some(app) = q.app
        {
            retire(&app).map_err(|e| SqlError::new(format!("stopping {id}: {e}")))?;
        }
        Ok(())
    }

    pub(super) fn plan_query(&self, query: &Query, qid: &str) -> Result<Planned, SqlError> {
        let b = StreamsBuilder::new();
        let lookup = |n: &str| self.sources.get(n).cloned();
        plan::plan(
            &b,
            &lookup,
            query,
            Qid {
                id: qid,
                memory: false,
                shared: None,
            },
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        &self,
        qid: &str,
        text: &str,
        sink_name: &str,
        query: Query,
        sink: &SourceInfo,
        partitions: Option<i32>,
        first: &SourceInfo,
    ) -> Result<QueryInfo, SqlError> {
        let b = StreamsBuilder::new();
        let lookup = |n: &str| self.sources.get(n).cloned();
        let planned = plan::plan(
            &b,
            &lookup,
            &query,
            Qid {
                id: qid,
                memory: false,
                shared: None,
            },
        )?;
        planned.to_topic(sink);
        let topology = b
            .build()
            .map_err(|e| SqlError::new(format!("{qid}: {e}")))?;
        let described = topology.describe().to_string();
        let app = match &self.mode {
            Mode::Offline => None,
            Mode::Live(template) => {
                let mut config = (**template).clone();
                config.application_id = application_id(qid);
                for (k, v) in &self.properties {
                    config = config.set(k.clone(), v.clone());
                }
                let existing = crate::runtime::admin::topic_partitions(&config)
                    .map_err(|e| SqlError::new(format!("{qid}: {e}")))?;
                if !existing.contains_key(&sink.topic) {
                    let n = partitions
                        .or_else(|| existing.get(&first.topic).copied())
                        .unwrap_or(1);
                    crate::runtime::admin::create_topics(
                        &config,
                        &[(sink.topic.clone(), n, Vec::new())],
                    )
                    .map_err(|e| SqlError::new(format!("creating topic {}: {e}", sink.topic)))?;
                }
                let app = KafkaStreams::new(topology, config)
                    .map_err(|e| SqlError::new(format!("{qid}: {e}")))?;
                app.start()
                    .map_err(|e| SqlError::new(format!("{qid}: {e}")))?;
                Some(Arc::new(app))
            }
        };
        Ok(QueryInfo {
            id: qid.to_string(),
            statement: text.to_string(),
            sink: sink_name.to_string(),
            topology: described,
            query,
            app,
        })
    }

    /// Answers a pull query from the materialized table's store.
    pub(super) fn pull(
        &self,
        query: &Query,
        pos: Pos,
    ) -> Result<(Vec<Column>, Vec<Row>), SqlError> {
        let names = query_sources(query);
        let [name] = names.as_slice() else {
            return Err(SqlError::at(pos, "pull queries read one table"));
        };
        let src = self
            .sources
            .get(name)
            .ok_or_else(|| SqlError::at(pos, format!("{name} does not exist")))?;
        let (Some(store), Some(writer)) = (&src.store, &src.writer) else {
            return Err(SqlError::at(
                pos,
                format!(
                    "{name} is not materialized: pull queries read tables created with CREATE TABLE … AS SELECT"
                ),
            ));
        };
        if src.window.is_some() {
            return Err(SqlError::at(
                pos,
                "pull queries over windowed tables are not supported yet",
            ));
        }
        let app = self
            .queries
            .get(writer)
            .and_then(|q| q.app.clone())
            .ok_or_else(|| SqlError::at(pos, "the table's query is not running"))?;
        let kv = app
            .store::<Value, Row>(store)
            .map_err(|e| SqlError::at(pos, e.to_string()))?;
        // `WHERE key = literal` is a point lookup; anything else scans the store.
        let rows = match crate::sql::pull::key_lookup(query, src) {
            Some(key) => kv
                .get(&key)
                .map_err(|e| SqlError::at(pos, e.to_string()))?
                .map(|row| vec![(key, row)])
                .unwrap_or_default(),
            None => kv.all().map_err(|e| SqlError::at(pos, e.to_string()))?,
        };
        // Plan the projection and filter over the stored rows as a one-off table scan.
        crate::sql::pull::answer(query, src, rows)
    }

    /// Runs a query as ksqlDB's `/query` endpoint does: a pull query (`SELECT … FROM table
    /// [WHERE …]`) is answered at once; a push query (`… EMIT CHANGES`) starts streaming.
    pub fn query(
        &mut self,
        sql: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<QueryResult, SqlError> {
        let p = parse_one(sql, "send one query")?;
        match &p.statement {
            Statement::Select(q) if q.emit.is_some() => {
                Ok(QueryResult::Push(self.push(sql, properties)?))
            }
            Statement::Select(q) => {
                let (columns, rows) = self.pull(q, p.pos)?;
                Ok(QueryResult::Pull { columns, rows })
            }
            _ => Err(SqlError::at(
                p.pos,
                "expected a SELECT; send other statements to /ksql",
            )),
        }
    }

    /// Starts a push query (`SELECT … EMIT CHANGES`): a transient application whose rows
    /// arrive on the returned channel. `properties` are passed to the application's
    /// clients (for example `auto.offset.reset`).
    pub fn push(
        &mut self,
        sql: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<PushQuery, SqlError> {
        let p = parse_one(sql, "a push query is one statement")?;
        let properties = client_properties(properties)?;
        let Statement::Select(query) = p.statement else {
            return Err(SqlError::at(p.pos, "expected SELECT … EMIT CHANGES"));
        };
        let Mode::Live(template) = &self.mode else {
            return Err(SqlError::new("push queries need a live engine"));
        };
        use std::sync::atomic::Ordering as AtomicOrdering;
        let max = self.max_pushing;
        if self.pushing.fetch_add(1, AtomicOrdering::AcqRel) >= max {
            self.pushing.fetch_sub(1, AtomicOrdering::AcqRel);
            return Err(SqlError::new(format!(
                "{max} push queries are running: close one before starting another"
            )));
        }
        let slot = PushSlot(self.pushing.clone());
        self.transient += 1;
        let qid = format!("transient_{}_{}", std::process::id(), self.transient);
        let b = StreamsBuilder::new();
        let lookup = |n: &str| self.sources.get(n).cloned();
        let planned = plan::plan(
            &b,
            &lookup,
            &query,
            Qid {
                id: &qid,
                memory: false,
                shared: None,
            },
        )?;
        let buffer = self.push_buffer;
        let (tx, rx) = tokio::sync::mpsc::channel(buffer);
        // Dropped (closing the channel) when the reader falls too far behind.
        let tx = Mutex::new(Some(tx));
        let overflowed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let overflow = overflowed.clone();
        let windowed = planned.window.is_some();
        let limit = planned.limit;
        let sent = Arc::new(Mutex::new(0usize));
        let sink: RowSink = Arc::new(move |key, window, row| {
            let Some(row) = row else { return };
            let mut n = sent.lock().expect("counter");
            if limit.is_some_and(|l| *n >= l) {
                return;
            }
            *n += 1;
            let mut out = match key {
                Value::Null => Vec::new(),
                Value::Struct(fields) => fields.into_iter().map(|(_, v)| v).collect(),
                k => vec![k],
            };
            if let Some((s, e)) = window {
                out.push(Value::BigInt(s));
                out.push(Value::BigInt(e));
            }
            out.extend(row);
            let mut tx = tx.lock().expect("push sender");
            if let Some(sender) = tx.as_ref()
                && let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = sender.try_send(out)
            {
                tracing::warn!(
                    rows = buffer,
                    "a push query's reader fell too far behind; dropping it"
                );
                overflow.store(true, std::sync::atomic::Ordering::Release);
                *tx = None;
            }
        });
        planned.to_fn(sink);
        let mut columns = planned.key.clone();
        if windowed {
            for n in ["WINDOWSTART", "WINDOWEND"] {
                columns.push(Column {
                    name: n.into(),
                    ty: crate::sql::SqlType::BigInt,
                });
            }
        }
        columns.extend(planned.value.clone());
        let topology = b.build().map_err(|e| SqlError::new(e.to_string()))?;
        let mut config = (**template).clone();
        config.application_id = application_id(&qid);
        // Push queries start at the end of their sources unless told otherwise, as in ksqlDB.
        config = config
            .commit_interval(Duration::from_millis(100))
            .set("consumer.auto.offset.reset", "latest");
        for (k, v) in &properties {
            config = config.set(k.clone(), v.clone());
        }
        let app = KafkaStreams::new(topology, config).map_err(|e| SqlError::new(e.to_string()))?;
        app.start().map_err(|e| SqlError::new(e.to_string()))?;
        Ok(PushQuery {
            columns,
            rows: rx,
            app: Arc::new(app),
            overflowed,
            _running: slot,
        })
    }
}

/// The `streamsProperties` a request may set (after a `ksql.streams.` prefix is removed), as
/// in ksqlDB, which takes a short list per request. Anything else could point a query's
/// clients at another cluster (`producer.bootstrap.servers`) or load a shared library
/// (`plugin.library.paths`), so it is refused rather than passed to librdkafka.
pub(super) const REQUEST_PROPERTIES: [&str; 1] = ["auto.offset.reset"];

/// ksqlDB `streamsProperties` as client settings: the allow-listed ones, checked; other `ksql.`
/// settings are ignored (they tune ksqlDB's server, which this is not); anything else is an
/// error naming the property.
pub(super) fn client_properties(
    props: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, SqlError> {
    let mut out = BTreeMap::new();
    for (k, v) in props {
        let key = k.strip_prefix("ksql.streams.").unwrap_or(k);
        if key.starts_with("ksql.") {
            continue;
        }
        if !REQUEST_PROPERTIES.contains(&key) {
            return Err(SqlError::new(format!(
                "streamsProperties: {k} cannot be set per request (allowed: {})",
                REQUEST_PROPERTIES.join(", ")
            )));
        }
        if key == "auto.offset.reset" && !matches!(v.as_str(), "earliest" | "latest") {
            return Err(SqlError::new(format!(
                "streamsProperties: {k} must be earliest or latest, not {v:?}"
            )));
        }
        // A consumer setting: given to the query's consumers only (librdkafka warns when a
        // producer is handed a consumer property).
        out.insert(format!("consumer.{key}"), v.clone());
    }
    Ok(out)
}

pub(super) fn partitions(props: &[Property]) -> Result<Option<i32>, SqlError> {
    prop(props, "PARTITIONS")
        .map(|p| {
            p.value
                .parse::<i32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| SqlError::at(p.pos, "PARTITIONS needs a positive number"))
        })
        .transpose()
}

/// Names of the sources a query reads (FROM, then JOINs).
pub(crate) fn query_sources(query: &Query) -> Vec<String> {
    let mut out = Vec::new();
    if let sqlparser::ast::SetExpr::Select(s) = query.select.body.as_ref() {
        for f in &s.from {
            for r in std::iter::once(&f.relation).chain(f.joins.iter().map(|j| &j.relation)) {
                if let sqlparser::ast::TableFactor::Table { name, .. } = r
                    && let Ok(n) = parse::object_name(name)
                {
                    out.push(n);
                }
            }
        }
    }
    out
}
