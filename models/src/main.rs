//! `vane-models`: command-line entry points of the models crate.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cmd;

/// Builds and publishes Vane's example models.
#[derive(Debug, Parser)]
#[command(name = "vane-models", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    Datagen(cmd::datagen::Args),
    /// Copy the latest feature values per entity from the offline store into the online store.
    Materialize(cmd::materialize::Args),
    /// Train logistic regression and gradient-boosted trees, export ONNX, publish.
    Train(cmd::train::Args),
    /// Write a feature service's point-in-time training set (entity rows joined to their
    /// features as of each row's timestamp) to Parquet or CSV.
    Join(cmd::join::Args),
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("vane-models: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Example { registry } => {
            for (name, version) in vane_models::credit::write_example_registry(&registry)? {
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
            let version =
                vane_models::credit::publish_seeded_mlp(&registry, &name, width, depth, seed)?;
            println!("{name} version {version} (champion): MLP {depth}x{width}, seed {seed}");
        }
        Command::Datagen(args) => cmd::datagen::run(args)?,
        Command::Materialize(args) => cmd::materialize::run(args)?,
        Command::Train(args) => cmd::train::run(args)?,
        Command::Join(args) => cmd::join::run(args)?,
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
