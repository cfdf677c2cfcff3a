//! Hand-built ONNX models in the style of other exporters (skl2onnx): `ai.onnx.ml` operators
//! tract lacks, and an operator no runtime knows.

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::type_proto;
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use vane_registry::{DirRegistry, FeatureSpec, PublishRequest, Signature, TensorSpec};

fn floats(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Floats as i32,
        floats: v.to_vec(),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn value_info(name: &str, elem: DataType, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            denotation: String::new(),
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam("N".into()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            denotation: String::new(),
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
        ..Default::default()
    }
}

fn model(
    nodes: Vec<NodeProto>,
    outputs: Vec<ValueInfoProto>,
    f: i64,
    extra_domain: (&str, i64),
) -> Vec<u8> {
    let graph = GraphProto {
        name: "foreign".into(),
        node: nodes,
        input: vec![value_info("float_input", DataType::Float, &[None, Some(f)])],
        output: outputs,
        ..Default::default()
    };
    let m = ModelProto {
        ir_version: 8,
        producer_name: "skl2onnx-like".into(),
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            OperatorSetIdProto {
                domain: extra_domain.0.into(),
                version: extra_domain.1,
            },
        ],
        graph: Some(graph),
        ..Default::default()
    };
    prost::Message::encode_to_vec(&m)
}

pub const OFFSET: [f32; 3] = [1.0, -2.0, 0.5];
pub const SCALE: [f32; 3] = [0.5, 0.25, 2.0];
pub const COEF: [f32; 3] = [0.8, -1.2, 0.3];
pub const INTERCEPT: f32 = 0.1;

/// `Scaler` → `LinearClassifier` (binary, logistic), as skl2onnx exports a pipeline of
/// StandardScaler + LogisticRegression with `zipmap=False`: outputs `label` (int64 [N]) and
/// `probabilities` (float [N, 2]).
pub fn scaler_linear_classifier() -> Vec<u8> {
    let scaler = NodeProto {
        name: "Scaler".into(),
        op_type: "Scaler".into(),
        domain: "ai.onnx.ml".into(),
        input: vec!["float_input".into()],
        output: vec!["variable".into()],
        attribute: vec![floats("offset", &OFFSET), floats("scale", &SCALE)],
        ..Default::default()
    };
    // Binary LinearClassifier in skl2onnx's layout: coefficients for class 1 only.
    let clf = NodeProto {
        name: "LinearClassifier".into(),
        op_type: "LinearClassifier".into(),
        domain: "ai.onnx.ml".into(),
        input: vec!["variable".into()],
        output: vec!["label".into(), "probabilities".into()],
        attribute: vec![
            ints("classlabels_ints", &[0, 1]),
            floats(
                "coefficients",
                &[-COEF[0], -COEF[1], -COEF[2], COEF[0], COEF[1], COEF[2]],
            ),
            floats("intercepts", &[-INTERCEPT, INTERCEPT]),
            int("multi_class", 0),
            string("post_transform", "LOGISTIC"),
        ],
        ..Default::default()
    };
    model(
        vec![scaler, clf],
        vec![
            value_info("label", DataType::Int64, &[None]),
            value_info("probabilities", DataType::Float, &[None, Some(2)]),
        ],
        3,
        ("ai.onnx.ml", 1),
    )
}

/// The probability of class 1 that [`scaler_linear_classifier`] computes.
pub fn scaler_linear_reference(row: &[f32]) -> f32 {
    let z: f32 = row
        .iter()
        .zip(OFFSET.iter().zip(SCALE.iter().zip(COEF)))
        .map(|(x, (o, (s, c)))| (x - o) * s * c)
        .sum::<f32>()
        + INTERCEPT;
    1.0 / (1.0 + (-z).exp())
}

/// A model whose only node is an operator nobody implements.
pub fn unknown_operator() -> Vec<u8> {
    let node = NodeProto {
        name: "mystery".into(),
        op_type: "FrobnicateTransform".into(),
        domain: "com.example.custom".into(),
        input: vec!["float_input".into()],
        output: vec!["probability".into()],
        ..Default::default()
    };
    model(
        vec![node],
        vec![value_info("probability", DataType::Float, &[None, Some(1)])],
        3,
        ("com.example.custom", 1),
    )
}

pub fn three_feature_signature(outputs: Vec<TensorSpec>) -> Signature {
    Signature {
        inputs: ["a", "b", "c"]
            .iter()
            .map(|n| FeatureSpec::numeric(*n, "FP32"))
            .collect(),
        tensor: Some(TensorSpec {
            name: "float_input".into(),
            datatype: "FP32".into(),
            shape: vec![-1, 3],
        }),
        outputs,
        graph: None,
        online: None,
    }
}

/// Publishes `bytes` as `model` version 1 with alias champion.
pub fn publish(dir: &std::path::Path, model: &str, bytes: Vec<u8>, sig: &Signature) {
    let reg = DirRegistry::create(dir).unwrap();
    let v = reg
        .publish(&PublishRequest {
            model: model.into(),
            files: vec![
                ("model.onnx".into(), bytes),
                ("signature.json".into(), serde_json::to_vec(sig).unwrap()),
            ],
            ..Default::default()
        })
        .unwrap();
    reg.set_alias(model, "champion", v).unwrap();
}

/// Weights of [`mixed_inputs`]: `score = sigmoid(x·W[..2] + k·W[2] + B)`.
pub const MIXED_W: [f32; 3] = [0.7, -0.4, 0.05];
pub const MIXED_B: f32 = -0.3;

/// A graph with two typed inputs, as a PyTorch or hand-written export has them: `x` (float
/// [N, 2]) and `k` (int64 [N, 1]); outputs `score` (float [N, 1]) and `k2` (int64 [N, 1],
/// `2k`). With `batch` false, N is fixed at 1 (no batch dimension).
pub fn mixed_inputs(batch: bool) -> Vec<u8> {
    use tract_onnx::pb::TensorProto;
    let n = if batch { None } else { Some(1) };
    let node =
        |op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>| NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            name: output.into(),
            attribute,
            ..Default::default()
        };
    let graph = GraphProto {
        name: "mixed".into(),
        node: vec![
            node(
                "Cast",
                &["k"],
                "kf",
                vec![int("to", DataType::Float as i64)],
            ),
            node("Concat", &["x", "kf"], "z", vec![int("axis", 1)]),
            node("MatMul", &["z", "W"], "s", vec![]),
            node("Add", &["s", "B"], "logit", vec![]),
            node("Sigmoid", &["logit"], "score", vec![]),
            node("Add", &["k", "k"], "k2", vec![]),
        ],
        initializer: vec![
            TensorProto {
                name: "W".into(),
                dims: vec![3, 1],
                data_type: DataType::Float as i32,
                float_data: MIXED_W.to_vec(),
                ..Default::default()
            },
            TensorProto {
                name: "B".into(),
                dims: vec![1],
                data_type: DataType::Float as i32,
                float_data: vec![MIXED_B],
                ..Default::default()
            },
        ],
        input: vec![
            value_info("x", DataType::Float, &[n, Some(2)]),
            value_info("k", DataType::Int64, &[n, Some(1)]),
        ],
        output: vec![
            value_info("score", DataType::Float, &[n, Some(1)]),
            value_info("k2", DataType::Int64, &[n, Some(1)]),
        ],
        ..Default::default()
    };
    let m = ModelProto {
        ir_version: 8,
        producer_name: "torch-like".into(),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(graph),
        ..Default::default()
    };
    prost::Message::encode_to_vec(&m)
}

/// [`mixed_inputs`]'s `score` for one row, in f32 and the graph's order of operations.
pub fn mixed_reference(x: [f32; 2], k: i64) -> f32 {
    let z = x[0] * MIXED_W[0] + x[1] * MIXED_W[1] + k as f32 * MIXED_W[2];
    1.0 / (1.0 + (-(z + MIXED_B)).exp())
}
