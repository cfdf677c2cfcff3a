//! `vane-models datagen` (placeholder until implemented).

/// Arguments of `vane-models datagen`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("datagen: not implemented yet")
}
