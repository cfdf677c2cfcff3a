//! The binary formats both online stores share.
//!
//! **Row** (value of one `(view, entity)`), format version 1:
//!
//! ```text
//! byte 0      format version (1)
//! bytes 1..9  event_ts_us as big-endian u64 with the sign bit flipped: byte-wise order of
//!             these 8 bytes is the order of the timestamps (the Redis script compares them)
//! varint      number of values n
//! n values    tag byte, then
//!               0 null
//!               1 f64, 8 bytes little-endian
//!               2 integer-valued f64 (|x| ≤ 2^53, not -0), zigzag varint
//!               3 string: varint byte length, UTF-8 bytes
//! ```
//!
//! Varints are unsigned LEB128. Later format versions keep bytes 0..9 as they are, so a writer
//! can always compare timestamps with rows it does not otherwise understand.
//!
//! **Schema** (field layout of one view): JSON `{"format": 1, "fields": [{"name", "kind"}]}`.

use crate::{FeatureRow, StoreError, StoredField, Value};

/// Current row format version (byte 0 of every row).
pub const ROW_FORMAT: u8 = 1;
/// Bytes of the header every row format shares: version + ordered timestamp.
pub const ROW_HEADER_LEN: usize = 9;

const TAG_NULL: u8 = 0;
const TAG_F64: u8 = 1;
const TAG_INT: u8 = 2;
const TAG_STR: u8 = 3;
/// Largest magnitude stored as an integer: every integer up to it is an exact f64.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// The 8 timestamp bytes of a row header: big-endian with the sign bit flipped.
pub fn ordered_ts(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

fn ts_from_ordered(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends the encoding of `row` to `out`.
pub fn encode_row(row: &FeatureRow, out: &mut Vec<u8>) {
    out.push(ROW_FORMAT);
    out.extend_from_slice(&ordered_ts(row.event_ts_us));
    put_varint(out, row.values.len() as u64);
    for v in &row.values {
        match v {
            Value::Null => out.push(TAG_NULL),
            Value::Num(x) => {
                let is_int = x.fract() == 0.0
                    && x.abs() <= MAX_EXACT_INT
                    && !(*x == 0.0 && x.is_sign_negative());
                if is_int {
                    out.push(TAG_INT);
                    let i = *x as i64;
                    put_varint(out, ((i << 1) ^ (i >> 63)) as u64);
                } else {
                    out.push(TAG_F64);
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
            Value::Str(s) => {
                out.push(TAG_STR);
                put_varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
}

/// The encoding of `row` as a new buffer.
pub fn row_to_bytes(row: &FeatureRow) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 9 * row.values.len());
    encode_row(row, &mut out);
    out
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("stored row: {what}"))
}

/// The event timestamp of an encoded row (any format version), without decoding the values.
pub fn row_event_ts(bytes: &[u8]) -> Result<i64, StoreError> {
    let header: [u8; 8] = bytes
        .get(1..ROW_HEADER_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("shorter than its header"))?;
    Ok(ts_from_ordered(header))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, StoreError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| corrupt("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| corrupt("truncated"))?;
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| corrupt("truncated"))?;
        self.pos = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, StoreError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("varint longer than 10 bytes"))
    }
}

/// Decodes a row written by [`encode_row`].
pub fn decode_row(bytes: &[u8]) -> Result<FeatureRow, StoreError> {
    match bytes.first() {
        Some(&ROW_FORMAT) => {}
        Some(v) => return Err(corrupt(&format!("unknown format version {v}"))),
        None => return Err(corrupt("empty")),
    }
    let event_ts_us = row_event_ts(bytes)?;
    let mut r = Reader {
        bytes,
        pos: ROW_HEADER_LEN,
    };
    let n = r.varint()?;
    // Every value takes at least one byte: bound the allocation by the input.
    if n > (bytes.len() - r.pos) as u64 {
        return Err(corrupt("value count exceeds its length"));
    }
    let mut values = Vec::with_capacity(n as usize);
    for _ in 0..n {
        values.push(match r.byte()? {
            TAG_NULL => Value::Null,
            TAG_F64 => {
                let b: [u8; 8] = r.take(8)?.try_into().expect("8 bytes");
                Value::Num(f64::from_le_bytes(b))
            }
            TAG_INT => {
                let z = r.varint()?;
                Value::Num((((z >> 1) as i64) ^ -((z & 1) as i64)) as f64)
            }
            TAG_STR => {
                let len = usize::try_from(r.varint()?).map_err(|_| corrupt("string too long"))?;
                let s = std::str::from_utf8(r.take(len)?)
                    .map_err(|_| corrupt("string is not UTF-8"))?;
                Value::Str(s.to_owned())
            }
            t => return Err(corrupt(&format!("unknown value tag {t}"))),
        });
    }
    if r.pos != bytes.len() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(FeatureRow {
        event_ts_us,
        values,
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SchemaDoc {
    format: u32,
    fields: Vec<StoredField>,
}

/// The stored form of a view's field layout.
pub fn encode_schema(fields: &[StoredField]) -> Vec<u8> {
    serde_json::to_vec(&SchemaDoc {
        format: 1,
        fields: fields.to_vec(),
    })
    .expect("schema serializes")
}

pub fn decode_schema(bytes: &[u8]) -> Result<Vec<StoredField>, StoreError> {
    let doc: SchemaDoc = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("stored schema: {e}")))?;
    if doc.format != 1 {
        return Err(StoreError::Corrupt(format!(
            "stored schema: unknown format {}",
            doc.format
        )));
    }
    Ok(doc.fields)
}

/// Checks a field layout before it is stored.
pub fn check_schema(view: &str, fields: &[StoredField]) -> Result<(), StoreError> {
    if view.is_empty() || view.contains(':') {
        return Err(StoreError::Invalid(format!(
            "view name {view:?} must be non-empty and contain no ':'"
        )));
    }
    for f in fields {
        if f.kind != "NUMERIC" && f.kind != "STRING" {
            return Err(StoreError::Invalid(format!(
                "view {view:?}: field {:?} has kind {:?} (expected NUMERIC or STRING)",
                f.name, f.kind
            )));
        }
    }
    Ok(())
}

/// Checks rows against the view's stored layout before they are written.
pub fn check_rows(
    view: &str,
    schema: Option<&[StoredField]>,
    rows: &[(crate::EntityId, FeatureRow)],
) -> Result<(), StoreError> {
    let Some(fields) = schema else {
        return Err(StoreError::Invalid(format!(
            "view {view:?} has no schema in the online store: write it before its rows"
        )));
    };
    for (id, row) in rows {
        if row.values.len() != fields.len() {
            return Err(StoreError::Invalid(format!(
                "view {view:?}, entity {id}: {} values for {} fields",
                row.values.len(),
                fields.len()
            )));
        }
        for (f, v) in fields.iter().zip(&row.values) {
            let ok = matches!(
                (f.kind.as_str(), v),
                (_, Value::Null) | ("NUMERIC", Value::Num(_)) | ("STRING", Value::Str(_))
            );
            if !ok {
                return Err(StoreError::Invalid(format!(
                    "view {view:?}, entity {id}: field {:?} is {} but got {v}",
                    f.name, f.kind
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<f64>().prop_map(Value::Num),
            (-1_000_000i64..1_000_000).prop_map(|i| Value::Num(i as f64)),
            Just(Value::Num(-0.0)),
            Just(Value::Num(MAX_EXACT_INT)),
            Just(Value::Num(-MAX_EXACT_INT)),
            Just(Value::Num(MAX_EXACT_INT * 2.0)),
            ".{0,20}".prop_map(Value::Str),
        ]
    }

    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Num(x), Value::Num(y)) => {
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
            }
            _ => a == b,
        }
    }

    proptest! {
        #[test]
        fn rows_round_trip(ts in any::<i64>(), values in proptest::collection::vec(value(), 0..30)) {
            let row = FeatureRow { event_ts_us: ts, values };
            let bytes = row_to_bytes(&row);
            prop_assert_eq!(row_event_ts(&bytes).unwrap(), ts);
            let back = decode_row(&bytes).unwrap();
            prop_assert_eq!(back.event_ts_us, ts);
            prop_assert_eq!(back.values.len(), row.values.len());
            for (a, b) in row.values.iter().zip(&back.values) {
                prop_assert!(same(a, b), "{:?} vs {:?}", a, b);
            }
        }

        #[test]
        fn header_bytes_sort_like_timestamps(a in any::<i64>(), b in any::<i64>()) {
            prop_assert_eq!(ordered_ts(a).cmp(&ordered_ts(b)), a.cmp(&b));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_row(&bytes);
        }
    }

    #[test]
    fn encoding_is_compact() {
        let row = FeatureRow {
            event_ts_us: 1_700_000_000_000_000,
            values: vec![
                Value::Num(3.0),
                Value::Num(720.0),
                Value::Num(18.37),
                Value::Null,
                Value::Str("RENT".into()),
            ],
        };
        // 9 header + 1 count + (1+1) + (1+2) + (1+8) + 1 + (1+1+4)
        assert_eq!(row_to_bytes(&row).len(), 9 + 1 + 2 + 3 + 9 + 1 + 6);
    }

    #[test]
    fn corrupt_rows_are_errors() {
        let good = row_to_bytes(&FeatureRow {
            event_ts_us: 5,
            values: vec![Value::Str("x".into())],
        });
        assert!(matches!(decode_row(&[]), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode_row(&[9; 12]), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            decode_row(&good[..good.len() - 1]),
            Err(StoreError::Corrupt(_))
        ));
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(decode_row(&trailing), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn rows_are_checked_against_the_schema() {
        let fields = vec![
            StoredField {
                name: "a".into(),
                kind: "NUMERIC".into(),
            },
            StoredField {
                name: "b".into(),
                kind: "STRING".into(),
            },
        ];
        let row = |values| {
            vec![(
                7,
                FeatureRow {
                    event_ts_us: 0,
                    values,
                },
            )]
        };
        assert!(check_rows("v", Some(&fields), &row(vec![Value::Num(1.0), Value::Null])).is_ok());
        let e = check_rows("v", None, &row(vec![])).unwrap_err().to_string();
        assert!(e.contains("no schema"), "{e}");
        let e = check_rows("v", Some(&fields), &row(vec![Value::Null]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("entity 7: 1 values for 2 fields"), "{e}");
        let e = check_rows(
            "v",
            Some(&fields),
            &row(vec![Value::Str("x".into()), Value::Null]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("field \"a\" is NUMERIC"), "{e}");
        assert!(check_schema("a:b", &fields).is_err());
        assert!(
            check_schema(
                "v",
                &[StoredField {
                    name: "x".into(),
                    kind: "FP64".into()
                }]
            )
            .is_err()
        );
    }
}
