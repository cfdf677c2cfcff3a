//! The embedded online store: one [redb](https://docs.rs/redb) file.
//!
//! Tables: `vane_schemas` (view → schema JSON), `vane_meta` (key → bytes) and one rows table
//! per view (→ row, see [`crate::codec`]): `rows:<view>` keyed by `i64` for a view whose key
//! is a single INT64 (as every view was before composite keys, so those stores read as they
//! are), `rows.k2:<view>` keyed by the encoded [`EntityKey`] for any other key. A fixed-width
//! `i64` key keeps the common lookup as fast as it was: byte-string keys cost redb about a
//! quarter more per lookup (BENCHMARKS.md). A write batch is
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

/// The table of a view keyed by a single INT64.
fn int_table_name(view: &str) -> String {
    format!("rows:{view}")
}

/// The table of a view with any other key.
fn bytes_table_name(view: &str) -> String {
    format!("rows.k2:{view}")
}

/// Where one key's row lives: by value in an `i64` table, or by its encoding.
enum RowKey<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

fn row_key(key: &EntityKey) -> RowKey<'_> {
    match key.single_int() {
        Some(id) => RowKey::Int(id),
        None => RowKey::Bytes(key.as_bytes()),
    }
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
    /// Writes each row unless the stored one has a later event timestamp; returns how many
    /// it wrote.
    fn write_newest<'k, K>(
        &self,
        t: &mut redb::Table<'_, K, &'static [u8]>,
        rows: impl Iterator<Item = (K::SelfType<'k>, &'k FeatureRow)>,
    ) -> Result<usize, StoreError>
    where
        K: redb::Key + 'static,
        K::SelfType<'k>: std::borrow::Borrow<K::SelfType<'k>> + Clone,
    {
        let mut stored = 0;
        let mut buf = Vec::with_capacity(256);
        for (key, row) in rows {
            let older = match t.get(key.clone()).map_err(|e| self.err(e))? {
                Some(old) => codec::row_event_ts(old.value())? > row.event_ts_us,
                None => false,
            };
            if older {
                continue;
            }
            buf.clear();
            codec::encode_row(row, &mut buf);
            t.insert(key, buf.as_slice()).map_err(|e| self.err(e))?;
            stored += 1;
        }
        Ok(stored)
    }
}

impl OnlineStore for EmbeddedStore {
    fn describe(&self) -> String {
        format!("embedded redb {}", self.path.display())
    }

    fn write_schema(&self, view: &str, schema: &ViewSchema) -> Result<(), StoreError> {
        check_schema(view, schema)?;
        self.put_bytes(SCHEMAS, view, &encode_schema(schema))
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
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let stored = if rows[0].0.single_int().is_some() {
            let name = int_table_name(view);
            let mut t = txn
                .open_table(TableDefinition::<i64, &[u8]>::new(&name))
                .map_err(|e| self.err(e))?;
            let keyed = rows
                .iter()
                .map(|(k, r)| (k.single_int().unwrap_or_default(), r));
            self.write_newest(&mut t, keyed)?
        } else {
            let name = bytes_table_name(view);
            let mut t = txn
                .open_table(TableDefinition::<&[u8], &[u8]>::new(&name))
                .map_err(|e| self.err(e))?;
            self.write_newest(&mut t, rows.iter().map(|(k, r)| (k.as_bytes(), r)))?
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(stored)
    }

    fn read_batch(
        &self,
        view: &str,
        keys: &[EntityKey],
    ) -> Result<Vec<Option<FeatureRow>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let open = |name: String| -> Result<Option<_>, StoreError> {
            match txn.open_table(TableDefinition::<i64, &[u8]>::new(&name)) {
                Ok(t) => Ok(Some(t)),
                Err(TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(self.err(e)),
            }
        };
        let open_bytes = |name: String| -> Result<Option<_>, StoreError> {
            match txn.open_table(TableDefinition::<&[u8], &[u8]>::new(&name)) {
                Ok(t) => Ok(Some(t)),
                Err(TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(self.err(e)),
            }
        };
        // A view has one key shape: one table serves the batch; a key of another shape than
        // the view's finds nothing.
        let (mut ints, mut bytes) = (None, None);
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let got = match row_key(key) {
                RowKey::Int(id) => {
                    if ints.is_none() {
                        ints = Some(open(int_table_name(view))?);
                    }
                    match ints.as_ref().and_then(Option::as_ref) {
                        Some(t) => t
                            .get(id)
                            .map_err(|e| self.err(e))?
                            .map(|g| decode_row(g.value())),
                        None => None,
                    }
                }
                RowKey::Bytes(b) => {
                    if bytes.is_none() {
                        bytes = Some(open_bytes(bytes_table_name(view))?);
                    }
                    match bytes.as_ref().and_then(Option::as_ref) {
                        Some(t) => t
                            .get(b)
                            .map_err(|e| self.err(e))?
                            .map(|g| decode_row(g.value())),
                        None => None,
                    }
                }
            };
            out.push(got.transpose()?);
        }
        Ok(out)
    }

    fn read_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_bytes(META, key)
    }

    fn write_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.put_bytes(META, key, value)
    }
}
