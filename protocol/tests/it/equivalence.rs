//! The one-pass decoders against the reference decoder: on random valid requests both give
//! the same model input, rows, id, outputs, timeout and entities; on random corruptions of
//! them, both refuse (a 400) or both accept the same thing.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use vane_protocol::{Decoded, KeyColumn, Schema, decode_infer, decode_records};

use crate::fixture::{ENTITY, REGIONS, TERMS, schema};
use crate::reference;

const INCOMES: [Option<f64>; 6] = [Some(0.0), Some(1.0), Some(2.5), Some(-3.0), Some(1e6), None];

/// One row of feature values, as indices into the choices above.
#[derive(Debug, Clone)]
struct Row {
    income: usize,
    owner: bool,
    term: usize,
    region: usize,
    id: i64,
}

fn row() -> impl Strategy<Value = Row> {
    (
        0..INCOMES.len(),
        any::<bool>(),
        0..TERMS.len(),
        0..REGIONS.len(),
        0..1000i64,
    )
        .prop_map(|(income, owner, term, region, id)| Row {
            income,
            owner,
            term,
            region,
            id,
        })
}

#[derive(Debug, Clone)]
struct Plan {
    rows: Vec<Row>,
    allow_missing: bool,
    tensor: bool,
    /// Tensor datatype: FP32, FP64 or INT64.
    dtype: usize,
    nested: bool,
    keyed: bool,
    /// Bit 0: leave `income` to the store; bit 1: `region`.
    omit: u8,
    owner_bool: bool,
    /// Inputs (by position) sent in the binary part.
    binary: u8,
    seed: u64,
    id: Option<String>,
    timeout: Option<u64>,
    outputs: usize,
    mutation: usize,
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        (
            prop::collection::vec(row(), 1..5),
            any::<bool>(),
            any::<bool>(),
            0..3usize,
            any::<bool>(),
        ),
        (
            any::<bool>(),
            0..4u8,
            any::<bool>(),
            any::<u8>(),
            any::<u64>(),
        ),
        (
            prop::option::of("[a-z\"\\\\é]{0,6}"),
            prop::option::of(1..10_000u64),
            0..3usize,
            0..24usize,
        ),
    )
        .prop_map(
            |(
                (rows, allow_missing, tensor, dtype, nested),
                (keyed, omit, owner_bool, binary, seed),
                (id, timeout, outputs, mutation),
            )| Plan {
                rows,
                allow_missing,
                tensor,
                dtype,
                nested,
                keyed,
                omit,
                owner_bool,
                binary,
                seed,
                id,
                timeout,
                outputs,
                mutation,
            },
        )
}

/// SplitMix64, to shuffle field and input order from the plan's seed.
struct Mix(u64);
impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

#[derive(Debug, Clone)]
enum J {
    Num(f64),
    Null,
    Bool(bool),
    Str(String),
}

impl J {
    fn text(&self) -> String {
        match self {
            J::Num(x) if x.fract() == 0.0 => format!("{}", *x as i64),
            J::Num(x) => format!("{x:?}"),
            J::Null => "null".into(),
            J::Bool(b) => b.to_string(),
            J::Str(s) => serde_json::to_string(s).unwrap(),
        }
    }
}

struct In {
    name: String,
    datatype: String,
    shape: Vec<i64>,
    values: Vec<J>,
    /// Values per row (nests the JSON data by rows when > 0).
    nest: usize,
    binary: bool,
}

impl In {
    fn data_json(&self) -> String {
        let all: Vec<String> = self.values.iter().map(J::text).collect();
        if self.nest == 0 {
            return format!("[{}]", all.join(","));
        }
        let rows: Vec<String> = all
            .chunks(self.nest)
            .map(|c| format!("[{}]", c.join(",")))
            .collect();
        format!("[{}]", rows.join(","))
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for v in &self.values {
            match (self.datatype.as_str(), v) {
                ("FP32", J::Num(x)) => out.extend_from_slice(&(*x as f32).to_le_bytes()),
                ("FP32", J::Null) => out.extend_from_slice(&f32::NAN.to_le_bytes()),
                ("FP64", J::Num(x)) => out.extend_from_slice(&x.to_le_bytes()),
                ("FP64", J::Null) => out.extend_from_slice(&f64::NAN.to_le_bytes()),
                ("INT64", J::Num(x)) => out.extend_from_slice(&(*x as i64).to_le_bytes()),
                ("BOOL", J::Bool(b)) => out.push(u8::from(*b)),
                ("BYTES", J::Str(s)) => {
                    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
                // Not representable: a byte the decoders must refuse or misread alike.
                _ => out.push(0xff),
            }
        }
        out
    }
}

fn obj(fields: Vec<(&str, String)>, mix: &mut Mix) -> String {
    let mut fields = fields;
    mix.shuffle(&mut fields);
    let parts: Vec<String> = fields
        .into_iter()
        .map(|(k, v)| format!("{k:?}:{v}"))
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn income(r: &Row) -> J {
    INCOMES[r.income].map_or(J::Null, J::Num)
}

/// The request body (and JSON length when binary inputs follow it).
fn render(p: &Plan) -> (Vec<u8>, Option<usize>) {
    let mut mix = Mix(p.seed);
    let n = p.rows.len() as i64;
    let mut inputs: Vec<In> = Vec::new();
    if p.tensor {
        let dtype = ["FP32", "FP64", "INT64"][p.dtype];
        let values = p
            .rows
            .iter()
            .flat_map(|r| {
                [
                    income(r),
                    J::Num(f64::from(u8::from(r.owner))),
                    J::Num(r.term as f64),
                    J::Num(r.region as f64),
                ]
            })
            .collect();
        inputs.push(In {
            name: "input".into(),
            datatype: dtype.into(),
            shape: vec![n, 4],
            values,
            nest: if p.nested { 4 } else { 0 },
            binary: false,
        });
    } else {
        let col = |name: &str, datatype: &str, values: Vec<J>| In {
            name: name.into(),
            datatype: datatype.into(),
            shape: if p.nested { vec![n, 1] } else { vec![n] },
            values,
            nest: usize::from(p.nested),
            binary: false,
        };
        let keyed = p.keyed;
        if !(keyed && p.omit & 1 != 0) {
            inputs.push(col("income", "FP64", p.rows.iter().map(income).collect()));
        }
        inputs.push(if p.owner_bool {
            col(
                "owner",
                "BOOL",
                p.rows.iter().map(|r| J::Bool(r.owner)).collect(),
            )
        } else {
            col(
                "owner",
                "INT64",
                p.rows
                    .iter()
                    .map(|r| J::Num(f64::from(u8::from(r.owner))))
                    .collect(),
            )
        });
        inputs.push(col(
            "term",
            "BYTES",
            p.rows
                .iter()
                .map(|r| J::Str(TERMS[r.term].into()))
                .collect(),
        ));
        if !(keyed && p.omit & 2 != 0) {
            inputs.push(col(
                "region",
                "BYTES",
                p.rows
                    .iter()
                    .map(|r| J::Str(REGIONS[r.region].into()))
                    .collect(),
            ));
        }
        if keyed {
            inputs.push(col(
                ENTITY,
                "INT64",
                p.rows.iter().map(|r| J::Num(r.id as f64)).collect(),
            ));
        }
    }
    mix.shuffle(&mut inputs);
    for (i, input) in inputs.iter_mut().enumerate() {
        input.binary = p.binary & (1 << i) != 0;
    }
    // Corruptions (mutation ≥ 12 leaves the request valid).
    match p.mutation {
        0 => inputs[0].datatype = "FP33".into(),
        1 => inputs[0].shape[0] += 1,
        2 => inputs[0].values[0] = J::Str("zz".into()),
        3 => {
            inputs.remove(0);
        }
        4 => {
            let dup = In {
                name: inputs[0].name.clone(),
                datatype: inputs[0].datatype.clone(),
                shape: inputs[0].shape.clone(),
                values: inputs[0].values.clone(),
                nest: inputs[0].nest,
                binary: false,
            };
            inputs.push(dup);
        }
        5 => inputs.push(In {
            name: "bogus".into(),
            datatype: "FP32".into(),
            shape: vec![n],
            values: vec![J::Num(1.0); n as usize],
            nest: 0,
            binary: false,
        }),
        6 => inputs[0].shape[0] = -1,
        7 => inputs[0].values[0] = J::Bool(true),
        8 => inputs[0].values[0] = J::Null,
        9 => inputs[0].values.push(J::Num(7.0)),
        10 => inputs[0].values[0] = J::Num(7.5),
        11 => inputs[0].values[0] = J::Num(1e300),
        _ => {}
    }
    let mut tail = Vec::new();
    let mut input_json = Vec::new();
    for input in &inputs {
        let shape = format!("{:?}", input.shape);
        let mut fields = vec![
            ("name", serde_json::to_string(&input.name).unwrap()),
            ("datatype", format!("{:?}", input.datatype)),
            ("shape", shape),
        ];
        if input.binary {
            let bytes = input.bytes();
            fields.push((
                "parameters",
                format!("{{\"binary_data_size\":{}}}", bytes.len()),
            ));
            tail.extend(bytes);
        } else {
            fields.push(("data", input.data_json()));
            fields.push(("parameters", "{\"content_type\":\"np\"}".into()));
        }
        input_json.push(obj(fields, &mut mix));
    }
    let mut top = vec![("inputs", format!("[{}]", input_json.join(",")))];
    if let Some(id) = &p.id {
        top.push(("id", serde_json::to_string(id).unwrap()));
    }
    let mut params = vec![("content_type", "\"pd\"".to_string())];
    if let Some(t) = p.timeout {
        params.push(("timeout", t.to_string()));
    }
    top.push(("parameters", obj(params, &mut mix)));
    match p.outputs {
        1 => top.push(("outputs", r#"[{"name":"probability"}]"#.into())),
        2 => top.push((
            "outputs",
            r#"[{"name":"p\"q","parameters":{"binary_data":true}},{"name":"probability"}]"#.into(),
        )),
        _ => {}
    }
    let mut body = obj(top, &mut mix).into_bytes();
    if p.mutation == 12 {
        body.truncate(body.len() / 2);
    }
    let json_len = body.len();
    if tail.is_empty() {
        (body, None)
    } else {
        body.extend(tail);
        (body, Some(json_len))
    }
}

fn same_input(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn compare(
    s: &Schema,
    old: Result<reference::Decoded, String>,
    new: Result<Decoded, String>,
) -> Result<(), TestCaseError> {
    let (old, new) = match (old, new) {
        (Err(_), Err(_)) => return Ok(()),
        (Ok(_), Err(e)) => return Err(TestCaseError::fail(format!("new refused: {e}"))),
        (Err(e), Ok(_)) => return Err(TestCaseError::fail(format!("new accepted; old: {e}"))),
        (Ok(o), Ok(n)) => (o, n),
    };
    prop_assert!(
        same_input(&old.input, &new.input),
        "{:?} vs {:?}",
        old.input,
        new.input
    );
    prop_assert_eq!(old.rows, new.rows);
    prop_assert_eq!(old.timeout, new.timeout);
    let new_id: Option<String> = new.id.as_deref().map(|t| serde_json::from_str(t).unwrap());
    prop_assert_eq!(old.id, new_id);
    let new_outputs: Vec<(usize, bool)> = new.outputs.iter(s.outputs.len()).collect();
    let old_outputs: Vec<(usize, bool)> = if old.binary.is_empty() {
        old.outputs.iter().map(|i| (*i, false)).collect()
    } else {
        old.outputs
            .iter()
            .copied()
            .zip(old.binary.iter().copied())
            .collect()
    };
    prop_assert_eq!(old_outputs, new_outputs);
    match (old.entities, new.entities) {
        (None, None) => {}
        (Some(o), Some(n)) => {
            prop_assert_eq!(&n.keys, &vec![KeyColumn::Int(o.ids.clone())]);
            let w = s.width();
            for r in 0..old.rows {
                for c in 0..w {
                    prop_assert_eq!(
                        o.provided[r * w + c],
                        n.provided(w, r, c),
                        "row {} col {}",
                        r,
                        c
                    );
                }
            }
        }
        (o, n) => prop_assert!(false, "entities {:?} vs {:?}", o, n),
    }
    Ok(())
}

/// v1 instances for the same plan: objects (shuffled keys; keyed ones may leave online
/// features out) or arrays, categorical values as names or codes.
fn render_records(p: &Plan) -> Vec<u8> {
    let mut mix = Mix(p.seed);
    let mut instances = Vec::new();
    for (r, row) in p.rows.iter().enumerate() {
        let term = if (p.seed >> r) & 1 == 0 {
            J::Str(TERMS[row.term].into())
        } else {
            J::Num(row.term as f64)
        };
        let owner = if p.owner_bool {
            J::Bool(row.owner)
        } else {
            J::Num(f64::from(u8::from(row.owner)))
        };
        let region = J::Str(REGIONS[row.region].into());
        if p.tensor && !p.keyed {
            let vals = [income(row), owner, term, region];
            let mut texts: Vec<String> = vals.iter().map(J::text).collect();
            if p.mutation == 9 && r == 0 {
                texts.push("1".into());
            }
            instances.push(format!("[{}]", texts.join(",")));
        } else {
            let mut fields = vec![("owner", owner.text()), ("term", term.text())];
            if !(p.keyed && p.omit & 1 != 0) {
                fields.push(("income", income(row).text()));
            }
            if !(p.keyed && p.omit & 2 != 0) {
                fields.push(("region", region.text()));
            }
            if p.keyed {
                fields.push((ENTITY, row.id.to_string()));
            }
            match (p.mutation, r) {
                (0, 0) => fields.push(("bogus", "1".into())),
                (1, 0) => fields.retain(|(k, _)| *k != "term"),
                (2, 0) => fields[0].1 = "\"x\"".into(),
                (3, _) => fields[1].1 = "\"zz\"".into(),
                (7, 0) => fields[1].1 = "true".into(),
                (8, 0) => fields[0].1 = "null".into(),
                (10, 0) => fields[1].1 = "1.5".into(),
                (11, 0) => fields[0].1 = "1e300".into(),
                _ => {}
            }
            instances.push(obj(fields, &mut mix));
        }
    }
    let mut body = format!("{{\"instances\":[{}]}}", instances.join(",")).into_bytes();
    if p.mutation == 12 {
        body.truncate(body.len() / 2);
    }
    body
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn v2_decoder_matches_the_reference(p in plan()) {
        // Some plans carry more rows than the model takes.
        let s = schema(p.allow_missing, if p.mutation == 13 { 2 } else { 8 });
        let (body, json_len) = render(&p);
        let old = reference::decode_infer(&s, &body, json_len).map_err(|e| e.0);
        let new = decode_infer(&s, &body, json_len).map_err(|e| e.0);
        compare(&s, old, new)?;
    }

    #[test]
    fn v1_decoder_matches_the_reference(p in plan()) {
        let s = schema(p.allow_missing, if p.mutation == 13 { 2 } else { 8 });
        let body = render_records(&p);
        let old = reference::decode_records(&s, &body).map_err(|e| e.0);
        let new = decode_records(&s, &body).map_err(|e| e.0);
        compare(&s, old, new)?;
    }

    /// Any bytes: both decoders refuse or accept alike, and neither panics.
    #[test]
    fn arbitrary_bytes_are_refused_alike(body in prop::collection::vec(any::<u8>(), 0..200)) {
        let s = schema(true, 8);
        let old = reference::decode_infer(&s, &body, None).map_err(|e| e.0);
        let new = decode_infer(&s, &body, None).map_err(|e| e.0);
        compare(&s, old, new)?;
    }
}
