//! The static HTTP backend: [`HttpRegistry`] reads a directory registry served by any web
//! server (nginx, S3/GCS website, `python3 -m http.server`) under a base URL. Read-only.
//!
//! `index.json` lists models and versions (no directory listing is needed); `aliases.json`,
//! `traffic.json` and `index.json` are fetched with conditional GETs so polling them is
//! cheap; version files are verified against their manifest and kept in the local
//! [`VersionCache`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use crate::cache::VersionCache;
use crate::dir::{ALIASES, INDEX, IndexFile, TRAFFIC};
use crate::error::RegistryError;
use crate::registry::{Registry, TrafficSettings};
use crate::transport::{RemoteOptions, Transport, check_base_url};
use crate::types::{Aliases, Manifest, ModelVersion};
use crate::version::{MANIFEST, check_name, parse_manifest, verify};

/// A read-only registry mirrored over plain HTTP(S): `<base>/index.json`,
/// `<base>/<model>/{aliases,traffic}.json`, `<base>/<model>/versions/<n>/…`.
pub struct HttpRegistry {
    base: String,
    transport: Transport,
    cache: VersionCache,
}

impl std::fmt::Debug for HttpRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRegistry")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl HttpRegistry {
    /// A registry served under `base_url` (`http://host:port/path`).
    pub fn new(base_url: &str, opts: &RemoteOptions) -> Result<Self, RegistryError> {
        let base = check_base_url(base_url)?;
        let cache = VersionCache::new(opts.cache_dir.as_deref(), &base)?;
        Ok(Self {
            transport: Transport::new(&base, opts),
            base,
            cache,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The local cache of verified versions.
    pub fn cache(&self) -> &VersionCache {
        &self.cache
    }

    /// Requests sent so far and how many conditional GETs were answered `304 Not Modified`.
    pub fn request_counts(&self) -> (u64, u64) {
        let c = &self.transport.counters;
        (
            c.requests.load(Ordering::Relaxed),
            c.not_modified.load(Ordering::Relaxed),
        )
    }

    fn url(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    fn index(&self) -> Result<IndexFile, RegistryError> {
        let url = self.url(INDEX);
        let bytes = self.transport.get_small(&url)?.ok_or_else(|| {
            RegistryError::NotFound(format!(
                "{url} (not a Vane registry, or nothing was published there yet)"
            ))
        })?;
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::malformed(&url, e))
    }

    fn check_model(model: &str) -> Result<(), RegistryError> {
        check_name(model).map_err(|_| RegistryError::NotFound(format!("model {model:?}")))
    }

    /// Versions of a model listed by an index written before indexes carried versions:
    /// probes `versions/1/manifest.json`, `versions/2/…` until one is missing.
    fn probe_versions(&self, model: &str) -> Result<Vec<u64>, RegistryError> {
        let mut out = Vec::new();
        for n in 1.. {
            let url = self.url(&format!("{model}/versions/{n}/{MANIFEST}"));
            let reply = self.transport.get(&url)?;
            match reply.status {
                404 => break,
                s if (200..300).contains(&s) => out.push(n),
                _ => return Err(self.transport.unexpected("GET", &url, &reply)),
            }
        }
        Ok(out)
    }

    /// A small per-model JSON file; `None` when the file is absent but the model exists.
    fn model_file<T: serde::de::DeserializeOwned>(
        &self,
        model: &str,
        name: &str,
    ) -> Result<Option<T>, RegistryError> {
        Self::check_model(model)?;
        let url = self.url(&format!("{model}/{name}"));
        match self.transport.get_small(&url)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| RegistryError::malformed(&url, e)),
            None => {
                // Absent file: fine for a model that exists, NotFound otherwise.
                self.versions(model)?;
                Ok(None)
            }
        }
    }

    fn download_manifest(
        &self,
        model: &str,
        version: u64,
    ) -> Result<(Vec<u8>, Manifest), RegistryError> {
        Self::check_model(model)?;
        let url = self.url(&format!("{model}/versions/{version}/{MANIFEST}"));
        let reply = self.transport.get(&url)?;
        match reply.status {
            404 => Err(RegistryError::NotFound(format!(
                "model {model:?} version {version}"
            ))),
            s if (200..300).contains(&s) => {
                let manifest = parse_manifest(&reply.body, &PathBuf::from(&url), model, version)?;
                Ok((reply.body, manifest))
            }
            _ => Err(self.transport.unexpected("GET", &url, &reply)),
        }
    }
}

impl Registry for HttpRegistry {
    fn location(&self) -> String {
        self.base.clone()
    }

    fn models(&self) -> Result<Vec<String>, RegistryError> {
        let mut models = self.index()?.models;
        models.retain(|m| check_name(m).is_ok());
        models.sort();
        Ok(models)
    }

    fn versions(&self, model: &str) -> Result<Vec<u64>, RegistryError> {
        Self::check_model(model)?;
        let index = self.index()?;
        if !index.models.iter().any(|m| m == model) {
            return Err(RegistryError::NotFound(format!("model {model:?}")));
        }
        let mut versions = match index.versions.get(model) {
            Some(v) => v.clone(),
            None => self.probe_versions(model)?,
        };
        versions.sort_unstable();
        Ok(versions)
    }

    fn aliases(&self, model: &str) -> Result<Aliases, RegistryError> {
        Ok(self.model_file(model, ALIASES)?.unwrap_or_default())
    }

    fn traffic_settings(&self, model: &str) -> Result<TrafficSettings, RegistryError> {
        Ok(self.model_file(model, TRAFFIC)?.unwrap_or_default())
    }

    fn manifest(&self, model: &str, version: u64) -> Result<Manifest, RegistryError> {
        if let Some(bytes) = self.cache.manifest_bytes(model, version) {
            let path = self.cache.version_dir(model, version)?.join(MANIFEST);
            if let Ok(m) = parse_manifest(&bytes, &path, model, version) {
                return Ok(m);
            }
        }
        self.download_manifest(model, version).map(|(_, m)| m)
    }

    /// Versions are immutable, so a cached copy that still verifies is used without asking
    /// the server; otherwise `manifest.json` and every file are downloaded and verified
    /// before anything is kept.
    fn fetch(&self, model: &str, version: u64) -> Result<ModelVersion, RegistryError> {
        Self::check_model(model)?;
        if let Some(v) = self.cache.load(model, version, None)? {
            return Ok(v);
        }
        let (manifest_bytes, manifest) = self.download_manifest(model, version)?;
        let mut files = BTreeMap::new();
        for (name, entry) in &manifest.files {
            let url = self.url(&format!("{model}/versions/{version}/{name}"));
            let reply = self.transport.get(&url)?;
            if !reply.ok() {
                return Err(match reply.status {
                    404 => RegistryError::malformed(
                        &url,
                        "listed in the manifest but not served (404)",
                    ),
                    _ => self.transport.unexpected("GET", &url, &reply),
                });
            }
            verify(&PathBuf::from(&url), entry, &reply.body)?;
            files.insert(name.clone(), reply.body);
        }
        let base = self.url(&format!("{model}/versions/{version}"));
        let source = |n: &str| PathBuf::from(format!("{base}/{n}"));
        self.cache.store(&manifest_bytes, manifest, files, &source)
    }
}
