//! `vane-models join`: a feature service's point-in-time training set, written to a file —
//! Feast's `get_historical_features(...).to_df()` as a command. Useful to inspect what a
//! model was trained on, to build drift references (`vane-monitor profile` / `compare`) and
//! load-test datasets (`vane-loadtest --data`).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema};

use crate::train::{TrainSpec, service_training_set};
use anyhow::{Context, Result, bail};

/// Arguments of `vane-models join`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example (also `vane features join …`):
  vane-models join --repo data/features.toml --data data/applications.parquet --out joined.parquet")]
pub struct Args {
    /// Feature repository (TOML).
    #[arg(long, env = "VANE_FEATURE_REPO")]
    pub repo: PathBuf,
    /// Feature service (default: the repository's only service).
    #[arg(long, env = "VANE_FEATURE_SERVICE")]
    pub service: Option<String>,
    /// Entity table (Parquet): join key, `event_timestamp`, and any columns to carry along.
    #[arg(long)]
    pub data: PathBuf,
    /// Output: `.parquet` or `.csv`.
    #[arg(long)]
    pub out: PathBuf,
}

/// The CSV writer formats named time zones only with chrono-tz; "UTC" is the "+00:00" offset.
fn utc_as_offset(b: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(b.num_columns());
    let mut columns = Vec::with_capacity(b.num_columns());
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        match f.data_type() {
            DataType::Timestamp(unit, Some(tz)) if tz.eq_ignore_ascii_case("utc") => {
                let dt = DataType::Timestamp(*unit, Some("+00:00".into()));
                columns.push(arrow_cast::cast(c, &dt)?);
                fields.push(Field::new(f.name(), dt, f.is_nullable()));
            }
            _ => {
                columns.push(c.clone());
                fields.push(f.as_ref().clone());
            }
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

pub fn run(args: Args) -> Result<()> {
    let mut spec = TrainSpec::default();
    let set = service_training_set(&args.repo, args.service.as_deref(), &args.data, &mut spec)?;
    let Some(first) = set.batches.first() else {
        bail!("the join produced no rows");
    };
    let schema = first.schema();
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    }
    let file = File::create(&args.out).with_context(|| args.out.display().to_string())?;
    let ext = args
        .out
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let rows: usize = set.batches.iter().map(|b| b.num_rows()).sum();
    match ext.as_str() {
        "parquet" | "pq" => {
            let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
            for b in &set.batches {
                w.write(b)?;
            }
            w.close()?;
        }
        "csv" => {
            let mut w = arrow_csv::Writer::new(file);
            for b in &set.batches {
                w.write(&utc_as_offset(b)?)?;
            }
        }
        other => bail!(
            "{}: unknown output format {other:?}; use .parquet or .csv",
            args.out.display()
        ),
    }
    eprintln!(
        "joined {rows} rows × {} columns -> {}",
        first.num_columns(),
        args.out.display()
    );
    Ok(())
}
