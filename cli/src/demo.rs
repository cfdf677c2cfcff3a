//! `vane demo`: the whole production loop on one machine, on embedded defaults —
//! features → training → registry → serving → monitoring → canary → promotion → drift.
//!
//! Every step is a `vane` subcommand run as a child process (the batch half through the
//! pipeline file, exactly as `vane pipeline run` executes it); the server and the monitor run
//! as children for the whole demo and stop with it. Every artifact lands in `--dir`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::children::{Guarded, get, wait_ready};
use crate::pipeline::{Pipeline, shell_words};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  vane demo                                 # the whole loop in target/demo, then stop
  vane demo --keep-serving                  # leave the server and monitor up at the end
  vane demo --dir /tmp/d --applications 20000 --requests 1000   # smaller and faster")]
pub struct Args {
    /// Folder for every artifact (data, online store, registry, logs, reports); emptied first.
    #[arg(long, env = "VANE_DEMO_DIR", default_value = "target/demo")]
    pub dir: PathBuf,
    /// The pipeline file the demo runs (the container image sets /etc/vane/pipelines/…).
    #[arg(
        long,
        env = "VANE_DEMO_PIPELINE",
        default_value = "pipelines/credit-risk.toml"
    )]
    pub pipeline: PathBuf,
    /// Server address.
    #[arg(long, env = "VANE_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Monitor HTTP address (/metrics, /drift, /report).
    #[arg(long, env = "VANE_MONITOR_HTTP", default_value = "127.0.0.1:9102")]
    pub monitor_http: String,
    /// Monitor ingest address (the server's samples).
    #[arg(long, env = "VANE_MONITOR_INGEST", default_value = "127.0.0.1:9101")]
    pub monitor_ingest: String,
    /// Synthetic applicants.
    #[arg(long, default_value_t = 10_000)]
    pub applicants: usize,
    /// Synthetic loan applications over 24 months.
    #[arg(long, default_value_t = 50_000)]
    pub applications: usize,
    /// Scoring requests per traffic phase (direct, entity-keyed, drifted).
    #[arg(long, default_value_t = 3_000)]
    pub requests: u64,
    /// Rows per drift window of the monitor.
    #[arg(long, default_value_t = 1_000)]
    pub window_rows: u64,
    /// Seconds the canary verdict sends load for.
    #[arg(long, default_value_t = 10)]
    pub verdict_seconds: u64,
    /// Prometheus address, when `prometheus` is on the PATH (it then scrapes both children
    /// with the shipped rules and the demo waits for the drift alert to fire).
    #[arg(long, env = "VANE_DEMO_PROMETHEUS", default_value = "127.0.0.1:9090")]
    pub prometheus_addr: String,
    /// The shipped alert rules Prometheus loads (the container image sets /etc/vane/…).
    #[arg(
        long,
        env = "VANE_DEMO_RULES",
        default_value = "deploy/prometheus/vane-rules.yml"
    )]
    pub rules: PathBuf,
    /// Do not start Prometheus even when it is installed.
    #[arg(long)]
    pub no_prometheus: bool,
    /// Leave the server and the monitor running at the end (stop with Ctrl-C).
    #[arg(long)]
    pub keep_serving: bool,
}

/// What the demo showed, for its caller and its test.
#[derive(Debug, Default)]
pub struct Outcome {
    pub champion_auc: Option<f64>,
    pub verdict: String,
    pub action: String,
    pub drifted_before: Vec<String>,
    pub drifted_after: Vec<String>,
    /// Features with a firing `VaneFeatureDrift` alert after the injection; `None` without
    /// Prometheus.
    pub alerts_after: Option<Vec<String>>,
}

struct Ctx {
    exe: PathBuf,
    dir: PathBuf,
    started: Instant,
    step: usize,
}

impl Ctx {
    fn banner(&mut self, what: &str) {
        self.step += 1;
        eprintln!(
            "\n[{:>6.1} s] step {}: {what}",
            self.started.elapsed().as_secs_f64(),
            self.step
        );
    }

    /// Runs `vane args…`; its output goes to the terminal.
    fn vane(&self, args: &[String]) -> Result<()> {
        eprintln!("  $ vane {}", shell_words(args));
        let t = Instant::now();
        let status = Command::new(&self.exe).args(args).status()?;
        if !status.success() {
            bail!("`vane {}` failed ({status})", shell_words(args));
        }
        eprintln!("  ({:.1} s)", t.elapsed().as_secs_f64());
        Ok(())
    }

    fn path(&self, rel: &str) -> String {
        self.dir.join(rel).display().to_string()
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

pub fn run(args: &Args) -> Result<Outcome> {
    let exe = std::env::current_exe().context("locating the vane executable")?;
    let pipeline_file = args.pipeline.clone();
    Pipeline::load(&pipeline_file)?; // fail before doing anything if it is broken
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)
            .with_context(|| format!("emptying {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(&args.dir)?;
    let mut cx = Ctx {
        exe: exe.clone(),
        dir: args.dir.clone(),
        started: Instant::now(),
        step: 0,
    };
    let mut out = Outcome::default();
    let server_url = format!("http://{}", args.addr);
    let base_sets = [
        format!("work={}", cx.dir.display()),
        format!("repo={}", cx.path("data/features.toml")),
        format!("applications={}", cx.path("data/applications.parquet")),
        format!("verdict_rows={}", cx.path("data/joined.parquet")),
        format!("store={}", cx.path("online.redb")),
        format!("registry={}", cx.path("registry")),
        format!("server={server_url}"),
        format!("verdict_duration={}s", args.verdict_seconds),
    ];
    let pipeline = |extra: &[String], steps: Option<&str>| -> Vec<String> {
        let mut a = s(&["pipeline", "run"]);
        a.push(pipeline_file.display().to_string());
        for kv in base_sets.iter().chain(extra) {
            a.push("--set".into());
            a.push(kv.clone());
        }
        if let Some(st) = steps {
            a.push("--steps".into());
            a.push(st.into());
        }
        a
    };

    // 1. The synthetic world: applicants, their bureau activity, 24 months of applications.
    cx.banner("generate the synthetic credit-risk world");
    let start = months_ago(24);
    let mut datagen = s(&["features", "datagen", "--out"]);
    datagen.push(cx.path("data"));
    datagen.extend([
        "--applicants".into(),
        args.applicants.to_string(),
        "--applications".into(),
        args.applications.to_string(),
        "--start".into(),
        start.clone(),
    ]);
    cx.vane(&datagen)?;
    let mut join = s(&["features", "join", "--repo"]);
    join.extend([
        cx.path("data/features.toml"),
        "--data".into(),
        cx.path("data/applications.parquet"),
        "--out".into(),
        cx.path("data/joined.parquet"),
    ]);
    cx.vane(&join)?;

    // 2–3. Materialize and train v1 through the pipeline file; v1 becomes the champion.
    cx.banner("pipeline: materialize features, train v1, publish it as champion");
    cx.vane(&pipeline(
        &["alias=champion".into()],
        Some("materialize,train"),
    ))?;
    out.champion_auc = read_auc(&cx.dir.join("train-champion/metrics.json"));
    if let Some(auc) = out.champion_auc {
        eprintln!(
            "  v1 test AUC {auc:.4} (all metrics: {})",
            cx.path("train-champion/metrics.json")
        );
    }

    // 4. Server and monitor, every request sampled to the monitor.
    cx.banner("start the server and the drift monitor (children of this demo)");
    let mon_log = cx.dir.join("monitor.log");
    let mut monitor = Guarded::spawn(
        "vane monitor",
        &exe,
        &[
            "monitor".into(),
            "serve".into(),
            "--registry".into(),
            cx.path("registry"),
            "--http".into(),
            args.monitor_http.clone(),
            "--listen".into(),
            format!("tcp://{}", args.monitor_ingest),
            "--window-rows".into(),
            args.window_rows.to_string(),
            "--evaluation-interval-ms".into(),
            "200".into(),
        ],
        &mon_log,
    )?;
    wait_ready(
        &mut monitor,
        &args.monitor_http,
        "/health",
        Duration::from_secs(60),
    )?;
    let srv_log = cx.dir.join("server.log");
    let mut server = Guarded::spawn(
        "vane serve",
        &exe,
        &[
            "serve".into(),
            "--registry".into(),
            cx.path("registry"),
            "--online-store".into(),
            cx.path("online.redb"),
            "--addr".into(),
            args.addr.clone(),
            "--monitor".into(),
            format!("tcp://{}", args.monitor_ingest),
            "--sample-percent".into(),
            "100".into(),
            "--allow-missing".into(),
            "true".into(),
            "--poll-interval-ms".into(),
            "500".into(),
        ],
        &srv_log,
    )?;
    wait_ready(
        &mut server,
        &args.addr,
        "/v2/health/ready",
        Duration::from_secs(120),
    )?;
    eprintln!(
        "  server  {server_url}  (metrics {server_url}/metrics, log {})\n  monitor http://{}  (report http://{}/report, drift /drift, metrics /metrics, log {})",
        srv_log.display(),
        args.monitor_http,
        args.monitor_http,
        mon_log.display()
    );

    let mut prometheus = match which("prometheus").filter(|_| !args.no_prometheus) {
        Some(bin) => Some(start_prometheus(&bin, args, &cx.dir)?),
        None => {
            eprintln!(
                "  Prometheus is not installed, so no alerts in this run: install it (Debian: \
                 apt-get install prometheus) and the demo scrapes both with \
                 deploy/prometheus/vane-rules.yml and shows the drift alert firing."
            );
            None
        }
    };

    // 5. Traffic: full rows, then entity-keyed requests completed from the online store.
    cx.banner("score traffic: direct requests, then entity-keyed ones");
    let traffic = |data: String, extra: &[&str], json: String| -> Vec<String> {
        let mut a = s(&["loadtest", "--target"]);
        a.extend([server_url.clone(), "--model".into(), "credit-risk".into()]);
        a.extend(["--data".into(), data]);
        a.extend(s(extra));
        a.extend([
            "--order".into(),
            "sample".into(),
            "--requests".into(),
            args.requests.to_string(),
            "--connections".into(),
            "4".into(),
            "--progress".into(),
            "off".into(),
            "--json".into(),
            json,
        ]);
        a
    };
    cx.vane(&traffic(
        cx.path("data/joined.parquet"),
        &["--format", "tensor"],
        cx.path("traffic-direct.json"),
    ))?;
    out.drifted_before = settle_drift(
        &args.monitor_http,
        1,
        Duration::from_secs(3),
        &cx.dir.join("drift-before.json"),
    )?;
    eprintln!(
        "  drifted features before any injection: {}",
        list_or_none(&out.drifted_before)
    );
    // Entity-keyed: the request carries the applicant id and the request-time fields; the
    // server reads the applicant's latest features from the online store.
    cx.vane(&traffic(
        cx.path("data/applications.parquet"),
        &["--format", "features", "--entity-key", "applicant_id"],
        cx.path("traffic-keyed.json"),
    ))?;

    // 6–8. v2 on the newer half of the data, as a 10 % canary with shadow scoring; the load
    // tester's verdict promotes it or rolls it back.
    cx.banner("pipeline: retrain on newer data, canary + shadow, verdict, promote or roll back");
    let report_before = Instant::now();
    let status = Command::new(&exe)
        .args(pipeline(&["recent=0.5".into()], None))
        .status()?;
    server.check_alive()?;
    if !status.success() {
        bail!("the pipeline failed ({status}); see the step output above");
    }
    let verdict: Value = std::fs::read(cx.dir.join("verdict.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    out.verdict = verdict["verdict"]["status"]
        .as_str()
        .unwrap_or("unknown")
        .to_string();
    // The pipeline changed the registry; the server applies it at its next poll. Report (and
    // send the drifted traffic) only once it serves what the verdict decided: v2 alone after a
    // pass, v1 alone after a fail.
    let expected = if out.verdict == "pass" { "2" } else { "1" };
    let routing = await_routing(&args.addr, expected, Duration::from_secs(15))?;
    let champion: u64 = routing["champion"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    out.action = if routing["champion"] == "2" {
        "promoted v2".into()
    } else {
        format!(
            "rolled back (champion v{})",
            routing["champion"].as_str().unwrap_or("?")
        )
    };
    eprintln!(
        "  verdict: {} → {} ({:.1} s; report {}, plots {})",
        out.verdict,
        out.action,
        report_before.elapsed().as_secs_f64(),
        cx.path("verdict.json"),
        cx.path("verdict-plots")
    );

    // 9. Drift: the same world with shifted incomes, rates and purposes, scored live.
    cx.banner("inject drift into the traffic and watch the monitor flag it");
    let mut drifted = s(&["features", "datagen", "--out"]);
    drifted.extend([
        cx.path("drifted"),
        "--applicants".into(),
        args.applicants.to_string(),
        "--applications".into(),
        (args.requests as usize * 2).max(2_000).to_string(),
        "--start".into(),
        start,
        "--seed".into(),
        "7".into(),
        "--drift-shift".into(),
        "annual_income=-0.4".into(),
        "--drift-shift".into(),
        "interest_rate=0.5".into(),
        "--drift-mix".into(),
        "purpose=small_business:0.5".into(),
    ]);
    cx.vane(&drifted)?;
    let mut join = s(&["features", "join", "--repo"]);
    join.extend([
        cx.path("drifted/features.toml"),
        "--data".into(),
        cx.path("drifted/applications.parquet"),
        "--out".into(),
        cx.path("drifted/joined.parquet"),
    ]);
    cx.vane(&join)?;
    cx.vane(&traffic(
        cx.path("drifted/joined.parquet"),
        &["--format", "tensor"],
        cx.path("traffic-drifted.json"),
    ))?;
    out.drifted_after = settle_drift(
        &args.monitor_http,
        champion,
        Duration::from_secs(3),
        &cx.dir.join("drift-after.json"),
    )?;
    eprintln!(
        "  drifted features after injection: {}",
        list_or_none(&out.drifted_after)
    );
    if let Some(p) = prometheus.as_mut() {
        let alerts = firing_drift_alerts(p, &args.prometheus_addr, champion, &out.drifted_after)?;
        eprintln!(
            "  Prometheus: VaneFeatureDrift firing for {} (http://{}/alerts)",
            list_or_none(&alerts),
            args.prometheus_addr
        );
        out.alerts_after = Some(alerts);
    }
    server.check_alive()?;
    monitor.check_alive()?;

    eprintln!(
        "\n[{:>6.1} s] done. Model v1 test AUC {}; canary verdict {} → {}; drift flagged before \
         injection: {}, after: {}; drift alerts firing: {}.\nArtifacts: {}\nDrift report: \
         http://{}/report",
        cx.started.elapsed().as_secs_f64(),
        out.champion_auc
            .map_or("?".to_string(), |a| format!("{a:.4}")),
        out.verdict,
        out.action,
        list_or_none(&out.drifted_before),
        list_or_none(&out.drifted_after),
        out.alerts_after
            .as_deref()
            .map_or("no Prometheus".to_string(), list_or_none),
        args.dir.display(),
        args.monitor_http
    );
    if args.keep_serving {
        let a = &args.addr;
        let fields = r#""loan_amount": 15000, "term": "60 months", "purpose": "debt_consolidation", "interest_rate": 13.9, "installment": 512, "loan_to_income": 0.26"#;
        eprintln!(
            "\nScore applicant 1 — the request carries the loan's fields; the applicant's features \
             come from the online store:\n\n\
             curl -s http://{a}/v1/models/credit-risk:predict -H 'content-type: application/json' \
             -d '{{\"instances\": [{{\"applicant_id\": 1, {fields}}}]}}'\n\n\
             Model metadata: curl -s http://{a}/v2/models/credit-risk · metrics: curl -s \
             http://{a}/metrics · drift: http://{}/report",
            args.monitor_http
        );
        eprintln!("Serving until Ctrl-C.");
        server.wait()?;
    }
    drop(prometheus);
    drop(server);
    drop(monitor);
    Ok(out)
}

/// Starts Prometheus on the demo's children with the shipped rules. Scrapes and evaluations
/// run every second, and every rule's `for:` is shortened to 5 s (in the copy under
/// `dir/prometheus/`), so an alert can fire within the demo.
fn start_prometheus(bin: &Path, args: &Args, dir: &Path) -> Result<Guarded> {
    let home = dir.join("prometheus");
    std::fs::create_dir_all(&home)?;
    let rules = std::fs::read_to_string(&args.rules)
        .with_context(|| format!("reading {}", args.rules.display()))?;
    let rules: String = rules
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for:") {
            Some(_) => format!("{}for: 5s\n", &l[..l.len() - l.trim_start().len()]),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(home.join("vane-rules.yml"), rules)?;
    std::fs::write(
        home.join("prometheus.yml"),
        format!(
            "# Written by vane demo: the shipped rules with every `for:` at 5 s.\n\
             global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - vane-rules.yml\n\
             scrape_configs:\n\
             \x20 - job_name: vane-server\n    static_configs:\n      - targets: [\"{}\"]\n\
             \x20 - job_name: vane-monitor\n    static_configs:\n      - targets: [\"{}\"]\n",
            args.addr, args.monitor_http
        ),
    )?;
    let log = home.join("prometheus.log");
    let mut p = Guarded::spawn(
        "prometheus",
        bin,
        &[
            format!("--config.file={}", home.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", home.join("data").display()),
            format!("--web.listen-address={}", args.prometheus_addr),
        ],
        &log,
    )?;
    wait_ready(
        &mut p,
        &args.prometheus_addr,
        "/-/ready",
        Duration::from_secs(60),
    )?;
    eprintln!(
        "  prometheus http://{}  (alerts /alerts; rules {}, log {})",
        args.prometheus_addr,
        home.join("vane-rules.yml").display(),
        log.display()
    );
    Ok(p)
}

/// Waits (up to 90 s) until `VaneFeatureDrift` fires on `version` for every feature in
/// `expected`; returns the features it fires for.
fn firing_drift_alerts(
    p: &mut Guarded,
    addr: &str,
    version: u64,
    expected: &[String],
) -> Result<Vec<String>> {
    let give_up = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, body) = get(addr, "/api/v1/alerts")?;
        if status != 200 {
            bail!("prometheus GET /api/v1/alerts answered {status}: {body}");
        }
        let v: Value = serde_json::from_str(&body).context("prometheus alerts: not JSON")?;
        let mut firing: Vec<String> = v["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["labels"]["alertname"] == "VaneFeatureDrift" && a["state"] == "firing")
            .filter(|a| a["labels"]["version"] == version.to_string().as_str())
            .filter_map(|a| a["labels"]["feature"].as_str().map(str::to_string))
            .collect();
        firing.sort();
        firing.dedup();
        if expected.iter().all(|f| firing.contains(f)) || Instant::now() > give_up {
            return Ok(firing);
        }
        p.check_alive()?;
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The features flagged as drifted in the newest evaluated window of any stream, once two
/// reads `settle` apart agree.
fn settle_drift(monitor: &str, version: u64, settle: Duration, save: &Path) -> Result<Vec<String>> {
    let mut last: Option<Vec<String>> = None;
    let give_up = Instant::now() + settle * 6;
    loop {
        let (status, body) = get(monitor, "/drift")?;
        if status != 200 {
            bail!("monitor GET /drift answered {status}: {body}");
        }
        let v: Value = serde_json::from_str(&body).context("monitor /drift: not JSON")?;
        let now = drifted_features(&v, version);
        if last.as_ref() == Some(&now) || Instant::now() > give_up {
            std::fs::write(save, body).with_context(|| format!("writing {}", save.display()))?;
            return Ok(now);
        }
        last = Some(now);
        std::thread::sleep(settle);
    }
}

/// Names of the features flagged as drifted in the newest live count window of `version`.
pub fn drifted_features(drift: &Value, version: u64) -> Vec<String> {
    let mut newest: std::collections::BTreeMap<(String, u64), &Value> = Default::default();
    for w in drift["windows"].as_array().into_iter().flatten() {
        if w["window"] != "count" || w["source"] != "live" || w["version"] != version {
            continue;
        }
        let key = (
            w["model"].as_str().unwrap_or_default().to_string(),
            w["version"].as_u64().unwrap_or_default(),
        );
        let ended = |x: &Value| x["ended_ms"].as_u64().unwrap_or_default();
        if newest.get(&key).is_none_or(|old| ended(old) < ended(w)) {
            newest.insert(key, w);
        }
    }
    let mut names: Vec<String> = newest
        .values()
        .flat_map(|w| w["features"].as_array().into_iter().flatten())
        .filter(|f| f["drift"] == true)
        .filter_map(|f| f["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Polls the server's routing for `credit-risk` until `champion` serves alone (no canary, no
/// shadow); returns it, or an error with the last routing seen.
fn await_routing(addr: &str, champion: &str, timeout: Duration) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, meta) = get(addr, "/v2/models/credit-risk")?;
        let meta: Value = serde_json::from_str(&meta).unwrap_or(Value::Null);
        let routing = meta["parameters"]["routing"].clone();
        if routing["champion"] == champion
            && routing["canary"].is_null()
            && routing["shadow"].is_null()
        {
            return Ok(routing);
        }
        if Instant::now() >= deadline {
            bail!(
                "the server did not apply the verdict within {timeout:?}: expected champion \
                 v{champion} alone, routing is {routing}"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The published model's test AUC from the trainer's `metrics.json`.
fn read_auc(path: &Path) -> Option<f64> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let chosen = v["published"].as_str()?;
    v["models"][chosen]["test"]["auc"].as_f64()
}

/// The first day of the month `n` months before today (UTC), as YYYY-MM-DD.
fn months_ago(n: i64) -> String {
    let days = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        / 86_400) as i64;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let total = y * 12 + (m - 1) - n;
    format!(
        "{:04}-{:02}-01",
        total.div_euclid(12),
        total.rem_euclid(12) + 1
    )
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drifted_features_reads_the_monitor_json() {
        let w = |version: u64, window: &str, ended: u64, drifted: &[&str]| {
            json!({"model": "m", "version": version, "source": "live", "window": window,
                   "ended_ms": ended, "features": drifted.iter()
                       .map(|n| json!({"name": n, "drift": true}))
                       .chain([json!({"name": "quiet", "drift": false})])
                       .collect::<Vec<_>>()})
        };
        let v = json!({"windows": [
            w(1, "count", 10, &["old"]), w(1, "count", 20, &["a", "c"]),
            w(1, "time", 30, &["slow"]), w(2, "count", 5, &["a"]),
        ]});
        assert_eq!(drifted_features(&v, 1), vec!["a", "c"]);
        assert_eq!(drifted_features(&v, 2), vec!["a"]);
        assert!(drifted_features(&json!({"windows": []}), 1).is_empty());
    }

    #[test]
    fn months_ago_is_a_first_of_month() {
        let d = months_ago(24);
        assert_eq!(d.len(), 10);
        assert!(d.ends_with("-01"), "{d}");
    }
}
