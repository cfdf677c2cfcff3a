//! Response bodies: OIP v2 JSON (with binary outputs) and v1 predictions, written straight
//! into one buffer.

use crate::OutputSelection;
use crate::binary;
use crate::schema::Schema;
use crate::tensor::{Output, TensorData};

fn write_json_str(buf: &mut Vec<u8>, s: &str) {
    // Serializing a &str cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

/// An integer as JSON, without the formatting machinery of `write!` (a response has a few).
fn write_uint(buf: &mut Vec<u8>, n: usize) {
    let _ = serde_json::to_writer(&mut *buf, &n);
}

/// Comma-separated dimensions (inside a shape's brackets).
fn write_dims(buf: &mut Vec<u8>, dims: impl Iterator<Item = usize>) {
    for (i, d) in dims.enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_uint(buf, d);
    }
}

fn write_data(buf: &mut Vec<u8>, data: &TensorData) {
    let _ = crate::each_tensor!(data, v => serde_json::to_writer(&mut *buf, v));
}

/// OIP response body; with binary outputs, also the length of its JSON part (for the
/// `Inference-Header-Content-Length` header), the raw tensors following it in output order.
/// `id` is the request's id as JSON text (see [`crate::Decoded::id`]).
pub fn encode_infer(
    schema: &Schema,
    id: Option<&str>,
    rows: usize,
    outputs: &[Output],
    selection: &OutputSelection,
) -> (Vec<u8>, Option<usize>) {
    let selected = selection.iter(schema.outputs.len());
    // Enough for the envelope, each output's header and ~20 bytes per value: one allocation.
    let values: usize = schema.outputs.iter().map(|o| o.row_len()).sum();
    let names: usize = schema.outputs.iter().map(|o| o.name.len() + 64).sum();
    let mut buf = Vec::with_capacity(
        64 + schema.name.len() + id.map_or(0, str::len) + names + rows * values * 20,
    );
    buf.extend_from_slice(b"{\"model_name\":");
    write_json_str(&mut buf, &schema.name);
    buf.extend_from_slice(b",\"model_version\":");
    write_json_str(&mut buf, &schema.version_label);
    if let Some(id) = id {
        buf.extend_from_slice(b",\"id\":");
        buf.extend_from_slice(id.as_bytes());
    }
    buf.extend_from_slice(b",\"outputs\":[");
    let mut any_binary = false;
    for (n, (ix, binary)) in selected.clone().enumerate() {
        let meta = &schema.outputs[ix];
        if n > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"name\":");
        write_json_str(&mut buf, &meta.name);
        buf.extend_from_slice(b",\"datatype\":\"");
        buf.extend_from_slice(outputs[ix].data.dtype().oip_name().as_bytes());
        buf.extend_from_slice(b"\",\"shape\":[");
        match &outputs[ix].shape {
            // A tensor model's output, as the runtime shaped it.
            Some(shape) => write_dims(&mut buf, shape.iter().copied()),
            None => write_dims(
                &mut buf,
                std::iter::once(rows).chain(meta.row_shape.iter().copied()),
            ),
        }
        if binary {
            any_binary = true;
            buf.extend_from_slice(b"],\"parameters\":{\"binary_data_size\":");
            write_uint(&mut buf, binary::size(&outputs[ix].data));
            buf.extend_from_slice(b"}}");
        } else {
            buf.extend_from_slice(b"],\"data\":");
            write_data(&mut buf, &outputs[ix].data);
            buf.push(b'}');
        }
    }
    buf.extend_from_slice(b"]}");
    if !any_binary {
        return (buf, None);
    }
    let json_len = buf.len();
    for (ix, binary) in selected {
        if binary {
            binary::write(&mut buf, &outputs[ix].data);
        }
    }
    (buf, Some(json_len))
}

/// v1 response: `{"predictions": [...]}`; one value per row when the (first) output has one
/// element per row, a list per row otherwise; several outputs give one object per row.
pub fn encode_predictions(schema: &Schema, rows: usize, outputs: &[Output]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(24 + rows * 16 * outputs.len());
    buf.extend_from_slice(b"{\"predictions\":[");
    for r in 0..rows {
        if r > 0 {
            buf.push(b',');
        }
        if schema.outputs.len() == 1 {
            write_row(&mut buf, schema, outputs, 0, r);
        } else {
            buf.push(b'{');
            for (ix, meta) in schema.outputs.iter().enumerate() {
                if ix > 0 {
                    buf.push(b',');
                }
                write_json_str(&mut buf, &meta.name);
                buf.push(b':');
                write_row(&mut buf, schema, outputs, ix, r);
            }
            buf.push(b'}');
        }
    }
    buf.extend_from_slice(b"]}");
    buf
}

/// Row `r` of output `ix`: a scalar when the output has one element per row, else a list.
fn write_row(buf: &mut Vec<u8>, schema: &Schema, outputs: &[Output], ix: usize, r: usize) {
    let out = &outputs[ix];
    let per = match &out.shape {
        Some(shape) => shape.iter().skip(1).product(),
        None => schema.outputs[ix].row_len(),
    };
    let range = r * per..(r + 1) * per;
    // An output without a row per request row (a runtime's surprise) reads as null.
    let _ = crate::each_tensor!(&out.data, v => match v.get(range) {
        Some([x]) => serde_json::to_writer(&mut *buf, x),
        Some(row) => serde_json::to_writer(&mut *buf, row),
        None => serde_json::to_writer(&mut *buf, &()),
    });
}
