//! Prometheus metric families: every name lives here. Prefix `vane_`, base units, `_total`
//! counters, labels `model`, `version`, `outcome`, `backend`, `status`, `role`, `reason`, `kind`
//! only; label values come from [`super::labels`].

use super::labels::{DropReason, FailureKind, Outcome, Role, ShadowOutcome};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Latency buckets: 10 µs doubling to ~2.6 s.
fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(10e-6, 2.0, 19).expect("valid buckets")
}

/// Server-wide metric families.
pub struct Metrics {
    exposition: vane_exposition::Exposition,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    queue_duration: HistogramVec,
    compute_duration: HistogramVec,
    batch_rows: HistogramVec,
    cancelled: IntCounterVec,
    queue_depth: IntGaugeVec,
    queue_capacity: IntGaugeVec,
    model_info: IntGaugeVec,
    model_role: IntGaugeVec,
    http_responses: IntCounterVec,
    /// `http_responses{status="200"}`, resolved once: nearly every response's.
    http_ok: IntCounter,
    swaps: IntCounterVec,
    load_failures: IntCounterVec,
    registry_errors: IntCounterVec,
    shadow_requests: IntCounterVec,
    shadow_abs_diff: HistogramVec,
    samples_sent: IntCounter,
    samples_dropped: IntCounterVec,
    monitor_connected: prometheus::IntGauge,
    /// Role series currently set per model, so a route change can remove stale ones.
    roles_set: std::sync::Mutex<std::collections::HashMap<String, Vec<(String, &'static str)>>>,
    /// Loaded instances per (model, version): a version reloaded while its old instance is
    /// still draining keeps its series until the last instance goes.
    live: std::sync::Mutex<std::collections::HashMap<(String, String), usize>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("vane".into()), None).expect("valid prefix");
        let mv = &["model", "version"];
        let requests = IntCounterVec::new(
            Opts::new(
                "requests_total",
                "Inference requests by model, version and outcome.",
            ),
            &["model", "version", "outcome"],
        )
        .expect("metric");
        let hist = |name: &str, help: &str, buckets: Vec<f64>| {
            HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), mv).expect("metric")
        };
        let request_duration = hist(
            "request_duration_seconds",
            "Inference request time from headers received to response ready.",
            latency_buckets(),
        );
        let queue_duration = hist(
            "queue_duration_seconds",
            "Time a request waited in the batch queue.",
            latency_buckets(),
        );
        let compute_duration = hist(
            "compute_duration_seconds",
            "Backend time per executed batch.",
            latency_buckets(),
        );
        let batch_rows = hist(
            "batch_rows",
            "Rows per executed batch.",
            prometheus::exponential_buckets(1.0, 2.0, 13).expect("valid buckets"),
        );
        let cancelled = IntCounterVec::new(
            Opts::new(
                "requests_dropped_total",
                "Queued requests dropped before execution because the client went away.",
            ),
            mv,
        )
        .expect("metric");
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "queue_depth",
                "Requests waiting in the batch queue (sampled at scrape).",
            ),
            mv,
        )
        .expect("metric");
        let queue_capacity = IntGaugeVec::new(
            Opts::new(
                "queue_capacity",
                "Requests the batch queue holds before answering 429.",
            ),
            mv,
        )
        .expect("metric");
        let model_info = IntGaugeVec::new(
            Opts::new(
                "model_info",
                "Loaded model versions (value 1) and their backend.",
            ),
            &["model", "version", "backend"],
        )
        .expect("metric");
        let http_responses = IntCounterVec::new(
            Opts::new("http_responses_total", "HTTP responses by status code."),
            &["status"],
        )
        .expect("metric");
        let model_role = IntGaugeVec::new(
            Opts::new(
                "model_role",
                "Per mille of default-routed traffic a loaded version answers, by role (champion, canary; a shadow gets copies and shows 0).",
            ),
            &["model", "version", "role"],
        )
        .expect("metric");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("metric")
        };
        let swaps = counter(
            "model_swaps_total",
            "Route changes applied (new champion, canary, weight or shadow).",
            &["model"],
        );
        let load_failures = counter(
            "model_load_failures_total",
            "Versions that could not be served (reason: not_found, digest, unreachable, malformed, incompatible, load, warmup, fetch); the previous versions kept serving.",
            &["model", "reason"],
        );
        let registry_errors = counter(
            "registry_errors_total",
            "Failed registry polls by kind.",
            &["kind"],
        );
        let shadow_requests = counter(
            "shadow_requests_total",
            "Copies of requests sent to a shadow version, by outcome (success, rejected, error).",
            &["model", "version", "outcome"],
        );
        let shadow_abs_diff = HistogramVec::new(
            HistogramOpts::new(
                "shadow_abs_diff",
                "Largest |shadow − answered| difference of the first output per shadowed request.",
            )
            .buckets(prometheus::exponential_buckets(1e-6, 10.0, 7).expect("valid buckets")),
            mv,
        )
        .expect("metric");
        let samples_sent = IntCounter::new(
            "samples_sent_total",
            "Sampled requests (and shadow copies) written to the drift monitor's socket.",
        )
        .expect("metric");
        let samples_dropped = counter(
            "samples_dropped_total",
            "Sampled requests not delivered to the drift monitor, by reason (queue_full, monitor_down, send_failed).",
            &["reason"],
        );
        let monitor_connected = prometheus::IntGauge::new(
            "monitor_connected",
            "1 while the sample stream to the drift monitor is connected.",
        )
        .expect("metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_duration.clone()),
            Box::new(queue_duration.clone()),
            Box::new(compute_duration.clone()),
            Box::new(batch_rows.clone()),
            Box::new(cancelled.clone()),
            Box::new(queue_depth.clone()),
            Box::new(queue_capacity.clone()),
            Box::new(model_info.clone()),
            Box::new(model_role.clone()),
            Box::new(http_responses.clone()),
            Box::new(swaps.clone()),
            Box::new(load_failures.clone()),
            Box::new(registry_errors.clone()),
            Box::new(shadow_requests.clone()),
            Box::new(shadow_abs_diff.clone()),
            Box::new(samples_sent.clone()),
            Box::new(samples_dropped.clone()),
            Box::new(monitor_connected.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        let exposition = vane_exposition::Exposition::new(
            registry,
            "Resident set size of the server process (sampled at scrape).",
        )
        .expect("unique metric");
        Self {
            exposition,
            requests,
            request_duration,
            queue_duration,
            compute_duration,
            batch_rows,
            cancelled,
            queue_depth,
            queue_capacity,
            model_info,
            model_role,
            http_ok: http_responses.with_label_values(&["200"]),
            http_responses,
            swaps,
            load_failures,
            registry_errors,
            shadow_requests,
            shadow_abs_diff,
            samples_sent,
            samples_dropped,
            monitor_connected,
            roles_set: Default::default(),
            live: Default::default(),
        }
    }

    pub fn samples_sent(&self, n: u64) {
        self.samples_sent.inc_by(n);
    }

    pub fn samples_dropped(&self, reason: DropReason, n: u64) {
        self.samples_dropped
            .with_label_values(&[reason.label()])
            .inc_by(n);
    }

    pub fn monitor_connected(&self, up: bool) {
        self.monitor_connected.set(i64::from(up));
    }

    /// Makes every sampler series visible (at 0) once a monitor is configured, so alerts on
    /// them have a series to evaluate before the first drop.
    pub fn init_sampler(&self) {
        for r in DropReason::ALL {
            self.samples_dropped.with_label_values(&[r.label()]);
        }
    }

    pub fn swap(&self, model: &str) {
        self.swaps.with_label_values(&[model]).inc();
    }

    pub fn load_failure(&self, model: &str, reason: FailureKind) {
        self.load_failures
            .with_label_values(&[model, reason.label()])
            .inc();
    }

    pub fn registry_error(&self, kind: FailureKind) {
        self.registry_errors
            .with_label_values(&[kind.label()])
            .inc();
    }

    pub fn shadow(
        &self,
        model: &str,
        version: &str,
        outcome: ShadowOutcome,
        abs_diff: Option<f64>,
    ) {
        self.shadow_requests
            .with_label_values(&[model, version, outcome.label()])
            .inc();
        if let Some(d) = abs_diff {
            self.shadow_abs_diff
                .with_label_values(&[model, version])
                .observe(d);
        }
    }

    /// Drops the role series of a model that is no longer served.
    pub fn forget_roles(&self, model: &str) {
        let mut set = self.roles_set.lock().unwrap_or_else(|p| p.into_inner());
        for (version, role) in set.remove(model).unwrap_or_default() {
            let _ = self
                .model_role
                .remove_label_values(&[model, version.as_str(), role]);
        }
    }

    /// Publishes which loaded version plays which role, with its per mille of default
    /// traffic (`roles`: version, role, share in [0, 1]).
    pub fn set_roles(&self, model: &str, roles: &[(u64, Role, f64)]) {
        // Drop this model's previous role series first; only current roles remain.
        self.forget_roles(model);
        let mut set = self.roles_set.lock().unwrap_or_else(|p| p.into_inner());
        let mut now = Vec::new();
        for (version, role, share) in roles {
            let v = version.to_string();
            self.model_role
                .with_label_values(&[model, v.as_str(), role.label()])
                .set((share * 1000.0).round() as i64);
            now.push((v, role.label()));
        }
        set.insert(model.to_string(), now);
    }

    /// Drops every series of a version that is no longer loaded, so the exposition does not
    /// grow with each hot swap (its counters end; `rate()` over them stops, as it should).
    pub fn forget_version(&self, model: &str, version: &str, backend: &str) {
        {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            let key = (model.to_string(), version.to_string());
            match live.get_mut(&key) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    return;
                }
                _ => {
                    live.remove(&key);
                }
            }
        }
        let mv = [model, version];
        let _ = self
            .model_info
            .remove_label_values(&[model, version, backend]);
        let _ = self.queue_depth.remove_label_values(&mv);
        let _ = self.queue_capacity.remove_label_values(&mv);
        for o in Outcome::ALL {
            let _ = self
                .requests
                .remove_label_values(&[model, version, o.label()]);
        }
        for h in [
            &self.request_duration,
            &self.queue_duration,
            &self.compute_duration,
            &self.batch_rows,
            &self.shadow_abs_diff,
        ] {
            let _ = h.remove_label_values(&mv);
        }
        let _ = self.cancelled.remove_label_values(&mv);
        for outcome in ShadowOutcome::ALL {
            let _ = self
                .shadow_requests
                .remove_label_values(&[model, version, outcome.label()]);
        }
    }

    /// Handles for one model version, resolved once so the hot path does no label lookups.
    pub fn for_model(&self, model: &str, version: &str, backend: &str) -> ModelMetrics {
        *self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((model.to_string(), version.to_string()))
            .or_default() += 1;
        let lv = [model, version];
        self.model_info
            .with_label_values(&[model, version, backend])
            .set(1);
        ModelMetrics {
            outcomes: Outcome::ALL.map(|o| {
                self.requests
                    .with_label_values(&[model, version, o.label()])
            }),
            request_duration: self.request_duration.with_label_values(&lv),
            queue_duration: self.queue_duration.with_label_values(&lv),
            compute_duration: self.compute_duration.with_label_values(&lv),
            batch_rows: self.batch_rows.with_label_values(&lv),
            cancelled: self.cancelled.with_label_values(&lv),
        }
    }

    pub fn set_queue_capacity(&self, model: &str, version: &str, capacity: usize) {
        self.queue_capacity
            .with_label_values(&[model, version])
            .set(capacity as i64);
    }

    pub fn set_queue_depth(&self, model: &str, version: &str, depth: usize) {
        self.queue_depth
            .with_label_values(&[model, version])
            .set(depth as i64);
    }

    pub fn http_response(&self, status: u16) {
        // Status codes are a small closed set, so the label stays low-cardinality.
        if status == 200 {
            self.http_ok.inc();
        } else {
            self.http_responses
                .with_label_values(&[status.to_string()])
                .inc();
        }
    }

    /// Text exposition format.
    pub fn render(&self) -> String {
        self.exposition.render()
    }

    pub fn content_type() -> String {
        vane_exposition::content_type()
    }
}

/// Pre-resolved metric handles of one model version.
#[derive(Clone)]
pub struct ModelMetrics {
    outcomes: [IntCounter; 6],
    pub request_duration: Histogram,
    pub queue_duration: Histogram,
    pub compute_duration: Histogram,
    pub batch_rows: Histogram,
    pub cancelled: IntCounter,
}

impl ModelMetrics {
    pub fn outcome(&self, o: Outcome) {
        self.outcomes[o.index()].inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_expected_families() {
        let m = Metrics::new();
        let mm = m.for_model("m", "1", "tract");
        mm.outcome(Outcome::Success);
        mm.request_duration.observe(0.000_25);
        mm.batch_rows.observe(8.0);
        m.set_queue_depth("m", "1", 3);
        m.http_response(200);
        let text = m.render();
        for needle in [
            r#"vane_requests_total{model="m",outcome="success",version="1"} 1"#,
            r#"vane_request_duration_seconds_bucket{model="m",version="1",le="0.00001"} 0"#,
            r#"vane_request_duration_seconds_bucket{model="m",version="1",le="0.00032"} 1"#,
            r#"vane_batch_rows_bucket{model="m",version="1",le="8"} 1"#,
            r#"vane_queue_depth{model="m",version="1"} 3"#,
            r#"vane_model_info{backend="tract",model="m",version="1"} 1"#,
            r#"vane_http_responses_total{status="200"} 1"#,
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
