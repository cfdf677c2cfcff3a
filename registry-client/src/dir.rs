//! The directory backend: `<root>/<model>/versions/<n>/…` plus `<root>/<model>/aliases.json`,
//! `<root>/<model>/traffic.json` and `<root>/index.json` (so a static HTTP mirror of the
//! directory can be listed without directory listings).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::RegistryError;
use crate::registry::{Registry, RegistryWriter, TrafficSettings};
use crate::types::{Aliases, FileEntry, Manifest, ModelVersion, VersionRef};
use crate::version::{
    self, MANIFEST, assemble, build_manifest, check_alias, check_name, file_entries,
    parse_manifest, validate_publish,
};

pub(crate) const ALIASES: &str = "aliases.json";
pub(crate) const TRAFFIC: &str = "traffic.json";
/// `<root>/index.json`: the model names and their versions, so a static HTTP mirror can be
/// listed.
pub const INDEX: &str = "index.json";

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

impl PublishRequest {
    /// A request from a directory ([`Self::from_dir`]) or from a lone ONNX file, published as
    /// `model.onnx` with its signature read from the graph.
    pub fn from_path(model: &str, path: &Path) -> Result<Self, RegistryError> {
        if !path.is_file() {
            return Self::from_dir(model, path);
        }
        let bytes = fs::read(path).map_err(|e| RegistryError::io(path, e))?;
        Ok(Self {
            model: model.to_string(),
            files: vec![(crate::version::MODEL.to_string(), bytes)],
            lineage: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
        })
    }

    /// A request for `model` with every regular file of `dir` (`model.onnx`,
    /// `signature.json`, optional `profile.json` and any others). Hidden files and a
    /// `manifest.json` (publish writes its own) are skipped; subdirectories are ignored.
    pub fn from_dir(model: &str, dir: &Path) -> Result<Self, RegistryError> {
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| RegistryError::io(dir, e))? {
            let entry = entry.map_err(|e| RegistryError::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with('.') || name == MANIFEST || !path.is_file() {
                continue;
            }
            let bytes = fs::read(&path).map_err(|e| RegistryError::io(&path, e))?;
            files.push((name, bytes));
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self {
            model: model.to_string(),
            files,
            lineage: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
        })
    }
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
        Registry::resolve(self, model, which)
    }

    fn version_dir(&self, model: &str, version: u64) -> Result<PathBuf, RegistryError> {
        let dir = self
            .model_dir(model)?
            .join("versions")
            .join(version.to_string());
        if !dir.is_dir() {
            return Err(RegistryError::NotFound(format!(
                "model {model:?} version {version}"
            )));
        }
        Ok(dir)
    }

    /// The manifest of one version (not verifying the files; [`DirRegistry::fetch`] does).
    pub fn manifest(&self, model: &str, version: u64) -> Result<Manifest, RegistryError> {
        let path = self.version_dir(model, version)?.join(MANIFEST);
        let bytes = fs::read(&path).map_err(|e| RegistryError::io(&path, e))?;
        parse_manifest(&bytes, &path, model, version)
    }

    /// Reads one version and verifies every file its manifest lists.
    pub fn fetch(&self, model: &str, version: u64) -> Result<ModelVersion, RegistryError> {
        let dir = self.version_dir(model, version)?;
        let manifest = self.manifest(model, version)?;
        let mut files = BTreeMap::new();
        for (name, entry) in &manifest.files {
            let path = dir.join(name);
            files.insert(name.clone(), read_verified(&path, entry)?);
        }
        let label = |name: &str| dir.join(name);
        assemble(dir.clone(), manifest, files, label)
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
        let req = &*validate_publish(req, &self.root.join(&req.model))?;
        let staging_root = self.root.join(&req.model).join("versions");
        fs::create_dir_all(&staging_root).map_err(|e| RegistryError::io(&staging_root, e))?;
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
        for (name, bytes) in &req.files {
            write_synced(&staging.join(name), bytes)?;
        }
        let files = file_entries(req);
        let mut version = self.versions(&req.model)?.last().copied().unwrap_or(0) + 1;
        loop {
            let (_, json) = build_manifest(req, &files, version, now_secs);
            write_synced(&staging.join(MANIFEST), &json)?;
            let target = versions_dir.join(version.to_string());
            if target.exists() {
                version += 1;
                continue;
            }
            match fs::rename(staging, &target) {
                Ok(()) => {
                    self.write_index()?;
                    return Ok(version);
                }
                // Another publisher took this number between our check and rename.
                Err(_) if target.exists() => version += 1,
                Err(e) => return Err(RegistryError::io(&target, e)),
            }
        }
    }

    /// Points `alias` at `version` (which must exist), atomically.
    pub fn set_alias(&self, model: &str, alias: &str, version: u64) -> Result<(), RegistryError> {
        check_alias(alias)?;
        self.resolve(model, &VersionRef::Number(version))?;
        let _lock = self.lock(model)?;
        let mut aliases = self.aliases(model)?;
        aliases.insert(alias.to_string(), version);
        self.write_aliases(model, &aliases)
    }

    /// Removes `alias`; removing an alias that does not exist is an error.
    pub fn remove_alias(&self, model: &str, alias: &str) -> Result<(), RegistryError> {
        let _lock = self.lock(model)?;
        let mut aliases = self.aliases(model)?;
        if aliases.remove(alias).is_none() {
            return Err(RegistryError::NotFound(format!(
                "model {model:?} alias {alias:?}"
            )));
        }
        self.write_aliases(model, &aliases)
    }

    /// `traffic.json` of `model` (defaults when it has none).
    pub fn traffic_settings(&self, model: &str) -> Result<TrafficSettings, RegistryError> {
        let path = self.model_dir(model)?.join(TRAFFIC);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| RegistryError::malformed(&path, e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.versions(model)?;
                Ok(TrafficSettings::default())
            }
            Err(e) => Err(RegistryError::io(&path, e)),
        }
    }

    /// Replaces `traffic.json` of `model`, atomically.
    pub fn set_traffic_settings(
        &self,
        model: &str,
        settings: &TrafficSettings,
    ) -> Result<(), RegistryError> {
        settings.validate()?;
        self.versions(model)?;
        let _lock = self.lock(model)?;
        let json = serde_json::to_vec_pretty(settings).expect("traffic settings serialize");
        self.replace(model, TRAFFIC, &json)
    }

    fn write_aliases(&self, model: &str, aliases: &Aliases) -> Result<(), RegistryError> {
        let json = serde_json::to_vec_pretty(aliases).expect("aliases serialize");
        self.replace(model, ALIASES, &json)
    }

    /// Writes `<model>/<name>` beside and renames it into place.
    fn replace(&self, model: &str, name: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let dir = self.model_dir(model)?;
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        write_synced(&tmp, bytes)?;
        let path = dir.join(name);
        fs::rename(&tmp, &path).map_err(|e| RegistryError::io(&path, e))
    }

    /// An exclusive lock on `<model>/.lock` for read-modify-write of the model's small files
    /// across processes; released on drop.
    fn lock(&self, model: &str) -> Result<fs::File, RegistryError> {
        lock_file(&self.model_dir(model)?.join(".lock"))
    }

    /// Rewrites `index.json` from the directory (every model and its versions), atomically,
    /// under the root lock. Publish calls it after each new version, so the index a static
    /// HTTP mirror serves always lists every completed version.
    pub fn write_index(&self) -> Result<(), RegistryError> {
        let _lock = lock_file(&self.root.join(".lock"))?;
        let mut index = IndexFile::default();
        for model in self.models()? {
            index.versions.insert(model.clone(), self.versions(&model)?);
            index.models.push(model);
        }
        let path = self.root.join(INDEX);
        let tmp = self
            .root
            .join(format!(".{INDEX}.{}.tmp", std::process::id()));
        write_synced(
            &tmp,
            &serde_json::to_vec_pretty(&index).expect("index serializes"),
        )?;
        fs::rename(&tmp, &path).map_err(|e| RegistryError::io(&path, e))
    }

    fn model_dir(&self, model: &str) -> Result<PathBuf, RegistryError> {
        check_name(model).map_err(|_| RegistryError::NotFound(format!("model {model:?}")))?;
        Ok(self.root.join(model))
    }
}

/// `index.json`: model names, sorted, and (since the HTTP backend) each model's versions.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexFile {
    pub models: Vec<String>,
    /// Model → published versions, ascending. Older indexes lack it; readers then probe.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, Vec<u64>>,
}

fn lock_file(path: &Path) -> Result<fs::File, RegistryError> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| RegistryError::io(path, e))?;
    f.lock().map_err(|e| RegistryError::io(path, e))?;
    Ok(f)
}

impl Registry for DirRegistry {
    fn location(&self) -> String {
        self.root.display().to_string()
    }
    fn models(&self) -> Result<Vec<String>, RegistryError> {
        DirRegistry::models(self)
    }
    fn versions(&self, model: &str) -> Result<Vec<u64>, RegistryError> {
        DirRegistry::versions(self, model)
    }
    fn aliases(&self, model: &str) -> Result<Aliases, RegistryError> {
        DirRegistry::aliases(self, model)
    }
    fn traffic_settings(&self, model: &str) -> Result<TrafficSettings, RegistryError> {
        DirRegistry::traffic_settings(self, model)
    }
    fn fetch(&self, model: &str, version: u64) -> Result<ModelVersion, RegistryError> {
        DirRegistry::fetch(self, model, version)
    }
    fn manifest(&self, model: &str, version: u64) -> Result<Manifest, RegistryError> {
        DirRegistry::manifest(self, model, version)
    }
}

impl RegistryWriter for DirRegistry {
    fn publish(&self, req: &PublishRequest) -> Result<u64, RegistryError> {
        DirRegistry::publish(self, req)
    }
    fn set_alias(&self, model: &str, alias: &str, version: u64) -> Result<(), RegistryError> {
        DirRegistry::set_alias(self, model, alias, version)
    }
    fn remove_alias(&self, model: &str, alias: &str) -> Result<(), RegistryError> {
        DirRegistry::remove_alias(self, model, alias)
    }
    fn set_traffic_settings(
        &self,
        model: &str,
        settings: &TrafficSettings,
    ) -> Result<(), RegistryError> {
        DirRegistry::set_traffic_settings(self, model, settings)
    }
}

fn read_verified(path: &Path, entry: &FileEntry) -> Result<Vec<u8>, RegistryError> {
    let bytes = fs::read(path).map_err(|e| RegistryError::io(path, e))?;
    version::verify(path, entry, &bytes)?;
    Ok(bytes)
}

pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let mut f = fs::File::create(path).map_err(|e| RegistryError::io(path, e))?;
    f.write_all(bytes).map_err(|e| RegistryError::io(path, e))?;
    f.sync_all().map_err(|e| RegistryError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FeatureSpec, Signature, TensorSpec, sha256_hex};

    fn signature_bytes() -> Vec<u8> {
        let sig = Signature {
            inputs: vec![FeatureSpec::numeric("x", "FP32")],
            tensor: Some(TensorSpec {
                name: "input".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 1],
            }),
            outputs: vec![TensorSpec {
                name: "probability".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 1],
            }],
            graph: None,
            online: None,
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
    fn a_bare_model_is_published_with_the_signature_of_its_graph() {
        use crate::onnx::tests::{model, tensor};
        let tmp = tempfile::tempdir().unwrap();
        let reg = DirRegistry::create(tmp.path().join("reg")).unwrap();
        let bytes = model(
            vec![tensor("x", 11, &[None, Some(4)])],
            vec![
                tensor("label", 7, &[None]),
                tensor("probabilities", 1, &[None, Some(2)]),
            ],
            &[],
        );
        let file = tmp.path().join("exported.onnx");
        fs::write(&file, &bytes).unwrap();
        let v = reg
            .publish(&PublishRequest::from_path("rf", &file).unwrap())
            .unwrap();
        let mv = reg.fetch_ref("rf", &VersionRef::Number(v)).unwrap();
        assert!(mv.signature.is_tensor_model());
        let graph = mv.signature.graph.as_ref().unwrap();
        assert_eq!(graph.inputs[0].datatype, "FP64");
        assert_eq!(graph.inputs[0].shape, [-1, 4]);
        assert_eq!(graph.outputs[0].datatype, "INT64");
        assert!(graph.batch);
        // The derived signature.json is a listed, verified file of the version.
        assert!(mv.manifest.files.contains_key("signature.json"));

        // A hand-written feature signature over a tensor the graph lacks is refused.
        let mut req = request("m", &bytes);
        let err = reg.publish(&req).unwrap_err().to_string();
        assert!(
            err.contains("\"input\" is not a graph input") && err.contains("model.onnx"),
            "{err}"
        );
        // One that agrees is completed with the graph.
        let ok = model(
            vec![tensor("input", 1, &[None, Some(1)])],
            vec![tensor("probability", 1, &[None, Some(1)])],
            &[],
        );
        req.files[0].1 = ok;
        let v = reg.publish(&req).unwrap();
        let mv = reg.fetch_ref("m", &VersionRef::Number(v)).unwrap();
        assert!(!mv.signature.is_tensor_model());
        assert_eq!(mv.signature.graph.unwrap().inputs[0].name, "input");
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
    fn canary_promote_and_rollback() {
        use crate::registry::{Rollback, TrafficPolicy, promote, rollback, set_canary};
        let tmp = tempfile::tempdir().unwrap();
        let reg = DirRegistry::create(tmp.path()).unwrap();
        for p in [b"1", b"2", b"3"] {
            reg.publish(&request("m", p)).unwrap();
        }
        reg.set_alias("m", "champion", 1).unwrap();
        set_canary(&reg, "m", 2, 0.1, false).unwrap();
        assert_eq!(
            Registry::policy(&reg, "m").unwrap(),
            TrafficPolicy {
                champion: Some(1),
                canary: Some(2),
                canary_weight: 0.1,
                shadow: None
            }
        );
        assert!(set_canary(&reg, "m", 2, 1.5, false).is_err());
        assert!(set_canary(&reg, "m", 9, 0.5, false).is_err());
        for shadow in [false, true] {
            let err = set_canary(&reg, "m", 1, 0.1, shadow).unwrap_err();
            assert!(err.to_string().contains("champion already"), "{err}");
        }
        assert_eq!(promote(&reg, "m").unwrap(), 2);
        let p = Registry::policy(&reg, "m").unwrap();
        assert_eq!(
            (p.champion, p.canary, p.canary_weight),
            (Some(2), None, 0.0)
        );
        set_canary(&reg, "m", 3, 0.0, true).unwrap();
        assert_eq!(Registry::policy(&reg, "m").unwrap().shadow, Some(3));
        assert_eq!(
            rollback(&reg, "m").unwrap(),
            Rollback::CanaryRemoved { champion: Some(2) }
        );
        assert_eq!(
            rollback(&reg, "m").unwrap(),
            Rollback::ChampionRestored { from: 2, to: 1 }
        );
        assert!(rollback(&reg, "m").is_err(), "no earlier champion");
        assert!(promote(&reg, "m").is_err(), "nothing to promote");
        // The pipeline's rollout: one candidate as canary and shadow; promoting it leaves no
        // shadow of the new champion. A shadow of another version stays.
        set_canary(&reg, "m", 2, 0.1, false).unwrap();
        set_canary(&reg, "m", 2, 0.0, true).unwrap();
        assert_eq!(promote(&reg, "m").unwrap(), 2);
        assert_eq!(
            Registry::policy(&reg, "m").unwrap(),
            TrafficPolicy {
                champion: Some(2),
                canary: None,
                canary_weight: 0.0,
                shadow: None
            }
        );
        set_canary(&reg, "m", 3, 0.1, false).unwrap();
        set_canary(&reg, "m", 1, 0.0, true).unwrap();
        assert_eq!(promote(&reg, "m").unwrap(), 3);
        assert_eq!(Registry::policy(&reg, "m").unwrap().shadow, Some(1));
        let index: IndexFile =
            serde_json::from_slice(&fs::read(tmp.path().join(INDEX)).unwrap()).unwrap();
        assert_eq!(index.models, vec!["m".to_string()]);
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

    fn profile_json(share: f64) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "rows": 10,
            "features": [{"kind": "numeric", "name": "x", "edges": [0.5],
                          "shares": [share, 0.5], "missing_share": 0.0, "sample": [0.1, 0.9]}],
            "score": {"kind": "numeric", "name": "score", "edges": [], "shares": [1.0],
                      "missing_share": 0.0}
        }))
        .unwrap()
    }

    #[test]
    fn profile_is_parsed_and_validated() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = DirRegistry::create(tmp.path()).unwrap();
        let mut req = request("m", b"w");
        req.files.push(("profile.json".into(), profile_json(0.5)));
        let v = reg.publish(&req).unwrap();
        let fetched = reg.fetch("m", v).unwrap();
        let profile = fetched.profile.expect("profile");
        assert_eq!(profile.rows, 10);
        assert_eq!(profile.features[0].name(), "x");
        assert!(profile.score.is_some());
        // Publishing a profile whose shares do not sum to 1 is refused, naming the file.
        let mut bad = request("m", b"w");
        bad.files.push(("profile.json".into(), profile_json(0.2)));
        let err = reg.publish(&bad).unwrap_err();
        assert!(matches!(err, RegistryError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("profile.json"), "{err}");
        // A profile that breaks the contract on disk (with a matching digest) is Malformed too.
        let dir = tmp.path().join("m/versions/1");
        let broken = profile_json(0.2);
        fs::write(dir.join("profile.json"), &broken).unwrap();
        let mut manifest: Manifest =
            serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        manifest.files.insert(
            "profile.json".into(),
            FileEntry {
                sha256: sha256_hex(&broken),
                size: broken.len() as u64,
            },
        );
        fs::write(
            dir.join("manifest.json"),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        let err = reg.fetch("m", 1).unwrap_err();
        assert!(matches!(err, RegistryError::Malformed { .. }), "{err}");
        assert!(
            err.to_string().contains("profile.json") && err.to_string().contains("sum to"),
            "{err}"
        );
    }

    #[test]
    fn index_lists_models_and_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = DirRegistry::create(tmp.path()).unwrap();
        reg.publish(&request("b", b"1")).unwrap();
        reg.publish(&request("a", b"1")).unwrap();
        reg.publish(&request("a", b"2")).unwrap();
        let index: IndexFile =
            serde_json::from_slice(&fs::read(tmp.path().join(INDEX)).unwrap()).unwrap();
        assert_eq!(index.models, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(index.versions["a"], vec![1, 2]);
        assert_eq!(index.versions["b"], vec![1]);
        // Indexes written before versions were recorded still parse.
        let old: IndexFile = serde_json::from_str(r#"{"models": ["a"]}"#).unwrap();
        assert!(old.versions.is_empty());
    }

    #[test]
    fn publish_request_from_dir_skips_manifest_and_hidden_files() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("model.onnx"), b"w").unwrap();
        fs::write(tmp.path().join("signature.json"), signature_bytes()).unwrap();
        fs::write(tmp.path().join("manifest.json"), b"{}").unwrap();
        fs::write(tmp.path().join(".DS_Store"), b"x").unwrap();
        fs::write(tmp.path().join("README.txt"), b"notes").unwrap();
        fs::create_dir(tmp.path().join("sub")).unwrap();
        let req = PublishRequest::from_dir("m", tmp.path()).unwrap();
        let names: Vec<&str> = req.files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["README.txt", "model.onnx", "signature.json"]);
    }
}
