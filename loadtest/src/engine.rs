//! The load engine: one current-thread tokio runtime per `--threads`, each with its share of
//! the connections, sending pre-encoded requests over persistent HTTP/1.1 connections
//! (hyper's `client::conn::http1`).
//!
//! * **Open loop** ([`Load::Open`]): request `i` is due at `start + schedule.due(i)`. Threads
//!   take interleaved slots of the one global schedule (thread `t` of `T` sends slots
//!   `t, t + T, …`); within a thread, the next free connection takes the next slot and sleeps
//!   (µs-precise, [`Pacer`]) until it is due. When every connection is busy, due slots wait,
//!   and their latency still counts from the due time, so a stalled server shows up as
//!   latency (wrk2, vegeta). Slots still unsent when the run ends are reported as `unsent`.
//! * **Closed loop** ([`Load::Closed`]): each connection sends its next request as soon as the
//!   previous response is read; latency counts from the actual send.
//!
//! A run is bounded by its duration and by `--requests` (whichever comes first); requests
//! before the warm-up ends are sent but not recorded. Per-second figures stream to the caller
//! while the run goes on.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::body::Prepared;
use crate::error::LoadtestError;
use crate::pacer::Pacer;
use crate::schedule::RateSchedule;
use crate::scores::{ScoreFormat, parse_scores};
use crate::stats::{
    ArmStats, Reservoir, SecondFigures, SecondRow, Transport, VersionStats, merge_hist, new_hist,
};

/// A host to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` for the TCP connection.
    pub authority: String,
    /// The `Host` header.
    pub host: HeaderValue,
}

/// Where a share of the requests goes: a target and a path (e.g. one model version).
#[derive(Debug, Clone)]
pub struct Arm {
    pub label: String,
    /// Index into [`Plan::targets`].
    pub target: usize,
    /// Origin-form request URI (path and query).
    pub uri: Uri,
    /// The full URL, for reports.
    pub url: String,
}

/// The order requests walk the prepared bodies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// 0, 1, 2, …, wrapping around.
    Cycle,
    /// Uniformly at random (seeded; the same slot always picks the same body).
    Sample(u64),
}

/// What to send, to where: built once before the run, shared by every thread.
#[derive(Debug)]
pub struct Plan {
    pub targets: Vec<Target>,
    pub arms: Vec<Arm>,
    pub requests: Vec<Prepared>,
    pub method: Method,
    pub content_type: HeaderValue,
    /// Two arms, and every body goes to both (interleaved), so rows pair up.
    pub paired: bool,
    pub order: Order,
    /// How to read scores from responses (`None`: bodies are drained unread).
    pub scores: Option<ScoreFormat>,
    /// Rows of the dataset (the length of the per-row score arrays when paired).
    pub dataset_rows: usize,
}

impl Plan {
    /// The arm and the body of global slot `i`.
    #[inline]
    fn slot(&self, i: u64) -> (usize, usize) {
        let n = self.requests.len() as u64;
        let pick = |k: u64| -> usize {
            (match self.order {
                Order::Cycle => k % n,
                Order::Sample(seed) => splitmix64(seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % n,
            }) as usize
        };
        if self.paired {
            // Pair p sends its body to both arms; the order alternates per pair so neither arm
            // always goes first.
            let p = i / 2;
            let first = (p % 2) as usize;
            let arm = if i.is_multiple_of(2) {
                first
            } else {
                1 - first
            };
            (arm, pick(p))
        } else if self.arms.len() > 1 {
            (
                (i % self.arms.len() as u64) as usize,
                pick(i / self.arms.len() as u64),
            )
        } else {
            (0, pick(i))
        }
    }
}

pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Open or closed loop.
#[derive(Debug, Clone)]
pub enum Load {
    Open(RateSchedule),
    Closed,
}

/// How one run goes.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub load: Load,
    pub connections: usize,
    pub threads: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Most measured requests.
    pub requests: Option<u64>,
    pub timeout: Duration,
    /// Bound of the per-arm latency sample kept for the rank test.
    pub latency_sample: usize,
    pub seed: u64,
}

/// The result of one run.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub arms: Vec<ArmStats>,
    pub seconds: Vec<SecondRow>,
    /// Seconds from the end of the warm-up to the last measured completion.
    pub elapsed: f64,
    /// Requests the schedule offered in the measured window (open loop).
    pub offered: Option<u64>,
    /// Seconds over which `offered` was due (the duration, or less when `--requests` cut it).
    pub offered_secs: f64,
    /// Offered requests that were never sent because the run ended first (open loop: every
    /// connection was busy).
    pub unsent: u64,
    pub closed_loop: bool,
    pub connections: usize,
    pub threads: usize,
    pub duration: Duration,
}

impl RunResult {
    /// All arms together.
    pub fn total(&self) -> ArmStats {
        let mut t = ArmStats::new();
        for a in &self.arms {
            t.merge(a);
        }
        t
    }

    pub fn achieved_rps(&self) -> f64 {
        let n: u64 = self.arms.iter().map(|a| a.requests).sum();
        if self.elapsed > 0.0 {
            n as f64 / self.elapsed
        } else {
            0.0
        }
    }

    pub fn offered_rps(&self) -> Option<f64> {
        self.offered.map(|o| o as f64 / self.offered_secs.max(1e-9))
    }
}

/// Progress of a run, once per second.
#[derive(Debug, Clone)]
pub struct Tick<'a> {
    pub row: &'a SecondRow,
    pub total_seconds: u32,
}

// ---------------------------------------------------------------------------------------------
// Per-thread recording

struct IntervalArm {
    completed: u64,
    ok: u64,
    latency: Histogram<u64>,
}

struct Interval {
    second: u32,
    arms: Vec<IntervalArm>,
}

enum Msg {
    Connected,
    Interval(usize, Interval),
    Done(usize, Box<ThreadResult>),
}

struct ThreadResult {
    arms: Vec<ArmStats>,
    last_done: Option<Instant>,
    sent_measured: u64,
}

/// The per-thread recorder (single-threaded: lives in an `Rc<RefCell<…>>`).
struct Recorder {
    arms: Vec<ArmRec>,
    interval: Vec<IntervalArm>,
    rng: SmallRng,
    last_done: Option<Instant>,
    sent_measured: u64,
}

struct ArmRec {
    stats: ArmStats,
    /// Versions by header bytes (linear scan: a run sees one or two versions per arm).
    versions: Vec<(Vec<u8>, VersionStats)>,
    sample: Reservoir,
}

/// One finished exchange.
struct Exchange {
    status: u16,
    version: Option<HeaderValue>,
    queue_us: Option<u64>,
    compute_us: Option<u64>,
    total_us: Option<u64>,
    body: Option<Bytes>,
}

impl Recorder {
    fn record(
        &mut self,
        plan: &Plan,
        shared: &Shared,
        arm: usize,
        prep: &Prepared,
        (started, done): (Instant, Instant),
        result: Result<Exchange, Transport>,
    ) {
        let us = done.saturating_duration_since(started).as_micros() as u64;
        self.last_done = Some(done);
        let a = &mut self.arms[arm];
        let iv = &mut self.interval[arm];
        a.stats.requests += 1;
        iv.completed += 1;
        let ex = match result {
            Err(kind) => {
                *a.stats.transport_errors.entry(kind).or_default() += 1;
                return;
            }
            Ok(ex) => ex,
        };
        let ok = (200..300).contains(&ex.status);
        let vbytes = ex
            .version
            .as_ref()
            .map_or(&b"unversioned"[..], HeaderValue::as_bytes);
        let vi = match a.versions.iter().position(|(k, _)| k.as_slice() == vbytes) {
            Some(i) => i,
            None => {
                a.versions.push((vbytes.to_vec(), VersionStats::new()));
                a.versions.len() - 1
            }
        };
        let v = &mut a.versions[vi].1;
        v.requests += 1;
        if !ok {
            *a.stats.status_errors.entry(ex.status).or_default() += 1;
            return;
        }
        a.stats.ok += 1;
        iv.ok += 1;
        v.ok += 1;
        a.stats.latency.saturating_record(us.max(1));
        v.latency.saturating_record(us.max(1));
        iv.latency.saturating_record(us.max(1));
        let rng = &mut self.rng;
        a.sample.offer(us as f64, |seen| rng.random_range(0..seen));
        for (h, val) in [
            (&mut a.stats.server_queue, ex.queue_us),
            (&mut a.stats.server_compute, ex.compute_us),
            (&mut a.stats.server_total, ex.total_us),
        ] {
            if let Some(val) = val {
                h.saturating_record(val.max(1));
            }
        }
        if let (Some(fmt), Some(body)) = (plan.scores, ex.body.as_ref()) {
            let rows = prep.rows as usize;
            let first = prep.first_row as usize;
            let row_scores = shared.row_scores.get(arm);
            parse_scores(fmt, body, rows, |r, s| {
                v.score_sum += s;
                v.score_count += 1;
                if let Some(slots) = row_scores
                    && let Some(slot) = slots.get(first + r)
                {
                    slot.store((s as f32).to_bits(), Ordering::Relaxed);
                }
            });
        }
    }

    fn take_interval(&mut self, second: u32) -> Interval {
        let arms = self
            .interval
            .iter_mut()
            .map(|iv| {
                let latency = iv.latency.clone();
                iv.latency.reset();
                let out = IntervalArm {
                    completed: iv.completed,
                    ok: iv.ok,
                    latency,
                };
                iv.completed = 0;
                iv.ok = 0;
                out
            })
            .collect();
        Interval { second, arms }
    }

    fn finish(self) -> ThreadResult {
        let arms = self
            .arms
            .into_iter()
            .map(|mut a| {
                for (k, v) in a.versions {
                    let label = String::from_utf8_lossy(&k).into_owned();
                    a.stats.versions.entry(label).or_default().merge(&v);
                }
                a.stats.latency_sample = a.sample.values;
                a.stats
            })
            .collect();
        ThreadResult {
            arms,
            last_done: self.last_done,
            sent_measured: self.sent_measured,
        }
    }
}

/// State every thread shares.
struct Shared {
    /// Per arm, per dataset row: the f32 bits of its first score (NaN = none yet).
    row_scores: Vec<Vec<AtomicU32>>,
}

/// Per-thread context of the connection tasks.
struct Ctx {
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    thread: u64,
    threads: u64,
    load: Load,
    start: Instant,
    measure_start: Instant,
    end: Instant,
    /// Global slot bound (open loop) from `--requests`.
    slot_limit: u64,
    /// Measured sends this thread may still make (closed loop).
    budget: Cell<u64>,
    next_local: Cell<u64>,
    timeout: Duration,
    rec: RefCell<Recorder>,
}

impl Ctx {
    /// The next global slot of this thread, with its due time (open loop) or now (closed).
    fn claim(&self) -> Option<(u64, Instant)> {
        let local = self.next_local.get();
        let global = local * self.threads + self.thread;
        match &self.load {
            Load::Open(schedule) => {
                if global >= self.slot_limit {
                    return None;
                }
                let due = self.start + Duration::from_secs_f64(schedule.due(global)?);
                if due >= self.end || Instant::now() >= self.end {
                    return None;
                }
                self.next_local.set(local + 1);
                Some((global, due))
            }
            Load::Closed => {
                let now = Instant::now();
                if now >= self.end {
                    return None;
                }
                if now >= self.measure_start {
                    let b = self.budget.get();
                    if b == 0 {
                        return None;
                    }
                    self.budget.set(b - 1);
                }
                self.next_local.set(local + 1);
                Some((global, now))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

async fn connect(target: &Target) -> Result<Conn, Transport> {
    let stream = tokio::net::TcpStream::connect(&target.authority)
        .await
        .map_err(|_| Transport::Connect)?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Transport::Connect)?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Ok(Conn { sender })
}

static QUEUE_US: HeaderName = HeaderName::from_static("x-vane-queue-us");
static COMPUTE_US: HeaderName = HeaderName::from_static("x-vane-compute-us");
static TOTAL_US: HeaderName = HeaderName::from_static("x-vane-total-us");
static VERSION: HeaderName = HeaderName::from_static("x-vane-model-version");
static ROUTE_KEY: HeaderName = HeaderName::from_static("x-vane-route-key");
static JSON_LEN: HeaderName = HeaderName::from_static("inference-header-content-length");

fn header_u64(v: Option<&HeaderValue>) -> Option<u64> {
    let b = v?.as_bytes();
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    b.iter().try_fold(0u64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
    })
}

fn classify(e: &hyper::Error) -> Transport {
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        return Transport::Reset;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return match io.kind() {
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                    Transport::Reset
                }
                TimedOut => Transport::Timeout,
                _ => Transport::Other,
            };
        }
        src = s.source();
    }
    Transport::Other
}

async fn exchange(
    conn: &mut Conn,
    plan: &Plan,
    arm: &Arm,
    target: &Target,
    prep: &Prepared,
) -> Result<Exchange, Transport> {
    let mut req = Request::new(Full::new(prep.body.clone()));
    *req.method_mut() = plan.method.clone();
    *req.uri_mut() = arm.uri.clone();
    let h = req.headers_mut();
    h.reserve(4);
    h.insert(HOST, target.host.clone());
    if !prep.body.is_empty() {
        h.insert(CONTENT_TYPE, plan.content_type.clone());
    }
    if let Some(n) = &prep.json_len {
        h.insert(JSON_LEN.clone(), n.clone());
    }
    if let Some(k) = &prep.route_key {
        h.insert(ROUTE_KEY.clone(), k.clone());
    }
    let resp = conn
        .sender
        .send_request(req)
        .await
        .map_err(|e| classify(&e))?;
    let status = resp.status().as_u16();
    let headers = resp.headers();
    let version = headers.get(&VERSION).cloned();
    let queue_us = header_u64(headers.get(&QUEUE_US));
    let compute_us = header_u64(headers.get(&COMPUTE_US));
    let total_us = header_u64(headers.get(&TOTAL_US));
    let keep = plan.scores.is_some() && (200..300).contains(&status);
    let mut body = resp.into_body();
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify(&e))?;
        if !keep {
            continue;
        }
        if let Ok(data) = frame.into_data() {
            match (&mut first, &mut rest) {
                (None, None) => first = Some(data),
                (Some(f), None) => {
                    let mut b = BytesMut::with_capacity(f.len() + data.len());
                    b.extend_from_slice(f);
                    b.extend_from_slice(&data);
                    rest = Some(b);
                }
                (_, Some(b)) => b.extend_from_slice(&data),
            }
        }
    }
    let body = match rest {
        Some(b) => Some(b.freeze()),
        None => first,
    };
    Ok(Exchange {
        status,
        version,
        queue_us,
        compute_us,
        total_us,
        body,
    })
}

/// One connection's loop (holding a connection per target).
async fn conn_task(ctx: Rc<Ctx>, mut conns: Vec<Option<Conn>>) {
    let plan = ctx.plan.clone();
    let mut pacer = Pacer::new();
    let open = matches!(ctx.load, Load::Open(_));
    while let Some((slot, due)) = ctx.claim() {
        if open {
            pacer.sleep_until(due).await;
        }
        let (arm_ix, req_ix) = plan.slot(slot);
        let arm = &plan.arms[arm_ix];
        let target = &plan.targets[arm.target];
        let prep = &plan.requests[req_ix];
        let measured = due >= ctx.measure_start;
        if measured {
            ctx.rec.borrow_mut().sent_measured += 1;
        }
        let started = if open { due } else { Instant::now() };
        let attempt = async {
            let conn = &mut conns[arm.target];
            // A connection the server closed (or that failed) is replaced before sending.
            let usable = match conn.as_mut() {
                Some(c) => c.sender.ready().await.is_ok(),
                None => false,
            };
            if !usable {
                *conn = Some(connect(target).await?);
            }
            let c = conn.as_mut().expect("connected above");
            exchange(c, &plan, arm, target, prep).await
        };
        let result = match tokio::time::timeout(ctx.timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Transport::Timeout),
        };
        if result.is_err() {
            // The connection's state is unknown: start a new one next time.
            conns[arm.target] = None;
        }
        let failed_connect = matches!(result, Err(Transport::Connect));
        if measured {
            ctx.rec.borrow_mut().record(
                &plan,
                &ctx.shared,
                arm_ix,
                prep,
                (started, Instant::now()),
                result,
            );
        }
        if failed_connect && !open {
            // Closed loop against a target that is down: do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends per-second intervals to the collector until the run ends.
async fn ticker(
    ctx: Rc<Ctx>,
    tx: mpsc::Sender<Msg>,
    thread: usize,
    done: Rc<Cell<bool>>,
    next: Rc<Cell<u32>>,
) {
    loop {
        let second = next.get();
        let at = ctx.measure_start + Duration::from_secs(u64::from(second) + 1);
        tokio::time::sleep_until(at.into()).await;
        if done.get() {
            return;
        }
        let iv = ctx.rec.borrow_mut().take_interval(second);
        let _ = tx.send(Msg::Interval(thread, iv));
        next.set(second + 1);
    }
}

struct ThreadSetup {
    thread: usize,
    connections: usize,
    spec: RunSpec,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Msg>,
    start_rx: mpsc::Receiver<Instant>,
    budget: u64,
    slot_limit: u64,
}

fn thread_main(s: ThreadSetup) -> Result<(), std::io::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let ThreadSetup {
        thread,
        connections,
        spec,
        plan,
        shared,
        tx,
        start_rx,
        budget,
        slot_limit,
    } = s;
    local.block_on(&rt, async move {
        // Connect everything first, so connection setup is not part of the first latencies.
        let mut all = Vec::with_capacity(connections);
        for _ in 0..connections {
            let mut per_target = Vec::with_capacity(plan.targets.len());
            for t in &plan.targets {
                let c = tokio::time::timeout(spec.timeout, connect(t))
                    .await
                    .ok()
                    .and_then(Result::ok);
                per_target.push(c);
            }
            all.push(per_target);
        }
        let _ = tx.send(Msg::Connected);
        let Ok(start) = start_rx.recv() else {
            return;
        };
        let measure_start = start + spec.warmup;
        let ctx = Rc::new(Ctx {
            plan: plan.clone(),
            shared,
            thread: thread as u64,
            threads: spec.threads as u64,
            load: spec.load.clone(),
            start,
            measure_start,
            end: measure_start + spec.duration,
            slot_limit,
            budget: Cell::new(budget),
            next_local: Cell::new(0),
            timeout: spec.timeout,
            rec: RefCell::new(Recorder {
                arms: plan
                    .arms
                    .iter()
                    .map(|_| ArmRec {
                        stats: ArmStats::new(),
                        versions: Vec::new(),
                        sample: Reservoir::new(spec.latency_sample / spec.threads.max(1)),
                    })
                    .collect(),
                interval: plan
                    .arms
                    .iter()
                    .map(|_| IntervalArm {
                        completed: 0,
                        ok: 0,
                        latency: new_hist(),
                    })
                    .collect(),
                rng: SmallRng::seed_from_u64(spec.seed ^ thread as u64),
                last_done: None,
                sent_measured: 0,
            }),
        });
        tokio::time::sleep_until(start.into()).await;
        let done = Rc::new(Cell::new(false));
        let next_second = Rc::new(Cell::new(0u32));
        let tick = tokio::task::spawn_local(ticker(
            ctx.clone(),
            tx.clone(),
            thread,
            done.clone(),
            next_second.clone(),
        ));
        let tasks: Vec<_> = all
            .into_iter()
            .map(|conns| tokio::task::spawn_local(conn_task(ctx.clone(), conns)))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        done.set(true);
        tick.abort();
        let _ = tick.await;
        // The rest (the last partial second, and responses that arrived after the end) goes
        // into the second the ticker would have sent next, within the measured duration.
        let last = (spec.duration.as_secs_f64().ceil() as u32).saturating_sub(1);
        let iv = ctx
            .rec
            .borrow_mut()
            .take_interval(next_second.get().min(last));
        let _ = tx.send(Msg::Interval(thread, iv));
        let ctx = Rc::try_unwrap(ctx).ok().expect("all tasks have ended");
        let result = ctx.rec.into_inner().finish();
        let _ = tx.send(Msg::Done(thread, Box::new(result)));
    });
    Ok(())
}

/// Runs the plan; `on_tick` sees each second as soon as every thread has reported it.
pub fn run(
    plan: Arc<Plan>,
    spec: &RunSpec,
    mut on_tick: impl FnMut(Tick<'_>),
) -> Result<RunResult, LoadtestError> {
    let threads = spec.threads.max(1);
    let connections = spec.connections.max(threads);
    let rows_for_scores = if plan.paired && plan.scores.is_some() {
        plan.dataset_rows
    } else {
        0
    };
    let nan = f32::NAN.to_bits();
    let shared = Arc::new(Shared {
        row_scores: (0..plan.arms.len())
            .map(|_| (0..rows_for_scores).map(|_| AtomicU32::new(nan)).collect())
            .collect(),
    });
    // Open loop: the global slot bound from --requests (counting the warm-up's slots too).
    let (schedule, warm_slots) = match &spec.load {
        Load::Open(s) => {
            let s = s.with_warmup(spec.warmup);
            let warm = s.count_until(spec.warmup.as_secs_f64()).ceil() as u64;
            (Some(s), warm)
        }
        Load::Closed => (None, 0),
    };
    let slot_limit = spec
        .requests
        .map_or(u64::MAX, |r| warm_slots.saturating_add(r));
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut starts = Vec::new();
    let mut handles = Vec::new();
    for t in 0..threads {
        let (stx, srx) = mpsc::channel();
        starts.push(stx);
        let budget = spec.requests.map_or(u64::MAX, |r| {
            r / threads as u64 + u64::from((t as u64) < r % threads as u64)
        });
        let mut thread_spec = spec.clone();
        if let Some(s) = &schedule {
            thread_spec.load = Load::Open(s.clone());
        }
        let setup = ThreadSetup {
            thread: t,
            connections: connections / threads + usize::from(t < connections % threads),
            spec: thread_spec,
            plan: plan.clone(),
            shared: shared.clone(),
            tx: tx.clone(),
            start_rx: srx,
            budget,
            slot_limit,
        };
        handles.push(
            std::thread::Builder::new()
                .name(format!("load-{t}"))
                .spawn(move || thread_main(setup))
                .map_err(LoadtestError::Runtime)?,
        );
    }
    drop(tx);
    // Wait until every thread has its connections, then start together.
    let mut connected = 0;
    let mut early = Vec::new();
    while connected < threads {
        match rx.recv() {
            Ok(Msg::Connected) => connected += 1,
            Ok(other) => early.push(other),
            Err(_) => break,
        }
    }
    let start = Instant::now() + Duration::from_millis(20);
    for s in &starts {
        let _ = s.send(start);
    }
    let measure_start = start + spec.warmup;
    let total_seconds = spec.duration.as_secs_f64().ceil() as u32;
    let narms = plan.arms.len();
    // Per second: per arm (completed, ok, histogram), and which threads reported it.
    let mut pending: Vec<(Vec<IntervalArm>, usize)> = Vec::new();
    let mut reported = vec![0u32; threads];
    let mut flushed = 0u32;
    let mut seconds: Vec<SecondRow> = Vec::new();
    let mut results: Vec<Option<ThreadResult>> = (0..threads).map(|_| None).collect();
    let offered_in = |k: u32| -> Option<f64> {
        schedule.as_ref().map(|s| {
            let a = spec.warmup.as_secs_f64() + f64::from(k);
            let b = (a + 1.0).min(spec.warmup.as_secs_f64() + spec.duration.as_secs_f64());
            (s.count_until(b) - s.count_until(a)).max(0.0)
        })
    };
    let mut flush = |upto: u32,
                     pending: &mut Vec<(Vec<IntervalArm>, usize)>,
                     flushed: &mut u32,
                     seconds: &mut Vec<SecondRow>| {
        while *flushed < upto && (*flushed as usize) < pending.len() {
            let (arms, _) = &pending[*flushed as usize];
            let mut all_h = new_hist();
            let (mut c, mut o) = (0, 0);
            let figs: Vec<SecondFigures> = arms
                .iter()
                .map(|a| {
                    merge_hist(&mut all_h, &a.latency);
                    c += a.completed;
                    o += a.ok;
                    SecondFigures::from_hist(a.completed, a.ok, &a.latency)
                })
                .collect();
            let row = SecondRow {
                second: *flushed,
                offered: offered_in(*flushed),
                all: SecondFigures::from_hist(c, o, &all_h),
                arms: figs,
            };
            on_tick(Tick {
                row: &row,
                total_seconds,
            });
            seconds.push(row);
            *flushed += 1;
        }
    };
    let handle_msg = |msg: Msg,
                      pending: &mut Vec<(Vec<IntervalArm>, usize)>,
                      reported: &mut Vec<u32>,
                      results: &mut Vec<Option<ThreadResult>>| {
        match msg {
            Msg::Connected => {}
            Msg::Interval(t, iv) => {
                let k = iv.second as usize;
                while pending.len() <= k {
                    pending.push((
                        (0..narms)
                            .map(|_| IntervalArm {
                                completed: 0,
                                ok: 0,
                                latency: new_hist(),
                            })
                            .collect(),
                        0,
                    ));
                }
                let slot = &mut pending[k];
                for (acc, a) in slot.0.iter_mut().zip(iv.arms) {
                    acc.completed += a.completed;
                    acc.ok += a.ok;
                    merge_hist(&mut acc.latency, &a.latency);
                }
                slot.1 += 1;
                reported[t] = reported[t].max(iv.second + 1);
            }
            Msg::Done(t, r) => results[t] = Some(*r),
        }
    };
    for m in early {
        handle_msg(m, &mut pending, &mut reported, &mut results);
    }
    while results.iter().any(Option::is_none) {
        match rx.recv() {
            Ok(m) => handle_msg(m, &mut pending, &mut reported, &mut results),
            Err(_) => break,
        }
        // A second is complete once every thread has moved past it.
        let upto = reported
            .iter()
            .zip(&results)
            .map(|(r, done)| if done.is_some() { u32::MAX } else { *r })
            .min()
            .unwrap_or(0);
        flush(upto, &mut pending, &mut flushed, &mut seconds);
    }
    flush(u32::MAX, &mut pending, &mut flushed, &mut seconds);
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(LoadtestError::Runtime(e)),
            Err(_) => {
                return Err(LoadtestError::Runtime(std::io::Error::other(
                    "a load thread panicked",
                )));
            }
        }
    }
    let mut arms: Vec<ArmStats> = (0..narms).map(|_| ArmStats::new()).collect();
    let mut last_done: Option<Instant> = None;
    let mut sent = 0;
    for r in results.into_iter().flatten() {
        for (acc, a) in arms.iter_mut().zip(&r.arms) {
            acc.merge(a);
        }
        last_done = last_done.max(r.last_done);
        sent += r.sent_measured;
    }
    for (acc, scores) in arms.iter_mut().zip(&shared.row_scores) {
        acc.row_scores = scores
            .iter()
            .map(|s| f32::from_bits(s.load(Ordering::Relaxed)))
            .collect();
    }
    let end = measure_start + spec.duration;
    let elapsed = last_done
        .map_or(spec.duration, |d| {
            d.saturating_duration_since(measure_start)
        })
        .as_secs_f64();
    // Closed loop: the run lasts its duration unless --requests ended it first.
    let elapsed = if matches!(spec.load, Load::Closed) {
        elapsed
            .min(end.saturating_duration_since(measure_start).as_secs_f64())
            .max(1e-9)
    } else {
        elapsed.max(1e-9)
    };
    let w = spec.warmup.as_secs_f64();
    let mut offered_secs = spec.duration.as_secs_f64();
    let offered = schedule.as_ref().map(|s| {
        let n = (s.count_until(w + spec.duration.as_secs_f64()).ceil() as u64)
            .saturating_sub(s.count_until(w).ceil() as u64);
        match spec.requests {
            Some(r) if r < n => {
                // The run ended at the last allowed slot; its offered rate is over that span.
                if let Some(last) = s.due(warm_slots + r) {
                    offered_secs = (last - w).max(1e-9);
                }
                r
            }
            _ => n,
        }
    });
    Ok(RunResult {
        arms,
        seconds,
        elapsed,
        offered,
        offered_secs,
        unsent: offered.map_or(0, |o| o.saturating_sub(sent)),
        closed_loop: matches!(spec.load, Load::Closed),
        connections,
        threads,
        duration: spec.duration,
    })
}
