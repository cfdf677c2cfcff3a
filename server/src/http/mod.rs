//! The HTTP transport: the accept loop (connection cap), the routing table, and the small
//! read-only handlers. Inference goes to the serving core through [`infer`], feature reads
//! through [`features`]; repository commands go to the control plane through [`admin`];
//! every error becomes a response in [`response`].

mod admin;
mod body;
mod features;
mod infer;
pub mod response;

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
                    let served = graceful.watch(builder.serve_connection(TokioIo::new(tcp), svc));
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
    /// A feature read: the head's declared body length, and the body.
    Features(Option<u64>, B),
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
                self::body::declared_len(&parts.headers),
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
    let sig = &m.schema.signature;
    // A tensor-signature model lists its graph as declared (as Triton does); a feature model
    // its [N, F] tensor and the outputs as served.
    let (inputs, outputs) =
        match (&sig.graph, sig.is_tensor_model()) {
            (Some(graph), true) => (json!(graph.inputs), json!(graph.outputs)),
            _ => (
                json!(sig.tensor.iter().collect::<Vec<_>>()),
                json!(m.schema.outputs.iter().map(|o| {
                let mut shape = vec![-1i64];
                shape.extend(o.row_shape.iter().map(|d| *d as i64));
                json!({ "name": o.name, "datatype": o.dtype.oip_name(), "shape": shape })
            }).collect::<Vec<_>>()),
            ),
        };
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
                "features": sig.inputs,
                "routing": routing,
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

fn model_stats(state: &HttpState, model: &str, version: Option<&str>) -> Result<Resp, ApiError> {
    let m = state.core.lookup(model, version)?;
    Ok(json_response(
        StatusCode::OK,
        json!({
            "model_name": m.schema.name,
            "model_version": m.schema.version_label,
            "backend": m.backend,
            "queue_depth": m.batcher.queue_len(),
            "stats": m.observer.stats.snapshot(),
        }),
    ))
}
