//! Loaded model versions and the live route table.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use vane_registry::{FeatureKind, ModelVersion, Signature};

use crate::backend::{Engine, OutputMeta};
use crate::batcher::{BatchConfig, BatchObserver, Batcher};
use crate::config::ModelSettings;
use crate::metrics::ModelMetrics;
use crate::stats::ModelStats;

/// One model version ready to serve: signature, engine, batcher, metrics.
pub struct LoadedModel {
    pub name: String,
    pub version: u64,
    /// `version` as a string, for labels, headers and bodies.
    pub version_label: String,
    /// `version` as the `x-vane-model-version` header value, built once.
    pub version_header: hyper::header::HeaderValue,
    pub signature: Signature,
    /// Per feature: category → code, for categorical features.
    pub vocab: Vec<Option<HashMap<String, u32>>>,
    pub backend: &'static str,
    pub outputs: Vec<OutputMeta>,
    pub settings: ModelSettings,
    pub batcher: Batcher,
    pub observer: Arc<ModelObserver>,
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
        metrics: ModelMetrics,
    ) -> Result<Self, crate::backend::BackendError> {
        let observer = Arc::new(ModelObserver {
            metrics,
            stats: ModelStats::new(),
        });
        let width = mv.signature.width();
        let batcher = Batcher::start(
            &mv.name,
            engine.clone(),
            width,
            BatchConfig {
                workers: settings.workers,
                max_batch_rows: settings.max_batch_rows,
                max_queue_delay: settings.max_queue_delay(),
                queue_capacity: settings.queue_capacity,
            },
            observer.clone(),
        )?;
        let vocab = mv
            .signature
            .inputs
            .iter()
            .map(|f| match f.kind {
                FeatureKind::Categorical => Some(
                    f.vocab
                        .iter()
                        .flatten()
                        .enumerate()
                        .map(|(i, c)| (c.clone(), i as u32))
                        .collect(),
                ),
                FeatureKind::Numeric => None,
            })
            .collect();
        Ok(Self {
            name: mv.name.clone(),
            version: mv.version,
            version_label: mv.version.to_string(),
            version_header: hyper::header::HeaderValue::from(mv.version),
            signature: mv.signature.clone(),
            vocab,
            backend: engine.backend(),
            outputs: engine.outputs().to_vec(),
            settings,
            batcher,
            observer,
        })
    }
}

/// All versions of one model that are loaded, and the one served by default.
#[derive(Clone)]
pub struct ModelEntry {
    pub default_version: u64,
    pub versions: BTreeMap<u64, Arc<LoadedModel>>,
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
    pub fn get(
        &self,
        model: &str,
        version: Option<&str>,
    ) -> Result<&Arc<LoadedModel>, LookupError> {
        let entry = self.models.get(model).ok_or(LookupError::UnknownModel)?;
        let v = match version {
            None => entry.default_version,
            Some(s) => s.parse::<u64>().map_err(|_| LookupError::UnknownVersion)?,
        };
        entry.versions.get(&v).ok_or(LookupError::UnknownVersion)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<LoadedModel>> {
        self.models.values().flat_map(|e| e.versions.values())
    }
}
