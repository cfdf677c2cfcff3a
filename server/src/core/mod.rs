//! The serving core: [`Core::admit`] admits a request and routes it (champion / canary /
//! shadow); [`Core::infer`] then decodes it with the routed version's schema, completes its
//! features from the online store, batches and runs it, samples it for the drift monitor,
//! and records it. Transports (HTTP today) supply the body and the protocol; the core knows
//! neither sockets nor status codes.
//!
//! Principal types: [`Core`], [`Call`] / [`Ticket`] / [`Answer`], [`model::ModelTable`]
//! (the live route table) of [`model::LoadedModel`]s, [`batcher::Batcher`],
//! [`sampler::Sampler`], [`online::OnlineFill`], [`ApiError`].

pub mod batcher;
mod error;
pub mod model;
pub mod online;
pub mod sampler;
mod shadow;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::sync::oneshot;
use vane_protocol::{DecodeError, Decoded, EntityRequest, KeyColumn, OutputSelection, Schema};

pub use error::ApiError;

use crate::config::Limits;
use crate::core::batcher::{Job, JobOutput, SubmitError};
use crate::core::model::{LoadedModel, LookupError, ModelTable, Routed};
use crate::telemetry::Metrics;
use crate::telemetry::labels::Outcome;

/// Serving state shared by every transport and the control plane.
pub struct Core {
    /// The live route table; the control plane swaps it whole.
    pub models: ArcSwap<ModelTable>,
    pub metrics: Arc<Metrics>,
    /// False until models are loaded; false again while shutting down.
    pub ready: AtomicBool,
    pub limits: Limits,
    /// Inference requests being read, decoded or awaited (`limits.max_concurrent_requests`).
    /// A counter, not a semaphore: nobody waits for a slot (past the limit is a 429), and
    /// giving back a tokio permit takes a lock.
    in_flight: AtomicUsize,
    /// The online feature store, when configured.
    online: Option<online::OnlineFill>,
    /// Where sampled traffic goes, when a monitor is configured.
    pub sampler: Option<Arc<sampler::Sampler>>,
}

/// What a transport asks of [`Core::infer`].
pub struct Call<'a> {
    pub model: &'a str,
    /// An explicit version bypasses the traffic policy (and gets no shadow copy).
    pub version: Option<&'a str>,
    /// Makes the canary choice sticky (`x-vane-route-key`).
    pub route_key: Option<&'a [u8]>,
    /// A deadline the transport carries (e.g. a header); the request's own wins.
    pub timeout: Option<Duration>,
    /// When the transport received the request.
    pub started: Instant,
    /// Other requests may be arriving on this runtime thread right now (more than one
    /// client connection): an inline model lets them queue first, to run as one batch.
    pub concurrent: bool,
}

/// An admitted, routed request ([`Core::admit`]): owns everything scoring needs, so the
/// transport's request head can go before the body is awaited. Dropping it gives the
/// admission slot back.
pub struct Ticket<'c> {
    _admitted: Admitted<'c>,
    routed: Routed,
    timeout: Option<Duration>,
    started: Instant,
    concurrent: bool,
}

/// A scored request: the version that answered, what the request asked back, and the run.
pub struct Answer {
    pub model: Arc<LoadedModel>,
    pub rows: usize,
    /// The request's `id`, as JSON text.
    pub id: Option<String>,
    pub outputs: OutputSelection,
    pub done: JobOutput,
    /// From the call's start to its answer (what `vane_request_duration_seconds` records).
    pub total: Duration,
}

impl Core {
    pub fn new(table: ModelTable, metrics: Arc<Metrics>, limits: Limits) -> Self {
        Self {
            models: ArcSwap::from_pointee(table),
            metrics,
            ready: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            limits,
            online: None,
            sampler: None,
        }
    }

    /// Completes entity-keyed requests from `store` (`limits` bound its lookups).
    pub fn with_online_store(mut self, store: online::OnlineHandle) -> Self {
        self.online = Some(online::OnlineFill::new(
            Arc::new(store),
            self.limits.online_concurrency,
            self.limits.online_timeout,
        ));
        self
    }

    /// Reads stored features as Feast's `get-online-features` does: for each requested
    /// `view:field` and entity, the value and its status. A view's TTL is the one the served
    /// models' online specs give it (none when no model reads it).
    pub async fn read_features(
        &self,
        features: &[(String, String)],
        entities: Vec<(String, KeyColumn)>,
    ) -> Result<Vec<FeatureColumn>, ApiError> {
        let fill = self.online.as_ref().ok_or_else(|| {
            ApiError::NotFound("this server has no online store (--online-store)".into())
        })?;
        let table = self.models.load();
        let ttl_of = |view: &str| {
            table
                .all()
                .filter_map(|m| m.schema.signature.online.as_ref())
                .flat_map(|o| &o.views)
                .find(|v| v.name == view)
                .and_then(|v| v.ttl_s)
        };
        let mut names: Vec<String> = Vec::new();
        for (view, _) in features {
            if !names.contains(view) {
                names.push(view.clone());
            }
        }
        // Each view's join keys come from its stored layout.
        let schemas = {
            let names = names.clone();
            fill.run(move |h, _| {
                let store = h.store()?;
                names
                    .iter()
                    .map(|v| h.schema(&*store, v))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?
        };
        let request = EntityRequest {
            keys: entities.iter().map(|(_, c)| c.clone()).collect(),
            provided: Vec::new(),
        };
        let mut views = Vec::with_capacity(names.len());
        for (view, schema) in names.iter().zip(&schemas) {
            let cols = view_key_columns(view, schema, &entities)?;
            views.push(online::ViewRead {
                view: view.clone(),
                ttl_s: ttl_of(view),
                keys: online::request_keys(&request, &cols),
            });
        }
        let n = request.rows();
        let found = fill.lookup(views).await?;
        let mut out = Vec::with_capacity(features.len());
        for (view, field) in features {
            let ix = names.iter().position(|v| v == view).unwrap_or_default();
            let (schema, rows) = &found[ix];
            let fields = &schema.fields;
            let col = fields
                .iter()
                .position(|f| f.name == *field)
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "online view {view:?} has no feature {field:?}; it has {}",
                        fields
                            .iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            let mut column = FeatureColumn {
                values: Vec::with_capacity(n),
                statuses: Vec::with_capacity(n),
                event_ts_us: Vec::with_capacity(n),
            };
            for lookup in rows {
                let (value, status, ts) = match lookup {
                    vane_online::Lookup::Present(row) => {
                        let v = row
                            .values
                            .get(col)
                            .cloned()
                            .unwrap_or(vane_online::Value::Null);
                        let status = if matches!(v, vane_online::Value::Null) {
                            FeatureStatus::NullValue
                        } else {
                            FeatureStatus::Present
                        };
                        (v, status, Some(row.event_ts_us))
                    }
                    vane_online::Lookup::OutsideMaxAge(row) => (
                        vane_online::Value::Null,
                        FeatureStatus::OutsideMaxAge,
                        Some(row.event_ts_us),
                    ),
                    vane_online::Lookup::NotFound => {
                        (vane_online::Value::Null, FeatureStatus::NotFound, None)
                    }
                };
                column.values.push(value);
                column.statuses.push(status);
                column.event_ts_us.push(ts);
            }
            out.push(column);
        }
        Ok(out)
    }

    /// The named version, or the champion: what metadata, readiness and stats describe.
    pub fn lookup(&self, model: &str, version: Option<&str>) -> Result<Arc<LoadedModel>, ApiError> {
        let table = self.models.load();
        match version {
            Some(_) => table
                .get(model, version, None)
                .map(|r| r.primary)
                .map_err(lookup_err(model, version)),
            None => table
                .models
                .get(model)
                .and_then(|e| e.champion().cloned())
                .ok_or_else(|| ApiError::NotFound(format!("unknown model {model:?}"))),
        }
    }

    /// Admits and routes one request: the first half of scoring, synchronous, so that a
    /// transport can let go of the request head before the body is awaited. Past
    /// `max_concurrent_requests` this is a 429 ([`ApiError::Busy`]).
    pub fn admit(&self, call: Call<'_>) -> Result<Ticket<'_>, ApiError> {
        let max = self.limits.max_concurrent_requests;
        if self.in_flight.fetch_add(1, Ordering::Acquire) >= max {
            self.in_flight.fetch_sub(1, Ordering::Release);
            return Err(ApiError::Busy(format!(
                "server busy: {max} inference requests in flight (max_concurrent_requests); retry shortly"
            )));
        }
        // Held while the body is read, decoded and scored: bounds the memory clients can pin.
        let admitted = Admitted(&self.in_flight);
        let routed = self
            .models
            .load()
            .get(call.model, call.version, call.route_key)
            .map_err(lookup_err(call.model, call.version))?;
        Ok(Ticket {
            _admitted: admitted,
            routed,
            timeout: call.timeout,
            started: call.started,
            concurrent: call.concurrent,
        })
    }

    /// Scores an admitted request. `body` is its bytes (the transport read them under its
    /// own limits, holding the ticket); `decode` turns them into a model input with the
    /// routed version's schema.
    pub async fn infer<D>(
        &self,
        ticket: Ticket<'_>,
        body: Bytes,
        decode: D,
    ) -> Result<Answer, ApiError>
    where
        D: FnOnce(&Schema, &[u8]) -> Result<Decoded, DecodeError>,
    {
        let m = ticket.routed.primary.clone();
        let started = ticket.started;
        let mut result = self.run(ticket, body, decode).await;
        let metrics = &m.observer.metrics;
        match &mut result {
            Ok(answer) => {
                let total = started.elapsed();
                answer.total = total;
                metrics.outcome(Outcome::Success);
                metrics.request_duration.observe(total.as_secs_f64());
                m.observer.stats.record_total(total);
            }
            Err(e) => {
                metrics.outcome(e.outcome());
                m.observer.stats.record_fail(started.elapsed());
            }
        }
        result
    }

    async fn run<D>(&self, ticket: Ticket<'_>, body: Bytes, decode: D) -> Result<Answer, ApiError>
    where
        D: FnOnce(&Schema, &[u8]) -> Result<Decoded, DecodeError>,
    {
        let Ticket {
            _admitted,
            routed: Routed { primary: m, shadow },
            timeout: call_timeout,
            started,
            concurrent,
        } = ticket;
        let mut decoded = decode(&m.schema, &body)?;
        // The body's bytes are not held while the request waits for its batch.
        drop(body);
        if let Some(entities) = decoded.entities.take() {
            let store = self.online.as_ref().ok_or_else(|| {
                ApiError::NotReady(format!(
                    "model {:?} reads features by {}, but this server has no online store (--online-store)",
                    m.schema.name,
                    m.schema
                        .entity_keys()
                        .iter()
                        .map(|k| k.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            // Boxed: the store lookup's state would otherwise widen every request's future
            // (and each move of it), entity-keyed or not.
            Box::pin(store.fill(&m, &entities, &mut decoded.input)).await?;
        }
        // The request's own timeout, else the transport's, else the model's default.
        let timeout = decoded
            .timeout
            .or(call_timeout)
            .or(m.settings.default_timeout());
        let deadline = timeout.map(|t| started + t);
        let (tx, rx) = oneshot::channel();
        let rows = decoded.rows;
        let sampled = self.sampler.is_some() && m.draw_sample();
        let shadow_input = shadow
            .as_ref()
            .map(|_| (decoded.input.clone(), decoded.tensors.clone()));
        let job = Job {
            input: decoded.input,
            tensors: decoded.tensors,
            rows,
            enqueued: Instant::now(),
            deadline,
            reply: tx,
        };
        m.batcher.submit_deferred(job).map_err(|e| match e {
            SubmitError::Full(_) => ApiError::Overloaded {
                model: m.schema.name.clone(),
                retry_after_s: 1,
            },
            SubmitError::Closed(_) => ApiError::NotReady(format!(
                "model {:?} version {} is unloading",
                m.schema.name, m.version
            )),
        })?;
        if m.batcher.is_inline() {
            // Let the requests this thread has already read queue theirs, then run them all
            // as one batch here (flat combining; see batcher.rs). With one client there is
            // nobody to wait for: the yield (a trip through the scheduler) only adds latency.
            if concurrent {
                tokio::task::yield_now().await;
            }
            m.batcher.run_queued();
        }
        let answer = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), rx).await {
                Ok(a) => a,
                Err(_) => {
                    return Err(ApiError::DeadlineExceeded(format!(
                        "deadline of {} ms exceeded before the request was executed",
                        timeout.unwrap_or_default().as_millis()
                    )));
                }
            },
            None => rx.await,
        };
        let done = answer
            .map_err(|_| ApiError::Internal("the inference worker dropped the request".into()))??;
        if let (Some(sampler), true) = (&self.sampler, sampled) {
            // The worker handed the input back with the outputs: no copy was kept for this.
            if done.tensors.is_empty() {
                sampler.offer(&m.sample_schema, false, rows, &done.input, &done.outputs);
            } else {
                let values = m.sample_schema.rows_of(&done.tensors, rows);
                sampler.offer(&m.sample_schema, false, rows, &values, &done.outputs);
            }
        }
        if let (Some(shadow), Some((input, tensors))) = (shadow, shadow_input) {
            let answered = done
                .outputs
                .iter()
                .find_map(|o| o.data.as_f32())
                .map(<[f32]>::to_vec);
            let sampler = self.sampler.clone().filter(|_| sampled);
            shadow::copy(
                &self.metrics,
                sampler,
                shadow,
                input,
                tensors,
                rows,
                answered,
            );
        }
        Ok(Answer {
            model: m,
            rows,
            id: decoded.id,
            outputs: decoded.outputs,
            done,
            total: Duration::ZERO,
        })
    }
}

/// One admitted request's place under `max_concurrent_requests`, given back on drop.
struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// Positions in `entities` of a view's join keys, in the view's key order, checked against
/// their stored types.
fn view_key_columns(
    view: &str,
    schema: &vane_online::ViewSchema,
    entities: &[(String, KeyColumn)],
) -> Result<Vec<usize>, ApiError> {
    let given = || {
        entities
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if schema.key_format == 1 {
        // Stored before key names were recorded: one INT64 key, whichever name it is given.
        return match entities {
            [(_, KeyColumn::Int(_))] => Ok(vec![0]),
            _ => Err(ApiError::BadRequest(format!(
                "online view {view:?} is keyed by one INT64 key; give exactly one integer join key (got {})",
                given()
            ))),
        };
    }
    schema
        .keys
        .iter()
        .map(|k| {
            let i = entities
                .iter()
                .position(|(n, _)| *n == k.name)
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "online view {view:?} is keyed by {}; field `entities` lacks {:?} (it has {})",
                        schema
                            .keys
                            .iter()
                            .map(|k| k.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        k.name,
                        given()
                    ))
                })?;
            let fits = matches!(
                (k.kind.as_str(), &entities[i].1),
                ("STRING", KeyColumn::Str(_)) | ("INT64", KeyColumn::Int(_))
            );
            if !fits {
                return Err(ApiError::BadRequest(format!(
                    "entities.{}: online view {view:?} stores this key as {}; send {}",
                    k.name,
                    k.kind,
                    if k.kind == "STRING" { "strings" } else { "integers" }
                )));
            }
            Ok(i)
        })
        .collect()
}

/// One requested feature for every requested entity (see [`Core::read_features`]).
#[derive(Debug)]
pub struct FeatureColumn {
    /// Null where the status is not `Present`.
    pub values: Vec<vane_online::Value>,
    pub statuses: Vec<FeatureStatus>,
    /// The stored row's event time, when there is a row.
    pub event_ts_us: Vec<Option<i64>>,
}

/// Feast's field statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureStatus {
    Present,
    /// A row exists, but its value is null.
    NullValue,
    /// The row is older than the view's TTL: the value reads as null.
    OutsideMaxAge,
    NotFound,
}

impl FeatureStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureStatus::Present => "PRESENT",
            FeatureStatus::NullValue => "NULL_VALUE",
            FeatureStatus::OutsideMaxAge => "OUTSIDE_MAX_AGE",
            FeatureStatus::NotFound => "NOT_FOUND",
        }
    }
}

fn lookup_err(model: &str, version: Option<&str>) -> impl FnOnce(LookupError) -> ApiError {
    move |e| match e {
        LookupError::UnknownModel => ApiError::NotFound(format!("unknown model {model:?}")),
        LookupError::UnknownVersion => ApiError::NotFound(format!(
            "model {model:?} has no loaded version {:?}",
            version.unwrap_or_default()
        )),
    }
}
