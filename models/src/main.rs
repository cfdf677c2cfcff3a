//! `vane-models`: command-line entry points of the models crate.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_command_parses() {
        let cli = Cli::try_parse_from(["vane-models", "example", "--registry", "/tmp/r"]).unwrap();
        let Command::Example { registry } = cli.command;
        assert_eq!(registry, PathBuf::from("/tmp/r"));
    }
}
