//! Statistics per model version for `/v2/models/{m}/stats`: Triton's statistics extension
//! ([`TritonStats`]: counts and cumulative nanoseconds) and exact latency percentiles (HDR
//! histograms, [`StatsSnapshot`]).
//!
//! Each histogram is sharded by recording thread ([`Sharded`]): a request records into its own
//! thread's shard, so threads never contend for a lock on the hot path; a read merges them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use serde::Serialize;

const MAX_US: u64 = 60_000_000;

/// Queue, compute and total time since start: percentiles in microseconds, sums in
/// nanoseconds.
pub struct ModelStats {
    started: Instant,
    queue: Sharded,
    compute: Sharded,
    total: Sharded,
    /// Rows per executed batch (the sum is the rows executed).
    batches: Sharded,
    fail_count: AtomicU64,
    fail_ns: AtomicU64,
    /// Milliseconds since the Unix epoch when the last batch finished (0 = never).
    last_inference_ms: AtomicU64,
    /// Per batch size (rows): executions and their summed compute nanoseconds. Written once
    /// per batch, not per request.
    batch_sizes: Mutex<BTreeMap<u64, (u64, u64)>>,
    shadow: Mutex<ShadowSummary>,
}

/// One histogram as per-thread shards: recording locks only the calling thread's shard
/// (uncontended), reading merges every shard.
pub struct Sharded {
    shards: Box<[Mutex<Shard>]>,
}

/// A histogram and the exact sum of what it recorded (nanoseconds, or rows).
struct Shard {
    hist: Histogram<u64>,
    sum: u64,
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

    /// Records `value` `count` times, and adds `sum` to the exact sum.
    fn record(&self, value: u64, count: u64, sum: u64) {
        let shard = &self.shards[thread_slot() % self.shards.len()];
        // A poisoned lock only means a panic elsewhere while recording; the data is usable.
        let mut s = shard.lock().unwrap_or_else(|p| p.into_inner());
        let _ = s.hist.record_n(value.clamp(1, MAX_US), count);
        s.sum = s.sum.saturating_add(sum);
    }

    fn merged(&self) -> Histogram<u64> {
        let mut all = Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds");
        for shard in &self.shards {
            let s = shard.lock().unwrap_or_else(|p| p.into_inner());
            let _ = all.add(&s.hist);
        }
        all
    }

    /// How many values were recorded, and their exact sum.
    fn count_and_sum(&self) -> DurationStat {
        self.shards
            .iter()
            .fold(DurationStat::default(), |acc, shard| {
                let s = shard.lock().unwrap_or_else(|p| p.into_inner());
                DurationStat {
                    count: acc.count + s.hist.len(),
                    ns: acc.ns.saturating_add(s.sum),
                }
            })
    }
}

/// Triton's `$duration_stat`: how many times, and the total nanoseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DurationStat {
    pub count: u64,
    pub ns: u64,
}

/// Triton's `$inference_stats`. Vane times the backend call (`compute_infer`); assembling a
/// batch's input and splitting its output are not timed apart, so `compute_input` and
/// `compute_output` carry the counts with 0 ns. There is no response cache.
#[derive(Debug, Serialize)]
pub struct InferenceStats {
    pub success: DurationStat,
    pub fail: DurationStat,
    pub queue: DurationStat,
    pub compute_input: DurationStat,
    pub compute_infer: DurationStat,
    pub compute_output: DurationStat,
    pub cache_hit: DurationStat,
    pub cache_miss: DurationStat,
}

/// Triton's `$batch_stats`: executions of one batch size.
#[derive(Debug, Serialize)]
pub struct BatchStat {
    pub batch_size: u64,
    pub compute_input: DurationStat,
    pub compute_infer: DurationStat,
    pub compute_output: DurationStat,
}

/// A version's part of Triton's `$model_stat` (the caller adds `name` and `version`).
#[derive(Debug, Serialize)]
pub struct TritonStats {
    /// Milliseconds since the Unix epoch of the last execution (0 = none yet).
    pub last_inference: u64,
    /// Rows executed (Triton counts each row of a batched request).
    pub inference_count: u64,
    /// Backend calls: one per batch.
    pub execution_count: u64,
    pub inference_stats: InferenceStats,
    pub batch_stats: Vec<BatchStat>,
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

fn new_hist() -> Mutex<Shard> {
    Mutex::new(Shard {
        hist: Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds"),
        sum: 0,
    })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
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
            fail_count: AtomicU64::new(0),
            fail_ns: AtomicU64::new(0),
            last_inference_ms: AtomicU64::new(0),
            batch_sizes: Mutex::new(BTreeMap::new()),
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
        self.queue.record(micros(d), 1, nanos(d));
    }

    /// One batch of `requests` requests and `rows` rows took `d` (each of its requests is
    /// counted with the batch's time, as Triton counts `compute_infer`).
    pub fn record_batch(&self, d: Duration, requests: usize, rows: usize) {
        let ns = nanos(d);
        self.compute.record(
            micros(d),
            requests as u64,
            ns.saturating_mul(requests as u64),
        );
        self.batches.record(rows as u64, 1, rows as u64);
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_inference_ms.fetch_max(now_ms, Ordering::Relaxed);
        let mut sizes = self.batch_sizes.lock().unwrap_or_else(|p| p.into_inner());
        let (count, sum) = sizes.entry(rows as u64).or_default();
        *count += 1;
        *sum = sum.saturating_add(ns);
    }

    /// A successful request took `d` from its start to its answer.
    pub fn record_total(&self, d: Duration) {
        self.total.record(micros(d), 1, nanos(d));
    }

    /// A failed request took `d` from its start to its error.
    pub fn record_fail(&self, d: Duration) {
        self.fail_count.fetch_add(1, Ordering::Relaxed);
        self.fail_ns.fetch_add(nanos(d), Ordering::Relaxed);
    }

    /// The counters of Triton's statistics extension.
    pub fn triton(&self) -> TritonStats {
        let compute = self.compute.count_and_sum();
        let untimed = DurationStat {
            count: compute.count,
            ns: 0,
        };
        let batches = self.batches.count_and_sum();
        let sizes = self.batch_sizes.lock().unwrap_or_else(|p| p.into_inner());
        TritonStats {
            last_inference: self.last_inference_ms.load(Ordering::Relaxed),
            // The batches' `sum` is rows, not nanoseconds.
            inference_count: batches.ns,
            execution_count: batches.count,
            inference_stats: InferenceStats {
                success: self.total.count_and_sum(),
                fail: DurationStat {
                    count: self.fail_count.load(Ordering::Relaxed),
                    ns: self.fail_ns.load(Ordering::Relaxed),
                },
                queue: self.queue.count_and_sum(),
                compute_input: untimed,
                compute_infer: compute,
                compute_output: untimed,
                cache_hit: DurationStat::default(),
                cache_miss: DurationStat::default(),
            },
            batch_stats: sizes
                .iter()
                .map(|(&batch_size, &(count, ns))| BatchStat {
                    batch_size,
                    compute_input: DurationStat { count, ns: 0 },
                    compute_infer: DurationStat { count, ns },
                    compute_output: DurationStat { count, ns: 0 },
                })
                .collect(),
        }
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
    fn triton_counters_sum_exactly() {
        let s = ModelStats::new();
        s.record_queue(Duration::from_nanos(1_500));
        s.record_queue(Duration::from_nanos(2_500));
        s.record_batch(Duration::from_nanos(10_000), 2, 3);
        s.record_batch(Duration::from_nanos(7_000), 1, 1);
        s.record_batch(Duration::from_nanos(9_000), 1, 3);
        s.record_total(Duration::from_nanos(40_000));
        s.record_total(Duration::from_nanos(50_001));
        s.record_fail(Duration::from_nanos(123));
        let t = s.triton();
        let st = &t.inference_stats;
        assert_eq!(
            st.queue,
            DurationStat {
                count: 2,
                ns: 4_000
            }
        );
        // Each request of a batch counts the batch's time.
        assert_eq!(
            st.compute_infer,
            DurationStat {
                count: 4,
                ns: 36_000
            }
        );
        assert_eq!(st.compute_input, DurationStat { count: 4, ns: 0 });
        assert_eq!(
            st.success,
            DurationStat {
                count: 2,
                ns: 90_001
            }
        );
        assert_eq!(st.fail, DurationStat { count: 1, ns: 123 });
        assert_eq!((t.inference_count, t.execution_count), (7, 3));
        assert!(t.last_inference > 1_600_000_000_000, "{}", t.last_inference);
        let sizes: Vec<_> = t
            .batch_stats
            .iter()
            .map(|b| (b.batch_size, b.compute_infer))
            .collect();
        assert_eq!(
            sizes,
            [
                (
                    1,
                    DurationStat {
                        count: 1,
                        ns: 7_000
                    }
                ),
                (
                    3,
                    DurationStat {
                        count: 2,
                        ns: 19_000
                    }
                )
            ]
        );
        let fresh = ModelStats::new().triton();
        assert_eq!((fresh.last_inference, fresh.execution_count), (0, 0));
        assert!(fresh.batch_stats.is_empty());
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
