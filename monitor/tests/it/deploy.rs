//! The shipped Prometheus rules and Grafana dashboards (`deploy/`) against real `/metrics`
//! output: `promtool check metrics` on what the server and the monitor export, `promtool
//! test rules` on the rule tests, and every metric name used in a rule or a dashboard exists.
//!
//! promtool comes from Debian's `prometheus` package (`.ci/run` installs it). Without it the
//! promtool checks are skipped with a message, unless `VANE_REQUIRE_PROMTOOL=1`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use vane_models::credit;
use vane_registry::{DirRegistry, PublishRequest, set_canary};

use crate::util::{Monitor, Server, http, metric, wait_for};

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some("promtool");
    }
    if std::env::var("VANE_REQUIRE_PROMTOOL").as_deref() == Ok("1") {
        panic!(
            "VANE_REQUIRE_PROMTOOL=1 but promtool is not installed (apt-get install prometheus)"
        );
    }
    eprintln!("SKIPPING promtool checks: promtool is not installed (apt-get install prometheus)");
    None
}

/// Sample names in an exposition (`name` of `name{labels} value`).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Every PromQL expression of the rules file (`expr:` values, block scalars included) and
/// the names it records.
fn rule_exprs(path: &Path) -> (Vec<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut exprs = Vec::new();
    let mut records = BTreeSet::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if let Some(r) = t.strip_prefix("- record:") {
            records.insert(r.trim().to_string());
        }
        let Some(e) = t.strip_prefix("expr:") else {
            continue;
        };
        let e = e.trim();
        if e == "|" {
            let indent = line.len() - t.len();
            let mut block = String::new();
            while let Some(next) = lines.peek() {
                let nt = next.trim_start();
                if !nt.is_empty() && next.len() - nt.len() <= indent {
                    break;
                }
                block.push_str(nt);
                block.push('\n');
                lines.next();
            }
            exprs.push(block);
        } else {
            exprs.push(e.to_string());
        }
    }
    (exprs, records)
}

/// Every `expr` and templating query of a dashboard.
fn dashboard_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::Object(q)) => {
                        if let Some(Value::String(s)) = q.get("query") {
                            out.push(s.clone());
                        }
                    }
                    _ => dashboard_exprs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| dashboard_exprs(x, out)),
        _ => {}
    }
}

/// Metric names an expression refers to: identifiers starting with `vane_` or `vane:`, and
/// `up`.
fn names_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
        if ident(b[i]) && (i == 0 || !ident(b[i - 1])) {
            let start = i;
            while i < b.len() && ident(b[i]) {
                i += 1;
            }
            let word = &expr[start..i];
            // Label names inside {…} and `by (…)` are not metrics; metric names here all start
            // with vane_/vane:, which no label does.
            if word.starts_with("vane_") || word.starts_with("vane:") || word == "up" {
                out.push(word.to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}

fn publish(reg: &DirRegistry, model: &str, bytes: Vec<u8>) -> u64 {
    reg.publish(&PublishRequest {
        model: model.into(),
        files: vec![
            ("model.onnx".into(), bytes),
            (
                "signature.json".into(),
                serde_json::to_vec(&credit::signature()).unwrap(),
            ),
        ],
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn rules_and_dashboards_use_only_exported_metrics_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry");
    credit::write_example_registry(&registry).unwrap();
    let reg = DirRegistry::open(&registry).unwrap();
    // credit-risk: a shadow (v2, same model) and a canary that no backend loads (v3); a model
    // published without a profile.
    let v2 = publish(&reg, "credit-risk", credit::logistic_regression().to_onnx());
    let bare = publish(
        &reg,
        "credit-risk-bare",
        credit::logistic_regression().to_onnx(),
    );
    reg.set_alias("credit-risk-bare", "champion", bare).unwrap();
    let profile = crate::outage::profile(dir.path());
    let profile_arg = format!("credit-risk={}", profile.display());
    let monitor = Monitor::start(&[
        "--registry",
        &registry.display().to_string(),
        "--profile",
        &profile_arg,
        "--window-rows",
        "200",
        "--min-window-rows",
        "100",
    ]);
    let server = Server::start(
        &registry,
        &[
            "--backend",
            "tract",
            "--poll-interval-ms",
            "0",
            "--monitor",
            &monitor.ingest,
            "--admin-token",
            "t0ken",
        ],
    );
    let sync = || {
        let (status, _, body) = crate::util::http_with(
            &server.addr,
            "POST",
            "/v2/repository/index",
            "authorization: Bearer t0ken\r\n",
            b"{}",
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
    };
    set_canary(&reg, "credit-risk", v2, 0.0, true).unwrap();
    sync();
    let v3 = publish(&reg, "credit-risk", b"not an onnx graph".to_vec());
    set_canary(&reg, "credit-risk", v3, 0.5, false).unwrap();
    sync();

    let rows = credit::sample_rows(10, 3);
    let body = serde_json::to_vec(&json!({"inputs": [{"name": "input", "shape": [10, credit::N_FEATURES], "datatype": "FP32", "data": rows}]})).unwrap();
    for model in ["credit-risk", "credit-risk-bare"] {
        for _ in 0..60 {
            let (status, _, text) = http(
                &server.addr,
                "POST",
                &format!("/v2/models/{model}/infer"),
                &body,
            )
            .unwrap();
            assert_eq!(status, 200, "{text}");
        }
    }
    let (status, _, _) = http(&server.addr, "POST", "/v2/models/credit-risk/infer", b"{}").unwrap();
    assert_eq!(status, 400);
    // A frame the monitor refuses.
    let mut s = std::net::TcpStream::connect(monitor.ingest.trim_start_matches("tcp://")).unwrap();
    s.write_all(&[3, 0, 0, 0, 9, 9, 9]).unwrap();
    drop(s);
    let monitor_text = wait_for(60, "drift metrics of live and shadow windows", || {
        let t = monitor.metrics();
        (t.contains("vane_drift_share{")
            && t.contains(r#"source="shadow""#)
            && metric(
                &t,
                r#"vane_monitor_rows_total{model="credit-risk-bare",outcome="no_profile""#,
            ) > 0.0
            && metric(&t, r#"vane_monitor_frames_total{outcome="bad_version"}"#) > 0.0)
            .then_some(t)
    });
    let (_, server_text) = crate::util::http_get(&server.addr, "/metrics");
    assert!(
        server_text.contains("vane_model_load_failures_total{"),
        "{server_text}"
    );
    assert!(
        server_text.contains("vane_shadow_abs_diff_bucket{"),
        "{server_text}"
    );

    let mut names = exported(&server_text);
    names.extend(exported(&monitor_text));
    names.insert("up".into());
    let rules = deploy_dir().join("prometheus/vane-rules.yml");
    let (mut exprs, records) = rule_exprs(&rules);
    assert!(exprs.len() >= 30, "rules parsed: {}", exprs.len());
    let mut dashboards = 0;
    for entry in std::fs::read_dir(deploy_dir().join("grafana")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let before = exprs.len();
            dashboard_exprs(&v, &mut exprs);
            assert!(
                exprs.len() > before + 5,
                "{}: no queries found",
                path.display()
            );
            dashboards += 1;
        }
    }
    assert!(dashboards >= 2);
    let mut missing = BTreeSet::new();
    for e in &exprs {
        for n in names_in(e) {
            let known = if n.contains(':') {
                records.contains(&n)
            } else {
                names.contains(&n)
            };
            if !known {
                missing.insert(n);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "used in rules/dashboards but not exported: {missing:?}"
    );

    let Some(promtool) = promtool() else { return };
    for (who, text) in [
        ("vane-server", &server_text),
        ("vane-monitor", &monitor_text),
    ] {
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics on {who}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let tests: Vec<PathBuf> = std::fs::read_dir(deploy_dir().join("prometheus/tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    assert!(tests.len() >= 2);
    let out = Command::new(promtool)
        .args(["test", "rules"])
        .args(&tests)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
