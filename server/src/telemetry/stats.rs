//! Exact latency percentiles per model version (HDR histograms), for `/v2/models/{m}/stats`.
//!
//! Each histogram is sharded by recording thread ([`Sharded`]): a request records into its own
//! thread's shard, so threads never contend for a lock on the hot path; a read merges them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

const MAX_US: u64 = 60_000_000;

/// Queue, compute and total time since start, in microseconds.
pub struct ModelStats {
    started: Instant,
    queue: Sharded,
    compute: Sharded,
    total: Sharded,
    batches: Sharded,
    shadow: Mutex<ShadowSummary>,
}

/// One histogram as per-thread shards: recording locks only the calling thread's shard
/// (uncontended), reading merges every shard.
pub struct Sharded {
    shards: Box<[Mutex<Histogram<u64>>]>,
}

/// Shards per histogram: one per core (each shard is ~100 KB), at most 8.
fn shard_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 8))
}

/// This thread's shard index, assigned round-robin on first use.
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SLOT.with(|s| *s)
}

impl Sharded {
    fn new() -> Self {
        Self {
            shards: (0..shard_count()).map(|_| new_hist()).collect(),
        }
    }

    fn record(&self, value: u64, count: u64) {
        let shard = &self.shards[thread_slot() % self.shards.len()];
        // A poisoned lock only means a panic elsewhere while recording; the data is usable.
        let mut h = shard.lock().unwrap_or_else(|p| p.into_inner());
        let _ = h.record_n(value.clamp(1, MAX_US), count);
    }

    fn merged(&self) -> Histogram<u64> {
        let mut all = Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds");
        for shard in &self.shards {
            let h = shard.lock().unwrap_or_else(|p| p.into_inner());
            let _ = all.add(&*h);
        }
        all
    }
}

/// How a shadow version's answers compare with what clients got (first output).
#[derive(Debug, Default, Clone, Serialize)]
pub struct ShadowSummary {
    pub requests: u64,
    pub compared: u64,
    pub max_abs_diff: f64,
    pub mean_abs_diff: f64,
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

#[derive(Debug, Serialize)]
pub struct StatsSnapshot {
    pub uptime_s: f64,
    /// Per request: time in the batch queue (µs).
    pub queue_us: Percentiles,
    /// Per request: backend time of the batch it ran in (µs).
    pub compute_us: Percentiles,
    /// Per successful request: headers received → response ready (µs).
    pub total_us: Percentiles,
    /// Per executed batch: rows.
    pub batch_rows: Percentiles,
    /// When this version is a shadow: how its answers compare with the served ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowSummary>,
}

fn new_hist() -> Mutex<Histogram<u64>> {
    Mutex::new(Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds"))
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_US)
}

fn summarize(h: &Sharded) -> Percentiles {
    let h = h.merged();
    if h.is_empty() {
        return Percentiles {
            count: 0,
            min: 0,
            mean: 0.0,
            p50: 0,
            p90: 0,
            p99: 0,
            p999: 0,
            max: 0,
        };
    }
    Percentiles {
        count: h.len(),
        min: h.min(),
        mean: h.mean(),
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
    }
}

impl Default for ModelStats {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelStats {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            queue: Sharded::new(),
            compute: Sharded::new(),
            total: Sharded::new(),
            batches: Sharded::new(),
            shadow: Mutex::new(ShadowSummary::default()),
        }
    }

    /// One shadowed request; `diff` is the largest |shadow − answered| when comparable.
    pub fn record_shadow(&self, diff: Option<f64>) {
        let mut s = self.shadow.lock().unwrap_or_else(|p| p.into_inner());
        s.requests += 1;
        if let Some(d) = diff {
            s.compared += 1;
            s.max_abs_diff = s.max_abs_diff.max(d);
            s.mean_abs_diff += (d - s.mean_abs_diff) / s.compared as f64;
        }
    }

    pub fn record_queue(&self, d: Duration) {
        self.queue.record(micros(d), 1);
    }

    /// One batch of `requests` requests and `rows` rows took `d`.
    pub fn record_batch(&self, d: Duration, requests: usize, rows: usize) {
        self.compute.record(micros(d), requests as u64);
        self.batches.record(rows as u64, 1);
    }

    pub fn record_total(&self, d: Duration) {
        self.total.record(micros(d), 1);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            uptime_s: self.started.elapsed().as_secs_f64(),
            queue_us: summarize(&self.queue),
            compute_us: summarize(&self.compute),
            total_us: summarize(&self.total),
            batch_rows: summarize(&self.batches),
            shadow: {
                let s = self.shadow.lock().unwrap_or_else(|p| p.into_inner());
                (s.requests > 0).then(|| s.clone())
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_exact_within_hdr_precision() {
        let s = ModelStats::new();
        for us in 1..=1000u64 {
            s.record_total(Duration::from_micros(us));
        }
        s.record_batch(Duration::from_micros(50), 4, 32);
        let snap = s.snapshot();
        assert_eq!(snap.total_us.count, 1000);
        assert_eq!(snap.total_us.p50, 500);
        assert_eq!(snap.total_us.p90, 900);
        assert_eq!(snap.total_us.p99, 990);
        assert_eq!(snap.total_us.p999, 999);
        assert_eq!(snap.compute_us.count, 4);
        assert_eq!(snap.batch_rows.max, 32);
        assert_eq!(snap.queue_us.count, 0);
    }

    #[test]
    fn shards_of_many_threads_merge() {
        let s = std::sync::Arc::new(ModelStats::new());
        let threads: Vec<_> = (0..6u64)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for us in 1..=100u64 {
                        s.record_total(Duration::from_micros(t * 100 + us));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let snap = s.snapshot();
        assert_eq!(snap.total_us.count, 600);
        assert_eq!((snap.total_us.min, snap.total_us.max), (1, 600));
        assert_eq!(snap.total_us.p50, 300);
    }
}
