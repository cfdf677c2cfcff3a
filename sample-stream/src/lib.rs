//! `vane-sample-stream`: the wire format of the sample stream from `vane-server` to
//! `vane-monitor` (`../shared/design.md`, "Sample stream").
//!
//! A stream is a sequence of frames, each a little-endian `u32` body length followed by the
//! body: a format version byte ([`VERSION`]), a kind byte and the payload.
//!
//! - A [`Schema`] frame announces what a model version's rows look like: model, version, the
//!   features in tensor column order (numeric, or categorical with the vocabulary its codes
//!   index) and the name of the score. Its [`Schema::id`] is a hash of that content, so the
//!   id names the schema on every connection and from every server.
//! - A [`Rows`] frame carries sampled rows of one schema: model, version, schema id, flags
//!   (shadow traffic, scores present), the row count, then the values column by column
//!   (`f32`; categorical values are vocabulary codes, NaN = missing) and one score per row.
//!
//! Encoding is [`Schema::encode_frame`] and [`encode_rows`]; decoding is [`decode`], which
//! borrows from the frame body (no copy of the values) and rejects anything that does not add
//! up with a [`FrameError`] instead of panicking. [`MAX_FRAME_BYTES`] bounds what a reader
//! must buffer.

use std::fmt;

/// Format version written in every frame; a reader refuses other versions.
pub const VERSION: u8 = 1;
/// Largest body a writer produces and a reader accepts.
pub const MAX_FRAME_BYTES: usize = 8 << 20;
/// Most features a schema may declare.
pub const MAX_FEATURES: usize = 4096;
/// Most categories one categorical feature may declare.
pub const MAX_CATEGORIES: usize = 65_536;

const KIND_SCHEMA: u8 = 1;
const KIND_ROWS: u8 = 2;
const FLAG_SHADOW: u8 = 1;
const FLAG_SCORES: u8 = 2;

/// How a feature's values are to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureKind {
    Numeric,
    /// Values are codes into these categories; any other value (NaN, out of range) is a
    /// missing or unseen category.
    Categorical(Vec<String>),
}

/// One model input column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    pub name: String,
    pub kind: FeatureKind,
}

/// What the rows of one model version look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub model: String,
    pub version: u64,
    pub features: Vec<Feature>,
    /// Name of the score column (e.g. `probability`), when rows carry one.
    pub score: Option<String>,
}

/// A decoded frame, borrowing from the body it came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame<'a> {
    Schema { id: u64, schema: Schema },
    Rows(Rows<'a>),
}

/// Sampled rows of one schema. Values stay little-endian bytes until read.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows<'a> {
    pub schema_id: u64,
    pub model: &'a str,
    pub version: u64,
    /// A copy of a request that shadow routing sent to this version.
    pub shadow: bool,
    pub rows: usize,
    pub columns: usize,
    values: &'a [u8],
    scores: Option<&'a [u8]>,
}

impl<'a> Rows<'a> {
    /// The values of column `c` (`c < columns`), in row order.
    pub fn column(&self, c: usize) -> impl ExactSizeIterator<Item = f32> + 'a {
        let bytes = self
            .values
            .get(c * self.rows * 4..(c + 1) * self.rows * 4)
            .unwrap_or_default();
        f32s(bytes)
    }

    /// The values of column `c` for rows `range` (clamped to the frame).
    pub fn column_range(
        &self,
        c: usize,
        range: std::ops::Range<usize>,
    ) -> impl ExactSizeIterator<Item = f32> + 'a {
        let end = range.end.min(self.rows);
        let start = range.start.min(end);
        let base = c * self.rows;
        let bytes = self
            .values
            .get((base + start) * 4..(base + end) * 4)
            .unwrap_or_default();
        f32s(bytes)
    }

    /// The scores of rows `range` (clamped), when the frame carries scores.
    pub fn scores_range(
        &self,
        range: std::ops::Range<usize>,
    ) -> Option<impl ExactSizeIterator<Item = f32> + 'a> {
        let end = range.end.min(self.rows);
        let start = range.start.min(end);
        self.scores
            .map(|s| f32s(s.get(start * 4..end * 4).unwrap_or_default()))
    }

    /// The score of every row, when the frame carries scores.
    pub fn scores(&self) -> Option<impl ExactSizeIterator<Item = f32> + 'a> {
        self.scores.map(f32s)
    }
}

fn f32s(bytes: &[u8]) -> impl ExactSizeIterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Why a frame was refused. Every variant is recoverable: the reader skips the frame (its
/// length prefix keeps the stream in sync), except [`FrameError::TooLarge`], after which a
/// reader should close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("unsupported frame version {0} (this reader speaks {VERSION})")]
    Version(u8),
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("frame truncated while reading {0}")]
    Truncated(&'static str),
    #[error("{0} trailing bytes after the frame's content")]
    Trailing(usize),
    #[error("invalid frame: {0}")]
    Invalid(String),
}

/// Reads the length prefix of a frame; the body that follows has this many bytes.
pub fn body_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let n = u32::from_le_bytes(prefix) as usize;
    if n > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(n));
    }
    Ok(n)
}

impl Schema {
    /// A stable 64-bit id of this schema's content (FNV-1a of its encoding).
    pub fn id(&self) -> u64 {
        let mut buf = Vec::new();
        self.encode_content(&mut buf);
        fnv1a(&buf)
    }

    /// Appends this schema's frame (length prefix included) to `out`.
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        let mut content = Vec::new();
        self.encode_content(&mut content);
        let id = fnv1a(&content);
        let start = begin_frame(out, KIND_SCHEMA);
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&content);
        end_frame(out, start);
    }

    fn encode_content(&self, out: &mut Vec<u8>) {
        put_str(out, &self.model);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.features.len().min(MAX_FEATURES) as u16).to_le_bytes());
        for f in self.features.iter().take(MAX_FEATURES) {
            put_str(out, &f.name);
            match &f.kind {
                FeatureKind::Numeric => out.push(0),
                FeatureKind::Categorical(cats) => {
                    out.push(1);
                    let n = cats.len().min(MAX_CATEGORIES);
                    out.extend_from_slice(&(n as u32).to_le_bytes());
                    for c in &cats[..n] {
                        put_str(out, c);
                    }
                }
            }
        }
        put_str(out, self.score.as_deref().unwrap_or(""));
    }
}

/// Appends a rows frame to `out`: `rows` rows of `schema` (id `schema_id`), whose value at
/// (row r, column c) is `value(r, c)`, and optionally one score per row.
///
/// The caller keeps frames under [`MAX_FRAME_BYTES`]: `rows × (columns + 1) × 4` bytes plus
/// the header (see [`rows_per_frame`]).
pub fn encode_rows(
    out: &mut Vec<u8>,
    schema_id: u64,
    schema: &Schema,
    shadow: bool,
    rows: usize,
    value: impl Fn(usize, usize) -> f32,
    scores: Option<&[f32]>,
) {
    let start = begin_frame(out, KIND_ROWS);
    out.extend_from_slice(&schema_id.to_le_bytes());
    put_str(out, &schema.model);
    out.extend_from_slice(&schema.version.to_le_bytes());
    let mut flags = 0;
    if shadow {
        flags |= FLAG_SHADOW;
    }
    if scores.is_some() {
        flags |= FLAG_SCORES;
    }
    out.push(flags);
    out.extend_from_slice(&(rows as u32).to_le_bytes());
    let cols = schema.features.len().min(MAX_FEATURES);
    out.extend_from_slice(&(cols as u16).to_le_bytes());
    out.reserve(rows * (cols + 1) * 4);
    for c in 0..cols {
        for r in 0..rows {
            out.extend_from_slice(&value(r, c).to_le_bytes());
        }
    }
    if let Some(s) = scores {
        for r in 0..rows {
            out.extend_from_slice(&s.get(r).copied().unwrap_or(f32::NAN).to_le_bytes());
        }
    }
    end_frame(out, start);
}

/// Most rows of a `columns`-wide schema that fit in one frame.
pub fn rows_per_frame(columns: usize, model_name_len: usize) -> usize {
    let header = 64 + model_name_len;
    ((MAX_FRAME_BYTES - header) / ((columns + 1) * 4)).max(1)
}

fn begin_frame(out: &mut Vec<u8>, kind: u8) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(VERSION);
    out.push(kind);
    start
}

fn end_frame(out: &mut [u8], start: usize) {
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Names longer than a u16 length are cut at a character boundary.
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

/// FNV-1a, 64 bit: stable across processes and releases.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Decodes one frame body (the bytes after the length prefix).
pub fn decode(body: &[u8]) -> Result<Frame<'_>, FrameError> {
    if body.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut r = Reader { buf: body };
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    match r.u8("kind")? {
        KIND_SCHEMA => decode_schema(r),
        KIND_ROWS => decode_rows(r),
        k => Err(FrameError::Kind(k)),
    }
}

fn decode_schema(mut r: Reader<'_>) -> Result<Frame<'_>, FrameError> {
    let id = r.u64("schema id")?;
    let content = r.buf;
    let model = r.str("model")?.to_string();
    let version = r.u64("version")?;
    let n = r.u16("feature count")? as usize;
    let mut features = Vec::with_capacity(n.min(r.buf.len() / 3));
    for _ in 0..n {
        let name = r.str("feature name")?.to_string();
        let kind = match r.u8("feature kind")? {
            0 => FeatureKind::Numeric,
            1 => {
                let k = r.u32("category count")? as usize;
                if k > MAX_CATEGORIES {
                    return Err(FrameError::Invalid(format!(
                        "feature {name:?} declares {k} categories (limit {MAX_CATEGORIES})"
                    )));
                }
                // Each category takes at least its 2-byte length, so `k` is bounded by the
                // bytes left: no allocation larger than the frame.
                let mut cats = Vec::with_capacity(k.min(r.buf.len() / 2));
                for _ in 0..k {
                    cats.push(r.str("category")?.to_string());
                }
                FeatureKind::Categorical(cats)
            }
            k => {
                return Err(FrameError::Invalid(format!(
                    "feature {name:?} has unknown kind {k}"
                )));
            }
        };
        features.push(Feature { name, kind });
    }
    let score = r.str("score name")?;
    let score = (!score.is_empty()).then(|| score.to_string());
    if !r.buf.is_empty() {
        return Err(FrameError::Trailing(r.buf.len()));
    }
    if fnv1a(content) != id {
        return Err(FrameError::Invalid(format!(
            "schema id {id:#x} does not match its content"
        )));
    }
    Ok(Frame::Schema {
        id,
        schema: Schema {
            model,
            version,
            features,
            score,
        },
    })
}

fn decode_rows(mut r: Reader<'_>) -> Result<Frame<'_>, FrameError> {
    let schema_id = r.u64("schema id")?;
    let model = r.str("model")?;
    let version = r.u64("version")?;
    let flags = r.u8("flags")?;
    if flags & !(FLAG_SHADOW | FLAG_SCORES) != 0 {
        return Err(FrameError::Invalid(format!("unknown flags {flags:#04x}")));
    }
    let rows = r.u32("row count")? as usize;
    let columns = r.u16("column count")? as usize;
    let values_len = rows
        .checked_mul(columns)
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| FrameError::Invalid("row and column counts overflow".into()))?;
    let values = r.take(values_len, "values")?;
    let scores = if flags & FLAG_SCORES != 0 {
        Some(r.take(rows * 4, "scores")?)
    } else {
        None
    };
    if !r.buf.is_empty() {
        return Err(FrameError::Trailing(r.buf.len()));
    }
    Ok(Frame::Rows(Rows {
        schema_id,
        model,
        version,
        shadow: flags & FLAG_SHADOW != 0,
        rows,
        columns,
        values,
        scores,
    }))
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FrameError> {
        if self.buf.len() < n {
            return Err(FrameError::Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, FrameError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, FrameError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, FrameError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, FrameError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn str(&mut self, what: &'static str) -> Result<&'a str, FrameError> {
        let n = self.u16(what)? as usize;
        let b = self.take(n, what)?;
        std::str::from_utf8(b).map_err(|_| FrameError::Invalid(format!("{what} is not UTF-8")))
    }
}

impl fmt::Display for FeatureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeatureKind::Numeric => f.write_str("numeric"),
            FeatureKind::Categorical(c) => write!(f, "categorical ({} categories)", c.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn schema() -> Schema {
        Schema {
            model: "credit-risk".into(),
            version: 3,
            features: vec![
                Feature {
                    name: "income".into(),
                    kind: FeatureKind::Numeric,
                },
                Feature {
                    name: "term".into(),
                    kind: FeatureKind::Categorical(vec!["36 months".into(), "60 months".into()]),
                },
            ],
            score: Some("probability".into()),
        }
    }

    /// Splits a buffer of frames into bodies.
    fn bodies(mut buf: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let n = body_len(buf[..4].try_into().unwrap()).unwrap();
            out.push(&buf[4..4 + n]);
            buf = &buf[4 + n..];
        }
        out
    }

    #[test]
    fn schema_and_rows_round_trip() {
        let s = schema();
        let id = s.id();
        let mut buf = Vec::new();
        s.encode_frame(&mut buf);
        let input = [50_000.0f32, 0.0, 72_000.0, 1.0, f32::NAN, 1.0];
        encode_rows(
            &mut buf,
            id,
            &s,
            true,
            3,
            |r, c| input[r * 2 + c],
            Some(&[0.1, 0.2, 0.3]),
        );
        let frames = bodies(&buf);
        assert_eq!(frames.len(), 2);
        assert_eq!(
            decode(frames[0]).unwrap(),
            Frame::Schema {
                id,
                schema: s.clone()
            }
        );
        let Frame::Rows(rows) = decode(frames[1]).unwrap() else {
            panic!("rows frame expected")
        };
        assert_eq!(
            (rows.schema_id, rows.model, rows.version),
            (id, "credit-risk", 3)
        );
        assert!(rows.shadow);
        assert_eq!((rows.rows, rows.columns), (3, 2));
        let income: Vec<f32> = rows.column(0).collect();
        assert_eq!(income[..2], [50_000.0, 72_000.0]);
        assert!(income[2].is_nan());
        assert_eq!(rows.column(1).collect::<Vec<_>>(), [0.0, 1.0, 1.0]);
        assert_eq!(rows.scores().unwrap().collect::<Vec<_>>(), [0.1, 0.2, 0.3]);
        assert_eq!(rows.column(9).len(), 0, "an absent column reads as empty");
        assert_eq!(rows.column_range(1, 1..3).collect::<Vec<_>>(), [1.0, 1.0]);
        assert_eq!(rows.column_range(1, 2..9).len(), 1, "clamped to the frame");
        assert_eq!(rows.scores_range(0..1).unwrap().collect::<Vec<_>>(), [0.1]);
    }

    #[test]
    fn schema_ids_depend_on_content_only() {
        let a = schema();
        let mut b = schema();
        assert_eq!(a.id(), b.id());
        b.version = 4;
        assert_ne!(a.id(), b.id());
        let mut c = schema();
        c.features[1].kind = FeatureKind::Categorical(vec!["36 months".into()]);
        assert_ne!(a.id(), c.id());
    }

    #[test]
    fn broken_frames_are_named() {
        let s = schema();
        let mut buf = Vec::new();
        encode_rows(&mut buf, 7, &s, false, 2, |_, _| 1.0, None);
        let body = &buf[4..];
        assert_eq!(
            decode(&body[..body.len() - 1]),
            Err(FrameError::Truncated("values"))
        );
        let mut longer = body.to_vec();
        longer.push(0);
        assert_eq!(decode(&longer), Err(FrameError::Trailing(1)));
        let mut v2 = body.to_vec();
        v2[0] = 2;
        assert_eq!(decode(&v2), Err(FrameError::Version(2)));
        let mut kind = body.to_vec();
        kind[1] = 9;
        assert_eq!(decode(&kind), Err(FrameError::Kind(9)));
        assert_eq!(
            body_len(((MAX_FRAME_BYTES + 1) as u32).to_le_bytes()),
            Err(FrameError::TooLarge(MAX_FRAME_BYTES + 1))
        );
        // A schema whose id was tampered with.
        let mut sbuf = Vec::new();
        s.encode_frame(&mut sbuf);
        sbuf[6] ^= 1;
        assert!(matches!(decode(&sbuf[4..]), Err(FrameError::Invalid(_))));
    }

    proptest! {
        // Any bytes: decode answers Ok or Err, never panics, and never reports more values
        // than the body holds.
        #[test]
        fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(Frame::Rows(r)) = decode(&body) {
                prop_assert!(r.rows * r.columns * 4 <= body.len());
            }
        }

        // Valid frames with bytes flipped or cut: same guarantee.
        #[test]
        fn corrupted_frames_never_panic(
            rows in 0usize..20,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
            cut in any::<usize>(),
        ) {
            let s = schema();
            let mut buf = Vec::new();
            s.encode_frame(&mut buf);
            encode_rows(&mut buf, s.id(), &s, rows % 2 == 0, rows, |r, c| (r * c) as f32, Some(&vec![0.5; rows]));
            for (i, x) in flips {
                let n = buf.len();
                buf[i % n] ^= x;
            }
            let cut = cut % (buf.len() + 1);
            let body = &buf[4.min(cut)..cut];
            let _ = decode(body);
        }
    }
}
