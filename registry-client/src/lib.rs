//! `vane-registry`: the model-version contract and the registries that store versions.
//!
//! A *model version* is an immutable directory of files — `model.onnx`, `signature.json`,
//! optionally `profile.json` — described by a [`Manifest`] that pins every file's sha256 and
//! size. Aliases (`champion`, `canary`, …) point at version numbers.
//!
//! Principal types:
//! - [`Registry`] / [`RegistryWriter`]: what every backend implements; [`TrafficPolicy`]
//!   (champion, canary + weight, shadow), [`TrafficSettings`], and the rollout operations
//!   [`set_canary`], [`promote`], [`rollback`] built on the traits.
//! - Backends: [`DirRegistry`] (a local directory: atomic publish, alias moves, `index.json`),
//!   [`HttpRegistry`] (the same layout served by any web server; read-only, conditional GETs
//!   for polling) and [`MlflowRegistry`] (an MLflow model registry over its REST API and
//!   artifact proxy). [`open_registry`] / [`open_writer`] pick one from a spec string
//!   ([`RegistrySpec`]); [`RemoteOptions`] / [`RetryPolicy`] tune the remote ones.
//! - [`VersionCache`]: where remote backends keep verified copies; entries are re-verified
//!   before reuse.
//! - [`GraphSignature`]: a graph's inputs and outputs read from `model.onnx` (a `prost`
//!   decoding of the few `onnx.proto` messages needed; no inference engine).
//! - [`Manifest`], [`Signature`], [`FeatureSpec`], [`Profile`] / [`FeatureProfile`]: the
//!   on-disk contract (`../shared/design.md`).
//! - [`ModelVersion`]: a version whose files were read and verified; the only way the server
//!   gets model bytes, so unverified bytes are never loaded.
//! - [`VersionRef`]: "which version" — an alias or a number.
//! - [`RegistryError`]: typed failures (not found, digest mismatch, malformed, unreachable,
//!   read-only, invalid, I/O).
//! - [`cli`]: the `vane-registry` command line (`publish`, `alias`, `list`, `show`, `canary`,
//!   `promote`, `rollback`).

mod cache;
pub mod cli;
mod dir;
mod error;
mod http;
mod mlflow;
mod onnx;
mod open;
mod registry;
mod transport;
mod types;
mod version;

pub use cache::{VersionCache, location_id};
pub use dir::{DirRegistry, INDEX, IndexFile, PublishRequest};
pub use error::RegistryError;
pub use http::HttpRegistry;
pub use mlflow::{
    MLFLOW_ARTIFACT_DIR, MLFLOW_EXPERIMENT, MlflowRegistry, TAG_CANARY_WEIGHT,
    TAG_CHAMPION_HISTORY, TAG_MANIFEST_SHA256, TAG_ONNX_SHA256,
};
pub use onnx::{GraphError, GraphSignature, oip_datatype};
pub use open::{RegistrySpec, open_registry, open_writer};
pub use registry::{
    CANARY, CHAMPION, Registry, RegistryWriter, Rollback, SHADOW, TrafficPolicy, TrafficSettings,
    promote, rollback, set_canary,
};
pub use transport::{RemoteOptions, RetryPolicy};
pub use types::{
    Aliases, FeatureKind, FeatureProfile, FeatureSpec, FileEntry, Manifest, ModelVersion,
    MonitoredFeature, OnlineKey, OnlineSpec, OnlineView, PROFILE_MAX_SAMPLE,
    PROFILE_SHARE_TOLERANCE, Profile, Signature, TensorSpec, VersionRef, rfc3339_utc, sha256_hex,
};
