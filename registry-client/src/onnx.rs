//! Reading a model's tensor signature from its ONNX graph, without an inference engine: the
//! few `onnx.proto` messages it needs, declared with `prost` (fields not declared here are
//! skipped by the decoder, so initializer weights are never copied), and
//! [`GraphSignature::from_onnx`].

use std::collections::HashSet;

use prost::Message;
use serde::{Deserialize, Serialize};

use crate::types::TensorSpec;

/// Every graph input and output as the graph declares them, and whether requests can be
/// merged along dimension 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphSignature {
    /// Graph inputs that are not initializers, in graph order.
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// True when dimension 0 of every input is symbolic (`-1`): the batch dimension.
    pub batch: bool,
}

/// Why a graph has no tensor signature; the message names the input or output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct GraphError(pub String);

impl GraphSignature {
    /// Reads the signature of the ONNX model in `bytes`.
    pub fn from_onnx(bytes: &[u8]) -> Result<Self, GraphError> {
        let model = pb::ModelProto::decode(bytes)
            .map_err(|e| GraphError(format!("not an ONNX model: {e}")))?;
        let graph = model
            .graph
            .ok_or_else(|| GraphError("not an ONNX model: it has no graph".into()))?;
        // Before IR version 4, initializers were also listed as inputs; they are weights.
        let weights: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs = graph
            .input
            .iter()
            .filter(|v| !weights.contains(v.name.as_str()))
            .map(|v| tensor_spec(v, "input"))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = graph
            .output
            .iter()
            .map(|v| tensor_spec(v, "output"))
            .collect::<Result<Vec<_>, _>>()?;
        if inputs.is_empty() || outputs.is_empty() {
            return Err(GraphError(format!(
                "not a servable ONNX model: its graph has {} inputs and {} outputs",
                inputs.len(),
                outputs.len()
            )));
        }
        let batch = inputs.iter().all(|t| t.shape.first() == Some(&-1));
        Ok(Self {
            inputs,
            outputs,
            batch,
        })
    }

    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|t| t.name == name)
    }

    pub fn output(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|t| t.name == name)
    }
}

/// The Open Inference Protocol datatype of an ONNX element type, where it has one.
pub fn oip_datatype(elem_type: i32) -> Option<&'static str> {
    Some(match elem_type {
        1 => "FP32",
        2 => "UINT8",
        3 => "INT8",
        4 => "UINT16",
        5 => "INT16",
        6 => "INT32",
        7 => "INT64",
        8 => "BYTES",
        9 => "BOOL",
        10 => "FP16",
        11 => "FP64",
        12 => "UINT32",
        13 => "UINT64",
        16 => "BF16",
        _ => return None,
    })
}

fn tensor_spec(v: &pb::ValueInfoProto, what: &str) -> Result<TensorSpec, GraphError> {
    let name = &v.name;
    let kind = v.r#type.as_ref().and_then(|t| t.value.as_ref());
    let tensor = match kind {
        Some(pb::type_proto::Value::TensorType(t)) => t,
        Some(other) => {
            let hint =
                if what == "output" && matches!(other, pb::type_proto::Value::SequenceType(_)) {
                    // skl2onnx's classifiers end in a ZipMap unless told otherwise.
                    " (a ZipMap of class probabilities? export the classifier with skl2onnx \
                 `options={id(model): {'zipmap': False}}` or onnxmltools `zipmap=False`)"
                } else {
                    ""
                };
            return Err(GraphError(format!(
                "graph {what} {name:?} is a {}, not a tensor; Vane serves tensor {what}s{hint}",
                other.describe()
            )));
        }
        None => {
            return Err(GraphError(format!(
                "graph {what} {name:?} declares no type"
            )));
        }
    };
    let datatype = oip_datatype(tensor.elem_type).ok_or_else(|| {
        GraphError(format!(
            "graph {what} {name:?} has ONNX element type {}, which has no Open Inference Protocol datatype",
            tensor.elem_type
        ))
    })?;
    // No declared shape: the runtime decides; only its rank-free form can be recorded.
    let shape = match &tensor.shape {
        Some(s) => s
            .dim
            .iter()
            .map(|d| match d.value {
                Some(pb::dimension::Value::DimValue(n)) if n >= 0 => n,
                _ => -1,
            })
            .collect(),
        None if what == "input" => {
            return Err(GraphError(format!(
                "graph input {name:?} declares no shape; re-export it with one (e.g. [None, F])"
            )));
        }
        None => vec![-1],
    };
    Ok(TensorSpec {
        name: name.clone(),
        datatype: datatype.into(),
        shape,
    })
}

/// The subset of `onnx.proto` (field numbers as in onnx/onnx.proto3) that the signature needs.
#[allow(clippy::derive_partial_eq_without_eq)]
mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorName>,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
    }

    /// A `TensorProto` read for its name only (field 8); its data fields are skipped.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorName {
        #[prost(string, tag = "8")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        #[prost(oneof = "type_proto::Value", tags = "1, 4, 5, 8, 9")]
        pub value: Option<type_proto::Value>,
    }

    pub mod type_proto {
        // Named after the proto's fields (`tensor_type`, …).
        #[allow(clippy::enum_variant_names)]
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(message, tag = "1")]
            TensorType(Tensor),
            #[prost(message, tag = "4")]
            SequenceType(Box<Sequence>),
            #[prost(message, tag = "5")]
            MapType(Box<Map>),
            #[prost(message, tag = "8")]
            SparseTensorType(Tensor),
            #[prost(message, tag = "9")]
            OptionalType(Box<Sequence>),
        }

        impl Value {
            pub fn describe(&self) -> String {
                match self {
                    Value::TensorType(_) => "tensor".into(),
                    Value::SequenceType(s) => format!("sequence of {}", inner(&s.elem_type)),
                    Value::MapType(_) => "map".into(),
                    Value::SparseTensorType(_) => "sparse tensor".into(),
                    Value::OptionalType(s) => format!("optional {}", inner(&s.elem_type)),
                }
            }
        }

        fn inner(t: &Option<Box<super::TypeProto>>) -> String {
            t.as_ref()
                .and_then(|t| t.value.as_ref())
                .map_or_else(|| "?".into(), Value::describe)
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Tensor {
            #[prost(int32, tag = "1")]
            pub elem_type: i32,
            #[prost(message, optional, tag = "2")]
            pub shape: Option<super::TensorShapeProto>,
        }

        /// `Sequence` and `Optional` both hold one element type in field 1.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Sequence {
            #[prost(message, optional, boxed, tag = "1")]
            pub elem_type: Option<Box<super::TypeProto>>,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Map {
            #[prost(int32, tag = "1")]
            pub key_type: i32,
            #[prost(message, optional, boxed, tag = "2")]
            pub value_type: Option<Box<super::TypeProto>>,
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<Dimension>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        #[prost(oneof = "dimension::Value", tags = "1, 2")]
        pub value: Option<dimension::Value>,
    }

    pub mod dimension {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            #[prost(int64, tag = "1")]
            DimValue(i64),
            #[prost(string, tag = "2")]
            DimParam(String),
        }
    }

    #[cfg(test)]
    pub(crate) use type_proto::{Map, Sequence, Tensor};
}

#[cfg(test)]
pub(crate) mod tests {
    use super::pb::*;
    use super::*;

    fn dims(d: &[Option<i64>]) -> Option<TensorShapeProto> {
        Some(TensorShapeProto {
            dim: d
                .iter()
                .map(|d| Dimension {
                    value: Some(match d {
                        Some(n) => dimension::Value::DimValue(*n),
                        None => dimension::Value::DimParam("N".into()),
                    }),
                })
                .collect(),
        })
    }

    pub(crate) fn tensor(name: &str, elem: i32, d: &[Option<i64>]) -> ValueInfoProto {
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(Tensor {
                    elem_type: elem,
                    shape: dims(d),
                })),
            }),
        }
    }

    pub(crate) fn model(
        inputs: Vec<ValueInfoProto>,
        outputs: Vec<ValueInfoProto>,
        weights: &[&str],
    ) -> Vec<u8> {
        ModelProto {
            graph: Some(GraphProto {
                initializer: weights
                    .iter()
                    .map(|n| TensorName { name: (*n).into() })
                    .collect(),
                input: inputs,
                output: outputs,
            }),
        }
        .encode_to_vec()
    }

    #[test]
    fn reads_inputs_outputs_and_the_batch_dimension() {
        let bytes = model(
            vec![
                tensor("age", 1, &[None, Some(1)]),
                tensor("purpose", 8, &[None, Some(1)]),
                tensor("term", 7, &[None, Some(1)]),
                tensor("W", 1, &[Some(3), Some(2)]),
            ],
            vec![
                tensor("label", 7, &[None]),
                tensor("probabilities", 1, &[None, Some(2)]),
            ],
            &["W"],
        );
        let g = GraphSignature::from_onnx(&bytes).unwrap();
        let names: Vec<_> = g
            .inputs
            .iter()
            .map(|t| (t.name.as_str(), t.datatype.as_str()))
            .collect();
        assert_eq!(
            names,
            [("age", "FP32"), ("purpose", "BYTES"), ("term", "INT64")]
        );
        assert_eq!(g.inputs[0].shape, [-1, 1]);
        assert_eq!(g.output("label").unwrap().datatype, "INT64");
        assert_eq!(g.output("probabilities").unwrap().shape, [-1, 2]);
        assert!(g.batch);

        let fixed = model(
            vec![tensor("x", 11, &[Some(1), Some(4)])],
            vec![tensor("y", 1, &[Some(1)])],
            &[],
        );
        let g = GraphSignature::from_onnx(&fixed).unwrap();
        assert_eq!(g.inputs[0].datatype, "FP64");
        assert!(!g.batch, "a fixed first dimension is no batch dimension");
    }

    #[test]
    fn a_zipmap_output_is_refused_with_the_export_option() {
        let zipmap = ValueInfoProto {
            name: "output_probability".into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::SequenceType(Box::new(Sequence {
                    elem_type: Some(Box::new(TypeProto {
                        value: Some(type_proto::Value::MapType(Box::new(Map {
                            key_type: 7,
                            value_type: None,
                        }))),
                    })),
                }))),
            }),
        };
        let bytes = model(vec![tensor("x", 1, &[None, Some(4)])], vec![zipmap], &[]);
        let err = GraphSignature::from_onnx(&bytes).unwrap_err().to_string();
        assert!(err.contains("\"output_probability\""), "{err}");
        assert!(err.contains("sequence of map"), "{err}");
        assert!(err.contains("zipmap"), "{err}");
    }

    #[test]
    fn garbage_and_untyped_graphs_are_refused() {
        assert!(GraphSignature::from_onnx(b"\xff\xff\xff").is_err());
        assert!(
            GraphSignature::from_onnx(b"")
                .unwrap_err()
                .to_string()
                .contains("no graph")
        );
        let complex = model(
            vec![tensor("z", 14, &[None])],
            vec![tensor("y", 1, &[None])],
            &[],
        );
        let err = GraphSignature::from_onnx(&complex).unwrap_err().to_string();
        assert!(
            err.contains("\"z\"") && err.contains("element type 14"),
            "{err}"
        );
    }
}
