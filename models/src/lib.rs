//! `vane-models`: ONNX models written from Rust, and the example credit-risk models.
//!
//! Every model takes one `float32` tensor `input` `[N, F]` (one column per signature input;
//! categorical features as vocab codes) and returns `probability` `[N, 1]` = P(default).
//!
//! Principal types:
//! - [`onnx::Preprocess`] / [`onnx::Column`]: standardization and one-hot expansion written
//!   with plain ONNX ops (both ONNX Runtime and tract run them; `Scaler`/`OneHotEncoder` do
//!   not run in tract).
//! - [`onnx::LogisticRegression`], [`onnx::Mlp`] (layers of [`onnx::Dense`]) and
//!   [`onnx::TreeEnsemble`] (of [`onnx::Tree`]s): each has `to_onnx() -> Vec<u8>` and a
//!   pure-Rust `predict` that is the oracle the runtimes are tested against; [`onnx::Model`]
//!   wraps any of them.
//! - [`credit`]: the 20-feature credit-risk domain — [`credit::signature`], deterministic
//!   [`credit::sample_rows`] / [`credit::sample_records`], the three example models and
//!   [`credit::write_example_registry`], which publishes them into a
//!   [`vane_registry::DirRegistry`].
//! - [`rng::SplitMix64`] (from `vane-features`, whose entity hash is its step) and
//!   [`math::sigmoid`]: the seeded generator keeps model bytes from ever changing between runs.
//! - [`train`]: [`train::train`] fits logistic regression and gradient-boosted trees on Arrow
//!   batches ([`train::TrainSpec`] → [`train::TrainReport`]: models, metrics, signature,
//!   reference profile); [`train::publish`] writes a registry version.
//! - [`datagen::generate`]: the synthetic credit-risk world (Parquet sources and their
//!   `features.toml`, optional drift) for the feature store in `vane-features` (repository,
//!   offline store and point-in-time join, materialize).
//!
//! The binary `vane-models` is the batch command line: `example`, `datagen`, `materialize`,
//! `join`, `train` (the last three over `vane-features`).

pub mod cli;
pub mod credit;
pub mod datagen;
pub mod math;
pub mod onnx;
pub mod train;

/// The seeded generator, shared with the feature store (whose entity hash is its step).
pub use vane_features::rng;

pub use onnx::{
    Column, Dense, LogisticRegression, Mlp, Model, ModelError, Preprocess, Tree, TreeEnsemble,
    TreeNode,
};
