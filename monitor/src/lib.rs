//! `vane-monitor`: the drift monitor, run as a sidecar next to each `vane-server` replica,
//! and the same statistics as batch commands.
//!
//! Data flow of `vane-monitor serve`:
//!
//! ```text
//! vane-server sampler ─frames─► ingest (TCP / Unix socket, one task per connection)
//!     ─► Engine: schemas by id, one stream per (model, version, live|shadow),
//!        count and time windows of fixed reference bins + bounded samples
//!     ─closed windows─► evaluator thread: drift::evaluate (PSI, KS, chi-square, shares)
//!     ─► latest reports ─► /metrics (Prometheus), /drift (JSON), /report (HTML)
//! registry / --profile files ─► Profiles (profile.json per version) ─► Reference
//! ```
//!
//! Principal types: [`config::ServeConfig`] (flags + env + TOML), [`engine::Engine`] (streams,
//! windows, evaluator), [`reference::Reference`] (a compiled `profile.json`),
//! [`window::WindowAcc`] / [`window::ColumnAcc`] (per-window accumulators),
//! [`drift::evaluate`] with [`drift::Thresholds`] → [`drift::WindowDrift`] of
//! [`drift::ColumnReport`]s, [`profiles::Profiles`] (where references come from),
//! [`metrics::Metrics`] (every metric name), [`report::render`] (the HTML report), and the
//! batch commands [`batch::profile`] and [`batch::compare`]. The wire format is
//! `vane-sample-stream`; the statistics themselves live in `vane-stats`.

pub mod batch;
pub mod cli;
pub mod config;
pub mod drift;
pub mod engine;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod profiles;
pub mod reference;
pub mod report;
pub mod window;

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ServeConfig;
use crate::engine::Engine;
use crate::ingest::Bound;
use crate::metrics::Metrics;
use crate::profiles::Profiles;

/// Why the monitor could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("registry: {0}")]
    Registry(#[from] vane_registry::RegistryError),
    #[error("{0}")]
    Profiles(String),
    #[error("cannot listen on {what}: {source}")]
    Bind {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Binds every listener, prints `listening on http://ADDR` and one `ingest on …` line per
/// ingest listener on stdout, then serves until SIGTERM/SIGINT.
pub async fn run(cfg: ServeConfig) -> Result<(), StartError> {
    let metrics = Arc::new(Metrics::new());
    let registry = match &cfg.registry {
        Some(spec) => Some(vane_registry::open_registry(
            spec,
            &vane_registry::RemoteOptions::default(),
        )?),
        None => None,
    };
    let m = metrics.clone();
    let profiles = Profiles::new(&cfg.profiles, registry, move |model, version| {
        m.profile_failure(model, &version.to_string())
    })
    .map_err(StartError::Profiles)?;
    let engine = Engine::new(cfg.settings.clone(), profiles, metrics);
    engine
        .start_evaluator()
        .map_err(|e| StartError::Internal(format!("cannot start the evaluator: {e}")))?;

    let http = tokio::net::TcpListener::bind(cfg.http)
        .await
        .map_err(|source| StartError::Bind {
            what: format!("http {}", cfg.http),
            source,
        })?;
    let http_addr = http
        .local_addr()
        .map_err(|e| StartError::Internal(e.to_string()))?;
    let mut bound = Vec::new();
    for l in &cfg.listen {
        bound.push(Bound::bind(l).await.map_err(|source| StartError::Bind {
            what: format!("{l:?}"),
            source,
        })?);
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{http_addr}");
        for b in &bound {
            let _ = writeln!(out, "ingest on {}", b.describe());
        }
        let _ = out.flush();
    }
    for b in bound {
        tracing::info!(listen = %b.describe(), "accepting sample streams");
        tokio::spawn(ingest::serve(b, engine.clone(), cfg.max_connections));
    }
    let ticker = engine.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            let e = ticker.clone();
            let _ = tokio::task::spawn_blocking(move || e.tick()).await;
        }
    });
    tracing::info!(http = %http_addr, "monitor ready");
    http::serve(http, engine, shutdown_signal()).await;
    for l in &cfg.listen {
        if let ingest::Listen::Unix(p) = l {
            let _ = std::fs::remove_file(p);
        }
    }
    tracing::info!("stopped");
    Ok(())
}
