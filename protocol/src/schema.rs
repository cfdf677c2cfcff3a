//! What the codecs need to know about one model version: its signature, vocabularies,
//! outputs and request limits. Built once per version; nothing in it runs.

use std::collections::HashMap;

use vane_registry::{FeatureKind, GraphSignature, OnlineKey, Signature};

use crate::tensor::{DType, OutputMeta};

/// The graph inputs of a tensor-signature model, as requests must send them.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInputs {
    pub inputs: Vec<InputSpec>,
    /// Dimension 0 of every input is the batch dimension: requests are merged along it.
    pub batch: bool,
}

/// One graph input: name, element type, declared shape (`-1`: any size).
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<i64>,
}

impl TensorInputs {
    /// The graph's inputs; an element type Vane cannot carry is an error naming the input.
    pub fn from_graph(graph: &GraphSignature) -> Result<Self, String> {
        let inputs = graph
            .inputs
            .iter()
            .map(|t| {
                let dtype = DType::from_oip(&t.datatype).ok_or_else(|| {
                    format!(
                        "graph input {:?} is {}, which Vane does not carry; export the model with an FP32 or FP64 input",
                        t.name, t.datatype
                    )
                })?;
                Ok(InputSpec {
                    name: t.name.clone(),
                    dtype,
                    shape: t.shape.clone(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            inputs,
            batch: graph.batch,
        })
    }

    /// Index of the named input.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.inputs.iter().position(|i| i.name == name)
    }
}

/// The request and response shape of one model version.
#[derive(Debug, Clone)]
pub struct Schema {
    pub name: String,
    /// The version as it appears in bodies and labels.
    pub version_label: String,
    pub signature: Signature,
    /// Per feature: category → code, for categorical features.
    pub vocab: Vec<Option<HashMap<String, u32>>>,
    /// What the backend returns, in order.
    pub outputs: Vec<OutputMeta>,
    /// Most rows one request may carry.
    pub max_request_rows: usize,
    /// Whether `null` (NaN in binary floats) may reach the model as a missing value.
    pub allow_missing: bool,
    /// Per feature: filled from the online store when an entity-keyed request leaves it out.
    pub(crate) fillable: Vec<bool>,
    /// Set for a tensor-signature model: requests name graph inputs, not features.
    pub tensors: Option<TensorInputs>,
}

impl Schema {
    pub fn new(
        name: &str,
        version: u64,
        signature: Signature,
        outputs: Vec<OutputMeta>,
        max_request_rows: usize,
        allow_missing: bool,
    ) -> Result<Self, String> {
        let tensors = match (&signature.graph, signature.is_tensor_model()) {
            (Some(graph), true) => Some(TensorInputs::from_graph(graph)?),
            (None, true) => return Err("a signature without features needs its graph".into()),
            (_, false) => None,
        };
        let vocab = signature
            .inputs
            .iter()
            .map(|f| match f.kind {
                FeatureKind::Categorical => Some(
                    f.vocab
                        .iter()
                        .flatten()
                        .enumerate()
                        .map(|(i, c)| (c.clone(), i as u32))
                        .collect(),
                ),
                FeatureKind::Numeric => None,
            })
            .collect();
        let mut fillable = vec![false; signature.width()];
        if let Some(online) = &signature.online {
            for f in online.views.iter().flat_map(|v| &v.features) {
                if let Some(c) = signature.position(f) {
                    fillable[c] = true;
                }
            }
        }
        Ok(Self {
            name: name.to_owned(),
            version_label: version.to_string(),
            signature,
            vocab,
            outputs,
            max_request_rows,
            allow_missing,
            fillable,
            tensors,
        })
    }

    /// Model input width F.
    pub fn width(&self) -> usize {
        self.signature.width()
    }

    /// The join keys naming the entities whose stored features complete a request (empty
    /// without an online spec).
    pub fn entity_keys(&self) -> &[OnlineKey] {
        self.signature
            .online
            .as_ref()
            .map_or(&[], |o| o.keys.as_slice())
    }

    /// Values one request may carry in all: `max_request_rows` rows of every feature and join
    /// key. Decoders stop at this count, before allocating more.
    pub(crate) fn value_budget(&self) -> usize {
        self.max_request_rows
            .saturating_mul(self.width() + self.entity_keys().len().max(1))
    }
}
