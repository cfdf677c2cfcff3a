//! The local verified cache of remote backends: [`VersionCache`].
//!
//! Layout: `<base>/registry/<location id>/<model>/<version>/{manifest.json, model.onnx, …}`,
//! where `<base>` is an explicit directory, else `$VANE_CACHE_DIR`, else
//! `${XDG_CACHE_HOME:-~/.cache}/vane`, and `<location id>` is the registry URL made
//! filesystem-safe plus a short hash of it (two registries never share entries).
//!
//! A version directory is written beside (`.tmp-…`) and renamed into place, so a reader never
//! sees half of one. It is reused only after every file's size and sha256 are checked again
//! against the cached manifest (and, where the backend has one, the manifest against its
//! remote digest): a corrupt entry is deleted and the caller downloads it again.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::dir::write_synced;
use crate::error::RegistryError;
use crate::types::{Manifest, ModelVersion, sha256_hex};
use crate::version::{
    MANIFEST, assemble, check_name, parse_manifest, parse_meta, verify, with_meta,
};

/// Verified copies of remote versions under one directory per registry location.
#[derive(Debug, Clone)]
pub struct VersionCache {
    root: PathBuf,
}

impl VersionCache {
    /// The default cache base: `$VANE_CACHE_DIR`, else `${XDG_CACHE_HOME:-$HOME/.cache}/vane`.
    pub fn default_base() -> Result<PathBuf, RegistryError> {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(dir) = var("VANE_CACHE_DIR") {
            return Ok(dir);
        }
        if let Some(dir) = var("XDG_CACHE_HOME") {
            return Ok(dir.join("vane"));
        }
        if let Some(home) = var("HOME") {
            return Ok(home.join(".cache").join("vane"));
        }
        Err(RegistryError::Invalid(
            "no cache directory for remote registry files: set VANE_CACHE_DIR".into(),
        ))
    }

    /// The cache of registry `location` under `base` (or the default base).
    pub fn new(base: Option<&Path>, location: &str) -> Result<Self, RegistryError> {
        let base = match base {
            Some(b) => b.to_path_buf(),
            None => Self::default_base()?,
        };
        Ok(Self {
            root: base.join("registry").join(location_id(location)),
        })
    }

    /// `<base>/registry/<location id>`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a cached version lives (whether or not it is there).
    pub fn version_dir(&self, model: &str, version: u64) -> Result<PathBuf, RegistryError> {
        check_name(model).map_err(|_| RegistryError::NotFound(format!("model {model:?}")))?;
        Ok(self.root.join(model).join(version.to_string()))
    }

    /// The cached manifest bytes of a version, if any (not verified: callers that need trust
    /// use [`VersionCache::load`]).
    pub fn manifest_bytes(&self, model: &str, version: u64) -> Option<Vec<u8>> {
        fs::read(self.version_dir(model, version).ok()?.join(MANIFEST)).ok()
    }

    /// A cached version, re-verified file by file. `manifest_sha256`, when given, must match
    /// the cached manifest's bytes. Returns `None` when there is no usable entry; a corrupt
    /// or stale entry is deleted first.
    pub fn load(
        &self,
        model: &str,
        version: u64,
        manifest_sha256: Option<&str>,
    ) -> Result<Option<ModelVersion>, RegistryError> {
        let dir = self.version_dir(model, version)?;
        let manifest_path = dir.join(MANIFEST);
        let bytes = match fs::read(&manifest_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A directory without a manifest is debris (renames are atomic, so only a
                // tampered entry looks like that).
                if dir.exists() {
                    self.evict(&dir)?;
                }
                return Ok(None);
            }
            Err(e) => return Err(RegistryError::io(&manifest_path, e)),
        };
        let verified = (|| -> Result<ModelVersion, RegistryError> {
            if let Some(expected) = manifest_sha256 {
                let actual = sha256_hex(&bytes);
                if !actual.eq_ignore_ascii_case(expected) {
                    return Err(RegistryError::DigestMismatch {
                        path: manifest_path.clone(),
                        expected: expected.to_string(),
                        actual,
                    });
                }
            }
            let manifest = parse_manifest(&bytes, &manifest_path, model, version)?;
            let mut files = BTreeMap::new();
            for (name, entry) in &manifest.files {
                let path = dir.join(name);
                let data = fs::read(&path).map_err(|e| RegistryError::io(&path, e))?;
                verify(&path, entry, &data)?;
                files.insert(name.clone(), data);
            }
            assemble(dir.clone(), manifest, files, |n| dir.join(n))
        })();
        match verified {
            Ok(v) => Ok(Some(v)),
            Err(error) => {
                tracing::warn!(
                    model,
                    version,
                    dir = %dir.display(),
                    %error,
                    "cached registry version failed verification; deleting it"
                );
                self.evict(&dir)?;
                Ok(None)
            }
        }
    }

    /// Stores a version whose files were verified against `manifest` (whose bytes are
    /// `manifest_bytes`), atomically, and returns it with `dir` pointing at the cache entry.
    /// `signature.json` and `profile.json` are parsed first, so a version that cannot be
    /// loaded is refused (naming `source(file)`, where the bytes came from) and not cached.
    pub fn store(
        &self,
        manifest_bytes: &[u8],
        manifest: Manifest,
        files: BTreeMap<String, Vec<u8>>,
        source: &dyn Fn(&str) -> PathBuf,
    ) -> Result<ModelVersion, RegistryError> {
        let meta = parse_meta(&files, source)?;
        let model = manifest.name.clone();
        let version = manifest.version;
        let target = self.version_dir(&model, version)?;
        let parent = target
            .parent()
            .expect("version dir has a parent")
            .to_path_buf();
        fs::create_dir_all(&parent).map_err(|e| RegistryError::io(&parent, e))?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let tmp = parent.join(format!(".tmp-{version}-{}-{nanos}", std::process::id()));
        let written = (|| -> Result<(), RegistryError> {
            fs::create_dir(&tmp).map_err(|e| RegistryError::io(&tmp, e))?;
            for (name, bytes) in &files {
                write_synced(&tmp.join(name), bytes)?;
            }
            write_synced(&tmp.join(MANIFEST), manifest_bytes)?;
            if target.exists() {
                // Only a stale or corrupt entry is replaced: callers store after `load` said no.
                self.evict(&target)?;
            }
            match fs::rename(&tmp, &target) {
                Ok(()) => Ok(()),
                // A concurrent fetch stored the same version first; its bytes were verified
                // against the same manifest, so ours can go.
                Err(_) if target.join(MANIFEST).exists() => {
                    let _ = fs::remove_dir_all(&tmp);
                    Ok(())
                }
                Err(e) => Err(RegistryError::io(&target, e)),
            }
        })();
        if written.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        written?;
        Ok(with_meta(target, manifest, files, meta))
    }

    /// Deletes a cached version (no error when it is absent).
    pub fn remove(&self, model: &str, version: u64) -> Result<(), RegistryError> {
        let dir = self.version_dir(model, version)?;
        self.evict(&dir)
    }

    fn evict(&self, dir: &Path) -> Result<(), RegistryError> {
        match fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RegistryError::Io {
                path: dir.to_path_buf(),
                source: e,
            }),
        }
    }
}

/// A filesystem-safe, collision-free directory name for a registry location:
/// `127.0.0.1_8080_registry-1a2b3c4d5e6f` for `http://127.0.0.1:8080/registry/`.
pub fn location_id(location: &str) -> String {
    let without_scheme = location
        .split_once("://")
        .map_or(location, |(_, rest)| rest);
    let mut safe: String = without_scheme
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    safe = safe.trim_matches(|c| c == '_' || c == '.').to_string();
    safe.truncate(80);
    let hash = sha256_hex(location.as_bytes());
    if safe.is_empty() {
        hash[..12].to_string()
    } else {
        format!("{safe}-{}", &hash[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::FileEntry;

    fn version(
        model: &str,
        n: u64,
        payload: &[u8],
    ) -> (Vec<u8>, Manifest, BTreeMap<String, Vec<u8>>) {
        let sig = br#"{"inputs":[{"name":"x","dtype":"FP32","kind":"numeric"}],
            "tensor":{"name":"input","datatype":"FP32","shape":[-1,1]},
            "outputs":[{"name":"p","datatype":"FP32","shape":[-1,1]}]}"#
            .to_vec();
        let files: BTreeMap<String, Vec<u8>> = [
            ("model.onnx".to_string(), payload.to_vec()),
            ("signature.json".to_string(), sig),
        ]
        .into_iter()
        .collect();
        let manifest = Manifest {
            name: model.into(),
            version: n,
            created_at: "2026-01-01T00:00:00Z".into(),
            files: files
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        FileEntry {
                            sha256: sha256_hex(v),
                            size: v.len() as u64,
                        },
                    )
                })
                .collect(),
            lineage: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
        };
        (serde_json::to_vec(&manifest).unwrap(), manifest, files)
    }

    #[test]
    fn location_ids_are_safe_and_distinct() {
        let a = location_id("http://127.0.0.1:8080/registry/");
        assert!(a.starts_with("127.0.0.1_8080_registry-"), "{a}");
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        );
        assert_ne!(a, location_id("http://127.0.0.1:8080/registry"));
        assert_ne!(location_id("mlflow+http://h:1"), location_id("http://h:1"));
        assert!(!location_id("http://../..").contains('/'));
    }

    #[test]
    fn store_then_load_reverifies_and_evicts_corruption() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = VersionCache::new(Some(tmp.path()), "http://example:1/r").unwrap();
        assert!(cache.load("m", 1, None).unwrap().is_none());
        let (bytes, manifest, files) = version("m", 1, b"weights");
        let stored = cache
            .store(&bytes, manifest, files, &|n: &str| PathBuf::from(n))
            .unwrap();
        assert_eq!(stored.model_bytes, b"weights");
        assert!(stored.dir.starts_with(cache.root()));
        let loaded = cache
            .load("m", 1, Some(&sha256_hex(&bytes)))
            .unwrap()
            .unwrap();
        assert_eq!(loaded.model_bytes, b"weights");
        // A different remote manifest digest: the entry is stale and goes.
        assert!(
            cache
                .load("m", 1, Some(&sha256_hex(b"other")))
                .unwrap()
                .is_none()
        );
        assert!(!stored.dir.exists());
        // A flipped byte: the entry is corrupt and goes.
        let (bytes, manifest, files) = version("m", 1, b"weights");
        let stored = cache
            .store(&bytes, manifest, files, &|n: &str| PathBuf::from(n))
            .unwrap();
        fs::write(stored.dir.join("model.onnx"), b"weighTs").unwrap();
        assert!(cache.load("m", 1, None).unwrap().is_none());
        assert!(!stored.dir.exists());
        // Storing over debris works, and no temporary directory is left behind.
        fs::create_dir_all(&stored.dir).unwrap();
        let (bytes, manifest, files) = version("m", 1, b"weights");
        cache
            .store(&bytes, manifest, files, &|n: &str| PathBuf::from(n))
            .unwrap();
        assert!(cache.load("m", 1, None).unwrap().is_some());
        let names: Vec<String> = fs::read_dir(cache.root().join("m"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["1".to_string()]);
    }
}
