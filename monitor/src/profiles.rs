//! Where reference profiles come from: files named on the command line
//! (`--profile [model[@version]=]path`) and the registry (`profile.json` of each version,
//! through `vane-registry`, so directory, static HTTP and MLflow registries all work).
//!
//! [`Profiles::get`] never blocks: a version seen for the first time is queued for a loader
//! thread and reported as pending; its rows are counted and dropped until the profile is
//! there. A failed load is retried after [`RETRY`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vane_registry::{Profile, Registry};

use crate::reference::{Precision, Reference};

/// How long a failed or missing profile waits before the next attempt.
pub const RETRY: Duration = Duration::from_secs(30);

/// Which versions a `--profile` file covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every version of every model without a more specific profile.
    Any,
    Model(String),
    Version(String, u64),
}

/// A `--profile` argument: `path`, `model=path` or `model@version=path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileArg {
    pub scope: Scope,
    pub path: PathBuf,
}

impl std::str::FromStr for ProfileArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((lhs, path)) = s.split_once('=') else {
            return Ok(ProfileArg {
                scope: Scope::Any,
                path: PathBuf::from(s),
            });
        };
        if path.is_empty() || lhs.is_empty() {
            return Err(format!(
                "--profile {s:?}: expected path, model=path or model@version=path"
            ));
        }
        let scope = match lhs.split_once('@') {
            None => Scope::Model(lhs.to_string()),
            Some((m, v)) => Scope::Version(
                m.to_string(),
                v.parse()
                    .map_err(|_| format!("--profile {s:?}: version {v:?} is not a number"))?,
            ),
        };
        Ok(ProfileArg {
            scope,
            path: PathBuf::from(path),
        })
    }
}

/// Reads and validates a `profile.json`.
pub fn read_profile(path: &Path) -> Result<Profile, String> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let p: Profile =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    p.validate()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(p)
}

/// The answer of [`Profiles::get`].
pub enum Lookup {
    Ready(Arc<Reference>),
    /// Not loaded (yet): being loaded, failed recently, or the version has none.
    Pending,
}

enum Slot {
    Loading,
    Ready(Arc<Reference>),
    Failed { retry_at: Instant },
}

/// Reference profiles by model version.
pub struct Profiles {
    files: Vec<(Scope, Arc<Reference>)>,
    has_registry: bool,
    slots: Arc<Mutex<HashMap<(String, u64), Slot>>>,
    loader: Option<Mutex<mpsc::Sender<(String, u64)>>>,
}

impl Profiles {
    /// Loads every file now (an unreadable file is an error) and starts the registry loader.
    /// `on_failure(model, version)` is called for each failed registry load.
    pub fn new(
        args: &[ProfileArg],
        registry: Option<Arc<dyn Registry>>,
        on_failure: impl Fn(&str, u64) + Send + 'static,
    ) -> Result<Self, String> {
        let mut files = Vec::new();
        for a in args {
            let p = read_profile(&a.path)?;
            files.push((
                a.scope.clone(),
                Arc::new(Reference::from_profile(
                    &p,
                    a.path.display().to_string(),
                    Precision::F32,
                )),
            ));
        }
        let slots: Arc<Mutex<HashMap<(String, u64), Slot>>> = Default::default();
        let has_registry = registry.is_some();
        let loader = match registry {
            None => None,
            Some(reg) => {
                let (tx, rx) = mpsc::channel::<(String, u64)>();
                let slots = slots.clone();
                std::thread::Builder::new()
                    .name("vane-profiles".into())
                    .spawn(move || {
                        for (model, version) in rx {
                            let slot = match load_from_registry(reg.as_ref(), &model, version) {
                                Ok(r) => {
                                    tracing::info!(%model, version, "reference profile loaded");
                                    Slot::Ready(Arc::new(r))
                                }
                                Err(e) => {
                                    tracing::warn!(%model, version, error = %e, "no reference profile; retrying later");
                                    on_failure(&model, version);
                                    Slot::Failed {
                                        retry_at: Instant::now() + RETRY,
                                    }
                                }
                            };
                            slots
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert((model, version), slot);
                        }
                    })
                    .map_err(|e| format!("cannot start the profile loader: {e}"))?;
                Some(Mutex::new(tx))
            }
        };
        Ok(Self {
            files,
            has_registry,
            slots,
            loader,
        })
    }

    /// The reference of a version, without blocking.
    pub fn get(&self, model: &str, version: u64) -> Lookup {
        let file = |want: &dyn Fn(&Scope) -> bool| {
            self.files
                .iter()
                .find(|(s, _)| want(s))
                .map(|(_, r)| r.clone())
        };
        if let Some(r) = file(&|s| matches!(s, Scope::Version(m, v) if m == model && *v == version))
            .or_else(|| file(&|s| matches!(s, Scope::Model(m) if m == model)))
        {
            return Lookup::Ready(r);
        }
        if self.has_registry {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let key = (model.to_string(), version);
            match slots.get(&key) {
                Some(Slot::Ready(r)) => return Lookup::Ready(r.clone()),
                Some(Slot::Loading) => return Lookup::Pending,
                Some(Slot::Failed { retry_at }) if Instant::now() < *retry_at => {
                    // Fall through to a catch-all file, if any.
                }
                _ => {
                    slots.insert(key.clone(), Slot::Loading);
                    if let Some(tx) = &self.loader {
                        let _ = tx.lock().unwrap_or_else(|p| p.into_inner()).send(key);
                    }
                    return Lookup::Pending;
                }
            }
        }
        match file(&|s| *s == Scope::Any) {
            Some(r) => Lookup::Ready(r),
            None => Lookup::Pending,
        }
    }
}

fn load_from_registry(reg: &dyn Registry, model: &str, version: u64) -> Result<Reference, String> {
    let mv = reg.fetch(model, version).map_err(|e| e.to_string())?;
    let profile = mv
        .profile
        .ok_or_else(|| format!("version {version} of {model:?} has no profile.json"))?;
    Ok(Reference::from_profile(
        &profile,
        format!("{}/{model}/versions/{version}/profile.json", reg.location()),
        Precision::F32,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_args_parse() {
        assert_eq!(
            "p.json".parse::<ProfileArg>().unwrap(),
            ProfileArg {
                scope: Scope::Any,
                path: "p.json".into()
            }
        );
        assert_eq!(
            "credit-risk=p.json".parse::<ProfileArg>().unwrap().scope,
            Scope::Model("credit-risk".into())
        );
        assert_eq!(
            "credit-risk@4=p.json".parse::<ProfileArg>().unwrap().scope,
            Scope::Version("credit-risk".into(), 4)
        );
        assert!("m@x=p.json".parse::<ProfileArg>().is_err());
        assert!("m=".parse::<ProfileArg>().is_err());
    }
}
