use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// `signature.json`: the features a client may name, in the model tensor's column order, and
/// the model's tensor input and outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub inputs: Vec<FeatureSpec>,
    /// The single `[N, F]` tensor the ONNX graph takes; `F == inputs.len()`.
    pub tensor: TensorSpec,
    pub outputs: Vec<TensorSpec>,
}

impl Signature {
    /// Checks the invariants the server relies on; the error says which one broke.
    pub fn validate(&self) -> Result<(), String> {
        if self.inputs.is_empty() {
            return Err("signature has no inputs".into());
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
        if self.tensor.datatype != "FP32" {
            return Err(format!(
                "tensor {:?} has datatype {:?}; Vane serves FP32 [N, F] models",
                self.tensor.name, self.tensor.datatype
            ));
        }
        if self.tensor.shape.len() != 2 || self.tensor.shape[1] != self.inputs.len() as i64 {
            return Err(format!(
                "tensor {:?} has shape {:?}; expected [-1, {}] (one column per input)",
                self.tensor.name,
                self.tensor.shape,
                self.inputs.len()
            ));
        }
        if self.outputs.is_empty() {
            return Err("signature has no outputs".into());
        }
        Ok(())
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
    /// `profile.json`, when the version has one.
    pub profile: Option<serde_json::Value>,
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
                FeatureSpec {
                    name: "income".into(),
                    dtype: "FP32".into(),
                    shape: vec![-1],
                    kind: FeatureKind::Numeric,
                    vocab: None,
                },
                FeatureSpec {
                    name: "term".into(),
                    dtype: "BYTES".into(),
                    shape: vec![-1],
                    kind: FeatureKind::Categorical,
                    vocab: Some(vec!["36".into(), "60".into()]),
                },
            ],
            tensor: TensorSpec {
                name: "input".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 2],
            },
            outputs: vec![TensorSpec {
                name: "probability".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 1],
            }],
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

    #[test]
    fn signature_violations_are_named() {
        let mut s = sig();
        s.inputs[1].vocab = Some(vec![]);
        assert!(s.validate().unwrap_err().contains("term"));
        let mut s = sig();
        s.tensor.shape = vec![-1, 3];
        assert!(s.validate().unwrap_err().contains("[-1, 2]"));
        let mut s = sig();
        s.inputs[1].name = "income".into();
        assert!(s.validate().unwrap_err().contains("twice"));
        let mut s = sig();
        s.inputs[1].vocab = Some(vec!["a".into(), "a".into()]);
        assert!(s.validate().unwrap_err().contains("repeats"));
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
