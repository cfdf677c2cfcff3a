//! The feature store end to end: datagen → Parquet → point-in-time join / materialize →
//! online lookups, against independent computations from the Parquet files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use vane_features::materialize::{MaterializeOptions, Shard, materialize, read_state};
use vane_features::repo::FeatureRepo;
use vane_features::timeutil::parse_rfc3339;
use vane_features::{OfflineStore, PitOptions, read_parquet_table};
use vane_models::datagen::{DatagenConfig, Drift, generate};
use vane_online::testing::RedisServer;
use vane_online::{OnlineStore, Value, open_store};

const START: &str = "2024-01-01";
/// After the generated window (12 months from START): "now" for these tests.
const AFTER: &str = "2025-06-01";

fn config(out: &Path, seed: u64) -> DatagenConfig {
    DatagenConfig {
        applicants: 400,
        applications: 2_000,
        months: 12,
        start_us: parse_rfc3339(START).unwrap(),
        seed,
        row_group_rows: 1_000,
        ..DatagenConfig::new(out)
    }
}

/// One generated world shared by the tests (seed 11).
fn world() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        generate(&config(dir.path(), 11)).unwrap();
        dir
    })
    .path()
}

fn repo() -> FeatureRepo {
    FeatureRepo::load(world().join("features.toml")).unwrap()
}

fn file_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    [
        "applicant_profile.parquet",
        "credit_activity.parquet",
        "applications.parquet",
    ]
    .iter()
    .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
    .collect()
}

/// A view's rows as plain values: (id, ts, created, position, values).
type SourceRow = (i64, i64, i64, usize, Vec<Value>);

fn source_rows(repo: &FeatureRepo, view: &str) -> Vec<SourceRow> {
    let v = repo.view(view).unwrap();
    let t = read_parquet_table(&repo.source_path(v), None).unwrap();
    let col = |n: &str| t.column_by_name(n).unwrap().clone();
    let ids = col("applicant_id");
    let ts = col("event_timestamp");
    let cr = col("created_timestamp");
    let (ids, ts, cr) = (
        ids.as_primitive::<Int64Type>(),
        ts.as_primitive::<TimestampMicrosecondType>(),
        cr.as_primitive::<TimestampMicrosecondType>(),
    );
    (0..t.num_rows())
        .map(|i| {
            let values = v.fields.iter().map(|f| value(&t, &f.name, i)).collect();
            (ids.value(i), ts.value(i), cr.value(i), i, values)
        })
        .collect()
}

fn value(t: &RecordBatch, name: &str, i: usize) -> Value {
    let c = t.column_by_name(name).unwrap();
    if c.is_null(i) {
        return Value::Null;
    }
    match c.data_type() {
        arrow_schema::DataType::Float64 => Value::Num(c.as_primitive::<Float64Type>().value(i)),
        arrow_schema::DataType::Int64 => Value::Num(c.as_primitive::<Int64Type>().value(i) as f64),
        _ => Value::Str(c.as_string::<i32>().value(i).to_string()),
    }
}

/// Independent: the latest row per entity with ts in [lo, hi), by (ts, created, position).
fn latest(rows: &[SourceRow], lo: i64, hi: i64) -> HashMap<i64, (i64, Vec<Value>)> {
    let mut best: HashMap<i64, &SourceRow> = HashMap::new();
    for r in rows.iter().filter(|r| r.1 >= lo && r.1 < hi) {
        let e = best.entry(r.0).or_insert(r);
        if (r.1, r.2, r.3) > (e.1, e.2, e.3) {
            *e = r;
        }
    }
    best.into_iter()
        .map(|(k, r)| (k, (r.1, r.4.clone())))
        .collect()
}

fn assert_store_holds(
    store: &dyn OnlineStore,
    view: &str,
    want: &HashMap<i64, (i64, Vec<Value>)>,
    ids: &[i64],
) {
    let got = store.read_batch(view, &keys(ids)).unwrap();
    for (id, g) in ids.iter().zip(got) {
        match (want.get(id), g) {
            (None, None) => {}
            (Some((ts, values)), Some(row)) => {
                assert_eq!(row.event_ts_us, *ts, "{view} {id}");
                assert_eq!(&row.values, values, "{view} {id}");
            }
            (w, g) => panic!("{view} {id}: want {w:?}, got {g:?}"),
        }
    }
}

fn keys(ids: &[i64]) -> Vec<vane_online::EntityKey> {
    ids.iter()
        .map(|&i| vane_online::EntityKey::int(i))
        .collect()
}

fn all_ids() -> Vec<i64> {
    (0..=405).collect()
}

fn opts(end: &str) -> MaterializeOptions {
    MaterializeOptions {
        end_us: Some(parse_rfc3339(end).unwrap()),
        batch_rows: 97,
        ..MaterializeOptions::default()
    }
}

fn check_materialized_latest(store: &dyn OnlineStore) {
    let repo = repo();
    let s = materialize(&repo, store, &opts(AFTER)).unwrap();
    assert_eq!(s.views.len(), 2);
    for view in ["applicant_profile", "credit_activity"] {
        let rows = source_rows(&repo, view);
        let want = latest(&rows, i64::MIN, i64::MAX);
        assert!(want.len() > 300, "{view}: {}", want.len());
        let vs = s.views.iter().find(|v| v.view == view).unwrap();
        assert_eq!(vs.rows, rows.len() as u64);
        assert_eq!(vs.entities, want.len() as u64);
        assert_eq!(
            store.read_schema(view).unwrap(),
            Some(repo.view(view).unwrap().stored_schema())
        );
        assert_store_holds(store, view, &want, &all_ids());
    }
    // The corrections in the profile view: same event time, later created time wins.
    let rows = source_rows(&repo, "applicant_profile");
    assert!(
        rows.windows(2)
            .any(|w| w[0].0 == w[1].0 && w[0].1 == w[1].1),
        "datagen writes some corrections"
    );
}

#[test]
fn datagen_is_deterministic_and_writes_the_documented_files() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let sa = generate(&config(a.path(), 5)).unwrap();
    generate(&config(b.path(), 5)).unwrap();
    generate(&config(c.path(), 6)).unwrap();
    assert_eq!(file_bytes(a.path()), file_bytes(b.path()));
    assert_ne!(file_bytes(a.path()), file_bytes(c.path()));
    assert_eq!(sa.applications, 2_000);
    let rate = sa.default_rate();
    assert!((0.08..0.25).contains(&rate), "default rate {rate}");
    assert!(sa.applications_without_activity > 0, "nulls happen");
    for f in ["features.toml", "datagen.json"] {
        assert!(a.path().join(f).is_file(), "{f}");
    }
    let apps = read_parquet_table(&a.path().join("applications.parquet"), None).unwrap();
    let names: Vec<String> = apps
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "application_id",
            "applicant_id",
            "event_timestamp",
            "loan_amount",
            "term",
            "purpose",
            "interest_rate",
            "installment",
            "loan_to_income",
            "default_12m"
        ]
    );
    // Categorical values come from the credit vocabularies.
    let purpose = apps.column_by_name("purpose").unwrap().as_string::<i32>();
    let vocab = vane_models::credit::CATEGORICAL[1].vocab;
    assert!(purpose.iter().all(|p| vocab.contains(&p.unwrap())));
}

#[test]
fn drift_changes_only_rows_from_the_drift_date() {
    let base = tempfile::tempdir().unwrap();
    let drifted = tempfile::tempdir().unwrap();
    let from = parse_rfc3339("2024-07-01").unwrap();
    generate(&config(base.path(), 3)).unwrap();
    let cfg = DatagenConfig {
        drift: Drift {
            from_us: Some(from),
            shift: vec![("annual_income".into(), -0.2)],
            scale: vec![("revolving_utilization".into(), 1.5)],
            mix: vec![("purpose".into(), "small_business".into(), 0.3)],
            unseen: vec![("home_ownership".into(), "SHARED".into(), 0.2)],
        },
        ..config(drifted.path(), 3)
    };
    generate(&cfg).unwrap();
    let read = |d: &Path, f: &str| read_parquet_table(&d.join(f), None).unwrap();
    for (file, col) in [
        ("applicant_profile.parquet", "annual_income"),
        ("credit_activity.parquet", "revolving_utilization"),
        ("applications.parquet", "purpose"),
        ("applicant_profile.parquet", "home_ownership"),
    ] {
        let (a, b) = (read(base.path(), file), read(drifted.path(), file));
        assert_eq!(a.num_rows(), b.num_rows(), "same world, same rows");
        let ts = a
            .column_by_name("event_timestamp")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>()
            .clone();
        let (mut before_same, mut after_changed, mut after) = (true, 0, 0);
        for i in 0..a.num_rows() {
            let (x, y) = (value(&a, col, i), value(&b, col, i));
            if ts.value(i) < from {
                before_same &= x == y;
            } else {
                after += 1;
                after_changed += usize::from(x != y);
            }
        }
        assert!(before_same, "{file}:{col} changed before the drift date");
        assert!(
            after > 100 && after_changed * 10 > after,
            "{file}:{col}: {after_changed}/{after} changed"
        );
    }
    let b = read(drifted.path(), "applicant_profile.parquet");
    let home = b
        .column_by_name("home_ownership")
        .unwrap()
        .as_string::<i32>();
    assert!(
        home.iter().any(|h| h == Some("SHARED")),
        "unseen category appears"
    );
    // Labels come from the undrifted world.
    let (a, b) = (
        read(base.path(), "applications.parquet"),
        read(drifted.path(), "applications.parquet"),
    );
    assert_eq!(
        a.column_by_name("default_12m").unwrap(),
        b.column_by_name("default_12m").unwrap()
    );
}

#[test]
fn point_in_time_join_on_generated_data_never_leaks_and_matches_brute_force() {
    let repo = repo();
    let apps = read_parquet_table(&world().join("applications.parquet"), None).unwrap();
    let features = repo.service_features("credit_risk_v1").unwrap().to_vec();
    let store = OfflineStore::load(&repo, &features).unwrap();
    let out = store
        .get_historical_features_with(
            &apps,
            &features,
            &PitOptions {
                feature_timestamps: true,
                ..PitOptions::default()
            },
        )
        .unwrap();
    assert_eq!(out.num_rows(), apps.num_rows());
    assert_eq!(out.num_columns(), apps.num_columns() + 14 + 2);
    for c in 0..apps.num_columns() {
        assert_eq!(out.column(c), apps.column(c), "passthrough column {c}");
    }
    let app_ts = apps
        .column_by_name("event_timestamp")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>()
        .clone();
    let app_id = apps
        .column_by_name("applicant_id")
        .unwrap()
        .as_primitive::<Int64Type>()
        .clone();
    let mut nulls = 0;
    for (view, ttl_days) in [("applicant_profile", 400i64), ("credit_activity", 90)] {
        let fts = out
            .column_by_name(&format!("{view}__event_timestamp"))
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>()
            .clone();
        let rows = source_rows(&repo, view);
        let fields = &repo.view(view).unwrap().fields;
        for i in 0..out.num_rows() {
            let t = app_ts.value(i);
            // Brute force: latest row with ts ≤ t within the TTL.
            let want = rows
                .iter()
                .filter(|r| {
                    r.0 == app_id.value(i) && r.1 <= t && t - r.1 <= ttl_days * 86_400_000_000
                })
                .max_by_key(|r| (r.1, r.2, r.3));
            match want {
                None => {
                    assert!(fts.is_null(i));
                    nulls += 1;
                }
                Some(r) => {
                    assert!(
                        fts.value(i) <= t,
                        "leak: feature from after the application"
                    );
                    assert_eq!(fts.value(i), r.1);
                    for (f, v) in fields.iter().zip(&r.4) {
                        assert_eq!(&value(&out, &f.name, i), v, "{view}.{} row {i}", f.name);
                    }
                }
            }
        }
    }
    assert!(nulls > 0, "some applications have no features in TTL");
}

#[test]
fn materialize_to_embedded_returns_the_latest_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path().join("online.redb").to_str().unwrap()).unwrap();
    check_materialized_latest(&*store);
}

#[test]
fn materialize_to_redis_returns_the_latest_values() {
    let Some(server) = RedisServer::start("materialize_to_redis_returns_the_latest_values") else {
        return;
    };
    let store = open_store(&server.url()).unwrap();
    check_materialized_latest(&*store);
    // Incremental and sharded runs against Redis too.
    let store2 = open_store(&format!("{}/1", server.url())).unwrap();
    check_incremental(&*store2);
}

fn check_incremental(store: &dyn OnlineStore) {
    let repo = repo();
    let mid = parse_rfc3339("2024-07-15").unwrap();
    let mut first = opts("2024-07-15");
    first.incremental = true;
    let s1 = materialize(&repo, store, &first).unwrap();
    assert!(
        s1.views.iter().all(|v| v.start_us.is_none()),
        "first run starts at the beginning"
    );
    for view in ["applicant_profile", "credit_activity"] {
        assert_eq!(read_state(store, view, Shard::ALL).unwrap(), Some(mid));
        let want = latest(&source_rows(&repo, view), i64::MIN, mid);
        assert_store_holds(store, view, &want, &all_ids());
    }
    let mut second = opts(AFTER);
    second.incremental = true;
    let s2 = materialize(&repo, store, &second).unwrap();
    for v in &s2.views {
        assert_eq!(
            v.start_us,
            Some(mid),
            "{}: continues where the last run ended",
            v.view
        );
        let want = latest(&source_rows(&repo, &v.view), i64::MIN, i64::MAX);
        assert_store_holds(store, &v.view, &want, &all_ids());
    }
    // Nothing new: an incremental run up to the same end does nothing.
    let s3 = materialize(&repo, store, &second).unwrap();
    assert_eq!(s3.rows(), 0);
    assert!(
        materialize(
            &repo,
            store,
            &MaterializeOptions {
                start_us: Some(0),
                ..second.clone()
            }
        )
        .is_err(),
        "--start with --incremental"
    );
}

#[test]
fn incremental_materialization_continues_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path().join("online.redb").to_str().unwrap()).unwrap();
    check_incremental(&*store);
}

#[test]
fn shards_partition_the_entities_and_their_union_is_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo();
    let n = 3;
    let stores: Vec<_> = (0..n)
        .map(|i| open_store(dir.path().join(format!("s{i}.redb")).to_str().unwrap()).unwrap())
        .collect();
    let mut entities = 0;
    for (i, s) in stores.iter().enumerate() {
        let mut o = opts(AFTER);
        o.shard = Shard {
            index: i as u32,
            count: n,
        };
        let sum = materialize(&repo, &**s, &o).unwrap();
        entities += sum
            .views
            .iter()
            .find(|v| v.view == "credit_activity")
            .unwrap()
            .entities;
        assert!(
            read_state(&**s, "credit_activity", o.shard)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            read_state(&**s, "credit_activity", Shard::ALL).unwrap(),
            None,
            "state is per shard"
        );
    }
    let want = latest(&source_rows(&repo, "credit_activity"), i64::MIN, i64::MAX);
    assert_eq!(entities, want.len() as u64);
    let ids = all_ids();
    let per_store: Vec<_> = stores
        .iter()
        .map(|s| s.read_batch("credit_activity", &keys(&ids)).unwrap())
        .collect();
    for (k, id) in ids.iter().enumerate() {
        let holders: Vec<_> = per_store
            .iter()
            .filter_map(|rows| rows[k].as_ref())
            .collect();
        match want.get(id) {
            None => assert!(holders.is_empty(), "{id}"),
            Some((ts, values)) => {
                assert_eq!(holders.len(), 1, "{id} is in exactly one shard");
                assert_eq!(
                    (holders[0].event_ts_us, &holders[0].values),
                    (*ts, values),
                    "{id}"
                );
            }
        }
    }
    // All shards into one store: same as one unsharded run.
    let one = open_store(dir.path().join("all.redb").to_str().unwrap()).unwrap();
    for i in 0..n {
        let mut o = opts(AFTER);
        o.shard = Shard { index: i, count: n };
        materialize(&repo, &*one, &o).unwrap();
    }
    assert_store_holds(&*one, "credit_activity", &want, &ids);
}

#[test]
fn rerunning_or_materializing_an_older_window_never_regresses_values() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo();
    let store = open_store(dir.path().join("online.redb").to_str().unwrap()).unwrap();
    materialize(&repo, &*store, &opts(AFTER)).unwrap();
    let want = latest(&source_rows(&repo, "credit_activity"), i64::MIN, i64::MAX);
    // The same run again: nothing changes.
    let again = materialize(&repo, &*store, &opts(AFTER)).unwrap();
    assert_store_holds(&*store, "credit_activity", &want, &all_ids());
    assert_eq!(
        again.rows(),
        again.views.iter().map(|v| v.rows).sum::<u64>()
    );
    // An older window (a backfill run late): every row it offers is older, none is stored.
    let old = materialize(&repo, &*store, &opts("2024-06-01")).unwrap();
    let v = old
        .views
        .iter()
        .find(|v| v.view == "credit_activity")
        .unwrap();
    assert!(v.entities > 100, "{}", v.entities);
    // Only entities whose latest row is in the old window get it (again, equal timestamps).
    let old_latest = latest(
        &source_rows(&repo, "credit_activity"),
        i64::MIN,
        parse_rfc3339("2024-06-01").unwrap(),
    );
    let same = old_latest
        .iter()
        .filter(|(k, (ts, _))| want[*k].0 == *ts)
        .count();
    assert!(same < old_latest.len() / 2);
    assert_eq!(
        v.written, same as u64,
        "older rows never replace newer ones"
    );
    assert_store_holds(&*store, "credit_activity", &want, &all_ids());
    // The recorded end stays the later one.
    assert_eq!(
        read_state(&*store, "credit_activity", Shard::ALL).unwrap(),
        Some(parse_rfc3339(AFTER).unwrap())
    );
}

#[test]
fn a_store_with_another_schema_for_the_view_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo();
    let store = open_store(dir.path().join("online.redb").to_str().unwrap()).unwrap();
    store
        .write_schema(
            "credit_activity",
            &vane_online::ViewSchema::new(
                vec![vane_online::StoredField::new("applicant_id", "INT64")],
                vec![vane_online::StoredField::new("x", "NUMERIC")],
            ),
        )
        .unwrap();
    let e = materialize(&repo, &*store, &opts(AFTER))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("credit_activity") && e.contains("another schema"),
        "{e}"
    );
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vane-models"));
    for (k, _) in std::env::vars() {
        if k.starts_with("VANE_") && k != "VANE_REQUIRE_ORT" && k != "VANE_REQUIRE_REDIS" {
            c.env_remove(k);
        }
    }
    c
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn datagen_and_materialize_commands_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("world");
    let out = run_ok(
        bin()
            .args([
                "datagen",
                "--applicants",
                "50",
                "--applications",
                "200",
                "--months",
                "6",
                "--seed",
                "9",
            ])
            .arg("--out")
            .arg(&data)
            .args([
                "--drift-shift",
                "annual_income=-0.2",
                "--drift-unseen",
                "home_ownership=SHARED",
                "--drift-from",
                "2024-03-01",
            ]),
    );
    assert!(
        out.starts_with("wrote ") && out.contains("200 applications"),
        "{out}"
    );
    let store = dir.path().join("online.redb");
    let out = run_ok(
        bin()
            .arg("materialize")
            .arg("--repo")
            .arg(data.join("features.toml"))
            .arg("--store")
            .arg(&store)
            .args([
                "--views",
                "credit_activity",
                "--end",
                "2030-01-01",
                "--shard",
                "1/2",
            ]),
    );
    let line = out.trim();
    assert!(
        line.starts_with("materialized ")
            && line.contains(" entities, 1 views in ")
            && line.ends_with(" rows/s)"),
        "{line}"
    );
    let bad = bin()
        .args(["materialize", "--store", "x.redb", "--repo"])
        .arg(data.join("features.toml"))
        .args(["--shard", "2/2"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("shard"));
    let bad = bin()
        .args(["datagen", "--drift-mix", "purpose=boats:0.2", "--out"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no category \"boats\""));
}

#[test]
fn materialize_writes_into_an_embedded_store_another_process_has_open() {
    // The server keeps the redb file open while a materialize job (another process) writes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("online.redb");
    let store = open_store(path.to_str().unwrap()).unwrap();
    assert_eq!(store.read_schema("credit_activity").unwrap(), None);
    run_ok(
        bin()
            .arg("materialize")
            .arg("--repo")
            .arg(world().join("features.toml"))
            .arg("--store")
            .arg(&path)
            .args(["--views", "credit_activity", "--end", AFTER]),
    );
    let repo = repo();
    let want = latest(&source_rows(&repo, "credit_activity"), i64::MIN, i64::MAX);
    assert_store_holds(&*store, "credit_activity", &want, &all_ids());
}

/// A copy of the shared world whose Parquet files hold their columns in reverse order (as a
/// Spark or pandas export may), with the same `features.toml`.
fn reversed_world() -> tempfile::TempDir {
    use parquet::arrow::ArrowWriter;
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(world()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_owned();
        if path.extension().is_some_and(|e| e == "parquet") {
            let t = read_parquet_table(&path, None).unwrap();
            let order: Vec<usize> = (0..t.num_columns()).rev().collect();
            let reversed = t.project(&order).unwrap();
            let file = std::fs::File::create(dir.path().join(&name)).unwrap();
            let mut w = ArrowWriter::try_new(file, reversed.schema(), None).unwrap();
            w.write(&reversed).unwrap();
            w.close().unwrap();
        } else if path.is_file() {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
        }
    }
    dir
}

#[test]
fn materialize_and_join_read_columns_by_name_whatever_their_order_in_the_file() {
    let copy = reversed_world();
    let repo_r = FeatureRepo::load(copy.path().join("features.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path().join("online.redb").to_str().unwrap()).unwrap();
    materialize(&repo_r, &*store, &opts(AFTER)).unwrap();
    // The values the original (TOML-ordered) files hold, read independently by name.
    for view in ["applicant_profile", "credit_activity"] {
        let want = latest(&source_rows(&repo(), view), i64::MIN, i64::MAX);
        assert_store_holds(&*store, view, &want, &all_ids());
    }
    // The point-in-time join gives the same table from either layout.
    let join = |repo: &FeatureRepo, apps: &Path| {
        let apps = read_parquet_table(apps, None).unwrap();
        let apps = apps
            .project(
                &["application_id", "applicant_id", "event_timestamp"]
                    .map(|c| apps.schema().index_of(c).unwrap()),
            )
            .unwrap();
        let features = repo.service_features("credit_risk_v1").unwrap().to_vec();
        OfflineStore::load(repo, &features)
            .unwrap()
            .get_historical_features_with(&apps, &features, &PitOptions::default())
            .unwrap()
    };
    let a = join(&repo(), &world().join("applications.parquet"));
    let b = join(&repo_r, &copy.path().join("applications.parquet"));
    assert_eq!(a.schema(), b.schema());
    assert_eq!(a, b);
}

#[test]
fn every_parquet_codec_is_written_and_read_alike() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use vane_models::datagen::Codec;
    for (codec, name) in [
        (Codec::Zstd, "ZSTD"),
        (Codec::Gzip, "GZIP"),
        (Codec::Lz4, "LZ4_RAW"),
        (Codec::None, "UNCOMPRESSED"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        generate(&DatagenConfig {
            codec,
            ..config(dir.path(), 11)
        })
        .unwrap();
        for f in [
            "applicant_profile.parquet",
            "credit_activity.parquet",
            "applications.parquet",
        ] {
            // Written with that codec…
            let file = std::fs::File::open(dir.path().join(f)).unwrap();
            let meta = SerializedFileReader::new(file).unwrap().metadata().clone();
            let written = meta.row_group(0).column(0).compression().to_string();
            assert!(written.starts_with(name), "{f}: {written} for {codec:?}");
            // …and read back as the same table as the snappy original.
            let a = read_parquet_table(&world().join(f), None).unwrap();
            let b = read_parquet_table(&dir.path().join(f), None).unwrap();
            assert_eq!(a, b, "{f} with {codec:?}");
        }
        // Materialize reads it too.
        let repo = FeatureRepo::load(dir.path().join("features.toml")).unwrap();
        let store = open_store(dir.path().join("online.redb").to_str().unwrap()).unwrap();
        materialize(&repo, &*store, &opts(AFTER)).unwrap();
        let want = latest(
            &source_rows(&self::repo(), "credit_activity"),
            i64::MIN,
            i64::MAX,
        );
        assert_store_holds(&*store, "credit_activity", &want, &all_ids());
    }
}
