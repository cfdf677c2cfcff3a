//! The `vane-registry` binary against a directory registry (every subcommand) and a static
//! HTTP mirror (read-only).

use serde_json::Value;
use vane_registry::{DirRegistry, Registry, TrafficPolicy};

use crate::common::{
    StaticServer, Validator, cli, cli_err, cli_ok, model_bytes, stderr, version_dir,
};

#[test]
fn cli_every_subcommand_against_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("registry");
    let reg_s = root.to_str().unwrap().to_string();
    let reg = ["--registry", reg_s.as_str()];
    let v1 = version_dir(tmp.path(), 1);
    let v2 = version_dir(tmp.path(), 2);

    // publish prints the new version number, optionally setting an alias.
    let out = cli_ok(
        &[
            "publish",
            v1.to_str().unwrap(),
            "--model",
            "credit",
            "--alias",
            "champion",
            reg[0],
            reg[1],
        ],
        &[],
    );
    assert_eq!(out, "1\n");
    // The registry may also come from VANE_REGISTRY, and flags may precede the subcommand.
    let out = cli_ok(
        &["publish", v2.to_str().unwrap(), "--model", "credit"],
        &[("VANE_REGISTRY", reg_s.as_str())],
    );
    assert_eq!(out, "2\n");
    let dir = DirRegistry::open(&root).unwrap();
    let fetched = dir.fetch("credit", 2).unwrap();
    assert_eq!(fetched.model_bytes, model_bytes(2));
    assert!(fetched.profile.is_some());
    assert!(
        fetched.manifest.files.contains_key("notes.txt"),
        "other regular files are published"
    );

    // alias set / rm.
    cli_ok(
        &[reg[0], reg[1], "alias", "set", "credit", "staging", "2"],
        &[],
    );
    assert_eq!(dir.aliases("credit").unwrap().get("staging"), Some(&2));
    cli_ok(&["alias", "rm", "credit", "staging", reg[0], reg[1]], &[]);
    assert!(!dir.aliases("credit").unwrap().contains_key("staging"));

    // canary set, then list and show.
    let out = cli_ok(
        &[
            "canary", "set", "credit", "2", "--weight", "0.2", reg[0], reg[1],
        ],
        &[],
    );
    assert!(out.contains("canary at weight 0.2"), "{out}");
    let out = cli_ok(&["list", reg[0], reg[1]], &[]);
    assert_eq!(
        out,
        "credit\tversions 1,2\taliases canary=2 champion=1\tcanary_weight 0.2\n"
    );
    let list: Value =
        serde_json::from_str(&cli_ok(&["list", "--json", reg[0], reg[1]], &[])).unwrap();
    assert_eq!(list[0]["versions"], serde_json::json!([1, 2]));
    let show: Value =
        serde_json::from_str(&cli_ok(&["show", "credit@canary", reg[0], reg[1]], &[])).unwrap();
    assert_eq!(show["version"], 2);
    assert_eq!(show["aliases"], serde_json::json!(["canary"]));
    assert_eq!(show["manifest"]["name"], "credit");
    assert_eq!(
        show["manifest"]["files"]["model.onnx"]["size"],
        model_bytes(2).len()
    );
    assert_eq!(show["policy"]["canary_weight"], 0.2);
    let show: Value =
        serde_json::from_str(&cli_ok(&["show", "credit", reg[0], reg[1]], &[])).unwrap();
    assert_eq!(show["version"], 1, "no selector: the champion");
    let show: Value =
        serde_json::from_str(&cli_ok(&["show", "credit/2", reg[0], reg[1]], &[])).unwrap();
    assert_eq!(show["version"], 2);

    // promote, then rollback twice (the second restores the previous champion).
    let out = cli_ok(&["promote", "credit", reg[0], reg[1]], &[]);
    assert!(out.contains("version 2 is the champion"), "{out}");
    assert_eq!(
        dir.policy("credit").unwrap(),
        TrafficPolicy {
            champion: Some(2),
            canary: None,
            canary_weight: 0.0,
            shadow: None
        }
    );
    cli_ok(
        &["canary", "set", "credit", "1", "--shadow", reg[0], reg[1]],
        &[],
    );
    assert_eq!(dir.policy("credit").unwrap().shadow, Some(1));
    let out = cli_ok(&["rollback", "credit", reg[0], reg[1]], &[]);
    assert!(out.contains("canary withdrawn; champion is 2"), "{out}");
    let out = cli_ok(&["rollback", "credit", reg[0], reg[1]], &[]);
    assert!(out.contains("champion 2 -> 1"), "{out}");
    assert_eq!(dir.policy("credit").unwrap().champion, Some(1));
}

#[test]
fn cli_errors_name_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("registry");
    let reg_s = root.to_str().unwrap().to_string();
    let reg = ["--registry", reg_s.as_str()];
    let v1 = version_dir(tmp.path(), 1);
    cli_ok(
        &[
            "publish",
            v1.to_str().unwrap(),
            "--model",
            "credit",
            reg[0],
            reg[1],
        ],
        &[],
    );

    let err = cli_err(
        &["alias", "set", "credit", "champion", "9", reg[0], reg[1]],
        &[],
    );
    assert!(err.contains("credit") && err.contains("version 9"), "{err}");
    let err = cli_err(&["alias", "rm", "credit", "canary", reg[0], reg[1]], &[]);
    assert!(err.contains("alias \"canary\""), "{err}");
    let err = cli_err(&["show", "nope@champion", reg[0], reg[1]], &[]);
    assert!(err.contains("model \"nope\""), "{err}");
    let err = cli_err(&["show", "credit@champion", reg[0], reg[1]], &[]);
    assert!(err.contains("alias \"champion\""), "{err}");
    let err = cli_err(&["promote", "credit", reg[0], reg[1]], &[]);
    assert!(err.contains("no canary or shadow"), "{err}");
    let err = cli_err(&["rollback", "credit", reg[0], reg[1]], &[]);
    assert!(err.contains("no champion"), "{err}");
    let err = cli_err(
        &[
            "canary", "set", "credit", "1", "--weight", "1.5", reg[0], reg[1],
        ],
        &[],
    );
    assert!(err.contains("1.5"), "{err}");
    let err = cli_err(&["list"], &[]);
    assert!(err.contains("VANE_REGISTRY"), "{err}");
    let err = cli_err(
        &[
            "publish",
            tmp.path().join("missing").to_str().unwrap(),
            "--model",
            "m",
            reg[0],
            reg[1],
        ],
        &[],
    );
    assert!(err.contains("missing"), "{err}");
    // A directory without signature.json.
    let bare = tmp.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    std::fs::write(bare.join("model.onnx"), b"x").unwrap();
    let err = cli_err(
        &[
            "publish",
            bare.to_str().unwrap(),
            "--model",
            "m",
            reg[0],
            reg[1],
        ],
        &[],
    );
    assert!(err.contains("signature.json"), "{err}");
    let err = cli_err(&["list", "--registry", "s3://bucket/x"], &[]);
    assert!(err.contains("s3"), "{err}");
    // Usage errors are clap's (exit code 2).
    assert_eq!(cli(&["alias", "set", "credit"], &[]).status.code(), Some(2));
}

#[test]
fn cli_reads_a_static_http_mirror_and_refuses_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("registry");
    let reg_s = root.to_str().unwrap().to_string();
    let v1 = version_dir(tmp.path(), 1);
    cli_ok(
        &[
            "publish",
            v1.to_str().unwrap(),
            "--model",
            "credit",
            "--alias",
            "champion",
            "--registry",
            &reg_s,
        ],
        &[],
    );
    let server = StaticServer::start(&root, Validator::ETag);
    let cache = tmp.path().join("cache");
    let env = [
        ("VANE_REGISTRY", server.url()),
        ("VANE_CACHE_DIR", cache.to_str().unwrap().to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = cli_ok(&["list"], &env);
    assert_eq!(out, "credit\tversions 1\taliases champion=1\n");
    let show: Value = serde_json::from_str(&cli_ok(&["show", "credit@champion"], &env)).unwrap();
    assert_eq!(show["manifest"]["version"], 1);
    for args in [
        vec!["publish", v1.to_str().unwrap(), "--model", "credit"],
        vec!["alias", "set", "credit", "canary", "1"],
        vec!["promote", "credit"],
    ] {
        let o = cli(&args, &env);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("read-only"), "{}", stderr(&o));
    }
}
