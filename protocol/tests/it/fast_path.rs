//! The V2 JSON decoder's scanner for plain requests against its full parser: on random
//! requests in the scanner's subset and just outside it (number spellings, whitespace, key
//! orders, nesting, strings, literals, extra fields, byte corruptions), both give the same
//! result, or the same error. The full parser alone is reached by declaring the whole body
//! as the JSON part (`Inference-Header-Content-Length`), which the scanner leaves alone.

use proptest::prelude::*;
use vane_protocol::{Schema, decode_infer};

use crate::fixture::{REGIONS, TERMS, schema};

/// Both paths on `body`, as comparable text (`{:?}` prints floats exactly, -0.0 included).
fn both(s: &Schema, body: &[u8]) -> (String, String) {
    let fast = format!("{:?}", decode_infer(s, body, None));
    let full = format!("{:?}", decode_infer(s, body, Some(body.len())));
    (fast, full)
}

/// Spellings of numbers: plain, in the exact range and outside it, and malformed.
const NUMBERS: [&str; 30] = [
    "0",
    "-0",
    "7",
    "-12",
    "58000",
    "21.4",
    "0.26",
    "-0.0",
    "1e3",
    "1E-3",
    "2.5e+2",
    "123456789012345678",
    "1234567890123456789",
    "12345678901234567890",
    "9007199254740993.5",
    "0.1000000000000000055511151231257827",
    "1e22",
    "1e23",
    "3.4e38",
    "3.5e38",
    "1e400",
    "1e-400",
    "01",
    "1.",
    ".5",
    "-",
    "1e",
    "+1",
    "0x10",
    "1.5.2",
];

const SPACES: [&str; 4] = ["", " ", "\n\t", "\r\n  "];

#[derive(Debug, Clone)]
struct Gen {
    picks: Vec<u8>,
}

impl Gen {
    fn pick(&mut self, n: usize) -> usize {
        let v = self.picks.pop().unwrap_or(0) as usize;
        v % n
    }
    /// One of `n` options, the first in all but about `n` of `odds` cases.
    fn mostly_first(&mut self, n: usize, odds: usize) -> usize {
        let k = self.pick(odds);
        if k < n { k } else { 0 }
    }
    fn ws(&mut self) -> &'static str {
        SPACES[self.pick(SPACES.len())]
    }
    /// A data value: mostly a valid one for the column (`names`: a categorical column of a
    /// per-feature input, sent as strings; `codes`: one of the model tensor, sent as codes),
    /// sometimes anything else.
    fn value(&mut self, codes: bool, names: bool) -> String {
        let vocab = if self.pick(2) == 0 {
            &TERMS[..3]
        } else {
            &REGIONS[..3]
        };
        match self.pick(48) {
            0 => NUMBERS[self.pick(NUMBERS.len())].into(),
            1 => "null".into(),
            2 => ["true", "false", "nul", "tru"][self.pick(4)].into(),
            3 => {
                let v: Vec<&str> = vocab
                    .iter()
                    .copied()
                    .chain(["x", "é", "a\\u0062", "a\"b"])
                    .collect();
                serde_json::to_string(v[self.pick(v.len())]).unwrap()
            }
            _ if names => serde_json::to_string(vocab[self.pick(2)]).unwrap(),
            _ if codes => format!("{}", self.pick(3)),
            _ => NUMBERS[self.pick(12)].into(),
        }
    }
    fn array(&mut self, values: Vec<String>, nested: usize) -> String {
        let w = self.ws();
        if nested > 1 && values.len().is_multiple_of(nested) {
            let rows: Vec<String> = values
                .chunks(nested)
                .map(|c| format!("[{}]", c.join(&format!(",{w}"))))
                .collect();
            format!("[{w}{}{w}]", rows.join(","))
        } else {
            format!("[{w}{}{w}]", values.join(&format!("{w},")))
        }
    }
    fn member(&mut self, key: &str, value: &str) -> String {
        let (a, b) = (self.ws(), self.ws());
        format!("{a}\"{key}\"{b}:{a}{value}{b}")
    }
    fn object(&mut self, mut members: Vec<String>) -> String {
        // Usually in the clients' order (as given); sometimes rotated.
        if self.pick(4) == 0 && !members.is_empty() {
            let k = self.pick(members.len());
            members.rotate_left(k);
        }
        let w = self.ws();
        format!("{{{w}{}{w}}}", members.join(","))
    }
    fn input(&mut self, name: &str, datatype: &str, shape: &str, data: String) -> String {
        let mut m = vec![
            self.member("name", &format!("\"{name}\"")),
            self.member("shape", shape),
            self.member("datatype", &format!("\"{datatype}\"")),
            self.member("data", &data),
        ];
        match self.pick(48) {
            0 => m.push(self.member("parameters", "{\"content_type\":\"np\"}")),
            1 => m.push(self.member("name", "\"owner\"")),
            2 => {
                m.pop();
            }
            _ => {}
        }
        self.object(m)
    }
    fn request(&mut self) -> String {
        let rows = 1 + self.pick(3);
        let inputs = if self.pick(2) == 0 {
            let values: Vec<String> = (0..rows * 4)
                .map(|i| self.value(i % 4 >= 2, false))
                .collect();
            let nested = if self.pick(2) == 0 { 4 } else { 1 };
            let data = self.array(values, nested);
            let dt = ["FP32", "FP64", "INT64", "BYTES"][self.mostly_first(4, 24)];
            let shape = [
                format!("[{rows},4]"),
                format!("[{rows}, 4]"),
                "[1.0,4]".into(),
            ][self.mostly_first(3, 24)]
            .clone();
            vec![self.input("input", dt, &shape, data)]
        } else {
            let mut v = Vec::new();
            for (name, categorical) in [
                ("income", false),
                ("owner", false),
                ("term", true),
                ("region", true),
            ] {
                let values: Vec<String> =
                    (0..rows).map(|_| self.value(false, categorical)).collect();
                let data = self.array(values, 1);
                let dt = if categorical && self.pick(4) != 0 {
                    "BYTES"
                } else {
                    ["FP32", "FP64", "INT32", "BOOL"][self.mostly_first(4, 24)]
                };
                v.push(self.input(name, dt, &format!("[{rows}]"), data));
            }
            v
        };
        let mut members = vec![self.member("inputs", &format!("[{}]", inputs.join(",")))];
        match self.pick(48) {
            0 => members.push(self.member("id", "\"r-1\"")),
            1 => members.push(self.member("parameters", "{\"timeout\":500}")),
            2 => members.push(self.member("outputs", "[{\"name\":\"probability\"}]")),
            3 => members.push(self.member("inputs", "[]")),
            _ => {}
        }
        self.object(members)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, .. ProptestConfig::default() })]

    #[test]
    fn the_scanner_and_the_full_parser_agree(
        picks in prop::collection::vec(any::<u8>(), 64..256),
        allow_missing in any::<bool>(),
        corrupt in prop::option::weighted(0.2, (any::<usize>(), any::<u8>())),
    ) {
        let s = schema(allow_missing, 8);
        let mut body = Gen { picks }.request().into_bytes();
        if let Some((at, byte)) = corrupt {
            let at = at % body.len();
            body[at] = byte;
        }
        let (fast, full) = both(&s, &body);
        prop_assert_eq!(fast, full, "body: {}", String::from_utf8_lossy(&body));
    }
}

/// The generator above mostly makes requests both paths accept: the property is about
/// values, not only about errors.
#[test]
fn most_generated_requests_are_accepted() {
    let s = schema(true, 8);
    let mut accepted = 0;
    for seed in 0..1000u32 {
        // xorshift64*, seeded per case.
        let mut x = u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let picks = (0..200)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect();
        let body = Gen { picks }.request();
        let r = decode_infer(&s, body.as_bytes(), None);
        accepted += usize::from(r.is_ok());
    }
    assert!(accepted > 300, "{accepted} of 1000 accepted");
}

#[test]
fn plain_requests_decode_the_same_either_way() {
    let s = schema(true, 8);
    for body in [
        r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[58000, 21.4, 0, 3]}]}"#,
        r#"{"inputs":[{"name":"input","shape":[2,4],"datatype":"FP64","data":[[1,2,0,1],[-0,1e3,2,null]]}]}"#,
        r#" { "inputs" : [ { "name" : "income" , "shape" : [ 2 ] , "datatype" : "FP32" , "data" : [ 1.5 , -2 ] } ,
             {"name":"owner","shape":[2],"datatype":"BOOL","data":[true,false]},
             {"name":"term","shape":[2],"datatype":"BYTES","data":["36","60"]},
             {"name":"region","shape":[2],"datatype":"BYTES","data":["n","w"]} ] } "#,
        // Outside the subset: the full parser's alone.
        r#"{"inputs":[{"data":[1,2,0,1],"name":"input","shape":[1,4],"datatype":"FP32"}]}"#,
        r#"{"id":"a","inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,0,1]}]}"#,
        r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1e400,2,0,1]}]}"#,
    ] {
        let (fast, full) = both(&s, body.as_bytes());
        assert_eq!(fast, full, "{body}");
    }
}
