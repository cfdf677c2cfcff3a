//! vane-protocol's tests: worked examples of every codec, and property tests checking the
//! one-pass decoders against the reference (pre-rewrite) decoder.

mod decode;
mod equivalence;
mod fixture;
mod reference;
mod tensors;
