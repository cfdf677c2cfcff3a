//! The point-in-time join.

use std::sync::Arc;

use crate::repo::{FeatureRef, FeatureRepo};
use arrow_array::{Array, ArrayRef, RecordBatch, TimestampMicrosecondArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use super::FeatureError;
use super::offline::ViewTable;

/// Default name of the entity data frame's timestamp column.
pub const ENTITY_TIMESTAMP: &str = "event_timestamp";

/// Entity rows per thread below which the join runs on one thread.
const MIN_ROWS_PER_THREAD: usize = 64 * 1024;

/// Options of the point-in-time join.
#[derive(Debug, Clone)]
pub struct PitOptions {
    /// The entity data frame's timestamp column (default `event_timestamp`).
    pub timestamp_column: String,
    /// Also output, per view, the event timestamp of the row each entity row got, as
    /// `<view>__event_timestamp` (null where the features are null). Off by default (Feast
    /// has no such column); the leakage tests use it.
    pub feature_timestamps: bool,
    /// Worker threads (default: available parallelism).
    pub threads: usize,
}

impl Default for PitOptions {
    fn default() -> Self {
        Self {
            timestamp_column: ENTITY_TIMESTAMP.into(),
            feature_timestamps: false,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// The loaded tables of the views some features need.
#[derive(Debug, Clone, Default)]
pub struct OfflineStore {
    tables: Vec<ViewTable>,
}

impl OfflineStore {
    /// Loads, for each view `features` name, its source with only the named fields.
    pub fn load(repo: &FeatureRepo, features: &[FeatureRef]) -> Result<Self, FeatureError> {
        let mut views: Vec<(&str, Vec<&str>)> = Vec::new();
        for r in features {
            match views.iter_mut().find(|(v, _)| *v == r.view) {
                Some((_, fs)) => fs.push(&r.feature),
                None => views.push((&r.view, vec![&r.feature])),
            }
        }
        let mut tables = Vec::with_capacity(views.len());
        for (name, fields) in views {
            let view = repo.view(name).ok_or_else(|| {
                FeatureError::Invalid(format!(
                    "{}: unknown feature view {name:?}",
                    repo.path.display()
                ))
            })?;
            for f in &fields {
                if view.field(f).is_none() {
                    return Err(FeatureError::Invalid(format!(
                        "feature view {name:?} has no field {f:?}"
                    )));
                }
            }
            tables.push(ViewTable::load(repo, view, Some(&fields))?);
        }
        Ok(Self { tables })
    }

    /// A store over tables built elsewhere (e.g. [`ViewTable::from_batches`]).
    pub fn from_tables(tables: Vec<ViewTable>) -> Self {
        Self { tables }
    }

    pub fn table(&self, view: &str) -> Option<&ViewTable> {
        self.tables.iter().find(|t| t.view().name == view)
    }

    /// The point-in-time join with default options (see the [module](super) docs).
    pub fn get_historical_features(
        &self,
        entity_df: &RecordBatch,
        features: &[FeatureRef],
    ) -> Result<RecordBatch, FeatureError> {
        self.get_historical_features_with(entity_df, features, &PitOptions::default())
    }

    /// The point-in-time join: `entity_df`'s columns unchanged and in order, then one column
    /// per feature (named by feature, typed by its dtype: Float64, Int64 or Utf8).
    pub fn get_historical_features_with(
        &self,
        entity_df: &RecordBatch,
        features: &[FeatureRef],
        opts: &PitOptions,
    ) -> Result<RecordBatch, FeatureError> {
        let n = entity_df.num_rows();
        let ts_col = entity_df
            .column_by_name(&opts.timestamp_column)
            .ok_or_else(|| {
                FeatureError::Invalid(format!(
                    "entity data frame has no timestamp column {:?} (columns: {:?})",
                    opts.timestamp_column,
                    column_names(entity_df)
                ))
            })?;
        let row_ts = entity_timestamps(ts_col, &opts.timestamp_column)?;

        let mut fields: Vec<Field> = entity_df
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut columns: Vec<ArrayRef> = entity_df.columns().to_vec();
        let mut taken: Vec<(&str, UInt32Array)> = Vec::new();
        for r in features {
            let table = self.table(&r.view).ok_or_else(|| {
                FeatureError::Invalid(format!("feature {r}: view {:?} is not loaded", r.view))
            })?;
            let col = table.column(&r.feature).ok_or_else(|| {
                FeatureError::Invalid(format!("feature {r}: field {:?} is not loaded", r.feature))
            })?;
            if fields.iter().any(|f| f.name() == &r.feature) {
                return Err(FeatureError::Invalid(format!(
                    "feature {r}: the output already has a column {:?} (entity data frame or another feature)",
                    r.feature
                )));
            }
            let idx = match taken.iter().position(|(v, _)| *v == r.view) {
                Some(i) => &taken[i].1,
                None => {
                    let idx = pit_indices(table, entity_df, &row_ts, opts.threads)?;
                    taken.push((&r.view, idx));
                    &taken.last().expect("just pushed").1
                }
            };
            let out = arrow_select::take::take(col.as_ref(), idx, None)?;
            fields.push(Field::new(&r.feature, out.data_type().clone(), true));
            columns.push(out);
        }
        if opts.feature_timestamps {
            for (view, idx) in &taken {
                let table = self.table(view).expect("joined above");
                let name = format!("{view}__event_timestamp");
                if fields.iter().any(|f| f.name() == &name) {
                    return Err(FeatureError::Invalid(format!(
                        "the output already has a column {name:?}"
                    )));
                }
                let ts = TimestampMicrosecondArray::from(table.event_timestamps().to_vec())
                    .with_timezone("UTC");
                let out = arrow_select::take::take(&ts, idx, None)?;
                fields.push(Field::new(
                    name,
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    true,
                ));
                columns.push(out);
            }
        }
        debug_assert!(columns.iter().all(|c| c.len() == n));
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new_with_metadata(
                fields,
                entity_df.schema().metadata().clone(),
            )),
            columns,
        )?)
    }
}

/// Loads what `features` need from `repo` and joins (see the [module](super) docs).
pub fn get_historical_features(
    repo: &FeatureRepo,
    entity_df: &RecordBatch,
    features: &[FeatureRef],
) -> Result<RecordBatch, FeatureError> {
    OfflineStore::load(repo, features)?.get_historical_features(entity_df, features)
}

fn column_names(b: &RecordBatch) -> Vec<String> {
    b.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

/// Entity timestamps in µs with `i64::MIN` for null (a null timestamp matches nothing).
fn entity_timestamps(col: &ArrayRef, name: &str) -> Result<Vec<i64>, FeatureError> {
    let what = format!("entity data frame column {name:?}");
    Ok(super::offline::timestamps_us(col.as_ref(), &what)?
        .into_iter()
        .map(|t| t.unwrap_or(i64::MIN))
        .collect())
}

/// For each entity row, the table row it gets (null: none), computed on `threads` threads.
fn pit_indices(
    table: &ViewTable,
    entity_df: &RecordBatch,
    row_ts: &[i64],
    threads: usize,
) -> Result<UInt32Array, FeatureError> {
    let view = table.view();
    for k in &view.join_keys {
        if entity_df.column_by_name(&k.name).is_none() {
            return Err(FeatureError::Invalid(format!(
                "entity data frame has no join key column {:?} for feature view {:?} (columns: {:?})",
                k.name,
                view.name,
                column_names(entity_df)
            )));
        }
    }
    let at = |c: &str| format!("entity data frame column {c:?}");
    let ids = table.key_ids().find(entity_df, &at)?;
    let n = ids.len();
    let mut idx = vec![0u32; n];
    let mut valid = vec![false; n];
    let work = |lo: usize, idx: &mut [u32], valid: &mut [bool]| {
        for i in 0..idx.len() {
            let r = lo + i;
            let Some(id) = ids[r] else {
                continue;
            };
            if row_ts[r] == i64::MIN {
                continue;
            }
            if let Some(j) = table.as_of(id, row_ts[r]) {
                idx[i] = j;
                valid[i] = true;
            }
        }
    };
    let threads = threads.clamp(1, n / MIN_ROWS_PER_THREAD + 1);
    if threads == 1 {
        work(0, &mut idx, &mut valid);
    } else {
        let chunk = n.div_ceil(threads);
        std::thread::scope(|s| {
            for (c, (ic, vc)) in idx
                .chunks_mut(chunk)
                .zip(valid.chunks_mut(chunk))
                .enumerate()
            {
                let work = &work;
                s.spawn(move || work(c * chunk, ic, vc));
            }
        });
    }
    Ok(UInt32Array::new(idx.into(), Some(valid.into())))
}
