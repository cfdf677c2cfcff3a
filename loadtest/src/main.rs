//! `vane-loadtest`: parses the command line, runs the load (and the canary verdict), prints
//! the table and exits 0 (pass), 1 (fail) or 2 (could not judge, or could not run). See
//! [`vane_loadtest::cli_main`].

use clap::Parser;
use vane_loadtest::Config;

fn main() {
    std::process::exit(vane_loadtest::cli_main(&Config::parse()));
}
