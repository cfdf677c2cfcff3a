//! What every backend does with a version's files: validate a publish request, build the
//! manifest, verify bytes against it and assemble the [`ModelVersion`] — so the directory,
//! static HTTP and MLflow backends (and the local cache) apply one contract.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::dir::PublishRequest;
use crate::error::RegistryError;
use crate::onnx::GraphSignature;
use crate::types::{
    FileEntry, Manifest, ModelVersion, Profile, Signature, rfc3339_utc, sha256_hex,
};

pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const MODEL: &str = "model.onnx";
pub(crate) const SIGNATURE: &str = "signature.json";
pub(crate) const PROFILE: &str = "profile.json";

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Model and alias names: ASCII letters, digits, `-`, `_`, `.`; not starting with `.`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
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

pub(crate) fn check_file_name(name: &str) -> Result<(), String> {
    check_name(name).map_err(|_| format!("invalid file name {name:?} in manifest"))
}

/// An alias must be a valid name and must not look like a version number.
pub(crate) fn check_alias(alias: &str) -> Result<(), RegistryError> {
    check_name(alias).map_err(RegistryError::Invalid)?;
    if alias.parse::<u64>().is_ok() {
        return Err(RegistryError::Invalid(format!(
            "alias {alias:?} cannot be a number"
        )));
    }
    Ok(())
}

/// Checks a publish request before anything is written: the name, the required files, file
/// names, and that `signature.json` (and `profile.json`, when present) parse and validate.
/// `label` is where errors point (the registry root or URL).
///
/// The graph's signature is read from `model.onnx`: a version without `signature.json` gets
/// one derived from the graph, and a hand-written one is checked against the graph and
/// completed with it. The returned request carries that `signature.json`.
pub(crate) fn validate_publish<'a>(
    req: &'a PublishRequest,
    label: &Path,
) -> Result<Cow<'a, PublishRequest>, RegistryError> {
    check_name(&req.model).map_err(|r| RegistryError::malformed(label, r))?;
    let names: Vec<&str> = req.files.iter().map(|(n, _)| n.as_str()).collect();
    if !names.contains(&MODEL) {
        return Err(RegistryError::malformed(
            label,
            format!("publish needs {MODEL}"),
        ));
    }
    let mut signature = None;
    let mut profile = None;
    let mut model = &[][..];
    for (i, (name, bytes)) in req.files.iter().enumerate() {
        check_file_name(name).map_err(|r| RegistryError::malformed(label, r))?;
        if names[..i].contains(&name.as_str()) {
            return Err(RegistryError::malformed(
                label,
                format!("{name} is given twice"),
            ));
        }
        match name.as_str() {
            MANIFEST => {
                return Err(RegistryError::malformed(
                    label,
                    "manifest.json is written by publish",
                ));
            }
            SIGNATURE => signature = Some(parse_signature(bytes, Path::new(SIGNATURE))?),
            PROFILE => profile = Some(parse_profile(bytes, Path::new(PROFILE))?),
            MODEL => model = bytes,
            _ => {}
        }
    }
    let (signature, changed) = match (signature, GraphSignature::from_onnx(model)) {
        (None, Ok(graph)) => (Signature::from_graph(graph), true),
        (None, Err(e)) => {
            return Err(RegistryError::malformed(
                Path::new(MODEL),
                format!("{e}; without signature.json, publish reads the signature from the graph"),
            ));
        }
        (Some(sig), Ok(graph)) => {
            if sig
                .graph
                .as_ref()
                .is_some_and(|declared| *declared != graph)
            {
                return Err(RegistryError::malformed(
                    Path::new(SIGNATURE),
                    "its graph section disagrees with model.onnx; remove the section and publish again",
                ));
            }
            sig.check_graph(&graph).map_err(|r| {
                RegistryError::malformed(
                    Path::new(SIGNATURE),
                    format!("{r} (checked against model.onnx)"),
                )
            })?;
            let changed = sig.graph.is_none();
            (
                Signature {
                    graph: Some(graph),
                    ..sig
                },
                changed,
            )
        }
        // A graph that cannot be read: the hand-written signature stands alone (the server
        // still refuses the bytes at load, naming the backend's reason).
        (Some(sig), Err(e)) => {
            tracing::warn!(error = %e, "model.onnx could not be read; publishing signature.json unchecked");
            (sig, false)
        }
    };
    if let Some(profile) = profile {
        profile
            .check_against(&signature)
            .map_err(|r| RegistryError::malformed(Path::new(PROFILE), r))?;
    }
    if !changed {
        return Ok(Cow::Borrowed(req));
    }
    let json = serde_json::to_vec_pretty(&signature).expect("signature serializes");
    let mut req = req.clone();
    req.files.retain(|(n, _)| n != SIGNATURE);
    req.files.push((SIGNATURE.to_string(), json));
    req.files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Cow::Owned(req))
}

/// Digest and size of every file of a publish request.
pub(crate) fn file_entries(req: &PublishRequest) -> BTreeMap<String, FileEntry> {
    req.files
        .iter()
        .map(|(name, bytes)| {
            let entry = FileEntry {
                sha256: sha256_hex(bytes),
                size: bytes.len() as u64,
            };
            (name.clone(), entry)
        })
        .collect()
}

/// The manifest of version `version` of a publish request, and its JSON bytes.
pub(crate) fn build_manifest(
    req: &PublishRequest,
    files: &BTreeMap<String, FileEntry>,
    version: u64,
    now_secs: u64,
) -> (Manifest, Vec<u8>) {
    let manifest = Manifest {
        name: req.model.clone(),
        version,
        created_at: rfc3339_utc(now_secs),
        files: files.clone(),
        lineage: req.lineage.clone(),
        metrics: req.metrics.clone(),
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    (manifest, json)
}

/// Parses `manifest.json` of `model`/`version` and checks it describes that version, lists
/// the required files and only plain file names. `path` is where errors point.
pub(crate) fn parse_manifest(
    bytes: &[u8],
    path: &Path,
    model: &str,
    version: u64,
) -> Result<Manifest, RegistryError> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| RegistryError::malformed(path, e))?;
    if manifest.name != model || manifest.version != version {
        return Err(RegistryError::malformed(
            path,
            format!(
                "manifest is for {}/{}, found at {model}/{version}",
                manifest.name, manifest.version
            ),
        ));
    }
    if !manifest.files.contains_key(MODEL) {
        return Err(RegistryError::malformed(
            path,
            format!("manifest does not list {MODEL}"),
        ));
    }
    for name in manifest.files.keys() {
        check_file_name(name).map_err(|r| RegistryError::malformed(path, r))?;
        if name == MANIFEST {
            return Err(RegistryError::malformed(path, "manifest lists itself"));
        }
    }
    Ok(manifest)
}

/// Checks `bytes` against a manifest entry: size first, then sha256. `path` (a file or a URL)
/// is named in the error.
pub(crate) fn verify(path: &Path, entry: &FileEntry, bytes: &[u8]) -> Result<(), RegistryError> {
    if bytes.len() as u64 != entry.size {
        return Err(RegistryError::SizeMismatch {
            path: path.to_path_buf(),
            expected: entry.size,
            actual: bytes.len() as u64,
        });
    }
    let actual = sha256_hex(bytes);
    if !actual.eq_ignore_ascii_case(&entry.sha256) {
        return Err(RegistryError::DigestMismatch {
            path: path.to_path_buf(),
            expected: entry.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

pub(crate) fn parse_signature(bytes: &[u8], path: &Path) -> Result<Signature, RegistryError> {
    let sig: Signature =
        serde_json::from_slice(bytes).map_err(|e| RegistryError::malformed(path, e))?;
    sig.validate()
        .map_err(|r| RegistryError::malformed(path, r))?;
    Ok(sig)
}

pub(crate) fn parse_profile(bytes: &[u8], path: &Path) -> Result<Profile, RegistryError> {
    let profile: Profile =
        serde_json::from_slice(bytes).map_err(|e| RegistryError::malformed(path, e))?;
    profile
        .validate()
        .map_err(|r| RegistryError::malformed(path, r))?;
    Ok(profile)
}

/// Parses and validates `signature.json` and `profile.json` of a version's files.
/// `label(name)` says where a file came from, for errors.
pub(crate) fn parse_meta(
    files: &BTreeMap<String, Vec<u8>>,
    label: &dyn Fn(&str) -> PathBuf,
) -> Result<(Signature, Option<Profile>), RegistryError> {
    let signature = match (files.get(SIGNATURE), files.get(MODEL)) {
        (Some(bytes), _) => parse_signature(bytes, &label(SIGNATURE))?,
        // A version published without Vane (e.g. MLflow's onnx flavor): the graph says it all.
        (None, Some(model)) => Signature::from_graph(
            GraphSignature::from_onnx(model)
                .map_err(|e| RegistryError::malformed(label(MODEL), e))?,
        ),
        (None, None) => return Err(RegistryError::malformed(label(MODEL), "missing")),
    };
    let profile = match files.get(PROFILE) {
        Some(bytes) => {
            let path = label(PROFILE);
            let profile = parse_profile(bytes, &path)?;
            profile
                .check_against(&signature)
                .map_err(|r| RegistryError::malformed(&path, r))?;
            Some(profile)
        }
        None => None,
    };
    if !files.contains_key(MODEL) {
        return Err(RegistryError::malformed(label(MODEL), "missing"));
    }
    Ok((signature, profile))
}

/// Builds a [`ModelVersion`] from files that were already verified against `manifest`.
/// `label(name)` says where a file came from, for errors.
pub(crate) fn assemble(
    dir: PathBuf,
    manifest: Manifest,
    files: BTreeMap<String, Vec<u8>>,
    label: impl Fn(&str) -> PathBuf,
) -> Result<ModelVersion, RegistryError> {
    let meta = parse_meta(&files, &label)?;
    Ok(with_meta(dir, manifest, files, meta))
}

/// Builds a [`ModelVersion`] from verified files and their parsed metadata.
pub(crate) fn with_meta(
    dir: PathBuf,
    manifest: Manifest,
    mut files: BTreeMap<String, Vec<u8>>,
    (signature, profile): (Signature, Option<Profile>),
) -> ModelVersion {
    let model_bytes = files.remove(MODEL).unwrap_or_default();
    // Served as its signature describes it (a classifier's ZipMap as its probability tensor).
    let model_bytes = match crate::onnx::unzip_class_maps(&model_bytes) {
        Ok(Some(unzipped)) => unzipped,
        _ => model_bytes,
    };
    ModelVersion {
        name: manifest.name.clone(),
        version: manifest.version,
        dir,
        manifest,
        signature,
        model_bytes,
        profile,
    }
}
