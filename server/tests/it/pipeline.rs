//! The whole loop on embedded defaults: datagen → materialize → train (point-in-time join) →
//! publish → serve; an entity-keyed request scores like a request carrying the features the
//! offline store joins for the same applicants as of now, including applicants whose stored
//! rows are older than their view's TTL (nulls on both sides).

use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use hyper::StatusCode;
use serde_json::{Value, json};
use vane_features::materialize::{MaterializeOptions, materialize};
use vane_features::{FeatureRepo, get_historical_features, read_parquet_table};
use vane_models::datagen::{DatagenConfig, generate};
use vane_models::train::{self, PublishOptions, TrainSpec};

use crate::util::{Server, floats};

const MONTH_US: i64 = 30 * 86_400 * 1_000_000;

fn column_json(batch: &RecordBatch, name: &str, row: usize) -> Value {
    let col = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"));
    if col.is_null(row) {
        return Value::Null;
    }
    if let Some(a) = col.as_any().downcast_ref::<arrow_array::Float64Array>() {
        return json!(a.value(row));
    }
    if let Some(a) = col.as_any().downcast_ref::<Int64Array>() {
        return json!(a.value(row));
    }
    if let Some(a) = col.as_any().downcast_ref::<arrow_array::StringArray>() {
        return json!(a.value(row));
    }
    panic!("column {name}: unexpected type {:?}", col.data_type());
}

#[test]
fn entity_keyed_scores_match_the_offline_join_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let now = vane_features::timeutil::now_us();
    let mut cfg = DatagenConfig::new(&data);
    cfg.applicants = 800;
    cfg.applications = 4000;
    cfg.months = 12;
    cfg.start_us = now - 12 * MONTH_US;
    generate(&cfg).unwrap();
    let repo_path = data.join("features.toml");
    let repo = FeatureRepo::load(&repo_path).unwrap();
    let store_path = tmp.path().join("online.redb");
    {
        let store = vane_online::open_store(store_path.to_str().unwrap()).unwrap();
        materialize(&repo, &*store, &MaterializeOptions::default()).unwrap();
    }
    let mut spec = TrainSpec::new("default_12m");
    spec.exclude = vec!["application_id".into(), "applicant_id".into()];
    spec.gbdt.max_trees = 30;
    let set = train::service_training_set(
        &repo_path,
        None,
        &data.join("applications.parquet"),
        &mut spec,
    )
    .unwrap();
    let report = train::train(&set.batches, &spec).unwrap();
    let registry = tmp.path().join("registry");
    train::publish(
        &report,
        &PublishOptions {
            registry: registry.display().to_string(),
            model: "credit-risk".into(),
            alias: Some("champion".into()),
            lineage: set.lineage.clone(),
            online: set.online.clone(),
            ..PublishOptions::default()
        },
    )
    .unwrap();

    let store_s = store_path.display().to_string();
    // Missing values allowed: the offline join's nulls are sent as they are.
    let server = Server::start(
        &registry,
        &[
            "--backend",
            "tract",
            "--online-store",
            &store_s,
            "--allow-missing",
            "true",
        ],
    );

    // The latest applications, re-stamped "now": the offline join gives what the online store
    // should hold for those applicants.
    let apps = read_parquet_table(&data.join("applications.parquet"), None).unwrap();
    let take = 40;
    let start = apps.num_rows() - take;
    let slice = apps.slice(start, take);
    let ts_idx = slice.schema().index_of("event_timestamp").unwrap();
    let tz: Option<String> = slice
        .column(ts_idx)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("event_timestamp is a µs timestamp")
        .timezone()
        .map(str::to_string);
    let stamped = TimestampMicrosecondArray::from(vec![now; take]).with_timezone_opt(tz);
    let mut cols: Vec<Arc<dyn Array>> = slice.columns().to_vec();
    cols[ts_idx] = Arc::new(stamped);
    let entity_df = RecordBatch::try_new(slice.schema(), cols).unwrap();
    let service = &repo.feature_services[0];
    let joined = get_historical_features(&repo, &entity_df, &service.features).unwrap();

    let sig = &report.signature;
    let (mut compared, mut expired) = (0, 0);
    for r in 0..take {
        let id = column_json(&joined, "applicant_id", r).as_i64().unwrap();
        // Views whose stored row is out of TTL now give nulls online, as they do offline;
        // only an applicant no view knows is a 404 (and then every joined feature is null).
        let complete = service
            .features
            .iter()
            .all(|f| !column_json(&joined, &f.feature, r).is_null());
        let keyed: serde_json::Map<String, Value> = service
            .request_features
            .iter()
            .map(|f| (f.clone(), column_json(&joined, f, r)))
            .chain([("applicant_id".to_string(), json!(id))])
            .collect();
        let (status, _, online) = server.json(
            "POST",
            "/v1/models/credit-risk:predict",
            &json!({"instances": [keyed]}),
        );
        if status == StatusCode::NOT_FOUND {
            assert!(
                service
                    .features
                    .iter()
                    .all(|f| column_json(&joined, &f.feature, r).is_null()),
                "applicant {id} is known offline: {online}"
            );
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{online}");
        if !complete {
            expired += 1;
        }
        let full: serde_json::Map<String, Value> = sig
            .inputs
            .iter()
            .map(|f| (f.name.clone(), column_json(&joined, &f.name, r)))
            .collect();
        let (status, _, offline) = server.json(
            "POST",
            "/v1/models/credit-risk:predict",
            &json!({"instances": [full]}),
        );
        assert_eq!(status, StatusCode::OK, "{offline}");
        let (a, b) = (
            floats(&online["predictions"])[0],
            floats(&offline["predictions"])[0],
        );
        assert!(
            (a - b).abs() < 1e-6,
            "applicant {id}: online {a} vs offline join {b}"
        );
        compared += 1;
    }
    assert!(
        compared >= 30,
        "only {compared} of {take} applicants scored online"
    );
    assert!(
        expired > 0,
        "no applicant had an expired view: the TTL case went untested"
    );
}
