//! Open-loop load at a fixed rate (coordinated-omission free): request i is due at
//! `start + i / rate`, whatever happened to earlier ones, and its latency is measured from
//! that due time. wrk cannot do this (its pauses have millisecond granularity and fire in
//! bursts), so below-saturation latencies in BENCHMARKS.md come from here.
//!
//!   pace URL BODY_FILE RATE DURATION_S [CONNECTIONS]
//!
//! Prints: achieved rate, errors, p50/p90/p99/p99.9/max latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::sync::{Mutex, mpsc};

fn usage() -> ! {
    eprintln!("usage: pace URL BODY_FILE RATE DURATION_S [CONNECTIONS]");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        usage();
    }
    let url: hyper::Uri = args[0].parse().unwrap_or_else(|_| usage());
    let body = Bytes::from(std::fs::read(&args[1]).unwrap_or_else(|e| {
        eprintln!("{}: {e}", args[1]);
        std::process::exit(2)
    }));
    let rate: f64 = args[2].parse().unwrap_or_else(|_| usage());
    let duration = Duration::from_secs_f64(args[3].parse().unwrap_or_else(|_| usage()));
    let conns: usize = args.get(4).and_then(|c| c.parse().ok()).unwrap_or(64);
    let authority = url
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_else(|| usage());
    let path = url
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (tx, rx) = mpsc::unbounded_channel::<Instant>();
    let total = (rate * duration.as_secs_f64()) as u64;
    let start = Instant::now() + Duration::from_millis(200);
    // The pacer is an OS thread: thread::sleep has ~50 µs precision, tokio's timer 1 ms.
    let pacer = std::thread::spawn(move || {
        let period = Duration::from_secs_f64(1.0 / rate);
        for i in 0..total {
            let due = start + period.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if tx.send(due).is_err() {
                break;
            }
        }
    });
    let (lat, errors, done) = rt.block_on(async move {
        let rx = Arc::new(Mutex::new(rx));
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let rx = rx.clone();
            let (authority, path, body) = (authority.clone(), path.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                    .expect("histogram");
                let mut errors = 0u64;
                let stream = tokio::net::TcpStream::connect(&authority)
                    .await
                    .expect("connect");
                let _ = stream.set_nodelay(true);
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .expect("handshake");
                tokio::spawn(conn);
                loop {
                    let due = match rx.lock().await.recv().await {
                        Some(d) => d,
                        None => break,
                    };
                    let req = Request::post(path.as_str())
                        .header("host", authority.as_str())
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone()))
                        .expect("request");
                    match sender.send_request(req).await {
                        Ok(resp) => {
                            let ok = resp.status().is_success();
                            let _ = resp.into_body().collect().await;
                            if !ok {
                                errors += 1;
                            }
                        }
                        Err(_) => errors += 1,
                    }
                    hist.saturating_record(due.elapsed().as_micros() as u64);
                }
                (hist, errors)
            }));
        }
        let mut all =
            hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
        let mut errors = 0;
        for t in tasks {
            let (h, e) = t.await.expect("task");
            all.add(&h).expect("merge");
            errors += e;
        }
        (all, errors, Instant::now())
    });
    let _ = pacer.join();
    let secs = (done - start).as_secs_f64();
    println!(
        "offered {rate:.0}/s achieved {:.0}/s errors {errors} p50 {}us p90 {}us p99 {}us p99.9 {}us max {}us",
        lat.len() as f64 / secs,
        lat.value_at_quantile(0.5),
        lat.value_at_quantile(0.9),
        lat.value_at_quantile(0.99),
        lat.value_at_quantile(0.999),
        lat.max()
    );
}
