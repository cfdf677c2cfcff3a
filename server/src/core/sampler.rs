//! Traffic sampling for the drift monitor.
//!
//! A sampled request's decoded input rows and the scores it returned are copied
//! ([`Sampler::offer`]) into the calling thread's own buffer: one per thread, so producers never
//! contend, taken with `try_lock` so a push never blocks (the only other party is the sender
//! swapping the buffer out), with no allocation per request once the buffer has grown, and
//! bounded by a row budget shared by all buffers — beyond it, or in the rare instant the
//! sender holds the buffer, the sample is dropped and counted. One sender thread swaps the
//! buffers out every flush interval (backing off to 100 ms while there is nothing to send),
//! encodes the
//! samples as `vane-sample-stream` frames (a schema frame once per connection and schema, then
//! rows frames) and writes them to the monitor over TCP or a Unix socket. While the monitor is
//! away the sender drops what it drains (counted) and reconnects with exponential backoff, so
//! scoring never waits on the monitor.
//!
//! Which requests are sampled is decided per model version ([`crate::core::model::LoadedModel`]'s
//! sampling rate, from `sample_percent`); the decision costs one comparison when the rate is 0.

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::collections::HashMap;

use vane_registry::{FeatureKind, Profile, Signature};
use vane_sample_stream as wire;

use crate::backend::{DType, Output, OutputMeta, Tensor, TensorData};
use crate::config::{MonitorAddr, SamplerOptions};
use crate::telemetry::Metrics;
use crate::telemetry::labels::DropReason;

/// How one model version's samples look on the wire; built once per loaded version.
#[derive(Debug)]
pub struct SampleSchema {
    id: u64,
    schema: wire::Schema,
    width: usize,
    score: Option<ScoreColumn>,
    /// Tensor-signature models: where each feature's values are in a request's tensors.
    columns: Vec<TensorColumn>,
}

/// Column `column` of graph input `input` (`width` columns); strings coded by `vocab`.
#[derive(Debug)]
struct TensorColumn {
    input: usize,
    column: usize,
    width: usize,
    vocab: HashMap<String, u32>,
}

/// Where the score sits in a model's outputs.
#[derive(Debug, Clone, Copy)]
struct ScoreColumn {
    output: usize,
    column: usize,
    row_len: usize,
}

/// A numeric element as f32 (the monitor's value type).
trait AsF32 {
    fn as_f32(&self) -> f32;
}
macro_rules! as_f32_by_cast {
    ($($t:ty),*) => {$(impl AsF32 for $t { fn as_f32(&self) -> f32 { *self as f32 } })*};
}
as_f32_by_cast!(f32, f64, i8, i16, i32, i64, u8, u16, u32, u64);
impl AsF32 for bool {
    fn as_f32(&self) -> f32 {
        f32::from(u8::from(*self))
    }
}
impl AsF32 for String {
    fn as_f32(&self) -> f32 {
        f32::NAN
    }
}

impl SampleSchema {
    /// The schema of a version with `signature` and `outputs`. The score is the first float
    /// output with one value per row, or the second column of a two-column one (a binary
    /// classifier's positive class); an output named `probability`/`probabilities` is
    /// preferred.
    ///
    /// The features are the signature's monitored features. A tensor model's string columns
    /// are coded by the categories of the version's `profile` (unknown strings: unseen).
    pub fn new(
        model: &str,
        version: u64,
        signature: &Signature,
        outputs: &[OutputMeta],
        profile: Option<&Profile>,
    ) -> Self {
        let watched = signature.monitored_features();
        let categories = |name: &str, i: usize| -> Vec<String> {
            if !signature.is_tensor_model() {
                return signature.inputs[i].vocab.clone().unwrap_or_default();
            }
            match profile.and_then(|p| p.feature(name)) {
                Some(vane_registry::FeatureProfile::Categorical { categories, .. }) => {
                    categories.clone()
                }
                _ => Vec::new(),
            }
        };
        let mut columns = Vec::new();
        let features = watched
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let vocab = match f.kind {
                    FeatureKind::Numeric => None,
                    FeatureKind::Categorical => Some(categories(&f.name, i)),
                };
                if signature.is_tensor_model() {
                    columns.push(TensorColumn {
                        input: f.input,
                        column: f.column,
                        width: f.width,
                        vocab: vocab
                            .iter()
                            .flatten()
                            .enumerate()
                            .map(|(code, c)| (c.clone(), code as u32))
                            .collect(),
                    });
                }
                wire::Feature {
                    name: f.name.clone(),
                    kind: match vocab {
                        None => wire::FeatureKind::Numeric,
                        Some(v) => wire::FeatureKind::Categorical(v),
                    },
                }
            })
            .collect::<Vec<_>>();
        let candidates = outputs.iter().enumerate().filter_map(|(i, o)| {
            let float = matches!(o.dtype, DType::F32 | DType::F64);
            let column = match o.row_len() {
                1 => 0,
                2 => 1,
                _ => return None,
            };
            float.then_some((
                i,
                o,
                ScoreColumn {
                    output: i,
                    column,
                    row_len: o.row_len(),
                },
            ))
        });
        let mut best: Option<(usize, &OutputMeta, ScoreColumn)> = None;
        for c in candidates {
            let preferred = matches!(c.1.name.as_str(), "probability" | "probabilities");
            if best.is_none() || preferred {
                best = Some(c);
                if preferred {
                    break;
                }
            }
        }
        let score_name = best.map(|(_, o, s)| {
            if s.row_len == 1 {
                o.name.clone()
            } else {
                format!("{}[{}]", o.name, s.column)
            }
        });
        let schema = wire::Schema {
            model: model.to_string(),
            version,
            features,
            score: score_name,
        };
        Self {
            id: schema.id(),
            width: watched.len(),
            schema,
            score: best.map(|(_, _, s)| s),
            columns,
        }
    }

    /// A tensor-signature request's monitored values as `rows × features` f32 rows (numbers
    /// cast, strings coded, NaN for an unknown string or a missing value).
    pub fn rows_of(&self, tensors: &[Tensor], rows: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows * self.columns.len());
        for r in 0..rows {
            for c in &self.columns {
                let i = r * c.width + c.column;
                let v = tensors.get(c.input).map_or(f32::NAN, |t| match &t.data {
                    TensorData::Str(v) => v
                        .get(i)
                        .and_then(|s| c.vocab.get(s))
                        .map_or(f32::NAN, |code| *code as f32),
                    TensorData::Bool(_) => f32::NAN,
                    data => vane_protocol::each_tensor!(data, v => v.get(i).map_or(f32::NAN, AsF32::as_f32)),
                });
                out.push(v);
            }
        }
        out
    }

    /// The frame schema itself.
    pub fn wire(&self) -> &wire::Schema {
        &self.schema
    }

    /// Appends the score of each of `rows` rows, from a request's outputs, to `out` (NaN
    /// where an output is missing); nothing when the model has no score column.
    pub fn push_scores(&self, outputs: &[Output], rows: usize, out: &mut Vec<f32>) {
        let Some(s) = self.score else { return };
        let pick = |i: usize| i * s.row_len + s.column;
        match outputs.get(s.output).map(|o| &o.data) {
            Some(TensorData::F32(d)) => {
                out.extend((0..rows).map(|r| d.get(pick(r)).copied().unwrap_or(f32::NAN)));
            }
            Some(TensorData::F64(d)) => {
                out.extend((0..rows).map(|r| d.get(pick(r)).map_or(f32::NAN, |x| *x as f32)))
            }
            _ => out.extend(std::iter::repeat_n(f32::NAN, rows)),
        }
    }
}

/// Sampled rows of one schema and traffic source, row-major, as a thread buffered them.
struct Group {
    schema: Arc<SampleSchema>,
    shadow: bool,
    /// Sampled requests (the unit of `vane_samples_*_total`).
    requests: u64,
    rows: usize,
    values: Vec<f32>,
    /// One per row; NaN where a request's outputs held no score.
    scores: Vec<f32>,
}

/// One thread's buffer.
#[derive(Default)]
struct Shard {
    groups: Vec<Group>,
}

/// Distinguishes samplers in one process (tests start several), for the thread-local lookup.
static NEXT_SAMPLER_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's buffer in each sampler it has offered to.
    static SHARDS: std::cell::RefCell<Vec<(u64, Arc<Mutex<Shard>>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The per-thread buffers and their sender thread.
pub struct Sampler {
    id: u64,
    /// Every thread's buffer, for the sender.
    shards: Mutex<Vec<Arc<Mutex<Shard>>>>,
    queued_rows: AtomicUsize,
    max_queued_rows: usize,
    metrics: Arc<Metrics>,
    stop: AtomicBool,
    sender: Mutex<Option<JoinHandle<()>>>,
}

impl Sampler {
    /// Creates the buffers and starts the sender thread.
    pub fn start(opts: SamplerOptions, metrics: Arc<Metrics>) -> std::io::Result<Arc<Self>> {
        let sampler = Arc::new(Sampler {
            id: NEXT_SAMPLER_ID.fetch_add(1, Ordering::Relaxed),
            shards: Mutex::new(Vec::new()),
            queued_rows: AtomicUsize::new(0),
            max_queued_rows: opts.max_queued_rows.max(1),
            metrics,
            stop: AtomicBool::new(false),
            sender: Mutex::new(None),
        });
        let s = sampler.clone();
        let handle = std::thread::Builder::new()
            .name("vane-sampler".into())
            .spawn(move || Sender::new(s, opts).run())?;
        *sampler.sender.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(sampler)
    }

    /// This thread's buffer, registered on first use.
    fn shard(&self) -> Arc<Mutex<Shard>> {
        SHARDS.with(|cell| {
            let mut mine = cell.borrow_mut();
            if let Some((_, s)) = mine.iter().find(|(id, _)| *id == self.id) {
                return s.clone();
            }
            let s = Arc::new(Mutex::new(Shard::default()));
            self.shards
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(s.clone());
            mine.push((self.id, s.clone()));
            s
        })
    }

    /// Buffers `rows` rows of `input` (row-major) and their scores from `outputs`, tagged
    /// `shadow` when a shadow version produced them. Never blocks: when the row budget is
    /// spent, or the sender holds this thread's buffer at this instant, the sample is dropped
    /// and counted.
    pub fn offer(
        &self,
        schema: &Arc<SampleSchema>,
        shadow: bool,
        rows: usize,
        input: &[f32],
        outputs: &[Output],
    ) {
        let before = self.queued_rows.fetch_add(rows, Ordering::Relaxed);
        if before + rows > self.max_queued_rows || input.len() < rows * schema.width {
            self.queued_rows.fetch_sub(rows, Ordering::Relaxed);
            self.metrics.samples_dropped(DropReason::QueueFull, 1);
            return;
        }
        let shard = self.shard();
        let Ok(mut shard) = shard.try_lock() else {
            self.queued_rows.fetch_sub(rows, Ordering::Relaxed);
            self.metrics.samples_dropped(DropReason::QueueFull, 1);
            return;
        };
        let pos = shard
            .groups
            .iter()
            .position(|g| g.shadow == shadow && Arc::ptr_eq(&g.schema, schema));
        let g = match pos {
            Some(i) => &mut shard.groups[i],
            None => {
                shard.groups.push(Group {
                    schema: schema.clone(),
                    shadow,
                    requests: 0,
                    rows: 0,
                    values: Vec::new(),
                    scores: Vec::new(),
                });
                let last = shard.groups.len() - 1;
                &mut shard.groups[last]
            }
        };
        g.values.extend_from_slice(&input[..rows * schema.width]);
        schema.push_scores(outputs, rows, &mut g.scores);
        g.rows += rows;
        g.requests += 1;
    }

    /// Sends what is buffered (best effort, bounded by the write timeout) and stops the
    /// sender.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let handle = self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            h.thread().unpark();
            let _ = h.join();
        }
    }

    /// Takes every thread's buffered groups.
    fn drain(&self, into: &mut Vec<Group>) {
        let shards: Vec<Arc<Mutex<Shard>>> = self
            .shards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for s in shards {
            let taken = std::mem::take(&mut s.lock().unwrap_or_else(|p| p.into_inner()).groups);
            for g in &taken {
                self.queued_rows.fetch_sub(g.rows, Ordering::Relaxed);
            }
            into.extend(taken);
        }
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const IDLE_PARK: Duration = Duration::from_millis(100);

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn open(addr: &MonitorAddr) -> std::io::Result<Conn> {
        match addr {
            MonitorAddr::Tcp(a) => {
                let mut last = None;
                for sa in std::net::ToSocketAddrs::to_socket_addrs(a.as_str())? {
                    match TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT) {
                        Ok(s) => {
                            s.set_nodelay(true)?;
                            s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                            return Ok(Conn::Tcp(s));
                        }
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
                }))
            }
            MonitorAddr::Unix(p) => {
                let s = UnixStream::connect(p)?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                Ok(Conn::Unix(s))
            }
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(buf),
            Conn::Unix(s) => s.write_all(buf),
        }
    }
}

/// The sender thread's state.
struct Sender {
    sampler: Arc<Sampler>,
    opts: SamplerOptions,
    conn: Option<Conn>,
    /// Schemas sent on the current connection.
    announced: std::collections::HashSet<u64>,
    backoff: Duration,
    next_attempt: Instant,
    /// Whether the current outage was already logged.
    outage_logged: bool,
    buf: Vec<u8>,
}

impl Sender {
    fn new(sampler: Arc<Sampler>, opts: SamplerOptions) -> Self {
        Self {
            sampler,
            opts,
            conn: None,
            announced: Default::default(),
            backoff: MIN_BACKOFF,
            next_attempt: Instant::now(),
            outage_logged: false,
            buf: Vec::new(),
        }
    }

    fn run(mut self) {
        let mut batch = Vec::new();
        // Idle backoff: after empty drains the thread sleeps longer (up to IDLE_PARK), so a
        // server with no sampled traffic costs a few wake-ups per second.
        let mut park = self.opts.flush_interval;
        loop {
            let stopping = self.sampler.stop.load(Ordering::SeqCst);
            if !stopping {
                std::thread::park_timeout(park);
            }
            self.connect();
            self.sampler.drain(&mut batch);
            if batch.is_empty() {
                park = (park * 2).min(IDLE_PARK.max(self.opts.flush_interval));
            } else {
                park = self.opts.flush_interval;
                self.flush(&mut batch);
            }
            if stopping {
                return;
            }
        }
    }

    fn connect(&mut self) {
        if self.conn.is_some() || Instant::now() < self.next_attempt {
            return;
        }
        match Conn::open(&self.opts.addr) {
            Ok(c) => {
                tracing::info!(monitor = %self.opts.addr, "connected to the monitor");
                self.conn = Some(c);
                self.announced.clear();
                self.backoff = MIN_BACKOFF;
                self.outage_logged = false;
                self.sampler.metrics.monitor_connected(true);
            }
            Err(e) => {
                if !self.outage_logged {
                    tracing::warn!(monitor = %self.opts.addr, error = %e, "monitor unreachable; samples are dropped until it is back");
                    self.outage_logged = true;
                }
                self.next_attempt = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    fn flush(&mut self, batch: &mut Vec<Group>) {
        let n: u64 = batch.iter().map(|g| g.requests).sum();
        let Some(conn) = self.conn.as_mut() else {
            self.sampler
                .metrics
                .samples_dropped(DropReason::MonitorDown, n);
            batch.clear();
            return;
        };
        self.buf.clear();
        encode(batch, &mut self.announced, &mut self.buf);
        batch.clear();
        match conn.write_all(&self.buf) {
            Ok(()) => self.sampler.metrics.samples_sent(n),
            Err(e) => {
                tracing::warn!(monitor = %self.opts.addr, error = %e, "sending samples failed; reconnecting");
                self.sampler
                    .metrics
                    .samples_dropped(DropReason::SendFailed, n);
                self.sampler.metrics.monitor_connected(false);
                self.conn = None;
                self.outage_logged = true;
                self.next_attempt = Instant::now() + self.backoff;
            }
        }
        // Do not keep a huge buffer around after a burst.
        if self.buf.capacity() > 4 * wire::MAX_FRAME_BYTES {
            self.buf = Vec::new();
        }
    }
}

/// Encodes `groups` into frames: for each, the schema frame when it was not announced on this
/// connection yet, then rows frames of at most [`wire::rows_per_frame`] rows.
fn encode(groups: &[Group], announced: &mut std::collections::HashSet<u64>, out: &mut Vec<u8>) {
    for g in groups {
        let schema = &g.schema;
        if announced.insert(schema.id) {
            schema.schema.encode_frame(out);
        }
        let w = schema.width;
        let with_scores = schema.score.is_some() && g.scores.len() == g.rows;
        let per_frame = wire::rows_per_frame(w, schema.schema.model.len());
        let mut start = 0;
        while start < g.rows {
            let n = per_frame.min(g.rows - start);
            let values = &g.values[start * w..(start + n) * w];
            wire::encode_rows(
                out,
                schema.id,
                &schema.schema,
                g.shadow,
                n,
                |r, c| values[r * w + c],
                with_scores.then(|| &g.scores[start..start + n]),
            );
            start += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vane_registry::{FeatureSpec, TensorSpec};

    fn signature() -> Signature {
        Signature {
            inputs: vec![
                FeatureSpec::numeric("income", "FP64"),
                FeatureSpec::categorical("term", ["36", "60"]),
            ],
            tensor: Some(TensorSpec {
                name: "input".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 2],
            }),
            outputs: vec![],
            graph: None,
            online: None,
        }
    }

    fn meta(name: &str, dtype: DType, cols: usize) -> OutputMeta {
        OutputMeta {
            name: name.into(),
            dtype,
            row_shape: vec![cols],
        }
    }

    #[test]
    fn addresses_parse() {
        assert_eq!(
            "tcp://127.0.0.1:9100".parse::<MonitorAddr>().unwrap(),
            MonitorAddr::Tcp("127.0.0.1:9100".into())
        );
        assert_eq!(
            "monitor:9100".parse::<MonitorAddr>().unwrap(),
            MonitorAddr::Tcp("monitor:9100".into())
        );
        assert_eq!(
            "unix:///run/vane/monitor.sock"
                .parse::<MonitorAddr>()
                .unwrap(),
            MonitorAddr::Unix("/run/vane/monitor.sock".into())
        );
        for bad in ["", "unix://", "tcp://host", "host:port", ":9100"] {
            assert!(bad.parse::<MonitorAddr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_score_is_the_probability_output() {
        let sig = signature();
        let s = SampleSchema::new(
            "m",
            1,
            &sig,
            &[
                meta("label", DType::I64, 1),
                meta("probability", DType::F32, 1),
            ],
            None,
        );
        assert_eq!(s.schema.score.as_deref(), Some("probability"));
        let outputs = [
            Output::rows(TensorData::I64(vec![0, 1])),
            Output::rows(TensorData::F32(vec![0.25, 0.75])),
        ];
        let scores = |s: &SampleSchema, outputs: &[Output], rows| {
            let mut v = Vec::new();
            s.push_scores(outputs, rows, &mut v);
            v
        };
        assert_eq!(scores(&s, &outputs, 2), [0.25, 0.75]);
        // A two-column probability output: the positive class.
        let s = SampleSchema::new("m", 1, &sig, &[meta("probabilities", DType::F64, 2)], None);
        assert_eq!(s.schema.score.as_deref(), Some("probabilities[1]"));
        let outputs = [Output::rows(TensorData::F64(vec![0.9, 0.1, 0.4, 0.6]))];
        assert_eq!(scores(&s, &outputs, 2), [0.1, 0.6]);
        // Outputs without the score column: NaN per row.
        assert!(scores(&s, &[], 2).iter().all(|x| x.is_nan()));
        // No usable score: nothing.
        let s = SampleSchema::new("m", 1, &sig, &[meta("label", DType::I64, 1)], None);
        assert!(s.schema.score.is_none() && scores(&s, &[], 1).is_empty());
    }

    /// A sampler without its sender thread: tests drain it themselves.
    fn idle_sampler(max_rows: usize) -> Sampler {
        Sampler {
            id: NEXT_SAMPLER_ID.fetch_add(1, Ordering::Relaxed),
            shards: Mutex::new(Vec::new()),
            queued_rows: AtomicUsize::new(0),
            max_queued_rows: max_rows,
            metrics: Arc::new(Metrics::new()),
            stop: AtomicBool::new(false),
            sender: Mutex::new(None),
        }
    }

    fn decode_all(mut rest: &[u8]) -> Vec<wire::Frame<'_>> {
        let mut frames = Vec::new();
        while !rest.is_empty() {
            let n = wire::body_len(rest[..4].try_into().unwrap()).unwrap();
            frames.push(wire::decode(&rest[4..4 + n]).unwrap());
            rest = &rest[4 + n..];
        }
        frames
    }

    #[test]
    fn offers_group_by_schema_and_source_and_encode_once_per_schema() {
        let sig = signature();
        let schema = Arc::new(SampleSchema::new(
            "m",
            7,
            &sig,
            &[meta("probability", DType::F32, 1)],
            None,
        ));
        let sampler = idle_sampler(1000);
        let out = |scores: Vec<f32>| [Output::rows(TensorData::F32(scores))];
        sampler.offer(
            &schema,
            false,
            2,
            &[0.0, 1.0, 2.0, 3.0],
            &out(vec![0.1, 0.2]),
        );
        sampler.offer(&schema, true, 1, &[100.0, 101.0], &out(vec![0.9]));
        sampler.offer(&schema, false, 1, &[10.0, 11.0], &out(vec![0.3]));
        assert_eq!(sampler.queued_rows.load(Ordering::Relaxed), 4);
        let mut groups = Vec::new();
        sampler.drain(&mut groups);
        assert_eq!(sampler.queued_rows.load(Ordering::Relaxed), 0);
        assert_eq!(groups.len(), 2, "live and shadow");
        assert_eq!((groups[0].requests, groups[0].rows), (2, 3));
        let mut announced = Default::default();
        let mut buf = Vec::new();
        encode(&groups, &mut announced, &mut buf);
        let frames = decode_all(&buf);
        assert_eq!(
            frames.len(),
            3,
            "one schema frame, then live and shadow rows"
        );
        let wire::Frame::Rows(live) = &frames[1] else {
            panic!()
        };
        assert!(!live.shadow);
        assert_eq!(live.rows, 3);
        assert_eq!(live.column(0).collect::<Vec<_>>(), [0.0, 2.0, 10.0]);
        assert_eq!(live.column(1).collect::<Vec<_>>(), [1.0, 3.0, 11.0]);
        assert_eq!(live.scores().unwrap().collect::<Vec<_>>(), [0.1, 0.2, 0.3]);
        let wire::Frame::Rows(shadow) = &frames[2] else {
            panic!()
        };
        assert!(shadow.shadow && shadow.rows == 1);
        // The schema is not announced again on the same connection.
        buf.clear();
        encode(&groups[..1], &mut announced, &mut buf);
        assert!(matches!(decode_all(&buf)[0], wire::Frame::Rows(_)));
    }

    #[test]
    fn the_row_budget_drops_and_counts() {
        let sig = signature();
        let schema = Arc::new(SampleSchema::new("m", 1, &sig, &[], None));
        let sampler = idle_sampler(3);
        sampler.offer(&schema, false, 2, &[0.0; 4], &[]);
        sampler.offer(&schema, false, 2, &[0.0; 4], &[]);
        // A short input (fewer values than rows × width) is refused too.
        sampler.offer(&schema, false, 1, &[0.0], &[]);
        let mut groups = Vec::new();
        sampler.drain(&mut groups);
        assert_eq!(groups.iter().map(|g| g.rows).sum::<usize>(), 2);
        let text = sampler.metrics.render();
        assert!(
            text.contains(r#"vane_samples_dropped_total{reason="queue_full"} 2"#),
            "{text}"
        );
    }
}
