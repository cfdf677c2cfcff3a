//! What every protocol target checks on a decoded request, and the schemas it decodes with
//! (the protocol tests' fixture, shared by path).

#[path = "../../protocol/tests/it/fixture.rs"]
#[allow(dead_code)]
mod fixture;

use std::sync::OnceLock;

use vane_protocol::tensor::{Output, TensorData};
use vane_protocol::{Decoded, Schema, encode_infer, encode_predictions};

/// The fixture schema, strict (no missing values) and lenient, and its composite-key variant.
pub fn schemas() -> &'static [Schema; 3] {
    static S: OnceLock<[Schema; 3]> = OnceLock::new();
    S.get_or_init(|| {
        [
            fixture::schema(false, 64),
            fixture::schema(true, 64),
            fixture::composite_schema(),
        ]
    })
}

/// A decoded request is internally consistent, and its response encodes to valid JSON.
pub fn check(s: &Schema, d: &Decoded) {
    let width = s.width();
    assert!(d.rows >= 1 && d.rows <= s.max_request_rows);
    assert_eq!(d.input.len(), d.rows * width);
    if let Some(e) = &d.entities {
        assert_eq!(e.rows(), d.rows);
        assert!(e.provided.len() == width || e.provided.len() == d.rows * width);
    }
    let outputs: Vec<Output> = s
        .outputs
        .iter()
        .map(|o| Output::rows(TensorData::F32(vec![0.5; d.rows * o.row_len()])))
        .collect();
    let (body, json_len) = encode_infer(s, d.id.as_deref(), d.rows, &outputs, &d.outputs);
    let json = &body[..json_len.unwrap_or(body.len())];
    serde_json_check(json);
    serde_json_check(&encode_predictions(s, d.rows, &outputs));
}

fn serde_json_check(json: &[u8]) {
    // The encoders write JSON by hand (and echo `id` raw): whatever the request, the response
    // must parse.
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(json) {
        panic!("response is not JSON ({e}): {}", String::from_utf8_lossy(json));
    }
}
