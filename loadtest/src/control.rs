//! Setup requests before a run, over a plain blocking HTTP/1.1 exchange: the model's metadata
//! (`GET /v2/models/{m}[/versions/{v}]`, whose `parameters.features` lists the named features
//! with datatype, kind and vocabulary, and `parameters.routing` the version of each role,
//! which resolves aliases).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::Deserialize;
use vane_registry::FeatureSpec;

use crate::error::{ConfigError, LoadtestError};

/// A parsed `http://host[:port][/path]` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`.
    pub authority: String,
    /// The URL's path when it names one (not `/`), used as the request path as is.
    pub path: Option<String>,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, ConfigError> {
        let bad = |why: &str| ConfigError::Invalid(format!("--target {url:?}: {why}"));
        let uri: hyper::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(s) => return Err(bad(&format!("scheme {s:?} is not supported (http only)"))),
            None => return Err(bad("expected http://host:port")),
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let port = uri.port_u16().unwrap_or(80);
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty() && *p != "/")
            .map(str::to_string);
        Ok(Endpoint {
            authority: format!("{host}:{port}"),
            path,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.authority)
    }
}

/// One blocking request with `connection: close`; returns the status and the body.
pub fn request(
    ep: &Endpoint,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let addr = ep
        .authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", ep.authority))?
        .next()
        .ok_or_else(|| format!("cannot resolve {}", ep.authority))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {}: {e}", ep.authority))?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        ep.authority,
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(body))
        .map_err(|e| format!("sending to {}: {e}", ep.authority))?;
    // Read the head, then exactly content-length bytes when given (a proxy may keep the
    // connection open despite `connection: close`), else up to EOF.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let read_err = |e: std::io::Error| format!("reading from {}: {e}", ep.authority);
    let split = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut chunk).map_err(read_err)?;
        if n == 0 {
            return Err(format!("{}: malformed HTTP response", ep.authority));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("{}: malformed status line", ep.authority))?;
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    let mut body = buf[split + 4..].to_vec();
    match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => {
            while body.len() < len {
                let n = s.read(&mut chunk).map_err(read_err)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
        }
        None => {
            s.read_to_end(&mut body).map_err(read_err)?;
            if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                body = dechunk(&body);
            }
        }
    }
    Ok((status, body))
}

fn dechunk(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(eol) = b[i..].windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[i..i + eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        i += eol + 2;
        if size == 0 || i + size > b.len() {
            break;
        }
        out.extend_from_slice(&b[i..i + size]);
        i += size + 2;
    }
    out
}

/// What the load tester needs to know about a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMeta {
    pub name: String,
    /// The tensor input (`input`).
    pub tensor_name: String,
    /// Named features, in tensor column order.
    pub features: Vec<FeatureSpec>,
    /// The version this metadata describes.
    pub version: Option<String>,
}

#[derive(Deserialize)]
struct MetaJson {
    name: String,
    #[serde(default)]
    inputs: Vec<TensorJson>,
    #[serde(default)]
    parameters: Option<MetaParams>,
}

#[derive(Deserialize)]
struct TensorJson {
    name: String,
}

#[derive(Deserialize)]
struct MetaParams {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    features: Vec<FeatureSpec>,
}

fn target_err(ep: &Endpoint, message: impl Into<String>) -> LoadtestError {
    LoadtestError::Target {
        target: ep.base_url(),
        message: message.into(),
    }
}

fn error_text(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

/// `GET /v2/models/{model}[/versions/{version}]`.
pub fn model_metadata(
    ep: &Endpoint,
    model: &str,
    version: Option<&str>,
    timeout: Duration,
) -> Result<ModelMeta, LoadtestError> {
    let path = match version {
        Some(v) => format!("/v2/models/{model}/versions/{v}"),
        None => format!("/v2/models/{model}"),
    };
    let (status, body) = request(ep, "GET", &path, b"", timeout).map_err(|e| target_err(ep, e))?;
    if status != 200 {
        return Err(target_err(
            ep,
            format!("GET {path} answered {status}: {}", error_text(&body)),
        ));
    }
    let m: MetaJson = serde_json::from_slice(&body)
        .map_err(|e| target_err(ep, format!("GET {path}: unexpected metadata: {e}")))?;
    let params = m.parameters.unwrap_or(MetaParams {
        version: None,
        features: Vec::new(),
    });
    Ok(ModelMeta {
        name: m.name,
        tensor_name: m
            .inputs
            .first()
            .map_or_else(|| "input".to_string(), |t| t.name.clone()),
        features: params.features,
        version: params.version,
    })
}

#[derive(Debug, Deserialize)]
struct RoutingJson {
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    parameters: Option<RoutingParams>,
}

#[derive(Debug, Deserialize)]
struct RoutingParams {
    #[serde(default)]
    routing: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// Resolves a version reference: a number stays as it is; an alias (`champion`, `canary`,
/// `shadow`) is looked up in the model's metadata (`GET /v2/models/{m}`, whose
/// `parameters.routing` names the version of each role). The error says what is served.
pub fn resolve_version(
    ep: &Endpoint,
    model: &str,
    reference: &str,
    timeout: Duration,
) -> Result<String, LoadtestError> {
    if !reference.is_empty() && reference.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(reference.to_string());
    }
    let path = format!("/v2/models/{model}");
    let (status, body) = request(ep, "GET", &path, b"", timeout).map_err(|e| target_err(ep, e))?;
    if status != 200 {
        return Err(target_err(
            ep,
            format!("GET {path} answered {status}: {}", error_text(&body)),
        ));
    }
    let meta: RoutingJson = serde_json::from_slice(&body)
        .map_err(|e| target_err(ep, format!("GET {path}: unexpected metadata: {e}")))?;
    let routing = meta.parameters.and_then(|p| p.routing).unwrap_or_default();
    let role_of = |v: &str| {
        routing
            .iter()
            .find(|(role, x)| x.as_str() == Some(v) && !role.ends_with("_weight"))
            .map(|(role, _)| format!(" ({role})"))
            .unwrap_or_default()
    };
    let served: Vec<String> = meta
        .versions
        .iter()
        .map(|v| format!("{v}{}", role_of(v)))
        .collect();
    routing
        .get(reference)
        .and_then(|v| v.as_str())
        .filter(|v| meta.versions.iter().any(|x| x == v))
        .map(str::to_string)
        .ok_or_else(|| {
            target_err(
                ep,
                format!(
                    "model {model:?} has no {reference} version served (served: {})",
                    if served.is_empty() {
                        "none".to_string()
                    } else {
                        served.join(", ")
                    }
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let e = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(e.authority, "127.0.0.1:8080");
        assert_eq!(e.path, None);
        let e = Endpoint::parse("http://localhost/v2/models/m/infer").unwrap();
        assert_eq!(e.authority, "localhost:80");
        assert_eq!(e.path.as_deref(), Some("/v2/models/m/infer"));
        assert!(Endpoint::parse("https://x").is_err());
        assert!(Endpoint::parse("localhost:80").is_err());
    }

    #[test]
    fn dechunks() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }
}
