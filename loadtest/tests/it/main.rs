//! Integration tests: the real `vane-loadtest` binary against in-process test servers with
//! known latency behaviour, and against the real `vane-server`.

mod canary;
mod cli;
mod honest;
mod util;
