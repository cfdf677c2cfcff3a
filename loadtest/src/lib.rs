//! `vane-loadtest`: the canary load tester. It puts open- or closed-loop HTTP load on Vane
//! servers, measures latency honestly (from each request's intended send time, so a stalled
//! server shows up as latency — no coordinated omission), splits every figure by the model
//! version that answered, and judges a canary against its baseline with a pass / fail /
//! could-not-judge verdict that a rollout pipeline turns into `vane-registry promote` or
//! `rollback`.
//!
//! How the pieces fit:
//!
//! * [`Config`] (clap, every flag with a `VANE_LOADTEST_…` variable) is validated once into a
//!   [`config::Source`]; [`run`] resolves versions and model metadata ([`control`]), builds
//!   the rows ([`dataset::Dataset`], from a table or the synthetic generator) and encodes them
//!   once into [`body::Prepared`] requests.
//! * [`engine::run`] drives a [`engine::Plan`] (targets, [`engine::Arm`]s, bodies) with a
//!   [`engine::RunSpec`]: a [`schedule::RateSchedule`] (constant, ramp, steps) for the open
//!   loop or N connections for the closed loop, one current-thread tokio runtime per thread,
//!   µs-precise pacing ([`pacer::Pacer`]). It returns a [`engine::RunResult`]: per-arm
//!   [`stats::ArmStats`] (HDR histograms of client latency and of the server's
//!   `x-vane-*-us` timing headers, errors by status and transport failure, per-version
//!   [`stats::VersionStats`] with score means, latency samples, per-row scores) and
//!   per-second [`stats::SecondRow`]s.
//! * [`verdict::judge`] evaluates [`threshold::Threshold`]s (k6 style) on the result, with
//!   Kayenta's Mann–Whitney classification for latency and PSI / KS / paired differences for
//!   scores ([`verdict::Verdict`], exit codes 0 / 1 / 2).
//! * [`sweep::run`] steps the offered rate to find the saturation throughput under a p99 SLO.
//! * [`report`] writes the JSON summary, the text table, per-second CSV and `.hgrm` spectra;
//!   [`plot`] the SVG plots; [`progress`] the live line.
//!
//! The README (`loadtest/README.md`) shows a canary check during a rollout.

pub mod body;
pub mod config;
pub mod control;
pub mod dataset;
pub mod engine;
pub mod error;
pub mod pacer;
pub mod plot;
pub mod progress;
pub mod report;
pub mod schedule;
pub mod scores;
pub mod stats;
pub mod sweep;
pub mod threshold;
pub mod verdict;

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, Uri};
use serde_json::Value;

pub use config::Config;
pub use error::{ConfigError, LoadtestError};

use crate::body::{Format, Prepared};
use crate::config::{OrderArg, Source};
use crate::control::{Endpoint, ModelMeta};
use crate::engine::{Arm, Load, Order, Plan, RunResult, RunSpec, Target};
use crate::progress::Progress;
use crate::report::ArmInfo;
use crate::scores::ScoreFormat;
use crate::sweep::SweepResult;
use crate::threshold::Threshold;
use crate::verdict::{JudgeSpec, Verdict};

/// Everything a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub result: RunResult,
    pub arms: Vec<ArmInfo>,
    pub verdict: Verdict,
    pub sweep: Option<SweepResult>,
    pub summary: Value,
    /// The final text table.
    pub table: String,
    /// Files written (JSON, CSV, spectra, plots).
    pub files: Vec<String>,
}

impl Outcome {
    /// 0 pass, 1 fail, 2 could not judge.
    pub fn exit_code(&self) -> i32 {
        self.verdict.status.exit_code()
    }
}

fn infer_path(model: &str, version: Option<&str>, format: Format) -> String {
    match (format, version) {
        (Format::Records, _) => format!("/v1/models/{model}:predict"),
        (_, Some(v)) => format!("/v2/models/{model}/versions/{v}/infer"),
        (_, None) => format!("/v2/models/{model}/infer"),
    }
}

fn header(s: &str, what: &str) -> Result<HeaderValue, ConfigError> {
    HeaderValue::from_str(s)
        .map_err(|_| ConfigError::Invalid(format!("{what} {s:?} is not a valid header value")))
}

fn uri(path: &str) -> Result<Uri, ConfigError> {
    path.parse()
        .map_err(|_| ConfigError::Invalid(format!("{path:?} is not a valid request path")))
}

/// The effective configuration, one line per setting (printed at start).
pub fn describe(cfg: &Config, arms: &[ArmInfo]) -> String {
    let load = if cfg.sweep {
        format!(
            "sweep {} (SLO p99 {})",
            cfg.sweep_rates,
            verdict::fmt_us(cfg.slo_p99.as_micros() as f64)
        )
    } else if let Some(r) = cfg.rate {
        format!("open loop {r}/s")
    } else if let Some(r) = &cfg.ramp {
        format!("open loop ramp {r}")
    } else if let Some(s) = &cfg.steps {
        format!("open loop steps {s}")
    } else {
        "closed loop".into()
    };
    let targets: Vec<String> = arms
        .iter()
        .map(|a| format!("{} = {}", a.label, a.url))
        .collect();
    let secs = |d: std::time::Duration| format!("{}s", d.as_secs_f64());
    format!(
        "vane-loadtest: {load}, {} connections, {} thread(s), warm-up {}, duration {}{}; {}",
        cfg.connections,
        cfg.threads,
        secs(cfg.warmup),
        secs(cfg.duration),
        cfg.requests
            .map_or(String::new(), |n| format!(", at most {n} requests")),
        targets.join(", ")
    )
}

/// Validates `cfg`, builds the plan, runs it (or the sweep), judges it and writes the
/// requested files.
pub fn run(cfg: &Config) -> Result<Outcome, LoadtestError> {
    let source = cfg.validate()?;
    let schedule = cfg.schedule()?;
    let endpoints: Vec<Endpoint> = cfg
        .targets
        .iter()
        .map(|t| Endpoint::parse(t))
        .collect::<Result<_, _>>()?;
    let setup_timeout = cfg.timeout.min(std::time::Duration::from_secs(30));
    let compare = cfg.compare_pair()?;
    let two_targets = endpoints.len() == 2;
    let targets: Vec<Target> = endpoints
        .iter()
        .map(|e| {
            Ok(Target {
                authority: e.authority.clone(),
                host: header(&e.authority, "host")?,
            })
        })
        .collect::<Result<_, ConfigError>>()?;
    let mut arms: Vec<Arm> = Vec::new();
    let mut meta: Option<ModelMeta> = None;
    match &source {
        Source::Body(_) => {
            for (i, e) in endpoints.iter().enumerate() {
                let path = e.path.clone().unwrap_or_else(|| "/".into());
                arms.push(Arm {
                    label: arm_label(i, two_targets, &e.base_url()),
                    target: i,
                    uri: uri(&path)?,
                    url: format!("{}{path}", e.base_url()),
                });
            }
        }
        Source::Model(model) => {
            let ep = &endpoints[0];
            if let Some((a, b)) = &compare {
                // Both versions must be served; the baseline's metadata shapes the requests.
                let resolve = || -> Result<_, LoadtestError> {
                    let va = control::resolve_version(ep, model, a, setup_timeout)?;
                    let vb = control::resolve_version(ep, model, b, setup_timeout)?;
                    let ma = control::model_metadata(ep, model, Some(&va), setup_timeout)?;
                    control::model_metadata(ep, model, Some(&vb), setup_timeout)?;
                    Ok((va, vb, ma))
                };
                let give_up = std::time::Instant::now() + cfg.wait_served;
                let (va, vb, ma) = loop {
                    match resolve() {
                        Err(LoadtestError::Target { .. })
                            if std::time::Instant::now() < give_up =>
                        {
                            std::thread::sleep(std::time::Duration::from_millis(250));
                        }
                        other => break other?,
                    }
                };
                meta = Some(ma);
                for (r, v) in [(a, &va), (b, &vb)] {
                    let path = infer_path(model, Some(v), cfg.format);
                    let label = if r == v {
                        format!("v{v}")
                    } else {
                        format!("{r} (v{v})")
                    };
                    arms.push(Arm {
                        label,
                        target: 0,
                        uri: uri(&path)?,
                        url: format!("{}{path}", ep.base_url()),
                    });
                }
            } else {
                for (i, e) in endpoints.iter().enumerate() {
                    let version = match &cfg.version {
                        Some(v) => Some(control::resolve_version(e, model, v, setup_timeout)?),
                        None => None,
                    };
                    let m = control::model_metadata(e, model, version.as_deref(), setup_timeout)?;
                    if meta.is_none() {
                        meta = Some(m);
                    }
                    let path = infer_path(model, version.as_deref(), cfg.format);
                    arms.push(Arm {
                        label: arm_label(i, two_targets, &e.base_url()),
                        target: i,
                        uri: uri(&path)?,
                        url: format!("{}{path}", e.base_url()),
                    });
                }
            }
        }
    }
    let arm_infos: Vec<ArmInfo> = arms
        .iter()
        .map(|a| ArmInfo {
            label: a.label.clone(),
            url: a.url.clone(),
        })
        .collect();
    let labels: Vec<String> = arm_infos.iter().map(|a| a.label.clone()).collect();
    let (requests, dataset_rows, scores) = match (&source, &meta) {
        (Source::Body(path), _) => {
            let body =
                std::fs::read(path).map_err(|e| ConfigError::Io(path.display().to_string(), e))?;
            (vec![Prepared::fixed(Bytes::from(body))], 1, None)
        }
        (Source::Model(_), Some(m)) => {
            let ds = load_dataset(cfg, m)?;
            let reqs = body::encode_all(cfg.format, m, &ds, cfg.rows_per_request)?;
            let fmt = if cfg.format == Format::Records {
                ScoreFormat::V1
            } else {
                ScoreFormat::V2
            };
            (reqs, ds.rows, Some(fmt))
        }
        (Source::Model(_), None) => unreachable!("model metadata is fetched above"),
    };
    let method: Method = cfg
        .method
        .parse()
        .map_err(|_| ConfigError::Invalid(format!("--method {:?}", cfg.method)))?;
    let paired = arms.len() == 2;
    let plan = Arc::new(Plan {
        targets,
        arms,
        requests,
        method,
        content_type: header(&cfg.content_type, "--content-type")?,
        paired,
        order: match cfg.order {
            OrderArg::Cycle => Order::Cycle,
            OrderArg::Sample => Order::Sample(cfg.seed),
        },
        scores,
        dataset_rows,
    });
    let thresholds = thresholds(cfg, paired, scores.is_some())?;
    let progress = Progress::new(cfg.progress);
    if !matches!(progress, Progress::Off) {
        eprintln!("{}", describe(cfg, &arm_infos));
    }
    let spec = RunSpec {
        load: schedule.map_or(Load::Closed, Load::Open),
        connections: cfg.connections,
        threads: cfg.threads,
        warmup: cfg.warmup,
        duration: if cfg.sweep {
            cfg.step_duration
        } else {
            cfg.duration
        },
        requests: cfg.requests,
        timeout: cfg.timeout,
        latency_sample: cfg.latency_sample,
        seed: cfg.seed,
    };
    let (result, sweep) = if cfg.sweep {
        let (s, r) = sweep::run(
            plan.clone(),
            &spec,
            &cfg.sweep_rates()?,
            cfg.slo_p99,
            &progress,
            &labels,
        )?;
        (r, Some(s))
    } else {
        let r = engine::run(plan.clone(), &spec, |t| progress.tick(&t, &labels))?;
        (r, None)
    };
    progress.finish();
    let mut verdict = verdict::judge(
        &result,
        &JudgeSpec {
            thresholds: &thresholds,
            compare: paired,
            cutoff: cfg.cutoff,
            min_samples: cfg.min_samples,
            labels: &labels,
        },
    );
    if let Some(s) = &sweep {
        // A sweep passes when some rate met the SLO.
        if verdict.status != verdict::Status::Inconclusive {
            verdict.status = if s.saturation_rps.is_some() {
                verdict::Status::Pass
            } else {
                verdict
                    .reasons
                    .push(format!("no rate met the SLO: {}", s.stopped));
                verdict::Status::Fail
            };
        }
    }
    let summary = report::summary_json(
        &result,
        &arm_infos,
        &verdict,
        sweep.as_ref(),
        cfg.warmup.as_secs_f64(),
    );
    let table = report::text_table(&result, &arm_infos, &verdict, sweep.as_ref());
    let mut files = Vec::new();
    if let Some(p) = &cfg.json {
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        std::fs::write(p, text + "\n")
            .map_err(|e| LoadtestError::Write(p.display().to_string(), e))?;
        files.push(p.display().to_string());
    }
    if let Some(p) = &cfg.csv {
        report::write_csv(p, &result, &arm_infos)?;
        files.push(p.display().to_string());
    }
    if let Some(d) = &cfg.hgrm {
        files.extend(report::write_hgrms(d, &result, &arm_infos)?);
    }
    if let Some(d) = &cfg.plots {
        files.extend(plot::write_plots(d, &result, &arm_infos)?);
    }
    Ok(Outcome {
        result,
        arms: arm_infos,
        verdict,
        sweep,
        summary,
        table,
        files,
    })
}

fn arm_label(i: usize, two: bool, url: &str) -> String {
    match (two, i) {
        (true, 0) => format!("baseline {url}"),
        (true, _) => format!("canary {url}"),
        _ => "target".to_string(),
    }
}

fn load_dataset(cfg: &Config, meta: &ModelMeta) -> Result<dataset::Dataset, LoadtestError> {
    match &cfg.data {
        Some(path) => {
            let table = vane_tabular::read_table(path, None)?;
            dataset::from_table(
                table,
                meta,
                &dataset::Columns {
                    entity_keys: &cfg.entity_keys,
                    route_key_column: cfg.route_key_column.as_deref(),
                    route_keys: cfg.route_keys,
                    limit_rows: Some(cfg.limit_rows),
                    seed: cfg.seed,
                },
            )
        }
        None => {
            if !cfg.entity_keys.is_empty() {
                return Err(LoadtestError::Data(
                    "--entity-key needs --data (a table with the key column)".into(),
                ));
            }
            let profile = match &cfg.profile {
                Some(p) => {
                    let text = std::fs::read(p)
                        .map_err(|e| ConfigError::Io(p.display().to_string(), e))?;
                    Some(
                        serde_json::from_slice::<vane_registry::Profile>(&text).map_err(|e| {
                            LoadtestError::Data(format!("profile {}: {e}", p.display()))
                        })?,
                    )
                }
                None => None,
            };
            dataset::synthetic(
                meta,
                cfg.synthetic_rows.max(1),
                profile.as_ref(),
                cfg.route_keys,
                cfg.seed,
            )
        }
    }
}

/// Flags, then the file, then (compare mode) the defaults for metrics neither names.
fn thresholds(cfg: &Config, compare: bool, scores: bool) -> Result<Vec<Threshold>, LoadtestError> {
    let mut out: Vec<Threshold> = cfg
        .thresholds
        .iter()
        .map(|t| Threshold::parse(t))
        .collect::<Result<_, _>>()?;
    if let Some(f) = &cfg.thresholds_file {
        out.extend(threshold::read_file(f)?);
    }
    if compare && !cfg.no_default_thresholds {
        for d in threshold::compare_defaults(scores) {
            if !out.iter().any(|t| t.metric == d.metric) {
                out.push(d);
            }
        }
    }
    Ok(out)
}

/// Runs the load tester from parsed flags, prints the table and returns the exit code: 0 pass,
/// 1 fail, 2 could not judge (or could not run). Shared by `vane-loadtest` and `vane loadtest`.
pub fn cli_main(cfg: &Config) -> i32 {
    match run(cfg) {
        Ok(outcome) => {
            print!("{}", outcome.table);
            for f in &outcome.files {
                eprintln!("wrote {f}");
            }
            outcome.exit_code()
        }
        Err(e) => {
            // A target that is down or a version that is missing means the canary could not
            // be judged; so does a configuration that cannot run.
            let code = match e {
                LoadtestError::Write(..) | LoadtestError::Plot(..) => 1,
                _ => 2,
            };
            let target = matches!(e, LoadtestError::Target { .. });
            eprintln!("error: {:#}", anyhow::Error::new(e));
            if target {
                eprintln!("verdict: COULD NOT JUDGE (exit 2)");
            }
            code
        }
    }
}
