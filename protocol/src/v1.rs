//! KServe v1 / TF-Serving records: `{"instances": [...]}`, each instance an object keyed by
//! feature name or an array of F values in signature order (categorical values as strings or
//! codes). Decoded in one pass, row by row, into the model input; the row limit applies
//! before a row past it is allocated.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use vane_registry::FeatureKind;

use crate::columns::{Val, bad, category, code_of, key_columns, push_key, to_f32};
use crate::json::{Str, fail, finish};
use crate::schema::Schema;
use crate::{DecodeError, Decoded, EntityRequest, KeyColumn, OutputSelection};

/// Decodes a v1 `instances` request against `schema`.
pub fn decode_records(schema: &Schema, body: &[u8]) -> Result<Decoded, DecodeError> {
    if let Some(ts) = &schema.tensors {
        return crate::tensors::decode_records(schema, ts, body);
    }
    let mut ctx = Ctx {
        schema,
        out: Vec::new(),
        rows: 0,
        keys: key_columns(schema),
        provided: Vec::new(),
        keyed: None,
        seen: vec![false; schema.width()],
        saw_instances: false,
        error: None,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = (&mut de)
        .deserialize_map(Top { ctx: &mut ctx })
        .and_then(|()| de.end());
    finish(parsed, ctx.error.take())?;
    if !ctx.saw_instances {
        return Err(bad("invalid request body: missing field `instances`"));
    }
    if ctx.rows == 0 {
        return Err(bad("empty batch: the request has 0 rows"));
    }
    let entities = (ctx.keyed == Some(true)).then_some(EntityRequest {
        keys: ctx.keys,
        provided: ctx.provided,
    });
    Ok(Decoded {
        input: ctx.out,
        tensors: Vec::new(),
        rows: ctx.rows,
        id: None,
        outputs: OutputSelection::All { binary: false },
        timeout: None,
        entities,
    })
}

struct Ctx<'s> {
    schema: &'s Schema,
    out: Vec<f32>,
    rows: usize,
    /// One column per join key (values of keyed instances).
    keys: Vec<KeyColumn>,
    /// `rows × F`: true where the instance gave the value.
    provided: Vec<bool>,
    /// Whether instances name entities (all or none do).
    keyed: Option<bool>,
    /// Features the current instance gave.
    seen: Vec<bool>,
    saw_instances: bool,
    error: Option<DecodeError>,
}

impl Ctx<'_> {
    fn keyed(&mut self, r: usize, keyed: bool) -> Result<(), DecodeError> {
        if *self.keyed.get_or_insert(keyed) != keyed {
            return Err(bad(format!(
                "instances[{r}]: either every instance names its entity ({}) or none does",
                crate::columns::list(self.schema.entity_keys().iter().map(|k| k.name.as_str()))
            )));
        }
        Ok(())
    }
}

struct Top<'c, 's> {
    ctx: &'c mut Ctx<'s>,
}

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with `instances`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Str<'de>>()? {
            if &*key.0 == "instances" {
                if std::mem::replace(&mut self.ctx.saw_instances, true) {
                    return Err(fail(
                        &mut self.ctx.error,
                        bad("field `instances` is given twice"),
                    ));
                }
                map.next_value_seed(Instances {
                    ctx: &mut *self.ctx,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct Instances<'c, 's> {
    ctx: &'c mut Ctx<'s>,
}

impl<'de> DeserializeSeed<'de> for Instances<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Instances<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of instances")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let ctx = self.ctx;
        while seq
            .next_element_seed(Instance { ctx: &mut *ctx })?
            .is_some()
        {}
        Ok(())
    }
}

/// One instance: a row appended to the model input.
struct Instance<'c, 's> {
    ctx: &'c mut Ctx<'s>,
}

impl Instance<'_, '_> {
    /// Starts row `r`, refusing one past the limit before allocating it.
    fn open(&mut self) -> Result<usize, DecodeError> {
        let s = self.ctx.schema;
        let r = self.ctx.rows;
        if r == s.max_request_rows {
            return Err(bad(format!(
                "batch of more than {r} rows exceeds this model's max_request_rows ({r})"
            )));
        }
        self.ctx.rows += 1;
        self.ctx.out.resize(self.ctx.out.len() + s.width(), 0.0);
        Ok(r)
    }
}

impl<'de> DeserializeSeed<'de> for Instance<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Instance<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an instance: an object or an array")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let r = self.open().map_err(|e| fail(&mut self.ctx.error, e))?;
        let ctx = self.ctx;
        let s = ctx.schema;
        let width = s.width();
        ctx.seen.fill(false);
        let keys = s.entity_keys();
        let mut keys_given = 0usize;
        while let Some(key) = map.next_key::<Str<'de>>()? {
            let key = key.0;
            if let Some(k) = keys.iter().position(|x| x.name == *key) {
                let what = || format!("instances[{r}].{key}");
                if ctx.keys[k].len() != ctx.provided.len() / width.max(1) {
                    return Err(fail(
                        &mut ctx.error,
                        bad(format!("{}: given twice", what())),
                    ));
                }
                map.next_value_seed(KeySeed {
                    col: &mut ctx.keys[k],
                    what: &what,
                    error: &mut ctx.error,
                })?;
                keys_given += 1;
            } else if let Some(c) = s.signature.position(&key) {
                let what = || format!("instances[{r}].{key}");
                let x = map.next_value_seed(Record {
                    schema: s,
                    col: c,
                    what: &what,
                    error: &mut ctx.error,
                })?;
                ctx.out[r * width + c] = x as f32;
                ctx.seen[c] = true;
            } else {
                return Err(fail(
                    &mut ctx.error,
                    bad(format!("instances[{r}]: unknown feature {key:?}")),
                ));
            }
        }
        let keyed = keys_given > 0;
        if keyed && keys_given < keys.len() {
            let keyed_rows = ctx.provided.len() / width.max(1);
            let absent = keys
                .iter()
                .zip(&ctx.keys)
                .filter(|(_, c)| c.len() == keyed_rows)
                .map(|(k, _)| k.name.as_str());
            return Err(fail(
                &mut ctx.error,
                bad(format!(
                    "instances[{r}]: missing join key {}",
                    crate::columns::list(absent)
                )),
            ));
        }
        ctx.keyed(r, keyed).map_err(|e| fail(&mut ctx.error, e))?;
        if let Some(c) = (0..width).find(|c| !(ctx.seen[*c] || (keyed && s.fillable[*c]))) {
            return Err(fail(
                &mut ctx.error,
                bad(format!(
                    "instances[{r}]: missing feature {:?}",
                    s.signature.inputs[c].name
                )),
            ));
        }
        if keyed {
            ctx.provided.extend_from_slice(&ctx.seen);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let r = self.open().map_err(|e| fail(&mut self.ctx.error, e))?;
        let ctx = self.ctx;
        let s = ctx.schema;
        let width = s.width();
        ctx.keyed(r, false).map_err(|e| fail(&mut ctx.error, e))?;
        for c in 0..width {
            let what = || format!("instances[{r}][{c}] ({})", s.signature.inputs[c].name);
            let x = seq.next_element_seed(Record {
                schema: s,
                col: c,
                what: &what,
                error: &mut ctx.error,
            })?;
            let Some(x) = x else {
                return Err(fail(
                    &mut ctx.error,
                    bad(format!(
                        "instances[{r}]: {c} values, the model takes {width}"
                    )),
                ));
            };
            ctx.out[r * width + c] = x as f32;
        }
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(fail(
                &mut ctx.error,
                bad(format!(
                    "instances[{r}]: more than {width} values, the model takes {width}"
                )),
            ));
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        let r = self.ctx.rows;
        Err(fail(
            &mut self.ctx.error,
            bad(format!("instances[{r}] must be an object or an array")),
        ))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.visit_unit()
    }
}

/// One join-key value of a record, appended to its column: INT64 keys exactly (any i64),
/// STRING keys as strings.
struct KeySeed<'a> {
    col: &'a mut KeyColumn,
    what: &'a dyn Fn() -> String,
    error: &'a mut Option<DecodeError>,
}

impl KeySeed<'_> {
    fn put<E: de::Error>(self, v: Val<'_>) -> Result<(), E> {
        push_key(self.col, v, self.what).map_err(|e| fail(self.error, e))
    }
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an entity key (an integer or a string)")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        match self.col {
            KeyColumn::Int(ids) => {
                ids.push(v);
                Ok(())
            }
            KeyColumn::Str(_) => self.put(Val::Num(v as f64)),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => self.put(Val::Num(v as f64)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.put(Val::Num(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.put(Val::Str(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.put(Val::Bool(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.put(Val::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        let e = bad(format!(
            "{}: an entity key is a scalar, not an array",
            (self.what)()
        ));
        Err(fail(self.error, e))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        let e = bad(format!(
            "{}: an entity key is a scalar, not an object",
            (self.what)()
        ));
        Err(fail(self.error, e))
    }
}

/// One record value, converted for feature `col`.
struct Record<'a, 's> {
    schema: &'s Schema,
    col: usize,
    what: &'a dyn Fn() -> String,
    error: &'a mut Option<DecodeError>,
}

impl Record<'_, '_> {
    fn done<E: de::Error>(self, r: Result<f32, DecodeError>) -> Result<f64, E> {
        r.map(f64::from).map_err(|e| fail(self.error, e))
    }

    fn kind(&self) -> FeatureKind {
        self.schema.signature.inputs[self.col].kind
    }

    fn expected<E: de::Error>(self) -> Result<f64, E> {
        let msg = match self.kind() {
            FeatureKind::Numeric => "expected a number",
            FeatureKind::Categorical => "expected a category string",
        };
        let e = bad(format!("{}: {msg}", (self.what)()));
        Err(fail(self.error, e))
    }

    fn number<E: de::Error>(self, v: f64) -> Result<f64, E> {
        let r = match self.kind() {
            FeatureKind::Categorical => code_of(self.schema, self.col, v, self.what),
            FeatureKind::Numeric => to_f32(v, self.what),
        };
        self.done(r)
    }
}

impl<'de> DeserializeSeed<'de> for Record<'_, '_> {
    type Value = f64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<f64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Record<'_, '_> {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a feature value")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        self.number(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        self.number(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        self.number(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<f64, E> {
        match self.kind() {
            FeatureKind::Numeric => Ok(f64::from(u8::from(v))),
            FeatureKind::Categorical => self.expected(),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match self.kind() {
            FeatureKind::Categorical => {
                let r = category(self.schema, self.col, v, self.what);
                self.done(r)
            }
            FeatureKind::Numeric => self.expected(),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
        if self.schema.allow_missing {
            return Ok(f64::NAN);
        }
        let e = bad(format!(
            "{}: null; this model does not accept missing values",
            (self.what)()
        ));
        Err(fail(self.error, e))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<f64, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.expected()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<f64, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.expected()
    }
}
