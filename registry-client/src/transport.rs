//! The blocking HTTP client shared by the remote backends: timeouts, retries with exponential
//! backoff, and conditional GETs (ETag / Last-Modified) with an in-memory copy of the last
//! body per URL, so polling small files every few seconds costs a `304` each.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::RegistryError;

/// Retries of a failed request: `attempts` tries in all, sleeping `initial_backoff`, then
/// `initial_backoff × multiplier`, … (capped at `max_backoff`) between them.
///
/// Connection failures and `5xx` answers are retried for idempotent requests (GET, PUT,
/// DELETE, tag and alias writes); requests that create something (an MLflow run or model
/// version) are retried only when the connection could not be made, so a retry never
/// creates a second one.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub multiplier: u32,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts, sleeping 100 ms then 400 ms.
    fn default() -> Self {
        Self {
            attempts: 3,
            initial_backoff: Duration::from_millis(100),
            multiplier: 4,
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The sleep before retry number `retry` (1-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = self
            .multiplier
            .max(1)
            .saturating_pow(retry.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Options of the remote backends ([`crate::HttpRegistry`], [`crate::MlflowRegistry`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteOptions {
    /// Base of the verified cache (`<base>/registry/<location id>/…`); `None` →
    /// `$VANE_CACHE_DIR`, else `${XDG_CACHE_HOME:-~/.cache}/vane`.
    pub cache_dir: Option<PathBuf>,
    pub retry: RetryPolicy,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of each socket read or write (not of a whole download).
    pub io_timeout: Duration,
    /// How long an MLflow publish waits for the new version to become `READY`.
    pub ready_timeout: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            cache_dir: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(30),
            ready_timeout: Duration::from_secs(60),
        }
    }
}

/// Whether a request may be sent twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotent {
    Yes,
    /// Retried only when the connection was never made.
    No,
}

/// An HTTP answer (any status).
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Debug, Clone)]
struct Validated {
    etag: Option<String>,
    last_modified: Option<String>,
    body: Vec<u8>,
}

/// Counters of a transport, for tests and logs.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub not_modified: AtomicU64,
}

pub(crate) struct Transport {
    agent: ureq::Agent,
    retry: RetryPolicy,
    /// The registry's location, named in `Unreachable`.
    location: String,
    validated: Mutex<HashMap<String, Validated>>,
    pub counters: Counters,
}

/// Bodies larger than this are refused (a model file is read into memory anyway).
const MAX_BODY: u64 = 8 << 30;

impl Transport {
    pub fn new(location: &str, opts: &RemoteOptions) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_per_read(Some(opts.io_timeout))
            .timeout_per_write(Some(opts.io_timeout))
            // Below the usual server keep-alive (uvicorn: 5 s), so a pooled connection is
            // not reused just as the server closes it.
            .max_idle_age(Duration::from_secs(2))
            .user_agent(concat!("vane-registry/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self {
            agent,
            retry: opts.retry.clone(),
            location: location.to_string(),
            validated: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        }
    }

    /// Sends one request (with retries). `body` is `(content type, bytes)`.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
        idempotent: Idempotent,
    ) -> Result<(Reply, Option<String>, Option<String>), RegistryError> {
        let mut attempt = 1;
        loop {
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let failure = match self.send_once(method, url, headers, body) {
                Ok((reply, etag, lm)) => {
                    if reply.status < 500 {
                        return Ok((reply, etag, lm));
                    }
                    let text = String::from_utf8_lossy(&reply.body);
                    let reason =
                        format!("{method} {url}: HTTP {} {}", reply.status, snippet(&text));
                    (reason, idempotent == Idempotent::Yes)
                }
                Err(e) => {
                    let retriable = idempotent == Idempotent::Yes || never_connected(&e);
                    (format!("{method} {url}: {e}"), retriable)
                }
            };
            let (reason, retriable) = failure;
            if !retriable || attempt >= self.retry.attempts.max(1) {
                let tries = if attempt == 1 {
                    "1 attempt".to_string()
                } else {
                    format!("{attempt} attempts")
                };
                return Err(RegistryError::Unreachable {
                    location: self.location.clone(),
                    reason: format!("{reason} (after {tries})"),
                });
            }
            let backoff = self.retry.backoff(attempt);
            tracing::debug!(
                location = %self.location,
                attempt,
                backoff_ms = backoff.as_millis() as u64,
                %reason,
                "registry request failed; retrying"
            );
            std::thread::sleep(backoff);
            attempt += 1;
        }
    }

    #[allow(clippy::type_complexity)]
    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<(Reply, Option<String>, Option<String>), ureq::Error> {
        let mut resp = match method {
            "GET" => {
                let mut rb = self.agent.get(url);
                for (k, v) in headers {
                    rb = rb.header(*k, *v);
                }
                rb.call()?
            }
            _ => {
                let mut rb = match method {
                    "POST" => self.agent.post(url),
                    "PUT" => self.agent.put(url),
                    "PATCH" => self.agent.patch(url),
                    // DELETE with a JSON body (MLflow's alias delete reads the body).
                    "DELETE" => self.agent.delete(url).force_send_body(),
                    other => panic!("unsupported method {other}"),
                };
                for (k, v) in headers {
                    rb = rb.header(*k, *v);
                }
                match body {
                    Some((ct, bytes)) => rb.header("content-type", ct).send(bytes)?,
                    None => rb.send_empty()?,
                }
            }
        };
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header("etag");
        let last_modified = header("last-modified");
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()?;
        Ok((Reply { status, body }, etag, last_modified))
    }

    /// A plain GET (with retries).
    pub fn get(&self, url: &str) -> Result<Reply, RegistryError> {
        self.send("GET", url, &[], None, Idempotent::Yes)
            .map(|(r, _, _)| r)
    }

    /// A conditional GET of a small file: `If-None-Match` with the last ETag (or
    /// `If-Modified-Since` with the last `Last-Modified` when the server sent no ETag); a
    /// `304` answers the cached body. `Ok(None)` on 404; other non-2xx statuses are errors.
    pub fn get_small(&self, url: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let cached = self.validated.lock().expect("cache lock").get(url).cloned();
        let mut headers = Vec::new();
        if let Some(c) = &cached {
            if let Some(etag) = &c.etag {
                headers.push(("if-none-match", etag.as_str()));
            } else if let Some(lm) = &c.last_modified {
                headers.push(("if-modified-since", lm.as_str()));
            }
        }
        let (reply, etag, last_modified) =
            self.send("GET", url, &headers, None, Idempotent::Yes)?;
        match reply.status {
            304 => {
                if let Some(c) = cached {
                    self.counters.not_modified.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(c.body));
                }
                Err(self.unexpected("GET", url, &reply))
            }
            404 => {
                self.validated.lock().expect("cache lock").remove(url);
                Ok(None)
            }
            s if (200..300).contains(&s) => {
                let mut map = self.validated.lock().expect("cache lock");
                if etag.is_some() || last_modified.is_some() {
                    let v = Validated {
                        etag,
                        last_modified,
                        body: reply.body.clone(),
                    };
                    map.insert(url.to_string(), v);
                } else {
                    map.remove(url);
                }
                Ok(Some(reply.body))
            }
            _ => Err(self.unexpected("GET", url, &reply)),
        }
    }

    /// An error for a status the caller did not expect.
    pub fn unexpected(&self, method: &str, url: &str, reply: &Reply) -> RegistryError {
        let text = String::from_utf8_lossy(&reply.body);
        RegistryError::Unreachable {
            location: self.location.clone(),
            reason: format!("{method} {url}: HTTP {} {}", reply.status, snippet(&text)),
        }
    }

    pub fn location(&self) -> &str {
        &self.location
    }
}

/// True when the request surely never reached the server.
fn never_connected(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        ureq::Error::Timeout(t) => matches!(t, ureq::Timeout::Connect | ureq::Timeout::Resolve),
        ureq::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}

/// The first line of a response body, shortened, for error messages.
pub(crate) fn snippet(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or("");
    let mut s: String = line.chars().take(300).collect();
    if line.chars().count() > 300 {
        s.push('…');
    }
    s
}

/// Percent-encodes a query value or path segment (RFC 3986 unreserved characters pass).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a relative path, keeping its `/` separators.
pub(crate) fn encode_path(path: &str) -> String {
    path.split('/').map(encode).collect::<Vec<_>>().join("/")
}

/// Checks a base URL (`http://…`, or `https://…` with the `https` feature) and drops a
/// trailing `/`.
pub(crate) fn check_base_url(url: &str) -> Result<String, RegistryError> {
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if let Some(rest) = url.strip_prefix("https://") {
        if !cfg!(feature = "https") {
            return Err(RegistryError::Invalid(format!(
                "{url}: https needs vane-registry built with the `https` feature"
            )));
        }
        rest
    } else {
        return Err(RegistryError::Invalid(format!(
            "{url}: expected an http:// or https:// URL"
        )));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(RegistryError::Invalid(format!("{url}: no host")));
    }
    Ok(url.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = RetryPolicy::default();
        assert_eq!(r.backoff(1), Duration::from_millis(100));
        assert_eq!(r.backoff(2), Duration::from_millis(400));
        assert_eq!(r.backoff(3), Duration::from_millis(1600));
        assert_eq!(r.backoff(30), Duration::from_secs(5));
    }

    #[test]
    fn encoding() {
        assert_eq!(encode("name='m'"), "name%3D%27m%27");
        assert_eq!(
            encode_path("1/abc/artifacts/model"),
            "1/abc/artifacts/model"
        );
        assert_eq!(encode_path("a b/c"), "a%20b/c");
        assert_eq!(check_base_url("http://h:1/x/").unwrap(), "http://h:1/x");
        assert!(check_base_url("ftp://h").is_err());
        assert!(check_base_url("http:///x").is_err());
    }
}
