//! `vane-online`: the online feature store, where the batch jobs (`vane-features`
//! materialize) and the server meet.
//!
//! Principal types:
//! - [`OnlineStore`]: latest feature row per (view, entity key); implementations in
//!   [`embedded`] (a single redb file, the default) and [`redis`]. Writers never let an older
//!   row replace a newer one; readers get the event timestamp to check staleness.
//! - [`lookup`]: the batched read the server uses, with TTL checks ([`Lookup`]).
//! - [`open_store`]: a path → [`embedded::EmbeddedStore`], `redis://…` →
//!   [`redis::RedisStore`]. Both share the row and schema formats of [`codec`].
//! - [`EntityKey`]: a view's join-key values (INT64 and STRING, one or several), encoded in
//!   the versioned key format of [`key`]; [`ViewSchema`]: a view's keys and fields as stored.
//!
//! Errors: [`StoreError::Unavailable`] (store down, locked, timed out: the server answers 503),
//! [`StoreError::Corrupt`] (stored bytes it cannot decode), [`StoreError::Invalid`] (the
//! caller's mistake: bad spec, rows that do not fit the view's schema). Nothing here panics on
//! a store that misbehaves.

pub mod codec;
pub mod embedded;
pub mod key;
pub mod redis;
#[doc(hidden)]
pub mod testing;

use std::fmt;
use std::sync::Arc;

pub use key::{EntityKey, KeyBuilder, KeyKind, KeyValue};

/// One feature value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// Every numeric feature, as f64.
    Num(f64),
    /// A categorical (string) feature.
    Str(String),
}

/// The latest values of one view for one entity, in the view's field order, with the event
/// timestamp they are valid from (microseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    pub event_ts_us: i64,
    pub values: Vec<Value>,
}

/// A key or field of a materialized view, as stored beside its rows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredField {
    pub name: String,
    /// Fields: `NUMERIC` or `STRING`; keys: `INT64` or `STRING`.
    pub kind: String,
}

impl StoredField {
    pub fn new(name: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: kind.into(),
        }
    }
}

/// A view's layout as stored beside its rows: its join keys, in key order, and its fields, in
/// row order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSchema {
    /// [`key::KEY_FORMAT`] for views written by this build; 1 for a view written before
    /// composite keys (one INT64 key, its name not recorded, `keys` empty).
    pub key_format: u8,
    pub keys: Vec<StoredField>,
    pub fields: Vec<StoredField>,
}

impl ViewSchema {
    /// A layout in the current key format.
    pub fn new(keys: Vec<StoredField>, fields: Vec<StoredField>) -> Self {
        Self {
            key_format: key::KEY_FORMAT,
            keys,
            fields,
        }
    }

    /// The kinds of the keys (`INT64` for an unparsable kind: `check_schema` refuses those).
    pub fn key_kinds(&self) -> Vec<KeyKind> {
        if self.key_format == 1 {
            return vec![KeyKind::Int64];
        }
        self.keys
            .iter()
            .map(|k| KeyKind::parse(&k.kind).unwrap_or(KeyKind::Int64))
            .collect()
    }

    /// Whether rows stored under `self` read correctly under `new`: same fields and keys (a
    /// format-1 layout fits any single-INT64-key layout with its fields: writing `new` moves
    /// its rows to the current key format).
    pub fn fits(&self, new: &ViewSchema) -> bool {
        self.fields == new.fields
            && if self.key_format == 1 {
                new.key_kinds() == [KeyKind::Int64]
            } else {
                self.keys == new.keys
            }
    }
}

/// Online store failures. `Unavailable` is what the server maps to 503.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("online store unavailable: {0}")]
    Unavailable(String),
    #[error("online store data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
}

/// Latest feature rows per (view, entity).
pub trait OnlineStore: Send + Sync {
    /// Where the store lives, for logs.
    fn describe(&self) -> String;
    /// Records the layout of `view` (written by materialize before its rows).
    fn write_schema(&self, view: &str, schema: &ViewSchema) -> Result<(), StoreError>;
    /// The layout of `view`, if it was ever materialized.
    fn read_schema(&self, view: &str) -> Result<Option<ViewSchema>, StoreError>;
    /// Writes rows, keeping for each entity whichever row has the later event timestamp (an
    /// older row never replaces a newer one). Keys must fit the view's stored keys. Returns
    /// how many rows were stored.
    fn write_batch(
        &self,
        view: &str,
        rows: &[(EntityKey, FeatureRow)],
    ) -> Result<usize, StoreError>;
    /// The stored row of each key, in order (`None`: never materialized).
    fn read_batch(
        &self,
        view: &str,
        keys: &[EntityKey],
    ) -> Result<Vec<Option<FeatureRow>>, StoreError>;
    /// A small bookkeeping value stored beside the rows (e.g. where incremental
    /// materialization stopped), if any.
    fn read_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = key;
        Err(StoreError::Invalid(format!(
            "{} keeps no metadata",
            self.describe()
        )))
    }
    /// Stores a bookkeeping value (replacing any previous one).
    fn write_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let _ = (key, value);
        Err(StoreError::Invalid(format!(
            "{} keeps no metadata",
            self.describe()
        )))
    }
}

/// Opens an online store from its spec: `redis://host:port[/db]` (also `rediss://` is
/// refused: no TLS support compiled in; `redis+unix:///socket`) → [`redis::RedisStore`]
/// (connects lazily); anything else is a file path → [`embedded::EmbeddedStore`] (created if
/// missing).
pub fn open_store(spec: &str) -> Result<Arc<dyn OnlineStore>, StoreError> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(StoreError::Invalid("online store spec is empty".into()));
    }
    if spec.starts_with("rediss://") {
        return Err(StoreError::Invalid(
            "rediss:// (TLS) is not supported by this build; use redis:// inside the cluster network".into(),
        ));
    }
    if spec.starts_with("redis://")
        || spec.starts_with("redis+unix://")
        || spec.starts_with("unix://")
    {
        return Ok(Arc::new(redis::RedisStore::open(spec)?));
    }
    if spec.contains("://") {
        return Err(StoreError::Invalid(format!(
            "online store {spec:?}: unknown scheme (use a file path or redis://host:port[/db])"
        )));
    }
    Ok(Arc::new(embedded::EmbeddedStore::open(spec)?))
}

/// Outcome of one lookup (Feast's statuses).
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Present(FeatureRow),
    NotFound,
    /// Older than the view's TTL at lookup time.
    OutsideMaxAge(FeatureRow),
}

/// A TTL in seconds as microseconds, saturating: a TTL too large for i64 means "never stale",
/// not a negative age limit that makes every row stale.
pub fn ttl_us(ttl_s: u64) -> i64 {
    i64::try_from(ttl_s)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000)
}

/// Batched read with TTL staleness checked against `now_us`.
pub fn lookup(
    store: &dyn OnlineStore,
    view: &str,
    keys: &[EntityKey],
    ttl_s: Option<u64>,
    now_us: i64,
) -> Result<Vec<Lookup>, StoreError> {
    Ok(store
        .read_batch(view, keys)?
        .into_iter()
        .map(|r| match r {
            None => Lookup::NotFound,
            Some(row) => match ttl_s.map(ttl_us) {
                Some(ttl) if now_us.saturating_sub(row.event_ts_us) > ttl => {
                    Lookup::OutsideMaxAge(row)
                }
                _ => Lookup::Present(row),
            },
        })
        .collect())
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Num(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_arithmetic_saturates() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path().join("s.redb").to_str().unwrap()).unwrap();
        store
            .write_schema(
                "v",
                &ViewSchema::new(
                    vec![StoredField::new("id", "INT64")],
                    vec![StoredField::new("x", "NUMERIC")],
                ),
            )
            .unwrap();
        let row = FeatureRow {
            event_ts_us: 0,
            values: vec![Value::Num(1.0)],
        };
        store.write_batch("v", &[(7.into(), row)]).unwrap();
        let now = 10 * 86_400 * 1_000_000;
        let at = |ttl| {
            lookup(&*store, "v", &[7.into()], ttl, now)
                .unwrap()
                .remove(0)
        };
        // A TTL past i64 microseconds is "never stale", not a negative limit.
        assert!(matches!(at(Some(u64::MAX)), Lookup::Present(_)));
        assert!(matches!(
            at(Some(i64::MAX as u64 / 1000)),
            Lookup::Present(_)
        ));
        assert!(matches!(at(None), Lookup::Present(_)));
        assert!(matches!(at(Some(86_400)), Lookup::OutsideMaxAge(_)));
        assert_eq!(ttl_us(u64::MAX), i64::MAX);
    }
}
