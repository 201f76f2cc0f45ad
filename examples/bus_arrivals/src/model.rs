//! Predicting delays: a random-forest regressor (smartcore) trained on the training-sample
//! store, judged on a holdout against a baseline that predicts each line's mean delay.
//!
//! The features are what is known when a position arrives — line, direction, time of day,
//! day of week, position, distance to the next stop and its proximity text, the scheduled
//! arrival — and never the expected arrival time, from which the delay would be read off.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use smartcore::ensemble::random_forest_regressor::{
    RandomForestRegressor, RandomForestRegressorParameters,
};
use smartcore::linalg::basic::matrix::DenseMatrix;

use crate::clean::ProcessedRow;

/// How the forest is grown and when.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Rows in the training sample before the first training.
    pub min_rows: usize,
    /// Trees in the forest.
    pub trees: usize,
    /// Largest tree depth.
    pub max_depth: u16,
    /// Time between two trainings.
    pub retrain_every: Duration,
    /// Train on at most this many rows (a deterministic subsample beyond it).
    pub max_rows: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            min_rows: 1_000,
            trees: 30,
            max_depth: 10,
            retrain_every: Duration::from_secs(30),
            max_rows: 20_000,
        }
    }
}

/// How well a trained model does on rows it did not train on.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelReport {
    /// Rows trained on.
    pub trained_on: usize,
    /// Holdout rows.
    pub holdout: usize,
    /// Mean absolute error of the forest on the holdout, minutes.
    pub model_mae: f64,
    /// Mean absolute error of the baseline (the line's mean delay), minutes.
    pub baseline_mae: f64,
    /// Seconds the training took.
    pub training_secs: f64,
    /// How many models were trained so far, this one included.
    pub version: u64,
}

/// A trained model with its baseline.
pub struct Model {
    forest: RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>,
    lines: Vec<String>,
    line_means: BTreeMap<String, f64>,
    global_mean: f64,
    /// Its quality.
    pub report: ModelReport,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("lines", &self.lines)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// Names of the features, in the order of [`features`].
pub const FEATURES: [&str; 10] = [
    "line",
    "direction",
    "minute of day",
    "day of week",
    "latitude",
    "longitude",
    "distance from stop",
    "proximity",
    "scheduled minute of day",
    "minutes until scheduled arrival",
];

/// A number for a proximity text.
fn proximity_code(text: &str) -> f64 {
    match text {
        "at stop" => 0.0,
        "approaching" => 1.0,
        "< 1 stop away" => 2.0,
        t if t.ends_with("stop away") || t.ends_with("stops away") => {
            3.0 + t
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or(1.0)
        }
        t if t.ends_with("miles away") => 10.0,
        _ => -1.0,
    }
}

/// The feature vector of a row; `lines` gives lines their numbers.
pub fn features(row: &ProcessedRow, lines: &[String]) -> Vec<f64> {
    let line = lines.binary_search(&row.line).map_or(-1.0, |i| i as f64);
    let minute_of_day = f64::from(row.recorded_hour * 60 + row.recorded_minute);
    let scheduled_minute = f64::from(row.scheduled_hour * 60 + row.scheduled_minute);
    // Minutes from the report to the scheduled arrival, across midnight either way.
    let mut until = scheduled_minute - minute_of_day;
    if until > 720.0 {
        until -= 1_440.0;
    } else if until < -720.0 {
        until += 1_440.0;
    }
    vec![
        line,
        row.direction as f64,
        minute_of_day,
        f64::from(row.recorded_weekday),
        row.latitude,
        row.longitude,
        row.distance_from_stop,
        proximity_code(&row.proximity),
        scheduled_minute,
        until,
    ]
}

/// Whether a row belongs to the holdout (one in five, fixed per row).
fn in_holdout(row: &ProcessedRow) -> bool {
    let mut h: u64 = 1_469_598_103_934_665_603;
    for b in row.vehicle.bytes().chain(row.recorded_at.to_be_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(1_099_511_628_211);
    }
    h.is_multiple_of(5)
}

fn mae(predicted: &[f64], actual: &[f64]) -> f64 {
    let n = actual.len().max(1) as f64;
    predicted
        .iter()
        .zip(actual)
        .map(|(p, a)| (p - a).abs())
        .sum::<f64>()
        / n
}

/// Why a model could not be trained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// Too few rows for a training and a holdout set.
    #[error("too few rows to train on: {have}, need {need}")]
    TooFewRows {
        /// Rows available.
        have: usize,
        /// Rows needed.
        need: usize,
    },
    /// smartcore failed.
    #[error("training the forest: {0}")]
    Fit(String),
}

impl Model {
    /// Trains on four fifths of `rows` and measures on the rest.
    pub fn train(
        rows: &[ProcessedRow],
        opts: &TrainOptions,
        version: u64,
    ) -> Result<Model, TrainError> {
        let started = Instant::now();
        let need = opts.min_rows.max(10);
        if rows.len() < need {
            return Err(TrainError::TooFewRows {
                have: rows.len(),
                need,
            });
        }
        let (holdout, train): (Vec<&ProcessedRow>, Vec<&ProcessedRow>) =
            rows.iter().partition(|r| in_holdout(r));
        // A deterministic subsample keeps training time bounded on big samples.
        let stride = train.len().div_ceil(opts.max_rows.max(1)).max(1);
        let train: Vec<&ProcessedRow> = train.into_iter().step_by(stride).collect();
        if train.len() < 5 || holdout.is_empty() {
            return Err(TrainError::TooFewRows {
                have: rows.len(),
                need,
            });
        }
        let mut lines: Vec<String> = train.iter().map(|r| r.line.clone()).collect();
        lines.sort();
        lines.dedup();
        let mut sums: BTreeMap<String, (f64, u64)> = BTreeMap::new();
        for r in &train {
            let e = sums.entry(r.line.clone()).or_default();
            e.0 += r.delay_minutes;
            e.1 += 1;
        }
        let line_means: BTreeMap<String, f64> = sums
            .into_iter()
            .map(|(l, (s, n))| (l, s / n as f64))
            .collect();
        let global_mean = train.iter().map(|r| r.delay_minutes).sum::<f64>() / train.len() as f64;

        let x: Vec<Vec<f64>> = train.iter().map(|r| features(r, &lines)).collect();
        let y: Vec<f64> = train.iter().map(|r| r.delay_minutes).collect();
        let x = DenseMatrix::from_2d_vec(&x).map_err(|e| TrainError::Fit(e.to_string()))?;
        let params = RandomForestRegressorParameters::default()
            .with_n_trees(opts.trees.max(1))
            .with_max_depth(opts.max_depth.max(1))
            .with_min_samples_leaf(2)
            .with_seed(version);
        let forest = RandomForestRegressor::fit(&x, &y, params)
            .map_err(|e| TrainError::Fit(e.to_string()))?;
        let mut model = Model {
            forest,
            lines,
            line_means,
            global_mean,
            report: ModelReport {
                trained_on: train.len(),
                holdout: holdout.len(),
                model_mae: 0.0,
                baseline_mae: 0.0,
                training_secs: 0.0,
                version,
            },
        };
        let holdout: Vec<ProcessedRow> = holdout.into_iter().cloned().collect();
        let actual: Vec<f64> = holdout.iter().map(|r| r.delay_minutes).collect();
        let predicted = model.predict(&holdout);
        let baseline: Vec<f64> = holdout.iter().map(|r| model.baseline(r)).collect();
        model.report.model_mae = mae(&predicted, &actual);
        model.report.baseline_mae = mae(&baseline, &actual);
        model.report.training_secs = started.elapsed().as_secs_f64();
        Ok(model)
    }

    /// The baseline's prediction: the mean delay of the row's line in the training set.
    pub fn baseline(&self, row: &ProcessedRow) -> f64 {
        self.line_means
            .get(&row.line)
            .copied()
            .unwrap_or(self.global_mean)
    }

    /// Predicted delays, minutes, one per row.
    pub fn predict(&self, rows: &[ProcessedRow]) -> Vec<f64> {
        if rows.is_empty() {
            return Vec::new();
        }
        let x: Vec<Vec<f64>> = rows.iter().map(|r| features(r, &self.lines)).collect();
        let predicted = DenseMatrix::from_2d_vec(&x)
            .ok()
            .and_then(|x| self.forest.predict(&x).ok());
        // smartcore only fails on a shape mismatch, which features() rules out; the
        // baseline is the honest answer if it ever does.
        predicted.unwrap_or_else(|| rows.iter().map(|r| self.baseline(r)).collect())
    }
}

/// The current model, shared between the trainer and the web page.
#[derive(Debug, Clone, Default)]
pub struct SharedModel {
    inner: Arc<RwLock<Option<Arc<Model>>>>,
    last_error: Arc<RwLock<Option<String>>>,
}

impl SharedModel {
    /// The latest model, if one was trained.
    pub fn get(&self) -> Option<Arc<Model>> {
        self.inner.read().expect("model lock").clone()
    }

    /// Replaces the model.
    pub fn set(&self, model: Model) {
        *self.inner.write().expect("model lock") = Some(Arc::new(model));
    }

    /// Why the last training attempt did not produce a model (too few rows, …).
    pub fn last_error(&self) -> Option<String> {
        self.last_error.read().expect("error lock").clone()
    }

    fn set_error(&self, e: Option<String>) {
        *self.last_error.write().expect("error lock") = e;
    }
}

/// Trains in the background: once `rows()` returns at least `min_rows` rows, then every
/// `retrain_every`, until `stop` is set.
pub fn spawn_trainer(
    opts: TrainOptions,
    model: SharedModel,
    stop: Arc<AtomicBool>,
    rows: impl Fn() -> anyhow::Result<Vec<ProcessedRow>> + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("bus-trainer".into())
        .spawn(move || {
            let mut version = 0;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                let attempt = rows().map_err(|e| format!("{e:#}")).and_then(|rows| {
                    Model::train(&rows, &opts, version + 1).map_err(|e| e.to_string())
                });
                match attempt {
                    Ok(m) => {
                        version += 1;
                        tracing::info!(
                            version,
                            rows = m.report.trained_on,
                            model_mae = m.report.model_mae,
                            baseline_mae = m.report.baseline_mae,
                            "model trained"
                        );
                        model.set(m);
                        model.set_error(None);
                        next = Instant::now() + opts.retrain_every;
                    }
                    Err(e) => {
                        model.set_error(Some(e));
                        // Not enough rows yet (or the stores are not open): look again soon.
                        next = Instant::now() + Duration::from_millis(500);
                    }
                }
            }
        })
        .expect("spawning the trainer thread")
}
