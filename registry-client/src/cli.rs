//! The `vane-registry` command line: [`Cli`] (clap) and [`run`], which does the work and
//! writes its answer to any `Write` (so tests need no process).

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::dir::PublishRequest;
use crate::error::RegistryError;
use crate::open::{open_registry, open_writer};
use crate::registry::{CHAMPION, Registry, Rollback, promote, rollback, set_canary};
use crate::transport::RemoteOptions;
use crate::types::VersionRef;

/// Publish model versions, move aliases and roll out canaries in a Vane registry.
#[derive(Debug, Parser)]
#[command(
    name = "vane-registry",
    version,
    after_help = "Examples (also `vane registry …`):
  vane-registry --registry ./registry list
  vane-registry --registry ./registry canary set credit-risk candidate --weight 0.1
  vane-registry --registry mlflow://mlflow:5000 promote credit-risk"
)]
pub struct Cli {
    /// The registry: a directory, an http(s):// static mirror (read-only), or
    /// mlflow://host:port (also mlflow+http(s)://host:port[/prefix]).
    #[arg(long, env = "VANE_REGISTRY", global = true)]
    pub registry: Option<String>,
    /// Base directory of the verified local cache of remote registries
    /// [default: ${XDG_CACHE_HOME:-~/.cache}/vane].
    #[arg(long, env = "VANE_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish a new version; prints its number. From a directory (model.onnx, optional
    /// signature.json and profile.json, any other regular files) or a lone ONNX file. The
    /// graph's inputs and outputs are read from model.onnx into signature.json; a hand-written
    /// signature.json is checked against them.
    #[command(
        after_help = "Examples:\n  vane-registry --registry ./registry publish ./exported/model.onnx --model credit --alias champion\n  vane-registry --registry ./registry publish ./artifacts/v2 --model credit"
    )]
    Publish {
        /// Directory holding the version's files, or an .onnx file.
        dir: PathBuf,
        /// Model name.
        #[arg(long)]
        model: String,
        /// Point this alias at the new version.
        #[arg(long)]
        alias: Option<String>,
    },
    /// Set or remove an alias.
    #[command(subcommand)]
    Alias(AliasCommand),
    /// List models with their versions, aliases and canary weight.
    List {
        /// Print JSON instead of one line per model.
        #[arg(long)]
        json: bool,
    },
    /// Print a version's manifest and its model's traffic policy as JSON. Without a version,
    /// the champion (else the latest version).
    Show {
        /// `model`, `model@alias` or `model/version` (a `models:/` prefix is accepted).
        target: String,
    },
    /// Start or re-weight a canary.
    #[command(subcommand)]
    Canary(CanaryCommand),
    /// Make the canary (or the shadow) the champion.
    Promote { model: String },
    /// Withdraw the canary/shadow; without one, restore the previous champion.
    Rollback { model: String },
}

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Point an alias at a version.
    Set {
        model: String,
        alias: String,
        version: u64,
    },
    /// Remove an alias.
    Rm { model: String, alias: String },
}

#[derive(Debug, Subcommand)]
pub enum CanaryCommand {
    /// `version` (a number or an alias, e.g. `candidate`) answers `--weight` of the requests
    /// (with `--shadow`: gets a copy of every request and never answers).
    Set {
        model: String,
        version: VersionRef,
        /// Share of requests the canary answers, 0..=1.
        #[arg(long, default_value_t = 0.1)]
        weight: f64,
        /// Shadow instead of canary.
        #[arg(long)]
        shadow: bool,
    },
}

/// Splits `model`, `model@alias`, `model/3` (optionally prefixed `models:/`).
pub fn parse_target(target: &str) -> (String, Option<VersionRef>) {
    let t = target.strip_prefix("models:/").unwrap_or(target);
    if let Some((m, a)) = t.split_once('@') {
        return (m.to_string(), Some(VersionRef::Alias(a.to_string())));
    }
    if let Some((m, v)) = t.split_once('/') {
        return (m.to_string(), Some(v.parse().expect("infallible")));
    }
    (t.to_string(), None)
}

fn out_err(e: std::io::Error) -> RegistryError {
    RegistryError::Io {
        path: "<stdout>".into(),
        source: e,
    }
}

/// Runs one command; its normal output goes to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), RegistryError> {
    let spec = cli.registry.clone().ok_or_else(|| {
        RegistryError::Invalid(
            "no registry: pass --registry <dir|http(s) url|mlflow url> or set VANE_REGISTRY".into(),
        )
    })?;
    let opts = RemoteOptions {
        cache_dir: cli.cache_dir.clone(),
        ..RemoteOptions::default()
    };
    match cli.command {
        Command::Publish { dir, model, alias } => {
            let w = open_writer(&spec, &opts)?;
            let req = PublishRequest::from_path(&model, &dir)?;
            let version = w.publish(&req)?;
            if let Some(alias) = alias {
                w.set_alias(&model, &alias, version)?;
            }
            writeln!(out, "{version}").map_err(out_err)
        }
        Command::Alias(AliasCommand::Set {
            model,
            alias,
            version,
        }) => {
            open_writer(&spec, &opts)?.set_alias(&model, &alias, version)?;
            writeln!(out, "{model}@{alias} -> {version}").map_err(out_err)
        }
        Command::Alias(AliasCommand::Rm { model, alias }) => {
            open_writer(&spec, &opts)?.remove_alias(&model, &alias)?;
            writeln!(out, "removed {model}@{alias}").map_err(out_err)
        }
        Command::List { json } => list(&*open_registry(&spec, &opts)?, json, out),
        Command::Show { target } => {
            let reg = open_registry(&spec, &opts)?;
            let (model, which) = parse_target(&target);
            let aliases = reg.aliases(&model)?;
            let version = match which {
                Some(which) => reg.resolve(&model, &which)?,
                None => match aliases.get(CHAMPION) {
                    Some(v) => *v,
                    None => *reg.versions(&model)?.last().ok_or_else(|| {
                        RegistryError::NotFound(format!("model {model:?} has no versions"))
                    })?,
                },
            };
            let manifest = reg.manifest(&model, version)?;
            let pointing: Vec<&String> = aliases
                .iter()
                .filter(|(_, v)| **v == version)
                .map(|(a, _)| a)
                .collect();
            let doc = json!({
                "model": model,
                "version": version,
                "aliases": pointing,
                "manifest": manifest,
                "policy": reg.policy(&model)?,
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("json")).map_err(out_err)
        }
        Command::Canary(CanaryCommand::Set {
            model,
            version,
            weight,
            shadow,
        }) => {
            let w = open_writer(&spec, &opts)?;
            let version = w.resolve(&model, &version)?;
            set_canary(&*w, &model, version, weight, shadow)?;
            if shadow {
                writeln!(out, "{model}: version {version} is the shadow").map_err(out_err)
            } else {
                writeln!(
                    out,
                    "{model}: version {version} is the canary at weight {weight}"
                )
                .map_err(out_err)
            }
        }
        Command::Promote { model } => {
            let v = promote(&*open_writer(&spec, &opts)?, &model)?;
            writeln!(out, "{model}: version {v} is the champion").map_err(out_err)
        }
        Command::Rollback { model } => match rollback(&*open_writer(&spec, &opts)?, &model)? {
            Rollback::CanaryRemoved { champion } => {
                let c = champion.map_or("none".to_string(), |c| c.to_string());
                writeln!(out, "{model}: canary withdrawn; champion is {c}").map_err(out_err)
            }
            Rollback::ChampionRestored { from, to } => {
                writeln!(out, "{model}: champion {from} -> {to}").map_err(out_err)
            }
        },
    }
}

fn list(reg: &dyn Registry, as_json: bool, out: &mut dyn Write) -> Result<(), RegistryError> {
    let mut rows = Vec::new();
    for model in reg.models()? {
        let versions = reg.versions(&model)?;
        let aliases = reg.aliases(&model)?;
        let policy = reg.policy(&model)?;
        rows.push((model, versions, aliases, policy));
    }
    if as_json {
        let doc: Vec<_> = rows
            .iter()
            .map(|(m, v, a, p)| json!({"model": m, "versions": v, "aliases": a, "policy": p}))
            .collect();
        return writeln!(out, "{}", serde_json::to_string_pretty(&doc).expect("json"))
            .map_err(out_err);
    }
    for (model, versions, aliases, policy) in rows {
        let versions: Vec<String> = versions.iter().map(u64::to_string).collect();
        let mut line = format!(
            "{model}\tversions {}",
            if versions.is_empty() {
                "-".into()
            } else {
                versions.join(",")
            }
        );
        let aliases: Vec<String> = aliases.iter().map(|(a, v)| format!("{a}={v}")).collect();
        if !aliases.is_empty() {
            line.push_str(&format!("\taliases {}", aliases.join(" ")));
        }
        if policy.canary.is_some() {
            line.push_str(&format!("\tcanary_weight {}", policy.canary_weight));
        }
        writeln!(out, "{line}").map_err(out_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(parse_target("m"), ("m".into(), None));
        assert_eq!(
            parse_target("m@champion"),
            ("m".into(), Some(VersionRef::Alias("champion".into())))
        );
        assert_eq!(
            parse_target("models:/m/3"),
            ("m".into(), Some(VersionRef::Number(3)))
        );
    }

    #[test]
    fn flags_parse_without_the_environment() {
        let cli = Cli::try_parse_from([
            "vane-registry",
            "canary",
            "set",
            "m",
            "2",
            "--weight",
            "0.25",
            "--registry",
            "/r",
        ])
        .unwrap();
        assert_eq!(cli.registry.as_deref(), Some("/r"));
        match cli.command {
            Command::Canary(CanaryCommand::Set {
                version,
                weight,
                shadow,
                ..
            }) => {
                assert_eq!((version, shadow), (VersionRef::Number(2), false));
                assert!((weight - 0.25).abs() < 1e-12);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Cli::try_parse_from(["vane-registry", "alias", "set", "m", "champion", "x"]).is_err()
        );
    }

    #[test]
    fn missing_registry_is_a_clear_error() {
        let cli = Cli {
            registry: None,
            cache_dir: None,
            command: Command::List { json: false },
        };
        let err = run(cli, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("VANE_REGISTRY"), "{err}");
    }
}
