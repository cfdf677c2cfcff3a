//! The `vane-models` command line ([`Cli`], [`run`]), shared by the `vane-models` binary and
//! the `vane` CLI (`vane features …`, `vane train`); each module owns one subcommand's
//! arguments and `run`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub mod datagen;
pub mod join;
pub mod materialize;
pub mod read;
pub mod train;

/// Builds and publishes Vane's example models.
#[derive(Debug, Parser)]
#[command(name = "vane-models", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish the example credit-risk models (logistic regression, MLP, tree ensemble) into a
    /// directory registry and point each one's `champion` alias at the new version.
    Example {
        /// Registry root directory (created if missing).
        #[arg(long, env = "VANE_REGISTRY")]
        registry: PathBuf,
    },
    /// Publish a seeded (untrained) MLP of any size over the credit-risk signature, e.g. to
    /// measure how batching pays off as per-row compute grows. Moves `champion` to it.
    Mlp {
        /// Registry root directory (created if missing).
        #[arg(long, env = "VANE_REGISTRY")]
        registry: PathBuf,
        /// Model name in the registry.
        #[arg(long)]
        name: String,
        /// Hidden units per layer.
        #[arg(long, default_value_t = 256)]
        width: usize,
        /// Hidden layers.
        #[arg(long, default_value_t = 4)]
        depth: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Generate the synthetic credit-risk world (Parquet), optionally with injected drift.
    Datagen(datagen::Args),
    /// Copy the latest feature values per entity from the offline store into the online store.
    Materialize(materialize::Args),
    /// Train logistic regression and gradient-boosted trees, export ONNX, publish.
    Train(train::Args),
    /// Read the online store's rows for some entities (one JSON line each).
    Read(read::Args),
    /// Write a feature service's point-in-time training set (entity rows joined to their
    /// features as of each row's timestamp) to Parquet or CSV.
    Join(join::Args),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Example { registry } => {
            for (name, version) in crate::credit::write_example_registry(&registry)? {
                let dir = registry
                    .join(&name)
                    .join("versions")
                    .join(version.to_string());
                println!("{name} version {version} (champion) -> {}", dir.display());
            }
        }
        Command::Mlp {
            registry,
            name,
            width,
            depth,
            seed,
        } => {
            let version = crate::credit::publish_seeded_mlp(&registry, &name, width, depth, seed)?;
            println!("{name} version {version} (champion): MLP {depth}x{width}, seed {seed}");
        }
        Command::Datagen(args) => datagen::run(args)?,
        Command::Materialize(args) => materialize::run(args)?,
        Command::Train(args) => train::run(args)?,
        Command::Join(args) => join::run(args)?,
        Command::Read(args) => read::run(args)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_command_parses() {
        let cli = Cli::try_parse_from(["vane-models", "example", "--registry", "/tmp/r"]).unwrap();
        let Command::Example { registry } = cli.command else {
            panic!("expected the example command");
        };
        assert_eq!(registry, PathBuf::from("/tmp/r"));
        let cli = Cli::try_parse_from([
            "vane-models",
            "mlp",
            "--registry",
            "/tmp/r",
            "--name",
            "wide",
            "--width",
            "8",
        ])
        .unwrap();
        let Command::Mlp { width, depth, .. } = cli.command else {
            panic!("expected the mlp command");
        };
        assert_eq!((width, depth), (8, 4));
    }
}
