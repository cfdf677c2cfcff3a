//! Entity keys of any shape as `i64` ids, so the point-in-time join and materialize group,
//! hash and sort one integer whatever the key: a single INT64 join key is its own id; any
//! other key (a STRING, several join keys) is interned, its id an index into the keys seen.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, RecordBatch};
use vane_online::{EntityKey, KeyBuilder};

use crate::offline::{field_column, int64_column};
use crate::repo::{Dtype, JoinKey};
use crate::{FeatureError, entity_hash};

/// One join-key column of a batch, typed.
enum KeyColumn {
    Int(ArrayRef),
    Str(ArrayRef),
}

/// The ids of one view's entity keys.
#[derive(Debug, Clone)]
pub struct KeyIds {
    join_keys: Vec<JoinKey>,
    /// One INT64 join key: ids are the values, nothing is interned.
    direct: bool,
    ids: HashMap<EntityKey, i64>,
    keys: Vec<EntityKey>,
}

impl KeyIds {
    pub fn new(join_keys: &[JoinKey]) -> Self {
        Self {
            join_keys: join_keys.to_vec(),
            direct: matches!(join_keys, [k] if k.dtype == Dtype::Int64),
            ids: HashMap::new(),
            keys: Vec::new(),
        }
    }

    /// Whether ids are the values of a single INT64 join key.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// The id of each row of `batch`, adding keys not seen before (`None`: a null key part).
    /// `what(column)` names a column in errors.
    pub fn intern(
        &mut self,
        batch: &RecordBatch,
        what: &dyn Fn(&str) -> String,
    ) -> Result<Vec<Option<i64>>, FeatureError> {
        let (ids, keys) = (&mut self.ids, &mut self.keys);
        resolve(&self.join_keys, self.direct, batch, what, |key| {
            Some(*ids.entry(key).or_insert_with_key(|key| {
                keys.push(key.clone());
                keys.len() as i64 - 1
            }))
        })
    }

    /// The id of each row of `batch` among the keys seen so far (`None`: a null key part or a
    /// key never seen).
    pub fn find(
        &self,
        batch: &RecordBatch,
        what: &dyn Fn(&str) -> String,
    ) -> Result<Vec<Option<i64>>, FeatureError> {
        resolve(&self.join_keys, self.direct, batch, what, |key| {
            self.ids.get(&key).copied()
        })
    }

    /// The entity key of an id.
    pub fn key(&self, id: i64) -> EntityKey {
        if self.direct {
            EntityKey::int(id)
        } else {
            self.keys[id as usize].clone()
        }
    }

    /// The hash materialize shards by: [`entity_hash`] of the value for a single INT64 key
    /// (as before composite keys), else [`key_hash`] of the encoded key.
    pub fn shard_hash(&self, id: i64) -> u64 {
        if self.direct {
            entity_hash(id)
        } else {
            key_hash(self.keys[id as usize].as_bytes())
        }
    }
}

/// Each row's id: the value of a single INT64 key, else `id_of` its encoded key.
fn resolve(
    join_keys: &[JoinKey],
    direct: bool,
    batch: &RecordBatch,
    what: &dyn Fn(&str) -> String,
    mut id_of: impl FnMut(EntityKey) -> Option<i64>,
) -> Result<Vec<Option<i64>>, FeatureError> {
    let cols = columns(join_keys, batch, what)?;
    if direct {
        return Ok(match &cols[0] {
            KeyColumn::Int(a) => a.as_primitive::<Int64Type>().iter().collect(),
            KeyColumn::Str(a) => vec![None; a.len()],
        });
    }
    let mut b = KeyBuilder::new();
    Ok((0..batch.num_rows())
        .map(|i| build(&mut b, &cols, i).and_then(&mut id_of))
        .collect())
}

/// A stable hash of an encoded entity key (SplitMix64 steps over its bytes, 8 at a time).
/// Part of the sharding contract, like [`entity_hash`]: never change it.
pub fn key_hash(bytes: &[u8]) -> u64 {
    let mut h = bytes.len() as u64;
    for chunk in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = entity_hash((h ^ u64::from_le_bytes(w)) as i64);
    }
    h
}

fn columns(
    join_keys: &[JoinKey],
    batch: &RecordBatch,
    what: &dyn Fn(&str) -> String,
) -> Result<Vec<KeyColumn>, FeatureError> {
    join_keys
        .iter()
        .map(|k| {
            let col = batch.column_by_name(&k.name).ok_or_else(|| {
                FeatureError::Invalid(format!("{}: missing (a join key)", what(&k.name)))
            })?;
            Ok(match k.dtype {
                Dtype::String => KeyColumn::Str(field_column(col, Dtype::String, &what(&k.name))?),
                Dtype::Int64 | Dtype::Fp64 => KeyColumn::Int(int64_column(col, &what(&k.name))?),
            })
        })
        .collect()
}

/// Row `i`'s key, or `None` when a part is null.
fn build(b: &mut KeyBuilder, cols: &[KeyColumn], i: usize) -> Option<EntityKey> {
    for c in cols {
        match c {
            KeyColumn::Int(a) => {
                if a.is_null(i) {
                    b.finish();
                    return None;
                }
                b.int(a.as_primitive::<Int64Type>().value(i));
            }
            KeyColumn::Str(a) => {
                if a.is_null(i) {
                    b.finish();
                    return None;
                }
                b.str(a.as_string::<i32>().value(i));
            }
        }
    }
    Some(b.finish())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use vane_online::KeyValue;

    use super::*;

    fn batch(ids: Vec<Option<i64>>, names: Vec<Option<&str>>) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("a", DataType::Int64, true),
                Field::new("m", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    fn jk(name: &str, dtype: Dtype) -> JoinKey {
        JoinKey {
            name: name.into(),
            dtype,
        }
    }

    #[test]
    fn composite_keys_intern_and_find() {
        let what = |c: &str| format!("column {c:?}");
        let mut k = KeyIds::new(&[jk("a", Dtype::Int64), jk("m", Dtype::String)]);
        assert!(!k.is_direct());
        let b = batch(
            vec![Some(1), Some(1), Some(2), None, Some(1)],
            vec![Some("x"), Some("y"), Some("x"), Some("x"), Some("x")],
        );
        let ids = k.intern(&b, &what).unwrap();
        assert_eq!(ids, [Some(0), Some(1), Some(2), None, Some(0)]);
        assert_eq!(
            k.key(1),
            EntityKey::new(&[KeyValue::Int(1), KeyValue::Str("y".into())])
        );
        let probe = batch(vec![Some(2), Some(2)], vec![Some("x"), Some("y")]);
        assert_eq!(k.find(&probe, &what).unwrap(), [Some(2), None]);
        let e = KeyIds::new(&[jk("zz", Dtype::String)])
            .find(&b, &what)
            .unwrap_err();
        assert!(e.to_string().contains("column \"zz\": missing"), "{e}");
        // A string key over an integer column is a type error naming the column.
        let e = KeyIds::new(&[jk("a", Dtype::String)])
            .find(&b, &what)
            .unwrap_err();
        assert!(e.to_string().contains("column \"a\""), "{e}");
    }

    #[test]
    fn single_int64_keys_are_their_own_ids() {
        let what = |c: &str| format!("column {c:?}");
        let mut k = KeyIds::new(&[jk("a", Dtype::Int64)]);
        assert!(k.is_direct());
        let b = batch(vec![Some(7), None], vec![None, None]);
        assert_eq!(k.intern(&b, &what).unwrap(), [Some(7), None]);
        assert_eq!(k.key(7), EntityKey::int(7));
        assert_eq!(k.shard_hash(7), entity_hash(7));
    }

    #[test]
    fn key_hash_is_pinned() {
        // Shards of workers of different builds must agree.
        assert_eq!(
            key_hash(EntityKey::str("acme").as_bytes()),
            0x3413_f4f1_20b2_f177
        );
        // Even shards over similar string keys.
        let mut counts = [0u32; 4];
        for i in 0..40_000 {
            counts[(key_hash(EntityKey::str(&format!("m{i}")).as_bytes()) % 4) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }
}
