use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::onnx::GraphSignature;

/// `manifest.json`: what a version contains. Every file of the version is listed with its
/// digest, so a reader can refuse bytes that changed after publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: u64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// File name (relative to the version directory) → digest and size.
    pub files: BTreeMap<String, FileEntry>,
    /// Free-form provenance: data paths and hashes, parameters, seed, producing tool.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub lineage: serde_json::Value,
    /// Free-form evaluation metrics (AUC, …) recorded at publish time.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub metrics: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub sha256: String,
    pub size: u64,
}

/// `aliases.json`: alias name → version number.
pub type Aliases = BTreeMap<String, u64>;

/// How a feature reaches the model tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureKind {
    /// Any JSON number; written to its column as f32.
    Numeric,
    /// A string from `vocab`; written to its column as the value's index in `vocab`.
    Categorical,
}

/// One named model input, in tensor column order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub name: String,
    /// Open Inference Protocol datatype a client sends: `FP32`/`FP64`/`INT32`/`INT64` for
    /// numeric features, `BYTES` for categorical ones.
    pub dtype: String,
    /// Per-request shape, `[-1]` (one value per row).
    #[serde(default = "default_feature_shape")]
    pub shape: Vec<i64>,
    pub kind: FeatureKind,
    /// Categories, in code order (categorical only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab: Option<Vec<String>>,
}

impl FeatureSpec {
    /// A numeric feature, one value per row, sent as `dtype` (`FP32`, `FP64`, `INT64`, …).
    pub fn numeric(name: impl Into<String>, dtype: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            dtype: dtype.into(),
            shape: default_feature_shape(),
            kind: FeatureKind::Numeric,
            vocab: None,
        }
    }

    /// A categorical feature sent as `BYTES`, with its categories in code order.
    pub fn categorical<S: Into<String>>(
        name: impl Into<String>,
        vocab: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            name: name.into(),
            dtype: "BYTES".into(),
            shape: default_feature_shape(),
            kind: FeatureKind::Categorical,
            vocab: Some(vocab.into_iter().map(Into::into).collect()),
        }
    }
}

fn default_feature_shape() -> Vec<i64> {
    vec![-1]
}

/// A tensor as the ONNX graph sees it (`-1` = symbolic batch dimension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

/// `signature.json`: what a model version takes and returns.
///
/// Two layers. The *graph* layer ([`GraphSignature`]) lists every graph input and output as
/// the ONNX graph declares them; publish reads it from `model.onnx`, so any exported graph
/// can be served tensor by tensor. The optional *feature* layer, which Vane's trainer writes,
/// names the features a client may send over one FP32 `[N, F]` graph input (`tensor`), with
/// categorical vocabularies and the online-store spec. A version without features is a
/// *tensor-signature* model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// Named features in tensor column order; empty for a tensor-signature model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<FeatureSpec>,
    /// The single `[N, F]` graph input the features fill (`F == inputs.len()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor: Option<TensorSpec>,
    /// The outputs a feature model returns (its graph's outputs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<TensorSpec>,
    /// Every graph input and output, as read from `model.onnx` at publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphSignature>,
    /// Which inputs an entity-keyed request may leave to the online feature store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<OnlineSpec>,
}

/// One feature a drift monitor watches: its name and kind, and where its values are in a
/// request (column `column` of graph input `input`, which has `width` columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoredFeature {
    pub name: String,
    pub kind: FeatureKind,
    pub input: usize,
    pub column: usize,
    pub width: usize,
}

/// How to complete an entity-keyed request from the online store: the request gives every
/// join key (`keys`, e.g. `applicant_id`, or several for views of composite keys or of
/// different entities) and the request-time inputs; every input listed under a view is read
/// from that view's latest materialized row for the view's keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "RawOnlineSpec")]
pub struct OnlineSpec {
    /// The join keys clients send, in order.
    pub keys: Vec<OnlineKey>,
    pub views: Vec<OnlineView>,
}

/// One join key of an entity-keyed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineKey {
    pub name: String,
    /// `INT64` or `STRING`.
    pub dtype: String,
}

impl OnlineKey {
    pub fn new(name: impl Into<String>, dtype: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            dtype: dtype.into(),
        }
    }

    /// True for a STRING key (requests send it as BYTES / JSON strings).
    pub fn is_string(&self) -> bool {
        self.dtype == "STRING"
    }
}

/// The spec as written: `keys`, or (signatures written before composite keys) a single INT64
/// `entity_key`.
#[derive(Deserialize)]
struct RawOnlineSpec {
    #[serde(default)]
    keys: Vec<OnlineKey>,
    #[serde(default)]
    entity_key: Option<String>,
    views: Vec<OnlineView>,
}

impl From<RawOnlineSpec> for OnlineSpec {
    fn from(raw: RawOnlineSpec) -> Self {
        let mut keys = raw.keys;
        if let Some(k) = raw.entity_key
            && !keys.iter().any(|x| x.name == k)
        {
            keys.insert(0, OnlineKey::new(k, "INT64"));
        }
        Self {
            keys,
            views: raw.views,
        }
    }
}

impl OnlineSpec {
    /// The keys' names, for messages.
    pub fn key_names(&self) -> String {
        self.keys
            .iter()
            .map(|k| k.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Positions in [`OnlineSpec::keys`] of a view's join keys, in the view's key order.
    pub fn view_keys(&self, view: &OnlineView) -> Vec<usize> {
        if view.keys.is_empty() {
            return (0..self.keys.len()).collect();
        }
        view.keys
            .iter()
            .filter_map(|k| self.keys.iter().position(|x| x.name == *k))
            .collect()
    }
}

/// One feature view the model reads online.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineView {
    pub name: String,
    /// The view's join keys, in its key order (names from [`OnlineSpec::keys`]); empty means
    /// all of them (signatures written before composite keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Rows older than this (by event timestamp) count as missing; `None` = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u64>,
    /// Signature inputs read from this view (names as in the view).
    pub features: Vec<String>,
}

impl Signature {
    /// A tensor-signature model: its graph, no feature layer.
    pub fn from_graph(graph: GraphSignature) -> Self {
        Self {
            inputs: Vec::new(),
            tensor: None,
            outputs: Vec::new(),
            graph: Some(graph),
            online: None,
        }
    }

    /// True when the version has no feature layer: requests name graph inputs.
    pub fn is_tensor_model(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Name of the feature layer's `[N, F]` graph input (empty for a tensor model).
    pub fn tensor_name(&self) -> &str {
        self.tensor.as_ref().map_or("", |t| t.name.as_str())
    }

    /// Checks the invariants the server relies on; the error says which one broke.
    pub fn validate(&self) -> Result<(), String> {
        if self.inputs.is_empty() {
            return self.validate_tensor_model();
        }
        let mut seen = HashSet::new();
        for f in &self.inputs {
            if f.name.is_empty() {
                return Err("an input has an empty name".into());
            }
            if !seen.insert(f.name.as_str()) {
                return Err(format!("input {:?} is listed twice", f.name));
            }
            match f.kind {
                FeatureKind::Numeric => {
                    if !matches!(
                        f.dtype.as_str(),
                        "FP32" | "FP64" | "INT32" | "INT64" | "BOOL"
                    ) {
                        return Err(format!(
                            "numeric input {:?} has dtype {:?}; expected FP32, FP64, INT32, INT64 or BOOL",
                            f.name, f.dtype
                        ));
                    }
                    if f.vocab.is_some() {
                        return Err(format!("numeric input {:?} must not have a vocab", f.name));
                    }
                }
                FeatureKind::Categorical => {
                    let vocab = f.vocab.as_deref().unwrap_or_default();
                    if vocab.is_empty() {
                        return Err(format!(
                            "categorical input {:?} needs a non-empty vocab",
                            f.name
                        ));
                    }
                    let mut cats = HashSet::new();
                    if let Some(dup) = vocab.iter().find(|c| !cats.insert(c.as_str())) {
                        return Err(format!(
                            "categorical input {:?} repeats {:?} in its vocab",
                            f.name, dup
                        ));
                    }
                    if f.dtype != "BYTES" {
                        return Err(format!(
                            "categorical input {:?} must have dtype BYTES",
                            f.name
                        ));
                    }
                }
            }
        }
        let Some(tensor) = &self.tensor else {
            return Err("a signature with inputs (features) needs the tensor they fill".into());
        };
        if tensor.datatype != "FP32" {
            return Err(format!(
                "tensor {:?} has datatype {:?}; features fill an FP32 [N, F] tensor",
                tensor.name, tensor.datatype
            ));
        }
        if tensor.shape.len() != 2 || tensor.shape[1] != self.inputs.len() as i64 {
            return Err(format!(
                "tensor {:?} has shape {:?}; expected [-1, {}] (one column per input)",
                tensor.name,
                tensor.shape,
                self.inputs.len()
            ));
        }
        if self.outputs.is_empty() {
            return Err("signature has no outputs".into());
        }
        if let Some(online) = &self.online {
            if online.keys.is_empty() {
                return Err(
                    "online.keys is empty: an entity-keyed request needs a join key".into(),
                );
            }
            let mut names = HashSet::new();
            for k in &online.keys {
                if k.name.is_empty() || seen.contains(k.name.as_str()) || !names.insert(&k.name) {
                    return Err(format!(
                        "online key {:?} must be a non-empty name, not a model input, listed once",
                        k.name
                    ));
                }
                if k.dtype != "INT64" && k.dtype != "STRING" {
                    return Err(format!(
                        "online key {:?} has dtype {:?} (expected INT64 or STRING)",
                        k.name, k.dtype
                    ));
                }
            }
            let mut from_store = HashSet::new();
            for v in &online.views {
                for k in &v.keys {
                    if !names.contains(k) {
                        return Err(format!(
                            "online view {:?} has key {k:?}, which is not in online.keys",
                            v.name
                        ));
                    }
                }
                for f in &v.features {
                    if !seen.contains(f.as_str()) {
                        return Err(format!(
                            "online view {:?} lists {f:?}, which is not an input",
                            v.name
                        ));
                    }
                    if !from_store.insert(f.as_str()) {
                        return Err(format!("input {f:?} is read from two online views"));
                    }
                }
            }
        }
        if let Some(graph) = &self.graph {
            self.check_graph(graph)?;
        }
        Ok(())
    }

    fn validate_tensor_model(&self) -> Result<(), String> {
        let Some(graph) = &self.graph else {
            return Err("signature has neither inputs (features) nor a graph".into());
        };
        if let Some(t) = &self.tensor {
            return Err(format!(
                "signature names tensor {:?} but no inputs (features) to fill it",
                t.name
            ));
        }
        if self.online.is_some() {
            return Err("online features need the feature layer (inputs)".into());
        }
        let mut seen = HashSet::new();
        for t in graph.inputs.iter().chain(&graph.outputs) {
            if t.name.is_empty() || !seen.insert(t.name.as_str()) {
                return Err(format!(
                    "graph tensor {:?} is unnamed or listed twice",
                    t.name
                ));
            }
        }
        self.check_graph(graph)
    }

    /// Checks the feature layer and the outputs against the graph's declarations.
    pub fn check_graph(&self, graph: &GraphSignature) -> Result<(), String> {
        if let Some(tensor) = &self.tensor {
            let Some(g) = graph.input(&tensor.name) else {
                return Err(format!(
                    "signature tensor {:?} is not a graph input (graph inputs: {})",
                    tensor.name,
                    names(&graph.inputs)
                ));
            };
            let width_ok =
                g.shape.len() == 2 && (g.shape[1] == -1 || g.shape[1] == tensor.shape[1]);
            if g.datatype != tensor.datatype || !width_ok {
                return Err(format!(
                    "signature tensor {:?} is {} {:?}, but the graph declares {} {:?}",
                    tensor.name, tensor.datatype, tensor.shape, g.datatype, g.shape
                ));
            }
            if graph.inputs.len() != 1 {
                return Err(format!(
                    "features fill one graph input, but the graph has {} ({})",
                    graph.inputs.len(),
                    names(&graph.inputs)
                ));
            }
        }
        for o in &self.outputs {
            match graph.output(&o.name) {
                None => {
                    return Err(format!(
                        "signature output {:?} is not a graph output (graph outputs: {})",
                        o.name,
                        names(&graph.outputs)
                    ));
                }
                Some(g) if g.datatype != o.datatype => {
                    return Err(format!(
                        "signature output {:?} is {}, but the graph declares {}",
                        o.name, o.datatype, g.datatype
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The features a drift monitor watches, in sample-row order. A feature model: its
    /// inputs. A tensor-signature model: each column input (`[N]` / `[N, 1]`, named like the
    /// input) and each column `j` of a 2-D `[N, F]` input (named `input[j]`); `BYTES` columns
    /// are categorical, numeric ones numeric; other inputs (images, sequences) are not watched.
    pub fn monitored_features(&self) -> Vec<MonitoredFeature> {
        if !self.is_tensor_model() {
            return self
                .inputs
                .iter()
                .enumerate()
                .map(|(i, f)| MonitoredFeature {
                    name: f.name.clone(),
                    kind: f.kind,
                    input: 0,
                    column: i,
                    width: self.inputs.len(),
                })
                .collect();
        }
        let mut out = Vec::new();
        for (i, t) in self.graph.iter().flat_map(|g| g.inputs.iter()).enumerate() {
            let kind = match t.datatype.as_str() {
                "BYTES" => FeatureKind::Categorical,
                "BOOL" | "FP16" | "BF16" => continue,
                _ => FeatureKind::Numeric,
            };
            match t.shape.as_slice() {
                [-1] | [-1, 1] => out.push(MonitoredFeature {
                    name: t.name.clone(),
                    kind,
                    input: i,
                    column: 0,
                    width: 1,
                }),
                [-1, f] if *f > 1 && kind == FeatureKind::Numeric => {
                    out.extend((0..*f as usize).map(|j| MonitoredFeature {
                        name: format!("{}[{j}]", t.name),
                        kind,
                        input: i,
                        column: j,
                        width: *f as usize,
                    }))
                }
                _ => {}
            }
        }
        out
    }

    /// Number of tensor columns.
    pub fn width(&self) -> usize {
        self.inputs.len()
    }

    /// Index of the named feature.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.inputs.iter().position(|f| f.name == name)
    }
}

fn names(tensors: &[TensorSpec]) -> String {
    tensors
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which version of a model: an alias (`champion`) or a number (`3`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionRef {
    Alias(String),
    Number(u64),
}

impl FromStr for VersionRef {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.parse::<u64>() {
            Ok(n) => VersionRef::Number(n),
            Err(_) => VersionRef::Alias(s.to_string()),
        })
    }
}

impl fmt::Display for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionRef::Alias(a) => write!(f, "@{a}"),
            VersionRef::Number(n) => write!(f, "/{n}"),
        }
    }
}

/// A version whose every manifest file was read and verified against its sha256.
#[derive(Debug, Clone)]
pub struct ModelVersion {
    pub name: String,
    pub version: u64,
    /// Where the verified files live.
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub signature: Signature,
    /// The verified bytes of `model.onnx`.
    pub model_bytes: Vec<u8>,
    /// `profile.json`, parsed and validated, when the version has one.
    pub profile: Option<Profile>,
}

/// Tolerance on "shares sum to 1" in [`Profile::validate`]: profiles are written as decimal
/// JSON by another program, so the sum of rounded shares may be off by a little.
pub const PROFILE_SHARE_TOLERANCE: f64 = 1e-3;
/// Upper bound on a numeric feature's reference sample (the sample is meant to be bounded).
pub const PROFILE_MAX_SAMPLE: usize = 100_000;

/// `profile.json`: the reference profile a drift monitor compares live traffic against.
/// Produced from the training set by the trainer; frozen with the version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Number of reference rows the shares were computed from.
    pub rows: u64,
    /// One profile per model input (by name).
    pub features: Vec<FeatureProfile>,
    /// The profile of the model's score, when the trainer recorded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<FeatureProfile>,
}

/// The reference distribution of one feature (or of the score).
///
/// Shares are fractions of all reference rows, so for a numeric feature
/// `sum(shares) + missing_share ≈ 1` and for a categorical one `sum(shares) + unseen_share ≈ 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FeatureProfile {
    Numeric {
        name: String,
        /// Frozen inner bin edges (deciles of the reference), strictly increasing. The bins are
        /// `(-inf, e0]`, `(e0, e1]`, …, `(e_last, +inf)`.
        edges: Vec<f64>,
        /// Share of reference rows per bin; `edges.len() + 1` entries.
        shares: Vec<f64>,
        /// Share of reference rows where the value was missing (null / NaN).
        missing_share: f64,
        /// A bounded sample of reference values for the KS test.
        #[serde(default)]
        sample: Vec<f64>,
        /// Smallest and largest non-missing reference value, for the out-of-range share
        /// (older profiles lack them; a monitor then falls back to the sample's range).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
    Categorical {
        name: String,
        /// Known categories.
        categories: Vec<String>,
        /// Share of reference rows per category; `categories.len()` entries.
        shares: Vec<f64>,
        /// Share of reference rows whose value was none of `categories`.
        unseen_share: f64,
    },
}

impl FeatureProfile {
    pub fn name(&self) -> &str {
        match self {
            FeatureProfile::Numeric { name, .. } | FeatureProfile::Categorical { name, .. } => name,
        }
    }

    /// The signature kind this profile describes.
    pub fn kind(&self) -> FeatureKind {
        match self {
            FeatureProfile::Numeric { .. } => FeatureKind::Numeric,
            FeatureProfile::Categorical { .. } => FeatureKind::Categorical,
        }
    }

    /// Index of the bin `x` falls into (`None` for NaN, which counts as missing).
    /// Numeric profiles only; a categorical profile answers `None`.
    pub fn bin_of(&self, x: f64) -> Option<usize> {
        match self {
            FeatureProfile::Numeric { edges, .. } if !x.is_nan() => {
                Some(edges.partition_point(|e| *e < x))
            }
            _ => None,
        }
    }

    /// Checks the invariants a monitor relies on; the error names the feature.
    pub fn validate(&self) -> Result<(), String> {
        let name = self.name();
        if name.is_empty() {
            return Err("a profiled feature has an empty name".into());
        }
        let check_shares = |shares: &[f64], rest: f64, rest_name: &str| -> Result<(), String> {
            for (i, s) in shares.iter().enumerate() {
                if !s.is_finite() || !(0.0..=1.0).contains(s) {
                    return Err(format!(
                        "feature {name:?}: share {i} is {s}, not within 0..=1"
                    ));
                }
            }
            if !rest.is_finite() || !(0.0..=1.0).contains(&rest) {
                return Err(format!(
                    "feature {name:?}: {rest_name} is {rest}, not within 0..=1"
                ));
            }
            let total: f64 = shares.iter().sum::<f64>() + rest;
            if (total - 1.0).abs() > PROFILE_SHARE_TOLERANCE {
                return Err(format!(
                    "feature {name:?}: shares plus {rest_name} sum to {total}, not 1"
                ));
            }
            Ok(())
        };
        match self {
            FeatureProfile::Numeric {
                edges,
                shares,
                missing_share,
                sample,
                min,
                max,
                ..
            } => {
                match (min, max) {
                    (Some(lo), Some(hi)) if !(lo.is_finite() && hi.is_finite() && lo <= hi) => {
                        return Err(format!(
                            "feature {name:?}: min {lo} and max {hi} must be finite with min <= max"
                        ));
                    }
                    (Some(_), None) | (None, Some(_)) => {
                        return Err(format!("feature {name:?}: min and max come together"));
                    }
                    _ => {}
                }
                if let Some(e) = edges.iter().find(|e| !e.is_finite()) {
                    return Err(format!("feature {name:?}: edge {e} is not finite"));
                }
                if let Some(w) = edges.windows(2).find(|w| w[0] >= w[1]) {
                    return Err(format!(
                        "feature {name:?}: edges are not strictly increasing ({} then {})",
                        w[0], w[1]
                    ));
                }
                if shares.len() != edges.len() + 1 {
                    return Err(format!(
                        "feature {name:?}: {} shares for {} edges; expected {}",
                        shares.len(),
                        edges.len(),
                        edges.len() + 1
                    ));
                }
                check_shares(shares, *missing_share, "missing_share")?;
                if sample.len() > PROFILE_MAX_SAMPLE {
                    return Err(format!(
                        "feature {name:?}: reference sample has {} values; at most {PROFILE_MAX_SAMPLE}",
                        sample.len()
                    ));
                }
                if let Some(x) = sample.iter().find(|x| !x.is_finite()) {
                    return Err(format!("feature {name:?}: sample value {x} is not finite"));
                }
            }
            FeatureProfile::Categorical {
                categories,
                shares,
                unseen_share,
                ..
            } => {
                if shares.len() != categories.len() {
                    return Err(format!(
                        "feature {name:?}: {} shares for {} categories",
                        shares.len(),
                        categories.len()
                    ));
                }
                let mut seen = HashSet::new();
                if let Some(dup) = categories.iter().find(|c| !seen.insert(c.as_str())) {
                    return Err(format!(
                        "feature {name:?}: category {dup:?} is listed twice"
                    ));
                }
                check_shares(shares, *unseen_share, "unseen_share")?;
            }
        }
        Ok(())
    }
}

impl Profile {
    /// Checks every feature (and the score): shares sum to 1, lengths agree, edges strictly
    /// increasing and finite, names unique. The error names the feature.
    pub fn validate(&self) -> Result<(), String> {
        if self.rows == 0 {
            return Err("profile has rows = 0".into());
        }
        let mut seen = HashSet::new();
        for f in &self.features {
            f.validate()?;
            if !seen.insert(f.name()) {
                return Err(format!("feature {:?} is profiled twice", f.name()));
            }
        }
        if let Some(score) = &self.score {
            score.validate().map_err(|e| format!("score: {e}"))?;
        }
        Ok(())
    }

    /// Checks that every profiled feature is an input of `signature`, of the same kind.
    pub fn check_against(&self, signature: &Signature) -> Result<(), String> {
        let watched = signature.monitored_features();
        for f in &self.features {
            let Some(w) = watched.iter().find(|w| w.name == f.name()) else {
                return Err(format!(
                    "profiled feature {:?} is not a monitored input of the signature",
                    f.name()
                ));
            };
            if w.kind != f.kind() {
                return Err(format!(
                    "profiled feature {:?} is {:?} but the signature says {:?}",
                    f.name(),
                    f.kind(),
                    w.kind
                ));
            }
        }
        Ok(())
    }

    /// The profile of the named feature.
    pub fn feature(&self, name: &str) -> Option<&FeatureProfile> {
        self.features.iter().find(|f| f.name() == name)
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC (`2026-11-26T18:35:01Z`).
pub fn rfc3339_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig() -> Signature {
        Signature {
            inputs: vec![
                FeatureSpec::numeric("income", "FP32"),
                FeatureSpec::categorical("term", ["36", "60"]),
            ],
            tensor: Some(TensorSpec {
                name: "input".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 2],
            }),
            outputs: vec![TensorSpec {
                name: "probability".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 1],
            }],
            graph: None,
            online: None,
        }
    }

    #[test]
    fn valid_signature_round_trips() {
        let s = sig();
        s.validate().unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Signature>(&json).unwrap(), s);
        assert_eq!(s.position("term"), Some(1));
    }

    /// Signatures written before composite keys (`entity_key`) read as one INT64 key; new
    /// ones round-trip their keys and each view's keys; mistakes are named.
    #[test]
    fn online_keys_old_and_new() {
        let old = r#"{"entity_key": "applicant_id",
                      "views": [{"name": "bureau", "features": ["income"]}]}"#;
        let spec: OnlineSpec = serde_json::from_str(old).unwrap();
        assert_eq!(spec.keys, vec![OnlineKey::new("applicant_id", "INT64")]);
        assert_eq!(spec.view_keys(&spec.views[0]), vec![0]);
        let mut s = sig();
        s.online = Some(OnlineSpec {
            keys: vec![
                OnlineKey::new("applicant_id", "INT64"),
                OnlineKey::new("merchant", "STRING"),
            ],
            views: vec![OnlineView {
                name: "pair".into(),
                keys: vec!["merchant".into(), "applicant_id".into()],
                ttl_s: None,
                features: vec!["income".into()],
            }],
        });
        s.validate().unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("entity_key"), "{json}");
        let back: Signature = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        let online = back.online.as_ref().unwrap();
        assert_eq!(online.view_keys(&online.views[0]), vec![1, 0]);
        let mut bad = s.clone();
        bad.online.as_mut().unwrap().views[0].keys[0] = "shop".into();
        let e = bad.validate().unwrap_err();
        assert!(
            e.contains("key \"shop\", which is not in online.keys"),
            "{e}"
        );
        let mut bad = s.clone();
        bad.online.as_mut().unwrap().keys[1].dtype = "FP64".into();
        assert!(bad.validate().unwrap_err().contains("\"FP64\""));
        let mut bad = s;
        bad.online.as_mut().unwrap().keys[1].name = "income".into();
        assert!(bad.validate().unwrap_err().contains("not a model input"));
    }

    #[test]
    fn signature_violations_are_named() {
        let mut s = sig();
        s.inputs[1].vocab = Some(vec![]);
        assert!(s.validate().unwrap_err().contains("term"));
        let mut s = sig();
        s.tensor.as_mut().unwrap().shape = vec![-1, 3];
        assert!(s.validate().unwrap_err().contains("[-1, 2]"));
        let mut s = sig();
        s.inputs[1].name = "income".into();
        assert!(s.validate().unwrap_err().contains("twice"));
        let mut s = sig();
        s.inputs[1].vocab = Some(vec!["a".into(), "a".into()]);
        assert!(s.validate().unwrap_err().contains("repeats"));
    }

    pub(crate) fn profile() -> Profile {
        Profile {
            rows: 1000,
            features: vec![
                FeatureProfile::Numeric {
                    name: "income".into(),
                    edges: vec![10.0, 20.0, 30.0],
                    shares: vec![0.25, 0.25, 0.25, 0.2],
                    missing_share: 0.05,
                    sample: vec![5.0, 15.0, 25.0, 35.0],
                    min: Some(1.0),
                    max: Some(40.0),
                },
                FeatureProfile::Categorical {
                    name: "term".into(),
                    categories: vec!["36".into(), "60".into()],
                    shares: vec![0.7, 0.3],
                    unseen_share: 0.0,
                },
            ],
            score: Some(FeatureProfile::Numeric {
                name: "score".into(),
                edges: vec![0.5],
                shares: vec![0.5, 0.5],
                missing_share: 0.0,
                sample: vec![],
                min: None,
                max: None,
            }),
        }
    }

    #[test]
    fn profile_round_trips_with_kind_tags() {
        let p = profile();
        p.validate().unwrap();
        p.check_against(&sig()).unwrap();
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["features"][0]["kind"], "numeric");
        assert_eq!(json["features"][1]["kind"], "categorical");
        assert_eq!(serde_json::from_value::<Profile>(json).unwrap(), p);
        let f = p.feature("income").unwrap();
        assert_eq!(f.bin_of(10.0), Some(0), "edges are inclusive upper bounds");
        assert_eq!(f.bin_of(10.5), Some(1));
        assert_eq!(f.bin_of(1e9), Some(3));
        assert_eq!(f.bin_of(f64::NAN), None);
    }

    #[test]
    fn profile_violations_are_named() {
        let broken = |edit: &dyn Fn(&mut Profile)| {
            let mut p = profile();
            edit(&mut p);
            p.validate().unwrap_err()
        };
        type Parts<'a> = (
            &'a mut Vec<f64>,
            &'a mut Vec<f64>,
            &'a mut f64,
            &'a mut Vec<f64>,
        );
        fn numeric(p: &mut Profile) -> Parts<'_> {
            match &mut p.features[0] {
                FeatureProfile::Numeric {
                    edges,
                    shares,
                    missing_share,
                    sample,
                    ..
                } => (edges, shares, missing_share, sample),
                _ => unreachable!(),
            }
        }
        let e = broken(&|p| numeric(p).0[1] = 10.0);
        assert!(
            e.contains("income") && e.contains("strictly increasing"),
            "{e}"
        );
        let e = broken(&|p| numeric(p).0[1] = f64::INFINITY);
        assert!(e.contains("not finite"), "{e}");
        let e = broken(&|p| {
            numeric(p).1.pop();
        });
        assert!(e.contains("3 shares for 3 edges"), "{e}");
        let e = broken(&|p| *numeric(p).2 = 0.5);
        assert!(e.contains("sum to"), "{e}");
        let e = broken(&|p| numeric(p).3.push(f64::NAN));
        assert!(e.contains("sample"), "{e}");
        let e = broken(&|p| {
            if let FeatureProfile::Categorical { shares, .. } = &mut p.features[1] {
                shares[0] = 0.5;
            }
        });
        assert!(e.contains("term") && e.contains("sum to"), "{e}");
        let e = broken(&|p| {
            if let FeatureProfile::Categorical { categories, .. } = &mut p.features[1] {
                categories[1] = "36".into();
            }
        });
        assert!(e.contains("twice"), "{e}");
        let e = broken(&|p| {
            let f = p.features[0].clone();
            p.features.push(f);
        });
        assert!(e.contains("profiled twice"), "{e}");
        let e = broken(&|p| p.rows = 0);
        assert!(e.contains("rows"), "{e}");
        let mut p = profile();
        p.features.swap(0, 1);
        if let FeatureProfile::Categorical { name, .. } = &mut p.features[0] {
            *name = "income".into();
        }
        if let FeatureProfile::Numeric { name, .. } = &mut p.features[1] {
            *name = "term".into();
        }
        assert!(
            p.check_against(&sig())
                .unwrap_err()
                .contains("signature says")
        );
        let mut p = profile();
        if let FeatureProfile::Numeric { name, .. } = &mut p.features[0] {
            *name = "salary".into();
        }
        assert!(p.check_against(&sig()).unwrap_err().contains("salary"));
    }

    #[test]
    fn version_refs_parse() {
        assert_eq!("3".parse::<VersionRef>().unwrap(), VersionRef::Number(3));
        assert_eq!(
            "champion".parse::<VersionRef>().unwrap(),
            VersionRef::Alias("champion".into())
        );
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_718_101), "2026-11-26T18:35:01Z");
    }

    #[test]
    fn sha256_of_empty_input() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
