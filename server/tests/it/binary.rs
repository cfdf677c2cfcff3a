//! The binary tensor extension: raw little-endian tensors after a JSON header whose length is
//! `Inference-Header-Content-Length`, mixed with JSON inputs and outputs.

use hyper::StatusCode;
use serde_json::{Value, json};
use vane_models::credit;

use crate::scoring::{example_registry, feature_request, tensor_request};
use crate::util::{RawResponse, Server, assert_close, floats};

const INFER: &str = "/v2/models/credit-risk/infer";

fn le_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_tensor(strings: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in strings {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out
}

/// POSTs `header` + `binary` with the extension header.
fn post_binary(server: &Server, header: &Value, binary: &[u8]) -> RawResponse {
    let json = serde_json::to_vec(header).unwrap();
    let len = json.len().to_string();
    let mut body = json;
    body.extend_from_slice(binary);
    server
        .raw(
            "POST",
            INFER,
            &[
                ("inference-header-content-length", len.as_str()),
                ("content-type", "application/octet-stream"),
            ],
            &body,
        )
        .unwrap()
}

/// Splits a binary response into its JSON header and binary tail.
fn split(resp: &RawResponse) -> (Value, Vec<u8>) {
    let (_, headers, body) = resp;
    let n: usize = headers
        .iter()
        .find(|(k, _)| k == "inference-header-content-length")
        .map(|(_, v)| v.parse().unwrap())
        .expect("Inference-Header-Content-Length in the response");
    (
        serde_json::from_slice(&body[..n]).unwrap(),
        body[n..].to_vec(),
    )
}

#[test]
fn binary_inputs_and_outputs_match_json() {
    let reg = example_registry();
    let server = Server::start(reg.path(), &["--backend", "tract"]);
    let rows = credit::sample_rows(5, 21);
    let (status, _, reference) = server.json("POST", INFER, &tensor_request(&rows, 5));
    assert_eq!(status, StatusCode::OK);
    let expected = floats(&reference["outputs"][0]["data"]);

    // Binary tensor in, binary tensor out.
    let header = json!({
        "id": "bin-1",
        "parameters": {"binary_data_output": true},
        "inputs": [{"name": "input", "shape": [5, 20], "datatype": "FP32", "parameters": {"binary_data_size": 400}}]
    });
    let resp = post_binary(&server, &header, &le_f32(&rows));
    assert_eq!(
        resp.0,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&resp.2)
    );
    assert!(
        resp.1
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/octet-stream")
    );
    let (json, tail) = split(&resp);
    assert_eq!(json["id"], "bin-1");
    let out = &json["outputs"][0];
    assert_eq!(
        (
            out["shape"].clone(),
            out["parameters"]["binary_data_size"].clone()
        ),
        (json!([5, 1]), json!(20))
    );
    assert!(out.get("data").is_none());
    let got: Vec<f32> = tail
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_close(&got, &expected, 0.0, "binary output");

    // Mixed: per-feature inputs, some JSON, some binary (FP64 numerics, BYTES categoricals);
    // JSON output for the one output requested without binary_data.
    let records = credit::sample_records(5, 21);
    let mut req = feature_request(&records);
    let mut tail = Vec::new();
    for input in req["inputs"].as_array_mut().unwrap() {
        let name = input["name"].as_str().unwrap().to_string();
        let values = input["data"].as_array().unwrap().clone();
        let bytes = match name.as_str() {
            "annual_income" | "fico_score" => values
                .iter()
                .flat_map(|v| v.as_f64().unwrap().to_le_bytes())
                .collect::<Vec<u8>>(),
            "purpose" | "term" => bytes_tensor(
                &values
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect::<Vec<_>>(),
            ),
            _ => continue,
        };
        input.as_object_mut().unwrap().remove("data");
        input["parameters"] = json!({"binary_data_size": bytes.len()});
        tail.extend(bytes);
    }
    req["outputs"] = json!([{"name": "probability", "parameters": {"binary_data": false}}]);
    let resp = post_binary(&server, &req, &tail);
    assert_eq!(
        resp.0,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&resp.2)
    );
    let json: Value = serde_json::from_slice(&resp.2).unwrap();
    assert!(
        !resp
            .1
            .iter()
            .any(|(k, _)| k == "inference-header-content-length")
    );
    assert_close(
        &floats(&json["outputs"][0]["data"]),
        &expected,
        1e-6,
        "mixed binary/JSON inputs",
    );

    // JSON request asking for one binary output.
    let mut req = tensor_request(&rows, 5);
    req["outputs"] = json!([{"name": "probability", "parameters": {"binary_data": true}}]);
    let (status, headers, body) = server
        .raw("POST", INFER, &[], &serde_json::to_vec(&req).unwrap())
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let (json, tail) = split(&(status, headers, body));
    assert_eq!(json["outputs"][0]["parameters"]["binary_data_size"], 20);
    assert_eq!(tail.len(), 20);
}

#[test]
fn malformed_binary_requests_are_named() {
    let reg = example_registry();
    let server = Server::start(reg.path(), &["--backend", "tract"]);
    let rows = le_f32(&credit::sample_rows(1, 1));
    let tensor = |size: usize| json!({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "parameters": {"binary_data_size": size}}]});
    for (name, header, tail, needle) in [
        (
            "size larger than the tail",
            tensor(81),
            rows.clone(),
            "exceeds",
        ),
        (
            "unclaimed bytes",
            tensor(80),
            [rows.clone(), vec![0; 4]].concat(),
            "not claimed",
        ),
        (
            "size not a multiple",
            tensor(78),
            rows[..78].to_vec(),
            "whole number",
        ),
        (
            "truncated BYTES",
            json!({"inputs": [{"name": "purpose", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]}),
            vec![9, 0, 0, 0, b'a', b'b'],
            "claims 9 bytes",
        ),
        (
            "data and binary",
            json!({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": [1], "parameters": {"binary_data_size": 80}}]}),
            rows.clone(),
            "both data and binary_data_size",
        ),
    ] {
        let (status, _, body) = post_binary(&server, &header, &tail);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{name}: {body}"
        );
    }
    // A header length past the body.
    let (status, _, body) = server
        .raw(
            "POST",
            INFER,
            &[("inference-header-content-length", "99999")],
            b"{}",
        )
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("Inference-Header-Content-Length"));
}
