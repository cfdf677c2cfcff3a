//! The contract against each backend, plus backend-specific behaviour.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use vane_online::embedded::EmbeddedStore;
use vane_online::redis::RedisStore;
use vane_online::testing::RedisServer;
use vane_online::{OnlineStore, StoreError, open_store};

use crate::contract;

#[test]
fn embedded_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicU32::new(0);
    contract::all(&|| {
        let path = dir
            .path()
            .join(format!("s{}.redb", n.fetch_add(1, Ordering::Relaxed)));
        Arc::new(EmbeddedStore::open(path).unwrap())
    });
}

#[test]
fn redis_store_meets_the_contract() {
    let Some(server) = RedisServer::start("redis_store_meets_the_contract") else {
        return;
    };
    // Each check gets its own database number, so they cannot see each other's keys.
    let n = AtomicU32::new(0);
    contract::all(&|| {
        let url = format!("{}/{}", server.url(), n.fetch_add(1, Ordering::Relaxed));
        open_store(&url).unwrap()
    });
}

#[test]
fn embedded_store_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("online.redb");
    {
        let s = EmbeddedStore::open(&path).unwrap();
        s.write_schema("v", &contract::schema()).unwrap();
        s.write_batch("v", &[(contract::k(1), contract::row(5, 1.0))])
            .unwrap();
    }
    let s = open_store(path.to_str().unwrap()).unwrap();
    assert!(s.describe().contains("online.redb"), "{}", s.describe());
    assert_eq!(
        s.read_batch("v", &[contract::k(1)]).unwrap()[0],
        Some(contract::row(5, 1.0))
    );
}

#[test]
fn redis_store_down_is_unavailable_and_recovers() {
    let Some(mut server) = RedisServer::start("redis_store_down_is_unavailable_and_recovers")
    else {
        return;
    };
    let s = RedisStore::with_timeout(&server.url(), std::time::Duration::from_millis(500)).unwrap();
    s.write_schema("v", &contract::schema()).unwrap();
    s.write_batch("v", &[(contract::k(1), contract::row(5, 1.0))])
        .unwrap();
    assert!(s.read_batch("v", &[contract::k(1)]).unwrap()[0].is_some());
    server.stop();
    for r in [
        s.read_batch("v", &[contract::k(1)]).map(|_| ()),
        s.write_batch("v", &[(contract::k(1), contract::row(6, 1.0))])
            .map(|_| ()),
        s.read_schema("v").map(|_| ()),
        s.ping(),
    ] {
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    }
    // A new server on another port: the old store stays down; a store for the new one works
    // (and a pooled connection that broke was dropped, not reused).
    let Some(server2) = RedisServer::start("redis_store_down_is_unavailable_and_recovers") else {
        return;
    };
    let s2 = open_store(&server2.url()).unwrap();
    assert_eq!(s2.read_schema("v").unwrap(), None);
}

#[test]
fn open_store_dispatches_on_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.redb");
    let s = open_store(p.to_str().unwrap()).unwrap();
    assert!(s.describe().starts_with("embedded"), "{}", s.describe());
    let s = open_store("redis://127.0.0.1:1/0").unwrap();
    assert!(s.describe().starts_with("redis"), "{}", s.describe());
    for bad in ["", "http://x", "rediss://h:1"] {
        assert!(
            matches!(open_store(bad), Err(StoreError::Invalid(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        open_store(dir.path().to_str().unwrap()),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        open_store("/nonexistent-dir/x.redb"),
        Err(StoreError::Unavailable(_))
    ));
}

/// The layout a view had before composite keys: schema format 1, rows keyed by a bare INT64.
fn legacy_schema() -> Vec<u8> {
    br#"{"format":1,"fields":[{"name":"income","kind":"NUMERIC"},{"name":"home","kind":"STRING"},{"name":"fico","kind":"NUMERIC"}]}"#.to_vec()
}

/// A store written before composite keys reads as it is; rows are written once the view's
/// schema is written again (as materialize does), and every old row stays.
fn legacy_view_upgrades(s: &dyn OnlineStore) {
    let old = s.read_schema("v").unwrap().unwrap();
    assert_eq!(old.key_format, 1);
    assert!(old.fits(&contract::schema()));
    let got = s.read_batch("v", &contract::ks(&[1, 2, 3])).unwrap();
    assert_eq!(got[0], Some(contract::row(5, 1.0)));
    assert_eq!(got[1], Some(contract::row(6, 2.0)));
    assert_eq!(got[2], None);
    let e = s
        .write_batch("v", &[(contract::k(4), contract::row(1, 1.0))])
        .unwrap_err();
    assert!(e.to_string().contains("key format 1"), "{e}");
    s.write_schema("v", &contract::schema()).unwrap();
    assert_eq!(s.read_schema("v").unwrap(), Some(contract::schema()));
    let got = s.read_batch("v", &contract::ks(&[1, 2, 3])).unwrap();
    assert_eq!(got[0], Some(contract::row(5, 1.0)));
    assert_eq!(got[1], Some(contract::row(6, 2.0)));
    assert_eq!(got[2], None);
    assert_eq!(
        s.write_batch("v", &[(contract::k(1), contract::row(4, 9.0))])
            .unwrap(),
        0,
        "moved rows keep their timestamps"
    );
}

#[test]
fn embedded_store_from_before_composite_keys_reads_as_it_is() {
    use redb::{Database, TableDefinition};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut schemas = txn
                .open_table(TableDefinition::<&str, &[u8]>::new("vane_schemas"))
                .unwrap();
            schemas.insert("v", legacy_schema().as_slice()).unwrap();
            let mut rows = txn
                .open_table(TableDefinition::<i64, &[u8]>::new("rows:v"))
                .unwrap();
            for (id, ts, x) in [(1, 5, 1.0), (2, 6, 2.0)] {
                let row = vane_online::codec::row_to_bytes(&contract::row(ts, x));
                rows.insert(id, row.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let s = EmbeddedStore::open(&path).unwrap();
    assert_eq!(
        s.read_batch("v", &[vane_online::EntityKey::str("x")])
            .unwrap(),
        vec![None],
        "a key of another shape finds nothing"
    );
    legacy_view_upgrades(&s);
}

#[test]
fn redis_store_from_before_composite_keys_reads_as_it_is() {
    let Some(server) = RedisServer::start("redis_store_from_before_composite_keys_reads_as_it_is")
    else {
        return;
    };
    let client = redis::Client::open(server.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let set = |con: &mut redis::Connection, k: &str, v: Vec<u8>| {
        redis::cmd("SET").arg(k).arg(v).query::<()>(con).unwrap()
    };
    set(&mut con, "vane:v:schema", legacy_schema());
    for (id, ts, x) in [(1, 5, 1.0), (2, 6, 2.0)] {
        let row = vane_online::codec::row_to_bytes(&contract::row(ts, x));
        set(&mut con, &format!("vane:v:{id}"), row);
    }
    let s = open_store(&server.url()).unwrap();
    legacy_view_upgrades(&*s);
    // Single-INT64 keys keep their decimal form: nothing was rewritten.
    let mut left: Vec<String> = redis::cmd("KEYS")
        .arg("vane:v:[0-9]*")
        .query(&mut con)
        .unwrap();
    left.sort();
    assert_eq!(left, ["vane:v:1", "vane:v:2"]);
}
