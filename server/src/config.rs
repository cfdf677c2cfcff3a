//! Configuration: clap flags (each with a `VANE_…` env var) layered over an optional TOML file
//! layered over defaults. Parsed and validated once at startup.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;

/// Command line of `vane-server`. Every flag also reads an environment variable; a TOML file
/// (`--config`) supplies anything not given on the command line or in the environment.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "vane-server",
    version,
    about = "Vane inference server (Open Inference Protocol v2)",
    after_help = "Examples (also `vane serve …`):
  vane-server --registry ./registry --addr 127.0.0.1:8080
  vane-server --registry mlflow://mlflow:5000 --online-store redis://redis:6379 \\
      --monitor tcp://127.0.0.1:9101 --sample-percent 10
  vane-server --config vane.toml          # flags and VANE_* variables win over the file"
)]
pub struct Cli {
    /// Model registry: a directory, a static HTTP(S) mirror of one (`http(s)://…`), or MLflow
    /// (`mlflow://host:port`).
    #[arg(long, env = "VANE_REGISTRY")]
    pub registry: Option<String>,
    /// How often to poll the registry for alias and traffic changes, in milliseconds
    /// (0 = only on SIGHUP or POST /v2/repository/index).
    #[arg(long, env = "VANE_POLL_INTERVAL_MS")]
    pub poll_interval_ms: Option<u64>,
    /// Online feature store for entity-keyed requests: a redb file path or `redis://host:port`.
    #[arg(long, env = "VANE_ONLINE_STORE")]
    pub online_store: Option<String>,
    /// Bearer token required by the repository endpoints (index, load, unload); without one
    /// they answer 403.
    #[arg(long, env = "VANE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Address to listen on; port 0 picks a free port (printed at startup).
    #[arg(long, env = "VANE_ADDR")]
    pub addr: Option<SocketAddr>,
    /// TOML configuration file (flags and env vars override it).
    #[arg(long, env = "VANE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Inference backend: auto (ONNX Runtime if available, else tract), ort, tract.
    #[arg(long, env = "VANE_BACKEND", value_enum)]
    pub backend: Option<BackendKind>,
    /// Path to libonnxruntime.so (otherwise: Vane's cache, then a Python onnxruntime package).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Alias served for each model.
    #[arg(long, env = "VANE_ALIAS")]
    pub alias: Option<String>,
    /// Serve only these registry models (comma-separated; default: every model with the
    /// alias). For registries shared with models Vane cannot serve, e.g. an MLflow registry
    /// with non-ONNX champions.
    #[arg(long, env = "VANE_SERVE_MODELS", value_delimiter = ',')]
    pub serve_models: Option<Vec<String>>,
    /// Threads of the HTTP runtime (default: number of cores).
    #[arg(long, env = "VANE_HTTP_THREADS")]
    pub http_threads: Option<usize>,
    /// Largest accepted request body in bytes (larger → 413).
    #[arg(long, env = "VANE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    #[arg(long, env = "VANE_SHUTDOWN_GRACE_S")]
    pub shutdown_grace_s: Option<u64>,
    /// Drift monitor to stream sampled traffic to: `tcp://host:port` (or `host:port`) or
    /// `unix:///path`. Without it nothing is sampled.
    #[arg(long, env = "VANE_MONITOR")]
    pub monitor: Option<String>,
    /// Sampled rows held in memory while the sender catches up (all threads together);
    /// beyond that samples are dropped (counted in vane_samples_dropped_total).
    #[arg(long, env = "VANE_SAMPLE_BUFFER_ROWS")]
    pub sample_buffer_rows: Option<usize>,
    /// Longest a request body may take to arrive, in milliseconds (slower → 408).
    #[arg(long, env = "VANE_BODY_READ_TIMEOUT_MS")]
    pub body_read_timeout_ms: Option<u64>,
    /// Longest a connection may go without a request in progress (idle keep-alive, or a
    /// request head that never completes), in milliseconds; then it is closed.
    #[arg(long, env = "VANE_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Most open client connections; beyond it the accept loop waits for one to close.
    #[arg(long, env = "VANE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most inference requests being read, decoded or waiting for a result at once, over all
    /// models; beyond it requests get 429 with Retry-After.
    #[arg(long, env = "VANE_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<usize>,
    /// Most online-store lookups in flight at once (each holds a blocking thread); beyond it
    /// entity-keyed requests wait, up to the lookup deadline.
    #[arg(long, env = "VANE_ONLINE_CONCURRENCY")]
    pub online_concurrency: Option<usize>,
    /// Deadline of one request's online-store lookups, in milliseconds (passed → 503).
    #[arg(long, env = "VANE_ONLINE_TIMEOUT_MS")]
    pub online_timeout_ms: Option<u64>,
    #[command(flatten)]
    pub model: ModelFlags,
}

/// Per-model settings settable as flags (defaults for every model).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ModelFlags {
    /// Inference worker threads per model version (each owns one backend session).
    #[arg(long, env = "VANE_WORKERS")]
    pub workers: Option<usize>,
    /// ONNX Runtime intra-op threads per session (workers × this must not exceed cores).
    #[arg(long, env = "VANE_INTRA_OP_THREADS")]
    pub intra_op_threads: Option<usize>,
    /// Most rows a worker merges into one batch.
    #[arg(long, env = "VANE_MAX_BATCH_ROWS")]
    pub max_batch_rows: Option<usize>,
    /// Longest a queued request waits for batch mates, in microseconds (only under backlog).
    #[arg(long, env = "VANE_MAX_QUEUE_DELAY_US")]
    pub max_queue_delay_us: Option<u64>,
    /// Requests the queue holds before answering 429.
    #[arg(long, env = "VANE_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// Most rows one request may carry (more → 400).
    #[arg(long, env = "VANE_MAX_REQUEST_ROWS")]
    pub max_request_rows: Option<usize>,
    /// Default per-request deadline in milliseconds (0 = none); requests may set their own.
    #[arg(long, env = "VANE_TIMEOUT_MS")]
    pub timeout_ms: Option<u64>,
    /// Accept null for numeric features and pass it to the model as NaN.
    #[arg(long, env = "VANE_ALLOW_MISSING")]
    pub allow_missing: Option<bool>,
    /// Percentage of requests (0–100) whose rows and scores are sampled to the monitor
    /// (default 100 when --monitor is set).
    #[arg(long, env = "VANE_SAMPLE_PERCENT")]
    pub sample_percent: Option<f64>,
    /// Run requests on the HTTP thread (flat combining) when one model call at batch 1 costs
    /// less than this many microseconds (measured at load); 0 = always use worker threads.
    #[arg(long, env = "VANE_INLINE_MAX_CALL_US")]
    pub inline_max_call_us: Option<u64>,
}

/// The TOML file. Top-level keys mirror the flags; `[batching]` holds model defaults and
/// `[models.<name>]` per-model overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub registry: Option<String>,
    pub poll_interval_ms: Option<u64>,
    pub admin_token: Option<String>,
    pub online_store: Option<String>,
    pub addr: Option<SocketAddr>,
    pub backend: Option<BackendKind>,
    pub ort_lib: Option<PathBuf>,
    pub alias: Option<String>,
    pub serve_models: Option<Vec<String>>,
    pub http_threads: Option<usize>,
    pub max_body_bytes: Option<usize>,
    pub shutdown_grace_s: Option<u64>,
    pub monitor: Option<String>,
    pub sample_buffer_rows: Option<usize>,
    pub body_read_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_concurrent_requests: Option<usize>,
    pub online_concurrency: Option<usize>,
    pub online_timeout_ms: Option<u64>,
    #[serde(default)]
    pub batching: PartialModelSettings,
    #[serde(default)]
    pub models: BTreeMap<String, PartialModelSettings>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialModelSettings {
    pub workers: Option<usize>,
    pub intra_op_threads: Option<usize>,
    pub max_batch_rows: Option<usize>,
    pub max_queue_delay_us: Option<u64>,
    pub queue_capacity: Option<usize>,
    pub max_request_rows: Option<usize>,
    pub timeout_ms: Option<u64>,
    pub allow_missing: Option<bool>,
    pub sample_percent: Option<f64>,
    pub inline_max_call_us: Option<u64>,
}

impl PartialModelSettings {
    fn from_flags(f: &ModelFlags) -> Self {
        Self {
            workers: f.workers,
            intra_op_threads: f.intra_op_threads,
            max_batch_rows: f.max_batch_rows,
            max_queue_delay_us: f.max_queue_delay_us,
            queue_capacity: f.queue_capacity,
            max_request_rows: f.max_request_rows,
            timeout_ms: f.timeout_ms,
            allow_missing: f.allow_missing,
            sample_percent: f.sample_percent,
            inline_max_call_us: f.inline_max_call_us,
        }
    }

    /// Values of `self`, falling back to `base`.
    fn over(&self, base: &ModelSettings) -> ModelSettings {
        ModelSettings {
            workers: self.workers.unwrap_or(base.workers),
            intra_op_threads: self.intra_op_threads.unwrap_or(base.intra_op_threads),
            max_batch_rows: self.max_batch_rows.unwrap_or(base.max_batch_rows),
            max_queue_delay_us: self.max_queue_delay_us.unwrap_or(base.max_queue_delay_us),
            queue_capacity: self.queue_capacity.unwrap_or(base.queue_capacity),
            max_request_rows: self.max_request_rows.unwrap_or(base.max_request_rows),
            timeout_ms: self.timeout_ms.unwrap_or(base.timeout_ms),
            allow_missing: self.allow_missing.unwrap_or(base.allow_missing),
            sample_percent: self.sample_percent.unwrap_or(base.sample_percent),
            inline_max_call_us: self.inline_max_call_us.unwrap_or(base.inline_max_call_us),
        }
    }

    /// Fields set in `self` win over fields set in `other`.
    fn or(&self, other: &PartialModelSettings) -> PartialModelSettings {
        PartialModelSettings {
            workers: self.workers.or(other.workers),
            intra_op_threads: self.intra_op_threads.or(other.intra_op_threads),
            max_batch_rows: self.max_batch_rows.or(other.max_batch_rows),
            max_queue_delay_us: self.max_queue_delay_us.or(other.max_queue_delay_us),
            queue_capacity: self.queue_capacity.or(other.queue_capacity),
            max_request_rows: self.max_request_rows.or(other.max_request_rows),
            timeout_ms: self.timeout_ms.or(other.timeout_ms),
            allow_missing: self.allow_missing.or(other.allow_missing),
            sample_percent: self.sample_percent.or(other.sample_percent),
            inline_max_call_us: self.inline_max_call_us.or(other.inline_max_call_us),
        }
    }
}

/// Effective settings of one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSettings {
    pub workers: usize,
    pub intra_op_threads: usize,
    pub max_batch_rows: usize,
    pub max_queue_delay_us: u64,
    pub queue_capacity: usize,
    pub max_request_rows: usize,
    pub timeout_ms: u64,
    pub allow_missing: bool,
    /// Share of requests sampled to the drift monitor, in percent (only with a monitor).
    pub sample_percent: f64,
    /// The inline (flat-combining) path's cost ceiling per call at batch 1; 0 = off.
    pub inline_max_call_us: u64,
}

impl ModelSettings {
    pub fn defaults(cores: usize) -> Self {
        Self {
            // Half the cores score, half serve HTTP: more inference threads than that only
            // contend with the connections feeding them.
            workers: (cores / 2).max(1),
            intra_op_threads: 1,
            max_batch_rows: 64,
            max_queue_delay_us: 500,
            queue_capacity: 1024,
            max_request_rows: 4096,
            timeout_ms: 10_000,
            allow_missing: false,
            sample_percent: 100.0,
            inline_max_call_us: 50,
        }
    }

    pub fn max_queue_delay(&self) -> Duration {
        Duration::from_micros(self.max_queue_delay_us)
    }

    pub fn default_timeout(&self) -> Option<Duration> {
        (self.timeout_ms > 0).then(|| Duration::from_millis(self.timeout_ms))
    }

    fn validate(&self, what: &str, cores: usize) -> Result<(), String> {
        let positive = [
            ("workers", self.workers),
            ("intra_op_threads", self.intra_op_threads),
            ("max_batch_rows", self.max_batch_rows),
            ("queue_capacity", self.queue_capacity),
            ("max_request_rows", self.max_request_rows),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("{what}: {name} must be at least 1"));
            }
        }
        if !(0.0..=100.0).contains(&self.sample_percent) {
            return Err(format!(
                "{what}: sample_percent must be within 0..=100 (got {})",
                self.sample_percent
            ));
        }
        if self.workers * self.intra_op_threads > cores {
            return Err(format!(
                "{what}: workers ({}) × intra_op_threads ({}) exceeds the {cores} available cores; lower one of them",
                self.workers, self.intra_op_threads
            ));
        }
        Ok(())
    }
}

/// What one client, or all of them together, may hold of the server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_concurrent_requests: usize,
    pub online_concurrency: usize,
    pub online_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_concurrent_requests: 1024,
            online_concurrency: 64,
            online_timeout: Duration::from_secs(1),
        }
    }
}

impl Limits {
    fn validate(&self) -> Result<(), String> {
        let positive = [
            (
                "body_read_timeout_ms",
                self.body_read_timeout.as_millis() as usize,
            ),
            ("idle_timeout_ms", self.idle_timeout.as_millis() as usize),
            ("max_connections", self.max_connections),
            ("max_concurrent_requests", self.max_concurrent_requests),
            ("online_concurrency", self.online_concurrency),
            (
                "online_timeout_ms",
                self.online_timeout.as_millis() as usize,
            ),
        ];
        match positive.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(format!("{name} must be at least 1")),
            None => Ok(()),
        }
    }
}

/// The validated, effective configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub registry: String,
    pub poll_interval_ms: u64,
    pub online_store: Option<String>,
    /// Never printed.
    #[serde(skip_serializing)]
    pub admin_token: Option<String>,
    pub addr: SocketAddr,
    pub backend: BackendKind,
    pub ort_lib: Option<PathBuf>,
    pub alias: String,
    /// The registry models served; empty = all of them.
    pub serve_models: Vec<String>,
    pub http_threads: usize,
    pub max_body_bytes: usize,
    pub shutdown_grace_s: u64,
    /// Where sampled traffic goes; `None` = no sampling.
    pub sampler: Option<SamplerOptions>,
    pub limits: Limits,
    pub cores: usize,
    pub defaults: ModelSettings,
    pub models: BTreeMap<String, ModelSettings>,
}

impl Config {
    /// Layers flags/env over the TOML file (if any) over defaults, and validates.
    pub fn from_cli(cli: Cli) -> Result<Self, String> {
        let file = match &cli.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        Self::layer(cli, file, available_cores())
    }

    /// Pure layering, testable without touching the environment or the filesystem.
    pub fn layer(cli: Cli, file: FileConfig, cores: usize) -> Result<Self, String> {
        let registry = cli
            .registry
            .or(file.registry)
            .ok_or("no registry: pass --registry <dir|http(s) url|mlflow url> (or VANE_REGISTRY, or `registry` in the config file)")?;
        let flag_defaults = PartialModelSettings::from_flags(&cli.model);
        let defaults = flag_defaults
            .or(&file.batching)
            .over(&ModelSettings::defaults(cores));
        defaults.validate("defaults", cores)?;
        let mut models = BTreeMap::new();
        for (name, partial) in &file.models {
            // Flags and env vars set on the command line still win over the file.
            let s = flag_defaults.or(partial).over(&defaults);
            s.validate(&format!("model {name:?}"), cores)?;
            models.insert(name.clone(), s);
        }
        let sampler = match cli.monitor.or(file.monitor) {
            None => None,
            Some(spec) => Some(SamplerOptions {
                addr: spec.parse()?,
                max_queued_rows: cli
                    .sample_buffer_rows
                    .or(file.sample_buffer_rows)
                    .unwrap_or(64 * 1024)
                    .max(1),
                flush_interval: Duration::from_millis(5),
            }),
        };
        let cfg = Config {
            registry,
            poll_interval_ms: cli
                .poll_interval_ms
                .or(file.poll_interval_ms)
                .unwrap_or(2000),
            admin_token: cli
                .admin_token
                .or(file.admin_token)
                .filter(|t| !t.is_empty()),
            online_store: cli.online_store.or(file.online_store),
            addr: cli
                .addr
                .or(file.addr)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            backend: cli.backend.or(file.backend).unwrap_or(BackendKind::Auto),
            ort_lib: cli.ort_lib.or(file.ort_lib),
            alias: cli
                .alias
                .or(file.alias)
                .unwrap_or_else(|| "champion".into()),
            serve_models: cli
                .serve_models
                .or(file.serve_models)
                .unwrap_or_default()
                .into_iter()
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect(),
            http_threads: cli
                .http_threads
                .or(file.http_threads)
                .unwrap_or(cores)
                .max(1),
            max_body_bytes: cli
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(8 << 20),
            shutdown_grace_s: cli.shutdown_grace_s.or(file.shutdown_grace_s).unwrap_or(30),
            sampler,
            limits: Limits {
                body_read_timeout: Duration::from_millis(
                    cli.body_read_timeout_ms
                        .or(file.body_read_timeout_ms)
                        .unwrap_or(30_000),
                ),
                idle_timeout: Duration::from_millis(
                    cli.idle_timeout_ms
                        .or(file.idle_timeout_ms)
                        .unwrap_or(30_000),
                ),
                max_connections: cli
                    .max_connections
                    .or(file.max_connections)
                    .unwrap_or(10_000),
                max_concurrent_requests: cli
                    .max_concurrent_requests
                    .or(file.max_concurrent_requests)
                    .unwrap_or(1024),
                online_concurrency: cli
                    .online_concurrency
                    .or(file.online_concurrency)
                    .unwrap_or(64),
                online_timeout: Duration::from_millis(
                    cli.online_timeout_ms
                        .or(file.online_timeout_ms)
                        .unwrap_or(1000),
                ),
            },
            cores,
            defaults,
            models,
        };
        cfg.limits.validate()?;
        if cfg.max_body_bytes == 0 {
            return Err("max_body_bytes must be at least 1".into());
        }
        Ok(cfg)
    }

    /// Effective settings for `model`.
    pub fn model_settings(&self, model: &str) -> &ModelSettings {
        self.models.get(model).unwrap_or(&self.defaults)
    }
}

fn load_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

/// Cores this process may use.
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Where the monitor listens: `tcp://host:port` (or plain `host:port`) or `unix:///path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum MonitorAddr {
    Tcp(String),
    Unix(PathBuf),
}

impl FromStr for MonitorAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(format!("monitor address {s:?} names no socket path"));
            }
            return Ok(MonitorAddr::Unix(PathBuf::from(path)));
        }
        let hostport = s.strip_prefix("tcp://").unwrap_or(s);
        match hostport.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(MonitorAddr::Tcp(hostport.to_string()))
            }
            _ => Err(format!(
                "monitor address {s:?}: expected tcp://host:port, host:port or unix:///path"
            )),
        }
    }
}

impl std::fmt::Display for MonitorAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MonitorAddr::Tcp(a) => write!(f, "tcp://{a}"),
            MonitorAddr::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// Sizing of the sampler.
#[derive(Debug, Clone, Serialize)]
pub struct SamplerOptions {
    pub addr: MonitorAddr,
    /// Rows the buffers hold, all threads together, before samples are dropped.
    pub max_queued_rows: usize,
    /// How often the sender drains the ring.
    pub flush_interval: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut full = vec!["vane-server"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full).unwrap()
    }

    #[test]
    fn defaults_apply() {
        let cfg = Config::layer(cli(&["--registry", "/r"]), FileConfig::default(), 4).unwrap();
        assert_eq!(cfg.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.backend, BackendKind::Auto);
        assert_eq!(cfg.defaults.workers, 2);
        assert_eq!(cfg.alias, "champion");
        assert_eq!(cfg.poll_interval_ms, 2000);
        assert!(cfg.admin_token.is_none());
        let cfg = Config::layer(
            cli(&["--registry", "/r", "--admin-token", "s3cret"]),
            FileConfig::default(),
            4,
        )
        .unwrap();
        let printed = serde_json::to_string(&cfg).unwrap();
        assert!(
            !printed.contains("s3cret"),
            "the token must never be printed: {printed}"
        );
    }

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let file: FileConfig = toml::from_str(
            r#"
            registry = "/from-file"
            addr = "0.0.0.0:9000"
            backend = "tract"
            serve_models = ["a"]
            [batching]
            max_batch_rows = 128
            max_queue_delay_us = 100
            [models.m]
            max_batch_rows = 256
            workers = 1
            "#,
        )
        .unwrap();
        let cfg = Config::layer(
            cli(&["--max-queue-delay-us", "7", "--backend", "ort"]),
            file,
            2,
        )
        .unwrap();
        assert_eq!(cfg.registry, "/from-file");
        assert_eq!(cfg.backend, BackendKind::Ort);
        assert_eq!(cfg.defaults.max_batch_rows, 128);
        assert_eq!(cfg.defaults.max_queue_delay_us, 7);
        let m = cfg.model_settings("m");
        assert_eq!(
            (m.max_batch_rows, m.workers, m.max_queue_delay_us),
            (256, 1, 7)
        );
        assert_eq!(cfg.model_settings("other").max_batch_rows, 128);
        assert_eq!(cfg.serve_models, ["a"]);
        let cfg = Config::layer(
            cli(&["--registry", "/r", "--serve-models", "b, c,"]),
            FileConfig::default(),
            2,
        )
        .unwrap();
        assert_eq!(cfg.serve_models, ["b", "c"]);
    }

    #[test]
    fn oversubscription_is_refused() {
        let err = Config::layer(
            cli(&[
                "--registry",
                "/r",
                "--workers",
                "2",
                "--intra-op-threads",
                "2",
            ]),
            FileConfig::default(),
            2,
        )
        .unwrap_err();
        assert!(err.contains("exceeds"), "{err}");
    }

    #[test]
    fn missing_registry_and_bad_values_are_named() {
        let err = Config::layer(cli(&[]), FileConfig::default(), 2).unwrap_err();
        assert!(err.contains("--registry"), "{err}");
        let err = Config::layer(
            cli(&["--registry", "/r", "--max-batch-rows", "0"]),
            FileConfig::default(),
            2,
        )
        .unwrap_err();
        assert!(err.contains("max_batch_rows"), "{err}");
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
        assert!(Cli::try_parse_from(["vane-server", "--backend", "gpu"]).is_err());
    }
}
