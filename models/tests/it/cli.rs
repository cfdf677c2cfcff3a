//! The `vane-models` binary.

use std::process::Command;

#[test]
fn example_command_publishes_and_prints_one_line_per_model() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vane-models"))
        .args(["example", "--registry"])
        .arg(tmp.path())
        .env_remove("VANE_REGISTRY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (line, name) in lines
        .iter()
        .zip(["credit-risk", "credit-risk-mlp", "credit-risk-gbdt"])
    {
        let dir = tmp.path().join(name).join("versions").join("1");
        assert_eq!(
            *line,
            format!("{name} version 1 (champion) -> {}", dir.display())
        );
        assert!(dir.join("model.onnx").is_file());
    }
}

#[test]
fn example_command_requires_a_registry() {
    let out = Command::new(env!("CARGO_BIN_EXE_vane-models"))
        .arg("example")
        .env_remove("VANE_REGISTRY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--registry"));
}
