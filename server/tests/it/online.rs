//! Entity-keyed requests completed from the online feature store.

use std::time::{SystemTime, UNIX_EPOCH};

use hyper::StatusCode;
use serde_json::{Value, json};
use vane_models::credit;
use vane_online::{EntityKey, FeatureRow, StoredField, Value as Fv, ViewSchema};
use vane_registry::{DirRegistry, FeatureKind, OnlineKey, OnlineSpec, OnlineView, PublishRequest};

use crate::scoring::feature_request;
use crate::util::{Server, assert_close, floats};

pub(crate) const PROFILE: [&str; 6] = [
    "annual_income",
    "employment_length_years",
    "home_ownership",
    "fico_score",
    "credit_history_months",
    "verification_status",
];
pub(crate) const ACTIVITY: [&str; 8] = [
    "debt_to_income",
    "revolving_utilization",
    "delinquencies_2y",
    "inquiries_6m",
    "open_accounts",
    "total_accounts",
    "public_records",
    "months_since_last_delinquency",
];
const DAY_US: i64 = 86_400 * 1_000_000;

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// The example LR, published with an online spec: 14 inputs come from two views.
pub(crate) fn entity_registry() -> tempfile::TempDir {
    registry_with(OnlineSpec {
        keys: vec![OnlineKey::new("applicant_id", "INT64")],
        views: vec![
            OnlineView {
                name: "applicant_profile".into(),
                keys: vec!["applicant_id".into()],
                ttl_s: Some(400 * 86_400),
                features: PROFILE.iter().map(|s| s.to_string()).collect(),
            },
            OnlineView {
                name: "credit_activity".into(),
                keys: vec!["applicant_id".into()],
                ttl_s: Some(90 * 86_400),
                features: ACTIVITY.iter().map(|s| s.to_string()).collect(),
            },
        ],
    })
}

/// A registry holding the example LR as `credit-risk` champion, reading `online`.
pub(crate) fn registry_with(online: OnlineSpec) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let reg = DirRegistry::create(dir.path()).unwrap();
    let mut sig = credit::signature();
    sig.online = Some(online);
    let v = reg
        .publish(&PublishRequest {
            model: "credit-risk".into(),
            files: vec![
                ("model.onnx".into(), credit::logistic_regression().to_onnx()),
                ("signature.json".into(), serde_json::to_vec(&sig).unwrap()),
            ],
            ..Default::default()
        })
        .unwrap();
    reg.set_alias("credit-risk", "champion", v).unwrap();
    dir
}

fn stored(record: &serde_json::Map<String, Value>, names: &[&str], ts: i64) -> FeatureRow {
    FeatureRow {
        event_ts_us: ts,
        values: names
            .iter()
            .map(|n| match &record[*n] {
                Value::String(s) => Fv::Str(s.clone()),
                v => Fv::Num(v.as_f64().unwrap()),
            })
            .collect(),
    }
}

fn fields(names: &[&str]) -> ViewSchema {
    let sig = credit::signature();
    let fields = names
        .iter()
        .map(|n| StoredField {
            name: (*n).into(),
            kind: match sig.inputs[sig.position(n).unwrap()].kind {
                FeatureKind::Numeric => "NUMERIC".into(),
                FeatureKind::Categorical => "STRING".into(),
            },
        })
        .collect();
    ViewSchema::new(vec![StoredField::new("applicant_id", "INT64")], fields)
}

/// Applicants 1..=5 materialized fresh; 6 has a profile but only stale activity.
fn materialize(path: &std::path::Path, records: &[serde_json::Map<String, Value>]) {
    let store = vane_online::open_store(path.to_str().unwrap()).unwrap();
    store
        .write_schema("applicant_profile", &fields(&PROFILE))
        .unwrap();
    store
        .write_schema("credit_activity", &fields(&ACTIVITY))
        .unwrap();
    let now = now_us();
    let rows = |names: &[&str], age_days: i64| -> Vec<(EntityKey, FeatureRow)> {
        records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let key = EntityKey::int(i as i64 + 1);
                (key, stored(r, names, now - age_days * DAY_US))
            })
            .collect()
    };
    store
        .write_batch("applicant_profile", &rows(&PROFILE, 30))
        .unwrap();
    let mut activity = rows(&ACTIVITY, 5);
    activity[5].1.event_ts_us = now - 200 * DAY_US;
    store.write_batch("credit_activity", &activity).unwrap();
}

/// The score of `record` sent whole with `features` null: what an entity-keyed request
/// whose view has no fresh row must score.
pub(crate) fn score_with_nulls(
    server: &Server,
    record: &serde_json::Map<String, Value>,
    features: &[&str],
) -> Vec<f32> {
    let mut nulled = record.clone();
    for f in features {
        nulled.insert(f.to_string(), Value::Null);
    }
    let (status, _, direct) = server.json(
        "POST",
        "/v1/models/credit-risk:predict",
        &json!({"instances": [nulled]}),
    );
    assert_eq!(status, StatusCode::OK, "{direct}");
    floats(&direct["predictions"])
}

/// The request-time inputs of `records` plus `applicant_id`.
pub(crate) fn keyed_request(ids: &[i64], records: &[serde_json::Map<String, Value>]) -> Value {
    let mut req = feature_request(records);
    let inputs = req["inputs"].as_array_mut().unwrap();
    inputs.retain(|i| {
        let n = i["name"].as_str().unwrap();
        !PROFILE.contains(&n) && !ACTIVITY.contains(&n)
    });
    inputs.push(
        json!({"name": "applicant_id", "shape": [ids.len()], "datatype": "INT64", "data": ids}),
    );
    req
}

#[test]
fn entity_keyed_requests_score_like_full_ones() {
    let reg = entity_registry();
    let records = credit::sample_records(6, 17);
    let store_dir = tempfile::tempdir().unwrap();
    let store = store_dir.path().join("online.redb");
    materialize(&store, &records);
    let store_s = store.display().to_string();
    // Missing values allowed, so a direct request can send the nulls an expired view gives.
    let server = Server::start(
        reg.path(),
        &[
            "--backend",
            "tract",
            "--online-store",
            &store_s,
            "--allow-missing",
            "true",
        ],
    );

    let full = feature_request(&records[..5]);
    let (status, _, direct) = server.json("POST", "/v2/models/credit-risk/infer", &full);
    assert_eq!(status, StatusCode::OK, "{direct}");
    let (status, _, keyed) = server.json(
        "POST",
        "/v2/models/credit-risk/infer",
        &keyed_request(&[1, 2, 3, 4, 5], &records[..5]),
    );
    assert_eq!(status, StatusCode::OK, "{keyed}");
    assert_close(
        &floats(&keyed["outputs"][0]["data"]),
        &floats(&direct["outputs"][0]["data"]),
        1e-6,
        "keyed vs direct",
    );

    // Records route, with one stored value overridden by the client.
    let mut inst: serde_json::Map<String, Value> = records[2]
        .iter()
        .filter(|(k, _)| !PROFILE.contains(&k.as_str()) && !ACTIVITY.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    inst.insert("applicant_id".into(), json!(3));
    let (status, _, v1) = server.json(
        "POST",
        "/v1/models/credit-risk:predict",
        &json!({"instances": [inst.clone()]}),
    );
    assert_eq!(status, StatusCode::OK, "{v1}");
    assert_close(
        &floats(&v1["predictions"]),
        &floats(&direct["outputs"][0]["data"])[2..3],
        1e-6,
        "v1 keyed",
    );
    inst.insert("fico_score".into(), json!(820));
    let mut changed = records[2].clone();
    changed.insert("fico_score".into(), json!(820));
    let (_, _, overridden) = server.json(
        "POST",
        "/v1/models/credit-risk:predict",
        &json!({"instances": [inst]}),
    );
    let (_, _, expected) = server.json(
        "POST",
        "/v1/models/credit-risk:predict",
        &json!({"instances": [changed]}),
    );
    assert_close(
        &floats(&overridden["predictions"]),
        &floats(&expected["predictions"]),
        1e-6,
        "client value wins",
    );

    // An entity no view knows is a 404 naming the id.
    let (status, _, body) = server.json(
        "POST",
        "/v2/models/credit-risk/infer",
        &keyed_request(&[1, 99], &records[..2]),
    );
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("applicant_id 99"),
        "{body}"
    );
    // A view whose row is older than its TTL gives nulls, as the training join does: the
    // score equals a direct request with those features null.
    let (status, _, stale) = server.json(
        "POST",
        "/v2/models/credit-risk/infer",
        &keyed_request(&[6], &records[5..6]),
    );
    assert_eq!(status, StatusCode::OK, "{stale}");
    assert_close(
        &floats(&stale["outputs"][0]["data"]),
        &score_with_nulls(&server, &records[5], &ACTIVITY),
        1e-6,
        "expired view = nulls",
    );
    // The stored values and their statuses, as Feast's get-online-features reports them.
    let (status, _, read) = server.json(
        "POST",
        "/v1/features",
        &json!({"features": ["credit_activity:debt_to_income", "applicant_profile:fico_score"],
                "entities": {"applicant_id": [1, 6, 99]}}),
    );
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(
        read["metadata"]["feature_names"],
        json!(["applicant_id", "debt_to_income", "fico_score"])
    );
    let results = read["results"].as_array().unwrap();
    assert_eq!(results[0]["values"], json!([1, 6, 99]));
    assert_eq!(
        results[1]["statuses"],
        json!(["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"])
    );
    assert_eq!(
        results[1]["values"][0].as_f64(),
        records[0]["debt_to_income"].as_f64()
    );
    assert_eq!(results[1]["values"][1], Value::Null);
    assert_eq!(
        results[2]["statuses"],
        json!(["PRESENT", "PRESENT", "NOT_FOUND"])
    );
    assert_eq!(
        results[2]["values"][1].as_f64(),
        records[5]["fico_score"].as_f64()
    );
    // A served model as the feature service: all its online features, full names on request.
    let (status, _, read) = server.json(
        "POST",
        "/v1/features",
        &json!({"feature_service": "credit-risk", "entities": {"applicant_id": [2]},
                "full_feature_names": true}),
    );
    assert_eq!(status, StatusCode::OK, "{read}");
    let names = read["metadata"]["feature_names"].as_array().unwrap();
    assert_eq!(names.len(), 1 + PROFILE.len() + ACTIVITY.len());
    assert!(
        names.contains(&json!("credit_activity__debt_to_income")),
        "{read}"
    );
    // Mistakes are named.
    for (body, needle) in [
        (
            json!({"features": ["debt_to_income"], "entities": {"applicant_id": [1]}}),
            "view:feature",
        ),
        (
            json!({"features": ["credit_activity:nope"], "entities": {"applicant_id": [1]}}),
            "\"nope\"",
        ),
        (
            json!({"features": ["credit_activity:debt_to_income"], "entities": {"applicant_id": ["x"]}}),
            "entities.applicant_id: online view \"credit_activity\" stores this key as INT64",
        ),
    ] {
        let (status, _, r) = server.json("POST", "/v1/features", &body);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
        assert!(
            r["error"].as_str().unwrap().contains(needle),
            "{needle}: {r}"
        );
    }

    // Without the key, the stored features are required.
    let mut partial = keyed_request(&[1], &records[..1]);
    partial["inputs"]
        .as_array_mut()
        .unwrap()
        .retain(|i| i["name"] != "applicant_id");
    let (status, _, body) = server.json("POST", "/v2/models/credit-risk/infer", &partial);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("applicant_id"),
        "{body}"
    );
}

#[test]
fn an_unreachable_online_store_is_a_503_and_the_server_stays_up() {
    let reg = entity_registry();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = format!("redis://127.0.0.1:{closed}");
    let server = Server::start(reg.path(), &["--backend", "tract", "--online-store", &spec]);
    let records = credit::sample_records(2, 5);
    let (status, _, body) = server.json(
        "POST",
        "/v2/models/credit-risk/infer",
        &keyed_request(&[1, 2], &records),
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("unavailable"),
        "{body}"
    );
    let (status, _, _) = server.json(
        "POST",
        "/v2/models/credit-risk/infer",
        &feature_request(&records),
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.get("/v2/health/ready").0, StatusCode::OK);
}

/// Regression: the entity key's ids once overwrote feature column 0 when the key was listed
/// before it. Every placement of the key and of an explicit override of a stored feature
/// (`annual_income`, column 0) must give the score of the full request.
#[test]
fn entity_keyed_scores_do_not_depend_on_the_order_of_inputs() {
    let reg = entity_registry();
    let all = credit::sample_records(6, 23);
    let store_dir = tempfile::tempdir().unwrap();
    let store = store_dir.path().join("online.redb");
    materialize(&store, &all);
    let records = all[..3].to_vec();
    let store_s = store.display().to_string();
    let server = Server::start(
        reg.path(),
        &["--backend", "tract", "--online-store", &store_s],
    );
    assert_eq!(credit::signature().inputs[0].name, "annual_income");
    let score = |req: &Value| {
        let (status, _, body) = server.json("POST", "/v2/models/credit-risk/infer", req);
        assert_eq!(status, StatusCode::OK, "{body}");
        floats(&body["outputs"][0]["data"])
    };
    let (_, _, direct) = server.json(
        "POST",
        "/v2/models/credit-risk/infer",
        &feature_request(&records),
    );
    let stored_scores = floats(&direct["outputs"][0]["data"]);
    let mut changed = records.clone();
    for r in &mut changed {
        r.insert("annual_income".into(), json!(250_000.0));
    }
    let overridden_scores = score(&feature_request(&changed));
    assert!(
        (overridden_scores[0] - stored_scores[0]).abs() > 1e-4,
        "the override must change the score for the test to mean anything"
    );

    let keyed = keyed_request(&[1, 2, 3], &records);
    let base: Vec<Value> = keyed["inputs"].as_array().unwrap().clone();
    let income = json!({"name": "annual_income", "shape": [3], "datatype": "FP64",
                        "data": [250_000.0, 250_000.0, 250_000.0]});
    let n = base.len();
    let mut orders = 0;
    // Without the override: the key in every position, the rest rotated as well.
    for rot in 0..n {
        let mut inputs = base.clone();
        inputs.rotate_left(rot);
        for pos in 0..n {
            let key = inputs
                .iter()
                .position(|i| i["name"] == "applicant_id")
                .unwrap();
            let k = inputs.remove(key);
            inputs.insert(pos, k);
            let got = score(&json!({ "inputs": inputs }));
            assert_close(&got, &stored_scores, 1e-6, &format!("order {inputs:?}"));
            orders += 1;
        }
    }
    // With the override: every pair of positions of the key and the override.
    for key_pos in 0..=n {
        for income_pos in 0..=n {
            let mut inputs = base.clone();
            let key = inputs
                .iter()
                .position(|i| i["name"] == "applicant_id")
                .unwrap();
            let k = inputs.remove(key);
            inputs.insert(income_pos.min(inputs.len()), income.clone());
            inputs.insert(key_pos.min(inputs.len()), k);
            let got = score(&json!({ "inputs": inputs }));
            let names: Vec<&str> = inputs.iter().map(|i| i["name"].as_str().unwrap()).collect();
            assert_close(&got, &overridden_scores, 1e-6, &format!("order {names:?}"));
            orders += 1;
        }
    }
    assert!(orders > 60, "{orders} orders tried");
}
