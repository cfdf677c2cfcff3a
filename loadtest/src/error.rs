//! Typed errors of the load tester.

use std::io;

/// A configuration the load tester cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error("threshold {0:?}: {1}")]
    Threshold(String, String),
    #[error("{0}: {1}")]
    Io(String, #[source] io::Error),
}

/// Why a run could not be set up or its results not written.
#[derive(Debug, thiserror::Error)]
pub enum LoadtestError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The target answered the setup requests (model metadata, alias resolution) wrongly or not
    /// at all: the run cannot start, and a verdict is "could not judge".
    #[error("target {target}: {message}")]
    Target { target: String, message: String },
    #[error("dataset: {0}")]
    Data(String),
    #[error(transparent)]
    Table(#[from] vane_tabular::TableError),
    #[error("writing {0}: {1}")]
    Write(String, #[source] io::Error),
    #[error("plotting {0}: {1}")]
    Plot(String, String),
    #[error("starting the load threads: {0}")]
    Runtime(#[source] io::Error),
}
