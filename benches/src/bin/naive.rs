//! The naive peer of the end-to-end comparison: what one writes in an afternoon with hyper,
//! serde_json and `ort` — one ONNX Runtime session behind a mutex, each request decoded into a
//! `serde_json::Value`, scored inline on the HTTP thread (no batching, no queue), and answered
//! in the Open Inference Protocol's shape. Vane must beat it (issue 9's goals).
//!
//!   naive MODEL.onnx [ADDR] [THREADS]     (default 127.0.0.1:8091, number of cores)
//!
//! ONNX Runtime comes from `ORT_DYLIB_PATH` (scripts/setup-ort.sh prints it).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;
use serde_json::{Value, json};

struct Model {
    session: Mutex<Session>,
    input: String,
    output: String,
}

fn build(env: &ort::environment::Environment, bytes: &[u8]) -> ort::Result<Session> {
    Session::builder(env)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(1)?
        .with_inter_threads(1)?
        .with_intra_op_spinning(false)?
        .commit_from_memory(bytes)
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn score(model: &Model, body: &[u8]) -> Result<Value, String> {
    let req: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let input = &req["inputs"][0];
    let shape: Vec<usize> = input["shape"]
        .as_array()
        .ok_or("no shape")?
        .iter()
        .filter_map(|d| d.as_u64().map(|d| d as usize))
        .collect();
    let data: Vec<f32> = input["data"]
        .as_array()
        .ok_or("no data")?
        .iter()
        .filter_map(|v| v.as_f64().map(|v| v as f32))
        .collect();
    if shape.len() != 2 || shape[0] * shape[1] != data.len() {
        return Err("shape and data disagree".into());
    }
    let mut session = model.session.lock().map_err(|_| "poisoned")?;
    let x =
        TensorRef::from_array_view(([shape[0], shape[1]], &data[..])).map_err(|e| e.to_string())?;
    let out = session
        .run(ort::inputs![model.input.as_str() => x])
        .map_err(|e| e.to_string())?;
    let (oshape, odata) = out[model.output.as_str()]
        .try_extract_tensor::<f32>()
        .map_err(|e| e.to_string())?;
    Ok(json!({
        "model_name": "credit-risk",
        "model_version": "1",
        "outputs": [{
            "name": model.output,
            "datatype": "FP32",
            "shape": oshape.iter().collect::<Vec<_>>(),
            "data": odata,
        }],
    }))
}

async fn handle(
    model: Arc<Model>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                json!({ "error": e.to_string() }),
            ));
        }
    };
    Ok(match score(&model, &body) {
        Ok(v) => reply(StatusCode::OK, v),
        Err(e) => reply(StatusCode::BAD_REQUEST, json!({ "error": e })),
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: naive MODEL.onnx [ADDR] [THREADS]");
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8091".into());
    let threads = vane_benches::threads_arg(args.next());
    let lib = std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH (scripts/setup-ort.sh)");
    let env = ort::init_from(&lib)
        .expect("load ONNX Runtime")
        .with_name("naive")
        .build()
        .expect("environment");
    let bytes = std::fs::read(&path).expect("read model");
    let session = build(&env, &bytes).expect("session");
    let input = session.inputs()[0].name().to_string();
    let output = session.outputs()[0].name().to_string();
    let model = Arc::new(Model {
        session: Mutex::new(session),
        input,
        output,
    });
    vane_benches::serve_http1(&addr, threads, move |req| handle(model.clone(), req));
}
