//! `vane-registry`: publish versions, move aliases, roll out canaries. See [`vane_registry::cli`].

use std::process::ExitCode;

use clap::Parser;
use vane_registry::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match run(cli, &mut stdout).map_err(anyhow::Error::from) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vane-registry: {e:#}");
            ExitCode::FAILURE
        }
    }
}
