//! Triton's own Python client (`tritonclient[http]`) against the real binary: every call a
//! Triton user makes of a served model (see `triton_client.py`), and its scores equal to the
//! server's plain JSON answer. Without the client installed the test prints why and passes,
//! unless `VANE_REQUIRE_TRITONCLIENT=1` (CI).

use std::path::Path;
use std::process::Command;

use hyper::StatusCode;
use serde_json::{Value, json};
use vane_models::credit;

use crate::scoring::{example_registry, tensor_request};
use crate::util::{ADMIN_TOKEN, Server};

fn client_missing() -> Option<String> {
    let probe = Command::new("python3")
        .args(["-c", "import numpy, tritonclient.http"])
        .output();
    match probe {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Some(format!("python3: {e}")),
    }
}

#[test]
fn tritons_python_client_scores_and_inspects_models() {
    if let Some(why) = client_missing() {
        if std::env::var("VANE_REQUIRE_TRITONCLIENT").as_deref() == Ok("1") {
            panic!("VANE_REQUIRE_TRITONCLIENT=1 but tritonclient is missing: {why}");
        }
        eprintln!("skipping: tritonclient is missing ({why}); pip install 'tritonclient[http]'");
        return;
    }
    let reg = example_registry();
    let server = Server::start(reg.path(), &["--backend", "tract"]);
    let n = 5;
    let rows = credit::sample_rows(n, 11);
    let matrix: Vec<Vec<f32>> = rows
        .chunks(credit::N_FEATURES)
        .map(<[f32]>::to_vec)
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/triton_client.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(server.addr.to_string())
        .arg(ADMIN_TOKEN)
        .arg(json!(matrix).to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "triton_client.py failed:\n{}\n{}\nserver stderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (status, _, want) = server.json(
        "POST",
        "/v2/models/credit-risk/infer",
        &tensor_request(&rows, n),
    );
    assert_eq!(status, StatusCode::OK, "{want}");
    let want: Vec<f64> = want["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let got: Vec<f64> = got["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), n);
    for (g, w) in got.iter().zip(&want) {
        // JSON carries the shortest decimal of each f32: exact after the round trip.
        assert_eq!(*g as f32, *w as f32, "{got:?} vs {want:?}");
    }
}
