//! `train`: fit logistic regression and gradient-boosted trees on an Arrow table with a 0/1
//! label, evaluate them on a held-out split, export ONNX and publish a registry version.
//!
//! Flow of [`train`]:
//! 1. **Columns** ([`data`]): the features ([`TrainSpec::features`], default every column but
//!    the label, the time column and [`TrainSpec::exclude`]), the label and the optional time
//!    column are read from the batches. Numeric features become `f32` (null → NaN); text
//!    features become categorical.
//! 2. **Splits**: by time when [`TrainSpec::time_column`] is set (earliest 70 % train, next
//!    15 % validation, last 15 % test, boundaries on timestamps), else a seeded shuffle. Each
//!    split must hold both classes.
//! 3. **Encoding**: each categorical feature's vocabulary comes from the training split (most
//!    frequent first, ties by name). The model tensor `input [N, F]` holds numeric values and
//!    vocabulary codes; a null or unseen category is code `K` = vocabulary length.
//! 4. **Models**: [`LrParams`] logistic regression (standardized numerics with missing → mean,
//!    one-hot categoricals where code `K` or NaN one-hots to all zeros, L2, Newton) and/or
//!    [`GbdtParams`] boosted trees (histogram bins, missing and code `K` go right at every
//!    split, early stopping on validation log-loss). With [`ModelType::Both`] the one with the
//!    higher validation AUC is chosen (a tie chooses logistic regression).
//! 5. **Evaluation** ([`Metrics`]) of the exported models on the validation and test splits;
//!    the **signature** (ordered features, kinds, vocabularies) and the **reference profile**
//!    of the training rows and the chosen model's training scores.
//!
//! [`TrainReport`] holds all of it; [`TrainReport::write_dir`] writes `model.onnx`,
//! `signature.json`, `profile.json`, `metrics.json` (and `lineage.json`); [`publish`] publishes
//! the same files as a new registry version with lineage in the manifest, optionally moving an
//! alias. Everything is deterministic for a fixed [`TrainSpec::seed`] (no threads, fixed
//! summation order): two runs give identical `model.onnx` bytes and metrics.

pub mod data;
pub mod gbdt;
pub mod logistic;
pub mod metrics;
mod service;
pub use service::{ServiceTrainingSet, service_training_set};
mod profile;
mod split;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vane_registry::{
    FeatureKind, FeatureSpec, OnlineSpec, Profile, PublishRequest, RegistryError, RemoteOptions,
    Signature, TensorSpec,
};

pub use data::{file_lineage, read_table};
pub use gbdt::GbdtParams;
pub use logistic::LrParams;
pub use metrics::Metrics;

use crate::onnx::{INPUT, Model, ModelError, OUTPUT};
use data::{Raw, RawFeature};

/// Why training or publishing failed; every message names the column, row or setting.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{role} column {column:?} not found; columns: {}", .available.join(", "))]
    MissingColumn {
        role: &'static str,
        column: String,
        available: Vec<String>,
    },
    #[error("{role} column {column:?}: {message}")]
    Column {
        role: &'static str,
        column: String,
        message: String,
    },
    #[error("reading {}: {message}", .path.display())]
    Read { path: PathBuf, message: String },
    #[error("writing {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Which models to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    Lr,
    Gbdt,
    /// Both; the higher validation AUC is published.
    Both,
}

impl FromStr for ModelType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lr" => Ok(Self::Lr),
            "gbdt" => Ok(Self::Gbdt),
            "both" => Ok(Self::Both),
            _ => Err(format!("model type {s:?}: expected lr, gbdt or both")),
        }
    }
}

impl fmt::Display for ModelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Lr => "lr",
            Self::Gbdt => "gbdt",
            Self::Both => "both",
        })
    }
}

/// A fitted model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Lr,
    Gbdt,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Self::Lr => "lr",
            Self::Gbdt => "gbdt",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to train on and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainSpec {
    /// The label column: 0/1 (integers, floats or booleans), or any values with
    /// `positive_label`.
    pub label: String,
    /// The label value of the positive class (1); every other value is 0 (e.g. `bad` for
    /// OpenML's credit-g, `2` for the numeric German credit coding).
    pub positive_label: Option<String>,
    /// Feature columns in tensor order; empty = every column except the label, the time column
    /// and `exclude`, in table order.
    pub features: Vec<String>,
    /// Columns left out when `features` is empty.
    pub exclude: Vec<String>,
    /// Kind overrides by column name (e.g. an integer code column as categorical).
    pub kinds: BTreeMap<String, FeatureKind>,
    /// Split by this column's time order instead of at random.
    pub time_column: Option<String>,
    pub model_type: ModelType,
    /// Seeds the random split and the profile's reference sample.
    pub seed: u64,
    pub train_fraction: f64,
    pub valid_fraction: f64,
    /// A categorical feature with more categories than this in the training split is refused.
    pub max_categories: usize,
    /// Values per numeric feature in the profile's reference sample.
    pub profile_sample: usize,
    pub lr: LrParams,
    pub gbdt: GbdtParams,
    /// Train only on this most recent share of the rows, by `time_column` (retraining on newer
    /// data); `None` = every row.
    pub recent: Option<f64>,
    /// Vocabularies to keep, by feature (the served version's): their categories keep their
    /// codes and new ones are appended, so a retrained version can replace the served one
    /// without changing what a code means.
    pub base_vocab: BTreeMap<String, Vec<String>>,
}

impl Default for TrainSpec {
    fn default() -> Self {
        Self {
            label: String::new(),
            positive_label: None,
            features: Vec::new(),
            exclude: Vec::new(),
            kinds: BTreeMap::new(),
            time_column: None,
            model_type: ModelType::Both,
            seed: 42,
            train_fraction: 0.70,
            valid_fraction: 0.15,
            max_categories: 256,
            profile_sample: 10_000,
            lr: LrParams::default(),
            gbdt: GbdtParams::default(),
            recent: None,
            base_vocab: BTreeMap::new(),
        }
    }
}

impl TrainSpec {
    /// Defaults with `label`.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Invalid(m));
        if self.label.is_empty() {
            return bad("no label column given".into());
        }
        let (t, v) = (self.train_fraction, self.valid_fraction);
        if !(t > 0.0 && v > 0.0 && t + v < 1.0) {
            return bad(format!(
                "split fractions train {t} + valid {v} must be positive and leave some test rows"
            ));
        }
        if let Some(r) = self.recent {
            if !(r > 0.0 && r <= 1.0) {
                return bad(format!("recent share {r} must be within (0, 1]"));
            }
            if self.time_column.is_none() {
                return bad("training on the recent rows needs a time column".into());
            }
        }
        if self.max_categories == 0 {
            return bad("max_categories must be at least 1".into());
        }
        if self.profile_sample > vane_registry::PROFILE_MAX_SAMPLE {
            return bad(format!(
                "profile_sample {} exceeds the registry's limit {}",
                self.profile_sample,
                vane_registry::PROFILE_MAX_SAMPLE
            ));
        }
        if !(self.lr.l2 >= 0.0 && self.lr.max_iter > 0) {
            return bad("lr l2 must be >= 0 and max_iter >= 1".into());
        }
        self.gbdt.validate().map_err(TrainError::Invalid)?;
        let mut seen = std::collections::HashSet::new();
        for f in &self.features {
            if !seen.insert(f) {
                return bad(format!("feature {f:?} is listed twice"));
            }
            if *f == self.label || Some(f) == self.time_column.as_ref() {
                return bad(format!("{f:?} is the label or time column, not a feature"));
            }
        }
        Ok(())
    }
}

/// One model input as trained: the signature entry in tensor column order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureInfo {
    pub name: String,
    pub kind: FeatureKind,
    /// Datatype a client sends (`FP32`, `INT64`, …, `BYTES` for categorical).
    pub dtype: String,
    /// Categories in code order (categorical only; empty for numeric).
    pub vocab: Vec<String>,
}

impl FeatureInfo {
    fn spec(&self) -> FeatureSpec {
        FeatureSpec {
            name: self.name.clone(),
            dtype: self.dtype.clone(),
            shape: vec![-1],
            kind: self.kind,
            vocab: (self.kind == FeatureKind::Categorical).then(|| self.vocab.clone()),
        }
    }
}

/// The trainer's own fitted model (not the exported one).
#[derive(Debug, Clone)]
enum Fitted {
    Lr(logistic::LrFit),
    Gbdt(gbdt::GbdtFit),
}

/// One fitted model with its evaluation.
#[derive(Debug, Clone)]
pub struct Trained {
    pub algorithm: Algorithm,
    /// The exported model (`model.to_onnx()` is what gets published).
    pub model: Model,
    pub valid: Metrics,
    pub test: Metrics,
    /// Wall-clock fit time (not part of the deterministic outputs).
    pub seconds: f64,
    /// Fit details: Newton iterations, or trees kept / grown.
    pub details: Value,
    fitted: Fitted,
}

impl Trained {
    /// P(label 1) per row of a row-major model tensor, computed by the trainer's own model:
    /// `f64` coefficients on the standardized features (LR) or bin routing (GBDT). The exported
    /// ONNX must agree with it within 1e-5.
    pub fn predict(&self, rows: &[f32]) -> Vec<f64> {
        match &self.fitted {
            Fitted::Lr(f) => f.predict(rows, self.model.n_features()),
            Fitted::Gbdt(f) => f.predict(rows),
        }
    }

    fn metrics_json(&self) -> Value {
        json!({
            "model_kind": self.model.kind(),
            "valid": self.valid,
            "test": self.test,
            "details": self.details,
        })
    }
}

/// Everything [`train`] produced.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub spec: TrainSpec,
    /// Model inputs in tensor column order.
    pub features: Vec<FeatureInfo>,
    /// How the rows were split (method, boundaries or seed).
    pub split: Value,
    /// Rows per split.
    pub rows: SplitRows,
    pub lr: Option<Trained>,
    pub gbdt: Option<Trained>,
    /// The model to publish.
    pub chosen: Algorithm,
    /// `signature.json` (`online` is set at publish time, [`PublishOptions::online`]).
    pub signature: Signature,
    /// `profile.json`: training rows and the chosen model's training scores.
    pub profile: Profile,
    /// The encoded test split (row-major `[test, F]`) and its labels.
    pub test_rows: Vec<f32>,
    pub test_labels: Vec<u8>,
}

/// Row counts per split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SplitRows {
    pub train: usize,
    pub valid: usize,
    pub test: usize,
}

impl TrainReport {
    /// The model that gets published.
    pub fn chosen(&self) -> &Trained {
        self.get(self.chosen).expect("the chosen model was trained")
    }

    pub fn get(&self, a: Algorithm) -> Option<&Trained> {
        match a {
            Algorithm::Lr => self.lr.as_ref(),
            Algorithm::Gbdt => self.gbdt.as_ref(),
        }
    }

    /// Trained models in order (LR, GBDT).
    pub fn trained(&self) -> impl Iterator<Item = &Trained> {
        self.lr.iter().chain(self.gbdt.iter())
    }

    /// `metrics.json` (also the manifest's metrics): every model's validation and test
    /// metrics, which one was published, and the published model's test metrics at the top.
    pub fn metrics_json(&self) -> Value {
        let models: serde_json::Map<String, Value> = self
            .trained()
            .map(|t| (t.algorithm.name().to_string(), t.metrics_json()))
            .collect();
        json!({
            "published": self.chosen.name(),
            "selection": "validation AUC",
            "test": self.chosen().test,
            "rows": self.rows,
            "models": models,
        })
    }

    /// The manifest's lineage: tool, parameters, seed, split, row counts, features; `extra`
    /// (an object, e.g. [`file_lineage`]) is merged in.
    pub fn lineage(&self, extra: &Value) -> Value {
        let mut l = json!({
            "tool": "vane-models train",
            "tool_version": env!("CARGO_PKG_VERSION"),
            "algorithm": self.chosen.name(),
            "model_kind": self.chosen().model.kind(),
            "seed": self.spec.seed,
            "label": self.spec.label,
            "features": self.features.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            "split": self.split,
            "rows": self.rows,
            "params": self.spec,
            "fit": self.trained().map(|t| (t.algorithm.name().to_string(), t.details.clone()))
                .collect::<serde_json::Map<_, _>>(),
        });
        if let (Value::Object(l), Value::Object(extra)) = (&mut l, extra) {
            l.extend(extra.clone());
        }
        l
    }

    /// The version's files: `model.onnx`, `signature.json`, `profile.json`, `metrics.json`.
    pub fn files(&self) -> Result<Vec<(String, Vec<u8>)>, TrainError> {
        self.files_with(&self.signature)
    }

    fn files_with(&self, signature: &Signature) -> Result<Vec<(String, Vec<u8>)>, TrainError> {
        Ok(vec![
            ("model.onnx".into(), self.chosen().model.to_onnx()),
            ("signature.json".into(), pretty(signature)?),
            (
                "profile.json".into(),
                serde_json::to_vec(&self.profile).map_err(json_err)?,
            ),
            ("metrics.json".into(), pretty(&self.metrics_json())?),
        ])
    }

    /// Writes [`files`](Self::files), `lineage.json` and every trained model as
    /// `candidates/<algorithm>.onnx` into `dir` (created if needed).
    pub fn write_dir(&self, dir: &Path, lineage_extra: &Value) -> Result<(), TrainError> {
        let write = |path: PathBuf, bytes: &[u8]| {
            std::fs::write(&path, bytes).map_err(|source| TrainError::Write { path, source })
        };
        let candidates = dir.join("candidates");
        std::fs::create_dir_all(&candidates).map_err(|source| TrainError::Write {
            path: candidates.clone(),
            source,
        })?;
        for (name, bytes) in self.files()? {
            write(dir.join(name), &bytes)?;
        }
        write(
            dir.join("lineage.json"),
            &pretty(&self.lineage(lineage_extra))?,
        )?;
        for t in self.trained() {
            write(
                candidates.join(format!("{}.onnx", t.algorithm.name())),
                &t.model.to_onnx(),
            )?;
        }
        Ok(())
    }

    /// Encodes `batches` into the model tensor (row-major `[N, F]`) the way the trainer did:
    /// numeric values as `f32` (null → NaN), categories as vocabulary codes (null or unseen →
    /// `K`).
    pub fn encode(&self, batches: &[RecordBatch]) -> Result<Vec<f32>, TrainError> {
        let mut columns = Vec::with_capacity(self.features.len());
        for f in &self.features {
            let raw = data::read_feature(batches, &f.name, Some(f.kind))?;
            columns.push(match raw.raw {
                Raw::Numeric(v) => v,
                Raw::Categorical { ids, names } => {
                    let index: HashMap<&str, usize> = f
                        .vocab
                        .iter()
                        .enumerate()
                        .map(|(i, s)| (s.as_str(), i))
                        .collect();
                    let k = f.vocab.len() as f32;
                    let codes: Vec<f32> = names
                        .iter()
                        .map(|n| index.get(n.as_str()).map_or(k, |c| *c as f32))
                        .collect();
                    ids.iter()
                        .map(|id| codes.get(*id as usize).copied().unwrap_or(k))
                        .collect()
                }
            });
        }
        let n = columns.first().map_or(0, Vec::len);
        Ok((0..n)
            .flat_map(|r| columns.iter().map(move |c| c[r]))
            .collect())
    }
}

/// Pretty JSON with a final newline.
fn pretty<T: Serialize>(v: &T) -> Result<Vec<u8>, TrainError> {
    let mut out = serde_json::to_vec_pretty(v).map_err(json_err)?;
    out.push(b'\n');
    Ok(out)
}

fn json_err(e: serde_json::Error) -> TrainError {
    TrainError::Invalid(format!("serializing JSON: {e}"))
}

/// The rows at or after the time column's `1 - share` quantile (ties kept together).
fn recent_rows(
    batches: &[RecordBatch],
    col: &str,
    share: f64,
) -> Result<Vec<RecordBatch>, TrainError> {
    let time = data::read_time(batches, col)?;
    let mut sorted = time.keys.clone();
    sorted.sort_unstable();
    let Some(&last) = sorted.last() else {
        return Ok(batches.to_vec());
    };
    let skip = ((1.0 - share) * sorted.len() as f64).floor() as usize;
    let cut = sorted.get(skip).copied().unwrap_or(last);
    let mut offset = 0;
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let keep: arrow_array::BooleanArray = time.keys[offset..offset + b.num_rows()]
            .iter()
            .map(|&k| Some(k >= cut))
            .collect();
        offset += b.num_rows();
        let kept = arrow_select::filter::filter_record_batch(b, &keep)
            .map_err(|e| TrainError::Invalid(format!("selecting the recent rows: {e}")))?;
        out.push(kept);
    }
    Ok(out)
}

/// Trains on `batches` (one table, possibly in several batches with the same columns).
pub fn train(batches: &[RecordBatch], spec: &TrainSpec) -> Result<TrainReport, TrainError> {
    spec.validate()?;
    let recent;
    let batches = match (spec.recent, &spec.time_column) {
        (Some(share), Some(col)) if share < 1.0 => {
            recent = recent_rows(batches, col, share)?;
            recent.as_slice()
        }
        _ => batches,
    };
    let Some(first) = batches.first() else {
        return Err(TrainError::Invalid("the table has no rows".into()));
    };
    // Columns.
    let columns: Vec<String> = first
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    if let Some(x) = spec.exclude.iter().find(|x| !columns.contains(x)) {
        return Err(TrainError::MissingColumn {
            role: "excluded",
            column: x.clone(),
            available: columns,
        });
    }
    let columns: Vec<String> = first
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    if let Some(x) = spec.exclude.iter().find(|x| !columns.contains(x)) {
        return Err(TrainError::MissingColumn {
            role: "excluded",
            column: x.clone(),
            available: columns,
        });
    }
    let names: Vec<String> = if spec.features.is_empty() {
        let skip = |n: &String| {
            *n == spec.label || Some(n) == spec.time_column.as_ref() || spec.exclude.contains(n)
        };
        columns.iter().filter(|n| !skip(n)).cloned().collect()
    } else {
        spec.features.clone()
    };
    if names.is_empty() {
        return Err(TrainError::Invalid("no feature columns".into()));
    }
    let y = data::read_label(batches, &spec.label, spec.positive_label.as_deref())?;
    let n = y.len();
    if n == 0 {
        return Err(TrainError::Invalid("the table has no rows".into()));
    }
    let raw: Vec<RawFeature> = names
        .iter()
        .map(|name| data::read_feature(batches, name, spec.kinds.get(name).copied()))
        .collect::<Result<_, _>>()?;

    // Splits.
    let splits = match &spec.time_column {
        Some(col) => split::by_time(
            &data::read_time(batches, col)?,
            spec.train_fraction,
            spec.valid_fraction,
        )?,
        None => split::shuffled(n, spec.seed, spec.train_fraction, spec.valid_fraction)?,
    };
    for (what, rows) in [
        ("training", &splits.train),
        ("validation", &splits.valid),
        ("test", &splits.test),
    ] {
        let pos = rows.iter().filter(|&&r| y[r] == 1).count();
        if pos == 0 || pos == rows.len() {
            return Err(TrainError::Invalid(format!(
                "label column {:?}: the {what} split ({} rows) has only {}s; every split needs \
                 both classes",
                spec.label,
                rows.len(),
                if pos == 0 { 0 } else { 1 }
            )));
        }
    }

    // Vocabularies (training split only) and encoding.
    let mut features = Vec::with_capacity(raw.len());
    let mut code_maps: Vec<Option<Vec<f32>>> = Vec::with_capacity(raw.len());
    for r in &raw {
        match &r.raw {
            Raw::Numeric(_) => {
                features.push(FeatureInfo {
                    name: r.name.clone(),
                    kind: FeatureKind::Numeric,
                    dtype: r.dtype.to_string(),
                    vocab: Vec::new(),
                });
                code_maps.push(None);
            }
            Raw::Categorical { ids, names } => {
                let mut counts = vec![0usize; names.len()];
                for &i in &splits.train {
                    if ids[i] != data::NULL_ID {
                        counts[ids[i] as usize] += 1;
                    }
                }
                let mut order: Vec<usize> = (0..names.len()).filter(|&i| counts[i] > 0).collect();
                order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(names[a].cmp(&names[b])));
                // A kept vocabulary first, in its order (its categories keep their codes even
                // when this training split lacks them), then the new categories by frequency.
                let base = spec.base_vocab.get(&r.name).cloned().unwrap_or_default();
                let mut vocab: Vec<String> = base.clone();
                vocab.extend(
                    order
                        .iter()
                        .map(|&i| names[i].clone())
                        .filter(|n| !base.contains(n)),
                );
                if order.is_empty() {
                    return Err(TrainError::Column {
                        role: "feature",
                        column: r.name.clone(),
                        message: "no values in the training split".into(),
                    });
                }
                if vocab.len() > spec.max_categories {
                    return Err(TrainError::Column {
                        role: "feature",
                        column: r.name.clone(),
                        message: format!(
                            "{} categories in the training split (and the kept vocabulary); at \
                             most {} (raise max_categories or leave the column out)",
                            vocab.len(),
                            spec.max_categories
                        ),
                    });
                }
                let k = vocab.len() as f32;
                // One slot per category name, then one for null: all unknown ones are code K.
                let mut map = vec![k; names.len() + 1];
                for &id in &order {
                    if let Some(code) = vocab.iter().position(|v| *v == names[id]) {
                        map[id] = code as f32;
                    }
                }
                features.push(FeatureInfo {
                    name: r.name.clone(),
                    kind: FeatureKind::Categorical,
                    dtype: r.dtype.to_string(),
                    vocab,
                });
                code_maps.push(Some(map));
            }
        }
    }
    let f = features.len();
    let encode = |rows: &[usize]| -> Vec<f32> {
        let mut out = Vec::with_capacity(rows.len() * f);
        for &i in rows {
            for (r, map) in raw.iter().zip(&code_maps) {
                out.push(match (&r.raw, map) {
                    (Raw::Numeric(v), _) => v[i],
                    (Raw::Categorical { ids, .. }, Some(map)) => match ids[i] {
                        data::NULL_ID => map[map.len() - 1],
                        id => map[id as usize],
                    },
                    (Raw::Categorical { .. }, None) => unreachable!("categorical has a map"),
                });
            }
        }
        out
    };
    let labels = |rows: &[usize]| -> Vec<u8> { rows.iter().map(|&i| y[i]).collect() };
    let (x_train, y_train) = (encode(&splits.train), labels(&splits.train));
    let (x_valid, y_valid) = (encode(&splits.valid), labels(&splits.valid));
    let (x_test, y_test) = (encode(&splits.test), labels(&splits.test));
    drop(raw);

    let evaluate = |model: &Model, x: &[f32], y: &[u8]| -> Metrics {
        let p: Vec<f64> = model.predict(x, f).into_iter().map(f64::from).collect();
        Metrics::compute(y, &p)
    };
    let finish =
        |algorithm, model: Model, fitted, details, start: Instant| -> Result<Trained, TrainError> {
            model.validate()?;
            let seconds = start.elapsed().as_secs_f64();
            Ok(Trained {
                algorithm,
                valid: evaluate(&model, &x_valid, &y_valid),
                test: evaluate(&model, &x_test, &y_test),
                model,
                seconds,
                details,
                fitted,
            })
        };

    let lr = if spec.model_type != ModelType::Gbdt {
        let start = Instant::now();
        let inputs: Vec<logistic::Input> = features
            .iter()
            .map(|fi| match fi.kind {
                FeatureKind::Numeric => logistic::Input::Numeric,
                FeatureKind::Categorical => logistic::Input::Categorical {
                    cardinality: fi.vocab.len(),
                },
            })
            .collect();
        let fit = logistic::fit(&x_train, &y_train, &inputs, &spec.lr)?;
        if !fit.converged {
            // Recorded as `converged: false` in the metrics too; never silent.
            eprintln!(
                "warning: logistic regression did not converge in {} iterations (try a larger --l2)",
                fit.iterations
            );
        }
        let details = json!({
            "iterations": fit.iterations,
            "converged": fit.converged,
            "objective": fit.objective,
            "width": fit.coef.len(),
        });
        let model = fit.to_model().into();
        Some(finish(
            Algorithm::Lr,
            model,
            Fitted::Lr(fit),
            details,
            start,
        )?)
    } else {
        None
    };
    let gbdt = if spec.model_type != ModelType::Lr {
        let start = Instant::now();
        let fit = gbdt::fit(&x_train, &y_train, &x_valid, &y_valid, f, &spec.gbdt)?;
        let details = json!({
            "trees": fit.trees.len(),
            "rounds": fit.rounds,
            "leaves": fit.trees.iter().map(|t| t.nodes.len().div_ceil(2)).sum::<usize>(),
            "best_valid_log_loss": fit.valid_curve.get(fit.trees.len().saturating_sub(1)),
            // Per boosting round: MLflow shows it as a metric history.
            "valid_log_loss_curve": fit.valid_curve,
        });
        let model = fit.to_model().into();
        Some(finish(
            Algorithm::Gbdt,
            model,
            Fitted::Gbdt(fit),
            details,
            start,
        )?)
    } else {
        None
    };
    let chosen = match (&lr, &gbdt) {
        (Some(l), Some(g)) if g.valid.auc > l.valid.auc => Algorithm::Gbdt,
        (Some(_), _) => Algorithm::Lr,
        (None, _) => Algorithm::Gbdt,
    };
    let chosen_model = match chosen {
        Algorithm::Lr => &lr,
        Algorithm::Gbdt => &gbdt,
    }
    .as_ref()
    .map(|t| t.model.clone())
    .expect("chosen model exists");

    // Signature and profile.
    let signature = Signature {
        inputs: features.iter().map(FeatureInfo::spec).collect(),
        tensor: Some(TensorSpec {
            name: INPUT.into(),
            datatype: "FP32".into(),
            shape: vec![-1, f as i64],
        }),
        outputs: vec![TensorSpec {
            name: OUTPUT.into(),
            datatype: "FP32".into(),
            shape: vec![-1, 1],
        }],
        graph: None,
        online: None,
    };
    signature
        .validate()
        .map_err(|e| TrainError::Invalid(format!("signature: {e}")))?;
    let n_train = y_train.len();
    let sample = profile::sample_positions(n_train, spec.profile_sample, spec.seed);
    let column = |j: usize| -> Vec<f32> { x_train.iter().skip(j).step_by(f).copied().collect() };
    let scores = chosen_model.predict(&x_train, f);
    let profile = Profile {
        rows: n_train as u64,
        features: features
            .iter()
            .enumerate()
            .map(|(j, fi)| match fi.kind {
                FeatureKind::Numeric => profile::numeric(&fi.name, &column(j), &sample),
                FeatureKind::Categorical => profile::categorical(&fi.name, &fi.vocab, &column(j)),
            })
            .collect(),
        score: Some(profile::numeric(OUTPUT, &scores, &sample)),
    };
    profile
        .validate()
        .and_then(|()| profile.check_against(&signature))
        .map_err(|e| TrainError::Invalid(format!("profile: {e}")))?;

    Ok(TrainReport {
        spec: spec.clone(),
        features,
        split: splits.info,
        rows: SplitRows {
            train: splits.train.len(),
            valid: splits.valid.len(),
            test: splits.test.len(),
        },
        lr,
        gbdt,
        chosen,
        signature,
        profile,
        test_rows: x_test,
        test_labels: y_test,
    })
}

/// Where and how to publish.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Registry spec: a directory, `file://…` or `mlflow://…` (see
    /// [`vane_registry::open_writer`]).
    pub registry: String,
    /// Model name in the registry.
    pub model: String,
    /// Alias to point at the new version (e.g. `champion`).
    pub alias: Option<String>,
    /// Merged into the manifest's lineage (e.g. [`file_lineage`] of the input files).
    pub lineage: Value,
    /// Written into the published signature: which inputs an entity-keyed request may leave
    /// to the online store (checked against the inputs).
    pub online: Option<OnlineSpec>,
    pub remote: RemoteOptions,
}

/// Publishes the chosen model as a new version of `opts.model` (files as
/// [`TrainReport::files`], lineage and metrics in the manifest) and moves `opts.alias` to it.
/// Returns the version number.
pub fn publish(report: &TrainReport, opts: &PublishOptions) -> Result<u64, TrainError> {
    if opts.model.is_empty() {
        return Err(TrainError::Invalid("no model name to publish under".into()));
    }
    let mut signature = report.signature.clone();
    if opts.online.is_some() {
        signature.online = opts.online.clone();
        signature
            .validate()
            .map_err(|e| TrainError::Invalid(format!("online spec: {e}")))?;
    }
    let writer = vane_registry::open_writer(&opts.registry, &opts.remote)?;
    let version = writer.publish(&PublishRequest {
        model: opts.model.clone(),
        files: report.files_with(&signature)?,
        lineage: report.lineage(&opts.lineage),
        metrics: report.metrics_json(),
    })?;
    if let Some(alias) = &opts.alias {
        writer.set_alias(&opts.model, alias, version)?;
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};
    use std::sync::Arc;

    fn table(n: usize) -> RecordBatch {
        let mut r = crate::rng::SplitMix64::new(9);
        let x: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let c: Vec<&str> = (0..n).map(|i| ["b", "a", "a", "c"][i % 4]).collect();
        let y: Vec<i64> = x
            .iter()
            .zip(&c)
            .map(|(x, c)| {
                i64::from(r.unit() < 1.0 / (1.0 + (-(x + if *c == "c" { 1.0 } else { 0.0 })).exp()))
            })
            .collect();
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("x", Arc::new(Float64Array::from(x))),
            ("c", Arc::new(StringArray::from(c))),
            ("y", Arc::new(Int64Array::from(y))),
        ];
        RecordBatch::try_new(
            Arc::new(Schema::new(
                cols.iter()
                    .map(|(n, a)| Field::new(*n, a.data_type().clone(), false))
                    .collect::<Vec<_>>(),
            )),
            cols.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    #[test]
    fn vocab_is_by_frequency_then_name_and_signature_profile_validate() {
        let report = train(&[table(2000)], &TrainSpec::new("y")).unwrap();
        let names: Vec<&str> = report.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["x", "c"]);
        // "a" is twice as frequent as "b" and "c", which tie and go by name.
        assert_eq!(report.features[1].vocab, ["a", "b", "c"]);
        report.signature.validate().unwrap();
        report.profile.validate().unwrap();
        assert_eq!(report.profile.rows, report.rows.train as u64);
        let m = report.metrics_json();
        assert_eq!(m["published"], report.chosen.name());
        assert!(m["models"]["lr"]["test"]["auc"].as_f64().unwrap() > 0.6);
        let encoded = report.encode(&[table(8)]).unwrap();
        assert_eq!(encoded.len(), 16);
        assert_eq!(encoded[1], 1.0, "row 0 category b has code 1");
    }

    #[test]
    fn recent_rows_and_kept_vocabularies() {
        // The newest 30 % by an integer time column (ties at the cut stay in).
        let t = Int64Array::from(vec![5, 1, 9, 7, 3, 7, 0, 2, 8, 4]);
        let b = RecordBatch::try_from_iter([("t", Arc::new(t) as ArrayRef)]).unwrap();
        let kept = recent_rows(std::slice::from_ref(&b), "t", 0.3).unwrap();
        let mut ts: Vec<i64> = kept[0]
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        ts.sort_unstable();
        assert_eq!(ts, vec![7, 7, 8, 9]);
        let spec = TrainSpec {
            recent: Some(0.5),
            ..TrainSpec::new("y")
        };
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("needs a time column")
        );

        // A kept vocabulary keeps its codes (even for a category absent here) and new ones
        // follow by frequency.
        let base = vec!["zz".to_string(), "c".to_string()];
        let spec = TrainSpec {
            base_vocab: BTreeMap::from([("c".to_string(), base)]),
            model_type: ModelType::Lr,
            ..TrainSpec::new("y")
        };
        let r = train(&[table(400)], &spec).unwrap();
        let c = r.features.iter().find(|f| f.name == "c").unwrap();
        assert_eq!(c.vocab, vec!["zz", "c", "a", "b"]);
    }

    #[test]
    fn spec_errors_are_named() {
        let b = table(100);
        let e = train(std::slice::from_ref(&b), &TrainSpec::new("label"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, r#"label column "label" not found; columns: x, c, y"#);
        let spec = TrainSpec {
            features: vec!["x".into(), "nope".into()],
            ..TrainSpec::new("y")
        };
        let e = train(std::slice::from_ref(&b), &spec)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(r#"feature column "nope" not found"#), "{e}");
        let spec = TrainSpec {
            exclude: vec!["id".into()],
            ..TrainSpec::new("y")
        };
        let e = train(std::slice::from_ref(&b), &spec)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(r#"excluded column "id" not found"#), "{e}");
        let spec = TrainSpec {
            max_categories: 2,
            ..TrainSpec::new("y")
        };
        let e = train(&[b], &spec).unwrap_err().to_string();
        assert!(e.contains(r#"feature column "c": 3 categories"#), "{e}");
        assert!("forest".parse::<ModelType>().is_err());
    }
}
