//! Command line of `vane-monitor`: clap flags (each with a `VANE_MONITOR_…` env var) layered
//! over an optional TOML file (`serve --config`) layered over defaults, validated once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::drift::Thresholds;
use crate::engine::Settings;
use crate::ingest::Listen;
use crate::profiles::ProfileArg;

/// `vane-monitor`: drift monitoring for Vane's model versions.
#[derive(Debug, Parser)]
#[command(
    name = "vane-monitor",
    version,
    about,
    long_about = None,
    after_help = "Examples (also `vane monitor …`):
  vane-monitor serve --registry ./registry --listen tcp://127.0.0.1:9101 --http 127.0.0.1:9102
  vane-monitor profile --data train.parquet --out profile.json
  vane-monitor compare --current today.parquet --profile profile.json --html drift.html"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar: ingest sampled traffic from servers, compute drift per model version,
    /// serve /metrics, /drift and /report.
    ///
    /// Example: vane-monitor serve --registry ./registry --listen tcp://127.0.0.1:9101
    /// --http 127.0.0.1:9102
    Serve(ServeArgs),
    /// Build a reference profile (profile.json) from a dataset, for models trained elsewhere.
    ///
    /// Example: vane-monitor profile --data train.parquet --categorical grade --exclude id
    /// --out profile.json
    Profile(ProfileArgs),
    /// Compare a current dataset with a reference dataset (or profile): PSI, KS, chi-square
    /// per column and the dataset drift share, as one JSON document on stdout.
    ///
    /// Example: vane-monitor compare --reference train.csv --current last_week.csv --html
    /// drift.html
    Compare(CompareArgs),
}

/// Thresholds as flags (shared by `serve` and `compare`).
#[derive(Debug, Clone, Default, Args)]
pub struct ThresholdFlags {
    /// PSI at or above this is a warning [default: 0.1].
    #[arg(long, env = "VANE_MONITOR_PSI_WARN")]
    pub psi_warn: Option<f64>,
    /// PSI at or above this is drift [default: 0.25].
    #[arg(long, env = "VANE_MONITOR_PSI_ALERT")]
    pub psi_alert: Option<f64>,
    /// KS p-value below this, Bonferroni-corrected over the features, is drift [default: 0.01].
    #[arg(long, env = "VANE_MONITOR_KS_ALPHA")]
    pub ks_alpha: Option<f64>,
    /// Chi-square p-value below this, Bonferroni-corrected, is drift [default: 0.01].
    #[arg(long, env = "VANE_MONITOR_CHI2_ALPHA")]
    pub chi2_alpha: Option<f64>,
    /// The dataset drifted when at least this share of its features did [default: 0.5].
    #[arg(long, env = "VANE_MONITOR_DRIFT_SHARE")]
    pub drift_share: Option<f64>,
    /// No verdict for windows with fewer rows [default: 500].
    #[arg(long, env = "VANE_MONITOR_MIN_WINDOW_ROWS")]
    pub min_window_rows: Option<u64>,
}

impl ThresholdFlags {
    /// Flags over `base`.
    pub fn over(&self, base: &Thresholds) -> Thresholds {
        Thresholds {
            psi_warn: self.psi_warn.unwrap_or(base.psi_warn),
            psi_alert: self.psi_alert.unwrap_or(base.psi_alert),
            ks_alpha: self.ks_alpha.unwrap_or(base.ks_alpha),
            chi2_alpha: self.chi2_alpha.unwrap_or(base.chi2_alpha),
            drift_share: self.drift_share.unwrap_or(base.drift_share),
            min_rows: self.min_window_rows.unwrap_or(base.min_rows),
        }
    }
}

/// `vane-monitor serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Where servers send samples: tcp://host:port (or host:port) and/or unix:///path,
    /// comma-separated [default: tcp://127.0.0.1:9101].
    #[arg(long, env = "VANE_MONITOR_LISTEN", value_delimiter = ',')]
    pub listen: Vec<Listen>,
    /// HTTP address of /metrics, /drift and /report; port 0 picks a free port
    /// [default: 127.0.0.1:9102].
    #[arg(long, env = "VANE_MONITOR_HTTP")]
    pub http: Option<SocketAddr>,
    /// Registry to read each version's profile.json from: a directory, http(s)://… or
    /// mlflow://host:port.
    #[arg(long, env = "VANE_REGISTRY")]
    pub registry: Option<String>,
    /// Reference profile files: `path` (any version), `model=path` or `model@version=path`;
    /// these win over the registry. Comma-separated or repeated.
    #[arg(long = "profile", env = "VANE_MONITOR_PROFILES", value_delimiter = ',')]
    pub profiles: Vec<ProfileArg>,
    /// Rows per count window [default: 1000].
    #[arg(long, env = "VANE_MONITOR_WINDOW_ROWS")]
    pub window_rows: Option<u64>,
    /// Length of the time window in seconds [default: 300].
    #[arg(long, env = "VANE_MONITOR_WINDOW_SECONDS")]
    pub window_seconds: Option<u64>,
    /// Values kept per numeric feature and window for KS [default: 10000].
    #[arg(long, env = "VANE_MONITOR_KS_SAMPLE")]
    pub ks_sample: Option<usize>,
    /// Most concurrent sample-stream connections [default: 64].
    #[arg(long, env = "VANE_MONITOR_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most monitored streams (model × version × live/shadow) [default: 64].
    #[arg(long, env = "VANE_MONITOR_MAX_STREAMS")]
    pub max_streams: Option<usize>,
    /// Least milliseconds between two evaluations of one stream's windows; faster-closing
    /// windows are skipped (counted), bounding the monitor's CPU [default: 1000].
    #[arg(long, env = "VANE_MONITOR_EVALUATION_INTERVAL_MS")]
    pub evaluation_interval_ms: Option<u64>,
    /// TOML file with the same keys (flags and env vars win).
    #[arg(long, env = "VANE_MONITOR_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub thresholds: ThresholdFlags,
}

/// The TOML file of `serve`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<Vec<String>>,
    pub http: Option<SocketAddr>,
    pub registry: Option<String>,
    pub profiles: Option<Vec<String>>,
    pub window_rows: Option<u64>,
    pub window_seconds: Option<u64>,
    pub ks_sample: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_streams: Option<usize>,
    pub evaluation_interval_ms: Option<u64>,
    pub thresholds: Option<Thresholds>,
}

/// The validated configuration of `serve`.
#[derive(Debug, Clone, Serialize)]
pub struct ServeConfig {
    pub listen: Vec<Listen>,
    pub http: SocketAddr,
    pub registry: Option<String>,
    #[serde(skip)]
    pub profiles: Vec<ProfileArg>,
    pub profile_files: Vec<String>,
    pub max_connections: usize,
    pub settings: Settings,
}

impl ServeConfig {
    pub fn from_args(args: ServeArgs) -> Result<Self, String> {
        let file = match &args.config {
            Some(p) => load_file(p)?,
            None => FileConfig::default(),
        };
        Self::layer(args, file)
    }

    /// Pure layering, testable without the environment.
    pub fn layer(args: ServeArgs, file: FileConfig) -> Result<Self, String> {
        let listen = if !args.listen.is_empty() {
            args.listen
        } else if let Some(l) = file.listen {
            l.iter().map(|s| s.parse()).collect::<Result<_, _>>()?
        } else {
            vec![Listen::Tcp("127.0.0.1:9101".into())]
        };
        let profiles = if !args.profiles.is_empty() {
            args.profiles
        } else {
            file.profiles
                .unwrap_or_default()
                .iter()
                .map(|s| s.parse())
                .collect::<Result<_, _>>()?
        };
        let registry = args.registry.or(file.registry);
        if registry.is_none() && profiles.is_empty() {
            return Err("no reference profiles: pass --registry <dir|url> (profile.json of each version) and/or --profile <[model[@version]=]path>".into());
        }
        let thresholds = args.thresholds.over(&file.thresholds.unwrap_or_default());
        thresholds.validate()?;
        let defaults = Settings::default();
        let settings = Settings {
            window_rows: args
                .window_rows
                .or(file.window_rows)
                .unwrap_or(defaults.window_rows),
            window_time: args
                .window_seconds
                .or(file.window_seconds)
                .map_or(defaults.window_time, Duration::from_secs),
            ks_sample: args
                .ks_sample
                .or(file.ks_sample)
                .unwrap_or(defaults.ks_sample),
            max_streams: args
                .max_streams
                .or(file.max_streams)
                .unwrap_or(defaults.max_streams),
            evaluation_interval: args
                .evaluation_interval_ms
                .or(file.evaluation_interval_ms)
                .map_or(defaults.evaluation_interval, Duration::from_millis),
            thresholds,
            ..defaults
        };
        if settings.window_rows == 0 || settings.window_time.is_zero() {
            return Err("window_rows and window_seconds must be at least 1".into());
        }
        if settings.ks_sample == 0 || settings.max_streams == 0 {
            return Err("ks_sample and max_streams must be at least 1".into());
        }
        Ok(ServeConfig {
            listen,
            http: args
                .http
                .or(file.http)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9102))),
            registry,
            profile_files: profiles
                .iter()
                .map(|p| p.path.display().to_string())
                .collect(),
            profiles,
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(64)
                .max(1),
            settings,
        })
    }
}

fn load_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

/// Which columns of a dataset the batch commands read, and how.
#[derive(Debug, Clone, Default, Args)]
pub struct ColumnFlags {
    /// Numeric columns to treat as categories (text columns always are).
    #[arg(long, value_delimiter = ',')]
    pub categorical: Vec<String>,
    /// Only these columns (default: every column but --exclude).
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
    /// Columns to leave out (ids, labels, timestamps).
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
}

/// `vane-monitor profile`.
#[derive(Debug, Clone, Args)]
pub struct ProfileArgs {
    /// The reference dataset: .csv, .parquet or .jsonl.
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub cols: ColumnFlags,
    /// A column holding the model's score on these rows; it becomes the profile's score.
    #[arg(long)]
    pub score: Option<String>,
    /// Values per numeric column kept for KS.
    #[arg(long, default_value_t = 10_000)]
    pub sample: usize,
    /// Seed of that sample.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where to write profile.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// `vane-monitor compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The reference dataset (.csv, .parquet or .jsonl); optional with --profile.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// The current dataset.
    #[arg(long)]
    pub current: PathBuf,
    /// A reference profile: its frozen bins, categories and shares are the reference (KS uses
    /// --reference's values when given, else the profile's sample).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// (Default columns: those both sides have.)
    #[command(flatten)]
    pub cols: ColumnFlags,
    /// Also write the HTML report here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub thresholds: ThresholdFlags,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> ServeArgs {
        let mut full = vec!["vane-monitor", "serve"];
        full.extend_from_slice(args);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Serve(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn defaults_and_layering() {
        let cfg = ServeConfig::layer(serve(&["--registry", "/r"]), FileConfig::default()).unwrap();
        assert_eq!(cfg.listen, [Listen::Tcp("127.0.0.1:9101".into())]);
        assert_eq!(cfg.http.to_string(), "127.0.0.1:9102");
        assert_eq!(cfg.settings.window_rows, 1000);
        assert_eq!(cfg.settings.window_time, Duration::from_secs(300));
        assert_eq!(cfg.settings.thresholds, Thresholds::default());
        let file: FileConfig = toml::from_str(
            r#"
            registry = "/file"
            window_rows = 2000
            listen = ["unix:///tmp/m.sock"]
            [thresholds]
            psi_alert = 0.3
            "#,
        )
        .unwrap();
        let cfg = ServeConfig::layer(serve(&["--psi-warn", "0.05"]), file).unwrap();
        assert_eq!(cfg.registry.as_deref(), Some("/file"));
        assert_eq!(cfg.settings.window_rows, 2000);
        assert_eq!(cfg.listen, [Listen::Unix("/tmp/m.sock".into())]);
        assert_eq!(cfg.settings.thresholds.psi_alert, 0.3);
        assert_eq!(cfg.settings.thresholds.psi_warn, 0.05);
    }

    #[test]
    fn bad_configurations_are_named() {
        let e = ServeConfig::layer(serve(&[]), FileConfig::default()).unwrap_err();
        assert!(e.contains("--registry"), "{e}");
        let e = ServeConfig::layer(
            serve(&["--registry", "r", "--ks-alpha", "2"]),
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(e.contains("ks_alpha"), "{e}");
        assert!(Cli::try_parse_from(["vane-monitor", "serve", "--listen", "nowhere"]).is_err());
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
    }
}
