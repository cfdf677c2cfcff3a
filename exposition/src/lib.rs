//! `vane-exposition`: the process plumbing the server and the monitor share: the Prometheus
//! text exposition, the log setup and the service runtime.
//!
//! [`Exposition`] wraps a process's [`prometheus::Registry`] with the
//! `process_resident_memory_bytes` gauge (sampled at each scrape) and renders it in the text
//! format ([`Exposition::render`], [`content_type`]). [`init_logging`] sets up the logs;
//! [`run_service`] runs a service's main future to an exit code.

use prometheus::{Encoder, IntGauge, Registry, TextEncoder};

/// Logs to stderr, filtered by `VANE_LOG` (else `RUST_LOG`, else `info`). Colours only when
/// stderr is a terminal, so that container logs (`kubectl logs`) carry no escape codes. A second
/// call keeps the first setup.
pub fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("VANE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Runs `service` on a multi-threaded tokio runtime of `threads` workers named `name`. Exit code
/// 0 when it returns `Ok`; otherwise 1, with the error and its causes on stderr.
pub fn run_service<E>(
    threads: usize,
    name: &str,
    service: impl std::future::Future<Output = Result<(), E>>,
) -> std::process::ExitCode
where
    anyhow::Error: From<E>,
{
    use std::process::ExitCode;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(service) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}

/// A registry to render, with the process's resident memory gauge registered in it.
pub struct Exposition {
    registry: Registry,
    resident_memory: IntGauge,
}

impl Exposition {
    /// Registers `process_resident_memory_bytes` (described as `help`) in `registry`.
    pub fn new(registry: Registry, help: &str) -> prometheus::Result<Self> {
        let resident_memory = IntGauge::new("process_resident_memory_bytes", help)?;
        registry.register(Box::new(resident_memory.clone()))?;
        Ok(Self {
            registry,
            resident_memory,
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every metric in the text exposition format, the resident memory sampled now.
    pub fn render(&self) -> String {
        if let Some(rss) = resident_bytes() {
            self.resident_memory.set(rss as i64);
        }
        let mut out = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        out
    }
}

/// The `Content-Type` of [`Exposition::render`]'s output.
pub fn content_type() -> String {
    TextEncoder::new().format_type().to_string()
}

/// Resident set size from `/proc/self/statm` (Linux; `None` elsewhere).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_registry_and_the_resident_memory() {
        let e = Exposition::new(Registry::new(), "RSS of this test.").unwrap();
        let c = prometheus::IntCounter::new("things_total", "Things.").unwrap();
        e.registry().register(Box::new(c.clone())).unwrap();
        c.inc();
        let text = e.render();
        assert!(text.contains("things_total 1"), "{text}");
        assert!(text.contains("# HELP process_resident_memory_bytes RSS of this test."));
        assert!(resident_bytes().is_some_and(|b| b > 0));
        assert!(content_type().starts_with("text/plain"));
    }
}
