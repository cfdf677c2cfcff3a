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
//! - [`rng::SplitMix64`] (and its step [`rng::splitmix64`], the entity hash's mix) and
//!   [`math::sigmoid`]: the seeded generator and the helpers the rest shares; the generator keeps
//!   model bytes from ever changing
//!   between runs.
//! - [`train`]: [`train::train`] fits logistic regression and gradient-boosted trees on Arrow
//!   batches ([`train::TrainSpec`] → [`train::TrainReport`]: models, metrics, signature,
//!   reference profile); [`train::publish`] writes a registry version.
//! - The feature store's batch side, over a [`vane_online::repo::FeatureRepo`]:
//!   [`datagen::generate`] writes the synthetic credit-risk world (Parquet, optional drift);
//!   [`features::get_historical_features`] / [`features::OfflineStore`] are the offline store
//!   and Feast-compatible point-in-time join; [`materialize::materialize`] copies the latest
//!   row per entity into a [`vane_online::OnlineStore`] (full, incremental, sharded).
//!   [`timeutil`] parses and prints the RFC 3339 timestamps they take.
//!
//! The binary `vane-models example --registry <dir>` calls `write_example_registry`;
//! `vane-models datagen` and `vane-models materialize` wrap the feature store modules.

pub mod credit;
pub mod datagen;
pub mod features;
pub mod materialize;
pub mod math;
pub mod onnx;
pub mod rng;
pub mod timeutil;
pub mod train;

pub use onnx::{
    Column, Dense, LogisticRegression, Mlp, Model, ModelError, Preprocess, Tree, TreeEnsemble,
    TreeNode,
};
