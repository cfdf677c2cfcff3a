//! Integration tests of `vane-models`: every generated graph runs in tract and ONNX Runtime and
//! matches the Rust oracle; the example registry and the `vane-models` binary work end to end.

mod cli;
mod examples;
mod feature_store;
mod roundtrip;
mod runtimes;
mod train;
