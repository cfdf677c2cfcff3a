//! What a run measured: per-arm HDR histograms (client latency and the server's own timing
//! headers), errors by status and transport failure, per-version figures, bounded latency
//! samples for the rank test, and per-second rows.

use std::collections::BTreeMap;
use std::io::Write;

use hdrhistogram::Histogram;

/// Highest value a histogram records (µs): one hour. Larger values are clamped.
pub const HIST_MAX_US: u64 = 3_600_000_000;

/// A histogram of microseconds, 1 µs .. 1 h, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("static histogram bounds are valid")
}

/// Merges `b` into `a` (same bounds, so it cannot fail).
pub fn merge_hist(a: &mut Histogram<u64>, b: &Histogram<u64>) {
    let _ = a.add(b);
}

/// A transport failure: no HTTP status came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Transport {
    /// The TCP connection (or HTTP handshake) could not be established.
    Connect,
    /// The connection was reset or closed before the response was complete.
    Reset,
    /// No complete response within `--timeout`.
    Timeout,
    /// Anything else (protocol errors).
    Other,
}

impl Transport {
    pub const ALL: [Transport; 4] = [
        Transport::Connect,
        Transport::Reset,
        Transport::Timeout,
        Transport::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Transport::Connect => "connect",
            Transport::Reset => "reset",
            Transport::Timeout => "timeout",
            Transport::Other => "other",
        }
    }
}

/// Figures of one model version (from `x-vane-model-version`) within an arm.
#[derive(Debug, Clone)]
pub struct VersionStats {
    pub requests: u64,
    pub ok: u64,
    pub latency: Histogram<u64>,
    pub score_sum: f64,
    pub score_count: u64,
}

impl VersionStats {
    pub fn new() -> Self {
        Self {
            requests: 0,
            ok: 0,
            latency: new_hist(),
            score_sum: 0.0,
            score_count: 0,
        }
    }

    pub fn merge(&mut self, o: &VersionStats) {
        self.requests += o.requests;
        self.ok += o.ok;
        merge_hist(&mut self.latency, &o.latency);
        self.score_sum += o.score_sum;
        self.score_count += o.score_count;
    }

    pub fn score_mean(&self) -> Option<f64> {
        (self.score_count > 0).then(|| self.score_sum / self.score_count as f64)
    }
}

impl Default for VersionStats {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything measured for one arm (a target URL, or one version of a compare run).
#[derive(Debug, Clone)]
pub struct ArmStats {
    /// Measured requests that completed or failed.
    pub requests: u64,
    /// 2xx responses.
    pub ok: u64,
    /// Non-2xx responses by status.
    pub status_errors: BTreeMap<u16, u64>,
    /// Failures without a status, by kind.
    pub transport_errors: BTreeMap<Transport, u64>,
    /// Client latency of 2xx responses (µs; from the intended send time in the open loop).
    pub latency: Histogram<u64>,
    /// The server's `x-vane-queue-us`, `x-vane-compute-us` and `x-vane-total-us`.
    pub server_queue: Histogram<u64>,
    pub server_compute: Histogram<u64>,
    pub server_total: Histogram<u64>,
    /// By the version that answered; `unversioned` when the header is absent.
    pub versions: BTreeMap<String, VersionStats>,
    /// A uniform sample of the 2xx latencies (µs), bounded, for the Mann–Whitney test.
    pub latency_sample: Vec<f64>,
    /// The first score each dataset row got on this arm (NaN = none), for paired comparison.
    pub row_scores: Vec<f32>,
}

impl ArmStats {
    pub fn new() -> Self {
        Self {
            requests: 0,
            ok: 0,
            status_errors: BTreeMap::new(),
            transport_errors: BTreeMap::new(),
            latency: new_hist(),
            server_queue: new_hist(),
            server_compute: new_hist(),
            server_total: new_hist(),
            versions: BTreeMap::new(),
            latency_sample: Vec::new(),
            row_scores: Vec::new(),
        }
    }

    pub fn errors(&self) -> u64 {
        self.requests - self.ok
    }

    /// Failed / attempted; `None` without requests.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors() as f64 / self.requests as f64)
    }

    /// Merges another thread's figures (row scores are filled in separately).
    pub fn merge(&mut self, o: &ArmStats) {
        self.requests += o.requests;
        self.ok += o.ok;
        for (k, v) in &o.status_errors {
            *self.status_errors.entry(*k).or_default() += v;
        }
        for (k, v) in &o.transport_errors {
            *self.transport_errors.entry(*k).or_default() += v;
        }
        merge_hist(&mut self.latency, &o.latency);
        merge_hist(&mut self.server_queue, &o.server_queue);
        merge_hist(&mut self.server_compute, &o.server_compute);
        merge_hist(&mut self.server_total, &o.server_total);
        for (k, v) in &o.versions {
            self.versions.entry(k.clone()).or_default().merge(v);
        }
        self.latency_sample.extend_from_slice(&o.latency_sample);
    }

    /// The errors as one map: status codes and transport kinds.
    pub fn error_map(&self) -> BTreeMap<String, u64> {
        let mut m: BTreeMap<String, u64> = self
            .status_errors
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        for (k, v) in &self.transport_errors {
            m.insert(k.name().to_string(), *v);
        }
        m
    }

    /// The mean of every score this arm returned.
    pub fn score_mean(&self) -> Option<f64> {
        let (s, n) = self.versions.values().fold((0.0, 0u64), |(s, n), v| {
            (s + v.score_sum, n + v.score_count)
        });
        (n > 0).then(|| s / n as f64)
    }
}

impl Default for ArmStats {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-second figures of one arm (or all arms), by completion time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecondFigures {
    pub completed: u64,
    pub ok: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl SecondFigures {
    pub fn from_hist(completed: u64, ok: u64, h: &Histogram<u64>) -> Self {
        let q = |q: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            }
        };
        Self {
            completed,
            ok,
            errors: completed - ok,
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            max_us: if h.is_empty() { 0 } else { h.max() },
        }
    }
}

/// One second of the measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct SecondRow {
    /// Seconds since the measurement started (this row covers `[second, second + 1)`).
    pub second: u32,
    /// Requests the schedule offered in that second (open loop).
    pub offered: Option<f64>,
    pub all: SecondFigures,
    pub arms: Vec<SecondFigures>,
}

/// Reservoir sampling (Vitter's algorithm R) of at most `cap` values.
#[derive(Debug, Clone)]
pub struct Reservoir {
    pub values: Vec<f64>,
    seen: u64,
    cap: usize,
}

impl Reservoir {
    pub fn new(cap: usize) -> Self {
        Self {
            values: Vec::with_capacity(cap.min(1 << 16)),
            seen: 0,
            cap,
        }
    }

    /// Offers `v`; `rand01` draws a uniform u64 when needed.
    pub fn offer(&mut self, v: f64, draw: impl FnOnce(u64) -> u64) {
        self.seen += 1;
        if self.values.len() < self.cap {
            self.values.push(v);
        } else if self.cap > 0 {
            let j = draw(self.seen);
            if (j as usize) < self.cap {
                self.values[j as usize] = v;
            }
        }
    }
}

/// Writes the HDR percentile spectrum of `h` (µs) in HdrHistogram's `.hgrm` text format
/// (values in milliseconds, as `HistogramLogProcessor` prints them): Value, Percentile,
/// TotalCount, 1/(1-Percentile), then the Mean/StdDeviation/Max/Total count footer.
pub fn write_hgrm(h: &Histogram<u64>, mut w: impl Write) -> std::io::Result<()> {
    writeln!(
        w,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let scale = 1000.0;
    for (value, pct, count) in percentile_spectrum(h, 5) {
        let q = pct / 100.0;
        if q < 1.0 {
            writeln!(
                w,
                "{:>12.3} {:>2.12} {:>10} {:>14.2}",
                value as f64 / scale,
                q,
                count,
                1.0 / (1.0 - q)
            )?;
        } else {
            writeln!(
                w,
                "{:>12.3} {:>2.12} {:>10}",
                value as f64 / scale,
                q,
                count
            )?;
        }
    }
    let mean = if h.is_empty() { 0.0 } else { h.mean() };
    let sd = if h.is_empty() { 0.0 } else { h.stdev() };
    writeln!(
        w,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        mean / scale,
        sd / scale
    )?;
    writeln!(
        w,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / scale,
        h.len()
    )?;
    writeln!(
        w,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        h.distinct_values()
    )?;
    Ok(())
}

/// The percentile spectrum: `(value µs, percentile in [0, 100], count up to it)`, with
/// `ticks_per_half` steps per halving of the distance to 100 % (HdrHistogram's
/// `percentiles(ticksPerHalfDistance)` iteration), ending at 100 %.
pub fn percentile_spectrum(h: &Histogram<u64>, ticks_per_half: u32) -> Vec<(u64, f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(ticks_per_half)
        .map(|v| {
            (
                h.highest_equivalent(v.value_iterated_to()),
                v.quantile_iterated_to() * 100.0,
                v.count_since_last_iteration(),
            )
        })
        .scan(0u64, |total, (value, pct, n)| {
            *total += n;
            Some((value, pct, *total))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spectrum_ends_at_the_max_and_counts_everything() {
        let mut h = new_hist();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let s = percentile_spectrum(&h, 5);
        let (last_v, last_p, last_n) = *s.last().unwrap();
        assert_eq!(last_p, 100.0);
        assert_eq!(last_n, 10_000);
        assert!(h.equivalent(last_v, 10_000));
        assert!(
            s.windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1 && w[0].2 <= w[1].2)
        );
        // The 50 % tick sits at the median.
        let mid = s.iter().find(|r| r.1 >= 50.0).unwrap();
        assert!((4990..=5010).contains(&mid.0), "{mid:?}");
        let mut out = Vec::new();
        write_hgrm(&h, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
        assert!(
            text.contains("#[Max     =       10.007, Total count    =        10000]"),
            "{text}"
        );
        // Every data line parses as Value Percentile TotalCount [1/(1-P)].
        let rows: Vec<Vec<f64>> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
            .collect();
        assert_eq!(rows.len(), s.len());
        assert!(rows[..rows.len() - 1].iter().all(|r| r.len() == 4));
        let r = &rows[3];
        assert!((r[3] - 1.0 / (1.0 - r[1])).abs() < 0.01 * r[3]);
    }

    #[test]
    fn reservoir_is_bounded_and_uniform_enough() {
        let mut r = Reservoir::new(100);
        let mut x = 1u64;
        for v in 0..10_000 {
            r.offer(v as f64, |seen| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 11) % seen
            });
        }
        assert_eq!(r.values.len(), 100);
        let mean = r.values.iter().sum::<f64>() / 100.0;
        assert!((3000.0..7000.0).contains(&mean), "{mean}");
    }

    proptest! {
        #[test]
        fn merging_histograms_equals_recording_once(
            a in proptest::collection::vec(1u64..5_000_000, 0..300),
            b in proptest::collection::vec(1u64..5_000_000, 0..300),
        ) {
            let mut ha = new_hist();
            let mut hb = new_hist();
            let mut all = new_hist();
            for v in &a { ha.record(*v).unwrap(); all.record(*v).unwrap(); }
            for v in &b { hb.record(*v).unwrap(); all.record(*v).unwrap(); }
            let mut sa = ArmStats::new();
            sa.latency = ha;
            sa.requests = a.len() as u64;
            let mut sb = ArmStats::new();
            sb.latency = hb;
            sb.requests = b.len() as u64;
            sa.merge(&sb);
            prop_assert_eq!(sa.requests, (a.len() + b.len()) as u64);
            prop_assert_eq!(sa.latency.len(), all.len());
            for q in [0.5, 0.9, 0.99, 1.0] {
                if !all.is_empty() {
                    prop_assert_eq!(sa.latency.value_at_quantile(q), all.value_at_quantile(q));
                }
            }
            prop_assert_eq!(sa.latency.max(), all.max());
        }
    }
}
