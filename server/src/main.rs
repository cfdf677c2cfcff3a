//! `vane-server`: see [`vane_server::cli::main`].

use std::process::ExitCode;

use clap::Parser;
use vane_server::config::Cli;

fn main() -> ExitCode {
    vane_server::cli::main(Cli::parse())
}
