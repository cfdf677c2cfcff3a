//! The binary tensor extension: raw little-endian, row-major tensors after the JSON header.
//! `BYTES` elements are each a 4-byte little-endian length followed by the bytes.

use crate::DecodeError;
use crate::columns::{Val, bad, check_string};
use crate::tensor::TensorData;

/// Reads the raw tensor `bytes` of input `name`, declared as `datatype`, value by value.
/// A NaN float is a missing value, as JSON `null` is.
pub(crate) fn read(
    name: &str,
    datatype: &str,
    bytes: &[u8],
    mut put: impl FnMut(Val<'_>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    macro_rules! numbers {
        ($t:ty) => {{
            const W: usize = std::mem::size_of::<$t>();
            if !bytes.len().is_multiple_of(W) {
                return Err(bad(format!(
                    "input {name:?}: {} bytes of {datatype} is not a whole number of {W}-byte elements",
                    bytes.len()
                )));
            }
            for c in bytes.chunks_exact(W) {
                let mut a = [0u8; W];
                a.copy_from_slice(c);
                put(Val::Num(<$t>::from_le_bytes(a) as f64))?;
            }
        }};
    }
    match datatype {
        "FP32" => numbers!(f32),
        "FP64" => numbers!(f64),
        "INT8" => numbers!(i8),
        "INT16" => numbers!(i16),
        "INT32" => numbers!(i32),
        "INT64" => numbers!(i64),
        "UINT8" => numbers!(u8),
        "UINT16" => numbers!(u16),
        "UINT32" => numbers!(u32),
        "UINT64" => numbers!(u64),
        "BOOL" => {
            for b in bytes {
                put(Val::Bool(*b != 0))?;
            }
        }
        "BYTES" => strings(name, bytes, |s| put(Val::Str(s)))?,
        other => {
            return Err(bad(format!(
                "input {name:?}: datatype {other:?} is not supported in binary form"
            )));
        }
    }
    Ok(())
}

/// The elements of a raw `BYTES` tensor (each a 4-byte little-endian length, then UTF-8),
/// each checked against [`crate::MAX_STRING_BYTES`].
pub(crate) fn strings(
    name: &str,
    bytes: &[u8],
    mut each: impl FnMut(&str) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(bad(format!(
                "input {name:?}: truncated BYTES length prefix"
            )));
        };
        let n = u32::from_le_bytes(*len) as usize;
        if n > tail.len() {
            return Err(bad(format!(
                "input {name:?}: BYTES element {i} claims {n} bytes, {} left",
                tail.len()
            )));
        }
        let s = std::str::from_utf8(&tail[..n])
            .map_err(|_| bad(format!("input {name:?}: BYTES element {i} is not UTF-8")))?;
        check_string(s)?;
        each(s)?;
        rest = &tail[n..];
        i += 1;
    }
    Ok(())
}

/// Bytes [`write`] appends for `data`.
pub fn size(data: &TensorData) -> usize {
    match data {
        TensorData::Str(v) => v.iter().map(|s| 4 + s.len()).sum(),
        TensorData::Bool(v) => v.len(),
        other => crate::each_tensor!(other, v => std::mem::size_of_val(v.as_slice())),
    }
}

/// Appends `data` as a raw little-endian tensor (`BYTES`: length-prefixed elements).
pub fn write(buf: &mut Vec<u8>, data: &TensorData) {
    macro_rules! le {
        ($v:expr) => {
            $v.iter()
                .for_each(|x| buf.extend_from_slice(&x.to_le_bytes()))
        };
    }
    match data {
        TensorData::F32(v) => le!(v),
        TensorData::F64(v) => le!(v),
        TensorData::I8(v) => le!(v),
        TensorData::I16(v) => le!(v),
        TensorData::I32(v) => le!(v),
        TensorData::I64(v) => le!(v),
        TensorData::U8(v) => buf.extend_from_slice(v),
        TensorData::U16(v) => le!(v),
        TensorData::U32(v) => le!(v),
        TensorData::U64(v) => le!(v),
        TensorData::Bool(v) => v.iter().for_each(|x| buf.push(u8::from(*x))),
        TensorData::Str(v) => v.iter().for_each(|s| {
            buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
        }),
    }
}
