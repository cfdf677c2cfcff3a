use std::path::PathBuf;

/// Everything that can go wrong reading or writing a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A model, alias or version that does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A file whose bytes do not hash to what the manifest says.
    #[error("digest mismatch for {path}: expected sha256 {expected}, got {actual}")]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// A file whose size differs from the manifest (checked before hashing).
    #[error("size mismatch for {path}: manifest says {expected} bytes, file has {actual}")]
    SizeMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    /// A manifest, signature, alias file or name that does not parse or breaks the contract.
    #[error("malformed {path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
    /// A remote registry did not answer (after retries), or answered with a server error.
    #[error("registry {location} unreachable: {reason}")]
    Unreachable { location: String, reason: String },
    /// The backend cannot write (static HTTP), or the operation is not supported there.
    #[error("read-only registry: {0}")]
    ReadOnly(String),
    /// A request that makes no sense (bad weight, bad name).
    #[error("{0}")]
    Invalid(String),
    /// The filesystem failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            return RegistryError::NotFound(path.into().display().to_string());
        }
        RegistryError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        RegistryError::Malformed {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
