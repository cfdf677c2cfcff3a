//! The directory backend: `<root>/<model>/versions/<n>/…` plus `<root>/<model>/aliases.json`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::RegistryError;
use crate::types::{
    Aliases, FileEntry, Manifest, ModelVersion, Signature, VersionRef, rfc3339_utc, sha256_hex,
};

const MANIFEST: &str = "manifest.json";
const MODEL: &str = "model.onnx";
const SIGNATURE: &str = "signature.json";
const PROFILE: &str = "profile.json";
const ALIASES: &str = "aliases.json";

/// A registry rooted at a local directory.
#[derive(Debug, Clone)]
pub struct DirRegistry {
    root: PathBuf,
}

/// The files and metadata of a version to publish.
#[derive(Debug, Clone, Default)]
pub struct PublishRequest {
    pub model: String,
    /// File name → bytes. Must include `model.onnx` and `signature.json`.
    pub files: Vec<(String, Vec<u8>)>,
    pub lineage: serde_json::Value,
    pub metrics: serde_json::Value,
}

impl DirRegistry {
    /// Opens an existing registry directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, RegistryError> {
        let root = root.into();
        let meta = fs::metadata(&root).map_err(|e| RegistryError::io(&root, e))?;
        if !meta.is_dir() {
            return Err(RegistryError::malformed(
                &root,
                "registry root is not a directory",
            ));
        }
        Ok(Self { root })
    }

    /// Opens a registry directory, creating it if needed (for publishing).
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, RegistryError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| RegistryError::io(&root, e))?;
        Self::open(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Model names (directories with a `versions/` folder), sorted.
    pub fn models(&self) -> Result<Vec<String>, RegistryError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(|e| RegistryError::io(&self.root, e))? {
            let entry = entry.map_err(|e| RegistryError::io(&self.root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if check_name(&name).is_ok() && entry.path().join("versions").is_dir() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Published version numbers of `model`, ascending.
    pub fn versions(&self, model: &str) -> Result<Vec<u64>, RegistryError> {
        let dir = self.model_dir(model)?.join("versions");
        let mut out = Vec::new();
        let rd = fs::read_dir(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RegistryError::NotFound(format!("model {model:?}")),
            _ => RegistryError::io(&dir, e),
        })?;
        for entry in rd {
            let entry = entry.map_err(|e| RegistryError::io(&dir, e))?;
            if let Ok(n) = entry.file_name().to_string_lossy().parse::<u64>() {
                out.push(n);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The alias table of `model` (empty when it has none).
    pub fn aliases(&self, model: &str) -> Result<Aliases, RegistryError> {
        let path = self.model_dir(model)?.join(ALIASES);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::malformed(&path, e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A model without aliases is fine; a model that does not exist is not.
                self.versions(model)?;
                Ok(Aliases::new())
            }
            Err(e) => Err(RegistryError::io(&path, e)),
        }
    }

    /// Resolves an alias or number to a published version number.
    pub fn resolve(&self, model: &str, which: &VersionRef) -> Result<u64, RegistryError> {
        match which {
            VersionRef::Number(n) => {
                if self.versions(model)?.contains(n) {
                    Ok(*n)
                } else {
                    Err(RegistryError::NotFound(format!(
                        "model {model:?} version {n}"
                    )))
                }
            }
            VersionRef::Alias(a) => self
                .aliases(model)?
                .get(a)
                .copied()
                .ok_or_else(|| RegistryError::NotFound(format!("model {model:?} alias {a:?}"))),
        }
    }

    /// Reads one version and verifies every file its manifest lists.
    pub fn fetch(&self, model: &str, version: u64) -> Result<ModelVersion, RegistryError> {
        let dir = self
            .model_dir(model)?
            .join("versions")
            .join(version.to_string());
        if !dir.is_dir() {
            return Err(RegistryError::NotFound(format!(
                "model {model:?} version {version}"
            )));
        }
        let manifest_path = dir.join(MANIFEST);
        let manifest_bytes =
            fs::read(&manifest_path).map_err(|e| RegistryError::io(&manifest_path, e))?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| RegistryError::malformed(&manifest_path, e))?;
        if manifest.name != model || manifest.version != version {
            return Err(RegistryError::malformed(
                &manifest_path,
                format!(
                    "manifest is for {}/{}, found at {model}/{version}",
                    manifest.name, manifest.version
                ),
            ));
        }
        for required in [MODEL, SIGNATURE] {
            if !manifest.files.contains_key(required) {
                return Err(RegistryError::malformed(
                    &manifest_path,
                    format!("manifest does not list {required}"),
                ));
            }
        }
        let mut model_bytes = Vec::new();
        let mut signature = None;
        let mut profile = None;
        for (name, entry) in &manifest.files {
            check_file_name(name).map_err(|r| RegistryError::malformed(&manifest_path, r))?;
            let path = dir.join(name);
            let bytes = read_verified(&path, entry)?;
            match name.as_str() {
                MODEL => model_bytes = bytes,
                SIGNATURE => {
                    let sig: Signature = serde_json::from_slice(&bytes)
                        .map_err(|e| RegistryError::malformed(&path, e))?;
                    sig.validate()
                        .map_err(|r| RegistryError::malformed(&path, r))?;
                    signature = Some(sig);
                }
                PROFILE => {
                    profile = Some(
                        serde_json::from_slice(&bytes)
                            .map_err(|e| RegistryError::malformed(&path, e))?,
                    )
                }
                _ => {}
            }
        }
        let signature = signature.ok_or_else(|| RegistryError::malformed(&dir, "no signature"))?;
        Ok(ModelVersion {
            name: model.to_string(),
            version,
            dir,
            manifest,
            signature,
            model_bytes,
            profile,
        })
    }

    /// Resolves and fetches in one step.
    pub fn fetch_ref(
        &self,
        model: &str,
        which: &VersionRef,
    ) -> Result<ModelVersion, RegistryError> {
        let version = self.resolve(model, which)?;
        self.fetch(model, version)
    }

    /// Publishes a new immutable version and returns its number.
    ///
    /// Files are written into a staging directory beside `versions/<n>` and renamed into place,
    /// so a reader never sees a half-written version. Concurrent publishers each get their own
    /// number: a rename onto an existing version fails and the next number is tried.
    pub fn publish(&self, req: &PublishRequest) -> Result<u64, RegistryError> {
        check_name(&req.model).map_err(|r| RegistryError::malformed(&self.root, r))?;
        let staging_root = self.root.join(&req.model).join("versions");
        fs::create_dir_all(&staging_root).map_err(|e| RegistryError::io(&staging_root, e))?;
        let names: Vec<&str> = req.files.iter().map(|(n, _)| n.as_str()).collect();
        for required in [MODEL, SIGNATURE] {
            if !names.contains(&required) {
                return Err(RegistryError::malformed(
                    &staging_root,
                    format!("publish needs {required}"),
                ));
            }
        }
        for (name, bytes) in &req.files {
            check_file_name(name).map_err(|r| RegistryError::malformed(&staging_root, r))?;
            if name == MANIFEST {
                return Err(RegistryError::malformed(
                    &staging_root,
                    "manifest.json is written by publish",
                ));
            }
            if name == SIGNATURE {
                let sig: Signature = serde_json::from_slice(bytes)
                    .map_err(|e| RegistryError::malformed(Path::new(SIGNATURE), e))?;
                sig.validate()
                    .map_err(|r| RegistryError::malformed(Path::new(SIGNATURE), r))?;
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let staging = staging_root.join(format!(
            ".staging-{}-{}",
            std::process::id(),
            now.as_nanos()
        ));
        fs::create_dir(&staging).map_err(|e| RegistryError::io(&staging, e))?;
        let result = self.publish_staged(req, &staging, &staging_root, now.as_secs());
        if result.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        result
    }

    fn publish_staged(
        &self,
        req: &PublishRequest,
        staging: &Path,
        versions_dir: &Path,
        now_secs: u64,
    ) -> Result<u64, RegistryError> {
        let mut files = std::collections::BTreeMap::new();
        for (name, bytes) in &req.files {
            write_synced(&staging.join(name), bytes)?;
            files.insert(
                name.clone(),
                FileEntry {
                    sha256: sha256_hex(bytes),
                    size: bytes.len() as u64,
                },
            );
        }
        let mut version = self.versions(&req.model)?.last().copied().unwrap_or(0) + 1;
        loop {
            let manifest = Manifest {
                name: req.model.clone(),
                version,
                created_at: rfc3339_utc(now_secs),
                files: files.clone(),
                lineage: req.lineage.clone(),
                metrics: req.metrics.clone(),
            };
            let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
            write_synced(&staging.join(MANIFEST), &json)?;
            let target = versions_dir.join(version.to_string());
            if target.exists() {
                version += 1;
                continue;
            }
            match fs::rename(staging, &target) {
                Ok(()) => return Ok(version),
                // Another publisher took this number between our check and rename.
                Err(e) if target.exists() => {
                    let _ = e;
                    version += 1;
                }
                Err(e) => return Err(RegistryError::io(&target, e)),
            }
        }
    }

    /// Points `alias` at `version` (which must exist), atomically.
    pub fn set_alias(&self, model: &str, alias: &str, version: u64) -> Result<(), RegistryError> {
        check_name(alias).map_err(|r| RegistryError::malformed(&self.root, r))?;
        if alias.parse::<u64>().is_ok() {
            return Err(RegistryError::malformed(
                &self.root,
                "an alias cannot be a number",
            ));
        }
        self.resolve(model, &VersionRef::Number(version))?;
        let mut aliases = self.aliases(model)?;
        aliases.insert(alias.to_string(), version);
        self.write_aliases(model, &aliases)
    }

    /// Removes `alias`; removing an alias that does not exist is an error.
    pub fn remove_alias(&self, model: &str, alias: &str) -> Result<(), RegistryError> {
        let mut aliases = self.aliases(model)?;
        if aliases.remove(alias).is_none() {
            return Err(RegistryError::NotFound(format!(
                "model {model:?} alias {alias:?}"
            )));
        }
        self.write_aliases(model, &aliases)
    }

    fn write_aliases(&self, model: &str, aliases: &Aliases) -> Result<(), RegistryError> {
        let dir = self.model_dir(model)?;
        let tmp = dir.join(format!(".{ALIASES}.{}.tmp", std::process::id()));
        let json = serde_json::to_vec_pretty(aliases).expect("aliases serialize");
        write_synced(&tmp, &json)?;
        let path = dir.join(ALIASES);
        fs::rename(&tmp, &path).map_err(|e| RegistryError::io(&path, e))
    }

    fn model_dir(&self, model: &str) -> Result<PathBuf, RegistryError> {
        check_name(model).map_err(|_| RegistryError::NotFound(format!("model {model:?}")))?;
        Ok(self.root.join(model))
    }
}

fn read_verified(path: &Path, entry: &FileEntry) -> Result<Vec<u8>, RegistryError> {
    let bytes = fs::read(path).map_err(|e| RegistryError::io(path, e))?;
    if bytes.len() as u64 != entry.size {
        return Err(RegistryError::SizeMismatch {
            path: path.to_path_buf(),
            expected: entry.size,
            actual: bytes.len() as u64,
        });
    }
    let actual = sha256_hex(&bytes);
    if !actual.eq_ignore_ascii_case(&entry.sha256) {
        return Err(RegistryError::DigestMismatch {
            path: path.to_path_buf(),
            expected: entry.sha256.clone(),
            actual,
        });
    }
    Ok(bytes)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let mut f = fs::File::create(path).map_err(|e| RegistryError::io(path, e))?;
    f.write_all(bytes).map_err(|e| RegistryError::io(path, e))?;
    f.sync_all().map_err(|e| RegistryError::io(path, e))
}

/// Model and alias names: ASCII letters, digits, `-`, `_`, `.`; not starting with `.`.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name {name:?}: use letters, digits, '-', '_', '.' (not leading)"
        ))
    }
}

fn check_file_name(name: &str) -> Result<(), String> {
    check_name(name).map_err(|_| format!("invalid file name {name:?} in manifest"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FeatureKind, FeatureSpec, TensorSpec};

    fn signature_bytes() -> Vec<u8> {
        let sig = Signature {
            inputs: vec![FeatureSpec {
                name: "x".into(),
                dtype: "FP32".into(),
                shape: vec![-1],
                kind: FeatureKind::Numeric,
                vocab: None,
            }],
            tensor: TensorSpec {
                name: "input".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 1],
            },
            outputs: vec![TensorSpec {
                name: "probability".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 1],
            }],
        };
        serde_json::to_vec(&sig).unwrap()
    }

    fn request(model: &str, payload: &[u8]) -> PublishRequest {
        PublishRequest {
            model: model.into(),
            files: vec![
                ("model.onnx".into(), payload.to_vec()),
                ("signature.json".into(), signature_bytes()),
            ],
            lineage: serde_json::json!({"tool": "test"}),
            metrics: serde_json::Value::Null,
        }
    }

    #[test]
    fn publish_resolve_fetch() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = DirRegistry::create(tmp.path()).unwrap();
        assert_eq!(reg.publish(&request("m", b"one")).unwrap(), 1);
        assert_eq!(reg.publish(&request("m", b"two")).unwrap(), 2);
        reg.set_alias("m", "champion", 1).unwrap();
        assert_eq!(reg.models().unwrap(), vec!["m".to_string()]);
        assert_eq!(reg.versions("m").unwrap(), vec![1, 2]);
        let v = reg.fetch_ref("m", &"champion".parse().unwrap()).unwrap();
        assert_eq!((v.version, v.model_bytes.as_slice()), (1, &b"one"[..]));
        assert_eq!(v.manifest.files["model.onnx"].sha256, sha256_hex(b"one"));
        let v = reg.fetch_ref("m", &VersionRef::Number(2)).unwrap();
        assert_eq!(v.model_bytes, b"two");
        // No staging directory is left behind.
        let leftovers: Vec<_> = fs::read_dir(tmp.path().join("m/versions"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn digest_mismatch_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = DirRegistry::create(tmp.path()).unwrap();
        reg.publish(&request("m", b"abc")).unwrap();
        fs::write(tmp.path().join("m/versions/1/model.onnx"), b"abd").unwrap();
        let err = reg.fetch("m", 1).unwrap_err();
        assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
        assert!(err.to_string().contains("model.onnx"), "{err}");
        fs::write(tmp.path().join("m/versions/1/model.onnx"), b"abcd").unwrap();
        let err = reg.fetch("m", 1).unwrap_err();
        assert!(matches!(err, RegistryError::SizeMismatch { .. }), "{err}");
    }

    #[test]
    fn unknowns_are_not_found() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = DirRegistry::create(tmp.path()).unwrap();
        reg.publish(&request("m", b"abc")).unwrap();
        for err in [
            reg.resolve("m", &"champion".parse().unwrap()).unwrap_err(),
            reg.resolve("m", &VersionRef::Number(9)).unwrap_err(),
            reg.resolve("nope", &VersionRef::Number(1)).unwrap_err(),
            reg.fetch("m", 5).unwrap_err(),
            reg.fetch("../etc", 1).unwrap_err(),
            reg.set_alias("m", "champion", 7).unwrap_err(),
        ] {
            assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
        }
    }

    #[test]
    fn malformed_inputs_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = DirRegistry::create(tmp.path()).unwrap();
        let mut bad = request("m", b"x");
        bad.files.retain(|(n, _)| n != "signature.json");
        assert!(matches!(
            reg.publish(&bad).unwrap_err(),
            RegistryError::Malformed { .. }
        ));
        let mut bad = request("m", b"x");
        bad.files[1].1 = b"{\"inputs\": []}".to_vec();
        assert!(
            reg.publish(&bad)
                .unwrap_err()
                .to_string()
                .contains("signature.json")
        );
        assert!(reg.publish(&request("../x", b"x")).is_err());
        reg.publish(&request("m", b"x")).unwrap();
        fs::write(tmp.path().join("m/versions/1/manifest.json"), b"{").unwrap();
        let err = reg.fetch("m", 1).unwrap_err();
        assert!(err.to_string().contains("manifest.json"), "{err}");
        assert!(reg.set_alias("m", "7", 1).is_err());
    }

    #[test]
    fn aliases_move_and_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = DirRegistry::create(tmp.path()).unwrap();
        reg.publish(&request("m", b"1")).unwrap();
        reg.publish(&request("m", b"2")).unwrap();
        reg.set_alias("m", "champion", 1).unwrap();
        reg.set_alias("m", "canary", 2).unwrap();
        reg.set_alias("m", "champion", 2).unwrap();
        assert_eq!(reg.aliases("m").unwrap().get("champion"), Some(&2));
        reg.remove_alias("m", "canary").unwrap();
        assert!(reg.remove_alias("m", "canary").is_err());
        assert_eq!(reg.aliases("m").unwrap().len(), 1);
    }
}
