//! `vane-server`: a latency-first inference server for tabular ONNX models speaking the Open
//! Inference Protocol (KServe v2) over HTTP/JSON.
//!
//! Data flow: [`http`] (hyper 1) routes a request → [`codec`] validates and decodes it against
//! the model's [`vane_registry::Signature`] into an `[N, F]` f32 batch → the model version's
//! [`batcher::Batcher`] (bounded crossbeam queue + worker OS threads) merges it with other
//! requests → a [`backend::Session`] (ONNX Runtime via `ort`, or tract) scores the batch →
//! each request gets its own rows back through a oneshot → [`codec`] encodes the response.
//!
//! Principal types: [`config::Config`] (flags + env + TOML), [`model::ModelTable`] (the live
//! route table in an `ArcSwap`) of [`model::LoadedModel`]s, [`backend::Engine`] /
//! [`backend::Session`] (the backend trait pair), [`batcher::Batcher`], [`error::ApiError`]
//! (the one error → status mapping), [`metrics::Metrics`] (Prometheus) and
//! [`stats::ModelStats`] (HDR percentiles).

pub mod backend;
pub mod batcher;
pub mod codec;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod model;
pub mod stats;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use vane_registry::{DirRegistry, RegistryError, VersionRef};

use crate::backend::onnxruntime::OrtRuntime;
use crate::backend::{BackendError, BackendKind, LoadOptions};
use crate::config::Config;
use crate::http::AppState;
use crate::metrics::Metrics;
use crate::model::{LoadedModel, ModelEntry, ModelTable};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Ort(String),
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("model {model:?} version {version}: {source}")]
    Load {
        model: String,
        version: u64,
        #[source]
        source: BackendError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

/// Initializes ONNX Runtime according to `--backend`: required for `ort`, optional for
/// `auto` (one log line when falling back to tract), skipped for `tract`.
pub fn init_ort(cfg: &Config) -> Result<Option<Arc<OrtRuntime>>, StartError> {
    let attempt = || -> Result<Arc<OrtRuntime>, String> {
        let (path, source) = backend::ortlib::discover(cfg.ort_lib.as_deref())?;
        let rt = OrtRuntime::init(&path).map_err(|e| e.to_string())?;
        tracing::info!(path = %path.display(), %source, "ONNX Runtime loaded");
        Ok(Arc::new(rt))
    };
    match cfg.backend {
        BackendKind::Tract => Ok(None),
        BackendKind::Ort => attempt()
            .map(Some)
            .map_err(|e| StartError::Ort(format!("--backend ort: {e}"))),
        BackendKind::Auto => match attempt() {
            Ok(rt) => Ok(Some(rt)),
            Err(e) => {
                tracing::warn!("ONNX Runtime unavailable, falling back to tract: {e}");
                Ok(None)
            }
        },
    }
}

/// Loads the configured alias of every model in the registry. Blocking.
pub fn load_models(
    cfg: &Config,
    ort: Option<&Arc<OrtRuntime>>,
    metrics: &Metrics,
) -> Result<ModelTable, StartError> {
    let registry = DirRegistry::open(&cfg.registry)?;
    let alias = VersionRef::Alias(cfg.alias.clone());
    let mut models = BTreeMap::new();
    for name in registry.models()? {
        let version = match registry.resolve(&name, &alias) {
            Ok(v) => v,
            Err(RegistryError::NotFound(what)) => {
                tracing::warn!(model = %name, alias = %cfg.alias, "not serving: {what}");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mv = registry.fetch(&name, version)?;
        let settings = cfg.model_settings(&name).clone();
        let load_err = |source| StartError::Load {
            model: name.clone(),
            version,
            source,
        };
        let opts = LoadOptions {
            width: mv.signature.width(),
            intra_op_threads: settings.intra_op_threads,
        };
        let engine = backend::load(cfg.backend, ort, &mv.model_bytes, &opts).map_err(load_err)?;
        let mm = metrics.for_model(&name, &version.to_string(), engine.backend());
        let backend_name = engine.backend();
        let loaded = LoadedModel::start(&mv, engine, settings, mm).map_err(load_err)?;
        tracing::info!(
            model = %name,
            version,
            backend = backend_name,
            workers = loaded.settings.workers,
            call_overhead_us = loaded.batcher.call_overhead().as_micros() as u64,
            "model loaded"
        );
        models.insert(
            name,
            ModelEntry {
                default_version: version,
                versions: BTreeMap::from([(version, Arc::new(loaded))]),
            },
        );
    }
    if models.is_empty() {
        tracing::warn!(registry = %cfg.registry.display(), alias = %cfg.alias, "no model to serve");
    }
    Ok(ModelTable { models })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

/// Binds, prints `listening on http://ADDR` on stdout, loads models (health answers
/// meanwhile; readiness turns true once they are loaded), and serves until SIGTERM/SIGINT.
pub async fn run(cfg: Config) -> Result<(), StartError> {
    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: cfg.addr,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Internal(e.to_string()))?;
    let state = Arc::new(AppState::new(
        ModelTable::default(),
        Metrics::new(),
        cfg.max_body_bytes,
    ));
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{addr}");
        let _ = out.flush();
    }
    let grace = Duration::from_secs(cfg.shutdown_grace_s);
    let server = tokio::spawn(http::serve(
        listener,
        state.clone(),
        shutdown_signal(),
        grace,
    ));

    let loader_state = state.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let ort = init_ort(&cfg)?;
        load_models(&cfg, ort.as_ref(), &loader_state.metrics)
    })
    .await
    .map_err(|e| StartError::Internal(format!("model loader panicked: {e}")))?;
    let table = match loaded {
        Ok(t) => t,
        Err(e) => {
            server.abort();
            return Err(e);
        }
    };
    let n = table.models.len();
    state.models.store(Arc::new(table));
    state.ready.store(true, Ordering::SeqCst);
    tracing::info!(models = n, %addr, "ready");

    server
        .await
        .map_err(|e| StartError::Internal(format!("server task failed: {e}")))?;
    // In-flight requests are done; close every queue and let workers drain and exit.
    let table = state.models.swap(Arc::new(ModelTable::default()));
    let batchers: Vec<_> = table
        .models
        .values()
        .flat_map(|e| e.versions.values().cloned())
        .collect();
    drop(table);
    tokio::task::spawn_blocking(move || {
        for m in batchers {
            if let Ok(m) = Arc::try_unwrap(m) {
                m.batcher.shutdown();
            }
        }
    })
    .await
    .ok();
    tracing::info!("stopped");
    Ok(())
}
