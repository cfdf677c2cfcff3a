//! The rows a run sends: read from a table (CSV, Parquet, JSON Lines) or generated.
//!
//! **Synthetic rows** (no `--data`): each feature is drawn independently from
//! * the reference profile (`--profile profile.json`, as the trainer publishes it beside the
//!   model): a numeric feature by resampling the profile's reference sample (or, without one,
//!   a decile bin by its share and a uniform value inside it, the outer bins bounded by the
//!   profile's min/max); a categorical feature by its category shares; or
//! * without a profile, the model metadata alone: numeric features uniform in [0, 1) (integers
//!   0–9 for integer datatypes), categorical features uniform over the vocabulary. That
//!   exercises the serving path, not the model's realistic score distribution.
//!
//! Missing values are never generated (a model may refuse nulls). Correlations between features
//! are not reproduced; replay a dataset when they matter.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vane_registry::{FeatureKind, FeatureProfile, FeatureSpec, Profile};
use vane_tabular::{Column, Table};

use crate::control::ModelMeta;
use crate::engine::splitmix64;
use crate::error::LoadtestError;

/// Values of one column: numbers (NaN = missing) or text (None = missing).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Num(Vec<f64>),
    Text(Vec<Option<String>>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Num(v) => v.len(),
            Values::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One join key's values: integers (an INT64 key, from a numeric column) or strings (a
/// STRING key, from a text column).
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValues {
    Int(Vec<i64>),
    Str(Vec<String>),
}

/// Rows to send, column by column.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub rows: usize,
    /// The model features present, in signature order.
    pub features: Vec<(FeatureSpec, Values)>,
    /// Entity-keyed requests: each join key with its values, one per row (empty: requests
    /// carry every feature).
    pub entity: Vec<(String, KeyValues)>,
    /// A routing key per row (`x-vane-route-key` of the request the row starts).
    pub route_keys: Option<Vec<String>>,
}

/// How to pick the columns of a table.
#[derive(Debug, Clone, Default)]
pub struct Columns<'a> {
    /// Entity-keyed requests: the join-key columns (every key the model's online views use);
    /// model features missing from the table are left to the server's online store.
    pub entity_keys: &'a [String],
    pub route_key_column: Option<&'a str>,
    /// Generated routing keys: `k0` … `k{n-1}`, one per row, seeded.
    pub route_keys: Option<u64>,
    pub limit_rows: Option<usize>,
    pub seed: u64,
}

fn truncate(v: Values, n: usize) -> Values {
    match v {
        Values::Num(mut x) => {
            x.truncate(n);
            Values::Num(x)
        }
        Values::Text(mut x) => {
            x.truncate(n);
            Values::Text(x)
        }
    }
}

/// The model's features (and the entity key / route key columns) out of `table`.
pub fn from_table(
    table: Table,
    meta: &ModelMeta,
    cols: &Columns<'_>,
) -> Result<Dataset, LoadtestError> {
    let rows = cols.limit_rows.map_or(table.rows, |l| l.min(table.rows));
    if rows == 0 {
        return Err(LoadtestError::Data("the table has no rows".into()));
    }
    let names = table.names().join(", ");
    let column = |name: &str| -> Option<Values> {
        table.column(name).map(|c| {
            truncate(
                match c {
                    Column::Numeric(v) => Values::Num(v.clone()),
                    Column::Text(v) => Values::Text(v.clone()),
                },
                rows,
            )
        })
    };
    let mut features = Vec::new();
    let mut missing = Vec::new();
    for f in &meta.features {
        match column(&f.name) {
            Some(v) => {
                if f.kind == FeatureKind::Numeric && matches!(v, Values::Text(_)) {
                    return Err(LoadtestError::Data(format!(
                        "column {:?} is text but the model's feature is numeric",
                        f.name
                    )));
                }
                let v = match (f.kind, v) {
                    (FeatureKind::Categorical, Values::Num(x)) => categories_of(f, &x)?,
                    (_, v) => v,
                };
                features.push((f.clone(), v));
            }
            None => missing.push(f.name.as_str()),
        }
    }
    if meta.features.is_empty() {
        return Err(LoadtestError::Data(format!(
            "model {:?} publishes no feature signature; send a fixed body (--body)",
            meta.name
        )));
    }
    if !missing.is_empty() && cols.entity_keys.is_empty() {
        return Err(LoadtestError::Data(format!(
            "the table lacks model feature{} {} (columns: {names}); with --entity-key the \
             server reads missing features from its online store",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", ")
        )));
    }
    let mut entity = Vec::with_capacity(cols.entity_keys.len());
    for key in cols.entity_keys {
        let values = match column(key) {
            Some(Values::Num(ids)) => KeyValues::Int(
                ids.iter()
                    .enumerate()
                    .map(|(r, v)| {
                        if v.is_finite() && v.fract() == 0.0 {
                            Ok(*v as i64)
                        } else {
                            Err(LoadtestError::Data(format!(
                                "entity key {key:?} row {r}: {v} is not an integer id"
                            )))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(Values::Text(keys)) => KeyValues::Str(
                keys.into_iter()
                    .enumerate()
                    .map(|(r, k)| {
                        k.ok_or_else(|| {
                            LoadtestError::Data(format!("entity key {key:?} row {r} is empty"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => {
                return Err(LoadtestError::Data(format!(
                    "entity key column {key:?} is missing (columns: {names})"
                )));
            }
        };
        entity.push((key.clone(), values));
    }
    let route_keys = match (cols.route_key_column, cols.route_keys) {
        (Some(c), _) => Some(match column(c) {
            Some(Values::Text(v)) => v.into_iter().map(Option::unwrap_or_default).collect(),
            Some(Values::Num(v)) => v.iter().map(|x| vane_tabular::format_number(*x)).collect(),
            None => {
                return Err(LoadtestError::Data(format!(
                    "route key column {c:?} is missing (columns: {names})"
                )));
            }
        }),
        (None, Some(n)) => Some(generated_keys(rows, n, cols.seed)),
        (None, None) => None,
    };
    Ok(Dataset {
        rows,
        features,
        entity,
        route_keys,
    })
}

/// A numeric column of a categorical feature: a value that reads like a category (`36` for
/// the category "36") is that category; otherwise an integer is a vocabulary code.
fn categories_of(f: &FeatureSpec, x: &[f64]) -> Result<Values, LoadtestError> {
    let vocab = f.vocab.as_deref().unwrap_or_default();
    x.iter()
        .enumerate()
        .map(|(r, v)| {
            if v.is_nan() {
                return Ok(None);
            }
            let s = vane_tabular::format_number(*v);
            if let Some(c) = vocab.iter().find(|c| **c == s) {
                return Ok(Some(c.clone()));
            }
            if v.fract() == 0.0 && *v >= 0.0 && (*v as usize) < vocab.len() {
                return Ok(Some(vocab[*v as usize].clone()));
            }
            Err(LoadtestError::Data(format!(
                "row {r}: feature {:?}: {s} is neither a category nor a vocabulary code",
                f.name
            )))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Values::Text)
}

/// `n` distinct keys spread over the rows (seeded).
pub fn generated_keys(rows: usize, n: u64, seed: u64) -> Vec<String> {
    (0..rows as u64)
        .map(|r| {
            format!(
                "k{}",
                splitmix64(seed ^ r.wrapping_mul(0xA24B_AED4_963E_E407)) % n.max(1)
            )
        })
        .collect()
}

/// `rows` synthetic rows for `meta`'s features (see the module docs).
pub fn synthetic(
    meta: &ModelMeta,
    rows: usize,
    profile: Option<&Profile>,
    route_keys: Option<u64>,
    seed: u64,
) -> Result<Dataset, LoadtestError> {
    if meta.features.is_empty() {
        return Err(LoadtestError::Data(format!(
            "model {:?} publishes no feature signature; send a fixed body (--body) or a dataset",
            meta.name
        )));
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut features = Vec::with_capacity(meta.features.len());
    for f in &meta.features {
        let prof = profile.and_then(|p| p.features.iter().find(|x| x.name() == f.name));
        let values = match (f.kind, prof) {
            (
                FeatureKind::Numeric,
                Some(FeatureProfile::Numeric {
                    edges,
                    shares,
                    sample,
                    min,
                    max,
                    ..
                }),
            ) => Values::Num(
                (0..rows)
                    .map(|_| {
                        if !sample.is_empty() {
                            sample[rng.random_range(0..sample.len())]
                        } else {
                            from_bins(&mut rng, edges, shares, *min, *max)
                        }
                    })
                    .map(|x| integral(f, x))
                    .collect(),
            ),
            (
                FeatureKind::Categorical,
                Some(FeatureProfile::Categorical {
                    categories, shares, ..
                }),
            ) => {
                let vocab = f.vocab.clone().unwrap_or_default();
                // Only categories the model knows (the profile may list more, or fewer).
                let known: Vec<(usize, f64)> = categories
                    .iter()
                    .zip(shares)
                    .filter_map(|(c, s)| vocab.iter().position(|v| v == c).map(|i| (i, *s)))
                    .collect();
                Values::Text(
                    (0..rows)
                        .map(|_| {
                            let i = if known.is_empty() {
                                rng.random_range(0..vocab.len().max(1))
                            } else {
                                weighted(&mut rng, &known)
                            };
                            vocab.get(i).cloned()
                        })
                        .collect(),
                )
            }
            (FeatureKind::Numeric, _) => Values::Num(
                (0..rows)
                    .map(|_| {
                        if is_int(&f.dtype) {
                            rng.random_range(0..10) as f64
                        } else {
                            rng.random::<f64>()
                        }
                    })
                    .collect(),
            ),
            (FeatureKind::Categorical, _) => {
                let vocab = f.vocab.clone().unwrap_or_default();
                if vocab.is_empty() {
                    return Err(LoadtestError::Data(format!(
                        "categorical feature {:?} has no vocabulary in the model metadata",
                        f.name
                    )));
                }
                Values::Text(
                    (0..rows)
                        .map(|_| Some(vocab[rng.random_range(0..vocab.len())].clone()))
                        .collect(),
                )
            }
        };
        features.push((f.clone(), values));
    }
    Ok(Dataset {
        rows,
        features,
        entity: Vec::new(),
        route_keys: route_keys.map(|n| generated_keys(rows, n, seed)),
    })
}

fn is_int(dtype: &str) -> bool {
    dtype.starts_with("INT") || dtype.starts_with("UINT")
}

fn integral(f: &FeatureSpec, x: f64) -> f64 {
    if is_int(&f.dtype) { x.round() } else { x }
}

fn weighted(rng: &mut SmallRng, items: &[(usize, f64)]) -> usize {
    let total: f64 = items.iter().map(|(_, w)| w.max(0.0)).sum();
    let mut u = rng.random::<f64>() * total;
    for (i, w) in items {
        u -= w.max(0.0);
        if u < 0.0 {
            return *i;
        }
    }
    items.last().map_or(0, |(i, _)| *i)
}

/// A value from frozen decile bins: a bin by its share, then uniform inside it.
fn from_bins(
    rng: &mut SmallRng,
    edges: &[f64],
    shares: &[f64],
    min: Option<f64>,
    max: Option<f64>,
) -> f64 {
    if edges.is_empty() {
        return min.or(max).unwrap_or(0.0);
    }
    let items: Vec<(usize, f64)> = shares.iter().copied().enumerate().collect();
    let b = weighted(rng, &items);
    let width = if edges.len() > 1 {
        (edges[edges.len() - 1] - edges[0]) / (edges.len() - 1) as f64
    } else {
        edges[0].abs().max(1.0)
    };
    let lo = if b == 0 {
        min.unwrap_or(edges[0] - width).min(edges[0])
    } else {
        edges[b - 1]
    };
    let hi = if b >= edges.len() {
        max.unwrap_or(edges[edges.len() - 1] + width)
            .max(edges[edges.len() - 1])
    } else {
        edges[b]
    };
    lo + (hi - lo) * rng.random::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vane_tabular::NamedColumn;

    fn meta() -> ModelMeta {
        ModelMeta {
            name: "m".into(),
            tensor_name: "input".into(),
            features: vec![
                FeatureSpec::numeric("income", "FP64"),
                FeatureSpec::categorical("term", ["36", "60"]),
            ],
            version: None,
        }
    }

    fn table() -> Table {
        Table {
            rows: 3,
            columns: vec![
                NamedColumn {
                    name: "id".into(),
                    data: Column::Numeric(vec![7.0, 8.0, 9.0]),
                },
                NamedColumn {
                    name: "term".into(),
                    data: Column::Text(vec![Some("60".into()), None, Some("36".into())]),
                },
                NamedColumn {
                    name: "income".into(),
                    data: Column::Numeric(vec![1.0, f64::NAN, 3.5]),
                },
            ],
        }
    }

    #[test]
    fn picks_model_columns_in_signature_order() {
        let d = from_table(table(), &meta(), &Columns::default()).unwrap();
        assert_eq!(d.rows, 3);
        assert_eq!(d.features[0].0.name, "income");
        assert_eq!(d.features[1].0.name, "term");
        let d = from_table(
            table(),
            &meta(),
            &Columns {
                limit_rows: Some(2),
                route_key_column: Some("id"),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(d.rows, 2);
        assert_eq!(d.features[1].1.len(), 2);
        assert_eq!(d.route_keys, Some(vec!["7".to_string(), "8".to_string()]));
        // A categorical column read as numbers: "60" is the category, 0 the code of "36".
        let mut t = table();
        t.columns[1].data = Column::Numeric(vec![60.0, 0.0, f64::NAN]);
        let d = from_table(t.clone(), &meta(), &Columns::default()).unwrap();
        assert_eq!(
            d.features[1].1,
            Values::Text(vec![Some("60".into()), Some("36".into()), None])
        );
        t.columns[1].data = Column::Numeric(vec![7.0, 0.0, 1.0]);
        assert!(from_table(t, &meta(), &Columns::default()).is_err());
    }

    #[test]
    fn missing_features_need_an_entity_key() {
        let mut t = table();
        t.columns.retain(|c| c.name != "income");
        let err = from_table(t.clone(), &meta(), &Columns::default()).unwrap_err();
        assert!(
            err.to_string().contains("lacks model feature income"),
            "{err}"
        );
        let err = from_table(
            t.clone(),
            &meta(),
            &Columns {
                entity_keys: &["id".to_string(), "term".to_string()],
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"term\" row 1 is empty"), "{err}");
        let d = from_table(
            t,
            &meta(),
            &Columns {
                entity_keys: &["id".to_string()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            d.entity,
            vec![("id".to_string(), KeyValues::Int(vec![7, 8, 9]))]
        );
        assert_eq!(d.features.len(), 1);
    }

    #[test]
    fn synthetic_rows_follow_the_profile() {
        let profile = Profile {
            rows: 100,
            features: vec![
                FeatureProfile::Numeric {
                    name: "income".into(),
                    edges: vec![10.0, 20.0],
                    shares: vec![0.0, 1.0, 0.0],
                    missing_share: 0.0,
                    sample: vec![],
                    min: Some(0.0),
                    max: Some(30.0),
                },
                FeatureProfile::Categorical {
                    name: "term".into(),
                    categories: vec!["36".into(), "60".into()],
                    shares: vec![0.9, 0.1],
                    unseen_share: 0.0,
                },
            ],
            score: None,
        };
        let d = synthetic(&meta(), 2000, Some(&profile), Some(10), 1).unwrap();
        let Values::Num(inc) = &d.features[0].1 else {
            panic!()
        };
        assert!(inc.iter().all(|x| (10.0..=20.0).contains(x)));
        let Values::Text(term) = &d.features[1].1 else {
            panic!()
        };
        let share36 = term.iter().filter(|t| t.as_deref() == Some("36")).count() as f64 / 2000.0;
        assert!((0.85..0.95).contains(&share36), "{share36}");
        let keys = d.route_keys.unwrap();
        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), 10);
        // Deterministic in the seed.
        assert_eq!(
            synthetic(&meta(), 50, Some(&profile), None, 1).unwrap(),
            synthetic(&meta(), 50, Some(&profile), None, 1).unwrap()
        );
        let plain = synthetic(&meta(), 10, None, None, 1).unwrap();
        assert_eq!(plain.rows, 10);
    }
}
