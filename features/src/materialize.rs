//! Materialization: the latest row per entity of each feature view, from the offline store
//! (the view's Parquet source) into an [`OnlineStore`].
//!
//! For each view: among source rows with an event timestamp in `[start, end)` (and, with a
//! [`Shard`], entities with `entity_hash(id) % N == i`), keep per entity the row with the
//! greatest (event timestamp, created timestamp, source position) — the row the
//! point-in-time join would pick at `end` — and write it with
//! [`OnlineStore::write_batch`], which never lets an older row replace a newer one. So
//! re-running, running shards concurrently, or materializing an older window after a newer one
//! never regresses a value. The view's schema is written first; a store holding a different
//! schema for the view is an error (rename the view, e.g. `_v2`, when its fields change).
//!
//! Two streaming passes over the source keep memory proportional to the number of entities,
//! not rows: pass 1 reads only the key and timestamps and picks the winners, pass 2 reads the
//! field columns and converts only the winners.
//!
//! **Incremental state** lives in the store itself ([`OnlineStore::write_meta`]), one key per
//! view and shard: `materialize:<view>:<i>/<N>` → `{"end_us": …, "end": "<RFC 3339>"}`,
//! recording the greatest `end` materialized (by any run, incremental or not). `--incremental`
//! starts from it (from the beginning of time if none) and ends at `--end` or now. As in
//! Feast, a row that arrives later with an event time before the recorded end is not picked up
//! by an incremental run; run a full (non-incremental) materialization to repair that.

use std::fmt;
use std::time::Instant;

use crate::repo::{Dtype, FeatureRepo, FeatureView};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vane_online::{EntityKey, FeatureRow, OnlineStore, StoreError, Value};

use crate::keys::KeyIds;
use crate::timeutil::{format_rfc3339, now_us};
use crate::{FeatureError, IdMap, field_column, timestamps_us};

/// Failures of a materialization.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    #[error(transparent)]
    Feature(#[from] FeatureError),
    #[error("online store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
}

/// Shard `index` of `count`: entities whose key hashes to `index` modulo `count`
/// ([`KeyIds::shard_hash`]: `entity_hash(id)` for a single INT64 key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The whole keyspace (`0/1`).
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    #[inline]
    pub fn contains(&self, key_hash: u64) -> bool {
        self.count <= 1 || key_hash % u64::from(self.count) == u64::from(self.index)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("shard {s:?}: expected <index>/<count> with index < count, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(err)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| err())?,
            n.trim().parse().map_err(|_| err())?,
        );
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What to materialize.
#[derive(Debug, Clone)]
pub struct MaterializeOptions {
    /// Views to materialize (`None`: all views of the repository).
    pub views: Option<Vec<String>>,
    /// Window start (inclusive; `None`: the beginning of time). Not with `incremental`.
    pub start_us: Option<i64>,
    /// Window end (exclusive; `None`: now).
    pub end_us: Option<i64>,
    /// Start each view where the last materialization of it (and this shard) ended.
    pub incremental: bool,
    pub shard: Shard,
    /// Rows per [`OnlineStore::write_batch`] call.
    pub batch_rows: usize,
    /// Draw a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
}

impl Default for MaterializeOptions {
    fn default() -> Self {
        Self {
            views: None,
            start_us: None,
            end_us: None,
            incremental: false,
            shard: Shard::ALL,
            batch_rows: 50_000,
            progress: false,
        }
    }
}

/// What happened to one view.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ViewSummary {
    pub view: String,
    /// The window `[start, end)`; `None`: from the beginning of time.
    pub start_us: Option<i64>,
    pub end_us: i64,
    /// Source rows read.
    pub scanned: u64,
    /// Rows in the window and the shard.
    pub rows: u64,
    /// Entities whose latest row was sent to the store.
    pub entities: u64,
    /// Rows the store kept (the rest were older than what it had).
    pub written: u64,
}

/// What a materialization did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MaterializeSummary {
    pub views: Vec<ViewSummary>,
    pub seconds: f64,
}

impl MaterializeSummary {
    pub fn rows(&self) -> u64 {
        self.views.iter().map(|v| v.rows).sum()
    }
    pub fn entities(&self) -> u64 {
        self.views.iter().map(|v| v.entities).sum()
    }
    pub fn written(&self) -> u64 {
        self.views.iter().map(|v| v.written).sum()
    }
    pub fn rows_per_second(&self) -> f64 {
        self.rows() as f64 / self.seconds.max(1e-9)
    }
}

impl fmt::Display for MaterializeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "materialized {} rows, {} entities, {} views in {:.2} s ({:.0} rows/s)",
            self.rows(),
            self.entities(),
            self.views.len(),
            self.seconds,
            self.rows_per_second()
        )
    }
}

/// The store key of a view's incremental state for a shard.
pub fn state_key(view: &str, shard: Shard) -> String {
    format!("materialize:{view}:{shard}")
}

/// The greatest window end materialized for `view` and `shard`, if any.
pub fn read_state(
    store: &dyn OnlineStore,
    view: &str,
    shard: Shard,
) -> Result<Option<i64>, MaterializeError> {
    let Some(bytes) = store.read_meta(&state_key(view, shard))? else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::Corrupt(format!("materialization state of {view:?}: {e}")))?;
    v.get("end_us")
        .and_then(|e| e.as_i64())
        .map(Some)
        .ok_or_else(|| {
            StoreError::Corrupt(format!("materialization state of {view:?} has no end_us")).into()
        })
}

fn write_state(
    store: &dyn OnlineStore,
    view: &str,
    shard: Shard,
    end_us: i64,
) -> Result<(), MaterializeError> {
    let end_us = match read_state(store, view, shard)? {
        Some(prev) => prev.max(end_us),
        None => end_us,
    };
    let v = serde_json::json!({"end_us": end_us, "end": format_rfc3339(end_us)});
    store.write_meta(&state_key(view, shard), v.to_string().as_bytes())?;
    Ok(())
}

/// Materializes the repository's views into `store`.
pub fn materialize(
    repo: &FeatureRepo,
    store: &dyn OnlineStore,
    opts: &MaterializeOptions,
) -> Result<MaterializeSummary, MaterializeError> {
    let t0 = Instant::now();
    if opts.incremental && opts.start_us.is_some() {
        return Err(MaterializeError::Invalid(
            "--start cannot be combined with --incremental (it starts where the last run ended)"
                .into(),
        ));
    }
    let views: Vec<&FeatureView> = match &opts.views {
        None => repo.feature_views.iter().collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                repo.view(n).ok_or_else(|| {
                    let known: Vec<&str> =
                        repo.feature_views.iter().map(|v| v.name.as_str()).collect();
                    MaterializeError::Invalid(format!(
                        "unknown feature view {n:?} (views: {known:?})"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    if views.is_empty() {
        return Err(MaterializeError::Invalid(format!(
            "{} defines no feature views",
            repo.path.display()
        )));
    }
    let end = opts.end_us.unwrap_or_else(now_us);
    let bar = progress_bar(opts.progress);
    let mut out = Vec::with_capacity(views.len());
    for view in views {
        let start = if opts.incremental {
            read_state(store, &view.name, opts.shard)?
        } else {
            opts.start_us
        };
        if start.is_some_and(|s| s >= end) {
            if opts.incremental {
                // Nothing new since the last run.
                out.push(ViewSummary {
                    view: view.name.clone(),
                    start_us: start,
                    end_us: end,
                    scanned: 0,
                    rows: 0,
                    entities: 0,
                    written: 0,
                });
                continue;
            }
            return Err(MaterializeError::Invalid(format!(
                "empty window: start {} is not before end {}",
                format_rfc3339(start.unwrap_or(i64::MIN)),
                format_rfc3339(end)
            )));
        }
        let s = materialize_view(repo, store, view, start, end, opts, &bar)?;
        write_state(store, &view.name, opts.shard, end)?;
        out.push(s);
    }
    bar.finish_and_clear();
    Ok(MaterializeSummary {
        views: out,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn progress_bar(enabled: bool) -> ProgressBar {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>20} {msg:6} [{bar:30}] {human_pos}/{human_len} rows {per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn reader_err(path: &std::path::Path, e: impl fmt::Display) -> FeatureError {
    FeatureError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Opens the view's source, projected to `columns`.
/// Column `name` of a projected batch.
fn by_name<'a>(
    batch: &'a arrow_array::RecordBatch,
    name: &str,
    path: &std::path::Path,
) -> Result<&'a ArrayRef, FeatureError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| reader_err(path, format!("no column {name:?} in the projected batch")))
}

/// Opens a view's source for `columns` (read the batches' columns with [`by_name`]).
fn open_source(
    path: &std::path::Path,
    columns: &[&str],
) -> Result<(u64, parquet::arrow::arrow_reader::ParquetRecordBatchReader), FeatureError> {
    crate::offline::open_projected(path, Some(columns), 64 * 1024)
}

fn materialize_view(
    repo: &FeatureRepo,
    store: &dyn OnlineStore,
    view: &FeatureView,
    start: Option<i64>,
    end: i64,
    opts: &MaterializeOptions,
    bar: &ProgressBar,
) -> Result<ViewSummary, MaterializeError> {
    let schema = view.stored_schema();
    if let Some(existing) = store.read_schema(&view.name)?
        && !existing.fits(&schema)
    {
        return Err(MaterializeError::Invalid(format!(
            "feature view {:?}: the online store ({}) holds another schema for it ({} fields: {:?}); \
             its rows would be misread. Materialize the changed view under a new name (e.g. {}_v2) \
             or into a fresh store",
            view.name,
            store.describe(),
            existing.fields.len(),
            existing
                .keys
                .iter()
                .chain(&existing.fields)
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>(),
            view.name
        )));
    }
    store.write_schema(&view.name, &schema)?;

    let path = repo.source_path(view);
    let at = |c: &str| format!("{}: column {c:?}", path.display());
    let lo = start.unwrap_or(i64::MIN);

    // Pass 1: the winner per entity.
    let mut key_cols = view.join_key_names();
    key_cols.push(view.timestamp_field.as_str());
    key_cols.extend(view.created_timestamp_field.as_deref());
    let (source_rows, reader) = open_source(&path, &key_cols)?;
    bar.set_prefix(view.name.clone());
    bar.set_message("scan");
    bar.set_length(source_rows);
    bar.set_position(0);
    let mut ids = KeyIds::new(&view.join_keys);
    let mut best: IdMap<(i64, i64, u64)> = IdMap::default();
    let (mut scanned, mut rows) = (0u64, 0u64);
    for batch in reader {
        let batch = batch.map_err(|e| reader_err(&path, e))?;
        // By name: a projection keeps the file's column order, not the order asked for.
        let keys = ids.intern(&batch, &at)?;
        let ts = timestamps_us(
            by_name(&batch, &view.timestamp_field, &path)?.as_ref(),
            &at(&view.timestamp_field),
        )?;
        let created = match &view.created_timestamp_field {
            Some(c) => Some(timestamps_us(by_name(&batch, c, &path)?.as_ref(), &at(c))?),
            None => None,
        };
        for i in 0..batch.num_rows() {
            let g = scanned + i as u64;
            let (Some(t), Some(k)) = (ts[i], keys[i]) else {
                continue;
            };
            if t < lo || t >= end {
                continue;
            }
            // The hash only matters with shards (and costs a few % of the scan).
            if opts.shard.count > 1 && !opts.shard.contains(ids.shard_hash(k)) {
                continue;
            }
            rows += 1;
            let c = created.as_ref().and_then(|c| c[i]).unwrap_or(i64::MIN);
            best.entry(k)
                .and_modify(|b| {
                    if (t, c) >= (b.0, b.1) {
                        *b = (t, c, g);
                    }
                })
                .or_insert((t, c, g));
        }
        scanned += batch.num_rows() as u64;
        bar.set_position(scanned);
    }
    let mut winners: Vec<(u64, i64, i64)> =
        best.into_iter().map(|(k, (t, _, g))| (g, k, t)).collect();
    drop(key_cols);
    winners.sort_unstable();
    let entities = winners.len() as u64;

    // Pass 2: the winners' values, written in batches.
    let field_names: Vec<&str> = view.fields.iter().map(|f| f.name.as_str()).collect();
    let mut written = 0u64;
    if !winners.is_empty() {
        let (_, reader) = open_source(&path, &field_names)?;
        bar.set_message("write");
        bar.set_length(entities);
        bar.set_position(0);
        let batch_rows = opts.batch_rows.max(1);
        let mut pending: Vec<(EntityKey, FeatureRow)> =
            Vec::with_capacity(batch_rows.min(winners.len()));
        let mut w = 0usize;
        let mut offset = 0u64;
        for batch in reader {
            let batch = batch.map_err(|e| reader_err(&path, e))?;
            let n = batch.num_rows() as u64;
            if w < winners.len() && winners[w].0 < offset + n {
                let cols: Vec<ArrayRef> = view
                    .fields
                    .iter()
                    .map(|f| field_column(by_name(&batch, &f.name, &path)?, f.dtype, &at(&f.name)))
                    .collect::<Result<_, _>>()?;
                while w < winners.len() && winners[w].0 < offset + n {
                    let (g, k, t) = winners[w];
                    let i = (g - offset) as usize;
                    let values = view
                        .fields
                        .iter()
                        .zip(&cols)
                        .map(|(f, c)| value_at(c.as_ref(), f.dtype, i))
                        .collect();
                    pending.push((
                        ids.key(k),
                        FeatureRow {
                            event_ts_us: t,
                            values,
                        },
                    ));
                    w += 1;
                    if pending.len() >= batch_rows {
                        written += store.write_batch(&view.name, &pending)? as u64;
                        bar.inc(pending.len() as u64);
                        pending.clear();
                    }
                }
            }
            offset += n;
            if w == winners.len() {
                break;
            }
        }
        if !pending.is_empty() {
            written += store.write_batch(&view.name, &pending)? as u64;
            bar.inc(pending.len() as u64);
        }
        if w != winners.len() {
            return Err(reader_err(&path, "the file changed while it was being read").into());
        }
    }
    Ok(ViewSummary {
        view: view.name.clone(),
        start_us: start,
        end_us: end,
        scanned,
        rows,
        entities,
        written,
    })
}

fn value_at(col: &dyn Array, dtype: Dtype, i: usize) -> Value {
    if col.is_null(i) {
        return Value::Null;
    }
    match (dtype, col.data_type()) {
        (Dtype::Fp64, DataType::Float64) => Value::Num(col.as_primitive::<Float64Type>().value(i)),
        (Dtype::Int64, DataType::Int64) => {
            Value::Num(col.as_primitive::<Int64Type>().value(i) as f64)
        }
        (Dtype::String, DataType::Utf8) => Value::Str(col.as_string::<i32>().value(i).to_owned()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_partition() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["4/4", "1", "a/2", "0/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        for id in -500..500 {
            let h = crate::entity_hash(id);
            assert_eq!(shards.iter().filter(|s| s.contains(h)).count(), 1);
            assert!(Shard::ALL.contains(h));
        }
        assert_eq!(
            state_key("v", Shard { index: 1, count: 4 }),
            "materialize:v:1/4"
        );
    }
}
