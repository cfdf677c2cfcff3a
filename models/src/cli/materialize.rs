//! `vane-models materialize`: latest feature values per entity from the offline store into
//! the online store (see [`vane_features::materialize`]).

use std::path::PathBuf;

use anyhow::Context;
use vane_features::materialize::{MaterializeOptions, Shard, materialize};
use vane_features::repo::FeatureRepo;
use vane_features::timeutil::{format_rfc3339, parse_rfc3339};

/// Arguments of `vane-models materialize`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples (also `vane features materialize …`):
  vane-models materialize --repo data/features.toml --store online.redb
  vane-models materialize --repo data/features.toml --store redis://redis:6379 --shard 2/4")]
pub struct Args {
    /// Feature repository (features.toml).
    #[arg(long, env = "VANE_FEATURE_REPO")]
    pub repo: PathBuf,
    /// Online store: a file path (embedded redb, created if missing) or
    /// redis://host:port[/db].
    #[arg(long, env = "VANE_ONLINE_STORE")]
    pub store: String,
    /// Views to materialize, comma-separated (default: all).
    #[arg(long, env = "VANE_MATERIALIZE_VIEWS", value_delimiter = ',')]
    pub views: Vec<String>,
    /// Window start, inclusive (RFC 3339 or YYYY-MM-DD; default: the beginning of time).
    #[arg(long, env = "VANE_MATERIALIZE_START", value_parser = parse_rfc3339)]
    pub start: Option<i64>,
    /// Window end, exclusive (RFC 3339 or YYYY-MM-DD; default: now).
    #[arg(long, env = "VANE_MATERIALIZE_END", value_parser = parse_rfc3339)]
    pub end: Option<i64>,
    /// Start each view where its last materialization (of this shard) ended; the state is
    /// kept in the online store.
    #[arg(long, env = "VANE_MATERIALIZE_INCREMENTAL")]
    pub incremental: bool,
    /// Handle only entities with hash(id) % N == i, e.g. `--shard $(JOB_COMPLETION_INDEX)/4`
    /// in a Kubernetes Indexed Job.
    #[arg(long, env = "VANE_MATERIALIZE_SHARD", default_value = "0/1")]
    pub shard: Shard,
    /// Rows per write to the online store.
    #[arg(long, env = "VANE_MATERIALIZE_BATCH_ROWS", default_value_t = 50_000)]
    pub batch_rows: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let repo = FeatureRepo::load(&args.repo)?;
    let store = vane_online::open_store(&args.store)
        .with_context(|| format!("opening online store {}", args.store))?;
    let opts = MaterializeOptions {
        views: (!args.views.is_empty()).then(|| args.views.clone()),
        start_us: args.start,
        end_us: args.end,
        incremental: args.incremental,
        shard: args.shard,
        batch_rows: args.batch_rows,
        progress: true,
    };
    let summary = materialize(&repo, &*store, &opts).with_context(|| {
        format!(
            "materializing {} into {}",
            args.repo.display(),
            store.describe()
        )
    })?;
    for v in &summary.views {
        eprintln!(
            "  {}: [{}, {}) shard {}: {} rows scanned, {} in window, {} entities, {} stored",
            v.view,
            v.start_us.map_or("-inf".to_string(), format_rfc3339),
            format_rfc3339(v.end_us),
            opts.shard,
            v.scanned,
            v.rows,
            v.entities,
            v.written
        );
    }
    println!("{summary}");
    Ok(())
}
