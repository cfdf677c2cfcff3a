//! `vane-models`: see [`vane_models::cli`].

use clap::Parser;
use vane_models::cli::{Cli, run};

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("vane-models: {e:#}");
        std::process::exit(1);
    }
}
