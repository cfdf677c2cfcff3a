//! The `vane` binary end to end: the whole-loop demo at a reduced size (real server, monitor,
//! trainer, registry and load tester as child processes), and the pipeline file's local run
//! semantics and Argo rendering.

use std::path::{Path, PathBuf};
use std::process::Command;

fn vane() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vane"));
    // The tests run from the crate directory; the pipeline file lives at the workspace root.
    c.current_dir(root());
    c
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// What one `vane …` run printed.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `vane args…` to completion.
fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = vane().args(args).output().unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[test]
fn the_demo_runs_the_whole_loop() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("demo");
    let addrs = [free_addr(), free_addr(), free_addr(), free_addr()];
    let w = work.display().to_string();
    let demo = run(&[
        "demo",
        "--dir",
        &w,
        "--applicants",
        "2000",
        "--applications",
        "10000",
        "--requests",
        "1000",
        "--window-rows",
        "500",
        "--verdict-seconds",
        "4",
        "--addr",
        &addrs[0],
        "--monitor-http",
        &addrs[1],
        "--monitor-ingest",
        &addrs[2],
        "--prometheus-addr",
        &addrs[3],
    ]);
    let log = &demo.stderr;
    assert!(demo.ok, "demo failed:\n{log}");
    let done = log
        .lines()
        .find(|l| l.contains("done. Model v1 test AUC"))
        .unwrap_or_else(|| panic!("{log}"));
    // A trained model with its AUC.
    let auc: f64 = done.split("AUC ").nth(1).unwrap()[..6].parse().unwrap();
    assert!(auc > 0.7, "{done}");
    // A canary with its verdict, then the matching promotion or rollback.
    assert!(
        done.contains("canary verdict pass → promoted v2")
            || done.contains("canary verdict fail → rolled back (champion v1)"),
        "{done}"
    );
    assert!(
        log.contains("== verdict: vane loadtest"),
        "the verdict ran through the pipeline file:\n{log}"
    );
    // The drifted traffic went to the version the verdict left serving alone, nothing to the
    // withdrawn canary (the demo waits for the server to apply the verdict).
    let champion = if done.contains("promoted v2") {
        "2"
    } else {
        "1"
    };
    let drifted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("traffic-drifted.json")).unwrap()).unwrap();
    let versions: Vec<&String> = drifted["versions"].as_object().unwrap().keys().collect();
    assert_eq!(versions, [champion], "{}", drifted["versions"]);
    // No drift flagged before the injection; the injected features flagged after it.
    assert!(
        done.contains("drift flagged before injection: none"),
        "{done}"
    );
    let after = done.split("after: ").nth(1).unwrap();
    for f in ["annual_income", "interest_rate", "purpose"] {
        assert!(after.contains(f), "{f} not flagged: {done}");
    }
    // With Prometheus installed (CI installs it), the shipped drift alert fires for them.
    let has_prometheus = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("prometheus").is_file()));
    if has_prometheus {
        let firing = done.split("drift alerts firing: ").nth(1).unwrap();
        for f in ["annual_income", "interest_rate", "purpose"] {
            assert!(
                firing.contains(f),
                "no VaneFeatureDrift alert for {f}: {done}"
            );
        }
    } else if std::env::var_os("VANE_REQUIRE_PROMTOOL").is_some() {
        panic!("prometheus is required (VANE_REQUIRE_PROMTOOL) but not on the PATH");
    }
    // The online store the demo materialized answers `vane features read`.
    let store = work.join("online.redb").display().to_string();
    let read_profile = |keys: &[&str]| {
        let base = [
            "features",
            "read",
            "--store",
            &store,
            "--view",
            "applicant_profile",
        ];
        run(&[&base[..], keys].concat())
    };
    let read = read_profile(&["--key", "applicant_id=1", "--key", "applicant_id=99999999"]);
    assert!(read.ok, "{}", read.stderr);
    let lines: Vec<serde_json::Value> = read
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["status"], "PRESENT", "{lines:?}");
    assert!(
        lines[0]["features"].as_object().unwrap().len() > 3,
        "{lines:?}"
    );
    assert_eq!(lines[1]["status"], "NOT_FOUND", "{lines:?}");
    let bad = read_profile(&["--key", "applicant=1"]);
    assert!(
        bad.stderr.contains(r#"missing join key "applicant_id""#),
        "{}",
        bad.stderr
    );
    // No child left behind: the server's, the monitor's and Prometheus' ports are free again.
    for a in &addrs {
        std::net::TcpListener::bind(a).unwrap_or_else(|e| panic!("{a} still taken: {e}"));
    }
    // Every artifact in the one folder.
    for f in [
        "data/applications.parquet",
        "online.redb",
        "registry",
        "verdict.json",
        "drift-after.json",
        "server.log",
        "monitor.log",
    ] {
        assert!(work.join(f).exists(), "{f} missing");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_pipeline_branches_on_outcomes_and_stops_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("reg");
    // Steps that really run: the first exits 1 through `pipeline fail` (an outcome), the
    // branch on it runs, the other branch is skipped; then a failing step stops the pipeline.
    let file = write(
        dir.path(),
        "p.toml",
        &format!(
            r#"
name = "t"
[params]
reg = "{}"
[[steps]]
name = "judge"
run = ["pipeline", "fail", "judged"]
outcomes = {{ pass = 0, fail = 1 }}
[[steps]]
name = "on-pass"
when = "judge == pass"
run = ["registry", "--registry", "${{reg}}", "list"]
[[steps]]
name = "on-fail"
when = "judge == fail"
run = ["registry", "--registry", "${{reg}}", "list"]
[[steps]]
name = "broken"
run = ["registry", "--registry", "${{reg}}", "promote", "nope"]
[[steps]]
name = "never"
run = ["registry", "--registry", "${{reg}}", "list"]
"#,
            reg.display()
        ),
    );
    std::fs::create_dir_all(&reg).unwrap();
    let file = file.display().to_string();
    let p = run(&["pipeline", "run", &file]);
    let log = &p.stderr;
    assert!(!p.ok, "{log}");
    assert!(log.contains("== judge: fail"), "{log}");
    assert!(
        log.contains("== on-pass: skipped (judge was fail)"),
        "{log}"
    );
    assert!(log.contains("== on-fail: ok"), "{log}");
    assert!(
        log.contains(r#"pipeline "t" stopped: step "broken" ended with exit code 1"#),
        "{log}"
    );
    assert!(!log.contains("== never"), "{log}");

    // Selecting steps and overriding parameters; unknown ones are named.
    let p = run(&["pipeline", "run", &file, "--steps", "on-fail"]);
    assert!(
        p.stderr
            .contains(r#"step "on-fail" depends on step "judge""#),
        "{}",
        p.stderr
    );
    let p = run(&["pipeline", "run", &file, "--set", "nope=1"]);
    assert!(
        p.stderr
            .contains("--set nope: the pipeline has no such parameter"),
        "{}",
        p.stderr
    );
}

#[test]
fn the_shipped_pipeline_renders_for_argo() {
    let r = run(&[
        "pipeline",
        "render",
        "--argo",
        "pipelines/credit-risk.toml",
        "--image",
        "vane:test",
        "--volume-claim",
        "vane-data",
        "--set",
        "registry=mlflow://mlflow:5000",
    ]);
    assert!(r.ok, "{}", r.stderr);
    let y = r.stdout;
    assert!(
        y.starts_with("apiVersion: \"argoproj.io/v1alpha1\"\nkind: \"Workflow\"\n"),
        "{y}"
    );
    assert!(y.contains("value: \"mlflow://mlflow:5000\""), "{y}");
    assert!(
        y.contains("when: \"{{steps.verdict.exitCode}} == 0\""),
        "{y}"
    );
    assert!(y.contains("- \"{{workflow.parameters.registry}}\""), "{y}");
    // The schema check itself runs in CI (scripts/validate-deploy.sh, Argo's pinned schema).
}

#[test]
fn completions_and_help() {
    let c = run(&["completions", "bash"]);
    assert!(c.ok && c.stdout.contains("pipeline"));
    // Every command a user runs has a help page with examples.
    for cmd in [
        &[][..],
        &["serve"],
        &["monitor"],
        &["registry"],
        &["features", "datagen"],
        &["features", "materialize"],
        &["features", "join"],
        &["features", "read"],
        &["train"],
        &["loadtest"],
        &["pipeline", "run"],
        &["pipeline", "render"],
        &["demo"],
        &["completions"],
    ] {
        let h = run(&[cmd, &["--help"]].concat());
        assert!(h.ok, "{cmd:?}");
        let help = h.stdout;
        assert!(help.contains("Usage: vane"), "{cmd:?}: {help}");
        assert!(help.contains("Example"), "{cmd:?} has no examples: {help}");
    }
}
