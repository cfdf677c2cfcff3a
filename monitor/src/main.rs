//! `vane-monitor`: see [`vane_monitor::cli::main`].

use std::process::ExitCode;

use clap::Parser;
use vane_monitor::config::Cli;

fn main() -> ExitCode {
    vane_monitor::cli::main(Cli::parse())
}
