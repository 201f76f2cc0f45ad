//! The live model: a naive Bayes classifier of gender from first name and country, trained
//! one user at a time from the stream (the original's Django consumer retrained a pickled
//! model as users arrived).
//!
//! Its counts live in a RocksDB key-value store ([`MODEL_STORE`], changelogged like every
//! store), so the model survives restarts and moves with its task: a restarted application
//! opens the store as it left it (or restores it from the changelog) and keeps learning from
//! there. One user in [`HOLD_OUT_EVERY`] (chosen by a hash of its id, so always the same
//! ones) is never trained on: the model predicts it first, and the running accuracy on these
//! held-out users is kept in the store and sent to [`EVAL_TOPIC`] as it learns.
//!
//! Features, each present or absent: the first name (lower case), its last two and three
//! letters (names sharing an ending often share a gender: Maria, Julia, Lucía), the country,
//! and first name with country. The probability of a feature given a gender is its count in
//! that gender's training users plus one, over the users plus two (Laplace smoothing).

use serde::{Deserialize, Serialize};
use streamkit::prelude::*;
use streamkit::processor::StoreBuilder;

use crate::model::CreatedUser;

/// The store of the model's counts.
pub const MODEL_STORE: &str = "gender-model";
/// The topic of the held-out evaluations, one per held-out user.
pub const EVAL_TOPIC: &str = "gender-model-eval";
/// One user in this many is held out.
pub const HOLD_OUT_EVERY: u64 = 5;
/// Store key of the per-gender user counts.
const CLASS_KEY: &str = "class";
/// Store key of the evaluation.
const EVAL_KEY: &str = "eval";
/// Held-out results kept for the recent accuracy.
const RECENT: usize = 50;
/// One point of the learning curve every this many held-out users.
const CURVE_EVERY: u64 = 10;

/// The two classes, in the order of every count pair.
pub const GENDERS: [&str; 2] = ["female", "male"];

/// What the model store holds under a key: counts per gender, a seen marker, or the
/// evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Entry {
    /// Training users per gender having the feature (or, under `class`, all of them).
    Counts([u64; 2]),
    /// A user already taken into account (trained or evaluated): a user polled twice
    /// counts once.
    Seen,
    /// The held-out evaluation.
    Eval(Evaluation),
}

/// The accuracy on held-out users, as the model learned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Held-out users predicted.
    pub seen: u64,
    /// Of which correctly.
    pub correct: u64,
    /// The last results, oldest first.
    pub recent: Vec<bool>,
    /// (held-out users so far, training users then, accuracy so far) every
    /// ten held-out users.
    pub curve: Vec<(u64, u64, f64)>,
}

impl Evaluation {
    /// Accuracy over every held-out user (0 before any).
    pub fn accuracy(&self) -> f64 {
        if self.seen == 0 {
            0.0
        } else {
            self.correct as f64 / self.seen as f64
        }
    }

    /// Accuracy over the last held-out users.
    pub fn recent_accuracy(&self) -> f64 {
        if self.recent.is_empty() {
            0.0
        } else {
            self.recent.iter().filter(|c| **c).count() as f64 / self.recent.len() as f64
        }
    }

    fn record(&mut self, correct: bool, trained: u64) {
        self.seen += 1;
        self.correct += u64::from(correct);
        self.recent.push(correct);
        if self.recent.len() > RECENT {
            self.recent.remove(0);
        }
        if self.seen.is_multiple_of(CURVE_EVERY) {
            self.curve.push((self.seen, trained, self.accuracy()));
        }
    }
}

/// A prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// `female` or `male`.
    pub gender: String,
    /// Its probability under the model.
    pub probability: f64,
    /// Training users the model has seen.
    pub trained_on: u64,
}

/// The features of a first name and a country.
pub fn features(first_name: &str, country: &str) -> Vec<String> {
    let name = first_name.trim().to_lowercase();
    let country = country.trim().to_lowercase();
    let chars: Vec<char> = name.chars().collect();
    let suffix = |n: usize| {
        chars[chars.len().saturating_sub(n)..]
            .iter()
            .collect::<String>()
    };
    let mut f = vec![
        format!("first={name}"),
        format!("suf2={}", suffix(2)),
        format!("suf3={}", suffix(3)),
    ];
    if !country.is_empty() {
        f.push(format!("country={country}"));
        f.push(format!("first+country={name}|{country}"));
    }
    f
}

fn class_index(gender: &str) -> Option<usize> {
    GENDERS.iter().position(|g| *g == gender)
}

/// Predicts with the counts `lookup` gives (`None`: a feature never seen): the gender with
/// the larger posterior, and its probability. `None` before any training user.
pub fn predict(
    first_name: &str,
    country: &str,
    lookup: impl Fn(&str) -> Option<[u64; 2]>,
) -> Option<Prediction> {
    let class = lookup(CLASS_KEY)?;
    let total = class[0] + class[1];
    if total == 0 {
        return None;
    }
    let mut log = [0.0f64; 2];
    for c in 0..2 {
        log[c] = ((class[c] as f64 + 1.0) / (total as f64 + 2.0)).ln();
    }
    for f in features(first_name, country) {
        let counts = lookup(&feature_key(&f)).unwrap_or([0, 0]);
        for c in 0..2 {
            log[c] += ((counts[c] as f64 + 1.0) / (class[c] as f64 + 2.0)).ln();
        }
    }
    let best = usize::from(log[1] > log[0]);
    // P(best) = 1 / (1 + e^(log[other] − log[best])).
    let probability = 1.0 / (1.0 + (log[1 - best] - log[best]).exp());
    Some(Prediction {
        gender: GENDERS[best].to_string(),
        probability,
        trained_on: total,
    })
}

fn feature_key(feature: &str) -> String {
    format!("f:{feature}")
}

/// Whether the user with this id is held out (never trained on).
pub fn is_held_out(id: &str) -> bool {
    // FNV-1a: stable across runs and versions, unlike the std hasher.
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h.is_multiple_of(HOLD_OUT_EVERY)
}

/// The store's builder, to add to the topology.
pub fn model_store() -> StoreBuilder {
    StoreBuilder::key_value(MODEL_STORE, Serdes::string(), Serdes::json::<Entry>())
}

/// Counts pairs of a store, for [`predict`].
pub fn counts_in(get: impl Fn(&str) -> Option<Entry>) -> impl Fn(&str) -> Option<[u64; 2]> {
    move |key| match get(key) {
        Some(Entry::Counts(c)) => Some(c),
        _ => None,
    }
}

/// The evaluation kept in a store.
pub fn evaluation_in(get: impl Fn(&str) -> Option<Entry>) -> Evaluation {
    match get(EVAL_KEY) {
        Some(Entry::Eval(e)) => e,
        _ => Evaluation::default(),
    }
}

/// The training processor: trains on a user, or (held out) evaluates the model on it and
/// forwards the evaluation.
#[derive(Debug, Default)]
pub struct Trainer;

impl Processor<String, CreatedUser> for Trainer {
    type KOut = String;
    type VOut = Evaluation;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, Evaluation>,
        record: Record<String, CreatedUser>,
    ) -> Result<()> {
        let store = ctx.key_value_store::<String, Entry>(MODEL_STORE)?;
        let user = &record.value;
        let Some(class) = class_index(&user.gender) else {
            return Ok(());
        };
        let seen_key = format!("u:{}", user.id);
        if store.get(&seen_key)?.is_some() {
            return Ok(());
        }
        store.put(&seen_key, &Entry::Seen)?;
        let get = |k: &str| store.get(&k.to_string()).ok().flatten();
        if is_held_out(&user.id) {
            let predicted = predict(&user.first_name, &user.country, counts_in(get));
            let correct = predicted.as_ref().is_some_and(|p| p.gender == user.gender);
            let trained = predicted.map_or(0, |p| p.trained_on);
            let mut eval = evaluation_in(get);
            eval.record(correct, trained);
            store.put(&EVAL_KEY.to_string(), &Entry::Eval(eval.clone()))?;
            return ctx.forward(record.with_value(eval));
        }
        for key in features(&user.first_name, &user.country)
            .iter()
            .map(|f| feature_key(f))
            .chain([CLASS_KEY.to_string()])
        {
            let mut counts = match store.get(&key)? {
                Some(Entry::Counts(c)) => c,
                _ => [0, 0],
            };
            counts[class] += 1;
            store.put(&key, &Entry::Counts(counts))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn train(counts: &mut HashMap<String, [u64; 2]>, name: &str, country: &str, gender: &str) {
        let c = class_index(gender).unwrap();
        for key in features(name, country)
            .iter()
            .map(|f| feature_key(f))
            .chain([CLASS_KEY.to_string()])
        {
            counts.entry(key).or_default()[c] += 1;
        }
    }

    #[test]
    fn learns_names_and_generalises_by_ending() {
        let mut counts = HashMap::new();
        assert!(predict("Maria", "Spain", |k| counts.get(k).copied()).is_none());
        for (n, g) in [
            ("Maria", "female"),
            ("Julia", "female"),
            ("Paula", "female"),
            ("Pablo", "male"),
            ("Mario", "male"),
            ("Diego", "male"),
        ] {
            train(&mut counts, n, "Spain", g);
        }
        let p = predict("Maria", "Spain", |k| counts.get(k).copied()).unwrap();
        assert_eq!(p.gender, "female");
        assert!(p.probability > 0.9, "{p:?}");
        assert_eq!(p.trained_on, 6);
        assert_eq!(
            predict("Pablo", "Spain", |k| counts.get(k).copied())
                .unwrap()
                .gender,
            "male"
        );
        // Never seen, but ends like the women's names.
        assert_eq!(
            predict("Carla", "Spain", |k| counts.get(k).copied())
                .unwrap()
                .gender,
            "female"
        );
    }

    #[test]
    fn hold_out_takes_about_one_in_five_stably() {
        let ids: Vec<String> = (0..2000).map(|i| format!("user-{i}")).collect();
        let held = ids.iter().filter(|i| is_held_out(i)).count();
        assert!((300..500).contains(&held), "{held}");
        assert!(ids.iter().all(|i| is_held_out(i) == is_held_out(i)));
    }

    #[test]
    fn evaluation_keeps_recent_results_and_a_curve() {
        let mut e = Evaluation::default();
        for i in 0..60 {
            e.record(i % 4 != 0, i * 4);
        }
        assert_eq!(e.seen, 60);
        assert_eq!(e.correct, 45);
        assert_eq!(e.recent.len(), RECENT);
        assert_eq!(e.curve.len(), 6);
        assert!((e.accuracy() - 0.75).abs() < 1e-9);
    }
}
