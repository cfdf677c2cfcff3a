//! STRING and composite entity keys, end to end: Parquet sources → `materialize` (the
//! library the batch binary runs) → the online store (embedded and Redis) → the server's
//! entity-keyed requests and `/v1/features`.
//!
//! The world: applicants known by a STRING reference (`applicant_ref`), whose credit activity
//! is reported per bureau, so the activity view is keyed by (`applicant_ref`, `bureau_id`).
//! The model reads the profile view by one key and the activity view by both: a service over
//! views of different entities.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use hyper::StatusCode;
use serde_json::{Map, Value, json};
use vane_features::materialize::{MaterializeOptions, materialize};
use vane_features::repo::FeatureRepo;
use vane_models::credit;
use vane_online::OnlineStore;
use vane_online::testing::RedisServer;
use vane_registry::{FeatureKind, OnlineKey, OnlineSpec, OnlineView};

use crate::online::{ACTIVITY, PROFILE, registry_with, score_with_nulls};
use crate::scoring::feature_request;
use crate::util::{Server, assert_close, floats};

const BUREAUS: [i64; 2] = [10, 20];

fn is_categorical(name: &str) -> bool {
    let sig = credit::signature();
    sig.inputs[sig.position(name).unwrap()].kind == FeatureKind::Categorical
}

fn reference(i: usize) -> String {
    format!("A-{i:03}/ü")
}

/// One Parquet file: the key columns, `event_timestamp` (µs), then `features` of `rows`.
fn write_source(
    path: &Path,
    keys: Vec<(&str, ArrayRef)>,
    ts_us: i64,
    features: &[&str],
    rows: &[Map<String, Value>],
) {
    let mut cols = keys;
    let n = rows.len();
    cols.push((
        "event_timestamp",
        Arc::new(Int64Array::from(vec![ts_us; n])) as ArrayRef,
    ));
    for f in features {
        let col: ArrayRef = if is_categorical(f) {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r[*f].as_str().unwrap().to_string()),
            ))
        } else {
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r[*f].as_f64().unwrap()),
            ))
        };
        cols.push((f, col));
    }
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn toml_fields(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| {
            let dtype = if is_categorical(n) { "STRING" } else { "FP64" };
            format!("{{ name = \"{n}\", dtype = \"{dtype}\" }}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The repository and its sources. Applicant `i` has its real activity at bureau
/// `BUREAUS[i % 2]` and decoy activity (another applicant's values) at the other bureau.
fn feature_repo(dir: &Path, records: &[Map<String, Value>]) -> FeatureRepo {
    let now = vane_features::timeutil::now_us();
    let day = 86_400_000_000i64;
    let refs: Vec<String> = (0..records.len()).map(reference).collect();
    write_source(
        &dir.join("profile.parquet"),
        vec![(
            "applicant_ref",
            Arc::new(StringArray::from_iter_values(refs.iter())),
        )],
        now - 3 * day,
        &PROFILE,
        records,
    );
    let mut act_refs = Vec::new();
    let mut act_bureaus = Vec::new();
    let mut act_rows = Vec::new();
    for (i, r) in records.iter().enumerate() {
        act_refs.push(refs[i].clone());
        act_bureaus.push(BUREAUS[i % 2]);
        act_rows.push(r.clone());
        act_refs.push(refs[i].clone());
        act_bureaus.push(BUREAUS[(i + 1) % 2]);
        act_rows.push(records[(i + 1) % records.len()].clone());
    }
    write_source(
        &dir.join("activity.parquet"),
        vec![
            (
                "applicant_ref",
                Arc::new(StringArray::from_iter_values(act_refs.iter())),
            ),
            ("bureau_id", Arc::new(Int64Array::from(act_bureaus))),
        ],
        now - 2 * day,
        &ACTIVITY,
        &act_rows,
    );
    let text = format!(
        r#"
[[entities]]
name = "applicant"
join_key = "applicant_ref"
dtype = "STRING"

[[entities]]
name = "bureau"
join_key = "bureau_id"

[[feature_views]]
name = "applicant_profile"
entity = "applicant"
source = "profile.parquet"
timestamp_field = "event_timestamp"
ttl = "400d"
fields = [{}]

[[feature_views]]
name = "credit_activity"
entities = ["applicant", "bureau"]
source = "activity.parquet"
timestamp_field = "event_timestamp"
ttl = "90d"
fields = [{}]
"#,
        toml_fields(&PROFILE),
        toml_fields(&ACTIVITY)
    );
    let path = dir.join("features.toml");
    std::fs::write(&path, text).unwrap();
    FeatureRepo::load(&path).unwrap()
}

/// The example LR, reading its profile by `applicant_ref` and its activity by
/// (`applicant_ref`, `bureau_id`).
fn registry() -> tempfile::TempDir {
    registry_with(OnlineSpec {
        keys: vec![
            OnlineKey::new("applicant_ref", "STRING"),
            OnlineKey::new("bureau_id", "INT64"),
        ],
        views: vec![
            OnlineView {
                name: "applicant_profile".into(),
                keys: vec!["applicant_ref".into()],
                ttl_s: Some(400 * 86_400),
                features: PROFILE.iter().map(|s| s.to_string()).collect(),
            },
            OnlineView {
                name: "credit_activity".into(),
                keys: vec!["applicant_ref".into(), "bureau_id".into()],
                ttl_s: Some(90 * 86_400),
                features: ACTIVITY.iter().map(|s| s.to_string()).collect(),
            },
        ],
    })
}

/// A V2 request giving the request-time inputs of `records` and both join keys.
fn keyed_request(refs: &[String], bureaus: &[i64], records: &[Map<String, Value>]) -> Value {
    let mut req = feature_request(records);
    let inputs = req["inputs"].as_array_mut().unwrap();
    inputs.retain(|i| {
        let n = i["name"].as_str().unwrap();
        !PROFILE.contains(&n) && !ACTIVITY.contains(&n)
    });
    let n = refs.len();
    inputs.push(json!({"name": "applicant_ref", "shape": [n], "datatype": "BYTES", "data": refs}));
    inputs.push(json!({"name": "bureau_id", "shape": [n], "datatype": "INT64", "data": bureaus}));
    req
}

/// Materializes the repository into `store`, serves it, and checks every route.
fn check_keys_end_to_end(store_spec: &str, store: &dyn OnlineStore) {
    let dir = tempfile::tempdir().unwrap();
    let records = credit::sample_records(6, 29);
    let repo = feature_repo(dir.path(), &records);
    let summary = materialize(&repo, store, &MaterializeOptions::default()).unwrap();
    assert_eq!(summary.views[0].entities, 6, "{summary:?}");
    assert_eq!(summary.views[1].entities, 12, "{summary:?}");
    let reg = registry();
    let server = Server::start(
        reg.path(),
        &[
            "--backend",
            "tract",
            "--online-store",
            store_spec,
            "--allow-missing",
            "true",
        ],
    );

    // Keyed by reference and bureau: the same scores as sending every feature.
    let refs: Vec<String> = (0..6).map(reference).collect();
    let bureaus: Vec<i64> = (0..6).map(|i| BUREAUS[i % 2]).collect();
    let (status, _, direct) = server.json(
        "POST",
        "/v2/models/credit-risk/infer",
        &feature_request(&records),
    );
    assert_eq!(status, StatusCode::OK, "{direct}");
    let (status, _, keyed) = server.json(
        "POST",
        "/v2/models/credit-risk/infer",
        &keyed_request(&refs, &bureaus, &records),
    );
    assert_eq!(status, StatusCode::OK, "{keyed}");
    let want = floats(&direct["outputs"][0]["data"]);
    assert_close(&floats(&keyed["outputs"][0]["data"]), &want, 1e-6, "keyed");
    // The other bureau reads the decoy activity: the composite key picks the row.
    let other: Vec<i64> = (0..6).map(|i| BUREAUS[(i + 1) % 2]).collect();
    let (_, _, decoy) = server.json(
        "POST",
        "/v2/models/credit-risk/infer",
        &keyed_request(&refs[..1], &other[..1], &records[..1]),
    );
    let mut swapped = records[0].clone();
    for f in ACTIVITY {
        swapped.insert(f.into(), records[1][f].clone());
    }
    let (_, _, expected) = server.json(
        "POST",
        "/v2/models/credit-risk/infer",
        &feature_request(&[swapped]),
    );
    assert_close(
        &floats(&decoy["outputs"][0]["data"]),
        &floats(&expected["outputs"][0]["data"]),
        1e-6,
        "decoy bureau",
    );

    // v1 records name both keys.
    let mut inst: Map<String, Value> = records[3]
        .iter()
        .filter(|(k, _)| !PROFILE.contains(&k.as_str()) && !ACTIVITY.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    inst.insert("applicant_ref".into(), json!(refs[3]));
    inst.insert("bureau_id".into(), json!(bureaus[3]));
    let (status, _, v1) = server.json(
        "POST",
        "/v1/models/credit-risk:predict",
        &json!({"instances": [inst]}),
    );
    assert_eq!(status, StatusCode::OK, "{v1}");
    assert_close(&floats(&v1["predictions"]), &want[3..4], 1e-6, "v1 keyed");

    // Every key is required; an unknown entity is a 404 naming the whole key.
    let mut one_key = keyed_request(&refs[..1], &bureaus[..1], &records[..1]);
    one_key["inputs"]
        .as_array_mut()
        .unwrap()
        .retain(|i| i["name"] != "bureau_id");
    let (status, _, body) = server.json("POST", "/v2/models/credit-risk/infer", &one_key);
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("missing join key \"bureau_id\""),
        "{body}"
    );
    let (status, _, body) = server.json(
        "POST",
        "/v2/models/credit-risk/infer",
        &keyed_request(&["B-9".into()], &[10], &records[..1]),
    );
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("(applicant_ref \"B-9\", bureau_id 10)"),
        "{body}"
    );
    // A known applicant at an unknown bureau: its profile is found, its activity reads as
    // nulls, as a direct request with those features null.
    let (status, _, body) = server.json(
        "POST",
        "/v2/models/credit-risk/infer",
        &keyed_request(&refs[..1], &[99], &records[..1]),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_close(
        &floats(&body["outputs"][0]["data"]),
        &score_with_nulls(&server, &records[0], &ACTIVITY),
        1e-6,
        "unknown bureau = null activity",
    );

    // The read endpoint with a composite key.
    let (status, _, read) = server.json(
        "POST",
        "/v1/features",
        &json!({"features": ["credit_activity:debt_to_income", "applicant_profile:fico_score"],
                "entities": {"applicant_ref": [refs[0], refs[0], "B-9"],
                             "bureau_id": [BUREAUS[0], BUREAUS[1], 10]}}),
    );
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(
        read["metadata"]["feature_names"],
        json!(["applicant_ref", "bureau_id", "debt_to_income", "fico_score"])
    );
    let results = read["results"].as_array().unwrap();
    assert_eq!(results[0]["values"], json!([refs[0], refs[0], "B-9"]));
    assert_eq!(
        results[2]["values"][0].as_f64(),
        records[0]["debt_to_income"].as_f64()
    );
    assert_eq!(
        results[2]["values"][1].as_f64(),
        records[1]["debt_to_income"].as_f64()
    );
    assert_eq!(
        results[2]["statuses"],
        json!(["PRESENT", "PRESENT", "NOT_FOUND"])
    );
    assert_eq!(
        results[3]["statuses"],
        json!(["PRESENT", "PRESENT", "NOT_FOUND"])
    );
    let (status, _, r) = server.json(
        "POST",
        "/v1/features",
        &json!({"features": ["credit_activity:debt_to_income"],
                "entities": {"applicant_ref": [refs[0]]}}),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("lacks \"bureau_id\""),
        "{r}"
    );
}

#[test]
fn string_and_composite_keys_through_an_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("online.redb");
    let spec = path.display().to_string();
    let store = vane_online::open_store(&spec).unwrap();
    check_keys_end_to_end(&spec, &*store);
}

#[test]
fn string_and_composite_keys_through_redis() {
    let Some(redis) = RedisServer::start("string_and_composite_keys_through_redis") else {
        return;
    };
    let spec = redis.url();
    let store = vane_online::open_store(&spec).unwrap();
    check_keys_end_to_end(&spec, &*store);
}
