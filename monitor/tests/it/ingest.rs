//! Hostile peers: random bytes, corrupted, truncated and oversized frames over real
//! connections. The monitor never crashes, counts what it refused, keeps serving the valid
//! stream next to them, and its memory stays bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use vane_registry::{FeatureProfile, Profile};
use vane_sample_stream as wire;

use crate::util::{Monitor, metric, rss_bytes, wait_for};

fn profile_file(dir: &std::path::Path) -> std::path::PathBuf {
    let p = Profile {
        rows: 100,
        features: vec![
            vane_stats::profile::numeric(
                "x",
                &(0..100).map(f64::from).collect::<Vec<_>>(),
                &(0..100).collect::<Vec<_>>(),
            ),
            FeatureProfile::Categorical {
                name: "c".into(),
                categories: vec!["a".into(), "b".into()],
                shares: vec![0.5, 0.5],
                unseen_share: 0.0,
            },
        ],
        score: None,
    };
    let path = dir.join("profile.json");
    std::fs::write(&path, serde_json::to_vec(&p).unwrap()).unwrap();
    path
}

fn schema() -> wire::Schema {
    wire::Schema {
        model: "m".into(),
        version: 1,
        features: vec![
            wire::Feature {
                name: "x".into(),
                kind: wire::FeatureKind::Numeric,
            },
            wire::Feature {
                name: "c".into(),
                kind: wire::FeatureKind::Categorical(vec!["a".into(), "b".into()]),
            },
        ],
        score: None,
    }
}

/// A valid schema frame followed by a rows frame of `rows` rows.
fn valid(rows: usize) -> Vec<u8> {
    let s = schema();
    let mut buf = Vec::new();
    s.encode_frame(&mut buf);
    wire::encode_rows(
        &mut buf,
        s.id(),
        &s,
        false,
        rows,
        |r, c| {
            if c == 0 {
                (r % 100) as f32
            } else {
                (r % 2) as f32
            }
        },
        None,
    );
    buf
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr.trim_start_matches("tcp://")).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn alive(m: &Monitor) {
    assert_eq!(
        m.get("/health").0,
        200,
        "monitor died:\n{}",
        m.proc.stderr()
    );
}

#[test]
fn random_and_corrupted_frames_never_crash_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let profile = profile_file(dir.path());
    let m = Monitor::start(&[
        "--profile",
        &format!("m={}", profile.display()),
        "--window-rows",
        "100",
    ]);
    let baseline = rss_bytes(m.proc.pid());

    // A valid peer keeps streaming throughout.
    let mut good = connect(&m.ingest);
    good.write_all(&valid(50)).unwrap();

    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    let ingest = m.ingest.clone();
    runner
        .run(
            &(
                proptest::collection::vec(any::<u8>(), 0..4096),
                proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
                any::<usize>(),
                0u8..4,
            ),
            |(noise, flips, cut, mode)| {
                let mut s = connect(&ingest);
                let bytes = match mode {
                    // Pure noise.
                    0 => noise,
                    // Valid frames with flipped bytes.
                    1 => {
                        let mut b = valid(20);
                        for (i, x) in &flips {
                            let n = b.len();
                            b[i % n] ^= x;
                        }
                        b
                    }
                    // Valid frames cut anywhere.
                    2 => {
                        let b = valid(20);
                        b[..cut % b.len()].to_vec()
                    }
                    // A plausible length prefix with a noise body.
                    _ => {
                        let mut b = (noise.len() as u32).to_le_bytes().to_vec();
                        b.extend_from_slice(&noise);
                        b
                    }
                };
                let _ = s.write_all(&bytes);
                drop(s);
                Ok(())
            },
        )
        .unwrap();

    // An oversized length prefix closes that connection; a frame of the wrong version and rows
    // of an unknown schema are skipped on a connection that stays open.
    let mut s = connect(&m.ingest);
    s.write_all(&u32::MAX.to_le_bytes()).unwrap();
    let mut buf = [0u8; 1];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(
        s.read(&mut buf).unwrap_or(0),
        0,
        "the monitor closes the connection"
    );
    let mut s = connect(&m.ingest);
    let mut v2 = valid(5);
    v2[4] = 9; // version byte of the schema frame
    let other = wire::Schema {
        model: "m".into(),
        version: 1,
        features: vec![],
        score: None,
    };
    wire::encode_rows(&mut v2, 12345, &other, false, 3, |_, _| 0.0, None);
    v2.extend_from_slice(&valid(10));
    s.write_all(&v2).unwrap();

    good.write_all(&valid(50)).unwrap();
    alive(&m);
    let text = wait_for(20, "the valid rows", || {
        let t = m.metrics();
        (metric(
            &t,
            r#"vane_monitor_rows_total{model="m",outcome="accepted",version="1"}"#,
        ) >= 110.0)
            .then_some(t)
    });
    for outcome in ["bad_version", "unknown_schema", "too_large"] {
        assert!(
            metric(
                &text,
                &format!("vane_monitor_frames_total{{outcome=\"{outcome}\"}}")
            ) >= 1.0,
            "{outcome} not counted:\n{text}"
        );
    }
    let refused: f64 = [
        "bad_version",
        "bad_kind",
        "truncated",
        "malformed",
        "unknown_schema",
        "too_large",
    ]
    .iter()
    .map(|o| {
        metric(
            &text,
            &format!("vane_monitor_frames_total{{outcome=\"{o}\"}}"),
        )
    })
    .sum();
    assert!(refused >= 10.0, "refused frames: {refused}\n{text}");
    // Windows of the valid stream still close and get evaluated.
    wait_for(20, "an evaluated window", || {
        (metric(&m.metrics(), "vane_monitor_evaluations_total") >= 1.0).then_some(())
    });
    let grown = rss_bytes(m.proc.pid()).saturating_sub(baseline);
    assert!(grown < 64 << 20, "RSS grew by {grown} bytes");
}

#[test]
fn many_schemas_and_a_stalled_huge_frame_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let profile = profile_file(dir.path());
    let m = Monitor::start(&["--profile", &profile.display().to_string()]);
    let baseline = rss_bytes(m.proc.pid());
    let mut s = connect(&m.ingest);
    // Rows for 200 versions of a model with a catch-all profile: at most 64 streams.
    let mut buf = Vec::new();
    for v in 0..200u64 {
        let sch = wire::Schema {
            version: v,
            ..schema()
        };
        sch.encode_frame(&mut buf);
        wire::encode_rows(&mut buf, sch.id(), &sch, false, 10, |r, _| r as f32, None);
    }
    s.write_all(&buf).unwrap();
    // 5 000 distinct schemas (the limit is 1 024), each with a long vocabulary.
    let vocab: Vec<String> = (0..200).map(|i| format!("category-{i:04}")).collect();
    let mut buf = Vec::new();
    for v in 0..5000u64 {
        let sch = wire::Schema {
            model: "spam".into(),
            version: v,
            features: vec![wire::Feature {
                name: "c".into(),
                kind: wire::FeatureKind::Categorical(vocab.clone()),
            }],
            score: None,
        };
        sch.encode_frame(&mut buf);
        if buf.len() > 1 << 20 {
            s.write_all(&buf).unwrap();
            buf.clear();
        }
    }
    s.write_all(&buf).unwrap();
    // A peer that announces an 8 MiB frame and sends 10 bytes of it.
    let mut stalled = connect(&m.ingest);
    stalled
        .write_all(&((8u32 << 20) - 1).to_le_bytes())
        .unwrap();
    stalled.write_all(&[0u8; 10]).unwrap();
    let text = wait_for(30, "limits to be hit", || {
        let t = m.metrics();
        (metric(&t, r#"vane_monitor_frames_total{outcome="schema_limit"}"#) >= 1.0
            && metric(&t, r#"vane_monitor_frames_total{outcome="stream_limit"}"#) >= 1.0)
            .then_some(t)
    });
    // 64 streams of 10 rows each were accepted; the other versions' rows were refused.
    let accepted = metric(
        &text,
        r#"vane_monitor_rows_total{model="m",outcome="accepted""#,
    );
    assert_eq!(accepted, 640.0, "{text}");
    alive(&m);
    let grown = rss_bytes(m.proc.pid()).saturating_sub(baseline);
    assert!(grown < 200 << 20, "RSS grew by {grown} bytes");
}
