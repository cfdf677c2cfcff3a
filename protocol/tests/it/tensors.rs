//! Worked examples for tensor-signature models: typed inputs by name, checked against the
//! graph, no conversion; records as columns; what is refused, and how the message names it.

use serde_json::{Value, json};
use vane_protocol::tensor::{DType, Output, OutputMeta, Tensor, TensorData};
use vane_protocol::{Schema, TensorInputs, decode_infer, decode_records, encode_infer};
use vane_registry::{GraphSignature, Signature, TensorSpec};

fn spec(name: &str, datatype: &str, shape: &[i64]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
    }
}

fn graph(inputs: Vec<TensorSpec>, batch: bool) -> GraphSignature {
    GraphSignature {
        inputs,
        outputs: vec![spec("label", "INT64", &[-1]), spec("p", "FP32", &[-1, 2])],
        batch,
    }
}

/// age FP32 [-1, 1], term INT64 [-1, 1], purpose BYTES [-1], x FP64 [-1, 2].
fn schema(allow_missing: bool) -> Schema {
    let g = graph(
        vec![
            spec("age", "FP32", &[-1, 1]),
            spec("term", "INT64", &[-1, 1]),
            spec("purpose", "BYTES", &[-1]),
            spec("x", "FP64", &[-1, 2]),
        ],
        true,
    );
    let outputs = vec![
        OutputMeta {
            name: "label".into(),
            dtype: DType::I64,
            row_shape: vec![],
        },
        OutputMeta {
            name: "p".into(),
            dtype: DType::F32,
            row_shape: vec![2],
        },
    ];
    Schema::new("m", 1, Signature::from_graph(g), outputs, 8, allow_missing).unwrap()
}

fn good() -> Value {
    json!({"id": 3, "inputs": [
        {"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [[0.1, 1e300], [2, -3]]},
        {"name": "age", "shape": [2, 1], "datatype": "FP32", "data": [31.5, 40]},
        {"name": "term", "shape": [2, 1], "datatype": "INT64", "data": [36, 9007199254740993_i64]},
        {"name": "purpose", "shape": [2], "datatype": "BYTES", "data": ["car", "h\u{e9}me"]},
    ]})
}

fn v2(body: &Value) -> Result<vane_protocol::Decoded, String> {
    decode_infer(&schema(false), &serde_json::to_vec(body).unwrap(), None).map_err(|e| e.0)
}

#[test]
fn inputs_pass_through_in_their_own_types_in_graph_order() {
    let d = v2(&good()).unwrap();
    assert_eq!(d.rows, 2);
    assert!(d.input.is_empty());
    assert_eq!(d.id.as_deref(), Some("\"3\""));
    let t = &d.tensors;
    assert_eq!(
        t[0],
        Tensor {
            data: TensorData::F32(vec![31.5, 40.0]),
            shape: vec![2, 1]
        }
    );
    // An INT64 beyond f64's exact range stays exact.
    assert_eq!(t[1].data, TensorData::I64(vec![36, 9_007_199_254_740_993]));
    assert_eq!(
        t[2].data,
        TensorData::Str(vec!["car".into(), "h\u{e9}me".into()])
    );
    assert_eq!(
        t[3],
        Tensor {
            data: TensorData::F64(vec![0.1, 1e300, 2.0, -3.0]),
            shape: vec![2, 2]
        }
    );
}

#[test]
fn each_mistake_is_named() {
    let refused = |edit: &dyn Fn(&mut Value), needle: &str| {
        let mut body = good();
        edit(&mut body);
        let err = v2(&body).unwrap_err();
        assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    };
    refused(
        &|b| b["inputs"][1]["datatype"] = json!("FP64"),
        "input \"age\" has datatype FP64; the model takes FP32",
    );
    refused(
        &|b| {
            b["inputs"].as_array_mut().unwrap().remove(2);
        },
        "missing input \"term\"",
    );
    refused(
        &|b| b["inputs"][0]["shape"] = json!([1, 4]),
        "dimension 1 is 4; the model fixes it at 2",
    );
    refused(&|b| b["inputs"][3]["shape"] = json!([2, 1]), "rank 1");
    refused(
        &|b| {
            b["inputs"][1]["shape"] = json!([1, 1]);
            b["inputs"][1]["data"] = json!([3]);
        },
        "disagree on the batch dimension",
    );
    refused(
        &|b| b["inputs"][2]["data"] = json!([36, 1.5]),
        "not an integer",
    );
    refused(
        &|b| b["inputs"][2]["data"] = json!([36, "60"]),
        "input \"term\": element 1 is a string",
    );
    refused(
        &|b| b["inputs"][3]["data"] = json!(["car", 7]),
        "input \"purpose\": element 1 is a number",
    );
    refused(
        &|b| b["inputs"][1]["data"] = json!([1e39, 2]),
        "does not fit in FP32",
    );
    refused(
        &|b| b["inputs"][1]["data"] = json!([null, 2]),
        "does not accept missing values",
    );
    refused(
        &|b| b["inputs"][1]["data"] = json!([1, 2, 3]),
        "needs 2 values, data has 3",
    );
    refused(
        &|b| b["inputs"][0]["name"] = json!("z"),
        "unknown input \"z\"",
    );
    refused(
        &|b| b["inputs"][0]["shape"] = json!([9, 2]),
        "exceeds this model's max_request_rows (8)",
    );
    refused(
        &|b| {
            let dup = b["inputs"][0].clone();
            b["inputs"].as_array_mut().unwrap().push(dup);
        },
        "given twice",
    );
    // With missing values allowed, null floats reach the model as NaN.
    let mut body = good();
    body["inputs"][1]["data"] = json!([null, 2]);
    let d = decode_infer(&schema(true), &serde_json::to_vec(&body).unwrap(), None).unwrap();
    assert!(d.tensors[0].data.as_f32().unwrap()[0].is_nan());
    // An integral float is an integer.
    let mut body = good();
    body["inputs"][2]["data"] = json!([36.0, 60]);
    assert_eq!(
        v2(&body).unwrap().tensors[1].data,
        TensorData::I64(vec![36, 60])
    );
}

#[test]
fn records_map_to_columns_and_say_why_when_they_cannot() {
    let columns = graph(
        vec![
            spec("age", "FP32", &[-1, 1]),
            spec("purpose", "BYTES", &[-1]),
        ],
        true,
    );
    let s = Schema::new("m", 1, Signature::from_graph(columns), vec![], 8, false).unwrap();
    let body =
        json!({"instances": [{"age": 31, "purpose": "car"}, {"purpose": "home", "age": 40.5}]});
    let d = decode_records(&s, &serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(d.rows, 2);
    assert_eq!(
        d.tensors[0],
        Tensor {
            data: TensorData::F32(vec![31.0, 40.5]),
            shape: vec![2, 1]
        }
    );
    assert_eq!(
        d.tensors[1],
        Tensor {
            data: TensorData::Str(vec!["car".into(), "home".into()]),
            shape: vec![2]
        }
    );
    let err = |body: Value| {
        decode_records(&s, &serde_json::to_vec(&body).unwrap())
            .unwrap_err()
            .0
    };
    let e = err(json!({"instances": [{"age": 31, "purpose": "car"}, {"age": 40}]}));
    assert!(
        e.contains("instance 1: column \"purpose\" is missing"),
        "{e}"
    );
    let e = err(json!({"instances": [{"age": "old", "purpose": "car"}]}));
    assert!(e.contains("instance 0") && e.contains("\"age\""), "{e}");
    let e = err(json!({"instances": [{"age": 1, "purpose": "car", "colour": "red"}]}));
    assert!(e.contains("unknown column \"colour\""), "{e}");

    // One [N, F] input: instances as lists.
    let matrix = graph(vec![spec("input", "FP32", &[-1, 3])], true);
    let s = Schema::new("m", 1, Signature::from_graph(matrix), vec![], 8, false).unwrap();
    let d = decode_records(&s, br#"{"instances": [[1, 2, 3], [4, 5, 6]]}"#).unwrap();
    assert_eq!(d.tensors[0].shape, [2, 3]);
    let e = decode_records(&s, br#"{"instances": [[1, 2]]}"#)
        .unwrap_err()
        .0;
    assert!(
        e.contains("instance 0 has 2 values") && e.contains("3 per row"),
        "{e}"
    );

    // Neither: refused with the reason.
    let e = decode_records(&schema(false), br#"{"instances": [{"age": 1}]}"#)
        .unwrap_err()
        .0;
    assert!(e.contains("every input is a column"), "{e}");
    let fixed = graph(vec![spec("x", "FP32", &[1, 3])], false);
    let s = Schema::new("m", 1, Signature::from_graph(fixed), vec![], 8, false).unwrap();
    let e = decode_records(&s, br#"{"instances": [[1, 2, 3]]}"#)
        .unwrap_err()
        .0;
    assert!(e.contains("no batch dimension"), "{e}");
}

#[test]
fn an_input_type_vane_cannot_carry_is_named_at_load() {
    let g = graph(vec![spec("pixels", "FP16", &[-1, 4])], true);
    let e = TensorInputs::from_graph(&g).unwrap_err();
    assert!(e.contains("\"pixels\"") && e.contains("FP16"), "{e}");
}

#[test]
fn outputs_keep_their_runtime_shape_and_type() {
    let s = schema(false);
    let outputs = vec![
        Output {
            data: TensorData::I64(vec![1, 0]),
            shape: Some(vec![2]),
        },
        Output {
            data: TensorData::F32(vec![0.25, 0.75, 0.5, 0.5]),
            shape: Some(vec![2, 2]),
        },
    ];
    let d = v2(&good()).unwrap();
    let (body, _) = encode_infer(&s, d.id.as_deref(), d.rows, &outputs, &d.outputs);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["outputs"][0],
        json!({"name": "label", "datatype": "INT64", "shape": [2], "data": [1, 0]})
    );
    assert_eq!(v["outputs"][1]["shape"], json!([2, 2]));
    let strings = vec![Output {
        data: TensorData::Str(vec!["a\"b".into()]),
        shape: Some(vec![1]),
    }];
    let s1 = Schema::new(
        "m",
        1,
        Signature::from_graph(graph(vec![spec("x", "FP32", &[-1, 1])], true)),
        vec![OutputMeta {
            name: "cls".into(),
            dtype: DType::Str,
            row_shape: vec![],
        }],
        8,
        false,
    )
    .unwrap();
    let (body, _) = encode_infer(
        &s1,
        None,
        1,
        &strings,
        &vane_protocol::OutputSelection::All { binary: false },
    );
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["outputs"][0]["datatype"], "BYTES");
    assert_eq!(v["outputs"][0]["data"], json!(["a\"b"]));
}

#[test]
fn zeros_are_defaults_of_each_type() {
    assert_eq!(
        TensorData::zeros(DType::F32, 3),
        TensorData::F32(vec![0.0; 3])
    );
    assert_eq!(
        TensorData::zeros(DType::U16, 2),
        TensorData::U16(vec![0; 2])
    );
    assert_eq!(
        TensorData::zeros(DType::Bool, 1),
        TensorData::Bool(vec![false])
    );
    assert_eq!(
        TensorData::zeros(DType::Str, 2),
        TensorData::Str(vec![String::new(), String::new()])
    );
    assert_eq!(TensorData::zeros(DType::I64, 0).len(), 0);
}
