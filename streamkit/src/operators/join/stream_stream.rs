//! Stream-stream windowed joins (inner, left, outer): both sides buffered in changelogged
//! window stores; unmatched records of left and outer joins wait in a third store until their
//! window closes, then leave once, with `None` for the missing side.

use std::marker::PhantomData;
use std::sync::Arc;

use super::Joiner;
use crate::error::{Error, Result};
use crate::operators::late::LateRecords;
use crate::processor::{Data, KeyValueStore, Processor, ProcessorContext, WindowStore};
use crate::record::Record;
use crate::serde::SerdeRef;
use crate::state::codec;
use crate::window::JoinWindows;

/// A record of either input, as the join node receives it.
#[derive(Debug, Clone)]
pub(crate) enum JoinSide<V1, V2> {
    Left(V1),
    Right(V2),
}

/// Tags the left input's records on their way into the join node.
pub(crate) struct TagLeft<V2>(pub PhantomData<fn() -> V2>);

impl<K: Data, V1: Data, V2: Data> Processor<K, V1> for TagLeft<V2> {
    type KOut = K;
    type VOut = JoinSide<V1, V2>;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, JoinSide<V1, V2>>,
        r: Record<K, V1>,
    ) -> Result<()> {
        let value = JoinSide::Left(r.value);
        ctx.forward(Record {
            key: r.key,
            value,
            timestamp: r.timestamp,
            headers: r.headers,
        })
    }
}

/// Tags the right input's records on their way into the join node.
pub(crate) struct TagRight<V1>(pub PhantomData<fn() -> V1>);

impl<K: Data, V1: Data, V2: Data> Processor<K, V2> for TagRight<V1> {
    type KOut = K;
    type VOut = JoinSide<V1, V2>;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, JoinSide<V1, V2>>,
        r: Record<K, V2>,
    ) -> Result<()> {
        let value = JoinSide::Right(r.value);
        ctx.forward(Record {
            key: r.key,
            value,
            timestamp: r.timestamp,
            headers: r.headers,
        })
    }
}

/// Side byte of a waiting record's key in the outer store. As in Kafka Streams'
/// `TimestampedKeyAndJoinSide`, right records sort before left ones of the same timestamp,
/// so records whose windows close together leave in Kafka Streams' order.
const LEFT: u8 = 1;
const RIGHT: u8 = 0;

/// What every task's instance of one join shares.
pub(crate) struct JoinSpec<K, V1, V2, VR> {
    pub windows: JoinWindows,
    pub joiner: Joiner<V1, V2, VR>,
    pub left_store: String,
    pub right_store: String,
    /// Records without a partner yet (left and outer joins).
    pub outer_store: Option<String>,
    pub key_serde: SerdeRef<K>,
    /// Serdes of value lists (one list per key and timestamp: duplicates are kept).
    pub left_list: SerdeRef<Vec<V1>>,
    pub right_list: SerdeRef<Vec<V2>>,
    /// What happens to late records of each side (counted; dead-lettered if configured).
    pub late_left: LateRecords<K, V1>,
    pub late_right: LateRecords<K, V2>,
}

pub(crate) struct StreamStreamJoin<K, V1, V2, VR> {
    pub spec: Arc<JoinSpec<K, V1, V2, VR>>,
    pub state: Option<State<K, V1, V2>>,
}

pub(crate) struct State<K, V1, V2> {
    left: WindowStore<K, Vec<V1>>,
    right: WindowStore<K, Vec<V2>>,
    /// Keys `time ‖ side ‖ key bytes`, values the side's value list: sorted by time, so the
    /// records whose windows closed come first.
    outer: Option<KeyValueStore<Vec<u8>, Vec<u8>>>,
    /// The largest timestamp either input has shown this instance (Kafka Streams' shared
    /// time tracker of a join; not the task's, which other inputs may move).
    stream_time: i64,
    /// A lower bound of the oldest timestamp waiting in `outer` (`i64::MIN`: unknown).
    min_waiting: i64,
    next_expiry: i64,
}

fn waiting_key(time: i64, side: u8, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + key.len());
    k.extend_from_slice(&codec::time(time));
    k.push(side);
    k.extend_from_slice(key);
    k
}

/// How many records a waiting entry of `side` holds.
fn waiting_count<K, V1: Data, V2: Data, VR>(
    spec: &JoinSpec<K, V1, V2, VR>,
    side: u8,
    bytes: &[u8],
) -> Result<usize> {
    Ok(if side == LEFT {
        spec.left_list.deserialize("", bytes)?.len()
    } else {
        spec.right_list.deserialize("", bytes)?.len()
    })
}

fn append<K: Data, V: Data>(store: &WindowStore<K, Vec<V>>, key: &K, t: i64, v: V) -> Result<()> {
    let mut list = store.fetch(key, t)?.unwrap_or_default();
    list.push(v);
    store.put(key, t, Some(&list))
}

impl<K: Data, V1: Data, V2: Data, VR: Data> StreamStreamJoin<K, V1, V2, VR> {
    fn key_bytes(&self, key: &K) -> Result<Vec<u8>> {
        let mut b = Vec::new();
        self.spec.key_serde.serialize("", key, &mut b)?;
        Ok(b)
    }

    /// How far past its timestamp a record's window reaches: `after` for left records,
    /// `before` for right ones (a right record at `t` meets left records in
    /// `[t - after, t + before]`).
    fn reach(&self, side: u8) -> i64 {
        let w = self.spec.windows;
        if side == LEFT {
            w.after_ms
        } else {
            w.before_ms
        }
    }

    /// Whether a record of `side` at `t` can no longer meet a partner at stream time `now`.
    fn closed(&self, side: u8, t: i64, now: i64) -> bool {
        t.saturating_add(self.reach(side))
            .saturating_add(self.spec.windows.grace_ms)
            < now
    }

    /// The buffered records of `side` whose windows are still open: a record whose window
    /// closed has been emitted without partner (left and outer joins) and joins nothing more,
    /// so no `None` result is ever followed by a joined one.
    fn open_partners<V>(&self, side: u8, found: Vec<(i64, Vec<V>)>) -> Vec<(i64, Vec<V>)> {
        let now = self.state.as_ref().expect("initialized").stream_time;
        found
            .into_iter()
            .filter(|(t, _)| !self.closed(side, *t, now))
            .collect()
    }

    /// Puts a record without partner in the outer store, where it waits for its window to
    /// close.
    fn wait<V: Data>(
        &mut self,
        side: u8,
        list_serde: &SerdeRef<Vec<V>>,
        key: &K,
        t: i64,
        value: V,
    ) -> Result<()> {
        let kb = waiting_key(t, side, &self.key_bytes(key)?);
        let state = self.state.as_mut().expect("initialized");
        let outer = state
            .outer
            .as_ref()
            .expect("left and outer joins have the store");
        let mut list = match outer.get(&kb)? {
            Some(bytes) => list_serde.deserialize("", &bytes)?,
            None => Vec::new(),
        };
        list.push(value);
        let mut bytes = Vec::new();
        list_serde.serialize("", &list, &mut bytes)?;
        outer.put(&kb, &bytes)?;
        state.min_waiting = state.min_waiting.min(t);
        Ok(())
    }

    /// Takes records of `side` at these timestamps out of the outer store: they met a
    /// partner. (Read first, so that no needless tombstone reaches the changelog.)
    fn unwait(&self, side: u8, key: &K, times: impl Iterator<Item = i64>) -> Result<()> {
        let state = self.state.as_ref().expect("initialized");
        let Some(outer) = &state.outer else {
            return Ok(());
        };
        let kb = self.key_bytes(key)?;
        for t in times {
            let k = waiting_key(t, side, &kb);
            if outer.get(&k)?.is_some() {
                outer.delete(&k)?;
            }
        }
        Ok(())
    }

    /// Emits, oldest first, every waiting record whose window has closed, with `None` for
    /// the missing side, at its own timestamp.
    fn emit_closed(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<()> {
        let spec = self.spec.clone();
        let w = spec.windows;
        let state = self.state.as_mut().expect("initialized");
        let Some(outer) = &state.outer else {
            return Ok(());
        };
        let now = state.stream_time;
        // Kafka Streams' bookkeeping, kept so that records leave when they do there: the
        // check is skipped while the remembered time plus the shortest reach plus grace has
        // not passed (Kafka Streams uses `after` for both sides; equal for symmetric windows),
        // and a scan remembers the time of the last entry it looked at (the first one of a
        // side whose window is still open ends it once both sides have one).
        let shortest = if spec.joiner.keeps_right() {
            w.before_ms.min(w.after_ms)
        } else {
            w.after_ms
        };
        if state
            .min_waiting
            .saturating_add(shortest)
            .saturating_add(w.grace_ms)
            >= now
        {
            return Ok(());
        }
        let mut last_seen = i64::MAX;
        let (mut left_open, mut right_open) = (false, false);
        let mut closed = Vec::new();
        for (k, v) in outer.all()? {
            if k.len() < 9 {
                return Err(Error::Internal(
                    "corrupt key in a join's outer store".into(),
                ));
            }
            let t = codec::read_time(&k[..8]);
            let side = k[8];
            last_seen = t;
            if left_open && right_open {
                break;
            }
            let reach = if side == LEFT {
                w.after_ms
            } else {
                w.before_ms
            };
            if t.saturating_add(reach).saturating_add(w.grace_ms) >= now {
                if side == LEFT {
                    left_open = true;
                } else {
                    right_open = true;
                }
                // Kafka Streams keeps duplicates as separate entries of its list store: a
                // second record in this list is the entry that ends the scan, at this time.
                if left_open && right_open && waiting_count(&spec, side, &v)? > 1 {
                    break;
                }
                continue;
            }
            outer.delete(&k)?;
            closed.push((t, side, k, v));
        }
        state.min_waiting = last_seen;
        for (t, side, k, v) in closed {
            let key = spec.key_serde.deserialize("", &k[9..])?;
            let results: Vec<VR> = match side {
                LEFT => spec
                    .left_list
                    .deserialize("", &v)?
                    .iter()
                    .filter_map(|v1| spec.joiner.left_only(v1))
                    .collect(),
                RIGHT => spec
                    .right_list
                    .deserialize("", &v)?
                    .iter()
                    .filter_map(|v2| spec.joiner.right_only(v2))
                    .collect(),
                _ => {
                    return Err(Error::Internal(
                        "corrupt side byte in a join's outer store".into(),
                    ));
                }
            };
            for r in results {
                ctx.forward(Record::new(key.clone(), r, t))?;
            }
        }
        Ok(())
    }

    /// Drops buffered records that no record still accepted can meet.
    fn expire(&mut self) -> Result<()> {
        let w = self.spec.windows;
        let state = self.state.as_mut().expect("initialized");
        let now = state.stream_time;
        if now < state.next_expiry {
            return Ok(());
        }
        // A buffered record whose window closed joins nothing any more.
        let keep_from = |reach: i64| now.saturating_sub(reach).saturating_sub(w.grace_ms);
        state.left.remove_older_than(keep_from(w.after_ms))?;
        state.right.remove_older_than(keep_from(w.before_ms))?;
        state.next_expiry = now.saturating_add(w.retention_ms().max(60_000));
        Ok(())
    }
}

impl<K: Data, V1: Data, V2: Data, VR: Data> Processor<K, JoinSide<V1, V2>>
    for StreamStreamJoin<K, V1, V2, VR>
{
    type KOut = K;
    type VOut = VR;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<()> {
        let spec = &self.spec;
        self.state = Some(State {
            left: ctx.window_store(&spec.left_store)?,
            right: ctx.window_store(&spec.right_store)?,
            outer: spec
                .outer_store
                .as_deref()
                .map(|s| ctx.key_value_store(s))
                .transpose()?,
            stream_time: i64::MIN,
            min_waiting: i64::MIN,
            next_expiry: i64::MIN,
        });
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        record: Record<K, JoinSide<V1, V2>>,
    ) -> Result<()> {
        let spec = self.spec.clone();
        let w = spec.windows;
        let t = record.timestamp;
        let side = match record.value {
            JoinSide::Left(_) => LEFT,
            JoinSide::Right(_) => RIGHT,
        };
        let now = self.state.as_ref().expect("initialized").stream_time;
        if now != i64::MIN && self.closed(side, t, now) {
            // Its join window closed: counted, and dead-lettered if configured.
            let Record {
                key,
                value,
                timestamp,
                headers,
            } = record;
            return match value {
                JoinSide::Left(v) => spec.late_left.drop(
                    ctx,
                    &Record {
                        key,
                        value: v,
                        timestamp,
                        headers,
                    },
                ),
                JoinSide::Right(v) => spec.late_right.drop(
                    ctx,
                    &Record {
                        key,
                        value: v,
                        timestamp,
                        headers,
                    },
                ),
            };
        }
        if t >= now {
            self.state.as_mut().expect("initialized").stream_time = t;
            self.emit_closed(ctx)?;
        }
        let Record {
            key,
            value,
            headers,
            ..
        } = record;
        match value {
            JoinSide::Left(v) => {
                let state = self.state.as_ref().expect("initialized");
                append(&state.left, &key, t, v.clone())?;
                let partners = self.open_partners(
                    RIGHT,
                    state.right.fetch_range(
                        &key,
                        t.saturating_sub(w.before_ms),
                        t.saturating_add(w.after_ms),
                    )?,
                );
                if spec.joiner.keeps_right() {
                    self.unwait(RIGHT, &key, partners.iter().map(|(t2, _)| *t2))?;
                }
                for (t2, values) in &partners {
                    for v2 in values {
                        ctx.forward(Record {
                            key: key.clone(),
                            value: spec.joiner.both(&v, v2),
                            timestamp: t.max(*t2),
                            headers: headers.clone(),
                        })?;
                    }
                }
                if partners.is_empty() && spec.joiner.keeps_left() {
                    self.wait(LEFT, &spec.left_list, &key, t, v)?;
                }
            }
            JoinSide::Right(v) => {
                let state = self.state.as_ref().expect("initialized");
                append(&state.right, &key, t, v.clone())?;
                let partners = self.open_partners(
                    LEFT,
                    state.left.fetch_range(
                        &key,
                        t.saturating_sub(w.after_ms),
                        t.saturating_add(w.before_ms),
                    )?,
                );
                if spec.joiner.keeps_left() {
                    self.unwait(LEFT, &key, partners.iter().map(|(t1, _)| *t1))?;
                }
                for (t1, values) in &partners {
                    for v1 in values {
                        ctx.forward(Record {
                            key: key.clone(),
                            value: spec.joiner.both(v1, &v),
                            timestamp: t.max(*t1),
                            headers: headers.clone(),
                        })?;
                    }
                }
                if partners.is_empty() && spec.joiner.keeps_right() {
                    self.wait(RIGHT, &spec.right_list, &key, t, v)?;
                }
            }
        }
        self.expire()
    }
}
