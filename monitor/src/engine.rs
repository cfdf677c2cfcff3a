//! The monitor's engine: decoded frames in, drift reports out.
//!
//! - Schema frames are kept by id (bounded: [`Settings::max_schemas`]).
//! - Rows frames go to their *stream* — one per (model, version, live or shadow traffic),
//!   bounded by [`Settings::max_streams`] — once the version's reference profile is known.
//!   Each stream accumulates a count window (tumbling, `window_rows` rows) and a time window
//!   (tumbling, aligned to the wall clock) at once.
//! - A closed window is queued for the evaluator thread, which computes every statistic
//!   ([`crate::drift::evaluate`]) off the ingest path. If a stream closes windows faster than
//!   they can be evaluated, the older pending window of that stream is replaced by the newer
//!   one (counted in `vane_monitor_evaluations_skipped_total`), so memory and CPU stay
//!   bounded whatever the rate.
//! - The latest report of every stream and window kind is kept for `/drift`, `/report` and
//!   `/metrics`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus::IntCounter;
use serde::Serialize;
use vane_sample_stream as wire;

use crate::drift::{Thresholds, WindowDrift};
use crate::metrics::{Metrics, WindowLabels};
use crate::profiles::{Lookup, Profiles};
use crate::reference::Reference;
use crate::window::{Plan, WindowAcc};

/// Window sizes and limits.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Rows per count window.
    pub window_rows: u64,
    /// Length of the time window.
    pub window_time: Duration,
    /// Values kept per numeric column and window for KS.
    pub ks_sample: usize,
    pub thresholds: Thresholds,
    pub max_schemas: usize,
    pub max_streams: usize,
    /// Least time between two evaluations of the same stream and window kind; windows that
    /// close faster wait (and a newer one replaces a waiting one), which bounds the
    /// evaluator's CPU whatever the traffic.
    pub evaluation_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            window_rows: 1000,
            window_time: Duration::from_secs(300),
            ks_sample: 10_000,
            thresholds: Thresholds::default(),
            max_schemas: 1024,
            max_streams: 64,
            evaluation_interval: Duration::from_secs(1),
        }
    }
}

/// Which traffic a stream holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub model: String,
    pub version: u64,
    pub shadow: bool,
}

impl StreamKey {
    pub fn source(&self) -> &'static str {
        if self.shadow { "shadow" } else { "live" }
    }
}

/// The two windows every stream keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    Count,
    Time,
}

impl WindowKind {
    pub fn label(self) -> &'static str {
        match self {
            WindowKind::Count => "count",
            WindowKind::Time => "time",
        }
    }
}

/// The latest evaluated window of one stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    pub model: String,
    pub version: u64,
    /// `live` or `shadow`.
    pub source: &'static str,
    pub window: WindowKind,
    /// Unix milliseconds.
    pub started_ms: u64,
    pub ended_ms: u64,
    /// Where the reference profile came from.
    pub reference: String,
    pub reference_rows: u64,
    /// Features the monitor could not compare (not profiled, kind mismatch).
    pub warnings: Vec<String>,
    pub evaluation_ms: f64,
    #[serde(flatten)]
    pub drift: WindowDrift,
}

struct Stream {
    reference: Arc<Reference>,
    plans: HashMap<u64, Arc<Plan>>,
    warnings: Vec<String>,
    count: WindowAcc,
    time: WindowAcc,
    /// `drift_observations_total` handles per column slot (inputs, then the score).
    observations: Vec<Vec<IntCounter>>,
}

struct Closed {
    key: StreamKey,
    kind: WindowKind,
    acc: WindowAcc,
    ended_ms: u64,
    reference: Arc<Reference>,
    warnings: Vec<String>,
}

/// Why a frame was refused (the `outcome` label of `vane_monitor_frames_total`).
pub fn frame_outcome(e: &wire::FrameError) -> &'static str {
    match e {
        wire::FrameError::TooLarge(_) => "too_large",
        wire::FrameError::Version(_) => "bad_version",
        wire::FrameError::Kind(_) => "bad_kind",
        wire::FrameError::Truncated(_) => "truncated",
        wire::FrameError::Trailing(_) | wire::FrameError::Invalid(_) => "malformed",
    }
}

/// The engine. Shared by the ingest tasks, the HTTP handlers and the evaluator thread.
pub struct Engine {
    settings: Settings,
    metrics: Arc<Metrics>,
    profiles: Profiles,
    schemas: Mutex<HashMap<u64, Arc<wire::Schema>>>,
    streams: Mutex<HashMap<StreamKey, Stream>>,
    pending: Mutex<BTreeMap<(StreamKey, WindowKind), Closed>>,
    wake: Condvar,
    reports: RwLock<BTreeMap<(StreamKey, WindowKind), Arc<StreamReport>>>,
    epoch: (Instant, u64),
}

impl Engine {
    pub fn new(settings: Settings, profiles: Profiles, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Engine {
            settings,
            metrics,
            profiles,
            schemas: Default::default(),
            streams: Default::default(),
            pending: Default::default(),
            wake: Condvar::new(),
            reports: Default::default(),
            epoch: (Instant::now(), unix_ms()),
        })
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Wall-clock milliseconds, monotonic within the process.
    fn now_ms(&self) -> u64 {
        self.epoch.1 + self.epoch.0.elapsed().as_millis() as u64
    }

    /// Starts the evaluator thread.
    pub fn start_evaluator(self: &Arc<Self>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("vane-evaluator".into())
            .spawn(move || me.evaluate_forever())
    }

    /// Handles one frame body; the outcome is counted.
    pub fn handle_frame(&self, body: &[u8]) {
        let outcome = match wire::decode(body) {
            Err(e) => frame_outcome(&e),
            Ok(wire::Frame::Schema { id, schema }) => self.add_schema(id, schema),
            Ok(wire::Frame::Rows(rows)) => self.ingest(&rows, self.now_ms()),
        };
        self.metrics.frame(outcome);
    }

    fn add_schema(&self, id: u64, schema: wire::Schema) -> &'static str {
        let mut schemas = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
        if schemas.contains_key(&id) {
            return "schema";
        }
        if schemas.len() >= self.settings.max_schemas {
            return "schema_limit";
        }
        tracing::debug!(model = %schema.model, version = schema.version, id, "schema registered");
        // Start loading the version's profile now, before its first rows arrive.
        let _ = self.profiles.get(&schema.model, schema.version);
        schemas.insert(id, Arc::new(schema));
        "schema"
    }

    /// Adds a rows frame to its stream, closing windows as they fill or expire.
    fn ingest(&self, rows: &wire::Rows<'_>, now_ms: u64) -> &'static str {
        let schema = {
            let schemas = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
            match schemas.get(&rows.schema_id) {
                Some(s) => s.clone(),
                None => return "unknown_schema",
            }
        };
        if schema.model != rows.model
            || schema.version != rows.version
            || schema.features.len() != rows.columns
        {
            return "malformed";
        }
        let version = rows.version.to_string();
        let reference = match self.profiles.get(rows.model, rows.version) {
            Lookup::Ready(r) => r,
            Lookup::Pending => {
                self.metrics
                    .rows(rows.model, &version, "no_profile", rows.rows as u64);
                return "rows";
            }
        };
        let key = StreamKey {
            model: rows.model.to_string(),
            version: rows.version,
            shadow: rows.shadow,
        };
        let mut closed = Vec::new();
        {
            let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
            if !streams.contains_key(&key) {
                if streams.len() >= self.settings.max_streams {
                    return "stream_limit";
                }
                streams.insert(key.clone(), self.new_stream(&key, reference, now_ms));
            }
            let Some(stream) = streams.get_mut(&key) else {
                return "stream_limit";
            };
            let plan = stream
                .plans
                .entry(rows.schema_id)
                .or_insert_with(|| {
                    let p = Plan::new(&schema, &stream.reference);
                    for w in &p.warnings {
                        tracing::warn!(model = %key.model, version = key.version, "{w}");
                    }
                    Arc::new(p)
                })
                .clone();
            if stream.warnings.is_empty() {
                stream.warnings = plan.warnings.clone();
            }
            if let Some(c) = self.expire_time_window(&key, stream, now_ms) {
                closed.push(c);
            }
            let mut start = 0;
            while start < rows.rows {
                let room = (self.settings.window_rows - stream.count.rows) as usize;
                let end = rows.rows.min(start + room.max(1));
                let r = stream.reference.clone();
                stream.count.add(&r, &plan, rows, start..end);
                stream.time.add(&r, &plan, rows, start..end);
                if stream.count.rows >= self.settings.window_rows {
                    closed.push(self.close(&key, stream, WindowKind::Count, now_ms));
                }
                start = end;
            }
        }
        self.metrics
            .rows(rows.model, &version, "accepted", rows.rows as u64);
        if !closed.is_empty() {
            self.queue(closed);
        }
        "rows"
    }

    fn new_stream(&self, key: &StreamKey, reference: Arc<Reference>, now_ms: u64) -> Stream {
        let version = key.version.to_string();
        let mut columns: Vec<(String, Vec<String>)> = reference
            .features
            .iter()
            .map(|f| (f.name.clone(), f.slot_labels()))
            .collect();
        if let Some(s) = &reference.score {
            columns.push((crate::metrics::PREDICTION.to_string(), s.slot_labels()));
        }
        let shares: Vec<(String, Vec<String>, Vec<f64>)> = reference
            .features
            .iter()
            .chain(reference.score.iter())
            .zip(&columns)
            .map(|(f, (name, labels))| (name.clone(), labels.clone(), f.shares.clone()))
            .collect();
        self.metrics.reference(&key.model, &version, &shares);
        let observations =
            self.metrics
                .observation_counters(&key.model, &version, key.source(), &columns);
        tracing::info!(model = %key.model, version = key.version, source = key.source(), reference = %reference.source, "monitoring a new stream");
        Stream {
            count: WindowAcc::new(&reference, self.settings.ks_sample, now_ms),
            time: WindowAcc::new(&reference, self.settings.ks_sample, self.time_start(now_ms)),
            reference,
            plans: HashMap::new(),
            warnings: Vec::new(),
            observations,
        }
    }

    /// Start of the time window that contains `now_ms` (aligned to the wall clock).
    fn time_start(&self, now_ms: u64) -> u64 {
        let len = self.settings.window_time.as_millis().max(1) as u64;
        now_ms - now_ms % len
    }

    fn expire_time_window(&self, key: &StreamKey, s: &mut Stream, now_ms: u64) -> Option<Closed> {
        let len = self.settings.window_time.as_millis().max(1) as u64;
        if now_ms < s.time.started_ms + len {
            return None;
        }
        if s.time.rows == 0 {
            s.time = WindowAcc::new(
                &s.reference,
                self.settings.ks_sample,
                self.time_start(now_ms),
            );
            return None;
        }
        Some(self.close(key, s, WindowKind::Time, now_ms))
    }

    fn close(&self, key: &StreamKey, s: &mut Stream, kind: WindowKind, now_ms: u64) -> Closed {
        let fresh_start = match kind {
            WindowKind::Count => now_ms,
            WindowKind::Time => self.time_start(now_ms),
        };
        let fresh = WindowAcc::new(&s.reference, self.settings.ks_sample, fresh_start);
        let acc = match kind {
            WindowKind::Count => std::mem::replace(&mut s.count, fresh),
            WindowKind::Time => std::mem::replace(&mut s.time, fresh),
        };
        let ended_ms = match kind {
            WindowKind::Count => now_ms,
            // A time window ends at its boundary, even when closed later.
            WindowKind::Time => {
                (acc.started_ms + self.settings.window_time.as_millis() as u64).min(now_ms)
            }
        };
        self.metrics
            .window_closed(&key.model, &key.version.to_string(), kind.label());
        if kind == WindowKind::Count {
            let cols = acc.columns.iter().chain(acc.score.iter());
            for (acc_col, counters) in cols.zip(&s.observations) {
                for (n, c) in acc_col.counts.iter().zip(counters) {
                    if *n > 0 {
                        c.inc_by(*n);
                    }
                }
            }
        }
        Closed {
            key: key.clone(),
            kind,
            acc,
            ended_ms,
            reference: s.reference.clone(),
            warnings: s.warnings.clone(),
        }
    }

    fn queue(&self, closed: Vec<Closed>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for c in closed {
            if pending.insert((c.key.clone(), c.kind), c).is_some() {
                self.metrics.evaluations_skipped.inc();
            }
        }
        self.wake.notify_one();
    }

    /// Closes time windows that expired without new rows (called about once a second).
    pub fn tick(&self) {
        let now = self.now_ms();
        let mut closed = Vec::new();
        {
            let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
            for (key, s) in streams.iter_mut() {
                if let Some(c) = self.expire_time_window(key, s, now) {
                    closed.push(c);
                }
            }
        }
        if !closed.is_empty() {
            self.queue(closed);
        }
    }

    fn evaluate_forever(&self) {
        let interval = self.settings.evaluation_interval;
        let mut last: HashMap<(StreamKey, WindowKind), Instant> = HashMap::new();
        loop {
            let batch: Vec<Closed> = {
                let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    let now = Instant::now();
                    // Time until each pending window's stream may be evaluated again.
                    let waits: Vec<((StreamKey, WindowKind), Duration)> = pending
                        .keys()
                        .map(|k| {
                            let due = last.get(k).map_or(Duration::ZERO, |t| {
                                interval.saturating_sub(now.duration_since(*t))
                            });
                            (k.clone(), due)
                        })
                        .collect();
                    let ready: Vec<Closed> = waits
                        .iter()
                        .filter(|(_, due)| due.is_zero())
                        .filter_map(|(k, _)| pending.remove(k))
                        .collect();
                    if !ready.is_empty() {
                        break ready;
                    }
                    let sleep = waits
                        .iter()
                        .map(|(_, due)| *due)
                        .min()
                        .unwrap_or(Duration::from_secs(3600));
                    pending = self
                        .wake
                        .wait_timeout(pending, sleep)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            };
            for c in batch {
                let key = (c.key.clone(), c.kind);
                self.evaluate(c);
                last.insert(key, Instant::now());
            }
        }
    }

    fn evaluate(&self, c: Closed) {
        let t0 = Instant::now();
        let drift = crate::drift::evaluate(&c.reference, &c.acc, &self.settings.thresholds);
        let secs = t0.elapsed().as_secs_f64();
        self.metrics.evaluation_duration.observe(secs);
        let version = c.key.version.to_string();
        self.metrics.window(
            &WindowLabels {
                model: &c.key.model,
                version: &version,
                source: c.key.source(),
                window: c.kind.label(),
            },
            c.ended_ms as f64 / 1000.0,
            &drift,
        );
        let drifted: Vec<&str> = drift
            .features
            .iter()
            .filter(|f| f.drift)
            .map(|f| f.name.as_str())
            .collect();
        tracing::info!(
            model = %c.key.model,
            version = c.key.version,
            source = c.key.source(),
            window = c.kind.label(),
            rows = drift.rows,
            drift_share = ?drift.drift_share,
            drifted = ?drifted,
            evaluation_ms = secs * 1e3,
            "window evaluated"
        );
        let report = StreamReport {
            model: c.key.model.clone(),
            version: c.key.version,
            source: c.key.source(),
            window: c.kind,
            started_ms: c.acc.started_ms,
            ended_ms: c.ended_ms,
            reference: c.reference.source.clone(),
            reference_rows: c.reference.rows,
            warnings: c.warnings,
            evaluation_ms: secs * 1e3,
            drift,
        };
        self.reports
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((c.key, c.kind), Arc::new(report));
    }

    /// The latest report of every stream and window kind, by model, version, source, kind.
    pub fn reports(&self) -> Vec<Arc<StreamReport>> {
        self.reports
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::ProfileArg;
    use vane_registry::{FeatureProfile, Profile};

    fn engine(dir: &std::path::Path, window_rows: u64) -> Arc<Engine> {
        let profile = Profile {
            rows: 1000,
            features: vec![vane_stats::profile::numeric(
                "x",
                &(0..1000).map(|i| f64::from(i % 100)).collect::<Vec<_>>(),
                &(0..1000).collect::<Vec<_>>(),
            )],
            score: Some(FeatureProfile::Numeric {
                name: "probability".into(),
                edges: vec![0.5],
                shares: vec![0.5, 0.5],
                missing_share: 0.0,
                sample: vec![0.25, 0.75],
                min: Some(0.0),
                max: Some(1.0),
            }),
        };
        let path = dir.join("profile.json");
        std::fs::write(&path, serde_json::to_vec(&profile).unwrap()).unwrap();
        let args = vec![ProfileArg {
            scope: crate::profiles::Scope::Model("m".into()),
            path,
        }];
        let profiles = Profiles::new(&args, None, |_, _| {}).unwrap();
        Engine::new(
            Settings {
                window_rows,
                ks_sample: 100,
                thresholds: Thresholds {
                    min_rows: 10,
                    ..Thresholds::default()
                },
                ..Settings::default()
            },
            profiles,
            Arc::new(Metrics::new()),
        )
    }

    fn frames(model: &str, rows: usize, shift: f32) -> Vec<Vec<u8>> {
        let schema = wire::Schema {
            model: model.into(),
            version: 1,
            features: vec![wire::Feature {
                name: "x".into(),
                kind: wire::FeatureKind::Numeric,
            }],
            score: Some("probability".into()),
        };
        let mut buf = Vec::new();
        schema.encode_frame(&mut buf);
        let scores: Vec<f32> = (0..rows).map(|i| (i % 2) as f32 * 0.5 + 0.25).collect();
        wire::encode_rows(
            &mut buf,
            schema.id(),
            &schema,
            false,
            rows,
            |r, _| (r % 100) as f32 + shift,
            Some(&scores),
        );
        let mut out = Vec::new();
        let mut rest = &buf[..];
        while !rest.is_empty() {
            let n = wire::body_len(rest[..4].try_into().unwrap()).unwrap();
            out.push(rest[4..4 + n].to_vec());
            rest = &rest[4 + n..];
        }
        out
    }

    fn wait_reports(e: &Engine, n: usize) -> Vec<Arc<StreamReport>> {
        for _ in 0..500 {
            let r = e.reports();
            if r.len() >= n {
                return r;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no report")
    }

    #[test]
    fn count_windows_close_exactly_and_are_evaluated() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path(), 300);
        e.start_evaluator().unwrap();
        // 700 rows in one frame: two full windows, 100 rows left over.
        for f in frames("m", 700, 40.0) {
            e.handle_frame(&f);
        }
        let r = wait_reports(&e, 1);
        assert_eq!(r[0].window, WindowKind::Count);
        assert_eq!(r[0].drift.rows, 300);
        assert!(r[0].drift.features[0].drift, "{:?}", r[0].drift.features[0]);
        assert!(r[0].drift.prediction.is_some());
        let text = e.metrics.render();
        assert!(
            text.contains(r#"vane_monitor_windows_total{model="m",version="1",window="count"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"vane_monitor_rows_total{model="m",outcome="accepted",version="1"} 700"#
            )
        );
        assert!(text.contains(r#"feature="_prediction""#));
    }

    #[test]
    fn time_windows_close_on_the_clock_even_without_new_rows() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path(), 1_000_000);
        // A short time window; the count window never fills.
        let e = Arc::new(Engine {
            settings: Settings {
                window_time: Duration::from_millis(300),
                evaluation_interval: Duration::ZERO,
                ..e.settings.clone()
            },
            ..Arc::try_unwrap(e).ok().unwrap()
        });
        e.start_evaluator().unwrap();
        for f in frames("m", 50, 0.0) {
            e.handle_frame(&f);
        }
        std::thread::sleep(Duration::from_millis(700));
        e.tick();
        let r = wait_reports(&e, 1);
        assert_eq!(r[0].window, WindowKind::Time);
        assert_eq!(r[0].drift.rows, 50);
        assert!(r[0].ended_ms > r[0].started_ms);
        assert!(
            r[0].drift
                .features
                .iter()
                .all(|f| f.verdict != crate::drift::Verdict::Insufficient),
            "50 rows are above this engine's minimum of 10"
        );
        // An empty window is not reported: a second tick adds nothing.
        std::thread::sleep(Duration::from_millis(400));
        e.tick();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(e.reports().len(), 1);
    }

    #[test]
    fn rows_without_profile_or_schema_are_counted_not_crashing() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path(), 300);
        let f = frames("other", 10, 0.0);
        e.handle_frame(&f[0]);
        e.handle_frame(&f[1]);
        // Rows before their schema.
        let g = frames("m", 10, 0.0);
        e.handle_frame(&g[1]);
        e.handle_frame(b"garbage");
        let text = e.metrics.render();
        assert!(
            text.contains(
                r#"vane_monitor_rows_total{model="other",outcome="no_profile",version="1"} 10"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"vane_monitor_frames_total{outcome="unknown_schema"} 1"#));
        assert!(text.contains(r#"vane_monitor_frames_total{outcome="bad_version"} 1"#));
    }
}
