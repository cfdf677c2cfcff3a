//! `vane-server`: see [`vane_server::cli::main`].

use std::process::ExitCode;

use clap::Parser;
use vane_server::config::Cli;

fn main() -> ExitCode {
    // SAFETY: first statement of main; no other thread exists yet.
    unsafe { vane_server::cli::quiet_library_backtraces() };
    vane_server::cli::main(Cli::parse())
}
