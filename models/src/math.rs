//! Numeric helpers the trainer and the data generator share.

/// `1 / (1 + e^-z)` in `f64`: the trainer's and the generator's (`onnx::sigmoid` is the `f32`
/// oracle of the exported graphs, in their order of operations).
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}
