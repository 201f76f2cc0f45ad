//! Store endpoints: the list of stores, key lookups (forwarded to the owner when another
//! instance holds the key's partition), key ranges and the change stream.

use std::ops::Bound;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::forward::{FORWARDED_BY, SERVED_BY, fetch_json, partition_of, to_owner};
use super::{ServerContext, error};
use crate::error::{Error, Result};
use crate::state::StoreBackend;
use crate::state::codec;
use crate::state::spec::{StoreKind, StoreSpec};
use crate::state::store::SharedStore;
use crate::state::store::StoreChange;

/// Most entries one range page returns.
const MAX_LIMIT: usize = 10_000;
/// Change streams (`/stores/{name}/changes`) one store serves at once; each holds a
/// connection and a receiver of every write.
const MAX_CHANGE_SUBSCRIBERS: usize = 256;
const DEFAULT_LIMIT: usize = 100;

fn kind_name(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::KeyValue => "key_value",
        StoreKind::Window { .. } => "window",
        StoreKind::Session { .. } => "session",
    }
}

/// `GET /stores`.
pub(crate) async fn list(State(ctx): State<Arc<ServerContext>>) -> Json<Value> {
    let mut out = Vec::new();
    for s in &ctx.topology.subtopologies {
        for spec in &s.stores {
            let parts = ctx.registry.get_by_task(&spec.name);
            let entries: u64 = parts
                .values()
                .map(|p| p.lock().expect("store lock").approximate_len())
                .sum();
            out.push(json!({
                "name": spec.name,
                "kind": kind_name(spec.kind),
                "backend": match spec.backend {
                    StoreBackend::RocksDb => "rocksdb",
                    StoreBackend::InMemory => "in_memory",
                },
                "changelog": spec.logging.then(|| spec.changelog_topic().resolve(&ctx.app_id)),
                "subtopology": s.id,
                "partitions": ctx.partitions.get(&s.id),
                "local_partitions": parts.keys().map(|t| t.partition).collect::<Vec<_>>(),
                "approximate_entries": entries,
            }));
        }
    }
    Json(json!({ "application_server": ctx.endpoint, "stores": out }))
}

/// A key as given in a path or query string: JSON, or else a plain string.
fn key_bytes(spec: &StoreSpec, raw: &str) -> Result<Vec<u8>> {
    let as_string = || {
        spec.serdes
            .key_bytes(&spec.name, &Value::String(raw.to_string()))
    };
    match serde_json::from_str::<Value>(raw) {
        Ok(json) => spec.serdes.key_bytes(&spec.name, &json).or_else(|e| {
            if json.is_string() {
                Err(e)
            } else {
                as_string().map_err(|_| e)
            }
        }),
        Err(_) => as_string(),
    }
}

/// The JSON form of one raw entry (or of a deletion when `value` is `None`).
fn entry_json(spec: &StoreSpec, key: &[u8], value: Option<&[u8]>) -> Result<Value> {
    let name = spec.name.as_str();
    let corrupt = || Error::Internal(format!("corrupt windowed key in store {name}"));
    let value = match value {
        Some(v) => spec.serdes.value_json(name, v)?,
        None => Value::Null,
    };
    Ok(match spec.kind {
        StoreKind::KeyValue => json!({ "key": spec.serdes.key_json(name, key)?, "value": value }),
        StoreKind::Window { .. } => {
            let (k, t) = codec::split(key, 1).ok_or_else(corrupt)?;
            json!({ "key": spec.serdes.key_json(name, k)?, "window": { "start": t[0] }, "value": value })
        }
        StoreKind::Session { .. } => {
            let (k, t) = codec::split(key, 2).ok_or_else(corrupt)?;
            json!({
                "key": spec.serdes.key_json(name, k)?,
                "window": { "start": t[1], "end": t[0] },
                "value": value,
            })
        }
    })
}

/// The user-key bytes of a raw store key (windowed keys carry timestamps after it).
fn user_key(kind: StoreKind, raw: &[u8]) -> Option<&[u8]> {
    match kind {
        StoreKind::KeyValue => Some(raw),
        StoreKind::Window { .. } => codec::split(raw, 1).map(|(k, _)| k),
        StoreKind::Session { .. } => codec::split(raw, 2).map(|(k, _)| k),
    }
}

fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Serde(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn unknown_store(ctx: &ServerContext, name: &str) -> Response {
    let known: Vec<&str> = ctx
        .topology
        .subtopologies
        .iter()
        .flat_map(|s| s.stores.iter().map(|x| x.name.as_str()))
        .collect();
    error(
        StatusCode::NOT_FOUND,
        format!("no store {name:?} in the topology (stores: {known:?})"),
    )
}

fn served_by(ctx: &ServerContext, mut r: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&ctx.endpoint) {
        r.headers_mut().insert(SERVED_BY, v);
    }
    r
}

#[derive(Deserialize)]
pub(crate) struct TimeRange {
    from: Option<i64>,
    to: Option<i64>,
}

/// Reads one key from the store instances of its partition.
fn read_key(
    spec: &StoreSpec,
    parts: &[SharedStore],
    kb: &[u8],
    t: &TimeRange,
) -> Result<Option<Value>> {
    let name = spec.name.as_str();
    let key = spec.serdes.key_json(name, kb)?;
    match spec.kind {
        StoreKind::KeyValue => {
            for p in parts {
                let v = p.lock().expect("store lock").get(kb)?;
                if let Some(v) = v {
                    return Ok(Some(
                        json!({ "key": key, "value": spec.serdes.value_json(name, &v)? }),
                    ));
                }
            }
            Ok(None)
        }
        StoreKind::Window { .. } => {
            let (from, to) = (t.from.unwrap_or(i64::MIN), t.to.unwrap_or(i64::MAX));
            let (a, b) = (codec::key_with(kb, &[from]), codec::key_with(kb, &[to]));
            let mut windows = Vec::new();
            for p in parts {
                let raw = p
                    .lock()
                    .expect("store lock")
                    .range(Bound::Included(&a), Bound::Included(&b))?;
                for (k, v) in raw {
                    if let Some((key_bytes, times)) = codec::split(&k, 1)
                        && key_bytes == kb
                    {
                        windows.push((times[0], spec.serdes.value_json(name, &v)?));
                    }
                }
            }
            windows.sort_by_key(|(start, _)| *start);
            let windows: Vec<Value> = windows
                .into_iter()
                .map(|(start, value)| json!({ "start": start, "value": value }))
                .collect();
            Ok(Some(json!({ "key": key, "windows": windows })))
        }
        StoreKind::Session { .. } => {
            // Sessions ending at or after `from` and starting at or before `to`.
            let (from, to) = (t.from.unwrap_or(i64::MIN), t.to.unwrap_or(i64::MAX));
            let a = codec::key_with(kb, &[from, i64::MIN]);
            let b = codec::key_with(kb, &[i64::MAX, i64::MAX]);
            let mut sessions = Vec::new();
            for p in parts {
                let raw = p
                    .lock()
                    .expect("store lock")
                    .range(Bound::Included(&a), Bound::Included(&b))?;
                for (k, v) in raw {
                    if let Some((key_bytes, times)) = codec::split(&k, 2)
                        && key_bytes == kb
                        && times[1] <= to
                    {
                        sessions.push((times[0], times[1], spec.serdes.value_json(name, &v)?));
                    }
                }
            }
            sessions.sort_by_key(|(end, start, _)| (*end, *start));
            let sessions: Vec<Value> = sessions
                .into_iter()
                .map(|(end, start, value)| json!({ "start": start, "end": end, "value": value }))
                .collect();
            Ok(Some(json!({ "key": key, "sessions": sessions })))
        }
    }
}

/// `GET /stores/{name}/{key}[?from=&to=]`: answered here when this instance holds the key's
/// partition, else by the instance that does.
pub(crate) async fn key(
    State(ctx): State<Arc<ServerContext>>,
    Path((name, raw_key)): Path<(String, String)>,
    Query(times): Query<TimeRange>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some((sub, spec)) = ctx.store(&name) else {
        return unknown_store(&ctx, &name);
    };
    let kb = match key_bytes(&spec, &raw_key) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("key {raw_key:?}: {e}")),
    };
    let Some(&partitions) = ctx.partitions.get(&sub) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("partition count of sub-topology {sub} unknown"),
        );
    };
    let partition = partition_of(&kb, partitions);
    let local: Vec<SharedStore> = ctx
        .registry
        .get_by_task(&name)
        .into_iter()
        .filter(|(t, _)| t.partition == partition)
        .map(|(_, s)| s)
        .collect();
    if local.is_empty() {
        if let Some(by) = headers.get(FORWARDED_BY) {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "partition {partition} of store {name} is not held here (query forwarded by {}); the assignment is moving, retry",
                    by.to_str().unwrap_or("?")
                ),
            );
        }
        return match ctx.directory.owner(&name, partition) {
            Some(owner) => to_owner(&ctx, &owner, &uri).await,
            None => error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "no instance holds partition {partition} of store {name} right now (rebalancing?); retry"
                ),
            ),
        };
    }
    let read = {
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || read_key(&spec, &local, &kb, &times)).await
    };
    let r = match read {
        Ok(Ok(Some(v))) => Json(v).into_response(),
        Ok(Ok(None)) => error(
            StatusCode::NOT_FOUND,
            format!("key {raw_key} not found in store {name}"),
        ),
        Ok(Err(e)) => error(status_of(&e), e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    served_by(&ctx, r)
}

#[derive(Deserialize)]
pub(crate) struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
    /// Hex of the last raw key of the previous page (`next` of that page).
    after: Option<String>,
    limit: Option<usize>,
    /// `all`: every instance's partitions (fanned out and merged); default this instance's.
    scope: Option<String>,
    /// Each entry also carries its `cursor` (set on the fan-out's requests).
    #[serde(default)]
    cursors: bool,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Entries of this instance's partitions with keys in `[from, to]` after `after`, in raw key
/// order, at most `limit`, and the cursor of the next page.
fn read_range(
    spec: &StoreSpec,
    parts: &[SharedStore],
    from: Option<Vec<u8>>,
    to: Option<Vec<u8>>,
    after: Option<Vec<u8>>,
    limit: usize,
    cursors: bool,
) -> Result<Value> {
    let times = match spec.kind {
        StoreKind::KeyValue => 0,
        StoreKind::Window { .. } => 1,
        StoreKind::Session { .. } => 2,
    };
    let lo = from.map(|k| codec::key_with(&k, &vec![i64::MIN; times]));
    let hi = to.map(|k| codec::key_with(&k, &vec![i64::MAX; times]));
    let lower = match (&after, &lo) {
        (Some(a), Some(l)) if l > a => Bound::Included(l.as_slice()),
        (Some(a), _) => Bound::Excluded(a.as_slice()),
        (None, Some(l)) => Bound::Included(l.as_slice()),
        (None, None) => Bound::Unbounded,
    };
    let upper = hi.as_deref().map_or(Bound::Unbounded, Bound::Included);
    // Each partition's first `limit + 1` entries hold the merged page's first `limit + 1`:
    // the store reads a page under its lock, never the whole range.
    let mut raw = Vec::new();
    for p in parts {
        raw.extend(p.lock().expect("store lock").range_limit(
            lower,
            upper,
            limit.saturating_add(1),
        )?);
    }
    raw.sort_by(|a, b| a.0.cmp(&b.0));
    let more = raw.len() > limit;
    raw.truncate(limit);
    let next = more.then(|| raw.last().map(|(k, _)| hex(k))).flatten();
    let entries = raw
        .iter()
        .map(|(k, v)| {
            let mut e = entry_json(spec, k, Some(v))?;
            if cursors {
                e["cursor"] = json!(hex(k));
            }
            Ok(e)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({ "entries": entries, "next": next }))
}

/// `GET /stores/{name}?from=&to=&limit=&after=[&scope=all]`: a page of this instance's
/// entries, or of every instance's.
pub(crate) async fn range(
    State(ctx): State<Arc<ServerContext>>,
    Path(name): Path<String>,
    Query(q): Query<RangeQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some((_, spec)) = ctx.store(&name) else {
        return unknown_store(&ctx, &name);
    };
    let parse = |k: &Option<String>| k.as_deref().map(|k| key_bytes(&spec, k)).transpose();
    let (from, to) = match (parse(&q.from), parse(&q.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    let after = match q.after.as_deref().map(unhex) {
        Some(None) => return error(StatusCode::BAD_REQUEST, "after: not a hex cursor"),
        Some(Some(a)) => Some(a),
        None => None,
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let all = match q.scope.as_deref() {
        None | Some("local") => false,
        Some("all") => !headers.contains_key(FORWARDED_BY),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("scope {other:?}: use local or all"),
            );
        }
    };
    let cursors = q.cursors || all;
    let parts: Vec<SharedStore> = ctx.registry.get_by_task(&name).into_values().collect();
    let partitions: Vec<i32> = ctx
        .registry
        .get_by_task(&name)
        .keys()
        .map(|t| t.partition)
        .collect();
    let read = {
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || {
            read_range(&spec, &parts, from, to, after, limit, cursors)
        })
        .await
    };
    let r = match read {
        Ok(Ok(mut v)) => {
            v["partitions"] = json!(partitions);
            if all {
                return merge_instances(&ctx, v, &uri, limit).await;
            }
            Json(v).into_response()
        }
        Ok(Err(e)) => error(status_of(&e), e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    served_by(&ctx, r)
}

/// Completes an application-wide range page: asks every other live instance for the same page
/// of its partitions and keeps the first `limit` entries of the union, in raw key order.
async fn merge_instances(
    ctx: &Arc<ServerContext>,
    local: Value,
    uri: &Uri,
    limit: usize,
) -> Response {
    let query: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("scope=") && !p.starts_with("cursors="))
        .chain(["scope=local", "cursors=true"])
        .collect();
    let path = format!("{}?{}", uri.path(), query.join("&"));
    let mut pages = vec![(ctx.endpoint.clone(), local)];
    for peer in ctx.directory.live_others() {
        match fetch_json(ctx, &peer, &path).await {
            Ok(page) => pages.push((peer, page)),
            Err(e) => {
                return error(
                    StatusCode::BAD_GATEWAY,
                    format!("instance {peer} did not answer its part of the range: {e}"),
                );
            }
        }
    }
    let mut more = false;
    let mut entries = Vec::new();
    let mut partitions = Vec::new();
    for (_, page) in &mut pages {
        more |= !page["next"].is_null();
        if let Some(p) = page["partitions"].as_array() {
            partitions.extend(p.iter().filter_map(Value::as_i64));
        }
        if let Some(e) = page["entries"].as_array_mut() {
            entries.append(e);
        }
    }
    // Hex of bytes sorts as the bytes do.
    entries.sort_by(|a, b| a["cursor"].as_str().cmp(&b["cursor"].as_str()));
    more |= entries.len() > limit;
    entries.truncate(limit);
    let next = more
        .then(|| entries.last().map(|e| e["cursor"].clone()))
        .flatten();
    for e in &mut entries {
        if let Some(o) = e.as_object_mut() {
            o.remove("cursor");
        }
    }
    partitions.sort_unstable();
    let instances: Vec<&String> = pages.iter().map(|(i, _)| i).collect();
    served_by(
        ctx,
        Json(json!({
            "entries": entries,
            "next": next,
            "partitions": partitions,
            "instances": instances,
        }))
        .into_response(),
    )
}

#[derive(Deserialize)]
pub(crate) struct ChangeQuery {
    key: Option<String>,
}

/// `GET /stores/{name}/changes[?key=]`: one `change` event per write to the store on this
/// instance (after its record cache), `lagged` when the client fell behind and missed some.
pub(crate) async fn changes(
    State(ctx): State<Arc<ServerContext>>,
    Path(name): Path<String>,
    Query(q): Query<ChangeQuery>,
) -> Response {
    let Some((_, spec)) = ctx.store(&name) else {
        return unknown_store(&ctx, &name);
    };
    let only = match q.key.as_deref().map(|k| key_bytes(&spec, k)).transpose() {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Some(rx) = ctx
        .registry
        .subscribe_at_most(&name, MAX_CHANGE_SUBSCRIBERS)
    else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_CHANGE_SUBSCRIBERS} clients already follow {name}'s changes; try later"),
        );
    };
    let events =
        futures_util::stream::unfold((rx, spec, only), |(mut rx, spec, only)| async move {
            loop {
                let event = match rx.recv().await {
                    Ok(change) => {
                        if only
                            .as_deref()
                            .is_some_and(|k| user_key(spec.kind, &change.key) != Some(k))
                        {
                            continue;
                        }
                        change_event(&spec, &change)
                    }
                    Err(RecvError::Lagged(n)) => {
                        Event::default().event("lagged").data(n.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok::<_, std::convert::Infallible>(event), (rx, spec, only)));
            }
        });
    served_by(
        &ctx,
        Sse::new(events)
            .keep_alive(KeepAlive::default())
            .into_response(),
    )
}

fn change_event(spec: &StoreSpec, change: &StoreChange) -> Event {
    match entry_json(spec, &change.key, change.value.as_deref()) {
        Ok(mut v) => {
            v["task"] = json!(change.task.to_string());
            Event::default().event("change").data(v.to_string())
        }
        Err(e) => Event::default().event("error").data(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let raw = [0u8, 1, 0xab, 0xff];
        assert_eq!(unhex(&hex(&raw)).unwrap(), raw);
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }
}
