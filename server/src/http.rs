//! HTTP front: the accept loop, the router, and the handlers.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};

use crate::batcher::{Job, SubmitError};
use crate::codec;
use crate::config::Limits;
use crate::error::ApiError;
use crate::metrics::{Metrics, Outcome};
use crate::model::{LoadedModel, LookupError, ModelTable, Routed};
use crate::sampler::Sampler;
use crate::watcher::Command;

/// Shared state of the HTTP front.
pub struct AppState {
    pub models: ArcSwap<ModelTable>,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    /// False until models are loaded; false again while shutting down.
    pub ready: AtomicBool,
    /// Bearer token of the repository endpoints; `None` disables them.
    admin_token: Option<String>,
    pub limits: Limits,
    /// Inference requests being read, decoded or awaited (`limits.max_concurrent_requests`).
    admission: Arc<Semaphore>,
    /// Online-store lookups in flight, each on a blocking thread (`limits.online_concurrency`).
    online_slots: Arc<Semaphore>,
    /// One permit per open client connection (`limits.max_connections`).
    connections: Arc<Semaphore>,
    /// The registry watcher, once started.
    pub control: OnceLock<crossbeam_channel::Sender<Command>>,
    /// The online feature store, when configured.
    pub online: Option<Arc<crate::online::OnlineHandle>>,
    /// Where sampled traffic goes, when a monitor is configured.
    pub sampler: Option<Arc<Sampler>>,
}

impl AppState {
    pub fn new(
        table: ModelTable,
        metrics: Arc<Metrics>,
        max_body_bytes: usize,
        admin_token: Option<String>,
    ) -> Self {
        Self {
            models: ArcSwap::from_pointee(table),
            metrics,
            max_body_bytes,
            ready: AtomicBool::new(false),
            admin_token,
            limits: Limits::default(),
            admission: Arc::new(Semaphore::new(Limits::default().max_concurrent_requests)),
            online_slots: Arc::new(Semaphore::new(Limits::default().online_concurrency)),
            connections: Arc::new(Semaphore::new(Limits::default().max_connections)),
            control: OnceLock::new(),
            online: None,
            sampler: None,
        }
    }

    /// Client connections open now.
    fn open_connections(&self) -> usize {
        self.limits.max_connections - self.connections.available_permits()
    }

    /// Replaces the default limits (before serving).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.admission = Arc::new(Semaphore::new(limits.max_concurrent_requests));
        self.online_slots = Arc::new(Semaphore::new(limits.online_concurrency));
        self.connections = Arc::new(Semaphore::new(limits.max_connections));
        self.limits = limits;
        self
    }
}

type Resp = Response<Full<Bytes>>;

/// Serves connections from `listener` until `shutdown` resolves, then stops accepting and
/// gives in-flight requests up to `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    // The timer enables the header read timeout, so idle half-open requests cannot pin
    // connections forever.
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    tokio::pin!(shutdown);
    // One permit per open connection: at the cap, the loop stops accepting (new clients wait
    // in the kernel's backlog) until a connection closes.
    let connections = state.connections.clone();
    loop {
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => {
                    let _ = tcp.set_nodelay(true);
                    let st = state.clone();
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(&st, req).await) }
                    });
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(tcp), svc));
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    state.ready.store(false, Ordering::SeqCst);
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!(grace_s = grace.as_secs(), "grace period over; closing remaining connections"),
    }
}

/// Routes one request; every error becomes a JSON response here.
pub async fn handle<B>(state: &AppState, req: Request<B>) -> Resp
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let resp = route(state, req)
        .await
        .unwrap_or_else(ApiError::into_response);
    state.metrics.http_response(resp.status().as_u16());
    resp
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Resp {
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn require(method: &Method, want: Method, allow: &'static str, path: &str) -> Result<(), ApiError> {
    if *method == want || (want == Method::GET && *method == Method::HEAD) {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed(
            format!("{path} does not accept {method}; use {allow}"),
            allow,
        ))
    }
}

async fn route<B>(state: &AppState, req: Request<B>) -> Result<Resp, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = |m: &Method| require(m, Method::GET, "GET", &path);
    let post = |m: &Method| require(m, Method::POST, "POST", &path);
    match segs.as_slice() {
        ["v2", "health", "live"] => {
            get(&method)?;
            Ok(json_response(StatusCode::OK, json!({ "live": true })))
        }
        ["v2", "health", "ready"] => {
            get(&method)?;
            let ready = state.ready.load(Ordering::SeqCst);
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            Ok(json_response(status, json!({ "ready": ready })))
        }
        ["v2"] => {
            get(&method)?;
            Ok(json_response(
                StatusCode::OK,
                json!({
                    "name": "vane",
                    "version": env!("CARGO_PKG_VERSION"),
                    "extensions": ["statistics"],
                }),
            ))
        }
        ["v2", "models", m] => {
            get(&method)?;
            model_metadata(state, m, None)
        }
        ["v2", "models", m, "versions", v] => {
            get(&method)?;
            model_metadata(state, m, Some(v))
        }
        ["v2", "models", m, "ready"] => {
            get(&method)?;
            model_ready(state, m, None)
        }
        ["v2", "models", m, "versions", v, "ready"] => {
            get(&method)?;
            model_ready(state, m, Some(v))
        }
        ["v2", "models", m, "stats"] => {
            get(&method)?;
            model_stats(state, m, None)
        }
        ["v2", "models", m, "versions", v, "stats"] => {
            get(&method)?;
            model_stats(state, m, Some(v))
        }
        ["v2", "models", m, "infer"] => {
            post(&method)?;
            let (m, v) = (m.to_string(), None);
            infer(state, req, &m, v, Api::V2).await
        }
        ["v2", "models", m, "versions", v, "infer"] => {
            post(&method)?;
            let (m, v) = (m.to_string(), Some(v.to_string()));
            infer(state, req, &m, v.as_deref(), Api::V2).await
        }
        ["v2", "repository", "index"] => {
            post(&method)?;
            authorize(state, req.headers())?;
            repository_index(state).await
        }
        [
            "v2",
            "repository",
            "models",
            m,
            action @ ("load" | "unload"),
        ] => {
            post(&method)?;
            authorize(state, req.headers())?;
            repository_change(state, m, action).await
        }
        ["v1", "models", m] if m.ends_with(":predict") => {
            post(&method)?;
            let m = m.trim_end_matches(":predict").to_string();
            infer(state, req, &m, None, Api::V1).await
        }
        ["metrics"] => {
            get(&method)?;
            for m in state.models.load().all() {
                state
                    .metrics
                    .set_queue_depth(&m.name, &m.version_label, m.batcher.queue_len());
            }
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, Metrics::content_type())
                .body(Full::new(Bytes::from(state.metrics.render())))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
        }
        _ => Err(ApiError::NotFound(format!("no route for {method} {path}"))),
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

/// The version named in the URL, else the one the model's traffic policy picks.
fn route_request(
    state: &AppState,
    model: &str,
    version: Option<&str>,
    route_key: Option<&[u8]>,
) -> Result<Routed, ApiError> {
    state
        .models
        .load()
        .get(model, version, route_key)
        .map_err(lookup_err(model, version))
}

/// The named version, or the champion: what metadata, readiness and stats describe.
fn lookup(
    state: &AppState,
    model: &str,
    version: Option<&str>,
) -> Result<Arc<LoadedModel>, ApiError> {
    let table = state.models.load();
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

/// Checks `Authorization: Bearer <token>` for the repository endpoints (as Triton's
/// `--http-restricted-api=model-repository:…` does): they make the server poll the registry
/// and load or drop versions, which no anonymous client should trigger.
fn authorize(state: &AppState, headers: &hyper::HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.admin_token else {
        return Err(ApiError::Forbidden(
            "repository control is disabled: start the server with --admin-token".into(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::Unauthorized("missing bearer token (Authorization: Bearer <token>)".into())
        })?;
    // Compare without an early exit so timing does not leak the token's prefix.
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::Forbidden("invalid bearer token".into()))
    }
}

/// Queues a command for the registry watcher without waiting: its queue is bounded.
fn control(state: &AppState, cmd: Command) -> Result<(), ApiError> {
    let tx = state
        .control
        .get()
        .ok_or_else(|| ApiError::NotReady("the registry watcher is not running yet".into()))?;
    tx.try_send(cmd).map_err(|e| match e {
        crossbeam_channel::TrySendError::Full(_) => {
            ApiError::Busy("the registry watcher has too many commands queued; retry".into())
        }
        crossbeam_channel::TrySendError::Disconnected(_) => {
            ApiError::NotReady("the registry watcher has stopped".into())
        }
    })
}

async fn repository_index(state: &AppState) -> Result<Resp, ApiError> {
    let (tx, rx) = oneshot::channel();
    control(state, Command::Sync(Some(tx)))?;
    let index = rx
        .await
        .map_err(|_| ApiError::Internal("the registry watcher dropped the request".into()))?;
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_value(index).unwrap_or_default(),
    ))
}

async fn repository_change(state: &AppState, model: &str, action: &str) -> Result<Resp, ApiError> {
    let dropped = || ApiError::Internal("the registry watcher dropped the request".into());
    if action == "load" {
        let (reply, rx) = oneshot::channel();
        control(state, Command::Load(model.to_string(), reply))?;
        let index = rx
            .await
            .map_err(|_| dropped())?
            .map_err(ApiError::NotFound)?;
        Ok(json_response(
            StatusCode::OK,
            json!({ "name": model, "state": "READY", "index": index }),
        ))
    } else {
        let (reply, rx) = oneshot::channel();
        control(state, Command::Unload(model.to_string(), reply))?;
        rx.await
            .map_err(|_| dropped())?
            .map_err(ApiError::NotFound)?;
        Ok(json_response(
            StatusCode::OK,
            json!({ "name": model, "state": "UNLOADED" }),
        ))
    }
}

fn model_metadata(state: &AppState, model: &str, version: Option<&str>) -> Result<Resp, ApiError> {
    let m = lookup(state, model, version)?;
    let table = state.models.load();
    let entry = table.models.get(model);
    let versions: Vec<String> = entry
        .map(|e| e.versions.keys().map(u64::to_string).collect())
        .unwrap_or_default();
    // Which version plays which role, so clients (the load tester) can resolve aliases
    // without the repository API.
    let routing = entry.map(|e| {
        let r = &e.routing;
        json!({
            "champion": r.champion.to_string(),
            "canary": r.canary.map(|(v, _)| v.to_string()),
            "canary_weight": r.canary.map_or(0.0, |(_, w)| w),
            "shadow": r.shadow.map(|v| v.to_string()),
        })
    });
    let sig = &m.signature;
    Ok(json_response(
        StatusCode::OK,
        json!({
            "name": m.name,
            "versions": versions,
            "platform": "onnx",
            "inputs": [{ "name": sig.tensor.name, "datatype": sig.tensor.datatype, "shape": sig.tensor.shape }],
            "outputs": m.outputs.iter().map(|o| {
                let mut shape = vec![-1i64];
                shape.extend(o.row_shape.iter().map(|d| *d as i64));
                json!({ "name": o.name, "datatype": o.dtype.oip_name(), "shape": shape })
            }).collect::<Vec<_>>(),
            "parameters": {
                "version": m.version_label,
                "backend": m.backend,
                "content_types": ["np", "pd"],
                "features": sig.inputs,
                "routing": routing,
            },
        }),
    ))
}

fn model_ready(state: &AppState, model: &str, version: Option<&str>) -> Result<Resp, ApiError> {
    let m = lookup(state, model, version)?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "name": m.name, "version": m.version_label, "ready": true }),
    ))
}

fn model_stats(state: &AppState, model: &str, version: Option<&str>) -> Result<Resp, ApiError> {
    let m = lookup(state, model, version)?;
    Ok(json_response(
        StatusCode::OK,
        json!({
            "model_name": m.name,
            "model_version": m.version_label,
            "backend": m.backend,
            "queue_depth": m.batcher.queue_len(),
            "stats": m.observer.stats.snapshot(),
        }),
    ))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    V2,
    V1,
}

/// Most bytes drained from a refused body so the client reads our 413 instead of a reset.
const LINGER_BYTES: usize = 64 << 20;
const LINGER_TIME: Duration = Duration::from_secs(2);

/// Reads the whole body within `limits.body_read_timeout` (else 408) and `max_body_bytes`
/// (else 413).
async fn read_body<B>(state: &AppState, req: Request<B>) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let timeout = state.limits.body_read_timeout;
    tokio::time::timeout(timeout, read_body_within(req, state.max_body_bytes))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::RequestTimeout(format!(
                "request body not received within {} ms (body_read_timeout_ms)",
                timeout.as_millis()
            )))
        })
}

async fn read_body_within<B>(req: Request<B>, limit: usize) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "request body exceeds the {limit}-byte limit (max_body_bytes)"
        ))
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    let mut body = req.into_body();
    if declared.is_some_and(|n| n > limit as u64) {
        linger(body);
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    let mut first: Option<Bytes> = None;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::BadRequest(format!("could not read request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            let held = first.as_ref().map_or(0, Bytes::len) + buf.len();
            if held + data.len() > limit {
                linger(body);
                return Err(too_large());
            }
            // Most bodies arrive as one frame: keep it without copying.
            match first.take() {
                None if buf.is_empty() => first = Some(data),
                prev => {
                    if let Some(prev) = prev {
                        buf.reserve(
                            declared
                                .map_or(0, |n| n as usize)
                                .max(prev.len() + data.len()),
                        );
                        buf.extend_from_slice(&prev);
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// Reads and discards the rest of a refused body in the background (bounded in bytes and
/// time): closing a socket with unread input makes the kernel send a reset, which can destroy
/// the error response before the client reads it.
fn linger<B>(mut body: B)
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    tokio::spawn(async move {
        let drain = async {
            let mut seen = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, |d| d.len());
                if seen > LINGER_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
}

fn header_timeout<B>(req: &Request<B>) -> Result<Option<Duration>, ApiError> {
    match req.headers().get("x-vane-timeout-ms") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(|ms| Some(Duration::from_millis(ms)))
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "header x-vane-timeout-ms must be a positive integer (milliseconds)".into(),
                )
            }),
    }
}

async fn infer<B>(
    state: &AppState,
    req: Request<B>,
    model: &str,
    version: Option<&str>,
    api: Api,
) -> Result<Resp, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let t0 = Instant::now();
    // Held while the body is read, decoded and scored: bounds the memory clients can pin.
    let _admitted = state.admission.try_acquire().map_err(|_| {
        ApiError::Busy(format!(
            "server busy: {} inference requests in flight (max_concurrent_requests); retry shortly",
            state.limits.max_concurrent_requests
        ))
    })?;
    let key = req
        .headers()
        .get("x-vane-route-key")
        .map(|v| v.as_bytes().to_vec());
    let routed = route_request(state, model, version, key.as_deref())?;
    let m = routed.primary;
    let result = infer_on(state, &m, routed.shadow, req, api, t0).await;
    let metrics = &m.observer.metrics;
    match &result {
        Ok(_) => {
            let total = t0.elapsed();
            metrics.outcome(Outcome::Success);
            metrics.request_duration.observe(total.as_secs_f64());
            m.observer.stats.record_total(total);
        }
        Err(e) => metrics.outcome(e.outcome()),
    }
    result
}

/// Completes an entity-keyed request: reads the model's online views for the request's ids
/// (off the async runtime) and fills every value the client did not send. A missing or stale
/// entity is a 404 naming the id; an unreachable store is a 503.
async fn fill_from_online_store(
    state: &AppState,
    m: &LoadedModel,
    d: &mut codec::Decoded,
) -> Result<(), ApiError> {
    let (Some(entities), Some(spec)) = (d.entities.take(), m.signature.online.as_ref()) else {
        return Ok(());
    };
    let online = state.online.as_ref().ok_or_else(|| {
        ApiError::NotReady(format!(
            "model {:?} reads features by {:?}, but this server has no online store (--online-store)",
            m.name, spec.entity_key
        ))
    })?;
    let views: Vec<(String, Option<u64>)> = spec
        .views
        .iter()
        .map(|v| (v.name.clone(), v.ttl_s))
        .collect();
    let ids = entities.ids.clone();
    let handle = online.clone();
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    // A slot bounds the blocking threads lookups hold; the slot travels with the thread, so
    // a hung store costs at most `online_concurrency` threads and 503s past the deadline.
    let limit = state.limits.online_timeout;
    let slots = state.online_slots.clone();
    let lookup = async move {
        let slot = slots
            .acquire_owned()
            .await
            .map_err(|_| ApiError::NotReady("the online store is shutting down".into()))?;
        tokio::task::spawn_blocking(move || {
            let r = handle.read_views(&views, &ids, now_us);
            drop(slot);
            r
        })
        .await
        .map_err(|_| ApiError::Internal("online store lookup panicked".into()))?
        .map_err(|e| match e {
            vane_online::StoreError::Unavailable(_) => ApiError::NotReady(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        })
    };
    let found = tokio::time::timeout(limit, lookup).await.map_err(|_| {
        ApiError::NotReady(format!(
            "the online store did not answer within {} ms (online_timeout_ms)",
            limit.as_millis()
        ))
    })??;
    let width = m.signature.width();
    for (view, (schema, rows)) in spec.views.iter().zip(found) {
        let mut cols = Vec::with_capacity(view.features.len());
        for f in &view.features {
            let col = m.signature.position(f).ok_or_else(|| {
                ApiError::Internal(format!(
                    "online view {:?} lists unknown input {f:?}",
                    view.name
                ))
            })?;
            let field = schema.iter().position(|s| s.name == *f).ok_or_else(|| {
                ApiError::NotReady(format!(
                    "online view {:?} has no field {f:?}; materialize it again",
                    view.name
                ))
            })?;
            cols.push((col, field));
        }
        for (r, lookup) in rows.iter().enumerate() {
            let id = entities.ids[r];
            let row = match lookup {
                vane_online::Lookup::Present(row) => row,
                vane_online::Lookup::NotFound => {
                    return Err(ApiError::NotFound(format!(
                        "{} {id} not found in online view {:?}",
                        spec.entity_key, view.name
                    )));
                }
                vane_online::Lookup::OutsideMaxAge(row) => {
                    return Err(ApiError::NotFound(format!(
                        "{} {id}: online view {:?} holds only features older than its TTL (from {} µs since the epoch)",
                        spec.entity_key, view.name, row.event_ts_us
                    )));
                }
            };
            for &(col, field) in &cols {
                if entities.provided[r * width + col] {
                    continue;
                }
                // Stored nulls and categories the model never saw reach it as missing (NaN).
                d.input[r * width + col] = match row.values.get(field) {
                    Some(vane_online::Value::Num(x)) => *x as f32,
                    Some(vane_online::Value::Str(s)) => m.vocab[col]
                        .as_ref()
                        .and_then(|v| v.get(s.as_str()))
                        .map_or(f32::NAN, |c| *c as f32),
                    _ => f32::NAN,
                };
            }
        }
    }
    Ok(())
}

/// Sends a copy of a served request to the shadow version, off the response path, and
/// records how far its first output is from what the client got. When the request was
/// sampled (`sampled` holds its rows), the shadow's answer is sampled too, tagged shadow.
fn shadow_copy(
    state: &AppState,
    shadow: Arc<LoadedModel>,
    input: Vec<f32>,
    rows: usize,
    answered: Option<Vec<f32>>,
    sampled: bool,
) {
    let metrics = state.metrics.clone();
    let sampler = state.sampler.clone();
    let (tx, rx) = oneshot::channel();
    let job = Job {
        input,
        rows,
        enqueued: Instant::now(),
        deadline: shadow
            .settings
            .default_timeout()
            .map(|t| Instant::now() + t),
        reply: tx,
    };
    if shadow.batcher.submit(job).is_err() {
        metrics.shadow(&shadow.name, &shadow.version_label, "rejected", None);
        return;
    }
    tokio::spawn(async move {
        match rx.await {
            Ok(Ok(out)) => {
                let diff = match (answered, out.outputs.first().and_then(|o| o.data.as_f32())) {
                    (Some(a), Some(b)) if a.len() == b.len() => Some(
                        a.iter()
                            .zip(b)
                            .map(|(x, y)| f64::from((x - y).abs()))
                            .fold(0.0, f64::max),
                    ),
                    _ => None,
                };
                metrics.shadow(&shadow.name, &shadow.version_label, "success", diff);
                shadow.observer.stats.record_shadow(diff);
                if let (Some(sampler), true) = (sampler, sampled) {
                    sampler.offer(&shadow.sample_schema, true, rows, &out.input, &out.outputs);
                }
            }
            _ => metrics.shadow(&shadow.name, &shadow.version_label, "error", None),
        }
    });
}

async fn infer_on<B>(
    state: &AppState,
    m: &Arc<LoadedModel>,
    shadow: Option<Arc<LoadedModel>>,
    req: Request<B>,
    api: Api,
    t0: Instant,
) -> Result<Resp, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let header_timeout = header_timeout(&req)?;
    let json_len = match req.headers().get("inference-header-content-length") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "header Inference-Header-Content-Length must be a byte count".into(),
                    )
                })?,
        ),
    };
    let body = read_body(state, req).await?;
    let mut decoded = match api {
        Api::V2 => codec::decode_infer(m, &body, json_len)?,
        Api::V1 => codec::decode_records(m, &body)?,
    };
    if decoded.entities.is_some() {
        fill_from_online_store(state, m, &mut decoded).await?;
    }
    drop(body);
    let timeout = decoded
        .timeout
        .or(header_timeout)
        .or(m.settings.default_timeout());
    let deadline = timeout.map(|t| t0 + t);
    let (tx, rx) = oneshot::channel();
    let rows = decoded.rows;
    let sampled = state.sampler.is_some() && m.draw_sample();
    let shadow_input = shadow.as_ref().map(|_| decoded.input.clone());
    let job = Job {
        input: decoded.input,
        rows,
        enqueued: Instant::now(),
        deadline,
        reply: tx,
    };
    m.batcher.submit_deferred(job).map_err(|e| match e {
        SubmitError::Full(_) => ApiError::Overloaded {
            model: m.name.clone(),
            retry_after_s: 1,
        },
        SubmitError::Closed(_) => ApiError::NotReady(format!(
            "model {:?} version {} is unloading",
            m.name, m.version
        )),
    })?;
    if m.batcher.is_inline() {
        // Let the requests this thread has already read queue theirs, then run them all as
        // one batch here (flat combining; see batcher.rs). With one client connection there
        // is nobody to wait for: the yield (a trip through the scheduler) would only add
        // latency. (Requests in flight are no signal: on one runtime thread, the others are
        // still unread in their sockets when this one gets here.)
        if state.open_connections() > 1 {
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
    let out = answer
        .map_err(|_| ApiError::Internal("the inference worker dropped the request".into()))??;
    if let (Some(sampler), true) = (&state.sampler, sampled) {
        // The worker handed the input back with the outputs: no copy was kept for this.
        sampler.offer(&m.sample_schema, false, rows, &out.input, &out.outputs);
    }
    if let (Some(shadow), Some(input)) = (shadow, shadow_input) {
        let answered = out
            .outputs
            .first()
            .and_then(|o| o.data.as_f32())
            .map(<[f32]>::to_vec);
        shadow_copy(state, shadow, input, rows, answered, sampled);
    }
    let (body, json_len) = match api {
        Api::V2 => codec::encode_infer(
            m,
            decoded.id.as_deref(),
            rows,
            &out.outputs,
            &decoded.outputs,
            &decoded.binary,
        ),
        Api::V1 => (codec::encode_predictions(m, rows, &out.outputs), None),
    };
    let total = t0.elapsed();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    let h = resp.headers_mut();
    match json_len {
        None => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        Some(n) => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert("inference-header-content-length", HeaderValue::from(n));
        }
    }
    h.insert("x-vane-model-version", m.version_header.clone());
    h.insert(
        "x-vane-queue-us",
        HeaderValue::from(out.queue.as_micros() as u64),
    );
    h.insert(
        "x-vane-compute-us",
        HeaderValue::from(out.compute.as_micros() as u64),
    );
    h.insert(
        "x-vane-total-us",
        HeaderValue::from(total.as_micros() as u64),
    );
    h.insert(
        "x-vane-batch-rows",
        HeaderValue::from(out.batch_rows as u64),
    );
    Ok(resp)
}
