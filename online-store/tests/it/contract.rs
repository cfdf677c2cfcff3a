//! The behaviour every `OnlineStore` must have, as functions over `&dyn OnlineStore`.

use std::sync::Arc;

use vane_online::{
    EntityKey, FeatureRow, KeyValue, Lookup, OnlineStore, StoreError, StoredField, Value,
    ViewSchema, lookup,
};

pub fn fields() -> Vec<StoredField> {
    vec![
        StoredField::new("income", "NUMERIC"),
        StoredField::new("home", "STRING"),
        StoredField::new("fico", "NUMERIC"),
    ]
}

/// A view keyed by one INT64 `id`.
pub fn schema() -> ViewSchema {
    ViewSchema::new(vec![StoredField::new("id", "INT64")], fields())
}

pub fn k(id: i64) -> EntityKey {
    EntityKey::int(id)
}

pub fn ks(ids: &[i64]) -> Vec<EntityKey> {
    ids.iter().map(|&i| k(i)).collect()
}

pub fn row(ts: i64, income: f64) -> FeatureRow {
    FeatureRow {
        event_ts_us: ts,
        values: vec![
            Value::Num(income),
            Value::Str(format!("home-{ts}")),
            Value::Null,
        ],
    }
}

pub fn round_trip(s: &dyn OnlineStore) {
    assert_eq!(s.read_schema("profile").unwrap(), None);
    assert_eq!(
        s.read_batch("profile", &ks(&[1, 2])).unwrap(),
        vec![None, None]
    );
    s.write_schema("profile", &schema()).unwrap();
    assert_eq!(s.read_schema("profile").unwrap(), Some(schema()));
    let rows: Vec<(EntityKey, FeatureRow)> = vec![
        (k(1), row(1_000, 52_000.5)),
        (k(-7), row(-5, 0.1)),
        (k(i64::MAX), row(i64::MAX, 1e300)),
        (
            k(3),
            FeatureRow {
                event_ts_us: 9,
                values: vec![Value::Null, Value::Null, Value::Num(720.0)],
            },
        ),
    ];
    assert_eq!(s.write_batch("profile", &rows).unwrap(), 4);
    let got = s
        .read_batch("profile", &ks(&[3, 1, 404, -7, i64::MAX]))
        .unwrap();
    assert_eq!(got[0].as_ref(), Some(&rows[3].1));
    assert_eq!(got[1].as_ref(), Some(&rows[0].1));
    assert_eq!(got[2], None, "missing id");
    assert_eq!(got[3].as_ref(), Some(&rows[1].1));
    assert_eq!(got[4].as_ref(), Some(&rows[2].1));
    assert_eq!(
        s.read_batch("profile", &ks(&[])).unwrap(),
        Vec::<Option<FeatureRow>>::new()
    );
    // Another view is separate.
    assert_eq!(s.read_batch("activity", &ks(&[1])).unwrap(), vec![None]);
    // Schema replaced.
    let mut f2 = fields();
    f2.push(StoredField {
        name: "extra".into(),
        kind: "STRING".into(),
    });
    let s2 = ViewSchema::new(schema().keys, f2);
    s.write_schema("other", &s2).unwrap();
    assert_eq!(s.read_schema("other").unwrap(), Some(s2));
    assert_eq!(s.read_schema("profile").unwrap(), Some(schema()));
}

pub fn older_never_overwrites_newer(s: &dyn OnlineStore) {
    s.write_schema("v", &schema()).unwrap();
    let read = |id| s.read_batch("v", &ks(&[id])).unwrap().remove(0).unwrap();
    assert_eq!(s.write_batch("v", &[(k(1), row(100, 1.0))]).unwrap(), 1);
    assert_eq!(
        s.write_batch("v", &[(k(1), row(50, 2.0))]).unwrap(),
        0,
        "older row rejected"
    );
    assert_eq!(read(1), row(100, 1.0));
    assert_eq!(
        s.write_batch("v", &[(k(1), row(99, 2.0)), (k(2), row(5, 5.0))])
            .unwrap(),
        1
    );
    assert_eq!(read(1), row(100, 1.0));
    assert_eq!(read(2), row(5, 5.0));
    // An equal timestamp replaces (re-running a job is idempotent; corrections land).
    assert_eq!(s.write_batch("v", &[(k(1), row(100, 3.0))]).unwrap(), 1);
    assert_eq!(read(1), row(100, 3.0));
    assert_eq!(s.write_batch("v", &[(k(1), row(101, 4.0))]).unwrap(), 1);
    assert_eq!(read(1), row(101, 4.0));
    // Within one batch, the newer of two rows for one id wins whatever the order.
    assert_eq!(
        s.write_batch("v", &[(k(9), row(300, 1.0)), (k(9), row(200, 2.0))])
            .unwrap(),
        1
    );
    assert_eq!(read(9), row(300, 1.0));
    // Negative timestamps order correctly against positive ones.
    assert_eq!(s.write_batch("v", &[(k(10), row(1, 1.0))]).unwrap(), 1);
    assert_eq!(s.write_batch("v", &[(k(10), row(-1, 2.0))]).unwrap(), 0);
    assert_eq!(read(10), row(1, 1.0));
}

/// Eight writers race to write rows of random ages for the same ids; afterwards each id holds
/// the newest row any writer had for it.
pub fn concurrent_writers_keep_the_newest(s: Arc<dyn OnlineStore>) {
    s.write_schema("race", &schema()).unwrap();
    let ids: Vec<i64> = (0..200).collect();
    let ts_of = |w: i64, id: i64| ((w * 7919 + id * 104_729) % 1_000) * 1_000 + w;
    std::thread::scope(|sc| {
        for w in 0..8i64 {
            let s = s.clone();
            let ids = &ids;
            sc.spawn(move || {
                for chunk in ids.chunks(16) {
                    let rows: Vec<(EntityKey, FeatureRow)> = chunk
                        .iter()
                        .map(|&id| (k(id), row(ts_of(w, id), w as f64)))
                        .collect();
                    s.write_batch("race", &rows).unwrap();
                }
            });
        }
    });
    let got = s.read_batch("race", &ks(&ids)).unwrap();
    for (id, r) in ids.iter().zip(got) {
        let best = (0..8).map(|w| ts_of(w, *id)).max().unwrap();
        assert_eq!(r.unwrap().event_ts_us, best, "id {id}");
    }
}

pub fn concurrent_readers(s: Arc<dyn OnlineStore>) {
    s.write_schema("r", &schema()).unwrap();
    let rows: Vec<(EntityKey, FeatureRow)> = (0..100).map(|i| (k(i), row(i, i as f64))).collect();
    s.write_batch("r", &rows).unwrap();
    std::thread::scope(|sc| {
        for t in 0..6i64 {
            let s = s.clone();
            sc.spawn(move || {
                for k in 0..200i64 {
                    let id = (t * 31 + k) % 120;
                    let got = s.read_batch("r", &ks(&[id, id + 1])).unwrap();
                    assert_eq!(got[0].is_some(), id < 100);
                    if let Some(r) = &got[0] {
                        assert_eq!(r.values[0], Value::Num(id as f64));
                    }
                }
            });
        }
    });
}

pub fn ttl_via_lookup(s: &dyn OnlineStore) {
    s.write_schema("t", &schema()).unwrap();
    let now = 1_000_000_000_000;
    let day = 86_400_000_000i64;
    s.write_batch(
        "t",
        &[
            (k(1), row(now - day, 1.0)),
            (k(2), row(now - 3 * day, 2.0)),
            (k(3), row(now - 2 * day, 3.0)),
        ],
    )
    .unwrap();
    let got = lookup(s, "t", &ks(&[1, 2, 3, 4]), Some(2 * 86_400), now).unwrap();
    assert_eq!(got[0], Lookup::Present(row(now - day, 1.0)));
    assert_eq!(got[1], Lookup::OutsideMaxAge(row(now - 3 * day, 2.0)));
    assert_eq!(
        got[2],
        Lookup::Present(row(now - 2 * day, 3.0)),
        "exactly ttl old is fresh"
    );
    assert_eq!(got[3], Lookup::NotFound);
    let got = lookup(s, "t", &ks(&[2]), None, now).unwrap();
    assert!(matches!(got[0], Lookup::Present(_)), "no ttl: no limit");
}

pub fn rows_must_fit_the_schema(s: &dyn OnlineStore) {
    let e = s
        .write_batch("unknown_view", &[(k(1), row(1, 1.0))])
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Invalid(m) if m.contains("no schema")),
        "{e}"
    );
    s.write_schema("f", &schema()).unwrap();
    let bad = FeatureRow {
        event_ts_us: 1,
        values: vec![Value::Num(1.0)],
    };
    let e = s.write_batch("f", &[(k(1), bad)]).unwrap_err();
    assert!(
        matches!(&e, StoreError::Invalid(m) if m.contains("1 values for 3 fields")),
        "{e}"
    );
    let e = s
        .write_schema(
            "f",
            &ViewSchema::new(
                vec![StoredField::new("id", "INT64")],
                vec![StoredField::new("x", "FP64")],
            ),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)));
    assert_eq!(
        s.read_schema("f").unwrap(),
        Some(schema()),
        "bad schema not stored"
    );
}

/// STRING keys and composite keys (several join keys), beside an INT64-keyed view.
pub fn string_and_composite_keys(s: &dyn OnlineStore) {
    let by_name = ViewSchema::new(vec![StoredField::new("merchant", "STRING")], fields());
    let pair = ViewSchema::new(
        vec![
            StoredField::new("applicant_id", "INT64"),
            StoredField::new("merchant", "STRING"),
        ],
        fields(),
    );
    s.write_schema("by_name", &by_name).unwrap();
    s.write_schema("pair", &pair).unwrap();
    assert_eq!(s.read_schema("pair").unwrap(), Some(pair));
    let pk = |id: i64, m: &str| EntityKey::new(&[KeyValue::Int(id), KeyValue::Str(m.into())]);
    // Strings that look like other keys, or hold ':' and bytes a Redis key treats specially.
    let names = ["acme", "", "1", "schema", "a:b*?[x]", "ünï"];
    let rows: Vec<(EntityKey, FeatureRow)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (EntityKey::str(n), row(i as i64, i as f64)))
        .collect();
    assert_eq!(s.write_batch("by_name", &rows).unwrap(), names.len());
    let pairs = vec![
        (pk(1, "acme"), row(10, 1.0)),
        (pk(1, "zeta"), row(11, 2.0)),
        (pk(2, "acme"), row(12, 3.0)),
    ];
    assert_eq!(s.write_batch("pair", &pairs).unwrap(), 3);
    let mut keys: Vec<EntityKey> = names.iter().rev().map(|n| EntityKey::str(n)).collect();
    keys.push(EntityKey::str("missing"));
    let got = s.read_batch("by_name", &keys).unwrap();
    for (i, n) in names.iter().rev().enumerate() {
        let want = names.iter().position(|x| x == n).unwrap();
        assert_eq!(got[i].as_ref(), Some(&rows[want].1), "{n:?}");
    }
    assert_eq!(got[names.len()], None);
    let got = s
        .read_batch("pair", &[pk(2, "acme"), pk(1, "zeta"), pk(2, "zeta")])
        .unwrap();
    assert_eq!(got[0].as_ref(), Some(&pairs[2].1));
    assert_eq!(got[1].as_ref(), Some(&pairs[1].1));
    assert_eq!(got[2], None);
    // The newest row still wins per composite key.
    assert_eq!(
        s.write_batch("pair", &[(pk(1, "acme"), row(9, 9.0))])
            .unwrap(),
        0
    );
    // A key of the wrong shape is refused, naming the view's keys.
    for bad in [k(1), pk(1, "x")] {
        let e = s.write_batch("by_name", &[(bad, row(1, 1.0))]).unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("the view's keys are [\"STRING\"]")),
            "{e}"
        );
    }
    // Reading with a key of another shape finds nothing rather than failing.
    assert_eq!(s.read_batch("pair", &[k(1)]).unwrap(), vec![None]);
}

pub fn meta(s: &dyn OnlineStore) {
    assert_eq!(s.read_meta("materialize:v:0/1").unwrap(), None);
    s.write_meta("materialize:v:0/1", b"123").unwrap();
    s.write_meta("materialize:v:0/1", b"456").unwrap();
    assert_eq!(
        s.read_meta("materialize:v:0/1").unwrap().as_deref(),
        Some(&b"456"[..])
    );
}

/// Runs every contract check, each on a fresh store from `make`.
pub fn all(make: &dyn Fn() -> Arc<dyn OnlineStore>) {
    round_trip(&*make());
    older_never_overwrites_newer(&*make());
    concurrent_writers_keep_the_newest(make());
    concurrent_readers(make());
    ttl_via_lookup(&*make());
    rows_must_fit_the_schema(&*make());
    string_and_composite_keys(&*make());
    meta(&*make());
}
