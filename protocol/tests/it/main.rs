//! vane-protocol's tests: worked examples of every codec, and property tests checking the
//! one-pass decoders against the reference (pre-rewrite) decoder.

mod decode;
mod equivalence;
mod fast_path;
mod fixture;
mod reference;
mod tensors;
