//! Reading prediction scores out of responses without parsing the whole JSON: only the first
//! output's `data` array (V2) or the `predictions` array (v1 records) is scanned.
//!
//! The score of a row is the first output's value for that row; when the output has two
//! values per row (class probabilities), the second one (the positive class); with more, the
//! first.

use std::cell::RefCell;

/// The response shape scores are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreFormat {
    /// Open Inference Protocol: `{"outputs": [{"data": [...]}, …]}`.
    V2,
    /// KServe v1: `{"predictions": [...]}`.
    V1,
}

thread_local! {
    static BUF: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// Calls `f(row, score)` for each of the `rows` rows of `body`; nothing if the body holds no
/// readable scores (or a count that does not divide into `rows`).
pub fn parse_scores(fmt: ScoreFormat, body: &[u8], rows: usize, mut f: impl FnMut(usize, f64)) {
    if rows == 0 {
        return;
    }
    let start = match fmt {
        ScoreFormat::V2 => find(body, b"\"outputs\"").and_then(|at| {
            let data = at + find(&body[at..], b"\"data\"")?;
            Some(data + find(&body[data..], b"[")?)
        }),
        ScoreFormat::V1 => {
            find(body, b"\"predictions\"").and_then(|at| Some(at + find(&body[at..], b"[")?))
        }
    };
    let Some(start) = start else { return };
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        scan_numbers(&body[start..], buf);
        let n = buf.len();
        if n == 0 || n % rows != 0 {
            return;
        }
        let width = n / rows;
        let pick = if width == 2 { 1 } else { 0 };
        for r in 0..rows {
            let v = buf[r * width + pick];
            if v.is_finite() {
                f(r, v);
            }
        }
    });
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Numbers of the array starting at `b[0] == b'['`, flattened (nested arrays row-major);
/// `null` becomes NaN; strings, booleans and object keys are skipped.
fn scan_numbers(b: &[u8], out: &mut Vec<f64>) {
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return;
                }
            }
            b'"' => {
                // Skip the string (and, for an object key, its value's separator follows).
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'n' if b[i..].starts_with(b"null") => {
                out.push(f64::NAN);
                i += 3;
            }
            c if c == b'-' || c.is_ascii_digit() => {
                let s = i;
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                if let Some(v) = std::str::from_utf8(&b[s..i])
                    .ok()
                    .and_then(|t| t.parse::<f64>().ok())
                {
                    out.push(v);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(fmt: ScoreFormat, body: &str, rows: usize) -> Vec<(usize, f64)> {
        let mut v = Vec::new();
        parse_scores(fmt, body.as_bytes(), rows, |r, s| v.push((r, s)));
        v
    }

    #[test]
    fn reads_v2_outputs() {
        let body = r#"{"model_name":"credit-risk","model_version":"3","id":"x[1]","outputs":[{"name":"probability","datatype":"FP32","shape":[2,1],"data":[0.25,1e-3]},{"name":"other","data":[9,9]}]}"#;
        assert_eq!(
            collect(ScoreFormat::V2, body, 2),
            vec![(0, 0.25), (1, 0.001)]
        );
        let nested = r#"{"outputs":[{"name":"p","shape":[2,2],"data":[[0.9,0.1],[0.4,0.6]]}]}"#;
        assert_eq!(
            collect(ScoreFormat::V2, nested, 2),
            vec![(0, 0.1), (1, 0.6)]
        );
        // A count that does not fit the rows gives nothing rather than misattributed scores.
        assert!(collect(ScoreFormat::V2, body, 3).is_empty());
        assert!(collect(ScoreFormat::V2, r#"{"error":"bad"}"#, 1).is_empty());
    }

    #[test]
    fn reads_v1_predictions() {
        let body = r#"{"predictions":[0.5,-2.5E-1,null]}"#;
        assert_eq!(
            collect(ScoreFormat::V1, body, 3),
            vec![(0, 0.5), (1, -0.25)]
        );
        let lists = r#"{"predictions":[[0.1,0.2,0.7],[0.3,0.3,0.4]]}"#;
        assert_eq!(collect(ScoreFormat::V1, lists, 2), vec![(0, 0.1), (1, 0.3)]);
    }
}
