//! The HTTP transport: the accept loop (connection cap), the routing table, and the small
//! read-only handlers. Inference goes to the serving core through [`infer`], feature reads
//! through [`features`]; repository commands go to the control plane through [`admin`];
//! every error becomes a response in [`response`]; [`socket`] is how responses are written.

mod admin;
mod body;
mod features;
mod infer;
pub mod response;
mod socket;

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::header;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use self::infer::Api;
use self::response::{Resp, error_response, json_response};
use crate::control::Command;
use crate::core::model::LoadedModel;
use crate::core::{ApiError, Core};
use crate::telemetry::Metrics;

/// State of the HTTP transport.
pub struct HttpState {
    pub core: Arc<Core>,
    pub max_body_bytes: usize,
    /// Bearer token of the repository endpoints; `None` disables them.
    admin_token: Option<String>,
    /// One permit per open client connection (`core.limits.max_connections`).
    connections: Arc<Semaphore>,
    /// The control plane's command queue, once the watcher runs.
    pub control: OnceLock<crossbeam_channel::Sender<Command>>,
}

impl HttpState {
    pub fn new(core: Arc<Core>, max_body_bytes: usize, admin_token: Option<String>) -> Self {
        Self {
            connections: Arc::new(Semaphore::new(core.limits.max_connections)),
            core,
            max_body_bytes,
            admin_token,
            control: OnceLock::new(),
        }
    }

    /// Client connections open now.
    fn open_connections(&self) -> usize {
        self.core.limits.max_connections - self.connections.available_permits()
    }
}

/// Serves connections from `listener` until `shutdown` resolves, then stops accepting and
/// gives in-flight requests up to `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    // No hyper timer: its header read timeout arms (and disarms) a timer for every request.
    // `close_when_idle` enforces the same bound with one timer per connection.
    builder.keep_alive(true);
    let idle_timeout = state.core.limits.idle_timeout;
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
                    let conn = Arc::new(Connection {
                        state: state.clone(),
                        activity: AtomicU64::new(0),
                    });
                    let ctx = conn.clone();
                    let svc = service_fn(move |req| {
                        let ctx = ctx.clone();
                        async move {
                            ctx.activity.fetch_add(1, Ordering::Relaxed);
                            let resp = handle(&ctx.state, req).await;
                            ctx.activity.fetch_add(1, Ordering::Relaxed);
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let served = graceful.watch(builder.serve_connection(socket::OneWrite(TokioIo::new(tcp)), svc));
                    let task = tokio::spawn(async move {
                        if let Err(e) = served.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        drop(permit);
                    });
                    tokio::spawn(close_when_idle(conn, task, idle_timeout));
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
    state.core.ready.store(false, Ordering::SeqCst);
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!(grace_s = grace.as_secs(), "grace period over; closing remaining connections"),
    }
}

/// One client connection.
struct Connection {
    state: Arc<HttpState>,
    /// Bumped when a request's handler starts and again when it ends: odd while one is in
    /// progress, unchanged while the connection idles.
    activity: AtomicU64,
}

/// Closes the connection served by `task` once it has had no request in progress for
/// `limit` (checked every quarter of it): idle keep-alive connections and request heads that
/// never complete cannot hold a connection slot for ever. Ends with the connection.
async fn close_when_idle(conn: Arc<Connection>, mut task: JoinHandle<()>, limit: Duration) {
    let tick = (limit / 4).max(Duration::from_millis(1));
    let mut seen = conn.activity.load(Ordering::Relaxed);
    let mut quiet = Duration::ZERO;
    loop {
        tokio::select! {
            _ = &mut task => return,
            () = tokio::time::sleep(tick) => {}
        }
        let now = conn.activity.load(Ordering::Relaxed);
        if now != seen || now % 2 == 1 {
            seen = now;
            quiet = Duration::ZERO;
            continue;
        }
        quiet += tick;
        if quiet >= limit {
            tracing::debug!(
                idle_ms = limit.as_millis() as u64,
                "closing a connection with no request in progress (idle_timeout_ms)"
            );
            task.abort();
            return;
        }
    }
}

/// Routes one request; every error becomes a JSON response here.
///
/// The head is routed (and an inference request admitted) when this is called; the returned
/// future holds only what the handler awaits, not the request head. Futures are moved (copied)
/// as they are built and polled: a small one keeps that cheap.
pub fn handle<'s, B>(state: &'s HttpState, req: Request<B>) -> impl Future<Output = Resp> + 's
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let next = route(state, req);
    async move {
        let resp = match next {
            Ok(Next::Done(resp)) => Ok(resp),
            Ok(Next::Infer(admitted, body)) => infer::infer(state, admitted, body).await,
            Ok(Next::Features(declared, body)) => features::read(state, declared, body).await,
            Ok(Next::Index) => admin::repository_index(state).await,
            Ok(Next::Change { model, load }) => admin::repository_change(state, &model, load).await,
            Err(e) => Err(e),
        }
        .unwrap_or_else(error_response);
        state.core.metrics.http_response(resp.status().as_u16());
        resp
    }
}

/// What a routed request still needs once its head is gone.
enum Next<'s, B> {
    /// Answered from the head alone.
    Done(Resp),
    /// An admitted inference request and its body.
    Infer(infer::Admitted<'s>, B),
    /// A feature read: what the head says about the body, and the body.
    Features(self::body::BodyHead, B),
    /// `POST /v2/repository/index`, authorized.
    Index,
    /// `POST /v2/repository/models/{model}/{load|unload}`, authorized.
    Change { model: String, load: bool },
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

/// Longest path routed (`/v2/models/{m}/versions/{v}/infer` has 6 segments).
const MAX_SEGMENTS: usize = 8;

fn route<B>(state: &HttpState, req: Request<B>) -> Result<Next<'_, B>, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let method = parts.method.clone();
    // Path segments on the stack: routing allocates nothing.
    let mut segs = [""; MAX_SEGMENTS];
    let mut n = 0;
    for s in path.trim_matches('/').split('/') {
        if n == MAX_SEGMENTS {
            return Err(ApiError::NotFound(format!("no route for {method} {path}")));
        }
        segs[n] = s;
        n += 1;
    }
    let get = |m: &Method| require(m, Method::GET, "GET", path);
    let post = |m: &Method| require(m, Method::POST, "POST", path);
    let resp = match &segs[..n] {
        ["v2", "health", "live"] => {
            get(&method)?;
            Ok(json_response(StatusCode::OK, json!({ "live": true })))
        }
        ["v2", "health", "ready"] => {
            get(&method)?;
            let ready = state.core.ready.load(Ordering::SeqCst);
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
                    "extensions": [
                        "binary_tensor_data",
                        "model_configuration",
                        "model_repository",
                        "statistics",
                    ],
                }),
            ))
        }
        // Before `/v2/models/{m}`: as in Triton, `stats` here means every model's statistics.
        ["v2", "models", "stats"] => {
            get(&method)?;
            model_stats(state, None, None)
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
            model_stats(state, Some(m), None)
        }
        ["v2", "models", m, "versions", v, "stats"] => {
            get(&method)?;
            model_stats(state, Some(m), Some(v))
        }
        ["v2", "models", m, "config"] => {
            get(&method)?;
            model_config(state, m, None)
        }
        ["v2", "models", m, "versions", v, "config"] => {
            get(&method)?;
            model_config(state, m, Some(v))
        }
        ["v2", "models", m, "infer"] => {
            post(&method)?;
            let admitted = infer::admit(state, &parts.headers, m, None, Api::V2)?;
            return Ok(Next::Infer(admitted, body));
        }
        ["v2", "models", m, "versions", v, "infer"] => {
            post(&method)?;
            let admitted = infer::admit(state, &parts.headers, m, Some(v), Api::V2)?;
            return Ok(Next::Infer(admitted, body));
        }
        ["v2", "repository", "index"] => {
            post(&method)?;
            admin::authorize(state, &parts.headers)?;
            return Ok(Next::Index);
        }
        [
            "v2",
            "repository",
            "models",
            m,
            action @ ("load" | "unload"),
        ] => {
            post(&method)?;
            admin::authorize(state, &parts.headers)?;
            return Ok(Next::Change {
                model: m.to_string(),
                load: *action == "load",
            });
        }
        ["v1", "features"] => {
            post(&method)?;
            return Ok(Next::Features(
                self::body::BodyHead::of(&parts.headers)?,
                body,
            ));
        }
        ["v1", "models", m] if m.ends_with(":predict") => {
            post(&method)?;
            let m = m.trim_end_matches(":predict");
            let admitted = infer::admit(state, &parts.headers, m, None, Api::V1)?;
            return Ok(Next::Infer(admitted, body));
        }
        ["metrics"] => {
            get(&method)?;
            for m in state.core.models.load().all() {
                state.core.metrics.set_queue_depth(
                    &m.schema.name,
                    &m.schema.version_label,
                    m.batcher.queue_len(),
                );
            }
            Ok(Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, Metrics::content_type())
                .body(Full::new(Bytes::from(state.core.metrics.render())))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
        }
        _ => Err(ApiError::NotFound(format!("no route for {method} {path}"))),
    };
    resp.map(Next::Done)
}

fn model_metadata(state: &HttpState, model: &str, version: Option<&str>) -> Result<Resp, ApiError> {
    let m = state.core.lookup(model, version)?;
    let table = state.core.models.load();
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
    let (inputs, outputs) = io_specs(&m);
    Ok(json_response(
        StatusCode::OK,
        json!({
            "name": m.schema.name,
            "versions": versions,
            "platform": "onnx",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": {
                "version": m.schema.version_label,
                "backend": m.backend,
                "content_types": ["np", "pd"],
                "features": m.schema.signature.inputs,
                "routing": routing,
            },
        }),
    ))
}

/// A version's input and output tensors as metadata lists them (`name`, `datatype`, `shape`,
/// -1 for a dynamic dimension). A tensor-signature model lists its graph as declared (as
/// Triton does); a feature model its [N, F] tensor and the outputs as served.
fn io_specs(m: &LoadedModel) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let sig = &m.schema.signature;
    match (&sig.graph, sig.is_tensor_model()) {
        (Some(graph), true) => (
            graph.inputs.iter().map(|t| json!(t)).collect(),
            graph.outputs.iter().map(|t| json!(t)).collect(),
        ),
        _ => (
            sig.tensor.iter().map(|t| json!(t)).collect(),
            m.schema
                .outputs
                .iter()
                .map(|o| {
                    let mut shape = vec![-1i64];
                    shape.extend(o.row_shape.iter().map(|d| *d as i64));
                    json!({ "name": o.name, "datatype": o.dtype.oip_name(), "shape": shape })
                })
                .collect(),
        ),
    }
}

/// Triton's model configuration extension: the version's `ModelConfig` as JSON, so that
/// Triton's clients and tools (which read `max_batch_size`, `input`, `output`) work unchanged.
/// When every input's first dimension is dynamic the model batches: `max_batch_size` is
/// `max_batch_rows` and `dims` leave out the batch dimension, as in Triton.
fn model_config(state: &HttpState, model: &str, version: Option<&str>) -> Result<Resp, ApiError> {
    let m = state.core.lookup(model, version)?;
    let table = state.core.models.load();
    let versions: Vec<u64> = table
        .models
        .get(model)
        .map(|e| e.versions.keys().copied().collect())
        .unwrap_or_default();
    let (inputs, outputs) = io_specs(&m);
    let shape = |t: &serde_json::Value| -> Vec<i64> {
        t["shape"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_i64).collect())
            .unwrap_or_default()
    };
    // As the server batches: by the inputs (some converters declare an output's first
    // dimension as a fixed 1 although it is the batch).
    let batched = inputs.iter().all(|t| shape(t).first() == Some(&-1));
    let config = |t: &serde_json::Value, input: bool| {
        let mut dims = shape(t);
        if batched && !dims.is_empty() {
            dims.remove(0);
        }
        let datatype = t["datatype"].as_str().unwrap_or_default();
        let data_type = match datatype {
            "BYTES" => "TYPE_STRING".to_string(),
            other => format!("TYPE_{other}"),
        };
        let mut c = json!({
            "name": t["name"],
            "data_type": data_type,
            "dims": dims,
            "is_shape_tensor": false,
        });
        if input {
            c["format"] = json!("FORMAT_NONE");
            c["allow_ragged_batch"] = json!(false);
            c["optional"] = json!(false);
        } else {
            c["label_filename"] = json!("");
        }
        c
    };
    let settings = &m.settings;
    Ok(json_response(
        StatusCode::OK,
        json!({
            "name": m.schema.name,
            "platform": "onnxruntime_onnx",
            "backend": if m.backend == "ort" { "onnxruntime" } else { m.backend },
            "version_policy": { "specific": { "versions": versions } },
            "max_batch_size": if batched { settings.max_batch_rows } else { 0 },
            "input": inputs.iter().map(|t| config(t, true)).collect::<Vec<_>>(),
            "output": outputs.iter().map(|t| config(t, false)).collect::<Vec<_>>(),
            "dynamic_batching": if batched {
                json!({
                    "preferred_batch_size": [],
                    "max_queue_delay_microseconds": settings.max_queue_delay_us,
                    "default_queue_policy": {
                        "timeout_action": "REJECT",
                        "default_timeout_microseconds": settings.timeout_ms.saturating_mul(1000),
                        "allow_timeout_override": true,
                        "max_queue_size": settings.queue_capacity,
                    },
                })
            } else {
                json!(null)
            },
            "instance_group": [{
                "name": m.schema.name,
                "kind": "KIND_CPU",
                "count": settings.workers,
            }],
            "parameters": {
                "vane_version": { "string_value": m.schema.version_label },
                "vane_backend": { "string_value": m.backend },
            },
        }),
    ))
}

fn model_ready(state: &HttpState, model: &str, version: Option<&str>) -> Result<Resp, ApiError> {
    let m = state.core.lookup(model, version)?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "name": m.schema.name, "version": m.schema.version_label, "ready": true }),
    ))
}

/// Triton's statistics extension (`{"model_stats": [...]}`): every loaded version of `model`
/// (of every model when `None`), or the one `version`. Each entry also carries Vane's own
/// view under `vane`: backend, queue depth and exact percentiles.
fn model_stats(
    state: &HttpState,
    model: Option<&str>,
    version: Option<&str>,
) -> Result<Resp, ApiError> {
    let table = state.core.models.load();
    let versions: Vec<Arc<LoadedModel>> = match (model, version) {
        (Some(model), Some(_)) => vec![state.core.lookup(model, version)?],
        (Some(model), None) => table
            .models
            .get(model)
            .ok_or_else(|| ApiError::NotFound(format!("unknown model {model:?}")))?
            .versions
            .values()
            .cloned()
            .collect(),
        (None, _) => table.all().cloned().collect(),
    };
    let stats: Vec<serde_json::Value> = versions
        .iter()
        .map(|m| {
            let mut stat = json!({
                "name": m.schema.name,
                "version": m.schema.version_label,
            });
            if let (Some(obj), serde_json::Value::Object(triton)) =
                (stat.as_object_mut(), json!(m.observer.stats.triton()))
            {
                obj.extend(triton);
            }
            stat["vane"] = json!({
                "backend": m.backend,
                "queue_depth": m.batcher.queue_len(),
                "stats": m.observer.stats.snapshot(),
            });
            stat
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({ "model_stats": stats }),
    ))
}
