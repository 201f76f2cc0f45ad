//! Foreign-key table-table joins (inner, left), as Kafka Streams does them: the left table
//! subscribes each row to the right row its foreign key names, through a repartition topic
//! keyed by the foreign key; the right side answers through a topic keyed by the left key,
//! with a hash of the left value the answer was computed for, so answers that a newer left
//! value overtook are dropped.

use std::marker::PhantomData;

use super::Joiner;
use crate::error::{Error, Result};
use crate::processor::{Data, KeyValueStore, Processor, ProcessorContext};
use crate::record::Change;
use crate::record::Record;
use crate::serde::{Serde, SerdeError, SerdeRef};

/// Extracts the foreign key from a left value.
pub(crate) type FkExtractor<V, KO> = std::sync::Arc<dyn Fn(&V) -> KO + Send + Sync>;

/// A stable 128-bit hash (FNV-1a) of a serialized left value.
pub(crate) fn value_hash(bytes: &[u8]) -> u128 {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in bytes {
        h ^= u128::from(*b);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    h
}

/// What a left row asks of the right side.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Subscription<K> {
    /// The left row's key.
    pub pk: K,
    /// Hash of the left value; meaningless when unsubscribing.
    pub hash: u128,
    /// `false`: the row no longer points at this foreign key.
    pub subscribe: bool,
}

/// The right side's answer: the right row for the hash of the left value that asked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Response<VO> {
    pub hash: u128,
    pub value: Option<VO>,
}

/// `subscribe (1 byte) ‖ hash (16) ‖ left key`.
pub(crate) struct SubscriptionSerde<K>(pub SerdeRef<K>);

impl<K: 'static> Serde<Subscription<K>> for SubscriptionSerde<K> {
    fn serialize(
        &self,
        topic: &str,
        s: &Subscription<K>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), SerdeError> {
        out.push(u8::from(s.subscribe));
        out.extend_from_slice(&s.hash.to_be_bytes());
        self.0.serialize(topic, &s.pk, out)
    }

    fn deserialize(
        &self,
        topic: &str,
        data: &[u8],
    ) -> std::result::Result<Subscription<K>, SerdeError> {
        if data.len() < 17 || data[0] > 1 {
            return Err(SerdeError::Invalid(
                "not a foreign-key join subscription".into(),
            ));
        }
        Ok(Subscription {
            subscribe: data[0] == 1,
            hash: u128::from_be_bytes(data[1..17].try_into().expect("16 bytes")),
            pk: self.0.deserialize(topic, &data[17..])?,
        })
    }
}

/// `hash (16) ‖ present (1 byte) ‖ right value`.
pub(crate) struct ResponseSerde<VO>(pub SerdeRef<VO>);

impl<VO: 'static> Serde<Response<VO>> for ResponseSerde<VO> {
    fn serialize(
        &self,
        topic: &str,
        r: &Response<VO>,
        out: &mut Vec<u8>,
    ) -> std::result::Result<(), SerdeError> {
        out.extend_from_slice(&r.hash.to_be_bytes());
        match &r.value {
            Some(v) => {
                out.push(1);
                self.0.serialize(topic, v, out)
            }
            None => {
                out.push(0);
                Ok(())
            }
        }
    }

    fn deserialize(
        &self,
        topic: &str,
        data: &[u8],
    ) -> std::result::Result<Response<VO>, SerdeError> {
        if data.len() < 17 || data[16] > 1 {
            return Err(SerdeError::Invalid(
                "not a foreign-key join response".into(),
            ));
        }
        Ok(Response {
            hash: u128::from_be_bytes(data[..16].try_into().expect("16 bytes")),
            value: if data[16] == 1 {
                Some(self.0.deserialize(topic, &data[17..])?)
            } else {
                None
            },
        })
    }
}

fn encode<T: 'static>(serde: &SerdeRef<T>, value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    serde.serialize("", value, &mut out)?;
    Ok(out)
}

/// Left side: turns each change of a left row into subscriptions keyed by foreign key.
pub(crate) struct SubscribeLeft<K, V, KO> {
    pub fk: FkExtractor<V, KO>,
    pub fk_serde: SerdeRef<KO>,
    pub value_serde: SerdeRef<V>,
    pub _types: PhantomData<fn() -> K>,
}

impl<K: Data, V: Data, KO: Data> Processor<K, Change<V>> for SubscribeLeft<K, V, KO> {
    type KOut = KO;
    type VOut = Subscription<K>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KO, Subscription<K>>,
        record: Record<K, Change<V>>,
    ) -> Result<()> {
        let Record {
            key,
            value,
            timestamp,
            headers,
        } = record;
        let new_fk = value.new.as_ref().map(|v| (self.fk)(v));
        let old_fk = value.old.as_ref().map(|v| (self.fk)(v));
        let new_bytes = new_fk
            .as_ref()
            .map(|k| encode(&self.fk_serde, k))
            .transpose()?;
        if let Some(old) = old_fk
            && Some(encode(&self.fk_serde, &old)?) != new_bytes
        {
            // The row left this foreign key (or was deleted): no more answers from there.
            ctx.forward(Record {
                key: old,
                value: Subscription {
                    pk: key.clone(),
                    hash: 0,
                    subscribe: false,
                },
                timestamp,
                headers: headers.clone(),
            })?;
        }
        if let (Some(fk), Some(v)) = (new_fk, &value.new) {
            let hash = value_hash(&encode(&self.value_serde, v)?);
            ctx.forward(Record {
                key: fk,
                value: Subscription {
                    pk: key,
                    hash,
                    subscribe: true,
                },
                timestamp,
                headers,
            })?;
        }
        Ok(())
    }
}

/// What the right side's node receives: a subscription (from the repartition topic) or a
/// change of a right row.
#[derive(Debug, Clone)]
pub(crate) enum RightEvent<K, VO> {
    Subscription(Subscription<K>),
    Row(Change<VO>),
}

/// The subscriptions store of a foreign-key join, bytes to bytes.
pub(crate) type Subscriptions = KeyValueStore<Vec<u8>, Vec<u8>>;

/// The prefix of every subscription of one foreign key: `len(fk) (4) ‖ fk`.
fn fk_prefix(fk: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(4 + fk.len());
    p.extend_from_slice(&(fk.len() as u32).to_be_bytes());
    p.extend_from_slice(fk);
    p
}

/// The smallest byte string above every string starting with `prefix`; `None` if there is
/// none (all bytes 0xff).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// Right side: keeps the subscriptions per foreign key and answers them, on subscription and
/// on every change of the right row.
pub(crate) struct AnswerRight<K, KO, VO> {
    pub fk_serde: SerdeRef<KO>,
    pub pk_serde: SerdeRef<K>,
    pub right_store: String,
    pub subscription_store: String,
    /// The right table's rows and the subscriptions (`len(fk) ‖ fk ‖ left key` → hash).
    pub stores: Option<(KeyValueStore<KO, VO>, Subscriptions)>,
}

impl<K: Data, KO: Data, VO: Data> Processor<KO, RightEvent<K, VO>> for AnswerRight<K, KO, VO> {
    type KOut = K;
    type VOut = Response<VO>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Response<VO>>) -> Result<()> {
        self.stores = Some((
            ctx.key_value_store(&self.right_store)?,
            ctx.key_value_store(&self.subscription_store)?,
        ));
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Response<VO>>,
        record: Record<KO, RightEvent<K, VO>>,
    ) -> Result<()> {
        let (right, subscriptions) = self.stores.as_ref().expect("initialized");
        let prefix = fk_prefix(&encode(&self.fk_serde, &record.key)?);
        match record.value {
            RightEvent::Subscription(s) => {
                let mut k = prefix;
                k.extend_from_slice(&encode(&self.pk_serde, &s.pk)?);
                if !s.subscribe {
                    return subscriptions.delete(&k);
                }
                subscriptions.put(&k, &s.hash.to_be_bytes().to_vec())?;
                let value = right.get(&record.key)?;
                ctx.forward(Record {
                    key: s.pk,
                    value: Response {
                        hash: s.hash,
                        value,
                    },
                    timestamp: record.timestamp,
                    headers: record.headers,
                })
            }
            RightEvent::Row(change) => {
                let found = match successor(&prefix) {
                    Some(end) => subscriptions.range(&prefix, &end)?,
                    None => subscriptions.all()?,
                };
                let mut answers = Vec::new();
                for (k, hash) in found {
                    if !k.starts_with(&prefix) {
                        continue;
                    }
                    let pk = self.pk_serde.deserialize("", &k[prefix.len()..])?;
                    let hash = u128::from_be_bytes(hash.as_slice().try_into().map_err(|_| {
                        Error::Internal("corrupt hash in a foreign-key join's subscriptions".into())
                    })?);
                    answers.push((pk, hash));
                }
                for (pk, hash) in answers {
                    ctx.forward(Record {
                        key: pk,
                        value: Response {
                            hash,
                            value: change.new.clone(),
                        },
                        timestamp: record.timestamp,
                        headers: record.headers.clone(),
                    })?;
                }
                Ok(())
            }
        }
    }
}

/// What the left side's result node receives: a change of a left row or an answer.
#[derive(Debug, Clone)]
pub(crate) enum LeftEvent<V, VO> {
    Row(Change<V>),
    Answer(Response<VO>),
}

/// Left side: joins answers with the current left row, dropping answers computed for an older
/// left value, and keeps the result rows (so each change carries the row it replaces).
pub(crate) struct ResolveLeft<K, V, VO, VR> {
    pub joiner: Joiner<V, VO, VR>,
    pub value_serde: SerdeRef<V>,
    pub left_store: String,
    pub result_store: String,
    pub stores: Option<(KeyValueStore<K, V>, KeyValueStore<K, VR>)>,
}

impl<K: Data, V: Data, VO: Data, VR: Data> Processor<K, LeftEvent<V, VO>>
    for ResolveLeft<K, V, VO, VR>
{
    type KOut = K;
    type VOut = Change<VR>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<()> {
        self.stores = Some((
            ctx.key_value_store(&self.left_store)?,
            ctx.key_value_store(&self.result_store)?,
        ));
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        record: Record<K, LeftEvent<V, VO>>,
    ) -> Result<()> {
        let (left, results) = self.stores.as_ref().expect("initialized");
        let new = match &record.value {
            // A deleted left row deletes its result at once; other changes wait for the
            // answer to their subscription.
            LeftEvent::Row(change) if change.new.is_none() => None,
            LeftEvent::Row(_) => return Ok(()),
            LeftEvent::Answer(answer) => {
                let Some(current) = left.get(&record.key)? else {
                    return Ok(());
                };
                if value_hash(&encode(&self.value_serde, &current)?) != answer.hash {
                    // Computed for a value the row no longer has; its own answer follows.
                    return Ok(());
                }
                match &answer.value {
                    Some(vo) => Some(self.joiner.both(&current, vo)),
                    None => self.joiner.left_only(&current),
                }
            }
        };
        let old = results.get(&record.key)?;
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        match &new {
            Some(v) => results.put(&record.key, v)?,
            None => results.delete(&record.key)?,
        }
        ctx.forward(Record {
            key: record.key,
            value: Change { new, old },
            timestamp: record.timestamp,
            headers: record.headers,
        })
    }
}

/// Wraps a stream's values into one of the join node's event types.
pub(crate) struct Wrap<VIn, VOut>(pub fn(VIn) -> VOut);

impl<K: Data, VIn: Data, VOut: Data> Processor<K, VIn> for Wrap<VIn, VOut> {
    type KOut = K;
    type VOut = VOut;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VOut>,
        r: Record<K, VIn>,
    ) -> Result<()> {
        let value = (self.0)(r.value);
        ctx.forward(Record {
            key: r.key,
            value,
            timestamp: r.timestamp,
            headers: r.headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::serde::Serdes;

    #[test]
    fn subscriptions_and_responses_round_trip_and_reject_garbage() {
        let s = SubscriptionSerde(Arc::new(Serdes::string()) as SerdeRef<String>);
        let sub = Subscription {
            pk: "order-1".to_string(),
            hash: value_hash(b"x"),
            subscribe: true,
        };
        let mut buf = Vec::new();
        s.serialize("t", &sub, &mut buf).unwrap();
        assert_eq!(s.deserialize("t", &buf).unwrap(), sub);
        assert!(s.deserialize("t", &buf[..10]).is_err());
        let r = ResponseSerde(Arc::new(Serdes::i64()) as SerdeRef<i64>);
        for resp in [
            Response {
                hash: 7,
                value: Some(42),
            },
            Response {
                hash: 9,
                value: None,
            },
        ] {
            let mut buf = Vec::new();
            r.serialize("t", &resp, &mut buf).unwrap();
            assert_eq!(r.deserialize("t", &buf).unwrap(), resp);
        }
        assert!(r.deserialize("t", &[0; 5]).is_err());
        assert_ne!(value_hash(b"a"), value_hash(b"b"));
        assert_eq!(value_hash(b""), 0x6c62272e07bb014262b821756295c58d);
    }
}
