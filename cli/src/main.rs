//! `vane`: one command for the whole production loop. Every crate's binary is a subcommand
//! with the same flags (`vane serve` = `vane-server`, `vane monitor` = `vane-monitor`,
//! `vane registry` = `vane-registry`, `vane loadtest` = `vane-loadtest`, `vane train` and
//! `vane features …` = `vane-models`), plus the batch pipeline ([`pipeline::Pipeline`]: run
//! locally or render for Argo) and `vane demo` ([`demo::run`]), the loop end to end.

mod children;
mod demo;
mod pipeline;
mod yaml;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "vane",
    version,
    about = "Vane: serve, monitor, train and roll out tabular ONNX models — the whole production loop.",
    after_help = "Examples:
  vane demo                                             # the whole loop on embedded defaults
  vane serve --registry ./registry --addr 127.0.0.1:8080
  vane monitor serve --registry ./registry
  vane features materialize --repo data/features.toml --store online.redb
  vane train --repo data/features.toml --data data/applications.parquet --label default_12m \\
      --registry ./registry --model credit-risk --alias champion
  vane pipeline run pipelines/credit-risk.toml --set registry=./registry
  vane pipeline render --argo pipelines/credit-risk.toml > workflow.yaml
  vane completions bash > /etc/bash_completion.d/vane"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve models over the Open Inference Protocol (KServe V2) and KServe v1 (= vane-server).
    Serve(vane_server::config::Cli),
    /// The drift monitor sidecar, and batch profile/compare (= vane-monitor).
    Monitor(vane_monitor::config::Cli),
    /// Publish versions, move aliases, canary, promote, roll back (= vane-registry).
    Registry(vane_registry::cli::Cli),
    /// Feature store jobs (= vane-models datagen / materialize / join / read).
    #[command(subcommand)]
    Features(Features),
    /// Train logistic regression and gradient-boosted trees, evaluate, export ONNX, publish
    /// (= vane-models train).
    Train(vane_models::cli::train::Args),
    /// Load test and canary verdict; exit 0 pass, 1 fail, 2 could not judge (= vane-loadtest).
    Loadtest(vane_loadtest::Config),
    /// The batch pipeline file: run it here, or render it for Argo Workflows / Kubeflow.
    #[command(subcommand)]
    Pipeline(PipelineCmd),
    /// The whole loop on this machine: data, features, training, serving, monitoring, canary,
    /// promotion, drift.
    Demo(demo::Args),
    /// Print shell completions.
    #[command(
        after_help = "Example: vane completions bash > ~/.local/share/bash-completion/completions/vane"
    )]
    Completions { shell: clap_complete::Shell },
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Features {
    /// Generate the synthetic credit-risk world (Parquet sources, a feature repository),
    /// optionally with injected drift.
    Datagen(vane_models::cli::datagen::Args),
    /// Copy the latest feature values per entity from the offline store into the online store.
    Materialize(vane_models::cli::materialize::Args),
    /// Read the online store's rows for some entities (one JSON line each).
    Read(vane_models::cli::read::Args),
    /// Write a point-in-time training set (entity rows joined to their features as of each
    /// row's timestamp).
    Join(vane_models::cli::join::Args),
}

#[derive(Debug, Subcommand)]
enum PipelineCmd {
    /// Run the steps in order, each a child `vane` process; stops at the first failure.
    #[command(after_help = "Examples:
  vane pipeline run pipelines/credit-risk.toml
  vane pipeline run pipelines/credit-risk.toml --steps materialize,train --set alias=champion")]
    Run {
        file: PathBuf,
        /// Override a parameter: name=value (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Run only these steps (comma-separated, file order).
        #[arg(long, value_delimiter = ',')]
        steps: Vec<String>,
    },
    /// Print the pipeline as a workflow for a scheduler.
    #[command(after_help = "Example:
  vane pipeline render --argo pipelines/credit-risk.toml --image registry.example/vane:0.1.0 \\
      --volume-claim vane-data --set work=/data --set registry=mlflow://mlflow:5000 | argo submit -")]
    Render {
        /// Argo Workflow YAML (the engine under Kubeflow Pipelines); the only format so far.
        #[arg(long, required = true)]
        argo: bool,
        file: PathBuf,
        /// Container image with the `vane` binary.
        #[arg(long, default_value = "vane:0.1.0")]
        image: String,
        /// PersistentVolumeClaim mounted in every step (offline store, working files).
        #[arg(long)]
        volume_claim: Option<String>,
        /// Where the claim is mounted.
        #[arg(long, default_value = "/data")]
        mount: String,
        /// Default a parameter: name=value (repeatable); `argo submit -p` still overrides.
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
    /// Print MESSAGE and exit 1 (the rendered workflow's stop step).
    #[command(hide = true)]
    Fail { message: String },
}

fn main() -> ExitCode {
    // SAFETY: first statement of main; no other thread exists yet. (Every subcommand, and the
    // children `vane demo` and `vane pipeline` start, may score with tract.)
    unsafe { vane_server::cli::quiet_library_backtraces() };
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve(c) => vane_server::cli::main(c),
        Cmd::Monitor(c) => vane_monitor::cli::main(c),
        Cmd::Registry(c) => {
            let mut stdout = std::io::stdout().lock();
            report(
                vane_registry::cli::run(c, &mut stdout).map_err(anyhow::Error::from),
                "vane registry",
            )
        }
        Cmd::Features(f) => report(
            match f {
                Features::Datagen(a) => vane_models::cli::datagen::run(a),
                Features::Materialize(a) => vane_models::cli::materialize::run(a),
                Features::Join(a) => vane_models::cli::join::run(a),
                Features::Read(a) => vane_models::cli::read::run(a),
            },
            "vane features",
        ),
        Cmd::Train(a) => report(vane_models::cli::train::run(a), "vane train"),
        Cmd::Loadtest(cfg) => {
            ExitCode::from(u8::try_from(vane_loadtest::cli_main(&cfg)).unwrap_or(2))
        }
        Cmd::Pipeline(p) => report(pipeline_cmd(p), "vane pipeline"),
        Cmd::Demo(a) => report(demo::run(&a).map(|_| ()), "vane demo"),
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "vane", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

fn pipeline_cmd(p: PipelineCmd) -> anyhow::Result<()> {
    match p {
        PipelineCmd::Run { file, set, steps } => {
            let mut pl = pipeline::Pipeline::load(&file)?;
            pl.set(&set)?;
            pl.select(&steps)?;
            let exe = std::env::current_exe()?;
            let done = pl.run(&exe)?;
            let summary: Vec<String> = done.steps.iter().map(|(s, o)| format!("{s}={o}")).collect();
            eprintln!("pipeline {:?} finished: {}", pl.name, summary.join(", "));
            Ok(())
        }
        PipelineCmd::Render {
            argo: _,
            file,
            image,
            volume_claim,
            mount,
            set,
        } => {
            let mut pl = pipeline::Pipeline::load(&file)?;
            pl.set(&set)?;
            let wf = pl.to_argo(&image, volume_claim.as_deref(), &mount)?;
            std::io::stdout().write_all(yaml::to_yaml(&wf).as_bytes())?;
            Ok(())
        }
        PipelineCmd::Fail { message } => anyhow::bail!("{message}"),
    }
}

fn report(r: anyhow::Result<()>, who: &str) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{who}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn subcommands_take_their_crates_flags() {
        let c = Cli::try_parse_from([
            "vane",
            "train",
            "--label",
            "y",
            "--data",
            "d.parquet",
            "--registry",
            "r",
            "--model",
            "m",
            "--recent",
            "0.5",
        ])
        .unwrap();
        let Cmd::Train(a) = c.command else {
            panic!("train")
        };
        assert_eq!(a.recent, Some(0.5));
        let c = Cli::try_parse_from([
            "vane", "pipeline", "run", "p.toml", "--set", "a=1", "--steps", "x,y",
        ])
        .unwrap();
        let Cmd::Pipeline(PipelineCmd::Run { set, steps, .. }) = c.command else {
            panic!("run")
        };
        assert_eq!((set.len(), steps.len()), (1, 2));
        assert!(
            Cli::try_parse_from(["vane", "pipeline", "render", "p.toml"]).is_err(),
            "--argo is required"
        );
    }
}
