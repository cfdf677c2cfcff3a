//! A table of malformed requests: each gets the right 4xx and a message naming the problem,
//! and the server keeps serving.

use hyper::StatusCode;
use serde_json::{Value, json};
use vane_models::credit;

use crate::scoring::{example_registry, feature_request, tensor_request};
use crate::util::Server;

const INFER: &str = "/v2/models/credit-risk/infer";

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: StatusCode,
    /// Fragments the error message must contain.
    mentions: Vec<&'static str>,
}

fn case(name: &'static str, body: Value, status: StatusCode, mentions: &[&'static str]) -> Case {
    Case {
        name,
        method: "POST",
        path: INFER.into(),
        headers: vec![],
        body: serde_json::to_vec(&body).unwrap(),
        status,
        mentions: mentions.to_vec(),
    }
}

fn raw(
    name: &'static str,
    path: &str,
    body: &[u8],
    status: StatusCode,
    mentions: &[&'static str],
) -> Case {
    Case {
        name,
        method: "POST",
        path: path.into(),
        headers: vec![],
        body: body.to_vec(),
        status,
        mentions: mentions.to_vec(),
    }
}

/// A valid per-feature request with `edit` applied to its inputs.
fn features_with(edit: impl FnOnce(&mut Vec<Value>)) -> Value {
    let mut req = feature_request(&credit::sample_records(2, 3));
    let inputs = req["inputs"].as_array_mut().unwrap();
    edit(inputs);
    req
}

fn tensor_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut req = tensor_request(&credit::sample_rows(2, 3), 2);
    edit(&mut req["inputs"][0]);
    req
}

fn input_named<'a>(inputs: &'a mut [Value], name: &str) -> &'a mut Value {
    inputs.iter_mut().find(|i| i["name"] == name).unwrap()
}

#[test]
fn malformed_requests_get_named_4xx_errors_and_the_server_keeps_serving() {
    let reg = example_registry();
    let server = Server::start(
        reg.path(),
        &[
            "--backend",
            "tract",
            "--max-body-bytes",
            "98304",
            "--max-request-rows",
            "100",
        ],
    );
    let bad = StatusCode::BAD_REQUEST;
    let purpose = credit::signature().position("purpose").unwrap();
    let cases = vec![
        raw(
            "invalid JSON",
            INFER,
            b"{\"inputs\": [",
            bad,
            &["invalid request body"],
        ),
        raw(
            "not an object",
            INFER,
            b"[1, 2, 3]",
            bad,
            &["invalid request body"],
        ),
        raw("empty body", INFER, b"", bad, &["invalid request body"]),
        case("missing inputs", json!({"id": "x"}), bad, &["inputs"]),
        case(
            "empty inputs",
            json!({"inputs": []}),
            bad,
            &["inputs", "empty"],
        ),
        case(
            "input without data",
            json!({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32"}]}),
            bad,
            &["data"],
        ),
        case(
            "unknown datatype",
            tensor_with(|i| i["datatype"] = json!("FLOAT")),
            bad,
            &["FLOAT"],
        ),
        case(
            "strings in the tensor",
            tensor_with(|i| {
                i["datatype"] = json!("BYTES");
                i["data"] = json!(vec!["a"; 40]);
            }),
            bad,
            &["input", "BYTES"],
        ),
        case(
            "wrong tensor width",
            tensor_with(|i| i["shape"] = json!([2, 19])),
            bad,
            &["input", "[2, 19]", "[N, 20]"],
        ),
        case(
            "shape/data mismatch",
            tensor_with(|i| i["shape"] = json!([3, 20])),
            bad,
            &["input", "needs 60 values", "has 40"],
        ),
        case(
            "mixed element types",
            tensor_with(|i| i["data"][3] = json!("7")),
            bad,
            &["input", "element [0, 3]", "string"],
        ),
        case(
            "null where missing values are refused",
            tensor_with(|i| i["data"][5] = Value::Null),
            bad,
            &["input", "element [0, 5]", "null"],
        ),
        case(
            "number overflowing FP32",
            tensor_with(|i| i["data"][0] = json!(1e300)),
            bad,
            &["input", "element [0, 0]", "annual_income", "FP32"],
        ),
        case(
            "fraction in an INT64 tensor",
            tensor_with(|i| {
                i["datatype"] = json!("INT64");
                i["data"][1] = json!(1.5);
            }),
            bad,
            &["input", "INT64", "not an integer"],
        ),
        case(
            "categorical code out of range",
            tensor_with(move |i| i["data"][purpose] = json!(99)),
            bad,
            &["purpose", "99", "out of range"],
        ),
        case(
            "negative dimension",
            tensor_with(|i| i["shape"] = json!([-2, 20])),
            bad,
            &["negative"],
        ),
        case(
            "empty batch",
            tensor_with(|i| {
                i["shape"] = json!([0, 20]);
                i["data"] = json!([]);
            }),
            bad,
            &["empty batch"],
        ),
        case(
            "huge batch",
            tensor_request(&credit::sample_rows(101, 1)[..], 101),
            bad,
            &["101 rows", "max_request_rows"],
        ),
        case(
            "more values than max_request_rows allows, refused while parsing",
            // Zeros are valid in every column: only the count is wrong.
            tensor_with(|i| {
                i["data"] = json!(vec![0.0f32; 5000]);
            }),
            bad,
            &["max_request_rows"],
        ),
        case(
            "a category name over the string limit",
            features_with(|ins| {
                input_named(ins, "term")["data"] = json!(["x".repeat(70_000), "60 months"]);
            }),
            bad,
            &["70000 bytes", "65536"],
        ),
        case(
            "unknown feature",
            features_with(|ins| {
                ins.push(json!({"name": "favorite_color", "shape": [2], "datatype": "BYTES", "data": ["red", "blue"]}))
            }),
            bad,
            &["favorite_color"],
        ),
        case(
            "missing feature",
            features_with(|ins| ins.retain(|i| i["name"] != "fico_score")),
            bad,
            &["missing", "fico_score"],
        ),
        case(
            "duplicate feature",
            features_with(|ins| {
                let dup = ins[0].clone();
                ins.push(dup);
            }),
            bad,
            &["annual_income", "twice"],
        ),
        case(
            "ragged columns",
            features_with(|ins| {
                let i = input_named(ins, "loan_amount");
                i["shape"] = json!([3]);
                i["data"] = json!([1, 2, 3]);
            }),
            bad,
            &["loan_amount", "3 rows"],
        ),
        case(
            "unknown category",
            features_with(|ins| input_named(ins, "purpose")["data"][1] = json!("boat")),
            bad,
            &["purpose", "row 1", "boat"],
        ),
        case(
            "categorical sent as numbers",
            features_with(|ins| {
                let i = input_named(ins, "purpose");
                i["datatype"] = json!("INT64");
                i["data"] = json!([0, 1]);
            }),
            bad,
            &["purpose", "BYTES"],
        ),
        case(
            "numeric sent as strings",
            features_with(|ins| {
                let i = input_named(ins, "fico_score");
                i["datatype"] = json!("BYTES");
                i["data"] = json!(["700", "650"]);
            }),
            bad,
            &["fico_score", "numeric"],
        ),
        case(
            "feature with a 2-D shape",
            features_with(|ins| input_named(ins, "fico_score")["shape"] = json!([1, 2])),
            bad,
            &["fico_score", "[N]"],
        ),
        case(
            "unknown requested output",
            {
                let mut r = tensor_request(&credit::sample_rows(1, 1), 1);
                r["outputs"] = json!([{"name": "logits"}]);
                r
            },
            bad,
            &["logits", "probability"],
        ),
        case(
            "bad timeout parameter",
            {
                let mut r = tensor_request(&credit::sample_rows(1, 1), 1);
                r["parameters"] = json!({"timeout": "soon"});
                r
            },
            bad,
            &["parameters.timeout"],
        ),
        case(
            "id of the wrong type",
            {
                let mut r = tensor_request(&credit::sample_rows(1, 1), 1);
                r["id"] = json!({"a": 1});
                r
            },
            bad,
            &["id"],
        ),
        case(
            "object inside data",
            tensor_with(|i| i["data"][0] = json!({"x": 1})),
            bad,
            &["objects"],
        ),
        case(
            "binary_data_output not a boolean",
            {
                let mut r = tensor_request(&credit::sample_rows(1, 1), 1);
                r["parameters"] = json!({"binary_data_output": "yes"});
                r
            },
            bad,
            &["binary_data_output"],
        ),
        case(
            "binary input without the header",
            tensor_with(|i| {
                i.as_object_mut().unwrap().remove("data");
                i["parameters"] = json!({"binary_data_size": 160});
            }),
            bad,
            &["input", "Inference-Header-Content-Length"],
        ),
        Case {
            name: "bad timeout header",
            method: "POST",
            path: INFER.into(),
            headers: vec![("x-vane-timeout-ms", "-5")],
            body: serde_json::to_vec(&tensor_request(&credit::sample_rows(1, 1), 1)).unwrap(),
            status: bad,
            mentions: vec!["x-vane-timeout-ms"],
        },
        raw(
            "v2 body on v1 route",
            "/v1/models/credit-risk:predict",
            &serde_json::to_vec(&tensor_request(&credit::sample_rows(1, 1), 1)).unwrap(),
            bad,
            &["instances"],
        ),
        raw(
            "v1 missing feature",
            "/v1/models/credit-risk:predict",
            br#"{"instances": [{"annual_income": 50000}]}"#,
            bad,
            &["instances[0]", "missing feature"],
        ),
        raw(
            "v1 unknown feature",
            "/v1/models/credit-risk:predict",
            br#"{"instances": [{"shoe_size": 42}]}"#,
            bad,
            &["instances[0]", "shoe_size"],
        ),
        raw(
            "v1 short row",
            "/v1/models/credit-risk:predict",
            br#"{"instances": [[1, 2, 3]]}"#,
            bad,
            &["instances[0]", "3 values", "20"],
        ),
        raw(
            "oversized body",
            INFER,
            &vec![b' '; 100_000],
            StatusCode::PAYLOAD_TOO_LARGE,
            &["98304"],
        ),
        Case {
            name: "unsupported content coding",
            method: "POST",
            path: INFER.into(),
            headers: vec![("content-encoding", "br")],
            body: b"{}".to_vec(),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            mentions: vec!["Content-Encoding", "br"],
        },
        Case {
            name: "corrupt gzip body",
            method: "POST",
            path: INFER.into(),
            headers: vec![("content-encoding", "gzip")],
            body: b"{}".to_vec(),
            status: bad,
            mentions: vec!["gzip"],
        },
        Case {
            name: "gzip body past the limit once decompressed",
            method: "POST",
            path: INFER.into(),
            headers: vec![("content-encoding", "gzip")],
            body: gzip(&vec![b' '; 1 << 20]),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            mentions: vec!["98304", "decompressed"],
        },
        raw(
            "unknown model",
            "/v2/models/no-such-model/infer",
            b"{}",
            StatusCode::NOT_FOUND,
            &["no-such-model"],
        ),
        raw(
            "unknown version",
            "/v2/models/credit-risk/versions/7/infer",
            b"{}",
            StatusCode::NOT_FOUND,
            &["credit-risk", "7"],
        ),
        raw(
            "non-numeric version",
            "/v2/models/credit-risk/versions/latest/infer",
            b"{}",
            StatusCode::NOT_FOUND,
            &["latest"],
        ),
        raw(
            "unknown route",
            "/v2/modelz",
            b"{}",
            StatusCode::NOT_FOUND,
            &["/v2/modelz"],
        ),
        Case {
            name: "GET on infer",
            method: "GET",
            path: INFER.into(),
            headers: vec![],
            body: vec![],
            status: StatusCode::METHOD_NOT_ALLOWED,
            mentions: vec!["POST"],
        },
    ];
    assert!(cases.len() >= 25);
    for c in &cases {
        let (status, headers, body) = server
            .raw(c.method, &c.path, &c.headers, &c.body)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let body: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{}: non-JSON error body ({e}): {:?}",
                c.name,
                String::from_utf8_lossy(&body)
            )
        });
        assert_eq!(status, c.status, "{}: {body}", c.name);
        let msg = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no error field in {body}", c.name));
        for m in &c.mentions {
            assert!(
                msg.contains(m),
                "{}: error {msg:?} does not mention {m:?}",
                c.name
            );
        }
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "content-type" && v == "application/json"),
            "{}",
            c.name
        );
    }
    // A chunked body that outgrows the limit is refused while reading.
    let (status, _, _) = server
        .raw(
            "POST",
            INFER,
            &[("transfer-encoding", "chunked")],
            &vec![b' '; 100_000],
        )
        .unwrap();
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Still serving, and the failures were counted.
    let (status, _, ok) = server.json(
        "POST",
        INFER,
        &tensor_request(&credit::sample_rows(3, 9), 3),
    );
    assert_eq!(status, StatusCode::OK, "{ok}");
    let (_, _, metrics) = server.get("/metrics");
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains(
            r#"vane_requests_total{model="credit-risk",outcome="bad_request",version="1"}"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"vane_http_responses_total{status="413"}"#));
}
