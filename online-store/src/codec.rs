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

use crate::key::{EntityKey, KeyKind};
use crate::{FeatureRow, StoreError, StoredField, Value, ViewSchema};

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

pub(crate) fn ts_from_ordered(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
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

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], pos: usize) -> Self {
        Reader { bytes, pos }
    }

    pub(crate) fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    pub(crate) fn byte(&mut self) -> Result<u8, StoreError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| corrupt("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
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

    pub(crate) fn varint(&mut self) -> Result<u64, StoreError> {
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
    /// Absent in format 1 (a single INT64 key, unnamed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    keys: Vec<StoredField>,
    fields: Vec<StoredField>,
}

/// The stored form of a view's layout (schema format 2: keys and fields).
pub fn encode_schema(schema: &ViewSchema) -> Vec<u8> {
    serde_json::to_vec(&SchemaDoc {
        format: 2,
        keys: schema.keys.clone(),
        fields: schema.fields.clone(),
    })
    .expect("schema serializes")
}

/// Reads schema format 2, or format 1 (written before composite keys: one INT64 key, rows in
/// key format 1).
pub fn decode_schema(bytes: &[u8]) -> Result<ViewSchema, StoreError> {
    let doc: SchemaDoc = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("stored schema: {e}")))?;
    let key_format = match doc.format {
        1 if doc.keys.is_empty() => 1,
        2 if !doc.keys.is_empty() => 2,
        f => {
            return Err(StoreError::Corrupt(format!(
                "stored schema: unknown format {f} (with {} keys)",
                doc.keys.len()
            )));
        }
    };
    Ok(ViewSchema {
        key_format,
        keys: doc.keys,
        fields: doc.fields,
    })
}

/// Checks a layout before it is stored.
pub fn check_schema(view: &str, schema: &ViewSchema) -> Result<(), StoreError> {
    if view.is_empty() || view.contains(':') {
        return Err(StoreError::Invalid(format!(
            "view name {view:?} must be non-empty and contain no ':'"
        )));
    }
    if schema.key_format != crate::key::KEY_FORMAT || schema.keys.is_empty() {
        return Err(StoreError::Invalid(format!(
            "view {view:?}: a schema is written with key format {} and at least one key",
            crate::key::KEY_FORMAT
        )));
    }
    for k in &schema.keys {
        if KeyKind::parse(&k.kind).is_none() {
            return Err(StoreError::Invalid(format!(
                "view {view:?}: key {:?} has kind {:?} (expected INT64 or STRING)",
                k.name, k.kind
            )));
        }
    }
    for f in &schema.fields {
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
    schema: Option<&ViewSchema>,
    rows: &[(EntityKey, FeatureRow)],
) -> Result<(), StoreError> {
    let Some(schema) = schema else {
        return Err(StoreError::Invalid(format!(
            "view {view:?} has no schema in the online store: write it before its rows"
        )));
    };
    if schema.key_format != crate::key::KEY_FORMAT {
        return Err(StoreError::Invalid(format!(
            "view {view:?} is stored in key format {}: write its schema again (materialize does) \
             to move it to format {} before writing rows",
            schema.key_format,
            crate::key::KEY_FORMAT
        )));
    }
    let kinds = schema.key_kinds();
    let fields = &schema.fields;
    for (id, row) in rows {
        id.check(&kinds)
            .map_err(|e| StoreError::Invalid(format!("view {view:?}: {e}")))?;
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
        let schema = ViewSchema::new(
            vec![StoredField::new("id", "INT64")],
            vec![
                StoredField::new("a", "NUMERIC"),
                StoredField::new("b", "STRING"),
            ],
        );
        let row = |key: EntityKey, values| {
            vec![(
                key,
                FeatureRow {
                    event_ts_us: 0,
                    values,
                },
            )]
        };
        let ok = || vec![Value::Num(1.0), Value::Null];
        assert!(check_rows("v", Some(&schema), &row(7.into(), ok())).is_ok());
        let e = check_rows("v", None, &row(7.into(), vec![]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no schema"), "{e}");
        let e = check_rows("v", Some(&schema), &row(7.into(), vec![Value::Null]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("entity 7: 1 values for 2 fields"), "{e}");
        let e = check_rows(
            "v",
            Some(&schema),
            &row(7.into(), vec![Value::Str("x".into()), Value::Null]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("field \"a\" is NUMERIC"), "{e}");
        let e = check_rows("v", Some(&schema), &row("x".into(), ok()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("entity key \"x\" has parts [\"STRING\"]"), "{e}");
        assert!(check_schema("a:b", &schema).is_err());
        let mut bad = schema.clone();
        bad.fields[0].kind = "FP64".into();
        assert!(check_schema("v", &bad).is_err());
        let mut bad = schema.clone();
        bad.keys[0].kind = "FP64".into();
        assert!(check_schema("v", &bad).is_err());
        bad.keys.clear();
        assert!(check_schema("v", &bad).is_err());
    }

    #[test]
    fn schemas_round_trip_and_old_ones_read() {
        let schema = ViewSchema::new(
            vec![
                StoredField::new("a", "INT64"),
                StoredField::new("b", "STRING"),
            ],
            vec![StoredField::new("x", "NUMERIC")],
        );
        assert_eq!(decode_schema(&encode_schema(&schema)).unwrap(), schema);
        let old = br#"{"format":1,"fields":[{"name":"x","kind":"NUMERIC"}]}"#;
        let old = decode_schema(old).unwrap();
        assert_eq!(old.key_format, 1);
        assert_eq!(old.fields, schema.fields);
        assert!(old.fits(&ViewSchema::new(
            vec![StoredField::new("id", "INT64")],
            schema.fields.clone()
        )));
        assert!(!old.fits(&schema));
        let e = check_rows("v", Some(&old), &[]).unwrap_err().to_string();
        assert!(e.contains("key format 1"), "{e}");
        assert!(decode_schema(br#"{"format":3,"fields":[]}"#).is_err());
    }
}
