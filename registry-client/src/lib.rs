//! `vane-registry`: the model-version contract and the registry that stores versions.
//!
//! A *model version* is an immutable directory of files — `model.onnx`, `signature.json`,
//! optionally `profile.json` — described by a [`Manifest`] that pins every file's sha256 and
//! size. Aliases (`champion`, `canary`, …) point at version numbers in `aliases.json`.
//!
//! Principal types:
//! - [`DirRegistry`]: the embedded directory backend (read side, atomic publish, alias moves).
//! - [`Manifest`], [`Signature`], [`FeatureSpec`]: the on-disk contract (`../shared/design.md`).
//! - [`ModelVersion`]: a version whose files were read and verified; the only way the server
//!   gets model bytes, so unverified bytes are never loaded.
//! - [`VersionRef`]: "which version" — an alias or a number.
//! - [`RegistryError`]: typed failures (not found, digest mismatch, malformed, I/O).

mod dir;
mod error;
mod types;

pub use dir::{DirRegistry, PublishRequest};
pub use error::RegistryError;
pub use types::{
    Aliases, FeatureKind, FeatureSpec, FileEntry, Manifest, ModelVersion, Signature, TensorSpec,
    VersionRef, rfc3339_utc, sha256_hex,
};
