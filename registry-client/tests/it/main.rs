//! Integration tests of `vane-registry`: the CLI against a directory registry, the static
//! HTTP backend against a real HTTP server, the MLflow backend against a real MLflow.

mod cli;
mod common;
mod http;
mod mlflow;
