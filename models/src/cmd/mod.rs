//! Subcommands of the `vane-models` binary; each module owns its arguments and `run`.

pub mod datagen;
pub mod join;
pub mod materialize;
pub mod train;
