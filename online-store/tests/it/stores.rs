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
        s.write_schema("v", &contract::fields()).unwrap();
        s.write_batch("v", &[(1, contract::row(5, 1.0))]).unwrap();
    }
    let s = open_store(path.to_str().unwrap()).unwrap();
    assert!(s.describe().contains("online.redb"), "{}", s.describe());
    assert_eq!(
        s.read_batch("v", &[1]).unwrap()[0],
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
    s.write_schema("v", &contract::fields()).unwrap();
    s.write_batch("v", &[(1, contract::row(5, 1.0))]).unwrap();
    assert!(s.read_batch("v", &[1]).unwrap()[0].is_some());
    server.stop();
    for r in [
        s.read_batch("v", &[1]).map(|_| ()),
        s.write_batch("v", &[(1, contract::row(6, 1.0))])
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
