//! Traffic sampling for the drift monitor.
//!
//! A sampled request's decoded input rows and the scores it returned become a [`Sample`],
//! pushed into a bounded lock-free ring ([`Sampler::offer`]): the push never blocks and never
//! allocates beyond the sample itself; when the ring (or its row budget) is full the sample is
//! dropped and counted. One sender thread drains the ring every flush interval, encodes the
//! samples as `vane-sample-stream` frames (a schema frame once per connection and schema, then
//! rows frames) and writes them to the monitor over TCP or a Unix socket. While the monitor is
//! away the sender drops what it drains (counted) and reconnects with exponential backoff, so
//! scoring never waits on the monitor.
//!
//! Which requests are sampled is decided per model version ([`crate::model::LoadedModel`]'s
//! sampling rate, from `sample_percent`); the decision costs one comparison when the rate is 0.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use serde::Serialize;
use vane_registry::{FeatureKind, Signature};
use vane_sample_stream as wire;

use crate::backend::{DType, Output, OutputMeta, TensorData};
use crate::metrics::Metrics;

/// Where the monitor listens: `tcp://host:port` (or plain `host:port`) or `unix:///path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum MonitorAddr {
    Tcp(String),
    Unix(PathBuf),
}

impl FromStr for MonitorAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(format!("monitor address {s:?} names no socket path"));
            }
            return Ok(MonitorAddr::Unix(PathBuf::from(path)));
        }
        let hostport = s.strip_prefix("tcp://").unwrap_or(s);
        match hostport.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(MonitorAddr::Tcp(hostport.to_string()))
            }
            _ => Err(format!(
                "monitor address {s:?}: expected tcp://host:port, host:port or unix:///path"
            )),
        }
    }
}

impl std::fmt::Display for MonitorAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MonitorAddr::Tcp(a) => write!(f, "tcp://{a}"),
            MonitorAddr::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// Sizing of the sampler.
#[derive(Debug, Clone, Serialize)]
pub struct SamplerOptions {
    pub addr: MonitorAddr,
    /// Samples (sampled requests) the ring holds.
    pub queue_capacity: usize,
    /// Rows the ring holds across its samples (bounds memory for large requests).
    pub max_queued_rows: usize,
    /// How often the sender drains the ring.
    pub flush_interval: Duration,
}

/// How one model version's samples look on the wire; built once per loaded version.
#[derive(Debug)]
pub struct SampleSchema {
    id: u64,
    schema: wire::Schema,
    width: usize,
    score: Option<ScoreColumn>,
}

/// Where the score sits in a model's outputs.
#[derive(Debug, Clone, Copy)]
struct ScoreColumn {
    output: usize,
    column: usize,
    row_len: usize,
}

impl SampleSchema {
    /// The schema of a version with `signature` and `outputs`. The score is the first float
    /// output with one value per row, or the second column of a two-column one (a binary
    /// classifier's positive class); an output named `probability`/`probabilities` is
    /// preferred.
    pub fn new(model: &str, version: u64, signature: &Signature, outputs: &[OutputMeta]) -> Self {
        let features = signature
            .inputs
            .iter()
            .map(|f| wire::Feature {
                name: f.name.clone(),
                kind: match f.kind {
                    FeatureKind::Numeric => wire::FeatureKind::Numeric,
                    FeatureKind::Categorical => {
                        wire::FeatureKind::Categorical(f.vocab.clone().unwrap_or_default())
                    }
                },
            })
            .collect();
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
            width: signature.width(),
            schema,
            score: best.map(|(_, _, s)| s),
        }
    }

    /// The frame schema itself.
    pub fn wire(&self) -> &wire::Schema {
        &self.schema
    }

    /// The score of each of `rows` rows, from a request's outputs.
    pub fn scores(&self, outputs: &[Output], rows: usize) -> Option<Vec<f32>> {
        let s = self.score?;
        let out = outputs.get(s.output)?;
        let pick = |i: usize| i * s.row_len + s.column;
        let v: Vec<f32> = match &out.data {
            TensorData::F32(d) => (0..rows).map(|r| d.get(pick(r)).copied()).collect(),
            TensorData::F64(d) => (0..rows)
                .map(|r| d.get(pick(r)).map(|x| *x as f32))
                .collect(),
            _ => None,
        }?;
        Some(v)
    }
}

/// One sampled request (or its shadow copy).
pub struct Sample {
    pub schema: Arc<SampleSchema>,
    pub rows: usize,
    /// Row-major `rows × width` model input; shared by a request and its shadow copy.
    pub input: Arc<Vec<f32>>,
    pub scores: Option<Vec<f32>>,
    pub shadow: bool,
}

/// Why samples were dropped (the `reason` label of `vane_samples_dropped_total`).
#[derive(Debug, Clone, Copy)]
pub enum DropReason {
    /// The ring or its row budget was full.
    QueueFull,
    /// No connection to the monitor.
    MonitorDown,
    /// Writing to the monitor failed.
    SendFailed,
}

impl DropReason {
    pub fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::MonitorDown => "monitor_down",
            DropReason::SendFailed => "send_failed",
        }
    }
}

/// The ring and its sender thread.
pub struct Sampler {
    ring: ArrayQueue<Sample>,
    queued_rows: AtomicUsize,
    max_queued_rows: usize,
    metrics: Arc<Metrics>,
    stop: AtomicBool,
    sender: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Sampler {
    /// Creates the ring and starts the sender thread.
    pub fn start(opts: SamplerOptions, metrics: Arc<Metrics>) -> std::io::Result<Arc<Self>> {
        let sampler = Arc::new(Sampler {
            ring: ArrayQueue::new(opts.queue_capacity.max(1)),
            queued_rows: AtomicUsize::new(0),
            max_queued_rows: opts.max_queued_rows.max(1),
            metrics,
            stop: AtomicBool::new(false),
            sender: std::sync::Mutex::new(None),
        });
        let s = sampler.clone();
        let handle = std::thread::Builder::new()
            .name("vane-sampler".into())
            .spawn(move || Sender::new(s, opts).run())?;
        *sampler.sender.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(sampler)
    }

    /// Queues a sample without blocking; when the ring or its row budget is full the sample
    /// is dropped and counted.
    pub fn offer(&self, sample: Sample) {
        let rows = sample.rows;
        let before = self.queued_rows.fetch_add(rows, Ordering::Relaxed);
        if before + rows > self.max_queued_rows || self.ring.push(sample).is_err() {
            self.queued_rows.fetch_sub(rows, Ordering::Relaxed);
            self.metrics.samples_dropped(DropReason::QueueFull, 1);
        }
    }

    /// Sends what is queued (best effort, bounded by the write timeout) and stops the sender.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let handle = self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            h.thread().unpark();
            let _ = h.join();
        }
    }

    fn pop(&self) -> Option<Sample> {
        let s = self.ring.pop()?;
        self.queued_rows.fetch_sub(s.rows, Ordering::Relaxed);
        Some(s)
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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
        loop {
            let stopping = self.sampler.stop.load(Ordering::SeqCst);
            if !stopping {
                std::thread::park_timeout(self.opts.flush_interval);
            }
            while let Some(s) = self.sampler.pop() {
                batch.push(s);
            }
            if !batch.is_empty() {
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

    fn flush(&mut self, batch: &mut Vec<Sample>) {
        self.connect();
        let n = batch.len() as u64;
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

/// Encodes `batch` into frames: per (schema, shadow) group, the schema frame when it was not
/// announced yet, then rows frames of at most [`wire::rows_per_frame`] rows.
fn encode(batch: &[Sample], announced: &mut std::collections::HashSet<u64>, out: &mut Vec<u8>) {
    let mut groups: HashMap<(u64, bool), Vec<&Sample>> = HashMap::new();
    let mut order = Vec::new();
    for s in batch {
        let key = (s.schema.id, s.shadow);
        groups
            .entry(key)
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(s);
    }
    for key in order {
        let group = &groups[&key];
        let schema = &group[0].schema;
        if announced.insert(schema.id) {
            schema.schema.encode_frame(out);
        }
        let with_scores = group.iter().all(|s| s.scores.is_some());
        // (sample, row) of every row in the group, in order.
        let rows: Vec<(usize, usize)> = group
            .iter()
            .enumerate()
            .flat_map(|(i, s)| (0..s.rows).map(move |r| (i, r)))
            .collect();
        let per_frame = wire::rows_per_frame(schema.width, schema.schema.model.len());
        for chunk in rows.chunks(per_frame) {
            let scores: Option<Vec<f32>> = with_scores.then(|| {
                chunk
                    .iter()
                    .map(|&(i, r)| {
                        group[i]
                            .scores
                            .as_ref()
                            .and_then(|s| s.get(r).copied())
                            .unwrap_or(f32::NAN)
                    })
                    .collect()
            });
            wire::encode_rows(
                out,
                schema.id,
                &schema.schema,
                key.1,
                chunk.len(),
                |r, c| {
                    let (i, row) = chunk[r];
                    group[i]
                        .input
                        .get(row * schema.width + c)
                        .copied()
                        .unwrap_or(f32::NAN)
                },
                scores.as_deref(),
            );
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
                FeatureSpec {
                    name: "income".into(),
                    dtype: "FP64".into(),
                    shape: vec![-1],
                    kind: FeatureKind::Numeric,
                    vocab: None,
                },
                FeatureSpec {
                    name: "term".into(),
                    dtype: "BYTES".into(),
                    shape: vec![-1],
                    kind: FeatureKind::Categorical,
                    vocab: Some(vec!["36".into(), "60".into()]),
                },
            ],
            tensor: TensorSpec {
                name: "input".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 2],
            },
            outputs: vec![],
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
        );
        assert_eq!(s.schema.score.as_deref(), Some("probability"));
        let outputs = [
            Output {
                data: TensorData::I64(vec![0, 1]),
            },
            Output {
                data: TensorData::F32(vec![0.25, 0.75]),
            },
        ];
        assert_eq!(s.scores(&outputs, 2), Some(vec![0.25, 0.75]));
        // A two-column probability output: the positive class.
        let s = SampleSchema::new("m", 1, &sig, &[meta("probabilities", DType::F64, 2)]);
        assert_eq!(s.schema.score.as_deref(), Some("probabilities[1]"));
        let outputs = [Output {
            data: TensorData::F64(vec![0.9, 0.1, 0.4, 0.6]),
        }];
        assert_eq!(s.scores(&outputs, 2), Some(vec![0.1, 0.6]));
        // No usable score.
        let s = SampleSchema::new("m", 1, &sig, &[meta("label", DType::I64, 1)]);
        assert!(s.schema.score.is_none() && s.scores(&[], 1).is_none());
    }

    #[test]
    fn batches_encode_to_decodable_frames_announcing_each_schema_once() {
        let sig = signature();
        let schema = Arc::new(SampleSchema::new(
            "m",
            7,
            &sig,
            &[meta("probability", DType::F32, 1)],
        ));
        let sample = |rows: usize, base: f32, shadow: bool| Sample {
            schema: schema.clone(),
            rows,
            input: Arc::new((0..rows * 2).map(|i| base + i as f32).collect()),
            scores: Some(vec![0.5; rows]),
            shadow,
        };
        let batch = vec![
            sample(2, 0.0, false),
            sample(1, 100.0, true),
            sample(1, 10.0, false),
        ];
        let mut announced = Default::default();
        let mut out = Vec::new();
        encode(&batch, &mut announced, &mut out);
        let mut frames = Vec::new();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let n = wire::body_len(rest[..4].try_into().unwrap()).unwrap();
            frames.push(wire::decode(&rest[4..4 + n]).unwrap());
            rest = &rest[4 + n..];
        }
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
        let wire::Frame::Rows(shadow) = &frames[2] else {
            panic!()
        };
        assert!(shadow.shadow && shadow.rows == 1);
        // The schema is not announced again on the same connection.
        out.clear();
        encode(&batch[..1], &mut announced, &mut out);
        let n = wire::body_len(out[..4].try_into().unwrap()).unwrap();
        assert!(matches!(
            wire::decode(&out[4..4 + n]),
            Ok(wire::Frame::Rows(_))
        ));
    }
}
