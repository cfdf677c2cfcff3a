//! Integration tests: the real `vane-server` binary on 127.0.0.1:0.

mod bad_input;
mod binary;
mod converters;
mod foreign;
mod hardening;
mod hotswap;
mod keys;
mod layers;
mod lifecycle;
mod mlflow;
mod online;
mod pipeline;
mod sampling;
mod scoring;
mod tensors;
mod triton_client;
mod util;
