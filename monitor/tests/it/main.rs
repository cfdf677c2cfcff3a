//! Integration tests: the real `vane-monitor` binary (and `vane-server`, `vane-models`) on
//! 127.0.0.1:0.

mod batch;
mod deploy;
mod e2e;
mod ingest;
mod outage;
mod tensors;
mod util;
