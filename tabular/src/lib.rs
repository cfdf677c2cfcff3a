//! `vane-tabular`: reads the tables Vane's batch tools take — CSV (header row, types
//! inferred, pandas' missing-value markers such as an empty field, `NA` or `NaN` are null
//! ([`CSV_NULLS`]), an unnamed header column is `Unnamed: i`), Parquet, and JSON Lines (one
//! object per line) — by file extension.
//!
//! Two views of a file:
//! - [`read_batches`]: Arrow [`RecordBatch`]es (CSV and Parquet), for code that works on
//!   Arrow (training, the feature store);
//! - [`read_table`]: a [`Table`] of named [`Column`]s, each either numeric (`f64`, NaN =
//!   null) or text (`Option<String>`), for code that only needs values (the drift monitor's
//!   `profile` and `compare`, the load tester's datasets). Columns come back in the order the
//!   caller asked for, looked up by name.
//!
//! [`open_parquet`] streams a Parquet file's columns, found by name: the one
//! open-with-projection every crate uses (the feature store's join and materialize too).
//!
//! Errors ([`TableError`]) name the file and, where it applies, the column.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReader;

/// Rows per batch when reading files.
const BATCH_ROWS: usize = 64 * 1024;

/// CSV fields read as null: pandas' default `na_values` (what `pandas.read_csv` treats as
/// missing), so that tables written by pandas, R (`NA`) or spreadsheets read the same here.
pub const CSV_NULLS: &[&str] = &[
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

fn csv_format() -> arrow_csv::reader::Format {
    let alternatives: Vec<String> = CSV_NULLS.iter().map(|s| regex::escape(s)).collect();
    let nulls = regex::Regex::new(&format!("^(?:{})$", alternatives.join("|")))
        .expect("a valid pattern of escaped literals");
    arrow_csv::reader::Format::default()
        .with_header(true)
        .with_null_regex(nulls)
}

/// Why a table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("{}: no column {column:?} (columns: {})", path.display(), available.join(", "))]
    MissingColumn {
        path: PathBuf,
        column: String,
        available: Vec<String>,
    },
    #[error("{}: unknown table format {ext:?}; expected .csv, .parquet (.pq) or .jsonl (.ndjson)", path.display())]
    Format { path: PathBuf, ext: String },
}

/// The file formats, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
    JsonLines,
}

impl Format {
    pub fn of(path: &Path) -> Result<Format, TableError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        match ext.as_str() {
            "csv" => Ok(Format::Csv),
            "parquet" | "pq" => Ok(Format::Parquet),
            "jsonl" | "ndjson" => Ok(Format::JsonLines),
            _ => Err(TableError::Format {
                path: path.to_path_buf(),
                ext,
            }),
        }
    }
}

/// Values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Numbers (integers, floats, decimals, booleans as 0/1); NaN = null.
    Numeric(Vec<f64>),
    /// Text (and anything else, printed: timestamps as ISO-8601); `None` = null.
    Text(Vec<Option<String>>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Numeric(v) => v.len(),
            Column::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The column as text: numbers printed as they would be typed (`3`, not `3.0`); null
    /// stays `None`. For numeric code columns a caller treats as categories.
    pub fn to_text(&self) -> Vec<Option<String>> {
        match self {
            Column::Text(v) => v.clone(),
            Column::Numeric(v) => v
                .iter()
                .map(|x| (!x.is_nan()).then(|| format_number(*x)))
                .collect(),
        }
    }
}

/// A number as a person (and JSON) would write it: no `.0` on integers.
pub fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// A named column.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedColumn {
    pub name: String,
    pub data: Column,
}

/// A whole table in memory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub rows: usize,
    pub columns: Vec<NamedColumn>,
}

impl Table {
    /// The named column.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.data)
    }

    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }
}

/// Reads a CSV or Parquet file as Arrow batches. With `columns`, only those are read (in file
/// order; callers look columns up by name); a name the file lacks is an error listing the
/// file's columns.
pub fn read_batches(
    path: &Path,
    columns: Option<&[String]>,
) -> Result<Vec<RecordBatch>, TableError> {
    let read_err = |e: &dyn std::fmt::Display| TableError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let format = Format::of(path)?;
    let file = File::open(path).map_err(|e| read_err(&e))?;
    match format {
        Format::Csv => {
            let csv = csv_format();
            let mut file = file;
            let (schema, _) = csv
                .infer_schema(BufReader::new(&mut file), None)
                .map_err(|e| read_err(&e))?;
            file.rewind().map_err(|e| read_err(&e))?;
            // An empty header cell (pandas' index column) gets pandas' name for it.
            let schema = arrow_schema::Schema::new(
                schema
                    .fields()
                    .iter()
                    .enumerate()
                    .map(|(i, f)| match f.name().is_empty() {
                        true => f.as_ref().clone().with_name(format!("Unnamed: {i}")),
                        false => f.as_ref().clone(),
                    })
                    .collect::<Vec<_>>(),
            );
            let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            let mut builder = arrow_csv::ReaderBuilder::new(Arc::new(schema))
                .with_format(csv)
                .with_batch_size(BATCH_ROWS);
            if let Some(cols) = columns {
                builder = builder.with_projection(projection(path, &names, cols)?);
            }
            let reader = builder.build(file).map_err(|e| read_err(&e))?;
            reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| read_err(&e))
        }
        Format::Parquet => {
            let (_, reader) = open_parquet(path, columns, BATCH_ROWS)?;
            reader
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| read_err(&e))
        }
        Format::JsonLines => Err(read_err(
            &"JSON Lines files are read with read_table, not as Arrow batches",
        )),
    }
}

/// Opens a Parquet file for streaming reads of `columns` (every column when `None`), found
/// by name: the file's row count and a reader of `batch_rows`-row batches. Batches hold the
/// columns in file order, not in the order asked for: look them up by name.
pub fn open_parquet<S: AsRef<str>>(
    path: &Path,
    columns: Option<&[S]>,
    batch_rows: usize,
) -> Result<(u64, ParquetRecordBatchReader), TableError> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let read_err = |e: &dyn std::fmt::Display| TableError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = File::open(path).map_err(|e| read_err(&e))?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| read_err(&e))?
        .with_batch_size(batch_rows);
    let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
    if let Some(cols) = columns {
        let names: Vec<String> = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), projection(path, &names, cols)?);
        builder = builder.with_projection(mask);
    }
    Ok((rows, builder.build().map_err(|e| read_err(&e))?))
}

/// Indices of `wanted` in `names`, ascending (file order).
fn projection<S: AsRef<str>>(
    path: &Path,
    names: &[String],
    wanted: &[S],
) -> Result<Vec<usize>, TableError> {
    let mut idx = Vec::with_capacity(wanted.len());
    for w in wanted {
        let w = w.as_ref();
        match names.iter().position(|n| n == w) {
            Some(i) => idx.push(i),
            None => {
                return Err(TableError::MissingColumn {
                    path: path.to_path_buf(),
                    column: w.to_string(),
                    available: names.to_vec(),
                });
            }
        }
    }
    idx.sort_unstable();
    idx.dedup();
    Ok(idx)
}

/// Reads a CSV, Parquet or JSON Lines file as a [`Table`]. With `columns`, exactly those
/// columns, in that order; otherwise every column in file order (JSON Lines: in order of
/// first appearance).
pub fn read_table(path: &Path, columns: Option<&[String]>) -> Result<Table, TableError> {
    let mut table = match Format::of(path)? {
        Format::JsonLines => read_json_lines(path)?,
        _ => from_batches(path, &read_batches(path, columns)?)?,
    };
    if let Some(cols) = columns {
        let mut by_name: BTreeMap<String, Column> =
            table.columns.drain(..).map(|c| (c.name, c.data)).collect();
        let available: Vec<String> = by_name.keys().cloned().collect();
        for name in cols {
            let data = by_name
                .remove(name)
                .ok_or_else(|| TableError::MissingColumn {
                    path: path.to_path_buf(),
                    column: name.clone(),
                    available: available.clone(),
                })?;
            table.columns.push(NamedColumn {
                name: name.clone(),
                data,
            });
        }
    }
    Ok(table)
}

fn from_batches(path: &Path, batches: &[RecordBatch]) -> Result<Table, TableError> {
    let Some(first) = batches.first() else {
        return Ok(Table::default());
    };
    let schema = first.schema();
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(i).as_ref()).collect();
        let data = convert(path, field.name(), field.data_type(), &arrays)?;
        columns.push(NamedColumn {
            name: field.name().clone(),
            data,
        });
    }
    Ok(Table { rows, columns })
}

fn is_numeric(dt: &DataType) -> bool {
    use DataType::*;
    matches!(
        dt,
        Null | Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float16
            | Float32
            | Float64
            | Decimal32(..)
            | Decimal64(..)
            | Decimal128(..)
            | Decimal256(..)
    )
}

fn convert(
    path: &Path,
    name: &str,
    dt: &DataType,
    arrays: &[&dyn Array],
) -> Result<Column, TableError> {
    let err = |e: &dyn std::fmt::Display| TableError::Read {
        path: path.to_path_buf(),
        message: format!("column {name:?}: {e}"),
    };
    if is_numeric(dt) {
        let mut out = Vec::with_capacity(arrays.iter().map(|a| a.len()).sum());
        for a in arrays {
            let f = arrow_cast::cast(*a, &DataType::Float64).map_err(|e| err(&e))?;
            let f = f.as_primitive::<Float64Type>();
            out.extend((0..f.len()).map(|i| if f.is_null(i) { f64::NAN } else { f.value(i) }));
        }
        return Ok(Column::Numeric(out));
    }
    let mut out = Vec::with_capacity(arrays.iter().map(|a| a.len()).sum());
    for a in arrays {
        // Named time zones ("UTC") format only with chrono-tz; the instants are UTC anyway.
        let naive = without_time_zone(*a);
        let a: &dyn Array = naive.as_deref().unwrap_or(*a);
        let fmt = ArrayFormatter::try_new(a, &FormatOptions::default()).map_err(|e| err(&e))?;
        out.extend((0..a.len()).map(|i| (!a.is_null(i)).then(|| fmt.value(i).to_string())));
    }
    Ok(Column::Text(out))
}

/// A timestamp array with a time zone, as the same UTC instants without one.
fn without_time_zone(a: &dyn Array) -> Option<Arc<dyn Array>> {
    use arrow_array::types::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    use arrow_schema::TimeUnit;
    let DataType::Timestamp(unit, Some(_)) = a.data_type() else {
        return None;
    };
    let none = None::<String>;
    Some(match unit {
        TimeUnit::Second => Arc::new(
            a.as_primitive::<TimestampSecondType>()
                .clone()
                .with_timezone_opt(none),
        ),
        TimeUnit::Millisecond => Arc::new(
            a.as_primitive::<TimestampMillisecondType>()
                .clone()
                .with_timezone_opt(none),
        ),
        TimeUnit::Microsecond => Arc::new(
            a.as_primitive::<TimestampMicrosecondType>()
                .clone()
                .with_timezone_opt(none),
        ),
        TimeUnit::Nanosecond => Arc::new(
            a.as_primitive::<TimestampNanosecondType>()
                .clone()
                .with_timezone_opt(none),
        ),
    })
}

/// One JSON value, as read before a column's kind is known.
enum Cell {
    Null,
    Num(f64),
    Text(String),
}

fn read_json_lines(path: &Path) -> Result<Table, TableError> {
    let err = |line: usize, e: &dyn std::fmt::Display| TableError::Read {
        path: path.to_path_buf(),
        message: format!("line {line}: {e}"),
    };
    let file = File::open(path).map_err(|e| err(0, &e))?;
    let mut names: Vec<String> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut cells: Vec<Vec<Cell>> = Vec::new();
    let mut rows = 0usize;
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| err(n + 1, &e))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line).map_err(|e| err(n + 1, &e))?;
        let serde_json::Value::Object(obj) = value else {
            return Err(err(n + 1, &"expected a JSON object"));
        };
        for (k, v) in obj {
            let c = *index.entry(k.clone()).or_insert_with(|| {
                names.push(k.clone());
                cells.push(Vec::new());
                names.len() - 1
            });
            let col = &mut cells[c];
            while col.len() < rows {
                col.push(Cell::Null);
            }
            col.push(match v {
                serde_json::Value::Null => Cell::Null,
                serde_json::Value::Bool(b) => Cell::Num(f64::from(u8::from(b))),
                serde_json::Value::Number(x) => Cell::Num(x.as_f64().unwrap_or(f64::NAN)),
                serde_json::Value::String(s) => Cell::Text(s),
                other => Cell::Text(other.to_string()),
            });
        }
        rows += 1;
    }
    let columns = names
        .into_iter()
        .zip(cells)
        .map(|(name, mut col)| {
            while col.len() < rows {
                col.push(Cell::Null);
            }
            let text = col.iter().any(|c| matches!(c, Cell::Text(_)));
            let data = if text {
                Column::Text(
                    col.into_iter()
                        .map(|c| match c {
                            Cell::Null => None,
                            Cell::Num(x) => Some(format_number(x)),
                            Cell::Text(s) => Some(s),
                        })
                        .collect(),
                )
            } else {
                Column::Numeric(
                    col.into_iter()
                        .map(|c| match c {
                            Cell::Num(x) => x,
                            _ => f64::NAN,
                        })
                        .collect(),
                )
            };
            NamedColumn { name, data }
        })
        .collect();
    Ok(Table { rows, columns })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_columns_are_typed_and_ordered_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(
            &p,
            "id,income,purpose\n1,50000.5,car\n2,,medical\n3,72000,\n",
        )
        .unwrap();
        let t = read_table(&p, Some(&["purpose".into(), "income".into()])).unwrap();
        assert_eq!(t.rows, 3);
        assert_eq!(t.names(), ["purpose", "income"]);
        assert_eq!(
            t.column("purpose"),
            Some(&Column::Text(vec![
                Some("car".into()),
                Some("medical".into()),
                None
            ]))
        );
        let Some(Column::Numeric(income)) = t.column("income") else {
            panic!()
        };
        assert_eq!(income[0], 50000.5);
        assert!(income[1].is_nan());
        let err = read_table(&p, Some(&["nope".into()])).unwrap_err();
        assert!(err.to_string().contains("nope") && err.to_string().contains("income"));
        let all = read_table(&p, None).unwrap();
        assert_eq!(all.names(), ["id", "income", "purpose"]);
        assert_eq!(
            all.column("id").unwrap().to_text(),
            [Some("1".into()), Some("2".into()), Some("3".into())]
        );
    }

    #[test]
    fn csv_reads_pandas_missing_markers_as_null_and_names_the_index_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        // As pandas' `to_csv` writes a frame with its index, and R writes NA.
        std::fs::write(
            &p,
            ",income,dependents,home,note\n0,5000,2,RENT,none\n1,NA,NaN,NA,None\n2,,N/A,OWN,\n3,7000.5,null,<NA>,ok\n",
        )
        .unwrap();
        let t = read_table(&p, None).unwrap();
        assert_eq!(
            t.names(),
            ["Unnamed: 0", "income", "dependents", "home", "note"]
        );
        let Some(Column::Numeric(income)) = t.column("income") else {
            panic!("income is numeric: {:?}", t.column("income"))
        };
        assert_eq!(income[0], 5000.0);
        assert!(income[1].is_nan() && income[2].is_nan());
        assert_eq!(income[3], 7000.5);
        let Some(Column::Numeric(dependents)) = t.column("dependents") else {
            panic!()
        };
        assert_eq!(dependents[0], 2.0);
        assert!(dependents[1..].iter().all(|d| d.is_nan()));
        assert_eq!(
            t.column("home").unwrap().to_text(),
            [Some("RENT".into()), None, Some("OWN".into()), None]
        );
        // pandas' markers are exact and case-sensitive: `none` is a value, `None` is missing.
        assert_eq!(
            t.column("note").unwrap().to_text(),
            [Some("none".into()), None, None, Some("ok".into())]
        );
        let batches = read_batches(&p, Some(&["Unnamed: 0".into()])).unwrap();
        assert_eq!(batches[0].num_columns(), 1);
    }

    #[test]
    fn json_lines_union_keys_and_infer_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        std::fs::write(
            &p,
            "{\"a\": 1, \"b\": \"x\"}\n\n{\"a\": 2.5, \"c\": true}\n{\"b\": 3}\n",
        )
        .unwrap();
        let t = read_table(&p, None).unwrap();
        assert_eq!(t.rows, 3);
        assert_eq!(t.names(), ["a", "b", "c"]);
        let Some(Column::Numeric(a)) = t.column("a") else {
            panic!()
        };
        assert_eq!(a[..2], [1.0, 2.5]);
        assert!(a[2].is_nan());
        assert_eq!(
            t.column("b"),
            Some(&Column::Text(vec![
                Some("x".into()),
                None,
                Some("3".into())
            ]))
        );
        let Some(Column::Numeric(c)) = t.column("c") else {
            panic!()
        };
        assert!(c[0].is_nan() && c[1] == 1.0 && c[2].is_nan());
        std::fs::write(&p, "[1, 2]\n").unwrap();
        assert!(
            read_table(&p, None)
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
    }

    #[test]
    fn utc_timestamps_read_as_text() {
        use arrow_array::TimestampMicrosecondArray;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let ts = TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_000), None])
            .with_timezone("UTC");
        let batch =
            RecordBatch::try_from_iter([("event_timestamp", Arc::new(ts) as Arc<dyn Array>)])
                .unwrap();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(File::create(&p).unwrap(), batch.schema(), None)
                .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let t = read_table(&p, None).unwrap();
        assert_eq!(
            t.column("event_timestamp"),
            Some(&Column::Text(vec![
                Some("2023-11-14T22:13:20".into()),
                None
            ]))
        );
    }

    #[test]
    fn unknown_extensions_are_refused() {
        let err = read_table(Path::new("data.xlsx"), None).unwrap_err();
        assert!(err.to_string().contains("xlsx"), "{err}");
    }
}
