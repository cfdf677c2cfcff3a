//! `HttpRegistry` against a real HTTP server serving a `DirRegistry` directory.

use std::time::{Duration, Instant};

use vane_registry::{
    DirRegistry, HttpRegistry, INDEX, Registry, RegistryError, RemoteOptions, RetryPolicy,
    TrafficPolicy, VersionRef, set_canary,
};

use crate::common::{StaticServer, Validator, closed_port, model_bytes, request};

/// A directory registry with model `m` (versions 1, 2; champion 1, canary 2 at 0.25) and
/// model `n` (version 1, no aliases).
fn registry() -> (tempfile::TempDir, DirRegistry) {
    let tmp = tempfile::tempdir().unwrap();
    let reg = DirRegistry::create(tmp.path()).unwrap();
    assert_eq!(reg.publish(&request("m", 1)).unwrap(), 1);
    assert_eq!(reg.publish(&request("m", 2)).unwrap(), 2);
    assert_eq!(reg.publish(&request("n", 3)).unwrap(), 1);
    reg.set_alias("m", "champion", 1).unwrap();
    set_canary(&reg, "m", 2, 0.25, false).unwrap();
    (tmp, reg)
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(20),
        multiplier: 4,
        max_backoff: Duration::from_secs(1),
    }
}

fn client(base: &str, cache: &tempfile::TempDir) -> HttpRegistry {
    let opts = RemoteOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        retry: fast_retries(),
        ..RemoteOptions::default()
    };
    HttpRegistry::new(base, &opts).unwrap()
}

#[test]
fn http_lists_models_aliases_and_policy() {
    let (tmp, _reg) = registry();
    let server = StaticServer::start(tmp.path(), Validator::ETag);
    let cache = tempfile::tempdir().unwrap();
    let http = client(&format!("{}/", server.url()), &cache);
    assert_eq!(http.location(), server.url());
    assert_eq!(http.models().unwrap(), ["m", "n"]);
    assert_eq!(http.versions("m").unwrap(), [1, 2]);
    assert_eq!(http.aliases("m").unwrap().get("champion"), Some(&1));
    assert_eq!(
        http.policy("m").unwrap(),
        TrafficPolicy {
            champion: Some(1),
            canary: Some(2),
            canary_weight: 0.25,
            shadow: None
        }
    );
    assert_eq!(
        http.resolve("m", &VersionRef::Alias("canary".into()))
            .unwrap(),
        2
    );
    // A model without aliases.json / traffic.json has empty ones.
    assert!(http.aliases("n").unwrap().is_empty());
    assert_eq!(http.policy("n").unwrap(), TrafficPolicy::default());
    assert_eq!(
        http.manifest("m", 2).unwrap().files["model.onnx"].size,
        model_bytes(2).len() as u64
    );
}

#[test]
fn http_unknowns_are_not_found() {
    let (tmp, _reg) = registry();
    let server = StaticServer::start(tmp.path(), Validator::ETag);
    let cache = tempfile::tempdir().unwrap();
    let http = client(&server.url(), &cache);
    for err in [
        http.versions("nope").unwrap_err(),
        http.aliases("nope").unwrap_err(),
        http.policy("nope").unwrap_err(),
        http.fetch("m", 9).unwrap_err(),
        http.fetch("../m", 1).unwrap_err(),
        http.resolve("m", &VersionRef::Alias("shadow".into()))
            .unwrap_err(),
        http.resolve("m", &VersionRef::Number(7)).unwrap_err(),
    ] {
        assert!(matches!(err, RegistryError::NotFound(_)), "{err}");
    }
    // A base URL that is not a registry.
    let err = client(&format!("{}/elsewhere", server.url()), &cache)
        .models()
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NotFound(_)) && err.to_string().contains("index.json"),
        "{err}"
    );
}

#[test]
fn http_polling_uses_conditional_gets() {
    let (tmp, reg) = registry();
    let server = StaticServer::start(tmp.path(), Validator::ETag);
    let cache = tempfile::tempdir().unwrap();
    let http = client(&server.url(), &cache);
    for _ in 0..4 {
        assert_eq!(http.policy("m").unwrap().champion, Some(1));
    }
    assert_eq!(server.ok("/m/aliases.json"), 1, "one body, then 304s");
    assert_eq!(server.not_modified("/m/aliases.json"), 3);
    assert_eq!(server.ok("/m/traffic.json"), 1);
    assert_eq!(server.not_modified("/m/traffic.json"), 3);
    assert!(http.request_counts().1 >= 6, "{:?}", http.request_counts());
    // A change on the origin is seen on the next poll (new ETag, new body).
    reg.set_alias("m", "champion", 2).unwrap();
    assert_eq!(http.policy("m").unwrap().champion, Some(2));
    assert_eq!(server.ok("/m/aliases.json"), 2);
    // index.json is polled the same way.
    http.models().unwrap();
    http.models().unwrap();
    assert!(server.not_modified(&format!("/{INDEX}")) >= 1);
}

#[test]
fn http_polling_falls_back_to_last_modified() {
    let (tmp, _reg) = registry();
    let server = StaticServer::start(tmp.path(), Validator::LastModified);
    let cache = tempfile::tempdir().unwrap();
    let http = client(&server.url(), &cache);
    for _ in 0..3 {
        assert_eq!(http.aliases("m").unwrap().get("canary"), Some(&2));
    }
    assert_eq!(server.ok("/m/aliases.json"), 1);
    assert_eq!(server.not_modified("/m/aliases.json"), 2);
}

#[test]
fn http_fetch_verifies_caches_and_repairs_the_cache() {
    let (tmp, _reg) = registry();
    let server = StaticServer::start(tmp.path(), Validator::ETag);
    let cache = tempfile::tempdir().unwrap();
    let http = client(&server.url(), &cache);
    let v = http
        .fetch_ref("m", &VersionRef::Alias("champion".into()))
        .unwrap();
    assert_eq!(
        (v.version, v.model_bytes.as_slice()),
        (1, model_bytes(1).as_slice())
    );
    assert_eq!(v.profile.as_ref().map(|p| p.rows), Some(100));
    assert!(
        v.dir.starts_with(cache.path().join("registry")),
        "{}",
        v.dir.display()
    );
    let downloads = server.downloads_under("/m/versions/1/");
    assert_eq!(
        downloads, 4,
        "manifest + model.onnx + signature.json + profile.json"
    );
    // Second fetch: served from the verified cache, nothing downloaded.
    let again = http.fetch("m", 1).unwrap();
    assert_eq!(again.model_bytes, v.model_bytes);
    assert_eq!(server.downloads_under("/m/versions/1/"), downloads);
    // A corrupt cache entry is detected, deleted and downloaded again.
    let mut bytes = std::fs::read(v.dir.join("model.onnx")).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(v.dir.join("model.onnx"), &bytes).unwrap();
    let repaired = http.fetch("m", 1).unwrap();
    assert_eq!(repaired.model_bytes, model_bytes(1));
    assert_eq!(server.downloads_under("/m/versions/1/"), 2 * downloads);
    assert_eq!(
        std::fs::read(repaired.dir.join("model.onnx")).unwrap(),
        model_bytes(1)
    );
    // A cache entry missing a file is repaired the same way.
    std::fs::remove_file(repaired.dir.join("signature.json")).unwrap();
    http.fetch("m", 1).unwrap();
    assert_eq!(server.downloads_under("/m/versions/1/"), 3 * downloads);
}

#[test]
fn http_digest_mismatch_is_detected_and_nothing_is_cached() {
    let (tmp, _reg) = registry();
    let server = StaticServer::start(tmp.path(), Validator::ETag);
    let cache = tempfile::tempdir().unwrap();
    let http = client(&server.url(), &cache);
    let path = tmp.path().join("m/versions/2/model.onnx");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[7] ^= 1; // same size, different bytes
    std::fs::write(&path, &bytes).unwrap();
    let err = http.fetch("m", 2).unwrap_err();
    match &err {
        RegistryError::DigestMismatch { path, .. } => {
            assert_eq!(
                path.to_string_lossy(),
                format!("{}/m/versions/2/model.onnx", server.url())
            );
        }
        other => panic!("expected DigestMismatch, got {other}"),
    }
    bytes.push(0);
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        http.fetch("m", 2).unwrap_err(),
        RegistryError::SizeMismatch { .. }
    ));
    assert!(
        !http.cache().version_dir("m", 2).unwrap().exists(),
        "unverified bytes were cached"
    );
}

#[test]
fn http_unreachable_after_retries() {
    let cache = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{}", closed_port());
    let http = client(&base, &cache);
    let start = Instant::now();
    let err = http.models().unwrap_err();
    let elapsed = start.elapsed();
    match &err {
        RegistryError::Unreachable { location, reason } => {
            assert_eq!(location, &base);
            assert!(reason.contains("after 3 attempts"), "{reason}");
        }
        other => panic!("expected Unreachable, got {other}"),
    }
    // Slept 20 ms + 80 ms between the attempts.
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(matches!(
        http.fetch("m", 1).unwrap_err(),
        RegistryError::Unreachable { .. }
    ));
}

#[test]
fn http_server_errors_are_retried() {
    let (tmp, _reg) = registry();
    let server = StaticServer::start(tmp.path(), Validator::ETag);
    let cache = tempfile::tempdir().unwrap();
    let http = client(&server.url(), &cache);
    server
        .fail_next
        .store(2, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(http.models().unwrap(), ["m", "n"]);
    assert_eq!(server.requests("/index.json"), 3);
    server
        .fail_next
        .store(3, std::sync::atomic::Ordering::SeqCst);
    let err = http.versions("m").unwrap_err();
    assert!(
        matches!(&err, RegistryError::Unreachable { reason, .. } if reason.contains("503")),
        "{err}"
    );
}

#[test]
fn http_reads_an_index_without_versions_by_probing() {
    let (tmp, _reg) = registry();
    std::fs::write(tmp.path().join(INDEX), br#"{"models": ["m", "n"]}"#).unwrap();
    let server = StaticServer::start(tmp.path(), Validator::ETag);
    let cache = tempfile::tempdir().unwrap();
    let http = client(&server.url(), &cache);
    assert_eq!(http.versions("m").unwrap(), [1, 2]);
    assert_eq!(http.versions("n").unwrap(), [1]);
}
