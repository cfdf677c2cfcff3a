//! A scanner for the plain requests that make up almost all traffic: an object with only
//! `inputs`, each input with only `name`, `datatype`, `shape` and then `data` (nested arrays
//! of numbers, booleans, `null` and strings), no escapes, no non-ASCII bytes, numbers in the
//! range where every JSON parser gives the same `f64`. It writes values through the same
//! [`Sink`] as the full parser, without serde's per-value dispatch.
//!
//! It gives up (`None`) at the first thing outside that subset and on any error; the full
//! parser then reads the request from the start and reports every error, so both paths
//! accept the same requests with the same result (checked by the `fast_path` tests).

use std::borrow::Cow;

use super::{Ctx, Input, MAX_RANK, Shape, target_of};
use crate::columns::{Buffers, MAX_NESTING, Sink, Val, check_string};
use crate::schema::Schema;

/// Below 2^53 a significand is exact in an `f64`, as are powers of ten up to 10^22: their
/// product or quotient is then the correctly rounded value, which is what serde_json (with or
/// without `float_roundtrip`) returns for such a number.
const EXACT_SIGNIFICAND: u64 = 1 << 53;
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];
/// Digits a `u64` significand holds without overflow.
const MAX_DIGITS: u32 = 19;

/// Parses `json` if it is a plain request; `None` hands it to the full parser.
pub(super) fn parse<'s, 'de>(schema: &'s Schema, json: &'de [u8]) -> Option<Ctx<'s, 'de>> {
    let mut ctx = Ctx::new(schema);
    let mut sc = Scan { b: json, i: 0 };
    sc.eat(b'{')?;
    loop {
        if sc.str()? != "inputs" || ctx.saw_inputs {
            return None;
        }
        sc.eat(b':')?;
        ctx.saw_inputs = true;
        sc.inputs(&mut ctx)?;
        if !sc.next(b'}')? {
            break;
        }
    }
    sc.ws();
    (sc.i == json.len()).then_some(ctx)
}

struct Scan<'de> {
    b: &'de [u8],
    i: usize,
}

impl<'de> Scan<'de> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// After a member of an object or array closed by `close`: true on `,` (another follows),
    /// false on `close`.
    #[inline]
    fn next(&mut self, close: u8) -> Option<bool> {
        let c = self.peek()?;
        self.i += 1;
        match c {
            b',' => Some(true),
            c if c == close => Some(false),
            _ => None,
        }
    }

    /// A string of printable ASCII without escapes.
    fn str(&mut self) -> Option<&'de str> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' | 0..=0x1f | 0x80..=0xff => return None,
                _ => self.i += 1,
            }
        }
        let s = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        self.i += 1;
        Some(s)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// A number in the exact range (see [`EXACT_SIGNIFICAND`]), as serde_json reads it.
    fn num(&mut self) -> Option<f64> {
        let neg = self.b.get(self.i) == Some(&b'-');
        if neg {
            self.i += 1;
        }
        let mut sig = 0u64;
        let mut digits = 0;
        if self.b.get(self.i) == Some(&b'0') {
            // JSON allows one leading zero only.
            self.i += 1;
            digits = 1;
            if self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                return None;
            }
        } else {
            while let Some(c @ b'0'..=b'9') = self.b.get(self.i).copied() {
                if digits == MAX_DIGITS {
                    return None;
                }
                sig = sig * 10 + u64::from(c - b'0');
                digits += 1;
                self.i += 1;
            }
        }
        if digits == 0 {
            return None;
        }
        let mut exp = 0i32;
        let mut float = false;
        if self.b.get(self.i) == Some(&b'.') {
            float = true;
            self.i += 1;
            let mut frac = 0;
            while let Some(c @ b'0'..=b'9') = self.b.get(self.i).copied() {
                if digits == MAX_DIGITS {
                    return None;
                }
                sig = sig * 10 + u64::from(c - b'0');
                digits += 1;
                frac += 1;
                self.i += 1;
            }
            if frac == 0 {
                return None;
            }
            exp = -frac;
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            float = true;
            self.i += 1;
            let negative_exp = match self.b.get(self.i) {
                Some(b'-') => {
                    self.i += 1;
                    true
                }
                Some(b'+') => {
                    self.i += 1;
                    false
                }
                _ => false,
            };
            let mut e = 0i32;
            let mut n = 0;
            while let Some(c @ b'0'..=b'9') = self.b.get(self.i).copied() {
                if n == 4 {
                    return None;
                }
                e = e * 10 + i32::from(c - b'0');
                n += 1;
                self.i += 1;
            }
            if n == 0 {
                return None;
            }
            exp += if negative_exp { -e } else { e };
        }
        // An integer is a u64 or i64 to serde_json, then converted to f64 by the visitor.
        let f = if !float {
            sig as f64
        } else {
            let p = *POW10.get(exp.unsigned_abs() as usize)?;
            if sig > EXACT_SIGNIFICAND {
                return None;
            }
            if exp >= 0 {
                sig as f64 * p
            } else {
                sig as f64 / p
            }
        };
        Some(if neg { -f } else { f })
    }

    fn shape(&mut self) -> Option<Shape> {
        self.eat(b'[')?;
        let mut shape = Shape::default();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(shape);
        }
        loop {
            if shape.len == MAX_RANK {
                return None;
            }
            shape.dims[shape.len] = self.dim()?;
            shape.len += 1;
            if !self.next(b']')? {
                return Some(shape);
            }
        }
    }

    /// A shape dimension: digits only (serde reads an `i64`; fractions and exponents are
    /// errors, negative dimensions the full parser's to report).
    fn dim(&mut self) -> Option<i64> {
        self.ws();
        let start = self.i;
        let mut v = 0i64;
        if self.b.get(self.i) == Some(&b'0') {
            self.i += 1;
        } else {
            while let Some(c @ b'0'..=b'9') = self.b.get(self.i).copied() {
                if self.i - start == 18 {
                    return None;
                }
                v = v * 10 + i64::from(c - b'0');
                self.i += 1;
            }
        }
        if self.i == start || matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E' | b'0'..=b'9')) {
            return None;
        }
        Some(v)
    }

    fn inputs(&mut self, ctx: &mut Ctx<'_, 'de>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        // Every feature, the entity key, and one more to report a duplicate (as the full parser).
        let most = ctx.schema.width() + 2;
        loop {
            self.input(ctx)?;
            if ctx.inputs.len() > most {
                return None;
            }
            if !self.next(b']')? {
                return Some(());
            }
        }
    }

    fn input(&mut self, ctx: &mut Ctx<'_, 'de>) -> Option<()> {
        let schema = ctx.schema;
        self.eat(b'{')?;
        let mut name = None;
        let mut datatype = None;
        let mut shape: Option<Shape> = None;
        let mut read = None;
        loop {
            let key = self.str()?;
            self.eat(b':')?;
            match key {
                "name" if name.is_none() => name = Some(self.str()?),
                "datatype" if datatype.is_none() => datatype = Some(self.str()?),
                "shape" if shape.is_none() => shape = Some(self.shape()?),
                // `data` before the name and datatype is the full parser's case.
                "data" if read.is_none() => {
                    let (n, dt) = (name?, datatype?);
                    let t = target_of(schema, n).ok()?;
                    let mut sink = Sink::new(schema, n, t, dt).ok()?;
                    let start = ctx.bufs.columns.len();
                    ctx.bufs.reserve(schema, t, shape.as_deref());
                    self.ws();
                    self.data(&mut ctx.bufs, &mut sink, 0)?;
                    read = Some((t, start, sink.n));
                }
                _ => return None,
            }
            if !self.next(b'}')? {
                break;
            }
        }
        let (target, start, len) = read?;
        ctx.inputs.push(Input {
            name: Cow::Borrowed(name?),
            shape: shape?,
            datatype: Cow::Borrowed(datatype?),
            binary_size: None,
            has_data: true,
            target: Some(target),
            start,
            len,
        });
        Some(())
    }

    /// An array of values (possibly nested), each written to `sink` as the full parser does:
    /// one unit of the value budget, then the value.
    fn data(&mut self, bufs: &mut Buffers, sink: &mut Sink<'_>, depth: usize) -> Option<()> {
        if depth >= MAX_NESTING || self.b.get(self.i) != Some(&b'[') {
            return None;
        }
        self.i += 1;
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            match self.peek()? {
                b'[' => self.data(bufs, sink, depth + 1)?,
                b'"' => {
                    let s = self.str()?;
                    bufs.spend().ok()?;
                    check_string(s).ok()?;
                    sink.put(bufs, Val::Str(s)).ok()?;
                }
                b't' => self.scalar(bufs, sink, b"true", Val::Bool(true))?,
                b'f' => self.scalar(bufs, sink, b"false", Val::Bool(false))?,
                b'n' => self.scalar(bufs, sink, b"null", Val::Null)?,
                _ => {
                    let x = self.num()?;
                    bufs.spend().ok()?;
                    sink.put_num(bufs, x).ok()?;
                }
            }
            if !self.next(b']')? {
                return Some(());
            }
        }
    }

    fn scalar(
        &mut self,
        bufs: &mut Buffers,
        sink: &mut Sink<'_>,
        word: &[u8],
        v: Val<'_>,
    ) -> Option<()> {
        self.literal(word)?;
        bufs.spend().ok()?;
        sink.put(bufs, v).ok()
    }
}
