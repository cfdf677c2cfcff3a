//! Requests to a tensor-signature model (typed inputs by name: numbers, int64, strings, a
//! 2-D FP64 input): the first byte picks V2 JSON, V2 with binary tensors (two more bytes give
//! the JSON length) or v1 records.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vane_protocol::Schema;
use vane_protocol::tensor::{DType, Output, OutputMeta, TensorData};
use vane_registry::{GraphSignature, Signature, TensorSpec};

fn spec(name: &str, datatype: &str, shape: &[i64]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
    }
}

fn schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| {
        let graph = GraphSignature {
            inputs: vec![
                spec("age", "FP32", &[-1, 1]),
                spec("term", "INT64", &[-1, 1]),
                spec("purpose", "BYTES", &[-1]),
                spec("x", "FP64", &[-1, 3]),
            ],
            outputs: vec![spec("label", "INT64", &[-1]), spec("p", "FP32", &[-1, 2])],
            batch: true,
        };
        let outputs = vec![
            OutputMeta { name: "label".into(), dtype: DType::I64, row_shape: vec![] },
            OutputMeta { name: "p".into(), dtype: DType::F32, row_shape: vec![2] },
        ];
        Schema::new("m", 1, Signature::from_graph(graph), outputs, 64, true).expect("schema")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let s = schema();
    let decoded = match pick % 3 {
        0 => vane_protocol::decode_infer(s, rest, None),
        1 => {
            let Some((len, body)) = rest.split_first_chunk::<2>() else {
                return;
            };
            let n = usize::from(u16::from_le_bytes(*len));
            vane_protocol::decode_infer(s, body, Some(n))
        }
        _ => vane_protocol::decode_records(s, rest),
    };
    let Ok(d) = decoded else { return };
    let ts = s.tensors.as_ref().expect("tensor schema");
    assert_eq!(d.tensors.len(), ts.inputs.len());
    assert!(d.rows >= 1 && d.rows <= s.max_request_rows);
    for (t, spec) in d.tensors.iter().zip(&ts.inputs) {
        assert_eq!(t.data.dtype(), spec.dtype);
        assert_eq!(t.shape[0], d.rows);
        assert_eq!(t.data.len(), t.shape.iter().product::<usize>());
    }
    let outputs = vec![
        Output { data: TensorData::I64(vec![1; d.rows]), shape: Some(vec![d.rows]) },
        Output { data: TensorData::F32(vec![0.5; d.rows * 2]), shape: Some(vec![d.rows, 2]) },
    ];
    let (body, json_len) =
        vane_protocol::encode_infer(s, d.id.as_deref(), d.rows, &outputs, &d.outputs);
    let json = &body[..json_len.unwrap_or(body.len())];
    assert!(serde_json::from_slice::<serde_json::Value>(json).is_ok());
    let v1 = vane_protocol::encode_predictions(s, d.rows, &outputs);
    assert!(serde_json::from_slice::<serde_json::Value>(&v1).is_ok());
});
