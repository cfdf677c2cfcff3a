//! Vane's statistics, in one place: the trainer's reference profile, the drift monitor's
//! per-window tests and the load tester's canary verdict all call this crate, and its numbers
//! equal numpy/scipy (golden tests against `fixtures/golden.json`, written by
//! `fixtures/generate.py`).
//!
//! * [`quantile::linear_quantiles`] — `numpy.quantile` (method "linear").
//! * [`profile::numeric`] / [`profile::categorical`] build a
//!   [`FeatureProfile`](vane_registry::FeatureProfile): frozen decile edges
//!   ([`profile::DECILES`]), bin shares, missing/unseen share, KS reference sample (rows
//!   picked by [`profile::sample_positions`]).
//! * [`binning::NumericBins`] bins live values against those frozen edges (plus a missing bin);
//!   [`binning::reference_shares`] lays the profile's shares out the same way.
//! * [`psi::psi`] — population stability index of live counts against reference shares
//!   ([`psi::EMPTY_SHARE`] for empty bins).
//! * [`ks::ks_2samp`] / [`ks::ks_2samp_sorted`] — `scipy.stats.ks_2samp(method="auto")`,
//!   returning a [`ks::KsResult`]; [`ks::KsWorkspace`] reuses the exact method's buffer;
//!   [`ks::kstwo_sf`] and [`ks::smirnov_sf`] are the distributions behind it.
//! * [`chi2::chi2_sf`] and [`chi2::chi2_goodness_of_fit`] — the categorical drift test
//!   (`scipy.stats.chisquare`), returning a [`chi2::Chi2Result`].
//! * [`mannwhitney::mann_whitney_u`], [`mannwhitney::hodges_lehmann`] and
//!   [`mannwhitney::kayenta_classify`] — Kayenta's canary judgement of a metric
//!   ([`mannwhitney::Comparison`]).
//!
//! Nothing here panics on data: empty inputs, zero counts and NaN give a documented value or
//! `None`.

pub mod binning;
pub mod chi2;
pub mod ks;
pub mod mannwhitney;
pub mod profile;
pub mod psi;
pub mod quantile;
mod special;

pub use binning::{NumericBins, reference_shares};
pub use chi2::{Chi2Result, chi2_goodness_of_fit, chi2_sf};
pub use ks::{KsMethod, KsResult, KsWorkspace, ks_2samp, ks_2samp_sorted, kstwo_sf, smirnov_sf};
pub use mannwhitney::{
    Classification, Comparison, MwuResult, ShiftEstimate, hodges_lehmann, kayenta_classify,
    mann_whitney_u,
};
pub use psi::{EMPTY_SHARE, psi};
pub use quantile::linear_quantiles;
