//! The registry abstraction every backend implements: [`Registry`] to read (the server's
//! watcher), [`RegistryWriter`] to publish and move aliases (the CLI, `train`), and the rollout
//! operations built on them ([`set_canary`], [`promote`], [`rollback`]).

use serde::{Deserialize, Serialize};

use crate::dir::PublishRequest;
use crate::error::RegistryError;
use crate::types::{Aliases, Manifest, ModelVersion, VersionRef};

/// Alias of the version that answers by default.
pub const CHAMPION: &str = "champion";
/// Alias of the version that answers `canary_weight` of the requests.
pub const CANARY: &str = "canary";
/// Alias of the version that receives a copy of every request and never answers.
pub const SHADOW: &str = "shadow";

/// `<model>/traffic.json`: what aliases alone cannot say.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrafficSettings {
    /// Share of requests (0..=1) the canary answers.
    #[serde(default)]
    pub canary_weight: f64,
    /// Earlier champions, oldest first, for `rollback`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub champion_history: Vec<u64>,
}

impl TrafficSettings {
    /// The weight must be within `0..=1`.
    pub fn validate(&self) -> Result<(), RegistryError> {
        if !(0.0..=1.0).contains(&self.canary_weight) {
            return Err(RegistryError::Invalid(format!(
                "canary weight {} is not within 0..=1",
                self.canary_weight
            )));
        }
        Ok(())
    }
}

/// How one model's traffic is split — read from the registry so the whole fleet follows one
/// source of truth.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TrafficPolicy {
    pub champion: Option<u64>,
    pub canary: Option<u64>,
    /// Share of requests (0..=1) the canary answers; 0 without a canary.
    pub canary_weight: f64,
    pub shadow: Option<u64>,
}

impl TrafficPolicy {
    pub fn from_parts(aliases: &Aliases, settings: &TrafficSettings) -> Self {
        let canary = aliases.get(CANARY).copied();
        Self {
            champion: aliases.get(CHAMPION).copied(),
            canary,
            canary_weight: if canary.is_some() {
                settings.canary_weight.clamp(0.0, 1.0)
            } else {
                0.0
            },
            shadow: aliases.get(SHADOW).copied(),
        }
    }

    /// Every version the policy needs loaded, without duplicates.
    pub fn versions(&self) -> Vec<u64> {
        let mut v: Vec<u64> = [self.champion, self.canary, self.shadow]
            .into_iter()
            .flatten()
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Read access to a registry.
pub trait Registry: Send + Sync {
    /// Where this registry lives, for logs and errors.
    fn location(&self) -> String;
    /// Model names, sorted.
    fn models(&self) -> Result<Vec<String>, RegistryError>;
    /// Published versions of `model`, ascending.
    fn versions(&self, model: &str) -> Result<Vec<u64>, RegistryError>;
    /// Alias → version for `model` (empty when it has none).
    fn aliases(&self, model: &str) -> Result<Aliases, RegistryError>;
    /// `traffic.json` of `model` (defaults when it has none).
    fn traffic_settings(&self, model: &str) -> Result<TrafficSettings, RegistryError>;
    /// One version, every file verified against its manifest's sha256. Remote backends keep
    /// verified files in a local cache and re-verify them before reuse.
    fn fetch(&self, model: &str, version: u64) -> Result<ModelVersion, RegistryError>;

    /// The manifest of one version. The default fetches (and verifies) the whole version;
    /// backends override it to read only the manifest.
    fn manifest(&self, model: &str, version: u64) -> Result<Manifest, RegistryError> {
        self.fetch(model, version).map(|v| v.manifest)
    }

    /// The traffic policy of `model`.
    fn policy(&self, model: &str) -> Result<TrafficPolicy, RegistryError> {
        Ok(TrafficPolicy::from_parts(
            &self.aliases(model)?,
            &self.traffic_settings(model)?,
        ))
    }

    /// Resolves an alias or number to a published version.
    fn resolve(&self, model: &str, which: &VersionRef) -> Result<u64, RegistryError> {
        match which {
            VersionRef::Number(n) => {
                if self.versions(model)?.contains(n) {
                    Ok(*n)
                } else {
                    Err(RegistryError::NotFound(format!(
                        "model {model:?} version {n}"
                    )))
                }
            }
            VersionRef::Alias(a) => self
                .aliases(model)?
                .get(a)
                .copied()
                .ok_or_else(|| RegistryError::NotFound(format!("model {model:?} alias {a:?}"))),
        }
    }

    /// Resolves and fetches in one step.
    fn fetch_ref(&self, model: &str, which: &VersionRef) -> Result<ModelVersion, RegistryError> {
        let v = self.resolve(model, which)?;
        self.fetch(model, v)
    }
}

/// Write access: publishing versions and moving aliases.
pub trait RegistryWriter: Registry {
    /// Publishes a new immutable version; returns its number.
    fn publish(&self, req: &PublishRequest) -> Result<u64, RegistryError>;
    /// Points `alias` at `version` (which must exist).
    fn set_alias(&self, model: &str, alias: &str, version: u64) -> Result<(), RegistryError>;
    /// Removes `alias`; removing an alias that does not exist is `NotFound`.
    fn remove_alias(&self, model: &str, alias: &str) -> Result<(), RegistryError>;
    /// Replaces `traffic.json` of `model`.
    fn set_traffic_settings(
        &self,
        model: &str,
        settings: &TrafficSettings,
    ) -> Result<(), RegistryError>;
}

/// Starts (or re-weights) a canary: `version` answers `weight` of the requests; with `shadow`
/// it instead receives a copy of every request and never answers.
pub fn set_canary(
    w: &dyn RegistryWriter,
    model: &str,
    version: u64,
    weight: f64,
    shadow: bool,
) -> Result<(), RegistryError> {
    if !(0.0..=1.0).contains(&weight) || weight.is_nan() {
        return Err(RegistryError::Invalid(format!(
            "canary weight {weight} is not within 0..=1"
        )));
    }
    w.resolve(model, &VersionRef::Number(version))?;
    if w.aliases(model)?.get(CHAMPION) == Some(&version) {
        return Err(RegistryError::Invalid(format!(
            "version {version} of {model:?} is the champion already; a {} of it would compare it with itself",
            if shadow { "shadow" } else { "canary" }
        )));
    }
    if shadow {
        return w.set_alias(model, SHADOW, version);
    }
    let mut settings = w.traffic_settings(model)?;
    settings.canary_weight = weight;
    // Weight first: a fleet that sees the new alias before the weight would route with the
    // old weight, which is at worst the previous canary's share.
    w.set_traffic_settings(model, &settings)?;
    w.set_alias(model, CANARY, version)
}

/// Makes the canary (or, without one, the shadow) the champion. Returns the new champion. A
/// shadow of the same version goes too (the usual rollout sets both for one candidate, and a
/// champion shadowing itself would score every request twice); a shadow of another version
/// stays.
pub fn promote(w: &dyn RegistryWriter, model: &str) -> Result<u64, RegistryError> {
    let aliases = w.aliases(model)?;
    let (alias, next) = match (aliases.get(CANARY), aliases.get(SHADOW)) {
        (Some(v), _) => (CANARY, *v),
        (None, Some(v)) => (SHADOW, *v),
        (None, None) => {
            return Err(RegistryError::NotFound(format!(
                "model {model:?} has no canary or shadow to promote"
            )));
        }
    };
    let mut settings = w.traffic_settings(model)?;
    if let Some(prev) = aliases.get(CHAMPION)
        && *prev != next
    {
        settings.champion_history.push(*prev);
    }
    settings.canary_weight = 0.0;
    w.set_alias(model, CHAMPION, next)?;
    w.remove_alias(model, alias)?;
    if alias == CANARY && aliases.get(SHADOW) == Some(&next) {
        w.remove_alias(model, SHADOW)?;
    }
    w.set_traffic_settings(model, &settings)?;
    Ok(next)
}

/// What [`rollback`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollback {
    /// A canary and/or shadow was withdrawn; the champion is unchanged.
    CanaryRemoved { champion: Option<u64> },
    /// The champion moved back to the previous one.
    ChampionRestored { from: u64, to: u64 },
}

/// Withdraws a canary/shadow if there is one; otherwise moves the champion back to the
/// previous champion.
pub fn rollback(w: &dyn RegistryWriter, model: &str) -> Result<Rollback, RegistryError> {
    let aliases = w.aliases(model)?;
    let mut settings = w.traffic_settings(model)?;
    if aliases.contains_key(CANARY) || aliases.contains_key(SHADOW) {
        for a in [CANARY, SHADOW] {
            if aliases.contains_key(a) {
                w.remove_alias(model, a)?;
            }
        }
        settings.canary_weight = 0.0;
        w.set_traffic_settings(model, &settings)?;
        return Ok(Rollback::CanaryRemoved {
            champion: aliases.get(CHAMPION).copied(),
        });
    }
    let from = *aliases
        .get(CHAMPION)
        .ok_or_else(|| RegistryError::NotFound(format!("model {model:?} has no champion")))?;
    let to = settings.champion_history.pop().ok_or_else(|| {
        RegistryError::NotFound(format!(
            "model {model:?} has no earlier champion to roll back to"
        ))
    })?;
    w.set_alias(model, CHAMPION, to)?;
    w.set_traffic_settings(model, &settings)?;
    Ok(Rollback::ChampionRestored { from, to })
}
