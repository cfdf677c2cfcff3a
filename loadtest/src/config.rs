//! Command-line configuration: every flag has a `VANE_LOADTEST_…` environment variable; the
//! doc comments are the help text. [`Config::try_parse_from`] parses without touching the
//! process environment's arguments, so tests can check it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::body::Format;
use crate::error::ConfigError;
use crate::schedule::{RateSchedule, parse_duration, parse_ramp, parse_steps};

/// How the run reports progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A live line when stderr is a terminal, one line per second otherwise.
    Auto,
    /// Always the live line (indicatif).
    Bar,
    /// One plain line per second.
    Lines,
    /// Nothing.
    Off,
}

/// The order requests walk the dataset in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrderArg {
    /// Row chunks in order, wrapping around.
    Cycle,
    /// Row chunks drawn at random (seeded by --seed).
    Sample,
}

/// Open- and closed-loop HTTP load with honest latency, per model version; compares a canary
/// with its baseline and exits 0 (pass), 1 (fail) or 2 (could not judge).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "vane-loadtest",
    about,
    long_about = None,
    after_help = "Examples (also `vane loadtest …`):
  vane-loadtest --target http://127.0.0.1:8080 --model credit-risk --rate 2000 --duration 30s
  vane-loadtest --target http://127.0.0.1:8080 --model credit-risk --compare champion,canary \\
      --data rows.parquet --rate 400 --duration 30s --json verdict.json   # exit 0 pass, 1 fail, 2 n/a"
)]
pub struct Config {
    /// Server base URL (`http://host:port`), or a full URL whose path is sent as is (with
    /// --body). Give two to compare them: the first is the baseline, the second the canary.
    #[arg(
        long = "target",
        env = "VANE_LOADTEST_TARGET",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    pub targets: Vec<String>,

    /// Model to load (requests go to /v2/models/{model}/infer; features come from
    /// GET /v2/models/{model}).
    #[arg(long, env = "VANE_LOADTEST_MODEL")]
    pub model: Option<String>,

    /// Send every request to this version (/versions/{v}/infer): a number or an alias
    /// (champion, canary, shadow) resolved through the model's metadata (`parameters.routing`).
    #[arg(long, env = "VANE_LOADTEST_VERSION")]
    pub version: Option<String>,

    /// Canary check on one server: BASELINE,CANARY versions or aliases (e.g. champion,canary).
    /// Every row goes to both versions, interleaved, under the same load.
    #[arg(long, env = "VANE_LOADTEST_COMPARE")]
    pub compare: Option<String>,

    /// With --compare: wait up to this long for both versions to be served (a rollout step
    /// that has just moved an alias runs before the server's next registry poll).
    #[arg(long, env = "VANE_LOADTEST_WAIT_SERVED", default_value = "0s", value_parser = parse_duration)]
    pub wait_served: Duration,

    /// Request body format.
    #[arg(
        long,
        value_enum,
        env = "VANE_LOADTEST_FORMAT",
        default_value = "tensor"
    )]
    pub format: Format,

    /// Send this file as every request's body instead of model rows (no metadata needed).
    #[arg(long, env = "VANE_LOADTEST_BODY")]
    pub body: Option<PathBuf>,

    /// Content-Type of the requests.
    #[arg(
        long,
        env = "VANE_LOADTEST_CONTENT_TYPE",
        default_value = "application/json"
    )]
    pub content_type: String,

    /// HTTP method of --body requests.
    #[arg(long, env = "VANE_LOADTEST_METHOD", default_value = "POST")]
    pub method: String,

    /// Rows to send: a CSV, Parquet or JSON Lines file with a column per model feature.
    #[arg(long, env = "VANE_LOADTEST_DATA")]
    pub data: Option<PathBuf>,

    /// Rows per request.
    #[arg(long, env = "VANE_LOADTEST_ROWS_PER_REQUEST", default_value_t = 1)]
    pub rows_per_request: usize,

    /// Whether requests walk the rows in order or sample them.
    #[arg(long, value_enum, env = "VANE_LOADTEST_ORDER", default_value = "cycle")]
    pub order: OrderArg,

    /// Seed of sampling, synthetic rows and generated route keys.
    #[arg(long, env = "VANE_LOADTEST_SEED", default_value_t = 42)]
    pub seed: u64,

    /// Most dataset rows read (and pre-encoded).
    #[arg(long, env = "VANE_LOADTEST_LIMIT_ROWS", default_value_t = 100_000)]
    pub limit_rows: usize,

    /// Without --data: how many synthetic rows to generate.
    #[arg(long, env = "VANE_LOADTEST_SYNTHETIC_ROWS", default_value_t = 10_000)]
    pub synthetic_rows: usize,

    /// Reference profile (profile.json of a registry version) the synthetic rows are drawn
    /// from; without it they only follow the model metadata.
    #[arg(long, env = "VANE_LOADTEST_PROFILE")]
    pub profile: Option<PathBuf>,

    /// Entity-keyed requests: these dataset columns (e.g. applicant_id, or
    /// applicant_ref,bureau_id for composite keys) are sent as the join keys — numeric columns
    /// as INT64, text columns as strings — and model features the dataset lacks are read by
    /// the server from its online store.
    #[arg(
        long = "entity-key",
        env = "VANE_LOADTEST_ENTITY_KEY",
        value_delimiter = ','
    )]
    pub entity_keys: Vec<String>,

    /// Send this dataset column as `x-vane-route-key` (sticky canary routing).
    #[arg(
        long,
        env = "VANE_LOADTEST_ROUTE_KEY_COLUMN",
        conflicts_with = "route_keys"
    )]
    pub route_key_column: Option<String>,

    /// Send generated route keys, this many distinct ones (`k0` … `kN-1`).
    #[arg(long, env = "VANE_LOADTEST_ROUTE_KEYS")]
    pub route_keys: Option<u64>,

    /// Open loop at a constant rate (requests per second, all threads together).
    #[arg(long, env = "VANE_LOADTEST_RATE", conflicts_with_all = ["ramp", "steps"])]
    pub rate: Option<f64>,

    /// Open loop ramping FROM:TO:DURATION (e.g. 100:2000:30s), then holding TO.
    #[arg(long, env = "VANE_LOADTEST_RAMP", conflicts_with = "steps")]
    pub ramp: Option<String>,

    /// Open loop in steps RATE,RATE,…@DURATION (e.g. 500,1000,2000@10s), then holding the last.
    #[arg(long, env = "VANE_LOADTEST_STEPS")]
    pub steps: Option<String>,

    /// Connections (closed loop: concurrent requests; open loop: most requests in flight).
    #[arg(
        long,
        short = 'c',
        env = "VANE_LOADTEST_CONNECTIONS",
        default_value_t = 32
    )]
    pub connections: usize,

    /// Client threads, each a single-threaded async runtime with its share of the connections.
    #[arg(long, short = 't', env = "VANE_LOADTEST_THREADS", default_value_t = 1)]
    pub threads: usize,

    /// Measured duration (after the warm-up).
    #[arg(long, short = 'd', env = "VANE_LOADTEST_DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Stop after this many measured requests (or at --duration, whichever comes first).
    #[arg(long, short = 'n', env = "VANE_LOADTEST_REQUESTS")]
    pub requests: Option<u64>,

    /// Load sent before the measurement, excluded from every figure.
    #[arg(long, env = "VANE_LOADTEST_WARMUP", default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// A request without a complete response after this long counts as a timeout error.
    #[arg(long, env = "VANE_LOADTEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Step the offered rate (--sweep-rates) until p99 exceeds --slo-p99 or errors appear;
    /// report the saturation throughput.
    #[arg(long, env = "VANE_LOADTEST_SWEEP")]
    pub sweep: bool,

    /// Sweep rates START:END:STEP; STEP `+500` adds, `x1.5` multiplies.
    #[arg(
        long,
        env = "VANE_LOADTEST_SWEEP_RATES",
        default_value = "500:200000:x1.5"
    )]
    pub sweep_rates: String,

    /// The p99 a sweep step must stay under.
    #[arg(long, env = "VANE_LOADTEST_SLO_P99", default_value = "10ms", value_parser = parse_duration)]
    pub slo_p99: Duration,

    /// Measured duration of each sweep step.
    #[arg(long, env = "VANE_LOADTEST_STEP_DURATION", default_value = "5s", value_parser = parse_duration)]
    pub step_duration: Duration,

    /// A pass/fail threshold, k6 style (repeatable): 'p99 < 2ms', 'error_rate < 0.1%',
    /// 'p99_delta < 20%', 'latency_shift < 10%', 'score_psi < 0.1', 'score_mae < 0.01'.
    #[arg(
        long = "threshold",
        env = "VANE_LOADTEST_THRESHOLD",
        value_delimiter = ';'
    )]
    pub thresholds: Vec<String>,

    /// A TOML file of thresholds (`thresholds = [...]` or `[thresholds]` groups of lists).
    #[arg(long = "thresholds", env = "VANE_LOADTEST_THRESHOLDS")]
    pub thresholds_file: Option<PathBuf>,

    /// Do not add the compare-mode default thresholds (latency_shift < 10%, p99_delta < 50%,
    /// error_rate < 1%, error_rate_delta < 0.5%, score_psi < 0.1, score_ks < 0.1,
    /// score_mae < 0.01, score_flip < 1%).
    #[arg(long, env = "VANE_LOADTEST_NO_DEFAULT_THRESHOLDS")]
    pub no_default_thresholds: bool,

    /// Decision cutoff on the score, for the share of flipped decisions.
    #[arg(long, env = "VANE_LOADTEST_CUTOFF", default_value_t = 0.5)]
    pub cutoff: f64,

    /// Fewest latencies (or paired scores) a comparison needs; fewer → could not judge.
    #[arg(long, env = "VANE_LOADTEST_MIN_SAMPLES", default_value_t = 50)]
    pub min_samples: usize,

    /// Latencies kept per arm (uniform sample) for the Mann–Whitney test.
    #[arg(long, env = "VANE_LOADTEST_LATENCY_SAMPLE", default_value_t = 20_000)]
    pub latency_sample: usize,

    /// Write the JSON summary here.
    #[arg(long, env = "VANE_LOADTEST_JSON")]
    pub json: Option<PathBuf>,

    /// Write per-second figures (CSV) here.
    #[arg(long, env = "VANE_LOADTEST_CSV")]
    pub csv: Option<PathBuf>,

    /// Write HDR percentile spectra (.hgrm) per arm and version into this directory.
    #[arg(long, env = "VANE_LOADTEST_HGRM")]
    pub hgrm: Option<PathBuf>,

    /// Write SVG plots (percentile spectrum per version, latency and throughput over time)
    /// into this directory.
    #[arg(long, env = "VANE_LOADTEST_PLOTS")]
    pub plots: Option<PathBuf>,

    /// Progress on stderr.
    #[arg(
        long,
        value_enum,
        env = "VANE_LOADTEST_PROGRESS",
        default_value = "auto"
    )]
    pub progress: ProgressMode,
}

/// How requests are generated.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A fixed body.
    Body(PathBuf),
    /// Model rows.
    Model(String),
}

impl Config {
    /// The offered-rate schedule, `None` for the closed loop.
    pub fn schedule(&self) -> Result<Option<RateSchedule>, ConfigError> {
        Ok(match (&self.rate, &self.ramp, &self.steps) {
            (Some(r), _, _) => {
                if !(r.is_finite() && *r > 0.0) {
                    return Err(ConfigError::Invalid(format!(
                        "--rate {r}: must be a positive number"
                    )));
                }
                Some(RateSchedule::constant(*r))
            }
            (None, Some(s), _) => Some(parse_ramp(s)?),
            (None, None, Some(s)) => Some(parse_steps(s)?),
            _ => None,
        })
    }

    /// `(baseline, canary)` of --compare.
    pub fn compare_pair(&self) -> Result<Option<(String, String)>, ConfigError> {
        let Some(c) = &self.compare else {
            return Ok(None);
        };
        match c.split(',').map(str::trim).collect::<Vec<_>>().as_slice() {
            [a, b] if !a.is_empty() && !b.is_empty() => Ok(Some((a.to_string(), b.to_string()))),
            _ => Err(ConfigError::Invalid(format!(
                "--compare {c:?}: expected BASELINE,CANARY (versions or aliases)"
            ))),
        }
    }

    /// Sweep rates from `--sweep-rates`.
    pub fn sweep_rates(&self) -> Result<Vec<f64>, ConfigError> {
        parse_sweep(&self.sweep_rates)
    }

    /// Checks everything that can be checked without the network.
    pub fn validate(&self) -> Result<Source, ConfigError> {
        let inv = |m: String| Err(ConfigError::Invalid(m));
        if self.targets.is_empty() || self.targets.len() > 2 {
            return inv(format!(
                "give one --target, or two to compare (got {})",
                self.targets.len()
            ));
        }
        let source = match (&self.body, &self.model) {
            (Some(b), None) => Source::Body(b.clone()),
            (None, Some(m)) => Source::Model(m.clone()),
            (Some(_), Some(_)) => return inv("--body and --model exclude each other".into()),
            (None, None) => {
                return inv("nothing to send: give --model (model rows) or --body FILE".into());
            }
        };
        let compare = self.compare_pair()?;
        if compare.is_some() {
            if self.targets.len() > 1 {
                return inv("--compare compares two versions on one --target; two targets already compare each other".into());
            }
            if self.version.is_some() {
                return inv("--compare and --version exclude each other".into());
            }
            if !matches!(source, Source::Model(_)) {
                return inv("--compare needs --model".into());
            }
            if self.format == Format::Records {
                return inv("--compare sends to /versions/{v}/infer, which the v1 records route lacks; use --format tensor, features or binary".into());
            }
        }
        if self.format == Format::Records && self.version.is_some() {
            return inv(
                "the v1 records route has no version path; drop --version or use a V2 format"
                    .into(),
            );
        }
        if self.rows_per_request == 0 {
            return inv("--rows-per-request must be at least 1".into());
        }
        if self.connections == 0 || self.threads == 0 {
            return inv("--connections and --threads must be at least 1".into());
        }
        if self.threads > self.connections {
            return inv(format!(
                "--threads {} exceeds --connections {}: every thread needs a connection",
                self.threads, self.connections
            ));
        }
        if self.duration.is_zero() {
            return inv("--duration must be positive".into());
        }
        if self.requests == Some(0) {
            return inv("--requests must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.cutoff) {
            return inv(format!("--cutoff {} must be within [0, 1]", self.cutoff));
        }
        if self.sweep {
            self.sweep_rates()?;
            if self.rate.is_some() || self.ramp.is_some() || self.steps.is_some() {
                return inv(
                    "--sweep chooses the rates itself (--sweep-rates); drop --rate/--ramp/--steps"
                        .into(),
                );
            }
        }
        self.schedule()?;
        for t in &self.thresholds {
            crate::threshold::Threshold::parse(t)?;
        }
        if self.data.is_some() && self.body.is_some() {
            return inv("--data and --body exclude each other".into());
        }
        Ok(source)
    }
}

/// `START:END:STEP` with STEP `+N` (or `N`) or `xF`.
pub fn parse_sweep(s: &str) -> Result<Vec<f64>, ConfigError> {
    let bad = || {
        ConfigError::Invalid(format!(
            "--sweep-rates {s:?}: expected START:END:STEP, e.g. 500:20000:+500 or 500:200000:x1.5"
        ))
    };
    let parts: Vec<&str> = s.split(':').map(str::trim).collect();
    let [a, b, step] = parts.as_slice() else {
        return Err(bad());
    };
    let start: f64 = a.parse().map_err(|_| bad())?;
    let end: f64 = b.parse().map_err(|_| bad())?;
    if !(start > 0.0 && end >= start && end.is_finite()) {
        return Err(bad());
    }
    let mut out = Vec::new();
    let mut r = start;
    if let Some(f) = step.strip_prefix('x') {
        let f: f64 = f.parse().map_err(|_| bad())?;
        if !(f > 1.0 && f.is_finite()) {
            return Err(bad());
        }
        while r <= end * (1.0 + 1e-9) && out.len() < 1000 {
            out.push(r.round());
            r *= f;
        }
    } else {
        let d: f64 = step.trim_start_matches('+').parse().map_err(|_| bad())?;
        if !(d > 0.0 && d.is_finite()) {
            return Err(bad());
        }
        while r <= end * (1.0 + 1e-9) && out.len() < 1000 {
            out.push(r);
            r += d;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("vane-loadtest").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_and_flags() {
        let c = parse(&["--model", "credit-risk"]).unwrap();
        assert_eq!(c.targets, vec!["http://127.0.0.1:8080"]);
        assert_eq!(c.duration, Duration::from_secs(10));
        assert_eq!(c.connections, 32);
        assert_eq!(c.schedule().unwrap(), None);
        assert_eq!(c.validate().unwrap(), Source::Model("credit-risk".into()));
        let c = parse(&[
            "--model",
            "m",
            "--rate",
            "2000",
            "--warmup",
            "2s",
            "-d",
            "30s",
            "-n",
            "1000",
            "--threshold",
            "p99 < 2ms",
            "--threshold",
            "error_rate < 0.1%",
        ])
        .unwrap();
        assert_eq!(c.schedule().unwrap(), Some(RateSchedule::constant(2000.0)));
        assert_eq!(c.warmup, Duration::from_secs(2));
        assert_eq!(c.requests, Some(1000));
        assert_eq!(c.thresholds.len(), 2);
        c.validate().unwrap();
    }

    #[test]
    fn compare_and_targets() {
        let c = parse(&["--model", "m", "--compare", "champion, canary"]).unwrap();
        assert_eq!(
            c.compare_pair().unwrap(),
            Some(("champion".into(), "canary".into()))
        );
        c.validate().unwrap();
        let c = parse(&[
            "--model",
            "m",
            "--target",
            "http://a:1",
            "--target",
            "http://b:2",
        ])
        .unwrap();
        assert_eq!(c.targets.len(), 2);
        c.validate().unwrap();
        let c = parse(&[
            "--model",
            "m",
            "--target",
            "http://a:1,http://b:2",
            "--compare",
            "1,2",
        ])
        .unwrap();
        assert!(c.validate().is_err());
        assert!(
            parse(&["--model", "m", "--compare", "1"])
                .unwrap()
                .validate()
                .is_err()
        );
        let c = parse(&["--model", "m", "--compare", "1,2", "--format", "records"]).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("records"));
    }

    #[test]
    fn rejects_bad_combinations() {
        assert!(parse(&["--rate", "10", "--ramp", "1:2:3s", "--model", "m"]).is_err());
        assert!(parse(&["--model", "m", "--duration", "soon"]).is_err());
        assert!(parse(&[]).unwrap().validate().is_err());
        assert!(
            parse(&["--model", "m", "--body", "b.json"])
                .unwrap()
                .validate()
                .is_err()
        );
        assert!(
            parse(&["--model", "m", "--threads", "4", "-c", "2"])
                .unwrap()
                .validate()
                .is_err()
        );
        assert!(
            parse(&["--model", "m", "--threshold", "p99 <"])
                .unwrap()
                .validate()
                .is_err()
        );
        assert!(
            parse(&["--model", "m", "--sweep", "--rate", "5"])
                .unwrap()
                .validate()
                .is_err()
        );
        assert!(
            parse(&["--model", "m", "--ramp", "1:2"])
                .unwrap()
                .validate()
                .is_err()
        );
    }

    #[test]
    fn sweep_rates() {
        assert_eq!(
            parse_sweep("500:2000:+500").unwrap(),
            vec![500.0, 1000.0, 1500.0, 2000.0]
        );
        assert_eq!(
            parse_sweep("100:1000:x2").unwrap(),
            vec![100.0, 200.0, 400.0, 800.0]
        );
        assert!(parse_sweep("100:10:+5").is_err());
        assert!(parse_sweep("100:1000:x1").is_err());
        assert!(parse_sweep("100:1000").is_err());
    }
}
