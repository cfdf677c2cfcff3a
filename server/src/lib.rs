//! `vane-server`: a latency-first inference server for tabular ONNX models speaking the Open
//! Inference Protocol (KServe v2) over HTTP/JSON.
//!
//! Layers, each depending only on those below it:
//! - [`http`]: the transport (accept loop and connection cap, routing table, body limits,
//!   error → status in [`http::response`]);
//! - [`control`]: the control plane ([`control::Watcher`]: registry sync, load, verify, warm,
//!   swap the route table);
//! - [`core`]: the serving core ([`core::Core::admit`]: admit, route; [`core::Core::infer`]:
//!   decode with the `vane_protocol` codecs, complete from the online store, batch, run,
//!   sample, record);
//! - [`backend`]: ONNX Runtime and tract behind [`backend::Engine`] / [`backend::Session`];
//! - [`telemetry`]: Prometheus families, label enums, HDR stats; [`config`]: flags, env, TOML.
//!
//! Principal types: [`config::Config`], [`core::Core`], [`core::model::ModelTable`] of
//! [`core::model::LoadedModel`]s, [`core::batcher::Batcher`], [`http::HttpState`],
//! [`control::Watcher`], [`telemetry::Metrics`].

pub mod backend;
pub mod cli;
pub mod config;
pub mod control;
pub mod core;
pub mod http;
pub mod telemetry;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use vane_registry::{Registry, RegistryError};

use crate::backend::BackendKind;
use crate::backend::onnxruntime::OrtRuntime;
use crate::config::Config;
use crate::control::Watcher;
use crate::core::Core;
use crate::core::model::ModelTable;
use crate::http::HttpState;
use crate::telemetry::Metrics;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Ort(String),
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Sync(#[from] control::SyncError),
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
    let mut core = Core::new(
        ModelTable::default(),
        Arc::new(Metrics::new()),
        cfg.limits.clone(),
    );
    if let Some(spec) = &cfg.online_store {
        core = core.with_online_store(core::online::OnlineHandle::new(spec.clone()));
    }
    if let Some(opts) = &cfg.sampler {
        core.metrics.init_sampler();
        let sampler = core::sampler::Sampler::start(opts.clone(), core.metrics.clone())
            .map_err(|e| StartError::Internal(format!("cannot start the sampler: {e}")))?;
        tracing::info!(monitor = %opts.addr, "sampling traffic to the drift monitor");
        core.sampler = Some(sampler);
    }
    let core = Arc::new(core);
    let state = Arc::new(HttpState::new(
        core.clone(),
        cfg.max_body_bytes,
        cfg.admin_token.clone(),
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

    let loader_core = core.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let ort = init_ort(&cfg)?;
        let registry = open_registry(&cfg.registry)?;
        let mut watcher = Watcher::new(registry, cfg, ort, loader_core);
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
    let n = core.models.load().models.len();
    if n == 0 {
        tracing::warn!("no model to serve yet; the registry is polled for new ones");
    }
    let control = watcher
        .spawn()
        .map_err(|e| StartError::Internal(format!("cannot start the registry watcher: {e}")))?;
    let _ = state.control.set(control.clone());
    tokio::spawn(reload_on_sighup(control));
    core.ready.store(true, Ordering::SeqCst);
    tracing::info!(models = n, %addr, "ready");

    server
        .await
        .map_err(|e| StartError::Internal(format!("server task failed: {e}")))?;
    // In-flight requests are done; close every queue and let workers drain and exit.
    let table = core.models.swap(Arc::new(ModelTable::default()));
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
    if let Some(sampler) = core.sampler.clone() {
        tokio::task::spawn_blocking(move || sampler.shutdown())
            .await
            .ok();
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP asks the watcher to poll the registry now.
async fn reload_on_sighup(control: crossbeam_channel::Sender<control::Command>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: polling the registry");
        match control.try_send(control::Command::Sync(None)) {
            // Full: syncs are already queued, and they are coalesced.
            Ok(()) | Err(crossbeam_channel::TrySendError::Full(_)) => {}
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => return,
        }
    }
}
