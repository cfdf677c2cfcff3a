//! `vane-models train` (placeholder until implemented).

/// Arguments of `vane-models train`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("train: not implemented yet")
}
