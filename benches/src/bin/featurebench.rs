//! Feature store benchmarks (figures in BENCHMARKS.md):
//!
//!   featurebench pit DATA_DIR ROWS [THREADS] [REPEATS]
//!       Point-in-time join of ROWS entity rows (the world's applications, tiled) with the
//!       `credit_risk_v1` service (2 views, 14 features). Prints the offline load time and the
//!       join's entity rows/s (best of REPEATS).
//!   featurebench lookup STORE VIEW MAX_ID SECONDS [BATCH] [THREADS]
//!       Online lookups (`vane_online::lookup`, TTL checked) of BATCH random ids in 1..=MAX_ID
//!       from STORE (a redb path or redis://…), closed loop on THREADS threads for SECONDS.
//!       Prints calls/s and the latency percentiles of one call (HDR histogram).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use hdrhistogram::Histogram;
use vane_features::repo::FeatureRepo;
use vane_features::{OfflineStore, PitOptions, read_parquet_table};
use vane_models::rng::SplitMix64;

fn usage() -> ! {
    eprintln!(
        "usage: featurebench pit DATA_DIR ROWS [THREADS] [REPEATS]\n       featurebench lookup STORE VIEW MAX_ID SECONDS [BATCH] [THREADS]"
    );
    std::process::exit(2)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: Option<T>) -> T {
    match args.get(i) {
        Some(s) => s.parse().unwrap_or_else(|_| usage()),
        None => default.unwrap_or_else(|| usage()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("pit") => pit(&args[1..]),
        Some("lookup") => lookup(&args[1..]),
        _ => usage(),
    }
}

fn pit(args: &[String]) {
    let dir = std::path::PathBuf::from(arg::<String>(args, 0, None));
    let rows: usize = arg(args, 1, None);
    let threads: usize = arg(
        args,
        2,
        Some(std::thread::available_parallelism().map_or(1, |n| n.get())),
    );
    let repeats: usize = arg(args, 3, Some(3));
    let repo = FeatureRepo::load(dir.join("features.toml")).expect("features.toml");
    let features = repo
        .service_features("credit_risk_v1")
        .expect("credit_risk_v1")
        .to_vec();

    let apps = read_parquet_table(
        &dir.join("applications.parquet"),
        Some(&[
            "application_id",
            "applicant_id",
            "event_timestamp",
            "default_12m",
        ]),
    )
    .expect("applications.parquet");
    let copies = rows.div_ceil(apps.num_rows().max(1));
    let tiled: Vec<RecordBatch> = (0..copies).map(|_| apps.clone()).collect();
    let entity_df = arrow_select::concat::concat_batches(&apps.schema(), &tiled)
        .expect("concat")
        .slice(0, rows);

    let t = Instant::now();
    let store = OfflineStore::load(&repo, &features).expect("load views");
    let load = t.elapsed();
    let feature_rows: usize = ["applicant_profile", "credit_activity"]
        .iter()
        .map(|v| store.table(v).map_or(0, |t| t.num_rows()))
        .sum();
    let opts = PitOptions {
        threads,
        ..PitOptions::default()
    };
    let mut best = Duration::MAX;
    let mut out_rows = 0;
    for _ in 0..repeats {
        let t = Instant::now();
        let out = store
            .get_historical_features_with(&entity_df, &features, &opts)
            .expect("join");
        best = best.min(t.elapsed());
        out_rows = out.num_rows();
    }
    let rps = rows as f64 / best.as_secs_f64();
    println!(
        "pit: {rows} entity rows x 2 views (14 features), {feature_rows} feature rows, {threads} threads: load {:.2} s; join best of {repeats} {:.3} s = {:.2} M entity rows/s ({:.2} M view-rows/s); {out_rows} rows out",
        load.as_secs_f64(),
        best.as_secs_f64(),
        rps / 1e6,
        2.0 * rps / 1e6,
    );
}

fn lookup(args: &[String]) {
    let spec: String = arg(args, 0, None);
    let view: String = arg(args, 1, None);
    let max_id: i64 = arg(args, 2, None);
    let seconds: f64 = arg(args, 3, None);
    let batch: usize = arg(args, 4, Some(1));
    let threads: usize = arg(args, 5, Some(1));
    let store = vane_online::open_store(&spec).expect("open store");
    let ttl = Some(400 * 86_400);
    // Warm up (connections, caches).
    let now = vane_features::timeutil::now_us();
    for i in 0..2_000 {
        let keys: Vec<vane_online::EntityKey> = (0..batch as i64)
            .map(|k| vane_online::EntityKey::int(1 + (i + k) % max_id))
            .collect();
        vane_online::lookup(&*store, &view, &keys, ttl, now).expect("lookup");
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let hists: Vec<(Histogram<u64>, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let store = Arc::clone(&store);
                let view = view.clone();
                s.spawn(move || {
                    let mut h =
                        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
                    let mut r = SplitMix64::new(t as u64 + 1);
                    let mut ids = vec![0i64; batch];
                    let (mut calls, mut present) = (0u64, 0u64);
                    while Instant::now() < deadline {
                        for id in ids.iter_mut() {
                            *id = 1 + (r.next_u64() % max_id as u64) as i64;
                        }
                        // Timed with the key encoding, as the server pays it per request.
                        let t0 = Instant::now();
                        let keys: Vec<vane_online::EntityKey> = ids
                            .iter()
                            .map(|&id| vane_online::EntityKey::int(id))
                            .collect();
                        let got =
                            vane_online::lookup(&*store, &view, &keys, ttl, now).expect("lookup");
                        h.saturating_record(t0.elapsed().as_nanos() as u64);
                        calls += 1;
                        present += got
                            .iter()
                            .filter(|l| matches!(l, vane_online::Lookup::Present(_)))
                            .count() as u64;
                    }
                    assert!(
                        present > 0 || calls == 0,
                        "no id found: wrong view or MAX_ID?"
                    );
                    (h, calls)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let mut calls = 0;
    for (h, c) in &hists {
        all.add(h).expect("same bounds");
        calls += c;
    }
    let us = |q: f64| all.value_at_quantile(q) as f64 / 1_000.0;
    println!(
        "lookup {}: view {view}, batch {batch}, {threads} threads, {seconds} s: {:.0} calls/s; per call p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us",
        store.describe(),
        calls as f64 / seconds,
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        all.max() as f64 / 1_000.0,
    );
}
