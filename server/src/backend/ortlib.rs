//! Finding ONNX Runtime's shared library (we load it at run time, never link it).
//!
//! Order: `--ort-lib` / `ORT_DYLIB_PATH`, Vane's cache (filled by `scripts/setup-ort.sh`),
//! then an installed Python `onnxruntime` package.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The ONNX Runtime version Vane is built against (`ort`'s `api-31`).
pub const ORT_VERSION: &str = "1.31.1";

/// How to get the library, for error messages.
pub const SETUP_HINT: &str = "run scripts/setup-ort.sh (fetches the onnxruntime==1.31.1 wheel from PyPI into ~/.cache/vane/onnxruntime/) or pass --ort-lib / ORT_DYLIB_PATH";

/// Where the library was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Explicit,
    Cache,
    Python,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Explicit => "--ort-lib/ORT_DYLIB_PATH",
            Source::Cache => "vane cache",
            Source::Python => "python onnxruntime package",
        })
    }
}

/// Vane's cache directory for the library: `$VANE_CACHE_DIR` or `$XDG_CACHE_HOME/vane` or
/// `~/.cache/vane`, then `onnxruntime/<version>/`.
pub fn cache_dir() -> Option<PathBuf> {
    let root = std::env::var_os("VANE_CACHE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(|p| PathBuf::from(p).join("vane"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("vane"))
        })?;
    Some(root.join("onnxruntime").join(ORT_VERSION))
}

/// Finds the library. An explicit path that does not exist is an error, not a fall-through:
/// the operator asked for that file.
pub fn discover(explicit: Option<&Path>) -> Result<(PathBuf, Source), String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok((p.to_path_buf(), Source::Explicit))
        } else {
            Err(format!(
                "ONNX Runtime library {} does not exist; {SETUP_HINT}",
                p.display()
            ))
        };
    }
    if let Some(dir) = cache_dir() {
        let lib = dir.join(format!("libonnxruntime.so.{ORT_VERSION}"));
        if lib.is_file() {
            return Ok((lib, Source::Cache));
        }
    }
    if let Some(lib) = python_package_lib() {
        return Ok((lib, Source::Python));
    }
    Err(format!("ONNX Runtime library not found; {SETUP_HINT}"))
}

/// `site-packages/onnxruntime/capi/libonnxruntime.so.<version>` of the first `python3` on
/// PATH, located without importing the package (which is slow).
fn python_package_lib() -> Option<PathBuf> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.util as u; s = u.find_spec('onnxruntime'); print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let capi = Path::new(dir.trim()).join("capi");
    if dir.trim().is_empty() {
        return None;
    }
    newest_versioned_lib(&capi)
}

/// The highest-versioned `libonnxruntime.so.1.N.x` in `dir` with N ≥ 31.
fn newest_versioned_lib(dir: &Path) -> Option<PathBuf> {
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(ver) = name.strip_prefix("libonnxruntime.so.") else {
            continue;
        };
        let parts: Option<Vec<u32>> = ver.split('.').map(|p| p.parse().ok()).collect();
        let Some(parts) = parts else { continue };
        if parts.len() < 2 || parts[0] != 1 || parts[1] < 31 {
            continue;
        }
        if best.as_ref().is_none_or(|(b, _)| parts > *b) {
            best = Some((parts, entry.path()));
        }
    }
    best.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_missing_path_is_an_error_with_a_hint() {
        let err = discover(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
        assert!(
            err.contains("/nonexistent/libonnxruntime.so") && err.contains("setup-ort.sh"),
            "{err}"
        );
    }

    #[test]
    fn explicit_existing_path_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let lib = tmp.path().join("libonnxruntime.so.1.31.1");
        std::fs::write(&lib, b"").unwrap();
        assert_eq!(discover(Some(&lib)).unwrap(), (lib, Source::Explicit));
    }

    #[test]
    fn picks_newest_compatible_version() {
        let tmp = tempfile::tempdir().unwrap();
        for name in [
            "libonnxruntime.so.1.30.0",
            "libonnxruntime.so.1.31.1",
            "libonnxruntime.so.1.32.0",
            "libonnxruntime.so.1.32.x",
            "libonnxruntime_providers_shared.so",
        ] {
            std::fs::write(tmp.path().join(name), b"").unwrap();
        }
        assert_eq!(
            newest_versioned_lib(tmp.path()).unwrap(),
            tmp.path().join("libonnxruntime.so.1.32.0")
        );
        std::fs::remove_file(tmp.path().join("libonnxruntime.so.1.32.0")).unwrap();
        std::fs::remove_file(tmp.path().join("libonnxruntime.so.1.31.1")).unwrap();
        assert!(newest_versioned_lib(tmp.path()).is_none());
    }
}
