//! Telemetry: Prometheus metric families ([`Metrics`], with per-version handles
//! [`ModelMetrics`] resolved once), their label values ([`labels`]), and HDR percentiles
//! recorded per thread and merged when read ([`stats::ModelStats`]). Depends on nothing else
//! in the server.

pub mod labels;
mod metrics;
pub mod stats;

pub use metrics::{Metrics, ModelMetrics};
