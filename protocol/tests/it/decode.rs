//! Worked examples: what each codec accepts, what it returns, and what it refuses.

use std::time::Duration;

use serde_json::{Value, json};
use vane_protocol::tensor::{Output, TensorData};
use vane_protocol::{
    KeyColumn, MAX_STRING_BYTES, OutputSelection, Selected, decode_infer, decode_records,
    encode_infer, encode_predictions,
};

use crate::fixture::schema;

fn v2(allow_missing: bool, body: Value) -> Result<vane_protocol::Decoded, String> {
    decode_infer(
        &schema(allow_missing, 10),
        &serde_json::to_vec(&body).unwrap(),
        None,
    )
    .map_err(|e| e.0)
}

#[test]
fn tensor_requests_decode_with_codes_and_echo_the_id() {
    let d = v2(false, json!({"id": "r\"1", "inputs": [{"name": "input", "shape": [2, 4], "datatype": "INT64", "data": [[100, 1, 0, 3], [200, 0, 2, 0]]}]})).unwrap();
    assert_eq!(d.rows, 2);
    assert_eq!(d.input, vec![100.0, 1.0, 0.0, 3.0, 200.0, 0.0, 2.0, 0.0]);
    assert_eq!(d.id.as_deref(), Some(r#""r\"1""#), "raw JSON, escapes kept");
    let d = v2(false, json!({"id": 5, "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 1, 0, 0]}]})).unwrap();
    assert_eq!(
        d.id.as_deref(),
        Some("\"5\""),
        "a numeric id is echoed as a string"
    );
    let err = v2(false, json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 1, 3, 0]}]})).unwrap_err();
    assert!(
        err.contains("term") && err.contains("out of range"),
        "{err}"
    );
    let err = v2(false, json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "INT32", "data": [1.5, 1, 0, 0]}]})).unwrap_err();
    assert!(err.contains("not an integer"), "{err}");
    let err = v2(false, json!({"id": {"x": 1}, "inputs": []})).unwrap_err();
    assert!(err.contains("`id`"), "{err}");
}

#[test]
fn feature_requests_decode_in_signature_order_whatever_the_field_order() {
    // `data` before `name`/`datatype` in one input: kept, then replayed once both are known.
    let body = br#"{"parameters": {"timeout": 2500, "content_type": "pd", "headers": {"a": [1, {"b": null}]}},
        "inputs": [
          {"data": ["60", "a\"b"], "shape": [2], "name": "term", "datatype": "BYTES"},
          {"name": "owner", "shape": [2, 1], "datatype": "BOOL", "data": [[true], [false]]},
          {"name": "region", "datatype": "BYTES", "shape": [2], "data": ["w", "n"]},
          {"shape": [2], "name": "income", "data": [1.5, 2], "datatype": "FP64"}
        ]}"#;
    let d = decode_infer(&schema(false, 10), body, None).unwrap();
    assert_eq!(d.input, vec![1.5, 1.0, 1.0, 3.0, 2.0, 0.0, 2.0, 0.0]);
    assert_eq!(d.timeout, Some(Duration::from_micros(2500)));
    assert_eq!(d.outputs, OutputSelection::All { binary: false });
}

#[test]
fn entity_keyed_requests_leave_online_features_to_the_store() {
    let d = v2(
        false,
        json!({"inputs": [
            {"name": "owner", "shape": [2], "datatype": "INT64", "data": [1, 0]},
            {"name": "applicant_id", "shape": [2], "datatype": "INT64", "data": [7, 9]},
            {"name": "term", "shape": [2], "datatype": "BYTES", "data": ["36", "60"]}
        ]}),
    )
    .unwrap();
    let e = d.entities.unwrap();
    assert_eq!(e.keys, vec![KeyColumn::Int(vec![7, 9])]);
    assert_eq!(e.provided, vec![false, true, true, false]);
    assert!(e.provided(4, 1, 2) && !e.provided(4, 1, 3));
    // Feature 0 is not overwritten by the ids, whatever the input order.
    assert_eq!(d.input, vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    // Without the key, every feature is needed; the message says so.
    let err = v2(
        false,
        json!({"inputs": [
            {"name": "owner", "shape": [1], "datatype": "INT64", "data": [1]},
            {"name": "term", "shape": [1], "datatype": "BYTES", "data": ["36"]}
        ]}),
    )
    .unwrap_err();
    assert!(
        err.contains("income") && err.contains("applicant_id"),
        "{err}"
    );
    let err = v2(
        false,
        json!({"inputs": [
            {"name": "applicant_id", "shape": [1], "datatype": "INT64", "data": [1.5]},
            {"name": "owner", "shape": [1], "datatype": "INT64", "data": [1]},
            {"name": "term", "shape": [1], "datatype": "BYTES", "data": ["36"]}
        ]}),
    )
    .unwrap_err();
    assert!(err.contains("entity id"), "{err}");
}

/// STRING and composite join keys: every key is required, each in its type; v2 JSON, the
/// binary extension and v1 records agree.
#[test]
fn composite_and_string_join_keys() {
    let s = crate::fixture::composite_schema();
    let v2 =
        |body: Value| decode_infer(&s, &serde_json::to_vec(&body).unwrap(), None).map_err(|e| e.0);
    let d = v2(json!({"inputs": [
        {"name": "merchant", "shape": [2], "datatype": "BYTES", "data": ["acme", "ünï"]},
        {"name": "applicant_id", "shape": [2], "datatype": "INT64", "data": [7, 9]},
        {"name": "owner", "shape": [2], "datatype": "INT64", "data": [1, 0]},
        {"name": "term", "shape": [2], "datatype": "BYTES", "data": ["36", "60"]}
    ]}))
    .unwrap();
    let want = vec![
        KeyColumn::Int(vec![7, 9]),
        KeyColumn::Str(vec!["acme".into(), "ünï".into()]),
    ];
    assert_eq!(d.entities.as_ref().unwrap().keys, want);
    assert_eq!(d.entities.as_ref().unwrap().rows(), 2);
    // One key of two: an error naming the missing one.
    let err = v2(json!({"inputs": [
        {"name": "applicant_id", "shape": [1], "datatype": "INT64", "data": [7]},
        {"name": "owner", "shape": [1], "datatype": "INT64", "data": [1]},
        {"name": "term", "shape": [1], "datatype": "BYTES", "data": ["36"]}
    ]}))
    .unwrap_err();
    assert!(err.contains("missing join key \"merchant\""), "{err}");
    // Types: a STRING key takes BYTES, an INT64 key integers.
    let err = v2(json!({"inputs": [
        {"name": "applicant_id", "shape": [1], "datatype": "INT64", "data": [7]},
        {"name": "merchant", "shape": [1], "datatype": "INT64", "data": [3]},
        {"name": "owner", "shape": [1], "datatype": "INT64", "data": [1]},
        {"name": "term", "shape": [1], "datatype": "BYTES", "data": ["36"]}
    ]}))
    .unwrap_err();
    assert!(
        err.contains("\"merchant\" is a STRING; send datatype BYTES"),
        "{err}"
    );
    let err = v2(json!({"inputs": [
        {"name": "applicant_id", "shape": [1], "datatype": "BYTES", "data": ["7"]},
        {"name": "merchant", "shape": [1], "datatype": "BYTES", "data": ["acme"]},
        {"name": "owner", "shape": [1], "datatype": "INT64", "data": [1]},
        {"name": "term", "shape": [1], "datatype": "BYTES", "data": ["36"]}
    ]}))
    .unwrap_err();
    assert!(err.contains("this join key is INT64"), "{err}");
    // Without keys, the hint names both.
    let err = v2(json!({"inputs": [
        {"name": "owner", "shape": [1], "datatype": "INT64", "data": [1]},
        {"name": "term", "shape": [1], "datatype": "BYTES", "data": ["36"]}
    ]}))
    .unwrap_err();
    assert!(err.contains("\"applicant_id\", \"merchant\""), "{err}");

    // The binary extension: the STRING key as length-prefixed BYTES.
    let json_part = serde_json::to_vec(&json!({"inputs": [
        {"name": "applicant_id", "shape": [2], "datatype": "INT64", "data": [7, 9]},
        {"name": "merchant", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 17}},
        {"name": "owner", "shape": [2], "datatype": "INT64", "data": [1, 0]},
        {"name": "term", "shape": [2], "datatype": "BYTES", "data": ["36", "60"]}
    ]}))
    .unwrap();
    let mut body = json_part.clone();
    for m in ["acme", "ünï"] {
        body.extend_from_slice(&(m.len() as u32).to_le_bytes());
        body.extend_from_slice(m.as_bytes());
    }
    let d = decode_infer(&s, &body, Some(json_part.len()))
        .map_err(|e| e.0)
        .unwrap();
    assert_eq!(d.entities.unwrap().keys, want);

    // v1 records: exact INT64 keys (past 2^53 too), STRING keys as strings.
    let rec =
        |body: Value| decode_records(&s, &serde_json::to_vec(&body).unwrap()).map_err(|e| e.0);
    let d = rec(json!({"instances": [
        {"applicant_id": 9007199254740993i64, "merchant": "acme", "owner": 1, "term": "36"},
        {"merchant": "x", "applicant_id": 2, "owner": 0, "term": "60"}
    ]}))
    .unwrap();
    assert_eq!(
        d.entities.unwrap().keys,
        vec![
            KeyColumn::Int(vec![9_007_199_254_740_993, 2]),
            KeyColumn::Str(vec!["acme".into(), "x".into()])
        ]
    );
    let err = rec(json!({"instances": [
        {"applicant_id": 1, "owner": 1, "term": "36"}
    ]}))
    .unwrap_err();
    assert!(
        err.contains("instances[0]: missing join key \"merchant\""),
        "{err}"
    );
    let err = rec(json!({"instances": [
        {"applicant_id": 1, "merchant": 5, "owner": 1, "term": "36"}
    ]}))
    .unwrap_err();
    assert!(
        err.contains("instances[0].merchant") && err.contains("STRING"),
        "{err}"
    );
}

#[test]
fn missing_values_follow_the_model_policy() {
    let body = json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [null, 1, 0, 0]}]});
    let err = v2(false, body.clone()).unwrap_err();
    assert!(err.contains("null"), "{err}");
    assert!(v2(true, body).unwrap().input[0].is_nan());
    // A missing category: refused, unless the model allows missing values (then NaN).
    let body = json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 1, null, 0]}]});
    assert!(v2(false, body.clone()).is_err());
    assert!(v2(true, body).unwrap().input[2].is_nan());
    let body = br#"{"instances": [{"income": 1, "owner": true, "term": null, "region": "e"}]}"#;
    assert!(decode_records(&schema(false, 10), body).is_err());
    assert!(decode_records(&schema(true, 10), body).unwrap().input[2].is_nan());
}

#[test]
fn limits_apply_while_parsing() {
    // 11 rows of a 10-row model: refused by the value budget before the end of the data.
    let rows: Vec<Value> = (0..11).map(|_| json!([1, 1, 0, 0])).collect();
    let err = v2(
        false,
        json!({"inputs": [{"name": "input", "shape": [11, 4], "datatype": "FP32", "data": rows}]}),
    )
    .unwrap_err();
    assert!(err.contains("max_request_rows"), "{err}");
    let err = v2(false, json!({"inputs": [{"name": "input", "shape": [11, 4], "datatype": "FP32", "data": [1, 1, 0, 0]}]})).unwrap_err();
    assert!(err.contains("needs 44 values"), "{err}");
    let long = "x".repeat(MAX_STRING_BYTES + 1);
    let err = v2(
        false,
        json!({"inputs": [{"name": "term", "shape": [1], "datatype": "BYTES", "data": [long]}]}),
    )
    .unwrap_err();
    assert!(err.contains("bytes"), "{err}");
    let deep = (0..40).fold(json!(1), |acc, _| json!([acc]));
    let err = v2(
        false,
        json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": deep}]}),
    )
    .unwrap_err();
    assert!(err.contains("nested"), "{err}");
    let err = v2(false, json!({"inputs": [{"name": "input", "shape": [1, 1, 1, 1, 1, 1, 1, 1, 1], "datatype": "FP32", "data": [1]}]})).unwrap_err();
    assert!(err.contains("dimensions"), "{err}");
    let many: Vec<Value> = (0..11).map(|_| json!([1, 1, "36", "n"])).collect();
    let err = decode_records(
        &schema(false, 10),
        &serde_json::to_vec(&json!({"instances": many})).unwrap(),
    )
    .unwrap_err();
    assert!(err.0.contains("max_request_rows"), "{err}");
}

#[test]
fn binary_inputs_and_outputs() {
    let s = schema(false, 10);
    let json = br#"{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}],
                   "outputs": [{"name": "p\"q", "parameters": {"binary_data": true}}, {"name": "probability"}]}"#;
    let mut body = json.to_vec();
    for x in [2.5f32, 1.0, 1.0, 3.0] {
        body.extend_from_slice(&x.to_le_bytes());
    }
    let d = decode_infer(&s, &body, Some(json.len())).unwrap();
    assert_eq!(d.input, vec![2.5, 1.0, 1.0, 3.0]);
    assert_eq!(
        d.outputs,
        OutputSelection::Some(vec![
            Selected {
                index: 1,
                binary: true
            },
            Selected {
                index: 0,
                binary: false
            }
        ])
    );
    let err = decode_infer(&s, json, None).unwrap_err();
    assert!(err.0.contains("Inference-Header-Content-Length"), "{err}");
    let err = decode_infer(&s, &body[..body.len() - 1], Some(json.len())).unwrap_err();
    assert!(err.0.contains("binary_data_size 16"), "{err}");
    let outputs = vec![
        Output::rows(TensorData::F32(vec![0.25])),
        Output::rows(TensorData::F32(vec![1.0, 2.0])),
    ];
    let (resp, json_len) = encode_infer(&s, None, 1, &outputs, &d.outputs);
    let json_len = json_len.unwrap();
    let head: Value = serde_json::from_slice(&resp[..json_len]).unwrap();
    assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 8);
    assert_eq!(head["outputs"][1]["data"], json!([0.25]));
    assert_eq!(
        &resp[json_len..],
        [1f32.to_le_bytes(), 2f32.to_le_bytes()].concat()
    );
}

#[test]
fn records_decode_objects_and_arrays() {
    let s = schema(false, 10);
    let body = br#"{"instances": [{"income": 10, "owner": true, "term": "60", "region": "s"}, [20, 0, "36", 2], [30, 1, 1, "w"]], "signature_name": "x"}"#;
    let d = decode_records(&s, body).unwrap();
    assert_eq!(d.rows, 3);
    assert_eq!(
        d.input,
        vec![
            10.0, 1.0, 1.0, 1.0, 20.0, 0.0, 0.0, 2.0, 30.0, 1.0, 1.0, 3.0
        ]
    );
    let keyed = br#"{"instances": [{"applicant_id": 4, "owner": 1, "term": "36"}, {"applicant_id": 5, "owner": 0, "term": "60", "income": 3}]}"#;
    let e = decode_records(&s, keyed).unwrap().entities.unwrap();
    assert_eq!(e.keys, vec![KeyColumn::Int(vec![4, 5])]);
    assert!(!e.provided(4, 0, 0) && e.provided(4, 1, 0));
    for (body, needle) in [
        (&br#"{"instances": [[1, 1, "36"]]}"#[..], "3 values"),
        (br#"{"instances": [[1, 1, "36", "n", 5]]}"#, "more than 4"),
        (
            br#"{"instances": [{"income": 1, "owner": 1, "term": "36"}]}"#,
            "region",
        ),
        (
            br#"{"instances": [{"income": "x", "owner": 1, "term": "36", "region": "n"}]}"#,
            "expected a number",
        ),
        (
            br#"{"instances": [{"income": 1, "owner": 1, "term": "99", "region": "n"}]}"#,
            "unknown category",
        ),
        (br#"{"instances": [{"incme": 1}]}"#, "unknown feature"),
        (br#"{"instances": [7]}"#, "object or an array"),
        (br#"{"instances": []}"#, "0 rows"),
        (br#"{"rows": []}"#, "instances"),
    ] {
        let err = decode_records(&s, body).unwrap_err();
        assert!(err.0.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn responses_encode_as_oip_json() {
    let s = schema(false, 10);
    let outputs = vec![
        Output::rows(TensorData::F32(vec![0.25, 0.5])),
        Output::rows(TensorData::F32(vec![1.0, 2.0, 3.0, 4.0])),
    ];
    let sel = OutputSelection::Some(vec![Selected {
        index: 0,
        binary: false,
    }]);
    let (body, json_len) = encode_infer(&s, Some("\"id\\n1\""), 2, &outputs, &sel);
    assert_eq!(json_len, None);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        json!({"model_name": "m", "model_version": "3", "id": "id\n1",
               "outputs": [{"name": "probability", "datatype": "FP32", "shape": [2, 1], "data": [0.25, 0.5]}]})
    );
    let v1: Value = serde_json::from_slice(&encode_predictions(&s, 2, &outputs)).unwrap();
    assert_eq!(
        v1,
        json!({"predictions": [{"probability": 0.25, "p\"q": [1.0, 2.0]}, {"probability": 0.5, "p\"q": [3.0, 4.0]}]})
    );
}
