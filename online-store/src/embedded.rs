//! The embedded online store: one [redb](https://docs.rs/redb) file.
//!
//! Tables: `vane_schemas` (view → schema JSON), `vane_meta` (key → bytes) and one
//! `rows.k2:<view>` table per view (encoded [`EntityKey`] → row, see [`crate::codec`]). Stores
//! written before composite keys hold `rows:<view>` tables keyed by `i64` (key format 1):
//! they are read as they are, and moved to `rows.k2:` when a schema is next written. A write batch is
//! one transaction that compares each row's event timestamp with the stored one inside the
//! transaction, so an older row never replaces a newer one, whatever the number of writers.
//!
//! The file is opened in redb's multi-writer mode: the server (reading) and any number of
//! `materialize` processes may have it open at once; redb serializes their write transactions
//! and readers see each commit.

use std::path::{Path, PathBuf};

use redb::{
    ConcurrencyMode, Database, ReadableDatabase, ReadableTable, TableDefinition, TableError,
};

use crate::codec::{self, check_rows, check_schema, decode_row, decode_schema, encode_schema};
use crate::{EntityKey, FeatureRow, OnlineStore, StoreError, ViewSchema};

const SCHEMAS: TableDefinition<&str, &[u8]> = TableDefinition::new("vane_schemas");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("vane_meta");

fn rows_table_name(view: &str) -> String {
    format!("rows.k2:{view}")
}

/// The table of a view stored in key format 1.
fn legacy_table_name(view: &str) -> String {
    format!("rows:{view}")
}

/// Maps a redb failure: damaged data → `Corrupt`, everything else (I/O, locks) → `Unavailable`.
fn db_err(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    let e: redb::Error = e.into();
    let msg = format!("{}: {e}", path.display());
    match e {
        redb::Error::Corrupted(_)
        | redb::Error::UpgradeRequired(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_) => StoreError::Corrupt(msg),
        _ => StoreError::Unavailable(msg),
    }
}

/// The online store in a single redb file.
pub struct EmbeddedStore {
    path: PathBuf,
    db: Database,
}

impl EmbeddedStore {
    /// Opens the store at `path`, creating the file if it does not exist (its folder must).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if path.is_dir() {
            return Err(StoreError::Invalid(format!(
                "online store {} is a directory; give a file path",
                path.display()
            )));
        }
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::MultiWriter)
            .create(&path)
            .map_err(|e| db_err(&path, e))?;
        Ok(Self { path, db })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        db_err(&self.path, e)
    }

    fn get_bytes(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = match txn.open_table(table) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        let v = t.get(key).map_err(|e| self.err(e))?;
        Ok(v.map(|g| g.value().to_vec()))
    }

    fn put_bytes(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = txn.open_table(table).map_err(|e| self.err(e))?;
            t.insert(key, value).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }
}

impl EmbeddedStore {
    /// Reads a view stored in key format 1 (`i64` keys), if that is how it is stored.
    fn read_legacy(
        &self,
        txn: &redb::ReadTransaction,
        view: &str,
        keys: &[EntityKey],
    ) -> Result<Vec<Option<FeatureRow>>, StoreError> {
        let name = legacy_table_name(view);
        let def: TableDefinition<i64, &[u8]> = TableDefinition::new(&name);
        let t = match txn.open_table(def) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(vec![None; keys.len()]),
            Err(e) => return Err(self.err(e)),
        };
        keys.iter()
            .map(|k| {
                let id = k.single_int().ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "view {view:?} was stored by an older Vane with one INT64 key (key format 1), \
                         so it has no row for key {k}; materialize it again"
                    ))
                })?;
                t.get(id)
                    .map_err(|e| self.err(e))?
                    .map(|g| decode_row(g.value()))
                    .transpose()
            })
            .collect()
    }

    /// Moves a view's rows from key format 1 to the current one, inside `txn`.
    fn upgrade_keys(&self, txn: &redb::WriteTransaction, view: &str) -> Result<(), StoreError> {
        let old_name = legacy_table_name(view);
        let old_def: TableDefinition<i64, &[u8]> = TableDefinition::new(&old_name);
        let name = rows_table_name(view);
        let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(&name);
        {
            let old = txn.open_table(old_def).map_err(|e| self.err(e))?;
            let mut new = txn.open_table(def).map_err(|e| self.err(e))?;
            for entry in old.iter().map_err(|e| self.err(e))? {
                let (k, v) = entry.map_err(|e| self.err(e))?;
                new.insert(EntityKey::int(k.value()).as_bytes(), v.value())
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.delete_table(old_def).map_err(|e| self.err(e))?;
        Ok(())
    }
}

impl OnlineStore for EmbeddedStore {
    fn describe(&self) -> String {
        format!("embedded redb {}", self.path.display())
    }

    fn write_schema(&self, view: &str, schema: &ViewSchema) -> Result<(), StoreError> {
        check_schema(view, schema)?;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut schemas = txn.open_table(SCHEMAS).map_err(|e| self.err(e))?;
            let old = match schemas.get(view).map_err(|e| self.err(e))? {
                Some(b) => Some(decode_schema(b.value())?),
                None => None,
            };
            if old.is_some_and(|o| o.key_format == 1) {
                self.upgrade_keys(&txn, view)?;
            }
            schemas
                .insert(view, encode_schema(schema).as_slice())
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn read_schema(&self, view: &str) -> Result<Option<ViewSchema>, StoreError> {
        self.get_bytes(SCHEMAS, view)?
            .map(|b| decode_schema(&b))
            .transpose()
    }

    fn write_batch(
        &self,
        view: &str,
        rows: &[(EntityKey, FeatureRow)],
    ) -> Result<usize, StoreError> {
        let schema = self.read_schema(view)?;
        check_rows(view, schema.as_ref(), rows)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let name = rows_table_name(view);
        let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(&name);
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let mut stored = 0;
        {
            let mut t = txn.open_table(def).map_err(|e| self.err(e))?;
            let mut buf = Vec::with_capacity(256);
            for (key, row) in rows {
                let older = match t.get(key.as_bytes()).map_err(|e| self.err(e))? {
                    Some(old) => codec::row_event_ts(old.value())? > row.event_ts_us,
                    None => false,
                };
                if older {
                    continue;
                }
                buf.clear();
                codec::encode_row(row, &mut buf);
                t.insert(key.as_bytes(), buf.as_slice())
                    .map_err(|e| self.err(e))?;
                stored += 1;
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(stored)
    }

    fn read_batch(
        &self,
        view: &str,
        keys: &[EntityKey],
    ) -> Result<Vec<Option<FeatureRow>>, StoreError> {
        let name = rows_table_name(view);
        let def: TableDefinition<&[u8], &[u8]> = TableDefinition::new(&name);
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = match txn.open_table(def) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return self.read_legacy(&txn, view, keys),
            Err(e) => return Err(self.err(e)),
        };
        keys.iter()
            .map(|k| {
                t.get(k.as_bytes())
                    .map_err(|e| self.err(e))?
                    .map(|g| decode_row(g.value()))
                    .transpose()
            })
            .collect()
    }

    fn read_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_bytes(META, key)
    }

    fn write_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.put_bytes(META, key, value)
    }
}
