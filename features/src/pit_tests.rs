//! The point-in-time join against a brute-force oracle, and targeted no-leakage tests.

use std::path::Path;
use std::sync::Arc;

use crate::repo::{FeatureRef, FeatureRepo};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampSecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use proptest::prelude::*;

use super::*;

fn repo(ttl: Option<u64>, created: bool) -> FeatureRepo {
    let ttl = ttl.map(|s| format!("ttl = \"{s}s\"\n")).unwrap_or_default();
    let created = if created {
        "created_timestamp_field = \"created\"\n"
    } else {
        ""
    };
    let text = format!(
        r#"
[[entities]]
name = "user"
join_key = "user_id"

[[feature_views]]
name = "v"
entity = "user"
source = "v.parquet"
timestamp_field = "ts"
{created}{ttl}fields = [{{ name = "x", dtype = "FP64" }}, {{ name = "s", dtype = "STRING" }}, {{ name = "n", dtype = "INT64" }}]
"#
    );
    FeatureRepo::parse(&text, Path::new("/tmp/features.toml")).unwrap()
}

/// One feature row: (key, ts, created); its values are derived from its source position.
type Row = (i64, i64, Option<i64>);

fn ts_array(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
}

/// The view's rows as batches (split at `splits`), value x = position, s = "p<position>",
/// n = position * 10.
fn view_batches(rows: &[Row], splits: &[usize], created: bool) -> Vec<RecordBatch> {
    let mut cuts: Vec<usize> = splits.iter().map(|s| s % (rows.len() + 1)).collect();
    cuts.push(0);
    cuts.push(rows.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|w| {
            let part = &rows[w[0]..w[1]];
            let pos = w[0]..w[1];
            let mut cols: Vec<(&str, ArrayRef)> = vec![
                (
                    "user_id",
                    Arc::new(Int64Array::from_iter_values(part.iter().map(|r| r.0))),
                ),
                ("ts", ts_array(part.iter().map(|r| Some(r.1)).collect())),
            ];
            if created {
                cols.push(("created", ts_array(part.iter().map(|r| r.2).collect())));
            }
            cols.push((
                "x",
                Arc::new(Float64Array::from_iter_values(
                    pos.clone().map(|p| p as f64),
                )),
            ));
            cols.push((
                "s",
                Arc::new(StringArray::from_iter_values(
                    pos.clone().map(|p| format!("p{p}")),
                )),
            ));
            cols.push((
                "n",
                Arc::new(Int64Array::from_iter_values(pos.map(|p| p as i64 * 10))),
            ));
            RecordBatch::try_from_iter_with_nullable(cols.into_iter().map(|(n, c)| (n, c, true)))
                .unwrap()
        })
        .collect()
}

/// Entity rows: (key or null, ts or null), plus a label column passed through.
fn entity_df(rows: &[(Option<i64>, Option<i64>)]) -> RecordBatch {
    RecordBatch::try_from_iter(vec![
        (
            "label",
            Arc::new(Int64Array::from_iter_values(
                (0..rows.len() as i64).map(|i| i % 2),
            )) as ArrayRef,
        ),
        (
            "user_id",
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
        ),
        (
            "event_timestamp",
            ts_array(rows.iter().map(|r| r.1).collect()),
        ),
    ])
    .unwrap()
}

/// Brute force: the position of the row Feast would pick.
fn oracle(
    rows: &[Row],
    key: Option<i64>,
    at: Option<i64>,
    ttl_s: Option<u64>,
    created: bool,
) -> Option<usize> {
    let (key, at) = (key?, at?);
    rows.iter()
        .enumerate()
        .filter(|(_, r)| r.0 == key && r.1 <= at)
        .filter(|(_, r)| ttl_s.is_none_or(|t| (at - r.1) as i128 <= t as i128 * 1_000_000))
        .max_by_key(|(p, r)| {
            (
                r.1,
                if created {
                    r.2.unwrap_or(i64::MIN)
                } else {
                    i64::MIN
                },
                *p,
            )
        })
        .map(|(p, _)| p)
}

fn refs() -> Vec<FeatureRef> {
    ["x", "s", "n"]
        .iter()
        .map(|f| FeatureRef::new("v", *f))
        .collect()
}

fn join(
    rows: &[Row],
    splits: &[usize],
    entities: &[(Option<i64>, Option<i64>)],
    ttl_s: Option<u64>,
    created: bool,
    threads: usize,
) -> RecordBatch {
    let repo = repo(ttl_s, created);
    let table = ViewTable::from_batches(
        repo.view("v").unwrap(),
        &view_batches(rows, splits, created),
        None,
    )
    .unwrap();
    let store = OfflineStore::from_tables(vec![table]);
    let opts = PitOptions {
        threads,
        feature_timestamps: true,
        ..PitOptions::default()
    };
    store
        .get_historical_features_with(&entity_df(entities), &refs(), &opts)
        .unwrap()
}

fn check_against_oracle(
    rows: &[Row],
    splits: &[usize],
    entities: &[(Option<i64>, Option<i64>)],
    ttl_s: Option<u64>,
    created: bool,
    threads: usize,
) -> Result<(), TestCaseError> {
    let out = join(rows, splits, entities, ttl_s, created, threads);
    let schema = out.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    prop_assert_eq!(
        names,
        vec![
            "label",
            "user_id",
            "event_timestamp",
            "x",
            "s",
            "n",
            "v__event_timestamp"
        ]
    );
    let x = out.column(3).as_primitive::<Float64Type>();
    let s = out.column(4).as_string::<i32>();
    let n = out.column(5).as_primitive::<Int64Type>();
    let fts = out
        .column(6)
        .as_primitive::<arrow_array::types::TimestampMicrosecondType>();
    for (i, (k, t)) in entities.iter().enumerate() {
        let want = oracle(rows, *k, *t, ttl_s, created);
        match want {
            None => {
                prop_assert!(
                    x.is_null(i) && s.is_null(i) && n.is_null(i) && fts.is_null(i),
                    "row {}: expected null, got x={:?}",
                    i,
                    x.is_valid(i).then(|| x.value(i))
                );
            }
            Some(p) => {
                prop_assert!(
                    x.is_valid(i),
                    "row {}: expected position {}, got null",
                    i,
                    p
                );
                prop_assert_eq!(x.value(i) as usize, p, "row {}", i);
                prop_assert_eq!(s.value(i), format!("p{p}"));
                prop_assert_eq!(n.value(i), p as i64 * 10);
                prop_assert_eq!(fts.value(i), rows[p].1);
                prop_assert!(fts.value(i) <= t.unwrap(), "no leakage");
            }
        }
    }
    // Passthrough columns unchanged.
    let df = entity_df(entities);
    for c in 0..3 {
        prop_assert_eq!(out.column(c).as_ref(), df.column(c).as_ref());
    }
    Ok(())
}

fn row_strategy() -> impl Strategy<Value = Row> {
    // Small ranges so ties (same ts, same created), duplicates and TTL edges are common.
    (0i64..6, 0i64..30, proptest::option::weighted(0.8, 0i64..4))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn pit_join_matches_the_oracle(
        rows in proptest::collection::vec(row_strategy(), 0..60),
        splits in proptest::collection::vec(any::<usize>(), 0..3),
        entities in proptest::collection::vec(
            (proptest::option::weighted(0.95, 0i64..8), proptest::option::weighted(0.95, -2i64..35)),
            0..40,
        ),
        ttl_s in proptest::option::of(0u64..12),
        created in any::<bool>(),
        threads in 1usize..4,
    ) {
        // TTL in seconds, timestamps in µs: scale timestamps to seconds-ish granularity so TTL
        // edges (exactly ttl apart) occur.
        let rows: Vec<Row> = rows.iter().map(|r| (r.0, r.1 * 1_000_000, r.2.map(|c| c * 1_000_000))).collect();
        let entities: Vec<_> = entities.iter().map(|(k, t)| (*k, t.map(|t| t * 1_000_000))).collect();
        let ttl_s = ttl_s.filter(|t| *t > 0);
        check_against_oracle(&rows, &splits, &entities, ttl_s, created, threads)?;
    }
}

/// The same view keyed three ways: one INT64 key (`k`), one STRING key (`"u<k>"`), and a
/// composite key (`k div 3`, `"m<k mod 3>"`) — bijections of `k`.
#[derive(Debug, Clone, Copy)]
enum KeyShape {
    Str,
    Pair,
}

fn rekeyed_repo(shape: KeyShape, ttl: Option<u64>, created: bool) -> FeatureRepo {
    let base = repo(ttl, created);
    let (entities, view_entities) = match shape {
        KeyShape::Str => (
            "[[entities]]\nname = \"user\"\njoin_key = \"user_id\"\ndtype = \"STRING\"\n",
            "entity = \"user\"",
        ),
        KeyShape::Pair => (
            "[[entities]]\nname = \"a\"\njoin_key = \"a\"\n\n[[entities]]\nname = \"m\"\njoin_key = \"m\"\ndtype = \"STRING\"\n",
            "entities = [\"a\", \"m\"]",
        ),
    };
    let v = base.view("v").unwrap();
    let ttl = v
        .ttl_s
        .map(|s| format!("ttl = \"{s}s\"\n"))
        .unwrap_or_default();
    let created = if created {
        "created_timestamp_field = \"created\"\n"
    } else {
        ""
    };
    let text = format!(
        "{entities}\n[[feature_views]]\nname = \"v\"\n{view_entities}\nsource = \"v.parquet\"\n\
         timestamp_field = \"ts\"\n{created}{ttl}\
         fields = [{{ name = \"x\", dtype = \"FP64\" }}, {{ name = \"s\", dtype = \"STRING\" }}, {{ name = \"n\", dtype = \"INT64\" }}]\n"
    );
    FeatureRepo::parse(&text, Path::new("/tmp/features.toml")).unwrap()
}

/// `b` with its `user_id` column replaced by the key columns of `shape`.
fn rekey(b: &RecordBatch, shape: KeyShape) -> RecordBatch {
    let ids = b
        .column_by_name("user_id")
        .unwrap()
        .as_primitive::<Int64Type>();
    let mut cols: Vec<(String, ArrayRef)> = Vec::new();
    for (f, c) in b.schema().fields().iter().zip(b.columns()) {
        if f.name() != "user_id" {
            cols.push((f.name().clone(), c.clone()));
            continue;
        }
        match shape {
            KeyShape::Str => cols.push((
                "user_id".into(),
                Arc::new(StringArray::from_iter(
                    ids.iter().map(|k| k.map(|k| format!("u{k}"))),
                )),
            )),
            KeyShape::Pair => {
                cols.push((
                    "a".into(),
                    Arc::new(Int64Array::from_iter(
                        ids.iter().map(|k| k.map(|k| k.div_euclid(3))),
                    )),
                ));
                cols.push((
                    "m".into(),
                    Arc::new(StringArray::from_iter(
                        ids.iter()
                            .map(|k| k.map(|k| format!("m{}", k.rem_euclid(3)))),
                    )),
                ));
            }
        }
    }
    RecordBatch::try_from_iter_with_nullable(cols.into_iter().map(|(n, c)| (n, c, true))).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    /// STRING and composite keys join exactly as the INT64 key they are a bijection of.
    #[test]
    fn string_and_composite_keys_join_like_int64_keys(
        rows in proptest::collection::vec(row_strategy(), 0..40),
        splits in proptest::collection::vec(any::<usize>(), 0..3),
        entities in proptest::collection::vec(
            (proptest::option::weighted(0.95, -3i64..8), proptest::option::weighted(0.95, -2i64..35)),
            0..30,
        ),
        ttl_s in proptest::option::of(1u64..12),
        created in any::<bool>(),
        pair in any::<bool>(),
    ) {
        let rows: Vec<Row> = rows.iter().map(|r| (r.0 - 3, r.1 * 1_000_000, r.2.map(|c| c * 1_000_000))).collect();
        let entities: Vec<_> = entities.iter().map(|(k, t)| (*k, t.map(|t| t * 1_000_000))).collect();
        let shape = if pair { KeyShape::Pair } else { KeyShape::Str };
        let want = join(&rows, &splits, &entities, ttl_s, created, 1);
        let repo = rekeyed_repo(shape, ttl_s, created);
        let batches: Vec<RecordBatch> = view_batches(&rows, &splits, created)
            .iter()
            .map(|b| rekey(b, shape))
            .collect();
        let table = ViewTable::from_batches(repo.view("v").unwrap(), &batches, None).unwrap();
        prop_assert!(!table.key_ids().is_direct());
        let opts = PitOptions { threads: 1, feature_timestamps: true, ..PitOptions::default() };
        let got = OfflineStore::from_tables(vec![table])
            .get_historical_features_with(&rekey(&entity_df(&entities), shape), &refs(), &opts)
            .unwrap();
        for name in ["x", "s", "n", "v__event_timestamp"] {
            prop_assert_eq!(
                got.column_by_name(name).unwrap().as_ref(),
                want.column_by_name(name).unwrap().as_ref(),
                "column {}", name
            );
        }
    }
}

#[test]
fn many_rows_on_several_threads_match_the_oracle() {
    // Enough entity rows for the multi-threaded path (> 64 Ki rows per thread).
    let mut r = crate::rng::SplitMix64::new(5);
    let rows: Vec<Row> = (0..3_000)
        .map(|_| {
            (
                r.below(300) as i64,
                r.below(1000) as i64 * 1_000_000,
                Some(r.below(3) as i64),
            )
        })
        .collect();
    let entities: Vec<_> = (0..200_000)
        .map(|_| {
            (
                Some(r.below(320) as i64),
                Some(r.below(1100) as i64 * 1_000_000),
            )
        })
        .collect();
    check_against_oracle(&rows, &[1000, 2000], &entities, Some(100), true, 3).unwrap();
}

#[test]
fn a_value_set_after_the_row_timestamp_is_never_seen() {
    let day = 86_400 * 1_000_000i64;
    // User 1: value at day 10 (pos 0), day 20 (pos 1), day 30 (pos 2, set after most rows).
    let rows: Vec<Row> = vec![
        (1, 10 * day, None),
        (1, 20 * day, None),
        (1, 30 * day, None),
    ];
    let entities = vec![
        (Some(1), Some(9 * day)),      // before any value: null
        (Some(1), Some(10 * day)),     // exactly at the first value: sees it
        (Some(1), Some(20 * day - 1)), // one µs before the second: still the first
        (Some(1), Some(25 * day)),     // the second, not the future third
        (Some(1), Some(31 * day)),
    ];
    let out = join(&rows, &[], &entities, None, false, 1);
    let x = out.column(3).as_primitive::<Float64Type>();
    let got: Vec<Option<f64>> = (0..x.len())
        .map(|i| x.is_valid(i).then(|| x.value(i)))
        .collect();
    assert_eq!(got, vec![None, Some(0.0), Some(0.0), Some(1.0), Some(2.0)]);
}

#[test]
fn ttl_edges_and_created_tie_break() {
    let s = 1_000_000i64;
    let rows: Vec<Row> = vec![
        (1, 100 * s, Some(5 * s)), // pos 0
        (1, 100 * s, Some(9 * s)), // pos 1: same event time, created later: wins
        (1, 100 * s, Some(7 * s)), // pos 2
        (1, 100 * s, None),        // pos 3: null created loses
    ];
    let entities = vec![
        (Some(1), Some(100 * s)),
        (Some(1), Some(110 * s)),
        (Some(1), Some(110 * s + 1)),
    ];
    let out = join(&rows, &[2], &entities, Some(10), true, 1);
    let x = out.column(3).as_primitive::<Float64Type>();
    assert_eq!(x.value(0), 1.0);
    assert_eq!(x.value(1), 1.0, "exactly ttl old is still in");
    assert!(x.is_null(2), "one µs past the ttl is out");
}

#[test]
fn errors_name_the_column() {
    let repo = repo(None, false);
    let table = ViewTable::from_batches(
        repo.view("v").unwrap(),
        &view_batches(&[(1, 1, None)], &[], false),
        None,
    )
    .unwrap();
    let store = OfflineStore::from_tables(vec![table]);
    let df = RecordBatch::try_from_iter(vec![(
        "user_id",
        Arc::new(Int64Array::from(vec![1])) as ArrayRef,
    )])
    .unwrap();
    let e = store
        .get_historical_features(&df, &refs())
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"event_timestamp\""), "{e}");
    let df = RecordBatch::try_from_iter(vec![
        ("id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("event_timestamp", ts_array(vec![Some(1)])),
    ])
    .unwrap();
    let e = store
        .get_historical_features(&df, &refs())
        .unwrap_err()
        .to_string();
    assert!(e.contains("join key column \"user_id\""), "{e}");
    let df = RecordBatch::try_from_iter(vec![
        ("user_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("event_timestamp", ts_array(vec![Some(1)])),
        ("x", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
    ])
    .unwrap();
    let e = store
        .get_historical_features(&df, &refs())
        .unwrap_err()
        .to_string();
    assert!(e.contains("already has a column \"x\""), "{e}");
    let e = store
        .get_historical_features(&entity_df(&[]), &[FeatureRef::new("w", "x")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("view \"w\" is not loaded"), "{e}");
}

#[test]
fn other_timestamp_units_and_key_types_are_accepted() {
    let repo = repo(None, false);
    let table = ViewTable::from_batches(
        repo.view("v").unwrap(),
        &view_batches(&[(1, 5_000_000, None)], &[], false),
        None,
    )
    .unwrap();
    let store = OfflineStore::from_tables(vec![table]);
    let df = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int32, true),
            Field::new(
                "event_timestamp",
                DataType::Timestamp(TimeUnit::Second, None),
                true,
            ),
        ])),
        vec![
            Arc::new(arrow_array::Int32Array::from(vec![1, 1])),
            Arc::new(TimestampSecondArray::from(vec![4, 5])),
        ],
    )
    .unwrap();
    let out = store.get_historical_features(&df, &refs()).unwrap();
    let x = out.column(2).as_primitive::<Float64Type>();
    assert!(x.is_null(0));
    assert_eq!(x.value(1), 0.0);
}

#[test]
fn loads_views_from_parquet_through_the_repo() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(Some(100), true);
    let rows: Vec<Row> = vec![
        (2, 50 * 1_000_000, Some(1)),
        (1, 10 * 1_000_000, None),
        (1, 20 * 1_000_000, Some(3)),
    ];
    let batches = view_batches(&rows, &[1], true);
    let path = dir.path().join("v.parquet");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), None).unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
    let repo = FeatureRepo {
        path: dir.path().join("features.toml"),
        ..repo
    };
    let out = get_historical_features(
        &repo,
        &entity_df(&[
            (Some(1), Some(15 * 1_000_000)),
            (Some(2), Some(60 * 1_000_000)),
            (Some(3), Some(60)),
        ]),
        &[FeatureRef::new("v", "s")],
    )
    .unwrap();
    assert_eq!(out.num_columns(), 4);
    let s = out.column(3).as_string::<i32>();
    assert_eq!(s.value(0), "p1");
    assert_eq!(s.value(1), "p0");
    assert!(s.is_null(2));
    // Missing column in the source: the error names the file and the column.
    let mut bad = repo.clone();
    bad.feature_views[0].timestamp_field = "when".into();
    let e = get_historical_features(&bad, &entity_df(&[]), &[FeatureRef::new("v", "s")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("v.parquet") && e.contains("\"when\""), "{e}");
}
