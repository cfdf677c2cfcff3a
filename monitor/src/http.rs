//! The monitor's HTTP endpoints: `/metrics` (Prometheus text), `/drift` (JSON of the latest
//! windows), `/report` (the HTML report), `/health` (liveness).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;

use crate::engine::{Engine, StreamReport};
use crate::metrics::Metrics;
use crate::report::{Section, render};

type Resp = Response<Full<Bytes>>;

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn error(status: StatusCode, message: String) -> Resp {
    respond(
        status,
        "application/json",
        serde_json::to_vec(&json!({ "error": message })).unwrap_or_default(),
    )
}

/// The value of query parameter `name`.
fn query<'a>(q: Option<&'a str>, name: &str) -> Option<&'a str> {
    q?.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Reports matching the `model`, `version`, `source` and `window` query parameters.
fn selected(engine: &Engine, q: Option<&str>) -> Vec<Arc<StreamReport>> {
    engine
        .reports()
        .into_iter()
        .filter(|r| query(q, "model").is_none_or(|m| m == r.model))
        .filter(|r| query(q, "version").is_none_or(|v| v == r.version.to_string()))
        .filter(|r| query(q, "source").is_none_or(|s| s == r.source))
        .filter(|r| query(q, "window").is_none_or(|w| w == r.window.label()))
        .collect()
}

pub fn format_unix_ms(ms: u64) -> String {
    let s = vane_registry::rfc3339_utc(ms / 1000);
    format!("{}.{:03}Z", s.trim_end_matches('Z'), ms % 1000)
}

/// The HTML report of `reports`.
pub fn report_page(engine: &Engine, reports: &[Arc<StreamReport>]) -> String {
    let sections: Vec<Section<'_>> = reports
        .iter()
        .map(|r| Section {
            title: format!(
                "{} v{} · {} traffic · {} window",
                r.model,
                r.version,
                r.source,
                r.window.label()
            ),
            facts: vec![
                (
                    "window".into(),
                    format!(
                        "{} → {}",
                        format_unix_ms(r.started_ms),
                        format_unix_ms(r.ended_ms)
                    ),
                ),
                (
                    "reference".into(),
                    format!("{} ({} rows)", r.reference, r.reference_rows),
                ),
            ],
            warnings: &r.warnings,
            drift: &r.drift,
        })
        .collect();
    let s = engine.settings();
    render(
        "Vane drift report",
        &format!(
            "Latest windows per model version: count windows of {} rows, time windows of {} s. Generated {}.",
            s.window_rows,
            s.window_time.as_secs(),
            format_unix_ms(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64)
            )
        ),
        &s.thresholds,
        &sections,
    )
}

fn route(engine: &Engine, method: &Method, path: &str, q: Option<&str>) -> Resp {
    if method != Method::GET && method != Method::HEAD {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} does not accept {method}; use GET"),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    match path {
        "/metrics" => respond(
            StatusCode::OK,
            &Metrics::content_type(),
            engine.metrics().render(),
        ),
        "/drift" => {
            let windows = selected(engine, q);
            let windows: Vec<&StreamReport> = windows.iter().map(Arc::as_ref).collect();
            let body = json!({
                "thresholds": engine.settings().thresholds,
                "windows": windows,
            });
            respond(
                StatusCode::OK,
                "application/json",
                serde_json::to_vec(&body).unwrap_or_default(),
            )
        }
        "/report" | "/" => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            report_page(engine, &selected(engine, q)),
        ),
        "/health" | "/health/live" => {
            respond(StatusCode::OK, "application/json", r#"{"live":true}"#)
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no route for {method} {path}; try /metrics, /drift, /report"),
        ),
    }
}

/// Serves HTTP until `shutdown` resolves.
pub async fn serve(listener: TcpListener, engine: Arc<Engine>, shutdown: impl Future<Output = ()>) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let engine = engine.clone();
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let engine = engine.clone();
                        async move {
                            // Rendering walks every report: keep it off the async workers.
                            let (method, path, q) = (req.method().clone(), req.uri().path().to_string(), req.uri().query().map(str::to_string));
                            let resp = tokio::task::spawn_blocking(move || route(&engine, &method, &path, q.as_deref()))
                                .await
                                .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "handler panicked".into()));
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let conn = builder.serve_connection(TokioIo::new(tcp), svc);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "http connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            _ = &mut shutdown => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_found() {
        assert_eq!(query(Some("model=m&version=3"), "version"), Some("3"));
        assert_eq!(query(Some("model=m"), "window"), None);
        assert_eq!(query(None, "model"), None);
        assert_eq!(
            format_unix_ms(1_795_718_101_042),
            "2026-11-26T18:35:01.042Z"
        );
    }
}
