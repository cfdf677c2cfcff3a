//! The batch commands, for datasets on disk: `profile` builds a `profile.json` from a
//! dataset (for models trained outside Vane), `compare` computes the same statistics as the
//! streaming monitor between a reference and a current dataset, as Evidently users run them.
//!
//! Column kinds: text columns are categorical, numeric columns numeric, unless
//! `--categorical` names them. Categories are ordered by frequency in the reference (ties by
//! name); a current value outside them, or a missing one, counts as unseen.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value, json};
use vane_registry::{FeatureProfile, Profile};
use vane_tabular::{Column, Table};

use crate::config::{CompareArgs, ProfileArgs};
use crate::drift::{Thresholds, WindowDrift, evaluate_with};
use crate::reference::{Precision, RefFeature, RefKind, Reference};
use crate::window::{ColumnAcc, WindowAcc};

/// A column's values as the statistics see them.
enum Values {
    Numeric(Vec<f64>),
    Text(Vec<Option<String>>),
}

fn values(c: &Column, categorical: bool) -> Values {
    match c {
        Column::Numeric(v) if !categorical => Values::Numeric(v.clone()),
        other => Values::Text(other.to_text()),
    }
}

/// Categories by descending count, ties by name; and the count of nulls.
fn categories(v: &[Option<String>]) -> (Vec<String>, Vec<u64>, u64) {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    let mut nulls = 0;
    for x in v {
        match x {
            Some(s) => *counts.entry(s.as_str()).or_default() += 1,
            None => nulls += 1,
        }
    }
    let mut cats: Vec<(&str, u64)> = counts.into_iter().collect();
    cats.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    (
        cats.iter().map(|(c, _)| c.to_string()).collect(),
        cats.iter().map(|(_, n)| *n).collect(),
        nulls,
    )
}

/// `k` of the positions `0..n`, chosen uniformly with a seeded generator (all when k ≥ n).
fn sample_positions(n: usize, k: usize, seed: u64) -> Vec<usize> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    vane_stats::profile::sample_positions(n, k, || rng.random::<u64>())
}

/// The profile of one column.
fn profile_column(
    name: &str,
    v: &Values,
    sample: usize,
    seed: u64,
    precision: Precision,
) -> FeatureProfile {
    match v {
        Values::Numeric(x) => {
            let x: Vec<f64> = match precision {
                // As served: model tensors are f32.
                Precision::F32 => x.iter().map(|v| f64::from(*v as f32)).collect(),
                Precision::F64 => x.clone(),
            };
            let pos = sample_positions(x.len(), sample, seed);
            vane_stats::profile::numeric(name, &x, &pos)
        }
        Values::Text(t) => {
            let (cats, counts, nulls) = categories(t);
            vane_stats::profile::categorical(name, cats, &counts, nulls)
        }
    }
}

/// Columns to use: `wanted` if given, else every column of `t` not excluded.
fn chosen(t: &Table, wanted: &[String], exclude: &[String]) -> Vec<String> {
    if !wanted.is_empty() {
        return wanted.to_vec();
    }
    t.names()
        .into_iter()
        .filter(|n| !exclude.iter().any(|e| e == n))
        .map(str::to_string)
        .collect()
}

/// `vane-monitor profile`.
pub fn profile(args: &ProfileArgs) -> anyhow::Result<Profile> {
    let t = vane_tabular::read_table(&args.data, None)?;
    let mut exclude = args.cols.exclude.clone();
    exclude.extend(args.score.iter().cloned());
    let names = chosen(&t, &args.cols.columns, &exclude);
    let mut features = Vec::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        let c = t.column(n).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no column {n:?} (columns: {})",
                args.data.display(),
                t.names().join(", ")
            )
        })?;
        let v = values(c, args.cols.categorical.contains(n));
        features.push(profile_column(
            n,
            &v,
            args.sample,
            args.seed.wrapping_add(i as u64),
            Precision::F32,
        ));
    }
    let score = match &args.score {
        None => None,
        Some(s) => match t.column(s) {
            Some(Column::Numeric(v)) => Some(profile_column(
                s,
                &Values::Numeric(v.clone()),
                args.sample,
                args.seed ^ 0x5c0e,
                Precision::F32,
            )),
            Some(_) => anyhow::bail!("score column {s:?} is not numeric"),
            None => anyhow::bail!("{}: no score column {s:?}", args.data.display()),
        },
    };
    let p = Profile {
        rows: t.rows as u64,
        features,
        score,
    };
    p.validate().map_err(|e| anyhow::anyhow!("profile: {e}"))?;
    Ok(p)
}

/// The result of `compare`: the JSON document and what the HTML report needs.
pub struct Comparison {
    pub json: Value,
    pub drift: WindowDrift,
    pub reference_rows: usize,
    pub current_rows: usize,
}

fn read(path: &Path) -> anyhow::Result<Table> {
    Ok(vane_tabular::read_table(path, None)?)
}

/// `vane-monitor compare`.
pub fn compare(args: &CompareArgs, th: &Thresholds) -> anyhow::Result<Comparison> {
    if args.reference.is_none() && args.profile.is_none() {
        anyhow::bail!("compare needs --reference <data> or --profile <profile.json> (or both)");
    }
    let current = read(&args.current)?;
    let reference = args.reference.as_deref().map(read).transpose()?;
    let profile = args
        .profile
        .as_deref()
        .map(crate::profiles::read_profile)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    // Columns: as asked, else those the reference side and the current data share.
    let on_reference_side = |n: &str| match (&reference, &profile) {
        (_, Some(p)) => p.feature(n).is_some(),
        (Some(r), None) => r.column(n).is_some(),
        (None, None) => false,
    };
    let names: Vec<String> = chosen(&current, &args.cols.columns, &args.cols.exclude)
        .into_iter()
        .filter(|n| !args.cols.columns.is_empty() || on_reference_side(n))
        .collect();
    if names.is_empty() {
        anyhow::bail!(
            "no column to compare: the current data and the reference have none in common"
        );
    }
    let mut ref_features = Vec::with_capacity(names.len());
    let mut ks_reference = Vec::with_capacity(names.len());
    let mut cur_values = Vec::with_capacity(names.len());
    for n in &names {
        let cur = current
            .column(n)
            .ok_or_else(|| anyhow::anyhow!("{}: no column {n:?}", args.current.display()))?;
        let ref_col = match &reference {
            Some(r) => Some(r.column(n).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: no column {n:?}",
                    args.reference.as_deref().unwrap_or(Path::new("")).display()
                )
            })?),
            None => None,
        };
        let text = args.cols.categorical.contains(n)
            || matches!(cur, Column::Text(_))
            || matches!(ref_col, Some(Column::Text(_)));
        let text = match profile.as_ref().and_then(|p| p.feature(n)) {
            Some(FeatureProfile::Categorical { .. }) => true,
            Some(FeatureProfile::Numeric { .. }) => false,
            None => text,
        };
        let ref_values = ref_col.map(|c| values(c, text));
        let fp = match (profile.as_ref().and_then(|p| p.feature(n)), &ref_values) {
            (Some(fp), _) => fp.clone(),
            (None, Some(v)) => profile_column(n, v, usize::MAX, 0, Precision::F64),
            (None, None) => anyhow::bail!("column {n:?} is not in the profile"),
        };
        ks_reference.push(match &ref_values {
            Some(Values::Numeric(v)) => {
                let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
                s.sort_unstable_by(f64::total_cmp);
                s
            }
            _ => match &fp {
                FeatureProfile::Numeric { sample, .. } => {
                    let mut s = sample.clone();
                    s.sort_unstable_by(f64::total_cmp);
                    s
                }
                _ => Vec::new(),
            },
        });
        ref_features.push(RefFeature::from_profile(&fp, Precision::F64));
        cur_values.push(values(cur, text));
    }
    let reference_rows = reference.as_ref().map_or_else(
        || profile.as_ref().map_or(0, |p| p.rows as usize),
        |r| r.rows,
    );
    let r = Reference {
        rows: reference_rows as u64,
        features: ref_features,
        score: None,
        source: args
            .reference
            .as_ref()
            .or(args.profile.as_ref())
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    };
    let mut w = WindowAcc::new(&r, usize::MAX, 0);
    for ((f, acc), v) in r.features.iter().zip(w.columns.iter_mut()).zip(&cur_values) {
        add_values(f, acc, v);
    }
    w.rows = current.rows as u64;
    let drift = evaluate_with(&r, &w, th, Some(&ks_reference));
    let mut features = Map::new();
    for c in &drift.features {
        let mut o = json!({ "kind": c.kind, "psi": c.psi });
        let m = o.as_object_mut().expect("object");
        if c.kind == "numeric" {
            m.insert("ks_statistic".into(), json!(c.ks_statistic));
            m.insert("ks_pvalue".into(), json!(c.ks_pvalue));
            m.insert("out_of_range_share".into(), json!(c.out_of_range_share));
        } else {
            m.insert("chi2_pvalue".into(), json!(c.chi2_pvalue));
            m.insert("unseen_share".into(), json!(c.unseen_share));
        }
        m.insert("missing_share".into(), json!(c.missing_share));
        m.insert("drift".into(), json!(c.drift));
        m.insert("verdict".into(), json!(c.verdict));
        features.insert(c.name.clone(), o);
    }
    let json = json!({
        "rows": { "reference": reference_rows, "current": current.rows },
        "features": features,
        "drift_share": drift.drift_share,
        "dataset_drift": drift.dataset_drift,
    });
    Ok(Comparison {
        json,
        drift,
        reference_rows,
        current_rows: current.rows,
    })
}

fn add_values(f: &RefFeature, acc: &mut ColumnAcc, v: &Values) {
    match (v, &f.kind) {
        (Values::Numeric(x), RefKind::Numeric { .. }) => acc.add_numeric(f, x.iter().copied()),
        (Values::Text(t), RefKind::Categorical { index, categories }) => {
            let unseen = categories.len();
            // Codes into the reference categories; NaN for missing, out of range for unseen.
            let codes = t.iter().map(|s| match s {
                None => f32::NAN,
                Some(s) => index.get(s).map_or(unseen as f32, |i| *i as f32),
            });
            let slots: Vec<usize> = (0..unseen).collect();
            acc.add_codes(&slots, codes);
        }
        // A numeric profile against text data (or the reverse): every value is unseen.
        (Values::Text(t), RefKind::Numeric { .. }) => acc.add_numeric(
            f,
            t.iter().map(|s| {
                s.as_deref()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(f64::NAN)
            }),
        ),
        (Values::Numeric(x), RefKind::Categorical { .. }) => {
            acc.add_codes(&[], x.iter().map(|_| f32::INFINITY))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_by_frequency_then_name() {
        let v = vec![
            Some("b".to_string()),
            Some("a".to_string()),
            None,
            Some("b".to_string()),
            Some("c".to_string()),
        ];
        let (cats, counts, nulls) = categories(&v);
        assert_eq!(cats, ["b", "a", "c"]);
        assert_eq!(counts, [2, 1, 1]);
        assert_eq!(nulls, 1);
    }
}
