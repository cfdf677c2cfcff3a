//! Prometheus metrics of the monitor: every name lives here. Prefix `vane_`, base units,
//! `_total` counters; labels `model`, `version`, `source` (`live` or `shadow` traffic),
//! `window` (`count` or `time`), `feature` (an input name, or `_prediction` for the model's
//! score), `bin` and `outcome`.

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::drift::{ColumnReport, Verdict, WindowDrift};

/// The `feature` label of the model's score.
pub const PREDICTION: &str = "_prediction";

/// Labels of one stream's window.
pub struct WindowLabels<'a> {
    pub model: &'a str,
    pub version: &'a str,
    pub source: &'a str,
    pub window: &'a str,
}

pub struct Metrics {
    exposition: vane_exposition::Exposition,
    pub connections: IntGauge,
    pub connections_refused: IntCounter,
    frames: IntCounterVec,
    rows: IntCounterVec,
    windows: IntCounterVec,
    evaluations: IntCounterVec,
    pub evaluations_skipped: IntCounter,
    pub evaluation_duration: Histogram,
    profile_failures: IntCounterVec,
    psi: GaugeVec,
    ks_statistic: GaugeVec,
    ks_pvalue: GaugeVec,
    chi2_pvalue: GaugeVec,
    missing_share: GaugeVec,
    out_of_range_share: GaugeVec,
    unseen_share: GaugeVec,
    detected: GaugeVec,
    window_rows: GaugeVec,
    drift_share: GaugeVec,
    dataset_drift: GaugeVec,
    window_end: GaugeVec,
    bin_rows: GaugeVec,
    reference_share: GaugeVec,
    observations: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("vane".into()), None).expect("valid prefix");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("metric")
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            GaugeVec::new(Opts::new(name, help), labels).expect("metric")
        };
        let feature = &["model", "version", "source", "window", "feature"];
        let window = &["model", "version", "source", "window"];
        let m = Metrics {
            connections: IntGauge::new(
                "monitor_connections",
                "Open sample-stream connections.",
            )
            .expect("metric"),
            connections_refused: IntCounter::new(
                "monitor_connections_refused_total",
                "Sample-stream connections closed at once because the connection limit was reached.",
            )
            .expect("metric"),
            frames: counter(
                "monitor_frames_total",
                "Sample-stream frames by outcome (schema, rows; anything else is a refused frame: bad_version, bad_kind, truncated, malformed, unknown_schema, too_large, schema_limit, stream_limit).",
                &["outcome"],
            ),
            rows: counter(
                "monitor_rows_total",
                "Sampled rows received, by outcome (accepted; no_profile = the version has no reference profile yet).",
                &["model", "version", "outcome"],
            ),
            windows: counter(
                "monitor_windows_total",
                "Windows closed.",
                &["model", "version", "window"],
            ),
            evaluations: counter(
                "monitor_evaluations_total",
                "Windows whose drift statistics were computed.",
                &["model", "version", "window"],
            ),
            evaluations_skipped: IntCounter::new(
                "monitor_evaluations_skipped_total",
                "Closed windows replaced by a newer window of the same stream before the evaluator reached them.",
            )
            .expect("metric"),
            evaluation_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "monitor_evaluation_duration_seconds",
                    "Time to compute every statistic of one window.",
                )
                .buckets(prometheus::exponential_buckets(1e-4, 2.0, 16).expect("valid buckets")),
            )
            .expect("metric"),
            profile_failures: counter(
                "monitor_profile_failures_total",
                "Attempts to load a version's reference profile that failed (retried).",
                &["model", "version"],
            ),
            psi: gauge("drift_psi", "Population stability index of the last window over the reference's frozen bins.", feature),
            ks_statistic: gauge("drift_ks_statistic", "Two-sample Kolmogorov-Smirnov statistic D against the reference sample (numeric features).", feature),
            ks_pvalue: gauge("drift_ks_pvalue", "Two-sided KS p-value, as scipy.stats.ks_2samp(method='auto') (numeric features; not corrected for multiple features).", feature),
            chi2_pvalue: gauge("drift_chi2_pvalue", "Chi-square goodness-of-fit p-value against the reference shares (categorical features; not corrected).", feature),
            missing_share: gauge("drift_missing_share", "Share of the window's rows with the value missing.", feature),
            out_of_range_share: gauge("drift_out_of_range_share", "Share of present values outside the reference's [min, max] (numeric features).", feature),
            unseen_share: gauge("drift_unseen_share", "Share of values outside the reference's categories, missing included (categorical features).", feature),
            detected: gauge("drift_detected", "1 when the last window drifted (PSI >= alert threshold or a Bonferroni-corrected test below alpha), else 0 (also 0 below the minimum window).", feature),
            window_rows: gauge("drift_window_rows", "Rows in the last closed window.", window),
            drift_share: gauge("drift_share", "Share of the input features that drifted in the last window with a verdict.", window),
            dataset_drift: gauge("drift_dataset_drift", "1 when the drift share reached its threshold in the last window with a verdict.", window),
            window_end: gauge("drift_window_end_timestamp_seconds", "Unix time the last window closed.", window),
            bin_rows: gauge("drift_bin_rows", "Rows per reference bin (numeric; `missing`) or category (categorical; `unseen`) in the last window.", &["model", "version", "source", "window", "feature", "bin"]),
            reference_share: gauge("drift_reference_share", "Reference share per bin or category, from the profile (for fleet-wide PSI in PromQL).", &["model", "version", "feature", "bin"]),
            observations: counter("drift_observations_total", "Rows per reference bin or category over closed count windows (sum across sidecars and divide for fleet-wide shares).", &["model", "version", "source", "feature", "bin"]),
            exposition: vane_exposition::Exposition::new(
                registry,
                "Resident set size of the monitor process (sampled at scrape).",
            )
            .expect("unique metric"),
        };
        for c in [
            Box::new(m.connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.connections_refused.clone()),
            Box::new(m.frames.clone()),
            Box::new(m.rows.clone()),
            Box::new(m.windows.clone()),
            Box::new(m.evaluations.clone()),
            Box::new(m.evaluations_skipped.clone()),
            Box::new(m.evaluation_duration.clone()),
            Box::new(m.profile_failures.clone()),
            Box::new(m.psi.clone()),
            Box::new(m.ks_statistic.clone()),
            Box::new(m.ks_pvalue.clone()),
            Box::new(m.chi2_pvalue.clone()),
            Box::new(m.missing_share.clone()),
            Box::new(m.out_of_range_share.clone()),
            Box::new(m.unseen_share.clone()),
            Box::new(m.detected.clone()),
            Box::new(m.window_rows.clone()),
            Box::new(m.drift_share.clone()),
            Box::new(m.dataset_drift.clone()),
            Box::new(m.window_end.clone()),
            Box::new(m.bin_rows.clone()),
            Box::new(m.reference_share.clone()),
            Box::new(m.observations.clone()),
        ] {
            m.exposition.registry().register(c).expect("unique metric");
        }
        for outcome in ["schema", "rows"] {
            m.frames.with_label_values(&[outcome]);
        }
        m
    }

    pub fn frame(&self, outcome: &str) {
        self.frames.with_label_values(&[outcome]).inc();
    }

    pub fn rows(&self, model: &str, version: &str, outcome: &str, n: u64) {
        self.rows
            .with_label_values(&[model, version, outcome])
            .inc_by(n);
    }

    pub fn window_closed(&self, model: &str, version: &str, window: &str) {
        self.windows
            .with_label_values(&[model, version, window])
            .inc();
    }

    pub fn profile_failure(&self, model: &str, version: &str) {
        self.profile_failures
            .with_label_values(&[model, version])
            .inc();
    }

    /// Publishes a version's reference shares.
    pub fn reference(
        &self,
        model: &str,
        version: &str,
        columns: &[(String, Vec<String>, Vec<f64>)],
    ) {
        for (feature, bins, shares) in columns {
            for (bin, share) in bins.iter().zip(shares) {
                self.reference_share
                    .with_label_values(&[model, version, feature, bin])
                    .set(*share);
            }
        }
    }

    /// Counter handles of `drift_observations_total` for every slot of every column (inputs in
    /// reference order, then the score), resolved once per stream.
    pub fn observation_counters(
        &self,
        model: &str,
        version: &str,
        source: &str,
        columns: &[(String, Vec<String>)],
    ) -> Vec<Vec<IntCounter>> {
        columns
            .iter()
            .map(|(feature, bins)| {
                bins.iter()
                    .map(|bin| {
                        self.observations
                            .with_label_values(&[model, version, source, feature, bin])
                    })
                    .collect()
            })
            .collect()
    }

    /// Publishes one evaluated window.
    pub fn window(&self, l: &WindowLabels<'_>, end_unix_s: f64, d: &WindowDrift) {
        let w = [l.model, l.version, l.source, l.window];
        self.evaluations
            .with_label_values(&[l.model, l.version, l.window])
            .inc();
        self.window_rows.with_label_values(&w).set(d.rows as f64);
        self.window_end.with_label_values(&w).set(end_unix_s);
        if let (Some(share), Some(drift)) = (d.drift_share, d.dataset_drift) {
            self.drift_share.with_label_values(&w).set(share);
            self.dataset_drift
                .with_label_values(&w)
                .set(f64::from(u8::from(drift)));
        }
        let columns = d
            .features
            .iter()
            .map(|c| (c.name.as_str(), c))
            .chain(d.prediction.iter().map(|c| (PREDICTION, c)));
        for (name, c) in columns {
            self.column(l, name, c);
        }
    }

    fn column(&self, l: &WindowLabels<'_>, name: &str, c: &ColumnReport) {
        let f = [l.model, l.version, l.source, l.window, name];
        let set = |g: &GaugeVec, v: Option<f64>| {
            if let Some(v) = v {
                g.with_label_values(&f).set(v);
            }
        };
        set(&self.psi, c.psi);
        set(&self.ks_statistic, c.ks_statistic);
        set(&self.ks_pvalue, c.ks_pvalue);
        set(&self.chi2_pvalue, c.chi2_pvalue);
        set(&self.missing_share, Some(c.missing_share));
        set(&self.out_of_range_share, c.out_of_range_share);
        set(&self.unseen_share, c.unseen_share);
        set(
            &self.detected,
            Some(f64::from(u8::from(c.verdict == Verdict::Drift))),
        );
        for (bin, n) in c.bins.iter().zip(&c.counts) {
            self.bin_rows
                .with_label_values(&[l.model, l.version, l.source, l.window, name, bin])
                .set(*n as f64);
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
