//! The MLflow backend: [`MlflowRegistry`] keeps Vane versions in an MLflow model registry,
//! over MLflow's REST API only (no Python), and downloads artifacts through the tracking
//! server's artifact proxy (`mlflow server --serve-artifacts`).
//!
//! Storage:
//! - a Vane model is an MLflow *registered model* of the same name; aliases are MLflow
//!   aliases (`champion`, `canary`, `shadow`, …);
//! - traffic settings are registered-model tags: `vane.canary_weight` (decimal) and
//!   `vane.champion_history` (comma-separated versions, oldest first);
//! - a version's files are artifacts of an MLflow run in experiment `vane-registry`, under
//!   `<run artifact root>/model/` (with `--artifacts-destination <dir>` that is
//!   `<dir>/<experiment id>/<run id>/artifacts/model/{manifest.json, model.onnx, …}`); the
//!   MLflow model version's `source` is that directory and its `run_id` the run;
//! - the version number is MLflow's: `manifest.json` is written after MLflow assigned it, so
//!   its `version` field is that number;
//! - the model-version tag `vane.manifest_sha256` holds the sha256 of `manifest.json`. It
//!   is written last and is the commit point: a version without it (publish interrupted,
//!   or registered by something else) is not listed by [`Registry::versions`].
//!
//! Fetch checks `manifest.json` against the tag, every file against the manifest, then caches
//! the verified files ([`VersionCache`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::cache::VersionCache;
use crate::dir::PublishRequest;
use crate::error::RegistryError;
use crate::registry::{Registry, RegistryWriter, TrafficPolicy, TrafficSettings};
use crate::transport::{
    Idempotent, RemoteOptions, Transport, check_base_url, encode, encode_path, snippet,
};
use crate::types::{Aliases, Manifest, ModelVersion, VersionRef, sha256_hex};
use crate::version::{
    MANIFEST, MODEL, build_manifest, check_alias, check_name, file_entries, now_secs,
    parse_manifest, validate_publish, verify,
};

/// Model-version tag with the sha256 of the version's `manifest.json`.
pub const TAG_MANIFEST_SHA256: &str = "vane.manifest_sha256";
/// Registered-model tag with [`TrafficSettings::canary_weight`].
pub const TAG_CANARY_WEIGHT: &str = "vane.canary_weight";
/// Registered-model tag with [`TrafficSettings::champion_history`], comma-separated.
pub const TAG_CHAMPION_HISTORY: &str = "vane.champion_history";
/// Model-version tag with the sha256 of an MLflow-native version's ONNX file, recorded by the
/// first fetch; later fetches (any replica) must get the same bytes.
pub const TAG_ONNX_SHA256: &str = "vane.onnx_sha256";
/// The description vane-registry's publish gives the versions it creates.
const PUBLISH_DESCRIPTION: &str = "published by vane-registry";
/// The MLflow experiment whose runs hold published files.
pub const MLFLOW_EXPERIMENT: &str = "vane-registry";
/// Sub-directory of a run's artifacts that holds a version's files.
pub const MLFLOW_ARTIFACT_DIR: &str = "model";

/// A registry kept in an MLflow tracking server (read and write).
pub struct MlflowRegistry {
    /// `http(s)://host:port[/prefix]`.
    base: String,
    transport: Transport,
    cache: VersionCache,
    ready_timeout: Duration,
}

impl std::fmt::Debug for MlflowRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlflowRegistry")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// An MLflow error answer: `{"error_code": "...", "message": "..."}`.
#[derive(Debug)]
struct ApiError {
    status: u16,
    code: String,
    message: String,
}

#[derive(Debug, Deserialize)]
struct Tag {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Deserialize)]
struct MvJson {
    version: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    status_message: String,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    run_id: String,
    #[serde(default)]
    source: String,
    /// Milliseconds since the epoch (a string in some MLflow versions).
    #[serde(default)]
    creation_timestamp: Value,
}

impl MvJson {
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
    fn is_vane(&self) -> bool {
        self.status == "READY" && self.tag(TAG_MANIFEST_SHA256).is_some()
    }
    /// A version registered the usual MLflow way (`mlflow.onnx.log_model(...,
    /// registered_model_name=...)`): READY, and not one of Vane's (whose publish describes
    /// it, and tags it when done).
    fn is_native(&self) -> bool {
        self.status == "READY"
            && self.tag(TAG_MANIFEST_SHA256).is_none()
            && self.description != PUBLISH_DESCRIPTION
    }
    fn servable(&self) -> bool {
        self.is_vane() || self.is_native()
    }
    fn created_secs(&self) -> u64 {
        let ms = match &self.creation_timestamp {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        ms.unwrap_or(0) / 1000
    }
}

#[derive(Debug, Deserialize)]
struct AliasJson {
    alias: String,
    version: String,
}

#[derive(Debug, Deserialize)]
struct RmJson {
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    aliases: Vec<AliasJson>,
}

fn parse_version(s: &str, what: &str) -> Result<u64, RegistryError> {
    s.parse()
        .map_err(|_| RegistryError::malformed(what, format!("version {s:?} is not a number")))
}

impl MlflowRegistry {
    /// A registry in the MLflow server at `url`: `http(s)://host:port[/prefix]`, or the
    /// `mlflow://host:port[/prefix]` / `mlflow+http(s)://…` spellings.
    pub fn new(url: &str, opts: &RemoteOptions) -> Result<Self, RegistryError> {
        let http = if let Some(rest) = url.strip_prefix("mlflow://") {
            format!("http://{rest}")
        } else {
            url.strip_prefix("mlflow+").unwrap_or(url).to_string()
        };
        let base = check_base_url(&http)?;
        let location = format!("mlflow+{base}");
        let cache = VersionCache::new(opts.cache_dir.as_deref(), &location)?;
        Ok(Self {
            transport: Transport::new(&location, opts),
            base,
            cache,
            ready_timeout: opts.ready_timeout,
        })
    }

    /// The tracking server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The local cache of verified versions.
    pub fn cache(&self) -> &VersionCache {
        &self.cache
    }

    fn api_url(&self, endpoint: &str, query: &[(&str, &str)]) -> String {
        let mut url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("{}={}", encode(k), encode(v)));
        }
        url
    }

    fn artifact_url(&self, path: &str) -> String {
        format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}",
            self.base,
            encode_path(path)
        )
    }

    /// One REST call. The outer error is the transport's; the inner one MLflow's answer.
    fn call(
        &self,
        method: &str,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        idempotent: Idempotent,
    ) -> Result<Result<Value, ApiError>, RegistryError> {
        let url = self.api_url(endpoint, query);
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json serializes"));
        let (reply, _, _) = self.transport.send(
            method,
            &url,
            &[],
            bytes.as_deref().map(|b| ("application/json", b)),
            idempotent,
        )?;
        if reply.ok() {
            if reply.body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Ok(json!({})));
            }
            return serde_json::from_slice(&reply.body)
                .map(Ok)
                .map_err(|e| RegistryError::malformed(&url, format!("answer is not JSON: {e}")));
        }
        let parsed: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        let field = |k: &str| parsed.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(Err(ApiError {
            status: reply.status,
            code: field("error_code").unwrap_or_else(|| format!("HTTP {}", reply.status)),
            message: field("message")
                .unwrap_or_else(|| snippet(&String::from_utf8_lossy(&reply.body))),
        }))
    }

    /// A call whose MLflow errors map the usual way; `what` names the object for messages.
    fn call_ok(
        &self,
        method: &str,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        idempotent: Idempotent,
        what: &str,
    ) -> Result<Value, RegistryError> {
        self.call(method, endpoint, query, body, idempotent)?
            .map_err(|e| self.map_err(e, what))
    }

    fn map_err(&self, e: ApiError, what: &str) -> RegistryError {
        match (e.code.as_str(), e.status) {
            ("RESOURCE_DOES_NOT_EXIST", _) => RegistryError::NotFound(what.to_string()),
            // A 404 that is not MLflow's (a proxy, a wrong URL prefix).
            (_, 404) => RegistryError::Unreachable {
                location: self.transport.location().to_string(),
                reason: format!(
                    "{what}: HTTP 404 {}: not an MLflow REST API at this URL (check the prefix)",
                    e.message
                ),
            },
            ("INVALID_PARAMETER_VALUE" | "RESOURCE_ALREADY_EXISTS" | "BAD_REQUEST", _)
            | (_, 400) => {
                RegistryError::Invalid(format!("{what}: MLflow says {}: {}", e.code, e.message))
            }
            _ => RegistryError::Unreachable {
                location: self.transport.location().to_string(),
                reason: format!("{what}: HTTP {} {}: {}", e.status, e.code, e.message),
            },
        }
    }

    fn check_model(model: &str) -> Result<(), RegistryError> {
        check_name(model).map_err(|_| RegistryError::NotFound(format!("model {model:?}")))
    }

    fn registered_model(&self, model: &str) -> Result<RmJson, RegistryError> {
        Self::check_model(model)?;
        let what = format!("model {model:?}");
        let v = self.call_ok(
            "GET",
            "registered-models/get",
            &[("name", model)],
            None,
            Idempotent::Yes,
            &what,
        )?;
        serde_json::from_value(v["registered_model"].clone()).map_err(|e| {
            RegistryError::malformed(self.api_url("registered-models/get", &[("name", model)]), e)
        })
    }

    fn model_version(&self, model: &str, version: u64) -> Result<MvJson, RegistryError> {
        Self::check_model(model)?;
        let what = format!("model {model:?} version {version}");
        let v = version.to_string();
        let q = [("name", model), ("version", v.as_str())];
        let answer = self.call_ok(
            "GET",
            "model-versions/get",
            &q,
            None,
            Idempotent::Yes,
            &what,
        )?;
        serde_json::from_value(answer["model_version"].clone())
            .map_err(|e| RegistryError::malformed(self.api_url("model-versions/get", &q), e))
    }

    /// The sha256 of a Vane version's manifest, from its tag; the version must be READY.
    fn manifest_sha(&self, model: &str, version: u64) -> Result<String, RegistryError> {
        let mv = self.model_version(model, version)?;
        if mv.status != "READY" {
            return Err(RegistryError::NotFound(format!(
                "model {model:?} version {version} is {}, not READY",
                mv.status
            )));
        }
        mv.tag(TAG_MANIFEST_SHA256).map(str::to_string).ok_or_else(|| {
            RegistryError::malformed(
                format!("models:/{model}/{version}"),
                format!("no {TAG_MANIFEST_SHA256} tag: not published by vane-registry (or its publish did not finish)"),
            )
        })
    }

    /// The artifact-proxy path of an `mlflow-artifacts:` or `runs:/` URI.
    fn proxy_path(&self, uri: &str) -> Result<String, RegistryError> {
        if let Some(rest) = uri.strip_prefix("mlflow-artifacts:") {
            // `mlflow-artifacts:/1/<run>/artifacts` or `mlflow-artifacts://host:port/1/…`.
            let path = match rest.strip_prefix("//") {
                Some(with_authority) => with_authority.split_once('/').map_or("", |(_, p)| p),
                None => rest,
            };
            return Ok(path.trim_matches('/').to_string());
        }
        if let Some(rest) = uri.strip_prefix("runs:/") {
            let (run_id, rel) = rest
                .trim_start_matches('/')
                .split_once('/')
                .unwrap_or((rest, ""));
            let what = format!("run {run_id:?}");
            let run = self.call_ok(
                "GET",
                "runs/get",
                &[("run_id", run_id)],
                None,
                Idempotent::Yes,
                &what,
            )?;
            let root = run["run"]["info"]["artifact_uri"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let root = self.proxy_path(&root)?;
            return Ok(format!("{root}/{}", rel.trim_matches('/'))
                .trim_end_matches('/')
                .to_string());
        }
        Err(RegistryError::Invalid(format!(
            "artifact URI {uri:?} is not served by the MLflow artifact proxy; \
             run the server with --serve-artifacts (mlflow-artifacts:/ URIs)"
        )))
    }

    /// The artifact-proxy path of a version's files.
    fn version_artifacts(&self, model: &str, version: u64) -> Result<String, RegistryError> {
        let what = format!("model {model:?} version {version}");
        let v = version.to_string();
        let q = [("name", model), ("version", v.as_str())];
        let answer = self.call_ok(
            "GET",
            "model-versions/get-download-uri",
            &q,
            None,
            Idempotent::Yes,
            &what,
        )?;
        let uri = answer["artifact_uri"].as_str().ok_or_else(|| {
            RegistryError::malformed(
                self.api_url("model-versions/get-download-uri", &q),
                "no artifact_uri",
            )
        })?;
        self.proxy_path(uri)
    }

    fn download(&self, path: &str) -> Result<(String, Vec<u8>), RegistryError> {
        let url = self.artifact_url(path);
        let reply = self.transport.get(&url)?;
        match reply.status {
            s if (200..300).contains(&s) => Ok((url, reply.body)),
            404 => Err(RegistryError::NotFound(format!("artifact {url}"))),
            _ => Err(self.transport.unexpected("GET", &url, &reply)),
        }
    }

    /// Downloads `manifest.json` of a version and checks it against the tag.
    fn download_manifest(
        &self,
        model: &str,
        version: u64,
        sha: &str,
    ) -> Result<(String, Vec<u8>, Manifest), RegistryError> {
        let dir = self.version_artifacts(model, version)?;
        let (url, bytes) = self.download(&format!("{dir}/{MANIFEST}"))?;
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(sha) {
            return Err(RegistryError::DigestMismatch {
                path: PathBuf::from(format!("{url} (checked against tag {TAG_MANIFEST_SHA256})")),
                expected: sha.to_string(),
                actual,
            });
        }
        let manifest = parse_manifest(&bytes, &PathBuf::from(&url), model, version)?;
        Ok((dir, bytes, manifest))
    }

    fn traffic_from_tags(model: &str, tags: &[Tag]) -> Result<TrafficSettings, RegistryError> {
        let mut settings = TrafficSettings::default();
        let what = |key: &str| format!("models:/{model} tag {key}");
        for tag in tags {
            match tag.key.as_str() {
                TAG_CANARY_WEIGHT if !tag.value.trim().is_empty() => {
                    settings.canary_weight = tag.value.trim().parse().map_err(|_| {
                        RegistryError::malformed(
                            what(TAG_CANARY_WEIGHT),
                            format!("{:?} is not a number", tag.value),
                        )
                    })?;
                }
                TAG_CHAMPION_HISTORY => {
                    settings.champion_history = tag
                        .value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            s.parse().map_err(|_| {
                                RegistryError::malformed(
                                    what(TAG_CHAMPION_HISTORY),
                                    format!("{s:?} is not a version"),
                                )
                            })
                        })
                        .collect::<Result<_, _>>()?;
                }
                _ => {}
            }
        }
        Ok(settings)
    }

    fn aliases_of(model: &str, rm: &RmJson) -> Result<Aliases, RegistryError> {
        rm.aliases
            .iter()
            .map(|a| {
                Ok((
                    a.alias.clone(),
                    parse_version(&a.version, &format!("models:/{model}@{}", a.alias))?,
                ))
            })
            .collect()
    }

    fn experiment_id(&self) -> Result<String, RegistryError> {
        let what = format!("experiment {MLFLOW_EXPERIMENT:?}");
        let get = || {
            self.call(
                "GET",
                "experiments/get-by-name",
                &[("experiment_name", MLFLOW_EXPERIMENT)],
                None,
                Idempotent::Yes,
            )
        };
        match get()? {
            Ok(v) => {
                return Ok(v["experiment"]["experiment_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string());
            }
            Err(e) if e.code == "RESOURCE_DOES_NOT_EXIST" || e.status == 404 => {}
            Err(e) => return Err(self.map_err(e, &what)),
        }
        let body = json!({ "name": MLFLOW_EXPERIMENT });
        match self.call(
            "POST",
            "experiments/create",
            &[],
            Some(&body),
            Idempotent::No,
        )? {
            Ok(v) => Ok(v["experiment_id"].as_str().unwrap_or_default().to_string()),
            // Created by a concurrent publisher.
            Err(e) if e.code == "RESOURCE_ALREADY_EXISTS" => match get()? {
                Ok(v) => Ok(v["experiment"]["experiment_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()),
                Err(e) => Err(self.map_err(e, &what)),
            },
            Err(e) => Err(self.map_err(e, &what)),
        }
    }

    fn put_artifact(&self, path: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let url = self.artifact_url(path);
        let (reply, _, _) = self.transport.send(
            "PUT",
            &url,
            &[],
            Some(("application/octet-stream", bytes)),
            Idempotent::Yes,
        )?;
        if reply.ok() {
            Ok(())
        } else {
            Err(self.transport.unexpected("PUT", &url, &reply))
        }
    }

    fn wait_ready(&self, model: &str, version: u64) -> Result<(), RegistryError> {
        let deadline = Instant::now() + self.ready_timeout;
        let mut pause = Duration::from_millis(50);
        loop {
            let mv = self.model_version(model, version)?;
            match mv.status.as_str() {
                "READY" => return Ok(()),
                "FAILED_REGISTRATION" => {
                    return Err(RegistryError::Invalid(format!(
                        "MLflow failed to register model {model:?} version {version}: {}",
                        mv.status_message
                    )));
                }
                status if Instant::now() >= deadline => {
                    return Err(RegistryError::Unreachable {
                        location: self.transport.location().to_string(),
                        reason: format!(
                            "model {model:?} version {version} still {status} after {:?}",
                            self.ready_timeout
                        ),
                    });
                }
                _ => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

impl Registry for MlflowRegistry {
    fn location(&self) -> String {
        self.transport.location().to_string()
    }

    fn models(&self) -> Result<Vec<String>, RegistryError> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut q = vec![("max_results", "1000")];
            if !token.is_empty() {
                q.push(("page_token", token.as_str()));
            }
            let v = self.call_ok(
                "GET",
                "registered-models/search",
                &q,
                None,
                Idempotent::Yes,
                "registered models",
            )?;
            for m in v["registered_models"].as_array().into_iter().flatten() {
                if let Some(name) = m["name"].as_str().filter(|n| check_name(n).is_ok()) {
                    out.push(name.to_string());
                }
            }
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_string(),
                _ => break,
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Versions that are `READY` and carry the `vane.manifest_sha256` tag.
    fn versions(&self, model: &str) -> Result<Vec<u64>, RegistryError> {
        Self::check_model(model)?;
        let filter = format!("name='{model}'");
        let what = format!("model {model:?}");
        let mut out = Vec::new();
        let mut any = false;
        let mut token = String::new();
        loop {
            let mut q = vec![("filter", filter.as_str()), ("max_results", "1000")];
            if !token.is_empty() {
                q.push(("page_token", token.as_str()));
            }
            let v = self.call_ok(
                "GET",
                "model-versions/search",
                &q,
                None,
                Idempotent::Yes,
                &what,
            )?;
            for mv in v["model_versions"].as_array().into_iter().flatten() {
                any = true;
                let mv: MvJson = serde_json::from_value(mv.clone()).map_err(|e| {
                    RegistryError::malformed(self.api_url("model-versions/search", &q), e)
                })?;
                if mv.servable() {
                    out.push(parse_version(&mv.version, &format!("models:/{model}"))?);
                }
            }
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = t.to_string(),
                _ => break,
            }
        }
        if !any {
            // No versions at all: tell a model without versions from a missing model.
            self.registered_model(model)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn aliases(&self, model: &str) -> Result<Aliases, RegistryError> {
        Self::aliases_of(model, &self.registered_model(model)?)
    }

    fn traffic_settings(&self, model: &str) -> Result<TrafficSettings, RegistryError> {
        Self::traffic_from_tags(model, &self.registered_model(model)?.tags)
    }

    /// One request: aliases and tags come with the registered model.
    fn policy(&self, model: &str) -> Result<TrafficPolicy, RegistryError> {
        let rm = self.registered_model(model)?;
        Ok(TrafficPolicy::from_parts(
            &Self::aliases_of(model, &rm)?,
            &Self::traffic_from_tags(model, &rm.tags)?,
        ))
    }

    /// Aliases resolve through `registered-models/alias` (`models:/<name>@<alias>`).
    fn resolve(&self, model: &str, which: &VersionRef) -> Result<u64, RegistryError> {
        Self::check_model(model)?;
        match which {
            VersionRef::Number(n) => {
                let mv = self.model_version(model, *n)?;
                if mv.servable() {
                    Ok(*n)
                } else {
                    Err(RegistryError::NotFound(format!(
                        "model {model:?} version {n} (status {}, {} tag {})",
                        mv.status,
                        TAG_MANIFEST_SHA256,
                        if mv.tag(TAG_MANIFEST_SHA256).is_some() {
                            "present"
                        } else {
                            "absent"
                        }
                    )))
                }
            }
            VersionRef::Alias(alias) => {
                let q = [("name", model), ("alias", alias.as_str())];
                match self.call("GET", "registered-models/alias", &q, None, Idempotent::Yes)? {
                    Ok(v) => parse_version(
                        v["model_version"]["version"].as_str().unwrap_or_default(),
                        &format!("models:/{model}@{alias}"),
                    ),
                    // An unknown alias answers 400 INVALID_PARAMETER_VALUE, not 404.
                    Err(e) if e.code == "INVALID_PARAMETER_VALUE" => Err(RegistryError::NotFound(
                        format!("model {model:?} alias {alias:?}"),
                    )),
                    Err(e) => Err(self.map_err(e, &format!("model {model:?}"))),
                }
            }
        }
    }

    fn manifest(&self, model: &str, version: u64) -> Result<Manifest, RegistryError> {
        let mv = self.model_version(model, version)?;
        if mv.is_native() {
            return self.fetch_native(model, version, &mv).map(|v| v.manifest);
        }
        let sha = self.manifest_sha(model, version)?;
        if let Some(bytes) = self.cache.manifest_bytes(model, version)
            && sha256_hex(&bytes).eq_ignore_ascii_case(&sha)
        {
            let path = self.cache.version_dir(model, version)?.join(MANIFEST);
            return parse_manifest(&bytes, &path, model, version);
        }
        self.download_manifest(model, version, &sha)
            .map(|(_, _, m)| m)
    }

    /// Checks the version's tag (one small request), reuses a cached copy whose manifest
    /// matches it and whose files still verify, else downloads and verifies everything.
    fn fetch(&self, model: &str, version: u64) -> Result<ModelVersion, RegistryError> {
        let mv = self.model_version(model, version)?;
        if mv.is_native() {
            return self.fetch_native(model, version, &mv);
        }
        let sha = self.manifest_sha(model, version)?;
        if let Some(v) = self.cache.load(model, version, Some(&sha))? {
            return Ok(v);
        }
        let (dir, manifest_bytes, manifest) = self.download_manifest(model, version, &sha)?;
        let mut files = BTreeMap::new();
        for (name, entry) in &manifest.files {
            let (url, bytes) = self
                .download(&format!("{dir}/{name}"))
                .map_err(|e| match e {
                    RegistryError::NotFound(what) => {
                        RegistryError::malformed(what, "listed in the manifest but missing")
                    }
                    e => e,
                })?;
            verify(&PathBuf::from(url), entry, &bytes)?;
            files.insert(name.clone(), bytes);
        }
        let source = |n: &str| PathBuf::from(self.artifact_url(&format!("{dir}/{n}")));
        self.cache.store(&manifest_bytes, manifest, files, &source)
    }
}

impl MlflowRegistry {
    /// An MLflow-native version: the ONNX file named by its `MLmodel`'s onnx flavor, with a
    /// manifest made here (the file's sha256 and size, the run as lineage). The sha256 is
    /// recorded as a version tag by the first fetch and checked by every later one; a cached
    /// copy is reused only when it still matches.
    fn fetch_native(
        &self,
        model: &str,
        version: u64,
        mv: &MvJson,
    ) -> Result<ModelVersion, RegistryError> {
        let recorded = mv.tag(TAG_ONNX_SHA256).map(str::to_owned);
        if let Some(cached) = self.cache.load(model, version, None)? {
            let sha = cached.manifest.files.get(MODEL).map(|e| e.sha256.as_str());
            if recorded.is_none() || sha == recorded.as_deref() {
                return Ok(cached);
            }
            self.cache.remove(model, version)?;
        }
        let dir = self.version_artifacts(model, version)?;
        let (mlmodel_url, mlmodel) = self.download(&format!("{dir}/MLmodel")).map_err(|e| match e {
            RegistryError::NotFound(_) => RegistryError::malformed(
                format!("models:/{model}/{version}"),
                "no MLmodel next to the version's artifacts: log it with mlflow.onnx.log_model (or publish it with vane-registry)",
            ),
            e => e,
        })?;
        let text = String::from_utf8_lossy(&mlmodel);
        let data = onnx_flavor_data(&text).ok_or_else(|| {
            RegistryError::malformed(
                &mlmodel_url,
                "its flavors have no onnx flavor with a `data` file; Vane serves ONNX models (mlflow.onnx.log_model)",
            )
        })?;
        let (url, bytes) = self.download(&format!("{dir}/{}", data.trim_matches('/')))?;
        let entry = crate::types::FileEntry {
            sha256: sha256_hex(&bytes),
            size: bytes.len() as u64,
        };
        match &recorded {
            Some(sha) if !sha.eq_ignore_ascii_case(&entry.sha256) => {
                return Err(RegistryError::DigestMismatch {
                    path: PathBuf::from(format!("{url} (checked against tag {TAG_ONNX_SHA256})")),
                    expected: sha.clone(),
                    actual: entry.sha256,
                });
            }
            Some(_) => {}
            None => {
                let v = version.to_string();
                let body = json!({"name": model, "version": v, "key": TAG_ONNX_SHA256, "value": entry.sha256});
                // A read-only token cannot record it; the bytes are still checked by the cache.
                if let Err(e) = self.call_ok(
                    "POST",
                    "model-versions/set-tag",
                    &[],
                    Some(&body),
                    Idempotent::Yes,
                    &format!("model {model:?} version {v}"),
                ) {
                    tracing::warn!(error = %e, "could not record the ONNX file's sha256 on the MLflow version");
                }
            }
        }
        let manifest = Manifest {
            name: model.to_string(),
            version,
            created_at: crate::types::rfc3339_utc(mv.created_secs()),
            files: BTreeMap::from([(MODEL.to_string(), entry)]),
            lineage: json!({
                "mlflow": {"run_id": mv.run_id, "source": mv.source, "flavor": "onnx", "data": data},
            }),
            metrics: Value::Null,
        };
        let manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        let files = BTreeMap::from([(MODEL.to_string(), bytes)]);
        let source = |_: &str| PathBuf::from(&url);
        self.cache.store(&manifest_bytes, manifest, files, &source)
    }
}

/// What a publish logs to its MLflow run: every number (and boolean, as 0/1) of `metrics`
/// under its dotted path (`models.lr.test.auc`), a list of numbers as a metric history (step =
/// position: per-round curves); every scalar of `lineage` as a param (lists of scalars joined
/// with commas, values cut to MLflow's 6 000 characters). Keys MLflow refuses are skipped.
fn run_record(metrics: &Value, lineage: &Value, now_ms: u64) -> (Vec<Value>, Vec<Value>) {
    fn walk<'a>(prefix: &str, v: &'a Value, out: &mut Vec<(String, &'a Value)>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            _ if !prefix.is_empty() => out.push((prefix.to_string(), v)),
            _ => {}
        }
    }
    let valid = |k: &str| {
        !k.is_empty()
            && k.len() <= 250
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-. /".contains(&b))
    };
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    };
    let mut leaves = Vec::new();
    walk("", metrics, &mut leaves);
    let mut out_metrics = Vec::new();
    for (key, v) in leaves.iter().filter(|(k, _)| valid(k)) {
        // A list of numbers is a history (step = position); a number, one point at step 0.
        let points: Vec<(usize, f64)> = match v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(step, x)| number(x).map(|x| (step, x)))
                .collect(),
            v => number(v).map(|x| (0, x)).into_iter().collect(),
        };
        out_metrics.extend(
            points.into_iter().map(
                |(step, x)| json!({"key": key, "value": x, "timestamp": now_ms, "step": step}),
            ),
        );
    }
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    };
    let mut leaves = Vec::new();
    walk("", lineage, &mut leaves);
    let params = leaves
        .iter()
        .filter(|(k, _)| valid(k))
        .filter_map(|(key, v)| {
            let text = match v {
                Value::Array(items) => {
                    let parts: Option<Vec<String>> = items.iter().map(scalar).collect();
                    parts?.join(",")
                }
                v => scalar(v)?,
            };
            let text: String = text.chars().take(6000).collect();
            Some(json!({"key": key, "value": text}))
        })
        .collect();
    (out_metrics, params)
}

/// The `data` file of the `onnx` flavor in an `MLmodel` file (YAML), read line by line:
/// `flavors:` → `onnx:` one level in → `data: <file>` one level further.
fn onnx_flavor_data(mlmodel: &str) -> Option<String> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut lines = mlmodel
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    lines.find(|l| indent(l) == 0 && l.trim_end() == "flavors:")?;
    let mut flavor_indent = None;
    let mut in_onnx = false;
    for l in lines {
        let i = indent(l);
        if i == 0 {
            return None;
        }
        let key = l.trim();
        let level = *flavor_indent.get_or_insert(i);
        if i == level {
            in_onnx = key == "onnx:";
        } else if in_onnx
            && i > level
            && let Some(v) = key.strip_prefix("data:")
        {
            let v = v.trim().trim_matches(|c| c == '\'' || c == '"');
            return (!v.is_empty()).then(|| v.to_string());
        }
    }
    None
}

impl RegistryWriter for MlflowRegistry {
    /// Creates a run in experiment `vane-registry`, uploads the files as its artifacts,
    /// registers a model version from them, waits until it is READY, then uploads
    /// `manifest.json` (with MLflow's version number) and tags the version with the
    /// manifest's sha256.
    fn publish(&self, req: &PublishRequest) -> Result<u64, RegistryError> {
        let req = &*validate_publish(req, &PathBuf::from(format!("models:/{}", req.model)))?;
        let model = req.model.as_str();
        let experiment_id = self.experiment_id()?;
        let now_ms = now_secs() * 1000;
        let body = json!({
            "experiment_id": experiment_id,
            "start_time": now_ms,
            "run_name": format!("publish-{model}"),
            "tags": [{"key": "vane.model", "value": model}],
        });
        let run = self.call_ok(
            "POST",
            "runs/create",
            &[],
            Some(&body),
            Idempotent::No,
            "a publish run",
        )?;
        let info = &run["run"]["info"];
        let run_id = info["run_id"].as_str().unwrap_or_default().to_string();
        let artifact_root = info["artifact_uri"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if run_id.is_empty() || artifact_root.is_empty() {
            return Err(RegistryError::malformed(
                self.api_url("runs/create", &[]),
                "no run_id / artifact_uri",
            ));
        }
        let dir = format!("{}/{MLFLOW_ARTIFACT_DIR}", self.proxy_path(&artifact_root)?);
        for (name, bytes) in &req.files {
            self.put_artifact(&format!("{dir}/{name}"), bytes)?;
        }
        // The metrics and the lineage also go to the run, for MLflow's UI and API (the
        // manifest keeps them as they are).
        let (metrics, params) = run_record(&req.metrics, &req.lineage, now_ms);
        // MLflow takes at most 1 000 metrics and 100 params per batch.
        for (key, items, per_batch) in [("metrics", &metrics, 1000), ("params", &params, 100)] {
            for chunk in items.chunks(per_batch) {
                let body = json!({"run_id": run_id, key: chunk});
                self.call_ok(
                    "POST",
                    "runs/log-batch",
                    &[],
                    Some(&body),
                    Idempotent::Yes,
                    &format!("run {key}"),
                )?;
            }
        }
        let what = format!("model {model:?}");
        match self.call(
            "POST",
            "registered-models/create",
            &[],
            Some(&json!({"name": model})),
            Idempotent::No,
        )? {
            Ok(_) => {}
            Err(e) if e.code == "RESOURCE_ALREADY_EXISTS" => {}
            Err(e) => return Err(self.map_err(e, &what)),
        }
        let body = json!({
            "name": model,
            "source": format!("{}/{MLFLOW_ARTIFACT_DIR}", artifact_root.trim_end_matches('/')),
            "run_id": run_id,
            "description": PUBLISH_DESCRIPTION,
        });
        let created = self.call_ok(
            "POST",
            "model-versions/create",
            &[],
            Some(&body),
            Idempotent::No,
            &what,
        )?;
        let version = parse_version(
            created["model_version"]["version"]
                .as_str()
                .unwrap_or_default(),
            &what,
        )?;
        self.wait_ready(model, version)?;
        let files = file_entries(req);
        let (_, manifest_bytes) = build_manifest(req, &files, version, now_secs());
        self.put_artifact(&format!("{dir}/{MANIFEST}"), &manifest_bytes)?;
        let v = version.to_string();
        let body = json!({"name": model, "version": v, "key": TAG_MANIFEST_SHA256, "value": sha256_hex(&manifest_bytes)});
        self.call_ok(
            "POST",
            "model-versions/set-tag",
            &[],
            Some(&body),
            Idempotent::Yes,
            &format!("{what} version {v}"),
        )?;
        let body = json!({"run_id": run_id, "status": "FINISHED", "end_time": now_secs() * 1000});
        self.call_ok(
            "POST",
            "runs/update",
            &[],
            Some(&body),
            Idempotent::Yes,
            "the publish run",
        )?;
        Ok(version)
    }

    fn set_alias(&self, model: &str, alias: &str, version: u64) -> Result<(), RegistryError> {
        check_alias(alias)?;
        self.resolve(model, &VersionRef::Number(version))?;
        let body = json!({"name": model, "alias": alias, "version": version.to_string()});
        let what = format!("model {model:?} version {version}");
        self.call_ok(
            "POST",
            "registered-models/alias",
            &[],
            Some(&body),
            Idempotent::Yes,
            &what,
        )?;
        Ok(())
    }

    fn remove_alias(&self, model: &str, alias: &str) -> Result<(), RegistryError> {
        if !self.aliases(model)?.contains_key(alias) {
            return Err(RegistryError::NotFound(format!(
                "model {model:?} alias {alias:?}"
            )));
        }
        // MLflow reads DELETE parameters from a JSON body (query parameters are ignored).
        let body = json!({"name": model, "alias": alias});
        let what = format!("model {model:?} alias {alias:?}");
        self.call_ok(
            "DELETE",
            "registered-models/alias",
            &[],
            Some(&body),
            Idempotent::Yes,
            &what,
        )?;
        Ok(())
    }

    fn set_traffic_settings(
        &self,
        model: &str,
        settings: &TrafficSettings,
    ) -> Result<(), RegistryError> {
        settings.validate()?;
        self.registered_model(model)?;
        let history: Vec<String> = settings
            .champion_history
            .iter()
            .map(u64::to_string)
            .collect();
        let what = format!("model {model:?}");
        // Two tags, two writes: a reader in between sees the new history with the old
        // weight, which is harmless (the weight only matters with a canary alias).
        for (key, value) in [
            (TAG_CHAMPION_HISTORY, history.join(",")),
            (TAG_CANARY_WEIGHT, settings.canary_weight.to_string()),
        ] {
            let body = json!({"name": model, "key": key, "value": value});
            self.call_ok(
                "POST",
                "registered-models/set-tag",
                &[],
                Some(&body),
                Idempotent::Yes,
                &what,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{onnx_flavor_data, run_record};
    use serde_json::json;

    #[test]
    fn nested_metrics_and_lineage_reach_the_run() {
        let metrics = json!({
            "published": "gbdt",
            "test": {"auc": 0.75},
            "models": {"gbdt": {"details": {"converged": true, "valid_log_loss_curve": [0.6, 0.5, 0.45]}}},
        });
        let lineage = json!({"seed": 42, "features": ["a", "b"], "params": {"lr": {"l2": 0.001}}, "bad key!": 1});
        let (m, p) = run_record(&metrics, &lineage, 7);
        let find = |key: &str| m.iter().filter(|x| x["key"] == key).collect::<Vec<_>>();
        assert_eq!(find("test.auc")[0]["value"], 0.75);
        assert_eq!(find("models.gbdt.details.converged")[0]["value"], 1.0);
        let curve = find("models.gbdt.details.valid_log_loss_curve");
        assert_eq!(curve.len(), 3);
        assert_eq!(
            (curve[2]["step"].clone(), curve[2]["value"].clone()),
            (json!(2), json!(0.45))
        );
        assert!(find("published").is_empty(), "strings are not metrics");
        let param = |key: &str| {
            p.iter()
                .find(|x| x["key"] == key)
                .map(|x| x["value"].clone())
        };
        assert_eq!(param("seed"), Some(json!("42")));
        assert_eq!(param("features"), Some(json!("a,b")));
        assert_eq!(param("params.lr.l2"), Some(json!("0.001")));
        assert_eq!(param("bad key!"), None);
    }

    #[test]
    fn the_onnx_flavor_names_its_file() {
        let mlmodel = "artifact_path: model\nflavors:\n  python_function:\n    data: other.onnx\n    loader_module: mlflow.onnx\n  onnx:\n    code: null\n    data: model.onnx\n    onnx_version: 1.17.0\n    providers:\n    - CPUExecutionProvider\nmlflow_version: 3.1.0\n";
        assert_eq!(onnx_flavor_data(mlmodel).as_deref(), Some("model.onnx"));
        let sklearn = "flavors:\n  sklearn:\n    pickled_model: model.pkl\n  python_function:\n    data: model.pkl\n";
        assert_eq!(onnx_flavor_data(sklearn), None);
        assert_eq!(onnx_flavor_data("flavors: {}\n"), None);
    }
}
