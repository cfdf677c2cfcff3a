//! Reading feature view sources (Parquet) into sorted, indexed Arrow tables.

use std::path::Path;

use crate::repo::{Dtype, FeatureRepo, FeatureView};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchReader, UInt32Array};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReader;

use super::{FeatureError, IdMap};
use crate::keys::KeyIds;

/// Rows per batch when reading Parquet.
const READ_BATCH: usize = 64 * 1024;

/// Reads `columns` (all columns if `None`) of a Parquet file as one batch per row group
/// chunk. A missing column is an error listing the file's columns.
pub fn read_parquet(
    path: &Path,
    columns: Option<&[&str]>,
) -> Result<Vec<RecordBatch>, FeatureError> {
    read_parquet_with_schema(path, columns).map(|(_, b)| b)
}

/// [`read_parquet`] as one batch (e.g. an entity data frame).
pub fn read_parquet_table(
    path: &Path,
    columns: Option<&[&str]>,
) -> Result<RecordBatch, FeatureError> {
    let (schema, batches) = read_parquet_with_schema(path, columns)?;
    Ok(arrow_select::concat::concat_batches(&schema, &batches)?)
}

fn read_parquet_with_schema(
    path: &Path,
    columns: Option<&[&str]>,
) -> Result<(arrow_schema::SchemaRef, Vec<RecordBatch>), FeatureError> {
    let (_, reader) = open_projected(path, columns, READ_BATCH)?;
    let schema = reader.schema();
    let batches = reader
        .map(|b| {
            b.map_err(|e| FeatureError::Read {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((schema, batches))
}

/// The one way a Parquet source is opened: its row count and a reader of `columns` (all when
/// `None`), `batch` rows at a time. A projection keeps the file's column order, not the order
/// asked for: read the batches' columns by name. A missing column is an error listing the
/// file's columns.
pub(crate) fn open_projected(
    path: &Path,
    columns: Option<&[&str]>,
    batch: usize,
) -> Result<(u64, ParquetRecordBatchReader), FeatureError> {
    use vane_tabular::TableError;
    vane_tabular::open_parquet(path, columns, batch).map_err(|e| FeatureError::Read {
        path: path.to_path_buf(),
        message: match e {
            TableError::MissingColumn {
                column, available, ..
            } => format!("no column {column:?} (columns: {available:?})"),
            TableError::Read { message, .. } => message,
            other => other.to_string(),
        },
    })
}

/// Timestamps of a column as microseconds since the epoch (`None`: null). Accepts Arrow
/// timestamps of any unit (any time zone: the instant is what counts) and `Int64` (taken as
/// microseconds).
pub(crate) fn timestamps_us(col: &dyn Array, what: &str) -> Result<Vec<Option<i64>>, FeatureError> {
    let scale = |v: i64, unit: TimeUnit| match unit {
        TimeUnit::Second => v.saturating_mul(1_000_000),
        TimeUnit::Millisecond => v.saturating_mul(1_000),
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v.div_euclid(1_000),
    };
    let unit = match col.data_type() {
        DataType::Timestamp(u, _) => *u,
        DataType::Int64 => TimeUnit::Microsecond,
        other => {
            return Err(FeatureError::Invalid(format!(
                "{what} has type {other}; expected a timestamp (or Int64 microseconds)"
            )));
        }
    };
    let ints = strict_cast(col, &DataType::Int64, what)?;
    let ints = ints.as_primitive::<Int64Type>();
    Ok(ints.iter().map(|v| v.map(|v| scale(v, unit))).collect())
}

/// An Int64 view of an integer column (cast if needed).
pub(crate) fn int64_column(col: &ArrayRef, what: &str) -> Result<ArrayRef, FeatureError> {
    match col.data_type() {
        DataType::Int64 => Ok(col.clone()),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => strict_cast(col, &DataType::Int64, what),
        other => Err(FeatureError::Invalid(format!(
            "{what} has type {other}; expected an integer (INT64) column"
        ))),
    }
}

/// A field column converted to its declared dtype's Arrow type.
pub(crate) fn field_column(
    col: &ArrayRef,
    dtype: Dtype,
    what: &str,
) -> Result<ArrayRef, FeatureError> {
    let dt = col.data_type();
    let (target, ok) = match dtype {
        Dtype::Fp64 => (DataType::Float64, dt.is_numeric()),
        Dtype::Int64 => (DataType::Int64, dt.is_integer()),
        Dtype::String => (
            DataType::Utf8,
            matches!(
                dt,
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Dictionary(_, _)
            ),
        ),
    };
    if !ok {
        return Err(FeatureError::Invalid(format!(
            "{what} has type {dt}, which does not fit its declared dtype {dtype}"
        )));
    }
    if *dt == target {
        Ok(col.clone())
    } else {
        strict_cast(col, &target, what)
    }
}

/// A lossless widening cast; a value the target cannot hold (a UInt64 past i64::MAX) is an
/// error naming the column, never a silent null.
pub(crate) fn strict_cast(
    col: &dyn Array,
    target: &DataType,
    what: &str,
) -> Result<ArrayRef, FeatureError> {
    let options = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    arrow_cast::cast_with_options(col, target, &options).map_err(|e| {
        FeatureError::Invalid(format!(
            "{what}: a {} value does not fit {target}: {e}",
            col.data_type()
        ))
    })
}

/// One feature view's rows, ordered by (entity, event timestamp, created timestamp, source
/// position), with an index from entity id to its rows. Rows with a null join key or a null
/// event timestamp are dropped (they can never match).
#[derive(Debug, Clone)]
pub struct ViewTable {
    view: FeatureView,
    /// Per row, the entity's id in `ids`.
    keys: Vec<i64>,
    ids: KeyIds,
    ts: Vec<i64>,
    /// Created timestamps (`i64::MIN` for null or when the view has none).
    created: Vec<i64>,
    fields: Vec<String>,
    columns: Vec<ArrayRef>,
    /// Entity id → `[start, end)` of its rows.
    groups: IdMap<(u32, u32)>,
    source_rows: usize,
}

impl ViewTable {
    /// Reads the view's source (only the join key, timestamps and `fields`; all fields if
    /// `None`).
    pub fn load(
        repo: &FeatureRepo,
        view: &FeatureView,
        fields: Option<&[&str]>,
    ) -> Result<Self, FeatureError> {
        let fields: Vec<&str> = match fields {
            Some(f) => f.to_vec(),
            None => view.fields.iter().map(|f| f.name.as_str()).collect(),
        };
        let mut cols: Vec<&str> = view.join_key_names();
        cols.push(view.timestamp_field.as_str());
        cols.extend(view.created_timestamp_field.as_deref());
        cols.extend(fields.iter().copied());
        let path = repo.source_path(view);
        let batches = read_parquet(&path, Some(&cols))?;
        Self::from_batches(view, &batches, Some(&fields)).map_err(|e| match e {
            FeatureError::Invalid(m) => FeatureError::Read {
                path: path.clone(),
                message: m,
            },
            other => other,
        })
    }

    /// Builds the table from in-memory batches holding the view's columns (by name).
    pub fn from_batches(
        view: &FeatureView,
        batches: &[RecordBatch],
        fields: Option<&[&str]>,
    ) -> Result<Self, FeatureError> {
        let fields: Vec<String> = match fields {
            Some(f) => f.iter().map(|s| s.to_string()).collect(),
            None => view.fields.iter().map(|f| f.name.clone()).collect(),
        };
        let at = |c: &str| format!("feature view {:?}: column {c:?}", view.name);
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        let mut ids = KeyIds::new(&view.join_keys);
        let mut keys = Vec::with_capacity(n);
        let mut ts = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        let mut kept: Vec<u32> = Vec::with_capacity(n);
        let mut field_parts: Vec<Vec<ArrayRef>> =
            vec![Vec::with_capacity(batches.len()); fields.len()];
        let mut pos: u32 = 0;
        for b in batches {
            let col = |c: &str| {
                b.column_by_name(c)
                    .cloned()
                    .ok_or_else(|| FeatureError::Invalid(format!("{}: missing", at(c))))
            };
            let k = ids.intern(b, &at)?;
            let t = timestamps_us(
                col(&view.timestamp_field)?.as_ref(),
                &at(&view.timestamp_field),
            )?;
            let c = match &view.created_timestamp_field {
                Some(c) => Some(timestamps_us(col(c)?.as_ref(), &at(c))?),
                None => None,
            };
            for i in 0..b.num_rows() {
                if let (Some(k), Some(t)) = (k[i], t[i]) {
                    keys.push(k);
                    ts.push(t);
                    created.push(c.as_ref().and_then(|c| c[i]).unwrap_or(i64::MIN));
                    kept.push(pos);
                }
                pos += 1;
            }
            for (parts, name) in field_parts.iter_mut().zip(&fields) {
                let (_, f) = view.field(name).ok_or_else(|| {
                    FeatureError::Invalid(format!(
                        "feature view {:?} has no field {name:?}",
                        view.name
                    ))
                })?;
                parts.push(field_column(&col(name)?, f.dtype, &at(name))?);
            }
        }
        if n > u32::MAX as usize {
            return Err(FeatureError::Invalid(format!(
                "feature view {:?}: {n} rows is more than one table holds (2^32)",
                view.name
            )));
        }
        let mut columns: Vec<ArrayRef> = field_parts
            .iter()
            .map(|parts| {
                let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                match refs.len() {
                    0 => Ok(arrow_array::new_empty_array(&DataType::Null)),
                    1 => Ok(parts[0].clone()),
                    _ => arrow_select::concat::concat(&refs),
                }
            })
            .collect::<Result<_, _>>()?;
        // Fix the type of empty tables' columns.
        if batches.is_empty() {
            for (c, name) in columns.iter_mut().zip(&fields) {
                let dtype = view
                    .field(name)
                    .map(|(_, f)| f.dtype)
                    .unwrap_or(Dtype::Fp64);
                *c = arrow_array::new_empty_array(&match dtype {
                    Dtype::Fp64 => DataType::Float64,
                    Dtype::Int64 => DataType::Int64,
                    Dtype::String => DataType::Utf8,
                });
            }
        }

        // Order by (key, ts, created, position) unless the source already is (datagen writes
        // each entity's rows together, in time order) and no row was dropped.
        let sorted = kept.len() == n
            && (1..keys.len())
                .all(|i| (keys[i - 1], ts[i - 1], created[i - 1]) <= (keys[i], ts[i], created[i]));
        if !sorted {
            let mut order: Vec<(i64, i64, i64, u32)> = (0..keys.len())
                .map(|i| (keys[i], ts[i], created[i], kept[i]))
                .collect();
            order.sort_unstable();
            let take_idx = UInt32Array::from_iter_values(order.iter().map(|o| o.3));
            for c in columns.iter_mut() {
                *c = arrow_select::take::take(c.as_ref(), &take_idx, None)?;
            }
            for (i, o) in order.iter().enumerate() {
                keys[i] = o.0;
                ts[i] = o.1;
                created[i] = o.2;
            }
        }

        let mut groups: IdMap<(u32, u32)> = IdMap::default();
        groups.reserve(keys.len() / 4 + 1);
        let mut start = 0usize;
        for i in 1..=keys.len() {
            if i == keys.len() || keys[i] != keys[start] {
                groups.insert(keys[start], (start as u32, i as u32));
                start = i;
            }
        }
        Ok(ViewTable {
            view: view.clone(),
            keys,
            ids,
            ts,
            created,
            fields,
            columns,
            groups,
            source_rows: n,
        })
    }

    pub fn view(&self) -> &FeatureView {
        &self.view
    }

    /// Rows kept (non-null key and timestamp).
    pub fn num_rows(&self) -> usize {
        self.keys.len()
    }

    /// Rows in the source, including dropped ones.
    pub fn source_rows(&self) -> usize {
        self.source_rows
    }

    /// Distinct entities.
    pub fn num_entities(&self) -> usize {
        self.groups.len()
    }

    /// Loaded field names, in column order.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// A loaded field's values, in table order.
    pub fn column(&self, field: &str) -> Option<&ArrayRef> {
        self.fields
            .iter()
            .position(|f| f == field)
            .map(|i| &self.columns[i])
    }

    /// How the table's entity keys map to the ids of [`ViewTable::keys`], [`ViewTable::rows_of`]
    /// and [`ViewTable::as_of`] (the key's value for one INT64 join key).
    pub fn key_ids(&self) -> &KeyIds {
        &self.ids
    }

    /// Entity ids, event and created timestamps, in table order.
    pub fn keys(&self) -> &[i64] {
        &self.keys
    }
    pub fn event_timestamps(&self) -> &[i64] {
        &self.ts
    }
    pub fn created_timestamps(&self) -> &[i64] {
        &self.created
    }

    /// The rows of one entity (`start..end` in table order).
    pub fn rows_of(&self, id: i64) -> Option<std::ops::Range<usize>> {
        self.groups.get(&id).map(|&(s, e)| s as usize..e as usize)
    }

    /// The row the point-in-time join picks for `(id, at_us)`: the entity's last row with
    /// event timestamp ≤ `at_us`, if it is within the TTL.
    #[inline]
    pub fn as_of(&self, id: i64, at_us: i64) -> Option<u32> {
        let &(s, e) = self.groups.get(&id)?;
        let ts = &self.ts[s as usize..e as usize];
        let p = ts.partition_point(|&t| t <= at_us);
        if p == 0 {
            return None;
        }
        let idx = s as usize + p - 1;
        if let Some(ttl) = self.view.ttl_us()
            && (at_us as i128 - self.ts[idx] as i128) > ttl as i128
        {
            return None;
        }
        Some(idx as u32)
    }

    /// Schema-free access for tests: the Arc'd columns.
    pub fn columns(&self) -> &[ArrayRef] {
        &self.columns
    }
}

#[cfg(test)]
mod cast_tests {
    use std::sync::Arc;

    use arrow_array::UInt64Array;

    use super::*;

    #[test]
    fn widening_never_turns_an_overflow_into_a_null() {
        let fits: ArrayRef = Arc::new(UInt64Array::from(vec![1u64, 7]));
        let ints = int64_column(&fits, "column \"id\"").unwrap();
        assert_eq!(ints.as_primitive::<Int64Type>().values(), &[1, 7]);
        let past: ArrayRef = Arc::new(UInt64Array::from(vec![1u64, u64::MAX]));
        let err = int64_column(&past, "column \"id\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"id\"") && err.contains("UInt64"), "{err}");
    }
}
