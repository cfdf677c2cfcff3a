//! Loaded model versions and the live route table.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use vane_protocol::Schema;
use vane_registry::ModelVersion;
// FNV-1a is stable across processes and releases, so every replica routes a key alike.
use vane_sample_stream::fnv1a;

use super::batcher::{BatchConfig, BatchObserver, Batcher};
use super::sampler::SampleSchema;
use crate::backend::Engine;
use crate::config::ModelSettings;
use crate::telemetry::labels::Role;
use crate::telemetry::stats::ModelStats;
use crate::telemetry::{Metrics, ModelMetrics};

/// One model version ready to serve: signature, engine, batcher, metrics.
pub struct LoadedModel {
    /// Name, version label, signature, vocabularies and outputs: what the codecs read.
    pub schema: Schema,
    pub version: u64,
    /// `version` as the `x-vane-model-version` header value, built once.
    pub version_header: hyper::header::HeaderValue,
    pub backend: &'static str,
    pub settings: ModelSettings,
    pub batcher: Batcher,
    pub observer: Arc<ModelObserver>,
    /// How this version's sampled rows look on the monitor's wire.
    pub sample_schema: Arc<SampleSchema>,
    /// A request is sampled when a uniform `u64` falls below this (0 = never).
    sample_threshold: u64,
    metrics: Arc<Metrics>,
}

impl Drop for LoadedModel {
    fn drop(&mut self) {
        // The batcher closes with this value; workers finish what was queued and exit.
        self.metrics
            .forget_version(&self.schema.name, &self.schema.version_label, self.backend);
        tracing::debug!(model = %self.schema.name, version = self.version, "model version unloaded");
    }
}

/// Metrics and stats of one version, shared with its batcher's workers.
pub struct ModelObserver {
    pub metrics: ModelMetrics,
    pub stats: ModelStats,
}

impl BatchObserver for ModelObserver {
    fn job_started(&self, queued: Duration) {
        self.metrics.queue_duration.observe(queued.as_secs_f64());
        self.stats.record_queue(queued);
    }
    fn batch_done(&self, requests: usize, rows: usize, compute: Duration) {
        self.metrics.compute_duration.observe(compute.as_secs_f64());
        self.metrics.batch_rows.observe(rows as f64);
        self.stats.record_batch(compute, requests, rows);
    }
    fn job_dropped(&self) {
        self.metrics.cancelled.inc();
    }
}

impl LoadedModel {
    /// Starts the batcher for an already-loaded engine (blocking: builds and warms sessions).
    pub fn start(
        mv: &ModelVersion,
        engine: Arc<dyn Engine>,
        settings: ModelSettings,
        metrics: &Arc<Metrics>,
    ) -> Result<Self, crate::backend::BackendError> {
        let schema = Schema::new(
            &mv.name,
            mv.version,
            mv.signature.clone(),
            engine.outputs().to_vec(),
            settings.max_request_rows,
            settings.allow_missing,
        )
        .map_err(crate::backend::BackendError::Load)?;
        let observer = Arc::new(ModelObserver {
            metrics: metrics.for_model(&mv.name, &mv.version.to_string(), engine.backend()),
            stats: ModelStats::new(),
        });
        // Tensor-signature models batch along their batch dimension, or one request at a time.
        let (width, max_batch_rows) = match &schema.tensors {
            None => (mv.signature.width(), settings.max_batch_rows),
            Some(ts) if ts.batch => (0, settings.max_batch_rows),
            Some(_) => (0, 1),
        };
        let cfg = BatchConfig {
            workers: settings.workers,
            max_batch_rows,
            max_queue_delay: settings.max_queue_delay(),
            queue_capacity: settings.queue_capacity,
            inline_max_call: Duration::from_micros(settings.inline_max_call_us),
        };
        let batcher = match &schema.tensors {
            None => Batcher::start(&mv.name, engine.clone(), width, cfg, observer.clone()),
            Some(ts) => Batcher::start_tensors(
                &mv.name,
                engine.clone(),
                &|rows| stand_in(ts, rows),
                cfg,
                observer.clone(),
            ),
        }
        .inspect_err(|_| {
            // No LoadedModel will drop to release the series `for_model` registered.
            metrics.forget_version(&mv.name, &mv.version.to_string(), engine.backend());
        })?;
        let sample_schema = Arc::new(SampleSchema::new(
            &mv.name,
            mv.version,
            &mv.signature,
            engine.outputs(),
            mv.profile.as_ref(),
        ));
        let sample_threshold = sample_threshold(settings.sample_percent);
        metrics.set_queue_capacity(&mv.name, &mv.version.to_string(), settings.queue_capacity);

        Ok(Self {
            schema,
            version: mv.version,
            version_header: hyper::header::HeaderValue::from(mv.version),
            backend: engine.backend(),
            settings,
            batcher,
            observer,
            sample_schema,
            sample_threshold,
            metrics: metrics.clone(),
        })
    }

    /// Draws whether this request is sampled for the drift monitor (one comparison at 0 %).
    pub fn draw_sample(&self) -> bool {
        match self.sample_threshold {
            0 => false,
            u64::MAX => true,
            t => random_u64() < t,
        }
    }
}

/// A request of `rows` rows (or the graph's fixed size) of zeros, `false` and empty strings:
/// what warms a tensor-signature model's sessions and times its calls.
fn stand_in(ts: &vane_protocol::TensorInputs, rows: usize) -> Vec<crate::backend::Tensor> {
    ts.inputs
        .iter()
        .map(|spec| {
            let shape: Vec<usize> = spec
                .shape
                .iter()
                .enumerate()
                .map(|(i, d)| match (*d, i) {
                    (d, _) if d >= 0 => d as usize,
                    (_, 0) if ts.batch => rows,
                    _ => 1,
                })
                .collect();
            let n: usize = shape.iter().product();
            let data = crate::backend::TensorData::zeros(spec.dtype, n);
            crate::backend::Tensor { data, shape }
        })
        .collect()
}

/// `percent` of the `u64` range.
fn sample_threshold(percent: f64) -> u64 {
    if percent <= 0.0 {
        0
    } else if percent >= 100.0 {
        u64::MAX
    } else {
        (percent / 100.0 * u64::MAX as f64) as u64
    }
}

/// How requests that do not name a version are routed: the champion answers, except a
/// `canary_weight` share that the canary answers; the shadow gets a copy of every request.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    pub champion: u64,
    pub canary: Option<(u64, f64)>,
    pub shadow: Option<u64>,
}

/// The loaded versions of one model and how traffic is split between them.
#[derive(Clone)]
pub struct ModelEntry {
    pub routing: Routing,
    pub versions: BTreeMap<u64, Arc<LoadedModel>>,
}

/// The version that answers a request, and the shadow that gets a copy of it.
pub struct Routed {
    pub primary: Arc<LoadedModel>,
    pub shadow: Option<Arc<LoadedModel>>,
}

impl Routing {
    /// Each role's version and share of default traffic, for `vane_model_role`.
    pub fn roles(&self) -> Vec<(u64, Role, f64)> {
        let canary_share = self.canary.map_or(0.0, |(_, w)| w);
        let mut roles = vec![(self.champion, Role::Champion, 1.0 - canary_share)];
        roles.extend(self.canary.map(|(v, w)| (v, Role::Canary, w)));
        roles.extend(self.shadow.map(|v| (v, Role::Shadow, 0.0)));
        roles
    }
}

impl ModelEntry {
    /// An entry serving a single version.
    pub fn single(model: Arc<LoadedModel>) -> Self {
        let v = model.version;
        Self {
            routing: Routing {
                champion: v,
                canary: None,
                shadow: None,
            },
            versions: BTreeMap::from([(v, model)]),
        }
    }

    pub fn champion(&self) -> Option<&Arc<LoadedModel>> {
        self.versions.get(&self.routing.champion)
    }

    /// Picks the answering version. With a route key the choice is a pure function of the key
    /// (sticky across requests and replicas); without one it is random.
    pub fn route(&self, route_key: Option<&[u8]>) -> Option<Routed> {
        let mut v = self.routing.champion;
        if let Some((canary, weight)) = self.routing.canary {
            let u = match route_key {
                Some(k) => unit_interval(fnv1a(k)),
                None => unit_interval(random_u64()),
            };
            if u < weight {
                v = canary;
            }
        }
        let primary = self.versions.get(&v).or_else(|| self.champion())?.clone();
        let shadow = self
            .routing
            .shadow
            .filter(|s| *s != primary.version)
            .and_then(|s| self.versions.get(&s).cloned());
        Some(Routed { primary, shadow })
    }
}

/// Top 53 bits as a float in [0, 1), after a final mix so nearby keys spread out.
fn unit_interval(mut x: u64) -> f64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn random_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
            t ^ (std::ptr::addr_of!(t) as u64).rotate_left(32)
        });
    }
    // SplitMix64.
    STATE.with(|s| {
        let z = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(z);
        let mut z = z;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// The live route table; replaced as a whole (arc-swap) when versions change.
#[derive(Clone, Default)]
pub struct ModelTable {
    pub models: BTreeMap<String, ModelEntry>,
}

/// Why a lookup failed.
#[derive(Debug)]
pub enum LookupError {
    UnknownModel,
    UnknownVersion,
}

impl ModelTable {
    /// An explicit version bypasses the traffic policy (and gets no shadow copy).
    pub fn get(
        &self,
        model: &str,
        version: Option<&str>,
        route_key: Option<&[u8]>,
    ) -> Result<Routed, LookupError> {
        let entry = self.models.get(model).ok_or(LookupError::UnknownModel)?;
        match version {
            None => entry.route(route_key).ok_or(LookupError::UnknownVersion),
            Some(s) => {
                let v = s.parse::<u64>().map_err(|_| LookupError::UnknownVersion)?;
                let primary = entry
                    .versions
                    .get(&v)
                    .ok_or(LookupError::UnknownVersion)?
                    .clone();
                Ok(Routed {
                    primary,
                    shadow: None,
                })
            }
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<LoadedModel>> {
        self.models.values().flat_map(|e| e.versions.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_interval_is_uniform_enough() {
        let n = 100_000;
        let below: usize = (0..n as u64)
            .filter(|i| unit_interval(fnv1a(&i.to_le_bytes())) < 0.1)
            .count();
        let share = below as f64 / n as f64;
        assert!((share - 0.1).abs() < 0.005, "{share}");
        let below: usize = (0..n)
            .filter(|_| unit_interval(random_u64()) < 0.25)
            .count();
        assert!((below as f64 / n as f64 - 0.25).abs() < 0.01);
    }

    #[test]
    fn sampling_thresholds_cover_the_range() {
        assert_eq!(sample_threshold(0.0), 0);
        assert_eq!(sample_threshold(100.0), u64::MAX);
        let t = sample_threshold(10.0);
        let hits = (0..100_000).filter(|_| random_u64() < t).count();
        assert!((hits as f64 / 100_000.0 - 0.1).abs() < 0.01, "{hits}");
    }

    #[test]
    fn route_keys_are_sticky_and_monotonic_in_the_weight() {
        // A key that lands on the canary at 10 % still does at 20 %.
        for i in 0..1000u64 {
            let u = unit_interval(fnv1a(format!("user-{i}").as_bytes()));
            assert_eq!(u, unit_interval(fnv1a(format!("user-{i}").as_bytes())));
            if u < 0.1 {
                assert!(u < 0.2);
            }
        }
    }
}
