//! `vane-models materialize` (placeholder until implemented).

/// Arguments of `vane-models materialize`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("materialize: not implemented yet")
}
