//! `vane-exposition`: the Prometheus text exposition the server and the monitor share.
//!
//! [`Exposition`] wraps a process's [`prometheus::Registry`] with the
//! `process_resident_memory_bytes` gauge (sampled at each scrape) and renders it in the text
//! format ([`Exposition::render`], [`content_type`]).

use prometheus::{Encoder, IntGauge, Registry, TextEncoder};

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
