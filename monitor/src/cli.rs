//! The `vane-monitor` command line's entry point, shared by the `vane-monitor` binary and
//! `vane monitor`.

use std::process::ExitCode;

use crate::config::{Cli, Command, ServeConfig};
use crate::drift::Thresholds;

/// Runs one `vane-monitor` command from parsed flags; logs to stderr (`VANE_LOG`).
pub fn main(cli: Cli) -> ExitCode {
    vane_exposition::init_logging();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Profile(args) => batch(|| {
            let p = crate::batch::profile(&args)?;
            let text = serde_json::to_vec_pretty(&p)?;
            std::fs::write(&args.out, text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))?;
            eprintln!(
                "profiled {} rows, {} features -> {}",
                p.rows,
                p.features.len(),
                args.out.display()
            );
            Ok(())
        }),
        Command::Compare(args) => batch(|| {
            let th = args.thresholds.over(&Thresholds::default());
            th.validate().map_err(anyhow::Error::msg)?;
            let c = crate::batch::compare(&args, &th)?;
            if let Some(path) = &args.html {
                let page = crate::report::render(
                    "Vane drift comparison",
                    &format!(
                        "{} ({} rows) vs reference {} ({} rows)",
                        args.current.display(),
                        c.current_rows,
                        args.reference
                            .as_ref()
                            .or(args.profile.as_ref())
                            .map(|p| p.display().to_string())
                            .unwrap_or_default(),
                        c.reference_rows
                    ),
                    &th,
                    &[crate::report::Section {
                        title: args.current.display().to_string(),
                        facts: Vec::new(),
                        warnings: &[],
                        drift: &c.drift,
                    }],
                );
                std::fs::write(path, page)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            }
            println!("{}", serde_json::to_string_pretty(&c.json)?);
            Ok(())
        }),
    }
}

fn batch(f: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    match f() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vane-monitor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: crate::config::ServeArgs) -> ExitCode {
    let cfg = match ServeConfig::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(config = %serde_json::to_string(&cfg).unwrap_or_default(), "effective configuration");
    vane_exposition::run_service(2, "vane-monitor", crate::run(cfg))
}
