//! `vane-features`: the feature store's definitions and batch side. The online stores
//! (embedded redb, Redis) are `vane-online`; the server only reads them.
//!
//! - [`repo::FeatureRepo`]: the feature repository (a TOML file) — entities, feature views
//!   ([`repo::FeatureView`]), feature services — validated on load.
//! - [`ViewTable`] / [`OfflineStore`] / [`get_historical_features`]: the offline store and
//!   the point-in-time join (below).
//! - [`materialize::materialize`]: the latest row per entity into an online store.
//! - [`keys::KeyIds`]: entity keys of any shape (INT64, STRING, several join keys) as `i64`
//!   ids for the join and materialize.
//! - [`timeutil`]: timestamps as µs since the epoch, RFC 3339 in and out; [`rng`]: the
//!   seeded SplitMix64 generator and [`rng::splitmix64`], whose step is [`entity_hash`].
//! - [`FeatureError`]: failures, each naming the file, view or column.
//!
//! The point-in-time join has Feast's `get_historical_features` semantics: for each entity
//! row (join keys, event timestamp, plus any other columns, passed through unchanged and in
//! order), each requested feature gets the value of the view's latest row for that entity
//! whose event timestamp is ≤ the row's timestamp and, if the view has a TTL, not older than
//! the TTL (`row_ts − feature_ts ≤ ttl`); among rows with the same event timestamp the one
//! with the latest created timestamp wins (a null created timestamp loses to any value), and
//! among full ties the one later in the source. No such row → null. Output columns are named
//! by feature. Sources are read by column name, whatever their order in the file.

pub mod keys;
pub mod materialize;
mod offline;
mod pit;
pub mod repo;
pub mod rng;
pub mod timeutil;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::PathBuf;

pub use offline::{ViewTable, read_parquet, read_parquet_table};
pub(crate) use offline::{field_column, timestamps_us};
pub use pit::{ENTITY_TIMESTAMP, OfflineStore, PitOptions, get_historical_features};
pub use repo::{FeatureRef, FeatureRepo, FeatureView, JoinKey};

/// Failures of the offline store and joins. Every message names the file, view or column.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    #[error("reading {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    /// Inputs that do not fit (missing or mistyped columns, name clashes).
    #[error("{0}")]
    Invalid(String),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// A stable, well-mixed 64-bit hash of an entity id: the first output of SplitMix64 seeded
/// with the id (two's complement). Materialize shards by `entity_hash(id) % N`; the formula is
/// part of the contract (workers of different builds must agree), so never change it.
pub fn entity_hash(id: i64) -> u64 {
    crate::rng::splitmix64(id as u64)
}

/// A `Hasher` for `i64` keys: [`entity_hash`] (far cheaper than SipHash; ids are not
/// attacker-chosen in batch jobs).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = entity_hash((self.0 ^ u64::from(*b)) as i64);
        }
    }
    fn write_i64(&mut self, i: i64) {
        self.0 = entity_hash(i ^ self.0 as i64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hash map keyed by entity id.
pub type IdMap<V> = HashMap<i64, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_hash_is_stable() {
        // Pinned (the reference SplitMix64 stream for seed 0): shards of old and new workers
        // must agree.
        assert_eq!(entity_hash(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(entity_hash(0), crate::rng::SplitMix64::new(0).next_u64());
        assert_eq!(
            entity_hash(-7),
            crate::rng::SplitMix64::new(-7i64 as u64).next_u64()
        );
        // Even shards over consecutive ids.
        let mut counts = [0u32; 4];
        for id in 1..=100_000 {
            counts[(entity_hash(id) % 4) as usize] += 1;
        }
        for c in counts {
            assert!((24_000..26_000).contains(&c), "{counts:?}");
        }
    }
}

#[cfg(test)]
mod pit_tests;
