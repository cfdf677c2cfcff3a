//! Reading a model's tensor signature from its ONNX graph, without an inference engine: the
//! few `onnx.proto` messages it needs, declared with `prost` (fields not declared here are
//! skipped by the decoder, so initializer weights are never copied), and
//! [`GraphSignature::from_onnx`].
//!
//! [`unzip_class_maps`] serves classifiers exported with a `ZipMap` (skl2onnx's and
//! onnxmltools' default): their probability output becomes the `[N, classes]` tensor the map
//! was built from.

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
    /// Reads the signature of the ONNX model in `bytes`, as served: a `ZipMap` output is read
    /// as the tensor [`unzip_class_maps`] makes of it.
    pub fn from_onnx(bytes: &[u8]) -> Result<Self, GraphError> {
        let unzipped = unzip_class_maps(bytes)?;
        let bytes = unzipped.as_deref().unwrap_or(bytes);
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

/// `ModelProto.graph`, `GraphProto.node` and `GraphProto.output` (onnx.proto field numbers).
const MODEL_GRAPH: u64 = 7;
const GRAPH_NODE: u64 = 1;
const GRAPH_OUTPUT: u64 = 12;

/// Rewrites a classifier whose graph outputs include a `ZipMap` (a sequence of maps, class →
/// probability, which Open Inference Protocol tensors cannot carry): each such output becomes
/// the `ZipMap`'s input under the output's name, a float tensor `[N, classes]` with one
/// column per class in the map's key order (the classifier's class order, as
/// `output_label`'s values). Everything else in the file is copied byte for byte. `None`
/// when no graph output comes from a `ZipMap`.
///
/// Only the graph's nodes and outputs are decoded (the wire format is walked field by field),
/// so fields this module does not declare, the weights among them, are kept as they were.
pub fn unzip_class_maps(bytes: &[u8]) -> Result<Option<Vec<u8>>, GraphError> {
    let bad = |e: &dyn std::fmt::Display| GraphError(format!("not an ONNX model: {e}"));
    let model = wire::fields(bytes).map_err(|e| bad(&e))?;
    let graphs: Vec<&wire::Field<'_>> = model.iter().filter(|f| f.number == MODEL_GRAPH).collect();
    let [graph] = graphs[..] else {
        return Ok(None);
    };
    let Some(graph_bytes) = graph.payload else {
        return Ok(None);
    };
    let fields = wire::fields(graph_bytes).map_err(|e| bad(&e))?;
    let mut outputs = HashSet::new();
    for f in fields.iter().filter(|f| f.number == GRAPH_OUTPUT) {
        let v = pb::ValueInfoProto::decode(f.payload.unwrap_or_default()).map_err(|e| bad(&e))?;
        outputs.insert(v.name);
    }
    // Graph output name → (the ZipMap's input, its number of classes).
    let mut unzipped: std::collections::HashMap<String, (String, Option<i64>)> =
        std::collections::HashMap::new();
    for f in fields.iter().filter(|f| f.number == GRAPH_NODE) {
        let payload = f.payload.unwrap_or_default();
        // Every node's head, but only a ZipMap's attributes (a tree ensemble's run to MBs).
        let head = pb::NodeHead::decode(payload).map_err(|e| bad(&e))?;
        if head.op_type == "ZipMap"
            && head.domain == "ai.onnx.ml"
            && let ([input], [output]) = (&head.input[..], &head.output[..])
            && outputs.contains(output)
        {
            let node = pb::NodeAttributes::decode(payload).map_err(|e| bad(&e))?;
            let classes = node.attribute.iter().find_map(|a| match a.name.as_str() {
                "classlabels_int64s" => Some(a.ints.len() as i64),
                "classlabels_strings" => Some(a.strings.len() as i64),
                _ => None,
            });
            unzipped.insert(output.clone(), (input.clone(), classes));
        }
    }
    if unzipped.is_empty() {
        return Ok(None);
    }
    let mut graph_out = Vec::with_capacity(graph_bytes.len());
    for f in &fields {
        match f.number {
            GRAPH_NODE => {
                let node =
                    pb::NodeHead::decode(f.payload.unwrap_or_default()).map_err(|e| bad(&e))?;
                match node.output.first().and_then(|o| unzipped.get(o)) {
                    Some((input, _)) if node.op_type == "ZipMap" => {
                        let identity = pb::NodeHead {
                            input: vec![input.clone()],
                            output: node.output.clone(),
                            name: node.name.clone(),
                            op_type: "Identity".into(),
                            domain: String::new(),
                        };
                        wire::put(&mut graph_out, GRAPH_NODE, &identity.encode_to_vec());
                    }
                    _ => graph_out.extend_from_slice(f.whole),
                }
            }
            GRAPH_OUTPUT => {
                let v = pb::ValueInfoProto::decode(f.payload.unwrap_or_default())
                    .map_err(|e| bad(&e))?;
                match unzipped.get(&v.name) {
                    Some((_, classes)) => {
                        let dim = |value| pb::Dimension { value };
                        let tensor = pb::ValueInfoProto {
                            name: v.name.clone(),
                            r#type: Some(pb::TypeProto {
                                value: Some(pb::type_proto::Value::TensorType(
                                    pb::type_proto::Tensor {
                                        elem_type: 1,
                                        shape: Some(pb::TensorShapeProto {
                                            dim: vec![
                                                dim(Some(pb::dimension::Value::DimParam(
                                                    "N".into(),
                                                ))),
                                                dim(classes.map(pb::dimension::Value::DimValue)),
                                            ],
                                        }),
                                    },
                                )),
                            }),
                        };
                        wire::put(&mut graph_out, GRAPH_OUTPUT, &tensor.encode_to_vec());
                    }
                    None => graph_out.extend_from_slice(f.whole),
                }
            }
            _ => graph_out.extend_from_slice(f.whole),
        }
    }
    let mut out = Vec::with_capacity(bytes.len());
    for f in &model {
        if f.number == MODEL_GRAPH {
            wire::put(&mut out, MODEL_GRAPH, &graph_out);
        } else {
            out.extend_from_slice(f.whole);
        }
    }
    Ok(Some(out))
}

/// Walking the protobuf wire format field by field, for rewriting a message without decoding
/// what it does not change.
mod wire {
    /// One field of a message: its number, its bytes (key included) and, for a
    /// length-delimited field, its payload.
    pub struct Field<'a> {
        pub number: u64,
        pub whole: &'a [u8],
        pub payload: Option<&'a [u8]>,
    }

    fn varint(b: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first().ok_or("truncated varint")?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take<'a>(b: &mut &'a [u8], n: u64) -> Result<&'a [u8], String> {
        let n = usize::try_from(n).map_err(|_| "field length overflows")?;
        if n > b.len() {
            return Err(format!("a field of {n} bytes runs past the message"));
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }

    /// The fields of one message, in order.
    pub fn fields(mut b: &[u8]) -> Result<Vec<Field<'_>>, String> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let start = b;
            let key = varint(&mut b)?;
            let payload = match key & 7 {
                0 => {
                    varint(&mut b)?;
                    None
                }
                1 => {
                    take(&mut b, 8)?;
                    None
                }
                2 => {
                    let n = varint(&mut b)?;
                    Some(take(&mut b, n)?)
                }
                5 => {
                    take(&mut b, 4)?;
                    None
                }
                t => return Err(format!("unsupported wire type {t}")),
            };
            out.push(Field {
                number: key >> 3,
                whole: &start[..start.len() - b.len()],
                payload,
            });
        }
        Ok(out)
    }

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// Appends a length-delimited field.
    pub fn put(out: &mut Vec<u8>, number: u64, payload: &[u8]) {
        put_varint(out, number << 3 | 2);
        put_varint(out, payload.len() as u64);
        out.extend_from_slice(payload);
    }
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

    /// A node's attributes, read apart from its head (a tree ensemble's run to MBs).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeAttributes {
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
    }

    /// A node without its attributes, read (and written) for what
    /// [`super::unzip_class_maps`] needs.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeHead {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(string, tag = "7")]
        pub domain: String,
    }

    /// An attribute's name and its integer and string lists (`ZipMap`'s class labels).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
        #[prost(bytes = "vec", repeated, tag = "9")]
        pub strings: Vec<Vec<u8>>,
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

    fn seq_of_map(name: &str) -> ValueInfoProto {
        ValueInfoProto {
            name: name.into(),
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
        }
    }

    /// A skl2onnx-style classifier: `LinearClassifier` → (`label`, `probabilities`), then a
    /// `ZipMap` of the probabilities as the graph output `output_probability`; with fields
    /// this module does not declare (IR version, opset, graph name, a weight) around them.
    fn zipmap_model() -> (Vec<u8>, Vec<u8>) {
        // A node's encoding: its head, then its attributes (protobuf fields concatenate).
        let node =
            |op: &str, domain: &str, input: &[&str], output: &[&str], attr: AttributeProto| {
                let mut bytes = NodeHead {
                    input: input.iter().map(|s| s.to_string()).collect(),
                    output: output.iter().map(|s| s.to_string()).collect(),
                    name: format!("{op}_node"),
                    op_type: op.into(),
                    domain: domain.into(),
                }
                .encode_to_vec();
                wire::put(&mut bytes, 5, &attr.encode_to_vec());
                bytes
            };
        let classifier = node(
            "LinearClassifier",
            "ai.onnx.ml",
            &["X"],
            &["label", "probabilities"],
            AttributeProto {
                name: "classlabels_ints".into(),
                ints: vec![0, 1, 2],
                strings: vec![],
            },
        );
        let zipmap = node(
            "ZipMap",
            "ai.onnx.ml",
            &["probabilities"],
            &["output_probability"],
            AttributeProto {
                name: "classlabels_int64s".into(),
                ints: vec![0, 1, 2],
                strings: vec![],
            },
        );
        let mut graph = Vec::new();
        wire::put(&mut graph, GRAPH_NODE, &classifier);
        wire::put(&mut graph, GRAPH_NODE, &zipmap);
        wire::put(&mut graph, 2, b"classifier");
        wire::put(
            &mut graph,
            5,
            &TensorName { name: "W".into() }.encode_to_vec(),
        );
        let x = tensor("X", 1, &[None, Some(4)]).encode_to_vec();
        wire::put(&mut graph, 11, &x);
        let label = tensor("label", 7, &[None]).encode_to_vec();
        wire::put(&mut graph, GRAPH_OUTPUT, &label);
        let probability = seq_of_map("output_probability").encode_to_vec();
        wire::put(&mut graph, GRAPH_OUTPUT, &probability);
        let mut model = vec![0x08, 0x08]; // ir_version 8
        wire::put(&mut model, MODEL_GRAPH, &graph);
        wire::put(&mut model, 8, b"\x0a\x0aai.onnx.ml\x10\x03"); // opset_import
        (model, classifier)
    }

    #[test]
    fn a_zipmap_output_is_served_as_its_probability_tensor() {
        let (bytes, classifier) = zipmap_model();
        let g = GraphSignature::from_onnx(&bytes).unwrap();
        assert_eq!(g.output("label").unwrap().datatype, "INT64");
        let p = g.output("output_probability").unwrap();
        assert_eq!((p.datatype.as_str(), &p.shape[..]), ("FP32", &[-1, 3][..]));
        assert!(g.batch);

        let unzipped = unzip_class_maps(&bytes).unwrap().unwrap();
        let top = wire::fields(&unzipped).unwrap();
        let before = wire::fields(&bytes).unwrap();
        // Every field but the graph is copied byte for byte.
        assert_eq!(top.len(), before.len());
        for (a, b) in top.iter().zip(&before) {
            if a.number != MODEL_GRAPH {
                assert_eq!(a.whole, b.whole);
            }
        }
        let graph = top.iter().find(|f| f.number == MODEL_GRAPH).unwrap();
        let fields = wire::fields(graph.payload.unwrap()).unwrap();
        let node_fields: Vec<_> = fields.iter().filter(|f| f.number == GRAPH_NODE).collect();
        assert_eq!(
            node_fields[0].payload.unwrap(),
            classifier,
            "other nodes are untouched"
        );
        let nodes: Vec<NodeHead> = node_fields
            .iter()
            .map(|f| NodeHead::decode(f.payload.unwrap()).unwrap())
            .collect();
        let attributes = NodeAttributes::decode(node_fields[1].payload.unwrap()).unwrap();
        assert_eq!(
            (
                nodes[1].op_type.as_str(),
                &nodes[1].input[..],
                &nodes[1].output[..]
            ),
            (
                "Identity",
                &["probabilities".to_string()][..],
                &["output_probability".to_string()][..]
            )
        );
        assert!(nodes[1].domain.is_empty() && attributes.attribute.is_empty());
        for number in [2, 5, 11] {
            let a: Vec<_> = fields
                .iter()
                .filter(|f| f.number == number)
                .map(|f| f.whole)
                .collect();
            let b = wire::fields(
                before
                    .iter()
                    .find(|f| f.number == MODEL_GRAPH)
                    .unwrap()
                    .payload
                    .unwrap(),
            )
            .unwrap();
            let b: Vec<_> = b
                .iter()
                .filter(|f| f.number == number)
                .map(|f| f.whole)
                .collect();
            assert_eq!(a, b, "graph field {number} is copied");
        }
        // The rewritten model reads as the signature said, and rewriting it again is a no-op.
        assert_eq!(GraphSignature::from_onnx(&unzipped).unwrap(), g);
        assert_eq!(unzip_class_maps(&unzipped).unwrap(), None);
        // A model without a ZipMap is left alone.
        let plain = model(
            vec![tensor("x", 1, &[None, Some(4)])],
            vec![tensor("y", 1, &[None])],
            &[],
        );
        assert_eq!(unzip_class_maps(&plain).unwrap(), None);
        // Truncated bytes are an error, not a panic.
        assert!(unzip_class_maps(&bytes[..bytes.len() - 3]).is_err());
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
