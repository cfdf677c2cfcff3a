//! Shadow copies: a served request scored again by the shadow version, off the response
//! path, with how far its answer is from the client's recorded.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::batcher::Job;
use super::model::LoadedModel;
use super::sampler::Sampler;
use crate::backend::Tensor;
use crate::telemetry::Metrics;
use crate::telemetry::labels::ShadowOutcome;

/// Queues `input` on `shadow` and records the largest absolute difference between its first
/// FP32 output and `answered`. With a `sampler` (the request was sampled), the shadow's answer is
/// sampled too, tagged shadow.
pub(super) fn copy(
    metrics: &Arc<Metrics>,
    sampler: Option<Arc<Sampler>>,
    shadow: Arc<LoadedModel>,
    input: Vec<f32>,
    tensors: Vec<Tensor>,
    rows: usize,
    answered: Option<Vec<f32>>,
) {
    let metrics = metrics.clone();
    let (tx, rx) = oneshot::channel();
    let job = Job {
        input,
        tensors,
        rows,
        enqueued: Instant::now(),
        deadline: shadow
            .settings
            .default_timeout()
            .map(|t| Instant::now() + t),
        reply: tx,
    };
    let (name, version) = (&shadow.schema.name, &shadow.schema.version_label);
    if shadow.batcher.submit(job).is_err() {
        metrics.shadow(name, version, ShadowOutcome::Rejected, None);
        return;
    }
    tokio::spawn(async move {
        let (name, version) = (&shadow.schema.name, &shadow.schema.version_label);
        match rx.await {
            Ok(Ok(out)) => {
                let diff = match (answered, out.outputs.iter().find_map(|o| o.data.as_f32())) {
                    (Some(a), Some(b)) if a.len() == b.len() => Some(
                        a.iter()
                            .zip(b)
                            .map(|(x, y)| f64::from((x - y).abs()))
                            .fold(0.0, f64::max),
                    ),
                    _ => None,
                };
                metrics.shadow(name, version, ShadowOutcome::Success, diff);
                shadow.observer.stats.record_shadow(diff);
                if let Some(sampler) = sampler {
                    let schema = &shadow.sample_schema;
                    if out.tensors.is_empty() {
                        sampler.offer(schema, true, rows, &out.input, &out.outputs);
                    } else {
                        let values = schema.rows_of(&out.tensors, rows);
                        sampler.offer(schema, true, rows, &values, &out.outputs);
                    }
                }
            }
            _ => metrics.shadow(name, version, ShadowOutcome::Error, None),
        }
    });
}
