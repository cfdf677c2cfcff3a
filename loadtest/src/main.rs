//! `vane-loadtest`: parses the command line, runs the load (and the canary verdict), prints
//! the table and exits 0 (pass), 1 (fail) or 2 (could not judge, or could not run).

use clap::Parser;
use vane_loadtest::{Config, LoadtestError};

fn main() {
    let cfg = Config::parse();
    match vane_loadtest::run(&cfg) {
        Ok(outcome) => {
            print!("{}", outcome.table);
            for f in &outcome.files {
                eprintln!("wrote {f}");
            }
            std::process::exit(outcome.exit_code());
        }
        Err(e) => {
            let e = anyhow::Error::new(e);
            eprintln!("error: {e:#}");
            // A target that is down or a version that is missing means the canary could not
            // be judged; so does a configuration that cannot run.
            let code = match e.downcast_ref::<LoadtestError>() {
                Some(LoadtestError::Write(..) | LoadtestError::Plot(..)) => 1,
                _ => 2,
            };
            if let Some(LoadtestError::Target { .. }) = e.downcast_ref::<LoadtestError>() {
                eprintln!("verdict: COULD NOT JUDGE (exit 2)");
            }
            std::process::exit(code);
        }
    }
}
