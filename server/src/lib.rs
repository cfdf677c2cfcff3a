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
pub mod online;
pub mod sampler;
pub mod stats;
pub mod watcher;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use vane_registry::{Registry, RegistryError};

use crate::backend::BackendKind;
use crate::backend::onnxruntime::OrtRuntime;
use crate::config::Config;
use crate::http::AppState;
use crate::metrics::Metrics;
use crate::model::ModelTable;
use crate::watcher::Watcher;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Ort(String),
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("model {model:?} version {version}: {reason}")]
    Version {
        model: String,
        version: u64,
        reason: String,
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

/// Opens the configured registry (directory, static HTTP or MLflow).
pub fn open_registry(spec: &str) -> Result<Arc<dyn Registry>, StartError> {
    Ok(vane_registry::open_registry(
        spec,
        &vane_registry::RemoteOptions::default(),
    )?)
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

/// Connections the kernel completes and holds for `accept` (Linux caps it at `somaxconn`):
/// they wait there while the server is at `--max-connections`, so bursts are not refused.
const LISTEN_BACKLOG: u32 = 1024;

fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds, prints `listening on http://ADDR` on stdout, loads models (health answers
/// meanwhile; readiness turns true once they are loaded), then serves until SIGTERM/SIGINT
/// while a watcher thread keeps the routes in line with the registry.
pub async fn run(cfg: Config) -> Result<(), StartError> {
    let listener = bind(cfg.addr).map_err(|source| StartError::Bind {
        addr: cfg.addr,
        source,
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Internal(e.to_string()))?;
    let mut app = AppState::new(
        ModelTable::default(),
        Arc::new(Metrics::new()),
        cfg.max_body_bytes,
        cfg.admin_token.clone(),
    )
    .with_limits(cfg.limits.clone());
    if let Some(spec) = &cfg.online_store {
        app.online = Some(Arc::new(online::OnlineHandle::new(spec.clone())));
    }
    if let Some(opts) = &cfg.sampler {
        app.metrics.init_sampler();
        let sampler = sampler::Sampler::start(opts.clone(), app.metrics.clone())
            .map_err(|e| StartError::Internal(format!("cannot start the sampler: {e}")))?;
        tracing::info!(monitor = %opts.addr, "sampling traffic to the drift monitor");
        app.sampler = Some(sampler);
    }
    let state = Arc::new(app);
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
        let registry = open_registry(&cfg.registry)?;
        let mut watcher = Watcher::new(registry, cfg, ort, loader_state);
        watcher.sync(true)?;
        Ok::<_, StartError>(watcher)
    })
    .await
    .map_err(|e| StartError::Internal(format!("model loader panicked: {e}")))?;
    let watcher = match loaded {
        Ok(w) => w,
        Err(e) => {
            server.abort();
            return Err(e);
        }
    };
    let n = state.models.load().models.len();
    if n == 0 {
        tracing::warn!("no model to serve yet; the registry is polled for new ones");
    }
    let control = watcher
        .spawn()
        .map_err(|e| StartError::Internal(format!("cannot start the registry watcher: {e}")))?;
    let _ = state.control.set(control.clone());
    tokio::spawn(reload_on_sighup(control));
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
            if let Ok(mut m) = Arc::try_unwrap(m) {
                m.batcher.shutdown();
            }
        }
    })
    .await
    .ok();
    if let Some(sampler) = state.sampler.clone() {
        tokio::task::spawn_blocking(move || sampler.shutdown())
            .await
            .ok();
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP asks the watcher to poll the registry now.
async fn reload_on_sighup(control: crossbeam_channel::Sender<watcher::Command>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: polling the registry");
        match control.try_send(watcher::Command::Sync(None)) {
            // Full: syncs are already queued, and they are coalesced.
            Ok(()) | Err(crossbeam_channel::TrySendError::Full(_)) => {}
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => return,
        }
    }
}
