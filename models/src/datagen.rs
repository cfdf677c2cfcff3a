//! A seeded synthetic credit-risk world, written as Parquet: applicants whose profile and
//! credit activity change over time, and loan applications labelled with whether the loan
//! defaulted within 12 months.
//!
//! Files in the output folder:
//!
//! | file | rows | columns |
//! |---|---|---|
//! | `applicant_profile.parquet` | at onboarding, then every 5–14 months; ~3 % are corrected later (same event time, later created time) | `applicant_id`, `event_timestamp`, `created_timestamp`, `annual_income`, `employment_length_years`, `home_ownership`, `fico_score`, `credit_history_months`, `verification_status` |
//! | `credit_activity.parquet` | a bureau snapshot most months (some applicants report rarely) | `applicant_id`, `event_timestamp`, `created_timestamp`, `debt_to_income`, `revolving_utilization`, `delinquencies_2y`, `inquiries_6m`, `open_accounts`, `total_accounts`, `public_records`, `months_since_last_delinquency` |
//! | `applications.parquet` | `--applications` rows | `application_id`, `applicant_id`, `event_timestamp`, `loan_amount`, `term`, `purpose`, `interest_rate`, `installment`, `loan_to_income`, `default_12m` |
//! | `features.toml` | | the feature repository over these files ([`repo_toml`]) |
//! | `datagen.json` | | the configuration and summary |
//!
//! Names and vocabularies are those of [`crate::credit`]. Timestamps are microseconds, UTC.
//! Rows of one applicant are contiguous and in time order; applicants in id order.
//!
//! **The world.** Each applicant has a latent state that evolves monthly: FICO score
//! (mean-reverting, hit by delinquencies), income (raises, job changes), utilization and
//! debt-to-income (AR(1) around personal means), delinquency and inquiry events, accounts,
//! public records, home ownership, and an unobserved risk trait. Profile rows and activity
//! snapshots record that state at their event times. An application's default probability is
//! a non-linear function (thresholds on FICO, DTI and utilization; small business × low
//! income; 60-month term × high loan-to-income; new jobs; recent delinquencies) of the
//! features **as of the application time** — the latest profile and activity rows emitted
//! before it, which is what a correct point-in-time join returns — plus the unobserved trait
//! and Bernoulli noise; base rate ≈ 15 %. A default then causes delinquencies and a FICO drop
//! in later snapshots, so a join that leaks future rows would see the label.
//!
//! Nulls happen: applications shortly before an applicant's first profile row or first
//! snapshot, rare reporters whose last snapshot is older than the 90-day TTL.
//!
//! **Drift** ([`Drift`]) changes the written values of rows with an event time at or after
//! `from` (all rows without it): numeric shift (`x + s·mean`, `mean` = the feature's reference
//! mean in [`crate::credit::NUMERIC`]), numeric scale (`x·k`), a categorical's share of one
//! category (others keep their relative shares), an unseen category for a share of rows.
//! Drifted values are clamped to the feature's range. Labels come from the undrifted world,
//! and the random stream does not depend on the drift: rows before `from` are identical to
//! an undrifted run with the same seed.
//!
//! Memory stays bounded: rows go to the Parquet writers in chunks, each applicant is generated
//! and written before the next.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::builder::{
    Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::json;

use crate::credit::{CATEGORICAL, NUMERIC};
use crate::math::sigmoid;
use crate::rng::SplitMix64;
use vane_features::entity_hash;
use vane_features::timeutil::{US_PER_DAY, add_months, format_rfc3339, parse_rfc3339};

/// Average Gregorian month in µs (the simulation's time step).
pub const MONTH_US: i64 = 2_629_746_000_000;

// Column positions in `credit::NUMERIC` / `credit::CATEGORICAL` (checked by a test).
const INCOME: usize = 0;
const DTI: usize = 1;
const UTIL: usize = 2;
const DELINQ: usize = 3;
const INQ: usize = 4;
const HIST: usize = 5;
const EMP: usize = 6;
const LOAN: usize = 7;
const RATE: usize = 8;
const INST: usize = 9;
const OPEN: usize = 10;
const TOTAL: usize = 11;
const PUBREC: usize = 12;
const MSLD: usize = 13;
const FICO: usize = 14;
const LTI: usize = 15;
const TERM: usize = 0;
const PURPOSE: usize = 1;
const HOME: usize = 2;
const VERIF: usize = 3;

/// Profile TTL written to `features.toml` (also used for the summary's null shares).
pub const PROFILE_TTL_DAYS: i64 = 400;
/// Activity TTL written to `features.toml`.
pub const ACTIVITY_TTL_DAYS: i64 = 90;

/// Failures of `datagen`.
#[derive(Debug, thiserror::Error)]
pub enum DatagenError {
    #[error("{0}")]
    Invalid(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}: {message}", path.display())]
    Write { path: PathBuf, message: String },
}

/// Injected drift (see the [module](self) docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drift {
    /// Rows with an event time ≥ this are drifted; `None`: all rows.
    pub from_us: Option<i64>,
    /// `(numeric feature, s)`: `x + s·mean`.
    pub shift: Vec<(String, f64)>,
    /// `(numeric feature, k)`: `x·k`.
    pub scale: Vec<(String, f64)>,
    /// `(categorical feature, category, share)`: the category's share becomes `share`.
    pub mix: Vec<(String, String, f64)>,
    /// `(categorical feature, new category, share)`: a share of rows get a category outside
    /// the vocabulary.
    pub unseen: Vec<(String, String, f64)>,
}

impl Drift {
    pub fn is_empty(&self) -> bool {
        self.shift.is_empty()
            && self.scale.is_empty()
            && self.mix.is_empty()
            && self.unseen.is_empty()
    }

    /// Parses `name=value` (shift, scale).
    pub fn parse_numeric(spec: &str) -> Result<(String, f64), String> {
        let (name, v) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected <feature>=<number>"))?;
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| format!("{spec:?}: {v:?} is not a number"))?;
        if !v.is_finite() {
            return Err(format!("{spec:?}: not a finite number"));
        }
        Ok((name.trim().to_string(), v))
    }

    /// Parses `name=category:share` (mix; `share` required) or `name=CATEGORY[:share]`
    /// (unseen; default share 0.1).
    pub fn parse_category(
        spec: &str,
        default_share: Option<f64>,
    ) -> Result<(String, String, f64), String> {
        let (name, rest) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected <feature>=<category>:<share>"))?;
        let (cat, share) = match (rest.rsplit_once(':'), default_share) {
            (Some((c, s)), _) => (
                c,
                s.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("{spec:?}: share {s:?} is not a number"))?,
            ),
            (None, Some(d)) => (rest, d),
            (None, None) => return Err(format!("{spec:?}: expected <feature>=<category>:<share>")),
        };
        if !(0.0..=1.0).contains(&share) {
            return Err(format!("{spec:?}: share must be in [0, 1]"));
        }
        if cat.is_empty() {
            return Err(format!("{spec:?}: empty category"));
        }
        Ok((name.trim().to_string(), cat.to_string(), share))
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct DatagenConfig {
    pub out: PathBuf,
    pub applicants: usize,
    pub applications: usize,
    /// Length of the application window in months (profiles start up to 24 months earlier).
    pub months: u32,
    /// Start of the application window (µs).
    pub start_us: i64,
    pub seed: u64,
    pub drift: Drift,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Compression of the Parquet files.
    pub codec: Codec,
}

impl DatagenConfig {
    /// Defaults: 10 000 applicants, 50 000 applications, 24 months from 2024-01-01, seed 42.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            applicants: 10_000,
            applications: 50_000,
            months: 24,
            start_us: parse_rfc3339("2024-01-01").expect("valid date"),
            seed: 42,
            drift: Drift::default(),
            row_group_rows: 1 << 20,
            codec: Codec::default(),
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DatagenSummary {
    pub applicants: u64,
    pub profile_rows: u64,
    pub activity_rows: u64,
    pub applications: u64,
    pub defaults: u64,
    /// Applications whose applicant had no profile row within its TTL at application time.
    pub applications_without_profile: u64,
    /// … no activity snapshot within its TTL.
    pub applications_without_activity: u64,
    /// Window of application times `[start, end)`.
    pub start: String,
    pub end: String,
    pub seconds: f64,
}

impl DatagenSummary {
    pub fn default_rate(&self) -> f64 {
        self.defaults as f64 / self.applications.max(1) as f64
    }
    pub fn total_rows(&self) -> u64 {
        self.profile_rows + self.activity_rows + self.applications
    }
}

// ---------------------------------------------------------------------------------------------
// Drift, resolved to feature indices

#[derive(Debug, Clone, Copy, Default)]
struct NumOp {
    add: f64,
    mul: f64,
}

#[derive(Debug, Clone)]
enum CatOp {
    /// Raise the category `to` to `share` (from reference `p`).
    Raise {
        to: usize,
        p_switch: f64,
    },
    /// Lower category `from` (switch away with this probability, to others ∝ their shares).
    Lower {
        from: usize,
        p_switch: f64,
    },
    Unseen {
        name: String,
        share: f64,
    },
}

#[derive(Debug, Clone)]
struct Drifter {
    from_us: i64,
    num: [Option<NumOp>; NUMERIC.len()],
    cat: [Vec<CatOp>; CATEGORICAL.len()],
    seed: u64,
}

fn numeric_index(name: &str) -> Option<usize> {
    NUMERIC.iter().position(|f| f.name == name)
}

fn categorical_index(name: &str) -> Option<usize> {
    CATEGORICAL.iter().position(|f| f.name == name)
}

impl Drifter {
    fn new(d: &Drift, seed: u64) -> Result<Self, String> {
        let mut num: [Option<NumOp>; NUMERIC.len()] = [None; NUMERIC.len()];
        let numeric = |name: &str| {
            numeric_index(name).ok_or_else(|| {
                let names: Vec<&str> = NUMERIC.iter().map(|f| f.name).collect();
                format!("drift: {name:?} is not a numeric feature (numeric: {names:?})")
            })
        };
        for (name, s) in &d.shift {
            let i = numeric(name)?;
            let op = num[i].get_or_insert(NumOp { add: 0.0, mul: 1.0 });
            op.add += s * NUMERIC[i].mean as f64;
        }
        for (name, k) in &d.scale {
            let i = numeric(name)?;
            if *k < 0.0 {
                return Err(format!("drift: scale of {name:?} must be ≥ 0"));
            }
            let op = num[i].get_or_insert(NumOp { add: 0.0, mul: 1.0 });
            op.mul *= k;
        }
        let mut cat: [Vec<CatOp>; CATEGORICAL.len()] = Default::default();
        let categorical = |name: &str| {
            categorical_index(name).ok_or_else(|| {
                let names: Vec<&str> = CATEGORICAL.iter().map(|f| f.name).collect();
                format!("drift: {name:?} is not a categorical feature (categorical: {names:?})")
            })
        };
        for (name, c, share) in &d.mix {
            let i = categorical(name)?;
            let f = &CATEGORICAL[i];
            let k = f.vocab.iter().position(|v| v == c).ok_or_else(|| {
                format!("drift: {name:?} has no category {c:?} (vocabulary: {:?}); use --drift-unseen for new ones", f.vocab)
            })?;
            let p = f.shares[k];
            cat[i].push(if *share >= p {
                CatOp::Raise {
                    to: k,
                    p_switch: if p >= 1.0 {
                        0.0
                    } else {
                        (share - p) / (1.0 - p)
                    },
                }
            } else {
                CatOp::Lower {
                    from: k,
                    p_switch: 1.0 - share / p,
                }
            });
        }
        for (name, c, share) in &d.unseen {
            let i = categorical(name)?;
            if CATEGORICAL[i].vocab.contains(&c.as_str()) {
                return Err(format!(
                    "drift: {c:?} is already a category of {name:?}; use --drift-mix to change its share"
                ));
            }
            cat[i].push(CatOp::Unseen {
                name: c.clone(),
                share: *share,
            });
        }
        Ok(Self {
            from_us: d.from_us.unwrap_or(i64::MIN),
            num,
            cat,
            seed,
        })
    }

    /// A uniform draw for (row, feature) independent of the world's random stream.
    fn unit(&self, row: u64, salt: u64) -> f64 {
        let h = entity_hash(
            (self.seed ^ row.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ salt.wrapping_mul(0x9E37_79B9))
                as i64,
        );
        (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn numeric(&self, i: usize, ts: i64, x: f64) -> f64 {
        match &self.num[i] {
            Some(op) if ts >= self.from_us => {
                let f = &NUMERIC[i];
                quantize((x * op.mul + op.add).clamp(f.min, f.max), f.quantum)
            }
            _ => x,
        }
    }

    fn categorical(&self, i: usize, ts: i64, code: usize, row: u64) -> &str {
        let f = &CATEGORICAL[i];
        if ts < self.from_us || self.cat[i].is_empty() {
            return f.vocab[code];
        }
        let mut code = code;
        for (j, op) in self.cat[i].iter().enumerate() {
            let u = self.unit(row, (i * 16 + j) as u64 + 1);
            match op {
                CatOp::Raise { to, p_switch } => {
                    if code != *to && u < *p_switch {
                        code = *to;
                    }
                }
                CatOp::Lower { from, p_switch } => {
                    if code == *from && u < *p_switch {
                        // Another category ∝ its reference share.
                        let v = self.unit(row, (i * 16 + j) as u64 + 101);
                        let others: f64 = f
                            .shares
                            .iter()
                            .enumerate()
                            .filter(|(k, _)| k != from)
                            .map(|(_, s)| s)
                            .sum();
                        let mut acc = v * others;
                        for (k, s) in f.shares.iter().enumerate() {
                            if k == *from {
                                continue;
                            }
                            code = k;
                            if acc < *s {
                                break;
                            }
                            acc -= s;
                        }
                    }
                }
                CatOp::Unseen { name, share } => {
                    if u < *share {
                        return name;
                    }
                }
            }
        }
        f.vocab[code]
    }
}

fn quantize(x: f64, q: f64) -> f64 {
    if q >= 1.0 {
        (x / q).round() * q
    } else {
        let s = (1.0 / q).round();
        (x * s).round() / s
    }
}

fn clamp_q(x: f64, i: usize) -> f64 {
    let f = &NUMERIC[i];
    quantize(x.clamp(f.min, f.max), f.quantum)
}

// ---------------------------------------------------------------------------------------------
// Parquet tables

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

enum Col {
    I64(Int64Builder),
    F64(Float64Builder),
    Ts(TimestampMicrosecondBuilder),
    Str(StringBuilder),
}

struct Table {
    path: PathBuf,
    tmp: PathBuf,
    schema: SchemaRef,
    cols: Vec<Col>,
    writer: Option<ArrowWriter<File>>,
    buffered: usize,
    rows: u64,
}

/// A Parquet compression codec (all four are read as well as written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Codec {
    #[default]
    Snappy,
    Zstd,
    Gzip,
    Lz4,
    None,
}

impl Codec {
    pub fn compression(self) -> Compression {
        use parquet::basic::{GzipLevel, ZstdLevel};
        match self {
            Codec::Snappy => Compression::SNAPPY,
            Codec::Zstd => Compression::ZSTD(ZstdLevel::default()),
            Codec::Gzip => Compression::GZIP(GzipLevel::default()),
            Codec::Lz4 => Compression::LZ4_RAW,
            Codec::None => Compression::UNCOMPRESSED,
        }
    }
}

/// How the tables are written.
#[derive(Debug, Clone, Copy)]
struct Layout {
    row_group_rows: usize,
    codec: Codec,
}

/// Rows buffered before a batch goes to the Parquet writer.
const CHUNK_ROWS: usize = 64 * 1024;

impl Table {
    fn create(
        dir: &Path,
        name: &str,
        fields: &[(&str, DataType)],
        layout: Layout,
    ) -> Result<Self, DatagenError> {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let schema = Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), false))
                .collect::<Vec<_>>(),
        ));
        let file = File::create(&tmp).map_err(|source| DatagenError::Io {
            path: tmp.clone(),
            source,
        })?;
        let props = WriterProperties::builder()
            .set_compression(layout.codec.compression())
            .set_max_row_group_row_count(Some(layout.row_group_rows.max(1)))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| {
            DatagenError::Write {
                path: path.clone(),
                message: e.to_string(),
            }
        })?;
        let cols = fields
            .iter()
            .map(|(_, t)| match t {
                DataType::Int64 => Col::I64(Int64Builder::with_capacity(CHUNK_ROWS)),
                DataType::Float64 => Col::F64(Float64Builder::with_capacity(CHUNK_ROWS)),
                DataType::Utf8 => {
                    Col::Str(StringBuilder::with_capacity(CHUNK_ROWS, CHUNK_ROWS * 12))
                }
                _ => Col::Ts(
                    TimestampMicrosecondBuilder::with_capacity(CHUNK_ROWS).with_timezone("UTC"),
                ),
            })
            .collect();
        Ok(Self {
            path,
            tmp,
            schema,
            cols,
            writer: Some(writer),
            buffered: 0,
            rows: 0,
        })
    }

    fn i64(&mut self, c: usize, v: i64) {
        match &mut self.cols[c] {
            Col::I64(b) => b.append_value(v),
            Col::Ts(b) => b.append_value(v),
            _ => unreachable!("column {c} of {} is not an integer", self.path.display()),
        }
    }

    fn f64(&mut self, c: usize, v: f64) {
        match &mut self.cols[c] {
            Col::F64(b) => b.append_value(v),
            _ => unreachable!("column {c} of {} is not a float", self.path.display()),
        }
    }

    fn str(&mut self, c: usize, v: &str) {
        match &mut self.cols[c] {
            Col::Str(b) => b.append_value(v),
            _ => unreachable!("column {c} of {} is not a string", self.path.display()),
        }
    }

    fn end_row(&mut self) -> Result<(), DatagenError> {
        self.buffered += 1;
        self.rows += 1;
        if self.buffered >= CHUNK_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DatagenError> {
        if self.buffered == 0 {
            return Ok(());
        }
        let arrays: Vec<ArrayRef> = self
            .cols
            .iter_mut()
            .map(|c| -> ArrayRef {
                match c {
                    Col::I64(b) => Arc::new(b.finish()),
                    Col::F64(b) => Arc::new(b.finish()),
                    Col::Ts(b) => Arc::new(b.finish()),
                    Col::Str(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        let err = |e: &dyn std::fmt::Display| DatagenError::Write {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let batch = RecordBatch::try_new(self.schema.clone(), arrays).map_err(|e| err(&e))?;
        self.writer
            .as_mut()
            .expect("open until finish")
            .write(&batch)
            .map_err(|e| err(&e))?;
        self.buffered = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<u64, DatagenError> {
        self.flush()?;
        let w = self.writer.take().expect("open until finish");
        w.close().map_err(|e| DatagenError::Write {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        std::fs::rename(&self.tmp, &self.path).map_err(|source| DatagenError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.rows)
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn profile_table(dir: &Path, rg: Layout) -> Result<Table, DatagenError> {
    Table::create(
        dir,
        "applicant_profile.parquet",
        &[
            ("applicant_id", DataType::Int64),
            ("event_timestamp", ts_type()),
            ("created_timestamp", ts_type()),
            ("annual_income", DataType::Float64),
            ("employment_length_years", DataType::Int64),
            ("home_ownership", DataType::Utf8),
            ("fico_score", DataType::Int64),
            ("credit_history_months", DataType::Int64),
            ("verification_status", DataType::Utf8),
        ],
        rg,
    )
}

fn activity_table(dir: &Path, rg: Layout) -> Result<Table, DatagenError> {
    Table::create(
        dir,
        "credit_activity.parquet",
        &[
            ("applicant_id", DataType::Int64),
            ("event_timestamp", ts_type()),
            ("created_timestamp", ts_type()),
            ("debt_to_income", DataType::Float64),
            ("revolving_utilization", DataType::Float64),
            ("delinquencies_2y", DataType::Int64),
            ("inquiries_6m", DataType::Int64),
            ("open_accounts", DataType::Int64),
            ("total_accounts", DataType::Int64),
            ("public_records", DataType::Int64),
            ("months_since_last_delinquency", DataType::Int64),
        ],
        rg,
    )
}

fn applications_table(dir: &Path, rg: Layout) -> Result<Table, DatagenError> {
    Table::create(
        dir,
        "applications.parquet",
        &[
            ("application_id", DataType::Int64),
            ("applicant_id", DataType::Int64),
            ("event_timestamp", ts_type()),
            ("loan_amount", DataType::Float64),
            ("term", DataType::Utf8),
            ("purpose", DataType::Utf8),
            ("interest_rate", DataType::Float64),
            ("installment", DataType::Float64),
            ("loan_to_income", DataType::Float64),
            ("default_12m", DataType::Int64),
        ],
        rg,
    )
}

// ---------------------------------------------------------------------------------------------
// The feature repository over the generated files

/// The profile view's fields (name, dtype).
pub const PROFILE_FIELDS: [(&str, &str); 6] = [
    ("annual_income", "FP64"),
    ("employment_length_years", "INT64"),
    ("home_ownership", "STRING"),
    ("fico_score", "INT64"),
    ("credit_history_months", "INT64"),
    ("verification_status", "STRING"),
];

/// The activity view's fields.
pub const ACTIVITY_FIELDS: [(&str, &str); 8] = [
    ("debt_to_income", "FP64"),
    ("revolving_utilization", "FP64"),
    ("delinquencies_2y", "INT64"),
    ("inquiries_6m", "INT64"),
    ("open_accounts", "INT64"),
    ("total_accounts", "INT64"),
    ("public_records", "INT64"),
    ("months_since_last_delinquency", "INT64"),
];

/// Features the caller sends with each request (columns of `applications.parquet`).
pub const REQUEST_FEATURES: [&str; 6] = [
    "loan_amount",
    "term",
    "purpose",
    "interest_rate",
    "installment",
    "loan_to_income",
];

/// The feature repository TOML over the generated files; `source_prefix` is prepended to each
/// file name (`""` beside the data, `"data/"` for `models/credit-risk/features.toml`).
pub fn repo_toml(source_prefix: &str) -> String {
    let fields = |f: &[(&str, &str)]| {
        f.iter()
            .map(|(n, t)| format!("  {{ name = \"{n}\", dtype = \"{t}\" }},\n"))
            .collect::<String>()
    };
    let refs = PROFILE_FIELDS
        .iter()
        .map(|(n, _)| format!("  \"applicant_profile:{n}\",\n"))
        .chain(
            ACTIVITY_FIELDS
                .iter()
                .map(|(n, _)| format!("  \"credit_activity:{n}\",\n")),
        )
        .collect::<String>();
    let request = REQUEST_FEATURES
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"# The credit-risk feature repository (written by `vane-models datagen`, which also writes a
# copy beside its output). Sources are relative to this file. Timestamps are UTC.

[[entities]]
name = "applicant"
join_key = "applicant_id"
dtype = "INT64"

# Slowly changing: recorded at onboarding and at each review (every 5-14 months); a
# correction keeps the event time and has a later created time.
[[feature_views]]
name = "applicant_profile"
entity = "applicant"
source = "{source_prefix}applicant_profile.parquet"
timestamp_field = "event_timestamp"
created_timestamp_field = "created_timestamp"
ttl = "{PROFILE_TTL_DAYS}d"
fields = [
{profile}]

# Monthly-ish credit bureau snapshots.
[[feature_views]]
name = "credit_activity"
entity = "applicant"
source = "{source_prefix}credit_activity.parquet"
timestamp_field = "event_timestamp"
created_timestamp_field = "created_timestamp"
ttl = "{ACTIVITY_TTL_DAYS}d"
fields = [
{activity}]

# What the credit-risk models read: 14 view features + 6 sent with each request.
[[feature_services]]
name = "credit_risk_v1"
features = [
{refs}]
request_features = [{request}]
"#,
        profile = fields(&PROFILE_FIELDS),
        activity = fields(&ACTIVITY_FIELDS),
    )
}

// ---------------------------------------------------------------------------------------------
// The world

/// Observed profile values (undrifted), as last written.
#[derive(Debug, Clone, Copy)]
struct ProfileVals {
    ts: i64,
    income: f64,
    emp: f64,
    home: usize,
    fico: f64,
    hist: f64,
    verif: usize,
}

/// Observed activity values (undrifted), as last written.
#[derive(Debug, Clone, Copy)]
struct ActivityVals {
    ts: i64,
    dti: f64,
    util: f64,
    delinq: f64,
    inq: f64,
    open: f64,
    total: f64,
    pubrec: f64,
    msld: f64,
}

/// All 20 features (numeric in `credit::NUMERIC` order, categorical codes) plus the
/// unobserved trait: the inputs of [`default_logit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RiskInputs {
    pub numeric: [f64; NUMERIC.len()],
    pub categorical: [usize; CATEGORICAL.len()],
    /// Unobserved risk trait (≈ N(0, 0.9)).
    pub hidden: f64,
}

/// Intercept of [`default_logit`], tuned for a ≈ 15 % default rate.
const BASE_LOGIT: f64 = -3.3;

/// Log-odds of default within 12 months. Non-linear on purpose: thresholds, interactions and
/// a U-shape, so trees can beat a linear model.
pub fn default_logit(x: &RiskInputs) -> f64 {
    let n = &x.numeric;
    let c = &x.categorical;
    let fico = n[FICO];
    let dti = n[DTI];
    let util = n[UTIL];
    let income = n[INCOME].max(1.0);
    let lti = n[LTI];
    let mut z = BASE_LOGIT + x.hidden;
    // Mostly thresholds and interactions, gentle slopes: trees should beat a linear model.
    z += -0.006 * (fico - 705.0) + if fico < 640.0 { 0.9 } else { 0.0 };
    z += if fico > 780.0 { -0.5 } else { 0.0 };
    z += 0.015 * (dti - 18.5) + if dti > 35.0 { 1.0 } else { 0.0 };
    z += 0.004 * (util - 50.0) + if util > 80.0 { 1.1 } else { 0.0 };
    z += if util < 5.0 { 0.6 } else { 0.0 };
    z += if util > 70.0 && dti > 25.0 { 1.0 } else { 0.0 };
    z += 0.15 * n[DELINQ].min(3.0);
    z += if n[INQ] >= 3.0 { 0.6 } else { 0.0 };
    z += -0.30 * (income / 62_000.0).ln();
    z += 0.2 * n[PUBREC];
    z += if n[MSLD] < 12.0 { 0.2 } else { 0.0 };
    z += -0.002 * (n[HIST] - 190.0);
    // New jobs are risky; tenure of a few years is safest (a U-shape).
    z += match n[EMP] as i64 {
        0 => 0.6,
        1..=2 => 0.15,
        3..=8 => -0.05,
        _ => 0.1,
    };
    z += 0.02 * (n[RATE] - 13.0);
    z += 1.0 * (lti - 0.35).max(0.0);
    let sixty = c[TERM] == 1;
    z += if sixty { 0.2 } else { 0.0 };
    z += if sixty && lti > 0.3 { 1.0 } else { 0.0 };
    let small_business = c[PURPOSE] == 4;
    z += CATEGORICAL[PURPOSE].weights[c[PURPOSE].min(7)] as f64;
    z += if small_business && income < 45_000.0 {
        1.2
    } else {
        0.0
    };
    z += CATEGORICAL[HOME].weights[c[HOME].min(3)] as f64;
    z
}

#[derive(Debug)]
struct Latent {
    fico_base: f64,
    fico: f64,
    income: f64,
    emp_years: f64,
    home: usize,
    credit_start: i64,
    util_mean: f64,
    util: f64,
    dti_mean: f64,
    dti: f64,
    delinq: Vec<i64>,
    inquiries: Vec<i64>,
    /// (time, FICO drop) not yet applied.
    shocks: Vec<(i64, f64)>,
    open: f64,
    total: f64,
    pubrec: f64,
    hidden: f64,
    hungry: bool,
}

impl Latent {
    fn new(r: &mut SplitMix64, onboard: i64) -> Self {
        let fico = (705.0 + 37.0 * r.normal()).clamp(580.0, 850.0);
        let good = (fico - 705.0) / 37.0;
        let income = (62_000.0 * (0.5 * r.normal() + 0.05 * good).exp()).clamp(12_000.0, 400_000.0);
        let hist_months = (190.0 + 25.0 * good + 75.0 * r.normal()).clamp(12.0, 560.0);
        let util_mean = (50.0 - 9.0 * good + 18.0 * r.normal()).clamp(2.0, 98.0);
        let dti_mean = (18.5 + 8.0 * r.normal()).clamp(1.0, 44.0);
        let open = (11.0 + 4.8 * r.normal()).clamp(1.0, 45.0).round();
        let total = (open + 10.0 + 7.0 * r.normal().abs())
            .clamp(open, 90.0)
            .round();
        let delinq_hist = if r.chance(0.16 - 0.04 * good.clamp(-2.0, 2.0)) {
            // An old delinquency 1-23 months before onboarding.
            vec![onboard - (1 + r.below(23)) as i64 * MONTH_US]
        } else {
            Vec::new()
        };
        Latent {
            fico_base: fico,
            fico,
            income,
            emp_years: (5.5 + 3.5 * r.normal()).clamp(0.0, 12.0),
            home: r.weighted(CATEGORICAL[HOME].shares),
            credit_start: onboard - (hist_months * MONTH_US as f64) as i64,
            util_mean,
            util: (util_mean + 8.0 * r.normal()).clamp(0.0, 100.0),
            dti_mean,
            dti: (dti_mean + 3.0 * r.normal()).clamp(0.0, 45.0),
            delinq: delinq_hist,
            inquiries: Vec::new(),
            shocks: Vec::new(),
            open,
            total,
            pubrec: [0.0, 1.0, 2.0][r.weighted(&[0.86, 0.11, 0.03])],
            hidden: 0.9 * r.normal(),
            hungry: r.chance(0.15),
        }
    }

    /// One month passes, ending at `t`.
    fn step(&mut self, r: &mut SplitMix64, t: i64) {
        let hazard = sigmoid(
            -5.2 + 0.4 * self.hidden + (self.dti - 18.0) / 12.0 + (self.util - 50.0) / 35.0
                - (self.fico - 700.0) / 50.0,
        );
        if r.chance(hazard) {
            self.delinq.push(t);
            self.fico -= r.uniform(15.0, 45.0);
        }
        let mut i = 0;
        while i < self.shocks.len() {
            if self.shocks[i].0 <= t {
                self.fico -= self.shocks[i].1;
                self.fico_base -= 0.3 * self.shocks[i].1;
                self.shocks.swap_remove(i);
            } else {
                i += 1;
            }
        }
        self.fico = (self.fico + 0.05 * (self.fico_base - self.fico) + 3.0 * r.normal())
            .clamp(580.0, 850.0);
        self.util = (self.util_mean + 0.85 * (self.util - self.util_mean) + 5.0 * r.normal())
            .clamp(0.0, 100.0);
        self.dti =
            (self.dti_mean + 0.85 * (self.dti - self.dti_mean) + 1.2 * r.normal()).clamp(0.0, 45.0);
        if r.chance(if self.hungry { 0.22 } else { 0.07 }) {
            self.inquiries.push(t);
        }
        self.income *= 1.0 + 0.0025 + 0.003 * r.normal();
        self.emp_years += 1.0 / 12.0;
        if r.chance(0.012) {
            self.emp_years = 0.0;
            self.income *= (0.05 + 0.15 * r.normal()).exp();
        }
        self.income = self.income.clamp(12_000.0, 400_000.0);
        if r.chance(0.035) {
            self.open += 1.0;
            self.total += 1.0;
        } else if r.chance(0.03) {
            self.open = (self.open - 1.0).max(1.0);
        }
        self.open = self.open.min(45.0);
        self.total = self.total.clamp(self.open.max(2.0), 90.0);
        if r.chance(0.0012) {
            self.pubrec = (self.pubrec + 1.0).min(5.0);
        }
        if self.home == 0 && self.income > 55_000.0 && r.chance(0.006) {
            self.home = 2;
        }
    }

    fn count_since(events: &[i64], t: i64, window: i64) -> f64 {
        events.iter().filter(|&&e| e <= t && e > t - window).count() as f64
    }

    fn activity(&self, t: i64) -> ActivityVals {
        let last = self.delinq.iter().filter(|&&e| e <= t).max();
        ActivityVals {
            ts: t,
            dti: clamp_q(self.dti, DTI),
            util: clamp_q(self.util, UTIL),
            delinq: Self::count_since(&self.delinq, t, 24 * MONTH_US).min(8.0),
            inq: Self::count_since(&self.inquiries, t, 6 * MONTH_US).min(6.0),
            open: self.open,
            total: self.total,
            pubrec: self.pubrec,
            msld: last.map_or(120.0, |&l| ((t - l) / MONTH_US).min(120) as f64),
        }
    }

    fn profile(&self, r: &mut SplitMix64, t: i64) -> ProfileVals {
        let verified_bias = ((self.income / 62_000.0).ln() * 0.15).clamp(-0.2, 0.2);
        let shares = &CATEGORICAL[VERIF].shares;
        let w = [
            shares[0] - verified_bias,
            shares[1],
            shares[2] + verified_bias,
        ];
        ProfileVals {
            ts: t,
            income: clamp_q(self.income, INCOME),
            emp: self.emp_years.floor().min(10.0),
            home: self.home,
            fico: self.fico.round(),
            hist: (((t - self.credit_start) / MONTH_US) as f64).clamp(12.0, 600.0),
            verif: r.weighted(&w),
        }
    }
}

/// Deterministic weights deciding how many applications each applicant makes.
fn application_weight(seed: u64, id: i64) -> u64 {
    let h = entity_hash(id ^ (seed.wrapping_mul(0xA24B_AED4_963E_E407) as i64));
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    if u < 0.15 {
        0
    } else {
        // 1..~30, heavy-ish tail.
        (1.0 + 6.0 * ((u - 0.15) / 0.85).powi(3) * 5.0).round() as u64
    }
}

enum Event {
    Profile,
    Activity,
    Application,
}

/// Generates the world into `cfg.out` (created if missing).
pub fn generate(cfg: &DatagenConfig) -> Result<DatagenSummary, DatagenError> {
    let t0 = Instant::now();
    if cfg.applicants == 0 {
        return Err(DatagenError::Invalid(
            "--applicants must be at least 1".into(),
        ));
    }
    if cfg.months == 0 {
        return Err(DatagenError::Invalid("--months must be at least 1".into()));
    }
    let drifter = Drifter::new(&cfg.drift, cfg.seed).map_err(DatagenError::Invalid)?;
    std::fs::create_dir_all(&cfg.out).map_err(|source| DatagenError::Io {
        path: cfg.out.clone(),
        source,
    })?;
    let start = cfg.start_us;
    let end = add_months(start, cfg.months as i64);
    let history_start = add_months(start, -24);

    // Application counts: applicant i gets floor(M·S_i/S) − floor(M·S_{i−1}/S) of the
    // cumulative weights, exactly M in total.
    let ids = 1..=cfg.applicants as i64;
    let mut total_weight: u128 = ids
        .clone()
        .map(|id| application_weight(cfg.seed, id) as u128)
        .sum();
    let uniform = total_weight == 0;
    if uniform {
        total_weight = cfg.applicants as u128;
    }
    let m = cfg.applications as u128;

    let rg = Layout {
        row_group_rows: cfg.row_group_rows,
        codec: cfg.codec,
    };
    let mut profile = profile_table(&cfg.out, rg)?;
    let mut activity = activity_table(&cfg.out, rg)?;
    let mut apps = applications_table(&cfg.out, rg)?;
    let mut summary = DatagenSummary {
        applicants: cfg.applicants as u64,
        profile_rows: 0,
        activity_rows: 0,
        applications: 0,
        defaults: 0,
        applications_without_profile: 0,
        applications_without_activity: 0,
        start: format_rfc3339(start),
        end: format_rfc3339(end),
        seconds: 0.0,
    };
    let (mut cum, mut prev_assigned): (u128, u128) = (0, 0);
    let mut app_id: i64 = 0;
    let mut profile_row: u64 = 0;
    let mut events: Vec<(i64, Event)> = Vec::new();

    for id in ids {
        cum += if uniform {
            1
        } else {
            application_weight(cfg.seed, id) as u128
        };
        let assigned = m * cum / total_weight;
        let n_apps = (assigned - prev_assigned) as usize;
        prev_assigned = assigned;

        let mut r = SplitMix64::new(cfg.seed ^ entity_hash(id));
        // 60 % were customers before the window, 40 % join during it.
        let onboard = if r.chance(0.6) {
            history_start + (r.unit() * (start - history_start) as f64) as i64
        } else {
            start + (r.unit() * (end - start - 15 * US_PER_DAY) as f64) as i64
        };
        let mut st = Latent::new(&mut r, onboard);
        let sparse = r.chance(0.08);

        events.clear();
        let mut t = onboard;
        while t < end {
            events.push((t, Event::Profile));
            t += r.uniform(150.0, 420.0) as i64 * US_PER_DAY;
        }
        let mut t = onboard + r.uniform(5.0, 35.0) as i64 * US_PER_DAY;
        while t < end {
            if r.chance(if sparse { 0.3 } else { 0.93 }) {
                events.push((t, Event::Activity));
            }
            t += MONTH_US + ((r.unit() - 0.5) * 6.0 * US_PER_DAY as f64) as i64;
        }
        let app_from = start.max(onboard - 20 * US_PER_DAY);
        for _ in 0..n_apps {
            let t = app_from + (r.unit() * (end - app_from) as f64) as i64;
            events.push((t, Event::Application));
        }
        // Stable: at equal times profile, then activity, then applications.
        events.sort_by_key(|(t, e)| {
            (
                *t,
                match e {
                    Event::Profile => 0,
                    Event::Activity => 1,
                    Event::Application => 2,
                },
            )
        });

        let mut next_step = onboard + MONTH_US;
        let mut last_p: Option<ProfileVals> = None;
        let mut last_a: Option<ActivityVals> = None;
        for (t, e) in events.iter() {
            let t = *t;
            while next_step <= t {
                st.step(&mut r, next_step);
                next_step += MONTH_US;
            }
            match e {
                Event::Profile => {
                    let p = st.profile(&mut r, t);
                    if r.chance(0.03) {
                        // A typo in the income, corrected a few days later (same event time,
                        // later created time).
                        let mut typo = p;
                        typo.income = clamp_q(p.income * r.uniform(1.1, 1.6), INCOME);
                        write_profile(
                            &mut profile,
                            &drifter,
                            id,
                            t,
                            t + US_PER_DAY,
                            &typo,
                            profile_row,
                        )?;
                        profile_row += 1;
                        let fix = t + r.uniform(3.0, 10.0) as i64 * US_PER_DAY;
                        write_profile(&mut profile, &drifter, id, t, fix, &p, profile_row)?;
                    } else {
                        let created = t + (r.unit() * 2.0 * US_PER_DAY as f64) as i64;
                        write_profile(&mut profile, &drifter, id, t, created, &p, profile_row)?;
                    }
                    profile_row += 1;
                    last_p = Some(p);
                }
                Event::Activity => {
                    let a = st.activity(t);
                    let created = t + r.uniform(1.0, 5.0) as i64 * US_PER_DAY;
                    write_activity(&mut activity, &drifter, id, created, &a)?;
                    last_a = Some(a);
                }
                Event::Application => {
                    app_id += 1;
                    let fresh_p = last_p.filter(|p| t - p.ts <= PROFILE_TTL_DAYS * US_PER_DAY);
                    let fresh_a = last_a.filter(|a| t - a.ts <= ACTIVITY_TTL_DAYS * US_PER_DAY);
                    summary.applications_without_profile += u64::from(fresh_p.is_none());
                    summary.applications_without_activity += u64::from(fresh_a.is_none());
                    // What the lender sees as of now (latest rows), else the latent truth.
                    let p = last_p.unwrap_or_else(|| {
                        let mut q = SplitMix64::new(r.next_u64());
                        st.profile(&mut q, t)
                    });
                    let a = last_a.unwrap_or_else(|| st.activity(t));
                    let default =
                        application(&mut apps, &drifter, &mut r, &mut st, app_id, id, t, &p, &a)?;
                    summary.defaults += u64::from(default);
                }
            }
        }
    }
    summary.profile_rows = profile.finish()?;
    summary.activity_rows = activity.finish()?;
    summary.applications = apps.finish()?;
    debug_assert_eq!(summary.applications, cfg.applications as u64);
    summary.seconds = t0.elapsed().as_secs_f64();

    let write = |name: &str, bytes: &[u8]| {
        let path = cfg.out.join(name);
        std::fs::write(&path, bytes).map_err(|source| DatagenError::Io { path, source })
    };
    write("features.toml", repo_toml("").as_bytes())?;
    let manifest = json!({
        "generator": "vane-models datagen",
        "generator_version": env!("CARGO_PKG_VERSION"),
        "config": {
            "applicants": cfg.applicants,
            "applications": cfg.applications,
            "months": cfg.months,
            "start": format_rfc3339(cfg.start_us),
            "seed": cfg.seed,
            "drift": {
                "from": cfg.drift.from_us.map(format_rfc3339),
                "shift": cfg.drift.shift,
                "scale": cfg.drift.scale,
                "mix": cfg.drift.mix,
                "unseen": cfg.drift.unseen,
            },
        },
        "summary": summary,
        "default_rate": summary.default_rate(),
    });
    write(
        "datagen.json",
        &serde_json::to_vec_pretty(&manifest).expect("json serializes"),
    )?;
    Ok(summary)
}

fn write_profile(
    t: &mut Table,
    d: &Drifter,
    id: i64,
    ts: i64,
    created: i64,
    p: &ProfileVals,
    row: u64,
) -> Result<(), DatagenError> {
    let row = row << 2;
    t.i64(0, id);
    t.i64(1, ts);
    t.i64(2, created);
    t.f64(3, d.numeric(INCOME, ts, p.income));
    t.i64(4, d.numeric(EMP, ts, p.emp) as i64);
    t.str(5, d.categorical(HOME, ts, p.home, row));
    t.i64(6, d.numeric(FICO, ts, p.fico) as i64);
    t.i64(7, d.numeric(HIST, ts, p.hist) as i64);
    t.str(8, d.categorical(VERIF, ts, p.verif, row));
    t.end_row()
}

fn write_activity(
    t: &mut Table,
    d: &Drifter,
    id: i64,
    created: i64,
    a: &ActivityVals,
) -> Result<(), DatagenError> {
    let ts = a.ts;
    t.i64(0, id);
    t.i64(1, ts);
    t.i64(2, created);
    t.f64(3, d.numeric(DTI, ts, a.dti));
    t.f64(4, d.numeric(UTIL, ts, a.util));
    t.i64(5, d.numeric(DELINQ, ts, a.delinq) as i64);
    t.i64(6, d.numeric(INQ, ts, a.inq) as i64);
    t.i64(7, d.numeric(OPEN, ts, a.open) as i64);
    t.i64(8, d.numeric(TOTAL, ts, a.total) as i64);
    t.i64(9, d.numeric(PUBREC, ts, a.pubrec) as i64);
    t.i64(10, d.numeric(MSLD, ts, a.msld) as i64);
    t.end_row()
}

/// Draws one application at `t`, its label, writes it; returns whether it defaulted.
#[allow(clippy::too_many_arguments)]
fn application(
    t_apps: &mut Table,
    d: &Drifter,
    r: &mut SplitMix64,
    st: &mut Latent,
    app_id: i64,
    id: i64,
    t: i64,
    p: &ProfileVals,
    a: &ActivityVals,
) -> Result<bool, DatagenError> {
    let good = (p.fico - 705.0) / 37.0;
    let scale = (st.income / 62_000.0).powf(0.3);
    let loan = clamp_q(12_000.0 * (0.6 * r.normal()).exp() * scale, LOAN);
    let term = usize::from(r.chance(if loan > 20_000.0 { 0.5 } else { 0.2 }));
    let rate = clamp_q(
        13.0 - 3.3 * good + 2.5 * term as f64 + 1.6 * r.normal() - 0.7,
        RATE,
    );
    let months = if term == 1 { 60 } else { 36 };
    let monthly = rate / 1_200.0;
    let installment = clamp_q(loan * monthly / (1.0 - (1.0 + monthly).powi(-months)), INST);
    let lti = clamp_q(loan / st.income, LTI);
    let purpose = r.weighted(CATEGORICAL[PURPOSE].shares);

    let mut numeric = [0.0; NUMERIC.len()];
    numeric[INCOME] = p.income;
    numeric[DTI] = a.dti;
    numeric[UTIL] = a.util;
    numeric[DELINQ] = a.delinq;
    numeric[INQ] = a.inq;
    numeric[HIST] = p.hist;
    numeric[EMP] = p.emp;
    numeric[LOAN] = loan;
    numeric[RATE] = rate;
    numeric[INST] = installment;
    numeric[OPEN] = a.open;
    numeric[TOTAL] = a.total;
    numeric[PUBREC] = a.pubrec;
    numeric[MSLD] = a.msld;
    numeric[FICO] = p.fico;
    numeric[LTI] = lti;
    let x = RiskInputs {
        numeric,
        categorical: [term, purpose, p.home, p.verif],
        hidden: st.hidden,
    };
    let default = r.chance(sigmoid(default_logit(&x)));
    // Some applications are hard inquiries; a default shows up in later snapshots.
    if r.chance(0.3) {
        st.inquiries.push(t);
    }
    if default {
        let when = t + r.uniform(2.0, 12.0) as i64 * MONTH_US;
        st.delinq.push(when);
        if r.chance(0.3) {
            st.delinq.push(when + MONTH_US);
        }
        st.shocks.push((when, r.uniform(20.0, 50.0)));
    }

    let row = (app_id as u64) << 2 | 1;
    t_apps.i64(0, app_id);
    t_apps.i64(1, id);
    t_apps.i64(2, t);
    t_apps.f64(3, d.numeric(LOAN, t, loan));
    t_apps.str(4, d.categorical(TERM, t, term, row));
    t_apps.str(5, d.categorical(PURPOSE, t, purpose, row));
    t_apps.f64(6, d.numeric(RATE, t, rate));
    t_apps.f64(7, d.numeric(INST, t, installment));
    t_apps.f64(8, d.numeric(LTI, t, lti));
    t_apps.i64(9, i64::from(default));
    t_apps.end_row()?;
    Ok(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_match_the_credit_tables() {
        let n = |i: usize| NUMERIC[i].name;
        assert_eq!(
            [
                n(INCOME),
                n(DTI),
                n(UTIL),
                n(DELINQ),
                n(INQ),
                n(HIST),
                n(EMP),
                n(LOAN)
            ],
            [
                "annual_income",
                "debt_to_income",
                "revolving_utilization",
                "delinquencies_2y",
                "inquiries_6m",
                "credit_history_months",
                "employment_length_years",
                "loan_amount"
            ]
        );
        assert_eq!(
            [
                n(RATE),
                n(INST),
                n(OPEN),
                n(TOTAL),
                n(PUBREC),
                n(MSLD),
                n(FICO),
                n(LTI)
            ],
            [
                "interest_rate",
                "installment",
                "open_accounts",
                "total_accounts",
                "public_records",
                "months_since_last_delinquency",
                "fico_score",
                "loan_to_income"
            ]
        );
        let c = |i: usize| CATEGORICAL[i].name;
        assert_eq!(
            [c(TERM), c(PURPOSE), c(HOME), c(VERIF)],
            ["term", "purpose", "home_ownership", "verification_status"]
        );
        assert_eq!(CATEGORICAL[PURPOSE].vocab[4], "small_business");
        assert_eq!(CATEGORICAL[HOME].vocab[0], "RENT");
        assert_eq!(CATEGORICAL[HOME].vocab[2], "MORTGAGE");
        // The 14 view features + 6 request features are the 20 model inputs.
        let mut all: Vec<&str> = PROFILE_FIELDS
            .iter()
            .chain(ACTIVITY_FIELDS.iter())
            .map(|(n, _)| *n)
            .chain(REQUEST_FEATURES)
            .collect();
        all.sort_unstable();
        let mut want = crate::credit::feature_names();
        want.sort_unstable();
        assert_eq!(all, want);
    }

    #[test]
    fn repo_toml_is_valid_and_matches_the_committed_file() {
        let text = repo_toml("data/");
        let repo =
            vane_features::repo::FeatureRepo::parse(&text, Path::new("/x/features.toml")).unwrap();
        assert_eq!(repo.service("credit_risk_v1").unwrap().features.len(), 14);
        assert_eq!(
            repo.service("credit_risk_v1")
                .unwrap()
                .request_features
                .len(),
            6
        );
        let committed = concat!(env!("CARGO_MANIFEST_DIR"), "/credit-risk/features.toml");
        let on_disk = std::fs::read_to_string(committed).unwrap_or_default();
        if on_disk != text {
            if std::env::var_os("VANE_BLESS").is_some() {
                std::fs::write(committed, &text).unwrap();
            } else {
                panic!("{committed} is out of date: rerun with VANE_BLESS=1");
            }
        }
    }

    #[test]
    fn drift_specs_parse_and_validate() {
        assert_eq!(
            Drift::parse_numeric("annual_income=-0.2"),
            Ok(("annual_income".into(), -0.2))
        );
        assert!(Drift::parse_numeric("annual_income").is_err());
        assert!(Drift::parse_numeric("annual_income=x").is_err());
        assert_eq!(
            Drift::parse_category("purpose=small_business:0.3", None),
            Ok(("purpose".into(), "small_business".into(), 0.3))
        );
        assert!(Drift::parse_category("purpose=small_business", None).is_err());
        assert_eq!(
            Drift::parse_category("home_ownership=SHARED", Some(0.1)),
            Ok(("home_ownership".into(), "SHARED".into(), 0.1))
        );
        assert!(Drift::parse_category("purpose=car:1.5", None).is_err());
        let bad = |d: Drift| Drifter::new(&d, 1).unwrap_err();
        let e = bad(Drift {
            shift: vec![("purpose".into(), 0.1)],
            ..Drift::default()
        });
        assert!(e.contains("not a numeric feature"), "{e}");
        let e = bad(Drift {
            mix: vec![("purpose".into(), "boat".into(), 0.1)],
            ..Drift::default()
        });
        assert!(e.contains("no category \"boat\""), "{e}");
        let e = bad(Drift {
            unseen: vec![("home_ownership".into(), "RENT".into(), 0.1)],
            ..Drift::default()
        });
        assert!(e.contains("already a category"), "{e}");
        let e = bad(Drift {
            mix: vec![("fico_score".into(), "x".into(), 0.1)],
            ..Drift::default()
        });
        assert!(e.contains("not a categorical feature"), "{e}");
    }

    #[test]
    fn category_mix_reaches_the_target_share() {
        let d = Drifter::new(
            &Drift {
                mix: vec![
                    ("purpose".into(), "small_business".into(), 0.3),
                    ("home_ownership".into(), "MORTGAGE".into(), 0.1),
                ],
                ..Drift::default()
            },
            7,
        )
        .unwrap();
        let mut r = SplitMix64::new(3);
        let n = 40_000;
        let (mut sb, mut mort, mut rent) = (0, 0, 0);
        for row in 0..n {
            let p = r.weighted(CATEGORICAL[PURPOSE].shares);
            sb += usize::from(d.categorical(PURPOSE, 0, p, row) == "small_business");
            let h = r.weighted(CATEGORICAL[HOME].shares);
            match d.categorical(HOME, 0, h, row) {
                "MORTGAGE" => mort += 1,
                "RENT" => rent += 1,
                _ => {}
            }
        }
        let share = |k: usize| k as f64 / n as f64;
        assert!((share(sb) - 0.3).abs() < 0.01, "{}", share(sb));
        assert!((share(mort) - 0.1).abs() < 0.01, "{}", share(mort));
        // Others keep their relative shares: RENT 0.40/(1-0.48) of the rest.
        assert!(
            (share(rent) - 0.9 * 0.40 / 0.52).abs() < 0.015,
            "{}",
            share(rent)
        );
    }

    #[test]
    fn logit_moves_in_the_intended_directions() {
        let mut numeric = [0.0; NUMERIC.len()];
        for (i, f) in NUMERIC.iter().enumerate() {
            numeric[i] = f.mean as f64;
        }
        let base = RiskInputs {
            numeric,
            categorical: [0, 0, 2, 1],
            hidden: 0.0,
        };
        let z0 = default_logit(&base);
        let with = |i: usize, v: f64| {
            let mut x = base;
            x.numeric[i] = v;
            default_logit(&x)
        };
        assert!(with(FICO, 600.0) > z0 + 1.2, "low FICO, past the threshold");
        assert!(with(DTI, 40.0) > z0 + 1.0);
        assert!(with(UTIL, 95.0) > z0 + 1.0);
        assert!(with(INCOME, 150_000.0) < z0);
        assert!(with(DELINQ, 2.0) > z0);
        let mut sb = base;
        sb.categorical[PURPOSE] = 4;
        sb.numeric[INCOME] = 30_000.0;
        let mut dc = sb;
        dc.categorical[PURPOSE] = 0;
        assert!(
            default_logit(&sb) - default_logit(&dc) > 1.0,
            "small business × low income"
        );
    }
}
