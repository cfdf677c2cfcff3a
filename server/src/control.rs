//! The control plane: a [`Watcher`] thread polls the registry (and acts on SIGHUP and the
//! repository API's [`Command`]s), loads, verifies and warms new versions, checks they fit
//! the route, and swaps the serving core's route table atomically. Anything that fails leaves
//! the serving versions alone. It needs only the model table and the metrics.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde::Serialize;
use tokio::sync::oneshot;
use vane_registry::{Registry, RegistryError, Signature, VersionRef};

use crate::backend::onnxruntime::OrtRuntime;
use vane_protocol::TensorInputs;

use crate::backend::{self, LoadOptions};
use crate::config::Config;
use crate::core::Core;
use crate::core::model::{LoadedModel, ModelEntry, ModelTable, Routing};
use crate::telemetry::labels::FailureKind;

/// Why a strict sync (at startup) failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("model {model:?} version {version}: {reason}")]
    Version {
        model: String,
        version: u64,
        reason: String,
    },
    #[error("model {model:?}: {reason}")]
    Model { model: String, reason: String },
}

/// Failed versions are retried after this long (or when the registry points elsewhere).
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Commands the watcher's queue holds; a sender finding it full gets a busy answer (syncs
/// queued together are coalesced into one pass, so this is only reached under abuse).
pub const CONTROL_QUEUE: usize = 16;

/// Requests to the watcher thread.
pub enum Command {
    /// Poll the registry now; answer with the resulting index.
    Sync(Option<oneshot::Sender<Vec<ModelStatus>>>),
    /// Serve `model` again (after an unload), polling it at once.
    Load(String, oneshot::Sender<Result<Vec<ModelStatus>, String>>),
    /// Stop serving `model` until it is loaded again.
    Unload(String, oneshot::Sender<Result<(), String>>),
}

/// One row of the repository index.
#[derive(Debug, Clone, Serialize)]
pub struct ModelStatus {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `champion`, `canary` or `shadow`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// `READY`, `UNAVAILABLE` or `UNLOADED`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// Why a version could not be served; `kind` is the metric label.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl LoadFailure {
    fn from_registry(e: RegistryError) -> Self {
        Self {
            kind: error_kind(&e),
            message: e.to_string(),
        }
    }
}

/// Why a candidate signature cannot take over a route whose clients use `current`; `None`
/// when it can. Clients name features and outputs, and categorical codes must keep meaning.
pub fn incompatibility(current: &Signature, next: &Signature) -> Option<String> {
    match (current.is_tensor_model(), next.is_tensor_model()) {
        (true, true) => return tensor_incompatibility(current, next),
        (false, false) => {}
        (true, false) => {
            return Some("it takes named features; the served version takes graph tensors".into());
        }
        (false, true) => {
            return Some("it takes graph tensors; the served version takes named features".into());
        }
    }
    if current.tensor_name() != next.tensor_name() || current.width() != next.width() {
        return Some(format!(
            "input tensor {:?} [N, {}] differs from the served {:?} [N, {}]",
            next.tensor_name(),
            next.width(),
            current.tensor_name(),
            current.width()
        ));
    }
    for (i, (a, b)) in current.inputs.iter().zip(&next.inputs).enumerate() {
        if a.name != b.name || a.kind != b.kind {
            return Some(format!(
                "input {i} is {:?} ({:?}) but the served version has {:?} ({:?})",
                b.name, b.kind, a.name, a.kind
            ));
        }
        if let (Some(old), Some(new)) = (&a.vocab, &b.vocab)
            && !new.starts_with(old)
        {
            return Some(format!(
                "vocabulary of {:?} does not extend the served one (codes would change meaning)",
                a.name
            ));
        }
    }
    for o in &current.outputs {
        if !next
            .outputs
            .iter()
            .any(|n| n.name == o.name && n.datatype == o.datatype)
        {
            return Some(format!("output {:?} ({}) is missing", o.name, o.datatype));
        }
    }
    None
}

/// Tensor-signature models: every request the served version takes must suit the next one
/// (same inputs, datatypes and shapes), and its outputs must still be there.
fn tensor_incompatibility(current: &Signature, next: &Signature) -> Option<String> {
    let (Some(a), Some(b)) = (&current.graph, &next.graph) else {
        return Some("a tensor-signature version without its graph".into());
    };
    if a.inputs != b.inputs || a.batch != b.batch {
        let show = |g: &vane_registry::GraphSignature| {
            g.inputs
                .iter()
                .map(|t| format!("{} {} {:?}", t.name, t.datatype, t.shape))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Some(format!(
            "graph inputs [{}] differ from the served [{}]",
            show(b),
            show(a)
        ));
    }
    a.outputs.iter().find_map(|o| {
        (!b.outputs
            .iter()
            .any(|n| n.name == o.name && n.datatype == o.datatype))
        .then(|| format!("output {:?} ({}) is missing", o.name, o.datatype))
    })
}

/// Fetches (verified), checks, loads and warms one version. Blocking.
pub fn load_version(
    registry: &dyn Registry,
    cfg: &Config,
    ort: Option<&Arc<OrtRuntime>>,
    core: &Core,
    model: &str,
    version: u64,
    reference: Option<&Signature>,
) -> Result<LoadedModel, LoadFailure> {
    let mv = registry
        .fetch(model, version)
        .map_err(LoadFailure::from_registry)?;
    if let Some(why) = reference.and_then(|r| incompatibility(r, &mv.signature)) {
        return Err(LoadFailure {
            kind: FailureKind::Incompatible,
            message: format!("signature incompatible with the served version: {why}"),
        });
    }
    let settings = cfg.model_settings(model).clone();
    let tensors = match (&mv.signature.graph, mv.signature.is_tensor_model()) {
        (Some(graph), true) => {
            Some(
                TensorInputs::from_graph(graph).map_err(|message| LoadFailure {
                    kind: FailureKind::Load,
                    message,
                })?,
            )
        }
        _ => None,
    };
    let opts = LoadOptions {
        width: mv.signature.width(),
        intra_op_threads: settings.intra_op_threads,
        tensors,
    };
    let engine =
        backend::load(cfg.backend, ort, &mv.model_bytes, &opts).map_err(|e| LoadFailure {
            kind: FailureKind::Load,
            message: e.to_string(),
        })?;
    LoadedModel::start(&mv, engine, settings, &core.metrics).map_err(|e| LoadFailure {
        kind: FailureKind::Warmup,
        message: e.to_string(),
    })
}

struct Failure {
    at: Instant,
    error: LoadFailure,
}

/// The registry poller. [`Watcher::sync`] is also the startup loader.
pub struct Watcher {
    registry: Arc<dyn Registry>,
    cfg: Config,
    ort: Option<Arc<OrtRuntime>>,
    core: Arc<Core>,
    failures: HashMap<(String, u64), Failure>,
    unloaded: BTreeSet<String>,
    /// The last registry error per model, for the index.
    registry_errors: BTreeMap<String, String>,
    /// The last failed listing of the registry, until one succeeds.
    poll_error: Option<String>,
}

impl Watcher {
    pub fn new(
        registry: Arc<dyn Registry>,
        cfg: Config,
        ort: Option<Arc<OrtRuntime>>,
        core: Arc<Core>,
    ) -> Self {
        Self {
            registry,
            cfg,
            ort,
            core,
            failures: HashMap::new(),
            unloaded: BTreeSet::new(),
            registry_errors: BTreeMap::new(),
            poll_error: None,
        }
    }

    /// Runs on its own thread until every command sender is gone. The command queue is
    /// bounded ([`CONTROL_QUEUE`]): senders use `try_send` and refuse when it is full.
    pub fn spawn(mut self) -> std::io::Result<Sender<Command>> {
        let (tx, rx) = crossbeam_channel::bounded(CONTROL_QUEUE);
        std::thread::Builder::new()
            .name("vane-watcher".into())
            .spawn(move || self.run(rx))?;
        Ok(tx)
    }

    fn run(&mut self, rx: Receiver<Command>) {
        let interval = Duration::from_millis(self.cfg.poll_interval_ms);
        loop {
            let cmd = if interval.is_zero() {
                match rx.recv() {
                    Ok(c) => Some(c),
                    Err(_) => return,
                }
            } else {
                match rx.recv_timeout(interval) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            match cmd {
                None => {
                    let _ = self.sync(false);
                }
                Some(Command::Sync(reply)) => {
                    // Every sync request queued meanwhile is answered by this one pass.
                    let mut replies: Vec<_> = reply.into_iter().collect();
                    let mut others = Vec::new();
                    for c in rx.try_iter() {
                        match c {
                            Command::Sync(r) => replies.extend(r),
                            other => others.push(other),
                        }
                    }
                    let _ = self.sync(false);
                    if !replies.is_empty() {
                        let index = self.index();
                        for r in replies {
                            let _ = r.send(index.clone());
                        }
                    }
                    for c in others {
                        self.handle(c);
                    }
                }
                Some(c) => self.handle(c),
            }
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Sync(reply) => {
                let _ = self.sync(false);
                if let Some(r) = reply {
                    let _ = r.send(self.index());
                }
            }
            Command::Load(model, reply) => {
                let only = &self.cfg.serve_models;
                if !only.is_empty() && !only.contains(&model) {
                    let _ = reply.send(Err(format!(
                        "model {model:?} is not among the models this server serves (--serve-models {})",
                        only.join(",")
                    )));
                    return;
                }
                self.unloaded.remove(&model);
                // Forget failures so an operator's load retries at once.
                self.failures.retain(|(m, _), _| *m != model);
                let r = match self.sync_model(&model, false) {
                    Ok(()) if self.core.models.load().models.contains_key(&model) => {
                        Ok(self.index())
                    }
                    Ok(()) => Err(self
                        .index()
                        .into_iter()
                        .find(|s| s.name == model && !s.reason.is_empty())
                        .map(|s| s.reason)
                        .unwrap_or_else(|| format!("model {model:?} could not be loaded"))),
                    Err(e) => Err(e.to_string()),
                };
                let _ = reply.send(r);
            }
            Command::Unload(model, reply) => {
                let r = if self.core.models.load().models.contains_key(&model) {
                    self.unloaded.insert(model.clone());
                    self.remove(&model);
                    tracing::info!(model = %model, "model unloaded on request");
                    Ok(())
                } else {
                    Err(format!("model {model:?} is not loaded"))
                };
                let _ = reply.send(r);
            }
        }
    }

    /// One pass over the registry. In `strict` mode (startup) a model whose champion cannot
    /// be served is an error; otherwise failures are logged, counted and retried later.
    pub fn sync(&mut self, strict: bool) -> Result<(), SyncError> {
        let models = match self.registry.models() {
            Ok(mut m) => {
                self.poll_error = None;
                let only = &self.cfg.serve_models;
                if !only.is_empty() {
                    if strict && let Some(missing) = only.iter().find(|o| !m.contains(o)) {
                        return Err(SyncError::Model {
                            model: missing.clone(),
                            reason: format!(
                                "named by --serve-models but not in the registry {} (models: {})",
                                self.registry.location(),
                                m.join(", ")
                            ),
                        });
                    }
                    m.retain(|name| only.contains(name));
                }
                m
            }
            Err(e) => {
                self.core.metrics.registry_error(error_kind(&e));
                if strict {
                    return Err(e.into());
                }
                self.poll_error = Some(format!("{e}; serving the versions loaded before"));
                tracing::warn!(registry = %self.registry.location(), error = %e, "registry poll failed; serving what is loaded");
                return Ok(());
            }
        };
        for name in &models {
            if self.unloaded.contains(name) {
                continue;
            }
            self.sync_model(name, strict)?;
        }
        // Models gone from the registry stop being served.
        let gone: Vec<String> = self
            .core
            .models
            .load()
            .models
            .keys()
            .filter(|m| !models.contains(m))
            .cloned()
            .collect();
        for m in gone {
            tracing::warn!(model = %m, "model no longer in the registry; unloading");
            self.remove(&m);
        }
        Ok(())
    }

    fn remove(&self, model: &str) {
        self.core.models.rcu(|t| {
            let mut t = ModelTable::clone(t);
            t.models.remove(model);
            t
        });
        self.core.metrics.forget_roles(model);
    }

    fn load(
        &mut self,
        model: &str,
        version: u64,
        reference: Option<&Signature>,
        strict: bool,
    ) -> Result<Arc<LoadedModel>, LoadFailure> {
        let key = (model.to_string(), version);
        if !strict
            && let Some(f) = self.failures.get(&key)
            && f.at.elapsed() < RETRY_AFTER
        {
            return Err(f.error.clone());
        }
        let started = Instant::now();
        match load_version(
            &*self.registry,
            &self.cfg,
            self.ort.as_ref(),
            &self.core,
            model,
            version,
            reference,
        ) {
            Ok(m) => {
                self.failures.remove(&key);
                tracing::info!(
                    model,
                    version,
                    backend = m.backend,
                    workers = m.settings.workers,
                    call_overhead_us = m.batcher.call_overhead().as_micros() as u64,
                    load_ms = started.elapsed().as_millis() as u64,
                    "model version loaded"
                );
                Ok(Arc::new(m))
            }
            Err(e) => {
                self.core.metrics.load_failure(model, e.kind);
                tracing::warn!(model, version, reason = e.kind.label(), error = %e.message, "model version not loaded; the served versions keep serving");
                self.failures.insert(
                    key,
                    Failure {
                        at: Instant::now(),
                        error: e.clone(),
                    },
                );
                Err(e)
            }
        }
    }

    /// Brings one model's route in line with its registry policy.
    fn sync_model(&mut self, name: &str, strict: bool) -> Result<(), SyncError> {
        let policy = match self.registry.policy(name) {
            Ok(p) => {
                self.registry_errors.remove(name);
                p
            }
            Err(e) => {
                self.core.metrics.registry_error(error_kind(&e));
                if strict {
                    return Err(e.into());
                }
                tracing::warn!(model = name, error = %e, "registry poll failed for model; keeping what is served");
                self.registry_errors.insert(name.to_string(), e.to_string());
                return Ok(());
            }
        };
        // The served alias is `champion` unless configured otherwise.
        let champion = if self.cfg.alias == vane_registry::CHAMPION {
            policy.champion
        } else {
            self.registry
                .resolve(name, &VersionRef::Alias(self.cfg.alias.clone()))
                .ok()
        };
        let current = self.core.models.load().models.get(name).cloned();
        let Some(champion) = champion else {
            if current.is_none() {
                tracing::warn!(model = name, alias = %self.cfg.alias, "not serving: no such alias");
            }
            return Ok(());
        };
        let reference = current
            .as_ref()
            .and_then(|e| e.champion())
            .map(|m| m.schema.signature.clone());
        let mut versions = BTreeMap::new();
        let get =
            |this: &mut Self, v: u64, strict: bool| -> Result<Arc<LoadedModel>, LoadFailure> {
                if let Some(m) = current.as_ref().and_then(|e| e.versions.get(&v)) {
                    return Ok(m.clone());
                }
                this.load(name, v, reference.as_ref(), strict)
            };
        let champ = match get(self, champion, strict) {
            Ok(m) => m,
            Err(e) => match current.as_ref().and_then(|c| c.champion()) {
                Some(c) => c.clone(),
                None if strict => {
                    return Err(SyncError::Version {
                        model: name.to_string(),
                        version: champion,
                        reason: e.message,
                    });
                }
                None => return Ok(()),
            },
        };
        versions.insert(champ.version, champ.clone());
        let mut canary = None;
        if let Some(c) = policy.canary.filter(|_| policy.canary_weight > 0.0)
            && let Ok(m) = get(self, c, false)
        {
            versions.insert(c, m);
            canary = Some((c, policy.canary_weight));
        }
        let mut shadow = None;
        if let Some(s) = policy.shadow
            && let Ok(m) = get(self, s, false)
        {
            versions.insert(s, m);
            shadow = Some(s);
        }
        let routing = Routing {
            champion: champ.version,
            canary,
            shadow,
        };
        let unchanged = current
            .as_ref()
            .is_some_and(|c| c.routing == routing && c.versions.keys().eq(versions.keys()));
        if unchanged {
            return Ok(());
        }
        let entry = ModelEntry { routing, versions };
        self.core.models.rcu(|t| {
            let mut t = ModelTable::clone(t);
            t.models.insert(name.to_string(), entry.clone());
            t
        });
        self.core.metrics.swap(name);
        self.core.metrics.set_roles(name, &entry.routing.roles());
        tracing::info!(
            model = name,
            champion = entry.routing.champion,
            canary = ?entry.routing.canary,
            shadow = ?entry.routing.shadow,
            "route updated"
        );
        Ok(())
    }

    /// The repository index: what is served, what failed, what is unloaded.
    pub fn index(&self) -> Vec<ModelStatus> {
        let table = self.core.models.load();
        let mut out = Vec::new();
        for (name, entry) in &table.models {
            for v in entry.versions.keys() {
                let role = if *v == entry.routing.champion {
                    "champion"
                } else if entry.routing.canary.is_some_and(|(c, _)| c == *v) {
                    "canary"
                } else {
                    "shadow"
                };
                out.push(ModelStatus {
                    name: name.clone(),
                    version: Some(v.to_string()),
                    role: Some(role),
                    state: "READY",
                    reason: self.poll_error.clone().unwrap_or_default(),
                });
            }
        }
        for ((name, v), f) in &self.failures {
            out.push(ModelStatus {
                name: name.clone(),
                version: Some(v.to_string()),
                role: None,
                state: "UNAVAILABLE",
                reason: format!("{}: {}", f.error.kind.label(), f.error.message),
            });
        }
        for (name, e) in &self.registry_errors {
            out.push(ModelStatus {
                name: name.clone(),
                version: None,
                role: None,
                state: "UNAVAILABLE",
                reason: e.clone(),
            });
        }
        for name in &self.unloaded {
            out.push(ModelStatus {
                name: name.clone(),
                version: None,
                role: None,
                state: "UNLOADED",
                reason: String::new(),
            });
        }
        out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        out
    }
}

fn error_kind(e: &RegistryError) -> FailureKind {
    match e {
        RegistryError::NotFound(_) => FailureKind::NotFound,
        RegistryError::DigestMismatch { .. } | RegistryError::SizeMismatch { .. } => {
            FailureKind::Digest
        }
        RegistryError::Unreachable { .. } => FailureKind::Unreachable,
        RegistryError::Malformed { .. } => FailureKind::Malformed,
        _ => FailureKind::Fetch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vane_registry::{FeatureKind, FeatureSpec, TensorSpec};

    fn sig(features: &[(&str, Option<&[&str]>)], outputs: &[&str]) -> Signature {
        Signature {
            inputs: features
                .iter()
                .map(|(n, vocab)| FeatureSpec {
                    name: (*n).into(),
                    dtype: if vocab.is_some() { "BYTES" } else { "FP32" }.into(),
                    shape: vec![-1],
                    kind: if vocab.is_some() {
                        FeatureKind::Categorical
                    } else {
                        FeatureKind::Numeric
                    },
                    vocab: vocab.map(|v| v.iter().map(|s| s.to_string()).collect()),
                })
                .collect(),
            tensor: Some(TensorSpec {
                name: "input".into(),
                datatype: "FP32".into(),
                shape: vec![-1, features.len() as i64],
            }),
            outputs: outputs
                .iter()
                .map(|o| TensorSpec {
                    name: (*o).into(),
                    datatype: "FP32".into(),
                    shape: vec![-1, 1],
                })
                .collect(),
            graph: None,
            online: None,
        }
    }

    #[test]
    fn tensor_models_swap_only_for_the_same_inputs() {
        let spec = |name: &str, datatype: &str, shape: &[i64]| TensorSpec {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
        };
        let graph = |x: TensorSpec, outputs: Vec<TensorSpec>| {
            Signature::from_graph(vane_registry::GraphSignature {
                inputs: vec![x],
                outputs,
                batch: true,
            })
        };
        let cur = graph(
            spec("x", "FP32", &[-1, 4]),
            vec![spec("p", "FP32", &[-1, 2])],
        );
        let more = graph(
            spec("x", "FP32", &[-1, 4]),
            vec![spec("p", "FP32", &[-1, 2]), spec("label", "INT64", &[-1])],
        );
        assert_eq!(
            incompatibility(&cur, &more),
            None,
            "an added output is fine"
        );
        let why = incompatibility(&cur, &graph(spec("x", "FP64", &[-1, 4]), vec![])).unwrap();
        assert!(why.contains("x FP64 [-1, 4]"), "{why}");
        let why = incompatibility(&more, &cur).unwrap();
        assert!(why.contains("\"label\""), "{why}");
        let features = sig(&[("a", None)], &["p"]);
        assert!(
            incompatibility(&features, &cur)
                .unwrap()
                .contains("graph tensors")
        );
    }

    #[test]
    fn compatibility_rules() {
        let cur = sig(&[("a", None), ("b", Some(&["x", "y"]))], &["p"]);
        assert_eq!(incompatibility(&cur, &cur), None);
        // Appending categories and outputs is fine.
        let ok = sig(&[("a", None), ("b", Some(&["x", "y", "z"]))], &["p", "q"]);
        assert_eq!(incompatibility(&cur, &ok), None);
        for (bad, needle) in [
            (sig(&[("a", None)], &["p"]), "[N, 1]"),
            (
                sig(&[("b", Some(&["x", "y"])), ("a", None)], &["p"]),
                "input 0",
            ),
            (
                sig(&[("a", None), ("b", Some(&["y", "x"]))], &["p"]),
                "vocabulary",
            ),
            (sig(&[("a", None), ("b", None)], &["p"]), "Numeric"),
            (
                sig(&[("a", None), ("b", Some(&["x", "y"]))], &["score"]),
                "output \"p\"",
            ),
        ] {
            let why = incompatibility(&cur, &bad).expect("incompatible");
            assert!(why.contains(needle), "{why} should mention {needle}");
        }
    }
}
