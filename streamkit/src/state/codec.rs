//! Byte layouts of windowed store keys: `key ‖ t1 ‖ [t2]`, timestamps 8 bytes big-endian with
//! the sign bit flipped so that negative times sort before positive ones. A variable-length
//! key followed by a fixed suffix sorts by (key, time) only among entries of the *same* key,
//! so every scan is per key and checks the key bytes of what it finds.

/// Layout version, written next to every persistent store and checked when it opens; bump
/// it (with a migration) if a layout ever changes.
pub const LAYOUT_VERSION: u8 = 1;

pub fn time(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn read_time(b: &[u8]) -> i64 {
    (u64::from_be_bytes(b.try_into().expect("8 bytes")) ^ (1 << 63)) as i64
}

pub fn key_with(key: &[u8], times: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 8 * times.len());
    out.extend_from_slice(key);
    for t in times {
        out.extend_from_slice(&time(*t));
    }
    out
}

/// The time that decides when an entry of a store of `kind` expires: a window's start, a
/// session's end; `None` for key-value stores (and keys too short to hold it).
pub fn expiry_time(kind: crate::state::spec::StoreKind, raw: &[u8]) -> Option<i64> {
    use crate::state::spec::StoreKind;
    // Window keys end with the start; session keys with end ‖ start.
    let from_end = match kind {
        StoreKind::KeyValue => return None,
        StoreKind::Window { .. } => 8,
        StoreKind::Session { .. } => 16,
    };
    let at = raw.len().checked_sub(from_end)?;
    Some(read_time(&raw[at..at + 8]))
}

/// Splits `key ‖ n timestamps`; `None` if too short.
pub fn split(raw: &[u8], n: usize) -> Option<(&[u8], Vec<i64>)> {
    let suffix = 8 * n;
    if raw.len() < suffix {
        return None;
    }
    let (key, times) = raw.split_at(raw.len() - suffix);
    Some((key, times.chunks(8).map(read_time).collect()))
}

#[cfg(test)]
mod codec_properties {
    use crate::state::codec;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn window_keys_round_trip(key in proptest::collection::vec(any::<u8>(), 0..40), t in any::<i64>()) {
            let raw = codec::key_with(&key, &[t]);
            let (k, times) = codec::split(&raw, 1).unwrap();
            prop_assert_eq!(k, key.as_slice());
            prop_assert_eq!(times, vec![t]);
        }

        #[test]
        fn byte_order_is_time_order_within_a_key(key in proptest::collection::vec(any::<u8>(), 0..20), a in any::<i64>(), b in any::<i64>()) {
            let (ka, kb) = (codec::key_with(&key, &[a]), codec::key_with(&key, &[b]));
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
        }

        #[test]
        fn byte_order_is_key_then_time_order_for_equal_length_keys(
            k1 in proptest::collection::vec(any::<u8>(), 8),
            k2 in proptest::collection::vec(any::<u8>(), 8),
            a in any::<i64>(),
            b in any::<i64>(),
        ) {
            let (x, y) = (codec::key_with(&k1, &[a]), codec::key_with(&k2, &[b]));
            prop_assert_eq!(x.cmp(&y), (&k1, a).cmp(&(&k2, b)));
        }

        #[test]
        fn session_keys_order_by_end_then_start(key in proptest::collection::vec(any::<u8>(), 0..20), e1 in any::<i64>(), s1 in any::<i64>(), e2 in any::<i64>(), s2 in any::<i64>()) {
            let (x, y) = (codec::key_with(&key, &[e1, s1]), codec::key_with(&key, &[e2, s2]));
            prop_assert_eq!(x.cmp(&y), (e1, s1).cmp(&(e2, s2)));
            let (k, times) = codec::split(&x, 2).unwrap();
            prop_assert_eq!(k, key.as_slice());
            prop_assert_eq!(times, vec![e1, s1]);
        }

        #[test]
        fn expiry_time_is_the_window_start_or_the_session_end(key in proptest::collection::vec(any::<u8>(), 0..20), a in any::<i64>(), b in any::<i64>()) {
            use crate::state::spec::StoreKind;
            let window = StoreKind::Window { retention_ms: 1 };
            let session = StoreKind::Session { retention_ms: 1 };
            prop_assert_eq!(codec::expiry_time(window, &codec::key_with(&key, &[a])), Some(a));
            prop_assert_eq!(codec::expiry_time(session, &codec::key_with(&key, &[a, b])), Some(a));
            prop_assert_eq!(codec::expiry_time(StoreKind::KeyValue, &codec::key_with(&key, &[a])), None);
            prop_assert_eq!(codec::expiry_time(session, &key[..key.len().min(15)]), None);
        }

        #[test]
        fn short_input_is_rejected(raw in proptest::collection::vec(any::<u8>(), 0..8)) {
            prop_assert!(codec::split(&raw, 1).is_none());
        }
    }
}
