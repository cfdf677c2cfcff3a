//! `vane-models datagen`: the synthetic credit-risk world as Parquet (see
//! [`crate::datagen`]).

use std::path::PathBuf;

use crate::datagen::{Codec, DatagenConfig, Drift, generate};
use anyhow::Context;
use vane_features::timeutil::parse_rfc3339;

/// Arguments of `vane-models datagen`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples (also `vane features datagen …`):
  vane-models datagen --out data --applicants 10000 --applications 50000 --start 2025-01-01
  vane-models datagen --out drifted --drift-shift annual_income=-0.2 --drift-from 2026-06-01")]
pub struct Args {
    /// Output folder (created if missing): three Parquet files, features.toml, datagen.json.
    #[arg(long, env = "VANE_DATAGEN_OUT")]
    pub out: PathBuf,
    /// Applicants (entity `applicant_id` 1..=N).
    #[arg(long, env = "VANE_DATAGEN_APPLICANTS", default_value_t = 10_000)]
    pub applicants: usize,
    /// Loan applications (labelled rows), exactly this many.
    #[arg(long, env = "VANE_DATAGEN_APPLICATIONS", default_value_t = 50_000)]
    pub applications: usize,
    /// Months in the application window (profiles start up to 24 months earlier).
    #[arg(long, env = "VANE_DATAGEN_MONTHS", default_value_t = 24)]
    pub months: u32,
    /// Start of the application window (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, env = "VANE_DATAGEN_START", default_value = "2024-01-01", value_parser = parse_rfc3339)]
    pub start: i64,
    /// Seed: the same seed and options give the same files.
    #[arg(long, env = "VANE_DATAGEN_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Rows per Parquet row group.
    #[arg(long, env = "VANE_DATAGEN_ROW_GROUP_ROWS", default_value_t = 1 << 20)]
    pub row_group_rows: usize,
    /// Parquet compression.
    #[arg(long, env = "VANE_DATAGEN_COMPRESSION", value_enum, default_value_t = Codec::Snappy)]
    pub compression: Codec,
    /// Shift a numeric feature by a fraction of its reference mean: `annual_income=-0.2`
    /// (repeatable).
    #[arg(long, value_parser = Drift::parse_numeric)]
    pub drift_shift: Vec<(String, f64)>,
    /// Multiply a numeric feature: `revolving_utilization=1.5` (repeatable).
    #[arg(long, value_parser = Drift::parse_numeric)]
    pub drift_scale: Vec<(String, f64)>,
    /// Set a category's share: `purpose=small_business:0.3` (others keep their relative
    /// shares; repeatable).
    #[arg(long, value_parser = |s: &str| Drift::parse_category(s, None))]
    pub drift_mix: Vec<(String, String, f64)>,
    /// Give a share of rows a category outside the vocabulary: `home_ownership=SHARED[:0.1]`
    /// (repeatable).
    #[arg(long, value_parser = |s: &str| Drift::parse_category(s, Some(0.1)))]
    pub drift_unseen: Vec<(String, String, f64)>,
    /// Drift only rows with an event time at or after this (RFC 3339 or YYYY-MM-DD); all rows
    /// without it.
    #[arg(long, env = "VANE_DATAGEN_DRIFT_FROM", value_parser = parse_rfc3339)]
    pub drift_from: Option<i64>,
}

impl Args {
    pub fn config(&self) -> DatagenConfig {
        DatagenConfig {
            out: self.out.clone(),
            applicants: self.applicants,
            applications: self.applications,
            months: self.months,
            start_us: self.start,
            seed: self.seed,
            drift: Drift {
                from_us: self.drift_from,
                shift: self.drift_shift.clone(),
                scale: self.drift_scale.clone(),
                mix: self.drift_mix.clone(),
                unseen: self.drift_unseen.clone(),
            },
            row_group_rows: self.row_group_rows,
            codec: self.compression,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = args.config();
    let s = generate(&cfg).with_context(|| format!("generating into {}", cfg.out.display()))?;
    let apps = s.applications.max(1) as f64;
    println!(
        "wrote {} rows to {} in {:.1} s: {} profile, {} activity, {} applications ({:.1} % default; {:.1} % without profile, {:.1} % without activity in TTL); window {} .. {}",
        s.total_rows(),
        cfg.out.display(),
        s.seconds,
        s.profile_rows,
        s.activity_rows,
        s.applications,
        100.0 * s.default_rate(),
        100.0 * s.applications_without_profile as f64 / apps,
        100.0 * s.applications_without_activity as f64 / apps,
        s.start,
        s.end,
    );
    Ok(())
}
