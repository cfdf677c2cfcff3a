//! Dynamic batcher: one per loaded model version.
//!
//! Requests ([`Job`]s) go into a bounded crossbeam channel (a lock-free array queue with
//! blocking receive). Worker OS threads — never tokio workers — own the backend sessions, take
//! what is queued up to `max_batch_rows` rows, run it, and answer each job through its oneshot.
//!
//! When to wait for more rows: a worker that was idle (blocked on an empty queue) runs its job
//! at once, so low load never pays a fixed delay. Only a worker that came back from a batch to
//! a non-empty queue (backlog) while every other worker is busy considers waiting for batch
//! mates, and only while it helps: while requests arrive faster than the fixed cost of one
//! backend call (measured at start), so that waiting one arrival gap is cheaper than the call
//! it saves. It never waits past `max_queue_delay` after the oldest job was enqueued.
//!
//! **Inline fast path (flat combining)** for cheap models — one call at batch 1 measured below
//! `inline_max_call` at start: the sessions are shared behind try-locks instead of owned by
//! worker threads. A request pushes its job and, through [`Batcher::submit_and_run`], tries to
//! become the *combiner*: the thread that takes a free session runs everything queued at that
//! moment (its own job and the others') as one batch, on its own thread, and answers the others
//! through their oneshots. So a lone request pays no thread hop, and under load batches form
//! with no wake-ups. The HTTP path queues first and yields once before combining
//! ([`Batcher::submit_deferred`], [`Batcher::run_queued`]), so that requests the same runtime
//! thread has already read join the batch. A combiner runs at most a few batches (a small time budget) before it
//! hands the rest to a helper thread, so a tokio worker is never held for long.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use tokio::sync::oneshot;

use crate::backend::{BackendError, Engine, Output, Session, Tensor};

/// Batching knobs of one model version.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    pub workers: usize,
    pub max_batch_rows: usize,
    pub max_queue_delay: Duration,
    pub queue_capacity: usize,
    /// Run on the calling thread (flat combining) when one call at batch 1 costs less than
    /// this; zero turns the inline path off.
    pub inline_max_call: Duration,
}

/// Most batches one inline combiner runs before handing the rest to the helper thread.
const INLINE_BATCHES: usize = 4;
/// Longest one inline combiner keeps its (tokio) thread.
const INLINE_BUDGET: Duration = Duration::from_micros(200);
/// The helper's safety-net poll: a job is never stranded longer than this.
const HELPER_POLL: Duration = Duration::from_millis(5);

/// One request's rows on their way to a worker.
pub struct Job {
    /// Row-major `rows * width` values (feature models).
    pub input: Vec<f32>,
    /// One tensor per graph input (tensor-signature models; then `input` is empty).
    pub tensors: Vec<Tensor>,
    pub rows: usize,
    pub enqueued: Instant,
    /// Not executed after this instant.
    pub deadline: Option<Instant>,
    pub reply: oneshot::Sender<Result<JobOutput, JobError>>,
}

/// A job's outputs: inline for one output (the usual model), so that handing a job its rows
/// of a batch allocates only their values.
pub type Outputs = smallvec::SmallVec<[Output; 1]>;

/// A job's own rows of every output, with timings.
#[derive(Debug)]
pub struct JobOutput {
    pub outputs: Outputs,
    pub queue: Duration,
    pub compute: Duration,
    pub batch_rows: usize,
    /// The job's input, handed back: the submitting thread frees it (or samples it) instead
    /// of a worker freeing memory another thread allocated.
    pub input: Vec<f32>,
    pub tensors: Vec<Tensor>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    #[error("deadline exceeded after {}µs in the queue", queued.as_micros())]
    DeadlineExceeded { queued: Duration },
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Why a job was not queued; the job is handed back.
pub enum SubmitError {
    Full(Job),
    Closed(Job),
}

/// What the batcher reports as it works (metrics, stats). Called on worker threads.
pub trait BatchObserver: Send + Sync {
    fn job_started(&self, _queued: Duration) {}
    fn batch_done(&self, _requests: usize, _rows: usize, _compute: Duration) {}
    fn job_dropped(&self) {}
}

/// An observer that ignores everything.
pub struct NoopObserver;
impl BatchObserver for NoopObserver {}

/// The queue and workers of one model version. Dropping it closes the queue; workers finish
/// what is queued, then exit and free their sessions.
pub struct Batcher {
    tx: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    width: usize,
    shared: Arc<Shared>,
    /// Set for cheap models: the shared sessions of the inline path.
    inline: Option<Arc<Inline>>,
}

/// One shared session of the inline path, with its batch buffers.
struct Slot {
    session: Box<dyn Session>,
    buf: Vec<f32>,
    batch: Vec<Job>,
}

/// The inline path's state: shared sessions and the helper thread that takes over from a
/// combiner out of budget (or jobs submitted without one).
struct Inline {
    ctx: WorkerCtx,
    slots: Vec<Mutex<Slot>>,
    helper: OnceLock<std::thread::Thread>,
    closed: AtomicBool,
}

/// State the submitters and workers share.
struct Shared {
    /// Workers blocked on an empty queue.
    idle: AtomicUsize,
    /// Reference instant for the arrival clock below.
    epoch: Instant,
    /// Nanoseconds since `epoch` of the latest submit (0 = none yet).
    last_arrival_ns: AtomicU64,
    /// Moving average of the gap between submits, in nanoseconds.
    arrival_gap_ns: AtomicU64,
    /// Fixed cost of one backend call (the part that batching amortizes), in nanoseconds.
    call_overhead_ns: u64,
}

impl Shared {
    /// `at`: the job's enqueue time (already read; no clock read here).
    fn note_arrival(&self, at: Instant) {
        let now = at.saturating_duration_since(self.epoch).as_nanos() as u64 | 1;
        let prev = self.last_arrival_ns.swap(now, Ordering::Relaxed);
        if prev != 0 {
            let gap = now.saturating_sub(prev);
            // A racy read-modify-write is fine: this is a heuristic, not an account.
            let avg = self.arrival_gap_ns.load(Ordering::Relaxed);
            let next = if avg == 0 {
                gap
            } else {
                avg - avg / 8 + gap / 8
            };
            self.arrival_gap_ns.store(next, Ordering::Relaxed);
        }
    }

    /// Expected wait for the next arrival, if arrivals come fast enough that waiting for one
    /// costs less than the backend call it saves.
    fn worth_waiting(&self) -> Option<Duration> {
        let gap = self.arrival_gap_ns.load(Ordering::Relaxed);
        (gap > 0 && gap < self.call_overhead_ns).then(|| Duration::from_nanos(gap))
    }
}

struct WorkerCtx {
    rx: Receiver<Job>,
    engine: Arc<dyn Engine>,
    cfg: BatchConfig,
    shared: Arc<Shared>,
    observer: Arc<dyn BatchObserver>,
}

impl Batcher {
    /// Creates and warms one session per worker (errors surface here, not on the first
    /// request), then starts the worker threads.
    pub fn start(
        name: &str,
        engine: Arc<dyn Engine>,
        width: usize,
        cfg: BatchConfig,
        observer: Arc<dyn BatchObserver>,
    ) -> Result<Self, BackendError> {
        Self::start_with(name, engine, Input::Rows(width), cfg, observer)
    }

    /// [`Batcher::start`] for a tensor-signature model. `probe(rows)` makes a stand-in
    /// request (zeros, empty strings) that warms the sessions and measures the call cost;
    /// a graph that refuses it (a category it must know, say) is served without warm-up and
    /// without the inline path.
    pub fn start_tensors(
        name: &str,
        engine: Arc<dyn Engine>,
        probe: &dyn Fn(usize) -> Vec<Tensor>,
        cfg: BatchConfig,
        observer: Arc<dyn BatchObserver>,
    ) -> Result<Self, BackendError> {
        Self::start_with(name, engine, Input::Tensors(probe), cfg, observer)
    }

    fn start_with(
        name: &str,
        engine: Arc<dyn Engine>,
        input: Input<'_>,
        cfg: BatchConfig,
        observer: Arc<dyn BatchObserver>,
    ) -> Result<Self, BackendError> {
        let (tx, rx) = crossbeam_channel::bounded(cfg.queue_capacity.max(1));
        let mut sessions = Vec::with_capacity(cfg.workers);
        let mut probed = true;
        for _ in 0..cfg.workers.max(1) {
            let mut s = engine.session()?;
            match input {
                Input::Rows(width) => {
                    s.predict(&vec![0.0; width], 1)?;
                }
                Input::Tensors(probe) => probed &= s.predict_tensors(&probe(1)).is_ok(),
            }
            sessions.push(s);
        }
        let (call_overhead_ns, one_ns) = match input {
            Input::Rows(width) => {
                measure_call_overhead(&mut *sessions[0], width, cfg.max_batch_rows)?
            }
            Input::Tensors(probe) if probed => {
                measure_tensor_overhead(&mut *sessions[0], probe, cfg.max_batch_rows)
                    .unwrap_or((0, u64::MAX))
            }
            Input::Tensors(_) => {
                tracing::debug!(
                    model = name,
                    "the graph refused a stand-in request: no warm-up, no inline path"
                );
                (0, u64::MAX)
            }
        };
        let width = match input {
            Input::Rows(width) => width,
            Input::Tensors(_) => 0,
        };
        let shared = Arc::new(Shared {
            idle: AtomicUsize::new(0),
            epoch: Instant::now(),
            last_arrival_ns: AtomicU64::new(0),
            arrival_gap_ns: AtomicU64::new(0),
            call_overhead_ns,
        });
        if one_ns < cfg.inline_max_call.as_nanos() as u64 {
            let inline = Arc::new(Inline {
                ctx: WorkerCtx {
                    rx,
                    engine,
                    cfg,
                    shared: shared.clone(),
                    observer,
                },
                slots: sessions
                    .into_iter()
                    .map(|session| {
                        Mutex::new(Slot {
                            session,
                            buf: Vec::new(),
                            batch: Vec::new(),
                        })
                    })
                    .collect(),
                helper: OnceLock::new(),
                closed: AtomicBool::new(false),
            });
            let core = inline.clone();
            let handle = std::thread::Builder::new()
                .name(format!("vane-{name}-helper"))
                .spawn(move || core.helper_loop())
                .map_err(|e| BackendError::Load(format!("cannot spawn helper thread: {e}")))?;
            let _ = inline.helper.set(handle.thread().clone());
            return Ok(Self {
                tx: Some(tx),
                workers: vec![handle],
                width,
                shared,
                inline: Some(inline),
            });
        }
        let mut workers = Vec::with_capacity(sessions.len());
        for (i, session) in sessions.into_iter().enumerate() {
            let ctx = WorkerCtx {
                rx: rx.clone(),
                engine: engine.clone(),
                cfg: cfg.clone(),
                shared: shared.clone(),
                observer: observer.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("vane-{name}-{i}"))
                .spawn(move || worker_loop(ctx, session))
                .map_err(|e| BackendError::Load(format!("cannot spawn worker thread: {e}")))?;
            workers.push(handle);
        }
        Ok(Self {
            tx: Some(tx),
            workers,
            width,
            shared,
            inline: None,
        })
    }

    /// Whether requests run on the calling thread when a session is free.
    pub fn is_inline(&self) -> bool {
        self.inline.is_some()
    }

    /// Fixed cost of one backend call measured at start (what batching amortizes).
    pub fn call_overhead(&self) -> Duration {
        Duration::from_nanos(self.shared.call_overhead_ns)
    }

    /// Queues a job without blocking; a worker (or the inline path's helper) runs it.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        self.push(job)?;
        if let Some(inline) = &self.inline {
            inline.wake_helper();
        }
        Ok(())
    }

    /// Queues a job and, on the inline path, runs what is queued on this thread if a session
    /// is free (the job's answer is then ready when this returns). Never blocks: when every
    /// session is busy, their holders run the job.
    pub fn submit_and_run(&self, job: Job) -> Result<(), SubmitError> {
        self.push(job)?;
        if let Some(inline) = &self.inline {
            // Pairs with the combiner's fence after it releases a session (see `combine`).
            fence(Ordering::SeqCst);
            inline.combine(true);
        }
        Ok(())
    }

    /// Queues a job for the inline path without running it: the caller lets other requests
    /// queue theirs (an async task yields), then calls [`Batcher::run_queued`], which runs them
    /// all as one batch. Without the inline path this is [`Batcher::submit`].
    pub fn submit_deferred(&self, job: Job) -> Result<(), SubmitError> {
        if self.inline.is_none() {
            return self.submit(job);
        }
        self.push(job)
    }

    /// Runs what is queued on this thread if a session is free (inline path only). A job
    /// queued with [`Batcher::submit_deferred`] whose submitter never comes here is still run:
    /// by the next combiner or, within [`HELPER_POLL`], by the helper.
    pub fn run_queued(&self) {
        if let Some(inline) = &self.inline {
            fence(Ordering::SeqCst);
            inline.combine(true);
        }
    }

    fn push(&self, job: Job) -> Result<(), SubmitError> {
        debug_assert!(!job.tensors.is_empty() || job.input.len() == job.rows * self.width);
        self.shared.note_arrival(job.enqueued);
        match &self.tx {
            Some(tx) => tx.try_send(job).map_err(|e| match e {
                TrySendError::Full(j) => SubmitError::Full(j),
                TrySendError::Disconnected(j) => SubmitError::Closed(j),
            }),
            None => Err(SubmitError::Closed(job)),
        }
    }

    /// Requests waiting in the queue.
    pub fn queue_len(&self) -> usize {
        self.tx.as_ref().map_or(0, |t| t.len())
    }

    /// Closes the queue and waits until workers have finished everything queued. Blocking:
    /// call it off the async runtime.
    pub fn shutdown(&mut self) {
        self.tx.take();
        if let Some(inline) = &self.inline {
            inline.close();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        // Closing the channel lets the detached workers drain and exit on their own.
        self.tx.take();
        if let Some(inline) = &self.inline {
            inline.close();
        }
    }
}

/// What a batcher feeds its sessions.
#[derive(Clone, Copy)]
enum Input<'a> {
    /// Feature models: `[rows, width]` f32.
    Rows(usize),
    /// Tensor-signature models, with a stand-in request of n rows.
    Tensors(&'a dyn Fn(usize) -> Vec<Tensor>),
}

/// [`measure_call_overhead`] for a tensor-signature model, fed its stand-in requests.
fn measure_tensor_overhead(
    session: &mut dyn Session,
    probe: &dyn Fn(usize) -> Vec<Tensor>,
    max_rows: usize,
) -> Result<(u64, u64), BackendError> {
    let big = max_rows.clamp(2, 64);
    let (one_input, big_input) = (probe(1), probe(big));
    let mut best = |input: &[Tensor]| -> Result<u64, BackendError> {
        let mut best = u64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            session.predict_tensors(input)?;
            best = best.min(t.elapsed().as_nanos() as u64);
        }
        Ok(best)
    };
    let one = best(&one_input)?;
    // A graph without a batch dimension gives the same stand-in at any size.
    let rows = big_input
        .first()
        .and_then(|t| t.shape.first())
        .copied()
        .unwrap_or(1);
    if rows <= 1 {
        return Ok((one, one));
    }
    let many = best(&big_input)?;
    let per_row = many.saturating_sub(one) / (rows as u64 - 1);
    Ok((one.saturating_sub(per_row), one))
}

/// Fixed cost of one call: from the best of a few runs at 1 row and at a full batch, the
/// intercept of the line through them; and the cost of one call at 1 row (both in ns).
fn measure_call_overhead(
    session: &mut dyn Session,
    width: usize,
    max_rows: usize,
) -> Result<(u64, u64), BackendError> {
    let big = max_rows.clamp(2, 64);
    let input = vec![0.0f32; big * width];
    let mut best = |rows: usize| -> Result<u64, BackendError> {
        let mut best = u64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            session.predict(&input[..rows * width], rows)?;
            best = best.min(t.elapsed().as_nanos() as u64);
        }
        Ok(best)
    };
    let one = best(1)?;
    let many = best(big)?;
    let per_row = many.saturating_sub(one) / (big as u64 - 1);
    Ok((one.saturating_sub(per_row), one))
}

impl Inline {
    fn wake_helper(&self) {
        if let Some(t) = self.helper.get() {
            t.unpark();
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wake_helper();
    }

    /// Flat combining: takes a free session and runs what is queued. `budgeted` (a request's
    /// thread): at most [`INLINE_BATCHES`] batches or [`INLINE_BUDGET`], then the helper is
    /// woken for the rest.
    fn combine(&self, budgeted: bool) -> bool {
        let mut ran = false;
        // One budget for the whole turn, however often the session is re-taken: a request's
        // thread must not be kept combining for as long as the load lasts.
        // Started by the first batch: most callers find the queue already emptied by another
        // combiner and read no clock at all.
        let mut start: Option<Instant> = None;
        let mut batches = 0;
        let spent = |batches: usize, start: Option<Instant>| {
            budgeted
                && (batches >= INLINE_BATCHES
                    || start.is_some_and(|s| s.elapsed() >= INLINE_BUDGET))
        };
        loop {
            let mut held = false;
            for slot in &self.slots {
                let mut slot = match slot.try_lock() {
                    Ok(g) => g,
                    // A panic is caught inside `execute`; the slot's state is still sound.
                    Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => continue,
                };
                held = true;
                while !spent(batches, start) {
                    let Some(at) = self.run_batch(&mut slot) else {
                        break;
                    };
                    start.get_or_insert(at);
                    ran = true;
                    batches += 1;
                }
                break;
            }
            // Pairs with the fence after a push: either this thread sees the job pushed while
            // it held the session, or the pusher's try_lock sees the session free (Dekker).
            fence(Ordering::SeqCst);
            if self.ctx.rx.is_empty() {
                return ran;
            }
            if !held {
                // Busy sessions: their holders re-check the queue after releasing.
                return ran;
            }
            if spent(batches, start) {
                // Out of budget: the helper continues on its own thread.
                self.wake_helper();
                return ran;
            }
        }
    }

    /// Runs one batch of what is queued; its start time, or `None` when nothing was queued.
    fn run_batch(&self, slot: &mut Slot) -> Option<Instant> {
        let max_rows = self.ctx.cfg.max_batch_rows.max(1);
        let mut rows = 0;
        let Slot {
            session,
            buf,
            batch,
        } = slot;
        // The clock is read once something is queued.
        let Ok(first) = self.ctx.rx.try_recv() else {
            return None;
        };
        let now = Instant::now();
        let mut next = Some(first);
        while rows < max_rows {
            let Some(j) = next.take().or_else(|| self.ctx.rx.try_recv().ok()) else {
                break;
            };
            let Some(j) = admit(j, now, &*self.ctx.observer) else {
                continue;
            };
            rows += j.rows;
            batch.push(j);
            // A job that overflows the batch still runs in it: leaving it behind would need a
            // carry slot every combiner checks; max_request_rows bounds the overshoot.
        }
        if batch.is_empty() {
            return Some(now);
        }
        for j in batch.iter() {
            self.ctx
                .observer
                .job_started(now.saturating_duration_since(j.enqueued));
        }
        execute(&self.ctx, session, buf, batch, now);
        Some(now)
    }

    fn helper_loop(&self) {
        loop {
            if self.ctx.rx.is_empty() {
                if self.closed.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::park_timeout(HELPER_POLL);
                continue;
            }
            if !self.combine(false) {
                // Every session is busy; its holder runs the queue.
                std::thread::park_timeout(HELPER_POLL);
            }
        }
    }
}

/// Drops jobs whose client went away or whose deadline passed; returns the rest.
fn admit(job: Job, now: Instant, observer: &dyn BatchObserver) -> Option<Job> {
    if job.reply.is_closed() {
        observer.job_dropped();
        return None;
    }
    if job.deadline.is_some_and(|d| d <= now) {
        let queued = now.saturating_duration_since(job.enqueued);
        let _ = job.reply.send(Err(JobError::DeadlineExceeded { queued }));
        return None;
    }
    Some(job)
}

fn worker_loop(ctx: WorkerCtx, mut session: Box<dyn Session>) {
    let max_rows = ctx.cfg.max_batch_rows.max(1);
    let mut carry: Option<Job> = None;
    let mut buf: Vec<f32> = Vec::new();
    let mut batch: Vec<Job> = Vec::new();
    loop {
        // 1. The first job: carried over, already queued (backlog), or waited for (idle).
        let (first, backlog) = match carry.take() {
            Some(j) => (j, true),
            None => match ctx.rx.try_recv() {
                Ok(j) => (j, true),
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => {
                    ctx.shared.idle.fetch_add(1, Ordering::SeqCst);
                    let r = ctx.rx.recv();
                    ctx.shared.idle.fetch_sub(1, Ordering::SeqCst);
                    match r {
                        Ok(j) => (j, false),
                        Err(_) => return,
                    }
                }
            },
        };
        let Some(first) = admit(first, Instant::now(), &*ctx.observer) else {
            continue;
        };
        let mut rows = first.rows;
        let oldest = first.enqueued;
        batch.push(first);

        // 2. Take what is already queued, up to the row limit.
        while rows < max_rows {
            match ctx.rx.try_recv() {
                Ok(j) => {
                    if let Some(j) = admit(j, Instant::now(), &*ctx.observer) {
                        if rows + j.rows > max_rows {
                            carry = Some(j);
                            break;
                        }
                        rows += j.rows;
                        batch.push(j);
                    }
                }
                Err(_) => break,
            }
        }

        // 3. Under backlog with no idle peer, wait for batch mates while that helps.
        if backlog
            && carry.is_none()
            && rows < max_rows
            && !ctx.cfg.max_queue_delay.is_zero()
            && ctx.shared.idle.load(Ordering::SeqCst) == 0
        {
            let mut until = oldest + ctx.cfg.max_queue_delay;
            if let Some(d) = batch.iter().filter_map(|j| j.deadline).min() {
                until = until.min(d);
            }
            while rows < max_rows {
                let Some(gap) = ctx.shared.worth_waiting() else {
                    break;
                };
                // Wait about two arrival gaps for the next job, never past `until`.
                let step = (Instant::now() + 2 * gap).min(until);
                match ctx.rx.recv_deadline(step) {
                    Ok(j) => {
                        if let Some(j) = admit(j, Instant::now(), &*ctx.observer) {
                            if rows + j.rows > max_rows {
                                carry = Some(j);
                                break;
                            }
                            rows += j.rows;
                            batch.push(j);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        }

        // 4. A deadline may have passed or a client left while we waited.
        let now = Instant::now();
        let mut kept = Vec::with_capacity(batch.len());
        for j in batch.drain(..) {
            if let Some(j) = admit(j, now, &*ctx.observer) {
                kept.push(j);
            }
        }
        batch = kept;
        if batch.is_empty() {
            continue;
        }
        for j in &batch {
            ctx.observer
                .job_started(now.saturating_duration_since(j.enqueued));
        }
        execute(&ctx, &mut session, &mut buf, &mut batch, now);
    }
}

/// Runs `batch` as one backend call; on failure, runs each job alone so one bad request
/// cannot fail its batch mates.
fn execute(
    ctx: &WorkerCtx,
    session: &mut Box<dyn Session>,
    buf: &mut Vec<f32>,
    batch: &mut Vec<Job>,
    started: Instant,
) {
    if batch.first().is_some_and(|j| !j.tensors.is_empty()) {
        return execute_tensors(ctx, session, batch, started);
    }
    let rows: usize = batch.iter().map(|j| j.rows).sum();
    buf.clear();
    for j in batch.iter() {
        buf.extend_from_slice(&j.input);
    }
    let t0 = Instant::now();
    let result = run_guarded(ctx, session, buf, rows);
    let compute = t0.elapsed();
    ctx.observer.batch_done(batch.len(), rows, compute);
    match result {
        Ok(outputs) if batch.len() == 1 => {
            // A job alone in its batch owns the outputs: moved, not sliced and copied.
            if let Some(j) = batch.pop() {
                reply(j, Ok(Outputs::from_vec(outputs)), started, compute, rows);
            }
        }
        Ok(outputs) => {
            let mut offset = 0;
            for j in batch.drain(..) {
                let own = slice_rows(ctx, &outputs, offset, j.rows);
                offset += j.rows;
                reply(j, Ok(own), started, compute, rows);
            }
        }
        Err(e) if batch.len() == 1 => {
            if let Some(j) = batch.pop() {
                let _ = j.reply.send(Err(JobError::Backend(e)));
            }
        }
        Err(_) => {
            for j in batch.drain(..) {
                let t0 = Instant::now();
                let r = run_guarded(ctx, session, &j.input, j.rows).map(Outputs::from_vec);
                let compute = t0.elapsed();
                ctx.observer.batch_done(1, j.rows, compute);
                let rows = j.rows;
                reply(j, r, started, compute, rows);
            }
        }
    }
}

/// Sends a job its answer, with its timings, handing its input back.
fn reply(
    j: Job,
    result: Result<Outputs, BackendError>,
    started: Instant,
    compute: Duration,
    batch_rows: usize,
) {
    let queue = started.saturating_duration_since(j.enqueued);
    let _ = j
        .reply
        .send(result.map_err(JobError::Backend).map(|outputs| JobOutput {
            outputs,
            queue,
            compute,
            batch_rows,
            input: j.input,
            tensors: j.tensors,
        }));
}

/// [`execute`] for tensor-signature models: the jobs' inputs are concatenated along
/// dimension 0 and every output is split back by rows. Jobs whose inputs cannot be merged
/// (other trailing dimensions), outputs without a row per input row, and failed batches run
/// one job at a time.
fn execute_tensors(
    ctx: &WorkerCtx,
    session: &mut Box<dyn Session>,
    batch: &mut Vec<Job>,
    started: Instant,
) {
    let rows: usize = batch.iter().map(|j| j.rows).sum();
    if batch.len() > 1 {
        let t0 = Instant::now();
        let split = concat_inputs(batch)
            .ok_or_else(|| BackendError::Run("inputs cannot be merged".into()))
            .and_then(|inputs| run_tensors(ctx, session, &inputs))
            .and_then(|outputs| split_outputs(&outputs, batch, rows));
        let compute = t0.elapsed();
        if let Ok(per_job) = split {
            ctx.observer.batch_done(batch.len(), rows, compute);
            for (j, outputs) in batch.drain(..).zip(per_job) {
                reply(j, Ok(Outputs::from_vec(outputs)), started, compute, rows);
            }
            return;
        }
    }
    for j in batch.drain(..) {
        let t0 = Instant::now();
        let r = run_tensors(ctx, session, &j.tensors).map(Outputs::from_vec);
        let compute = t0.elapsed();
        ctx.observer.batch_done(1, j.rows, compute);
        let rows = j.rows;
        reply(j, r, started, compute, rows);
    }
}

/// Each graph input of every job, concatenated along dimension 0; `None` when two jobs
/// disagree on an input's other dimensions.
fn concat_inputs(batch: &[Job]) -> Option<Vec<Tensor>> {
    let first = &batch[0].tensors;
    let rows: usize = batch.iter().map(|j| j.rows).sum();
    let mut merged: Vec<Tensor> = first
        .iter()
        .map(|t| {
            let mut shape = t.shape.clone();
            shape[0] = rows;
            let per: usize = t.shape[1..].iter().product();
            let mut data = vane_protocol::tensor::TensorData::with_capacity(
                t.data.dtype(),
                rows.saturating_mul(per),
            );
            data.extend_from(&t.data);
            Tensor { data, shape }
        })
        .collect();
    for j in &batch[1..] {
        for (m, t) in merged.iter_mut().zip(&j.tensors) {
            if t.shape.get(1..) != m.shape.get(1..) || !m.data.extend_from(&t.data) {
                return None;
            }
        }
    }
    Some(merged)
}

/// Every output split into the jobs' rows, in job order.
fn split_outputs(
    outputs: &[Output],
    batch: &[Job],
    rows: usize,
) -> Result<Vec<Vec<Output>>, BackendError> {
    let mut per_job: Vec<Vec<Output>> = batch
        .iter()
        .map(|_| Vec::with_capacity(outputs.len()))
        .collect();
    for o in outputs {
        let shape = o.shape.as_deref().unwrap_or_default();
        if shape.first() != Some(&rows) || o.data.len() % rows.max(1) != 0 {
            return Err(BackendError::Run(format!(
                "output of shape {shape:?} has no row per input row"
            )));
        }
        let per = o.data.len() / rows;
        let mut offset = 0;
        for (j, out) in batch.iter().zip(&mut per_job) {
            let mut s = shape.to_vec();
            s[0] = j.rows;
            out.push(Output {
                data: o.data.slice(offset * per, (offset + j.rows) * per),
                shape: Some(s),
            });
            offset += j.rows;
        }
    }
    Ok(per_job)
}

/// [`run_guarded`] for tensor inputs.
fn run_tensors(
    ctx: &WorkerCtx,
    session: &mut Box<dyn Session>,
    inputs: &[Tensor],
) -> Result<Vec<Output>, BackendError> {
    match catch_unwind(AssertUnwindSafe(|| session.predict_tensors(inputs))) {
        Ok(r) => r,
        Err(_) => {
            tracing::error!("backend panicked; replacing the worker's session");
            if let Ok(fresh) = ctx.engine.session() {
                *session = fresh;
            }
            Err(BackendError::Run("backend panicked".into()))
        }
    }
}

/// Calls the backend, turning a panic into an error and replacing the (possibly broken)
/// session, so a worker thread never dies.
fn run_guarded(
    ctx: &WorkerCtx,
    session: &mut Box<dyn Session>,
    input: &[f32],
    rows: usize,
) -> Result<Vec<Output>, BackendError> {
    let r = catch_unwind(AssertUnwindSafe(|| session.predict(input, rows)));
    let outputs = match r {
        Ok(r) => r?,
        Err(_) => {
            tracing::error!("backend panicked; replacing the worker's session");
            if let Ok(fresh) = ctx.engine.session() {
                *session = fresh;
            }
            return Err(BackendError::Run("backend panicked".into()));
        }
    };
    let metas = ctx.engine.outputs();
    if outputs.len() != metas.len()
        || outputs
            .iter()
            .zip(metas)
            .any(|(o, m)| o.data.len() != rows * m.row_len())
    {
        return Err(BackendError::Run(
            "backend returned outputs of the wrong size".into(),
        ));
    }
    Ok(outputs)
}

fn slice_rows(ctx: &WorkerCtx, outputs: &[Output], offset: usize, rows: usize) -> Outputs {
    outputs
        .iter()
        .zip(ctx.engine.outputs())
        .map(|(o, m)| {
            let per = m.row_len();
            Output::rows(o.data.slice(offset * per, (offset + rows) * per))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::testing::SumEngine;
    use proptest::prelude::*;

    fn cfg(workers: usize, max_rows: usize, delay_us: u64, cap: usize) -> BatchConfig {
        BatchConfig {
            workers,
            max_batch_rows: max_rows,
            max_queue_delay: Duration::from_micros(delay_us),
            queue_capacity: cap,
            inline_max_call: Duration::ZERO,
        }
    }

    fn job(
        rows: usize,
        width: usize,
        seed: f32,
    ) -> (Job, oneshot::Receiver<Result<JobOutput, JobError>>) {
        let (tx, rx) = oneshot::channel();
        let input = (0..rows * width).map(|i| seed + i as f32).collect();
        (
            Job {
                input,
                tensors: Vec::new(),
                rows,
                enqueued: Instant::now(),
                deadline: None,
                reply: tx,
            },
            rx,
        )
    }

    fn expected(rows: usize, width: usize, seed: f32) -> Vec<f32> {
        (0..rows)
            .map(|r| (0..width).map(|c| seed + (r * width + c) as f32).sum())
            .collect()
    }

    #[derive(Default)]
    struct Counting {
        batches: AtomicUsize,
        rows: AtomicUsize,
        dropped: AtomicUsize,
    }
    impl BatchObserver for Counting {
        fn batch_done(&self, _req: usize, rows: usize, _c: Duration) {
            self.batches.fetch_add(1, Ordering::SeqCst);
            self.rows.fetch_add(rows, Ordering::SeqCst);
        }
        fn job_dropped(&self) {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn single_job_round_trip() {
        let mut b = Batcher::start(
            "t",
            Arc::new(SumEngine::new(3, -1.0)),
            3,
            cfg(1, 8, 500, 16),
            Arc::new(NoopObserver),
        )
        .unwrap();
        let (j, rx) = job(2, 3, 1.0);
        assert!(b.submit(j).is_ok());
        let out = rx.blocking_recv().unwrap().unwrap();
        assert_eq!(
            out.outputs[0].data.as_f32().unwrap(),
            &expected(2, 3, 1.0)[..]
        );
        b.shutdown();
    }

    #[test]
    fn poisoned_request_fails_alone() {
        let obs = Arc::new(Counting::default());
        let mut b = Batcher::start(
            "t",
            Arc::new(SumEngine::new(2, 666.0)),
            2,
            cfg(1, 64, 50_000, 64),
            obs.clone(),
        )
        .unwrap();
        // Block the single worker with nothing so the next jobs queue up together: submit
        // many at once and check each gets its own answer.
        let mut rxs = Vec::new();
        for i in 0..20 {
            let seed = if i == 7 { 666.0 } else { i as f32 * 10.0 };
            let (j, rx) = job(1, 2, seed);
            assert!(b.submit(j).is_ok());
            rxs.push((seed, rx));
        }
        for (seed, rx) in rxs {
            let r = rx.blocking_recv().unwrap();
            if seed == 666.0 {
                assert!(matches!(r, Err(JobError::Backend(_))));
            } else {
                assert_eq!(
                    r.unwrap().outputs[0].data.as_f32().unwrap(),
                    &expected(1, 2, seed)[..]
                );
            }
        }
        b.shutdown();
    }

    #[test]
    fn full_queue_hands_the_job_back() {
        // A worker that never gets to run: zero-capacity is clamped to 1, so fill it while
        // the worker is busy with a big job.
        let mut b = Batcher::start(
            "t",
            Arc::new(SumEngine::new(1, -1.0)),
            1,
            cfg(1, 1, 0, 1),
            Arc::new(NoopObserver),
        )
        .unwrap();
        let mut full = 0;
        let mut rxs = Vec::new();
        for _ in 0..10_000 {
            let (j, rx) = job(1, 1, 0.0);
            match b.submit(j) {
                Ok(()) => rxs.push(rx),
                Err(SubmitError::Full(_)) => full += 1,
                Err(SubmitError::Closed(_)) => panic!("closed"),
            }
        }
        assert!(full > 0, "a capacity-1 queue never filled");
        for rx in rxs {
            assert!(rx.blocking_recv().unwrap().is_ok());
        }
        b.shutdown();
    }

    #[test]
    fn expired_and_abandoned_jobs_are_not_executed() {
        let obs = Arc::new(Counting::default());
        let mut b = Batcher::start(
            "t",
            Arc::new(SumEngine::new(1, -1.0)),
            1,
            cfg(1, 8, 0, 16),
            obs.clone(),
        )
        .unwrap();
        let (mut j, rx) = job(1, 1, 1.0);
        j.deadline = Some(Instant::now() - Duration::from_millis(1));
        assert!(b.submit(j).is_ok());
        assert!(matches!(
            rx.blocking_recv().unwrap(),
            Err(JobError::DeadlineExceeded { .. })
        ));
        let (j, rx) = job(1, 1, 1.0);
        drop(rx);
        assert!(b.submit(j).is_ok());
        b.shutdown();
        assert_eq!(
            obs.batches.load(Ordering::SeqCst),
            0,
            "nothing should have run"
        );
        assert_eq!(obs.dropped.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn oversized_request_runs_alone() {
        let obs = Arc::new(Counting::default());
        let mut b = Batcher::start(
            "t",
            Arc::new(SumEngine::new(1, -1.0)),
            1,
            cfg(1, 4, 0, 16),
            obs.clone(),
        )
        .unwrap();
        let (j, rx) = job(10, 1, 0.0);
        assert!(b.submit(j).is_ok());
        assert_eq!(
            rx.blocking_recv().unwrap().unwrap().outputs[0].data.len(),
            10
        );
        b.shutdown();
    }

    #[test]
    fn backlog_forms_batches() {
        let obs = Arc::new(Counting::default());
        let mut b = Batcher::start(
            "t",
            Arc::new(SumEngine::new(4, -1.0)),
            4,
            cfg(1, 32, 2_000, 1024),
            obs.clone(),
        )
        .unwrap();
        let mut rxs = Vec::new();
        for i in 0..256 {
            let (j, rx) = job(1, 4, i as f32);
            assert!(b.submit(j).is_ok());
            rxs.push(rx);
        }
        for rx in rxs {
            rx.blocking_recv().unwrap().unwrap();
        }
        b.shutdown();
        let batches = obs.batches.load(Ordering::SeqCst);
        assert_eq!(obs.rows.load(Ordering::SeqCst), 256);
        assert!(
            batches < 256,
            "256 queued single-row jobs ran in {batches} batches"
        );
    }

    #[test]
    fn idle_worker_runs_at_once_even_with_a_long_queue_delay() {
        let mut b = Batcher::start(
            "t",
            Arc::new(SumEngine::new(1, -1.0)),
            1,
            cfg(1, 64, 5_000_000, 16),
            Arc::new(NoopObserver),
        )
        .unwrap();
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(20)); // let the worker go idle
            let (j, rx) = job(1, 1, 0.0);
            assert!(b.submit(j).is_ok());
            let out = rx.blocking_recv().unwrap().unwrap();
            assert!(
                out.queue < Duration::from_secs(2),
                "an idle worker waited {:?}",
                out.queue
            );
        }
        b.shutdown();
    }

    #[test]
    fn waiting_pays_only_when_arrivals_beat_the_call_overhead() {
        let shared = Shared {
            idle: AtomicUsize::new(0),
            epoch: Instant::now(),
            last_arrival_ns: AtomicU64::new(0),
            arrival_gap_ns: AtomicU64::new(0),
            call_overhead_ns: 10_000,
        };
        assert_eq!(shared.worth_waiting(), None, "no arrivals seen yet");
        shared.arrival_gap_ns.store(2_000, Ordering::Relaxed);
        assert_eq!(shared.worth_waiting(), Some(Duration::from_micros(2)));
        shared.arrival_gap_ns.store(50_000, Ordering::Relaxed);
        assert_eq!(shared.worth_waiting(), None);
        // The moving average follows the arrival gaps.
        shared.arrival_gap_ns.store(0, Ordering::Relaxed);
        for us in [1, 3, 5] {
            shared.note_arrival(shared.epoch + Duration::from_micros(us));
        }
        assert_eq!(shared.arrival_gap_ns.load(Ordering::Relaxed), 2_000);
        shared.note_arrival(shared.epoch + Duration::from_micros(15));
        assert_eq!(shared.arrival_gap_ns.load(Ordering::Relaxed), 3_000);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
        /// Every request gets exactly its own rows back, in order, whatever the arrival
        /// pattern, limits and failures.
        #[test]
        fn every_job_gets_its_own_rows(
            workers in 1usize..4,
            max_rows in 1usize..40,
            delay_us in prop_oneof![Just(0u64), 1u64..3000],
            jobs in prop::collection::vec((1usize..12, any::<bool>(), 0u64..300), 1..60),
        ) {
            let width = 3;
            let mut b = Batcher::start("p", Arc::new(SumEngine::new(width, -7.0)), width, cfg(workers, max_rows, delay_us, 4096), Arc::new(NoopObserver)).unwrap();
            let mut pending = Vec::new();
            for (i, (rows, poison, pause_us)) in jobs.iter().enumerate() {
                let seed = if *poison { -7.0 } else { i as f32 * 100.0 };
                let (j, rx) = job(*rows, width, seed);
                prop_assert!(b.submit(j).is_ok());
                pending.push((seed, *rows, rx));
                if *pause_us > 150 {
                    std::thread::sleep(Duration::from_micros(*pause_us));
                }
            }
            for (seed, rows, rx) in pending {
                let r = rx.blocking_recv().expect("every job is answered");
                if seed == -7.0 {
                    prop_assert!(r.is_err());
                } else {
                    let out = r.expect("healthy job succeeds");
                    prop_assert_eq!(out.outputs[0].data.as_f32().unwrap(), &expected(rows, width, seed)[..]);
                    prop_assert!(out.batch_rows >= rows);
                }
            }
            b.shutdown();
        }
    }

    fn inline_cfg(workers: usize, max_rows: usize) -> BatchConfig {
        BatchConfig {
            inline_max_call: Duration::from_secs(1),
            ..cfg(workers, max_rows, 500, 4096)
        }
    }

    #[test]
    fn inline_path_answers_on_the_calling_thread() {
        let mut b = Batcher::start(
            "i",
            Arc::new(SumEngine::new(3, -1.0)),
            3,
            inline_cfg(1, 8),
            Arc::new(NoopObserver),
        )
        .unwrap();
        assert!(b.is_inline());
        let (j, mut rx) = job(2, 3, 1.0);
        assert!(b.submit_and_run(j).is_ok());
        // Ready without waiting: this thread ran it.
        let out = rx.try_recv().expect("answered inline").unwrap();
        assert_eq!(
            out.outputs[0].data.as_f32().unwrap(),
            &expected(2, 3, 1.0)[..]
        );
        // A plain submit is run by the helper thread.
        let (j, rx) = job(1, 3, 5.0);
        assert!(b.submit(j).is_ok());
        let out = rx.blocking_recv().unwrap().unwrap();
        assert_eq!(
            out.outputs[0].data.as_f32().unwrap(),
            &expected(1, 3, 5.0)[..]
        );
        b.shutdown();
        // A costly model stays on worker threads.
        let b = Batcher::start(
            "w",
            Arc::new(SumEngine::new(3, -1.0)),
            3,
            cfg(1, 8, 500, 16),
            Arc::new(NoopObserver),
        )
        .unwrap();
        assert!(!b.is_inline());
    }

    #[test]
    fn concurrent_combiners_answer_every_job_and_form_batches() {
        let obs = Arc::new(Counting::default());
        let width = 4;
        let b = Arc::new(
            Batcher::start(
                "c",
                Arc::new(SumEngine::new(width, -7.0)),
                width,
                inline_cfg(1, 16),
                obs.clone(),
            )
            .unwrap(),
        );
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let b = b.clone();
                std::thread::spawn(move || {
                    let mut pending = Vec::new();
                    for i in 0..400 {
                        let seed = if i % 97 == 13 {
                            -7.0
                        } else {
                            (t * 1000 + i) as f32
                        };
                        let rows = 1 + i % 3;
                        let (j, rx) = job(rows, width, seed);
                        let r = if i % 10 == 0 {
                            b.submit(j)
                        } else {
                            b.submit_and_run(j)
                        };
                        assert!(r.is_ok());
                        pending.push((seed, rows, rx));
                    }
                    for (seed, rows, rx) in pending {
                        let r = rx.blocking_recv().expect("every job is answered");
                        if seed == -7.0 {
                            assert!(r.is_err());
                        } else {
                            let out = r.unwrap();
                            assert_eq!(
                                out.outputs[0].data.as_f32().unwrap(),
                                &expected(rows, width, seed)[..]
                            );
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let batches = obs.batches.load(Ordering::SeqCst);
        assert!(obs.rows.load(Ordering::SeqCst) >= 6 * 400, "every row ran");
        // Six threads contend for one session: combiners run others' jobs with their own.
        assert!(batches < 6 * 400, "{batches} batches for 2 400 jobs");
    }
}
