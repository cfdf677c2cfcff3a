//! `vane-models train`: fit logistic regression and/or gradient-boosted trees on a CSV or
//! Parquet table — or on a training set joined point-in-time from a feature repository —
//! print the test metrics, write the outputs and publish a registry version.

use std::path::PathBuf;

use crate::train::{self, GbdtParams, LrParams, ModelType, PublishOptions, TrainReport, TrainSpec};
use anyhow::{Context, Result};
use vane_registry::FeatureKind;

/// Arguments of `vane-models train`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples (also `vane train …`):
  vane-models train --repo data/features.toml --data data/applications.parquet --label default_12m \\
      --exclude application_id,applicant_id --registry ./registry --model credit-risk --alias champion
  vane-models train --data table.csv --label y --time-column date --registry ./registry --model m \\
      --recent 0.5 --keep-vocabulary-of champion --min-auc 0.7 --alias candidate
  vane-models train --data credit-g.csv --label class --positive-label bad \\
      --registry ./registry --model credit-g --alias champion")]
pub struct Args {
    /// Training table: a `.csv` file (header row, schema inferred, empty field or `NA` = null) or a
    /// `.parquet` file.
    #[arg(long, env = "VANE_TRAIN_DATA")]
    pub data: PathBuf,
    /// Feature repository (TOML). `--data` is then the entity table (join key,
    /// `event_timestamp`, label, request-time features); each row gets the service's view
    /// features as of its timestamp (point-in-time join), and the published signature lets the
    /// server read those features from the online store by entity.
    #[arg(long, env = "VANE_FEATURE_REPO")]
    pub repo: Option<PathBuf>,
    /// Feature service of `--repo` (default: its only service).
    #[arg(long, env = "VANE_FEATURE_SERVICE")]
    pub service: Option<String>,
    /// The label column: 0/1 (integers, floats or booleans), or any values with
    /// --positive-label.
    #[arg(long, env = "VANE_TRAIN_LABEL")]
    pub label: String,
    /// The label value of the positive class (e.g. `bad`, or `2`); every other value is 0.
    #[arg(long, env = "VANE_TRAIN_POSITIVE_LABEL")]
    pub positive_label: Option<String>,
    /// Split by this column's time order (earliest 70 % train, next 15 % validation, last
    /// 15 % test) instead of a seeded random split.
    #[arg(long, env = "VANE_TRAIN_TIME_COLUMN")]
    pub time_column: Option<String>,
    /// Feature columns in model order (default: every column but the label, the time column
    /// and --exclude). Text columns become categorical.
    #[arg(long, value_delimiter = ',', env = "VANE_TRAIN_FEATURES")]
    pub features: Vec<String>,
    /// Columns to leave out when --features is not given (e.g. ids).
    #[arg(long, value_delimiter = ',', env = "VANE_TRAIN_EXCLUDE")]
    pub exclude: Vec<String>,
    /// Columns to treat as categorical even though they are numbers (e.g. codes).
    #[arg(long, value_delimiter = ',', env = "VANE_TRAIN_CATEGORICAL")]
    pub categorical: Vec<String>,
    /// Which models to fit; with `both` the higher validation AUC is published.
    #[arg(long, default_value = "both", env = "VANE_TRAIN_MODEL_TYPE")]
    pub model_type: ModelType,
    /// Registry to publish into: a directory (created if missing) or mlflow://host:port.
    #[arg(long, env = "VANE_REGISTRY")]
    pub registry: String,
    /// Model name in the registry.
    #[arg(long, env = "VANE_TRAIN_MODEL")]
    pub model: String,
    /// Alias to move to the new version (e.g. champion).
    #[arg(long, env = "VANE_TRAIN_ALIAS")]
    pub alias: Option<String>,
    /// Also write model.onnx, signature.json, profile.json, metrics.json, lineage.json and
    /// candidates/<model>.onnx into this directory.
    #[arg(long, env = "VANE_TRAIN_OUT")]
    pub out: Option<PathBuf>,
    /// Seed of the random split and the profile's reference sample.
    #[arg(long, default_value_t = 42, env = "VANE_TRAIN_SEED")]
    pub seed: u64,
    /// Train only on this most recent share of the rows, by the time column (e.g. 0.5:
    /// retrain on the newer half).
    #[arg(long, env = "VANE_TRAIN_RECENT")]
    pub recent: Option<f64>,
    /// Keep the categorical vocabularies of this version of the model (an alias such as
    /// `champion`, or a number) so the new version can replace it on a running server: its
    /// categories keep their codes, new ones are appended. Skipped, with a note, when the
    /// registry has no such version yet (the first training).
    #[arg(long, env = "VANE_TRAIN_KEEP_VOCABULARY_OF")]
    pub keep_vocabulary_of: Option<String>,
    /// Evaluate before publishing: fail (and publish nothing) when the chosen model's test
    /// AUC is below this.
    #[arg(long, env = "VANE_TRAIN_MIN_AUC")]
    pub min_auc: Option<f64>,
    /// Refuse categorical features with more categories than this in the training split.
    #[arg(long, default_value_t = 256, env = "VANE_TRAIN_MAX_CATEGORIES")]
    pub max_categories: usize,
    /// Logistic regression: L2 penalty (objective = mean log-loss + l2/2·‖w‖²).
    #[arg(long, default_value_t = LrParams::default().l2, env = "VANE_TRAIN_L2")]
    pub l2: f64,
    /// Boosted trees: learning rate.
    #[arg(long, default_value_t = GbdtParams::default().learning_rate, env = "VANE_TRAIN_LEARNING_RATE")]
    pub learning_rate: f64,
    /// Boosted trees: maximum depth.
    #[arg(long, default_value_t = GbdtParams::default().max_depth, env = "VANE_TRAIN_MAX_DEPTH")]
    pub max_depth: usize,
    /// Boosted trees: minimum rows per leaf.
    #[arg(long, default_value_t = GbdtParams::default().min_samples_leaf, env = "VANE_TRAIN_MIN_LEAF")]
    pub min_leaf: usize,
    /// Boosted trees: maximum number of trees.
    #[arg(long, default_value_t = GbdtParams::default().max_trees, env = "VANE_TRAIN_MAX_TREES")]
    pub max_trees: usize,
    /// Boosted trees: stop after this many trees without a better validation log-loss.
    #[arg(long, default_value_t = GbdtParams::default().patience, env = "VANE_TRAIN_PATIENCE")]
    pub patience: usize,
}

impl Args {
    pub fn spec(&self) -> TrainSpec {
        TrainSpec {
            features: self.features.clone(),
            exclude: self.exclude.clone(),
            kinds: self
                .categorical
                .iter()
                .map(|c| (c.clone(), FeatureKind::Categorical))
                .collect(),
            time_column: self.time_column.clone(),
            positive_label: self.positive_label.clone(),
            model_type: self.model_type,
            seed: self.seed,
            max_categories: self.max_categories,
            recent: self.recent,
            lr: LrParams {
                l2: self.l2,
                ..LrParams::default()
            },
            gbdt: GbdtParams {
                learning_rate: self.learning_rate,
                max_depth: self.max_depth,
                min_samples_leaf: self.min_leaf,
                max_trees: self.max_trees,
                patience: self.patience,
                ..GbdtParams::default()
            },
            ..TrainSpec::new(&self.label)
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let mut spec = args.spec();
    if let Some(which) = &args.keep_vocabulary_of {
        spec.base_vocab = served_vocabularies(&args.registry, &args.model, which)?;
    }
    let (batches, online, lineage) = match &args.repo {
        None => {
            // Read only the columns needed when they are known.
            let columns = (!spec.features.is_empty()).then(|| {
                let mut c = spec.features.clone();
                c.push(spec.label.clone());
                c.extend(spec.time_column.clone());
                c
            });
            let batches = train::read_table(&args.data, columns.as_deref())?;
            (batches, None, train::file_lineage(&[args.data.as_path()])?)
        }
        Some(repo_path) => {
            let set = train::service_training_set(
                repo_path,
                args.service.as_deref(),
                &args.data,
                &mut spec,
            )?;
            (set.batches, set.online, set.lineage)
        }
    };
    let report = train::train(&batches, &spec)?;
    print!("{}", table(&report));
    if let Some(out) = &args.out {
        report
            .write_dir(out, &lineage)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if let Some(min) = args.min_auc {
        let chosen = report.chosen();
        if chosen.test.auc.is_nan() || chosen.test.auc < min {
            anyhow::bail!(
                "evaluation gate: {} test AUC {:.4} is below --min-auc {min}; nothing published",
                chosen.algorithm.name(),
                chosen.test.auc
            );
        }
    }
    let version = train::publish(
        &report,
        &PublishOptions {
            registry: args.registry.clone(),
            model: args.model.clone(),
            alias: args.alias.clone(),
            lineage,
            online,
            ..PublishOptions::default()
        },
    )
    .with_context(|| format!("publishing {} to {}", args.model, args.registry))?;
    let chosen = report.chosen();
    let alias = args
        .alias
        .as_ref()
        .map(|a| format!(", {a} -> {version}"))
        .unwrap_or_default();
    println!(
        "published {} version {version}: {} (validation AUC {:.4}){alias}",
        args.model, chosen.algorithm, chosen.valid.auc
    );
    Ok(())
}

/// The categorical vocabularies of `model`'s version `which`; empty when there is none yet.
fn served_vocabularies(
    registry: &str,
    model: &str,
    which: &str,
) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
    use vane_registry::{RegistryError, VersionRef};
    let which: VersionRef = which.parse().unwrap_or_else(|e| match e {});
    let found = vane_registry::open_registry(registry, &Default::default())
        .and_then(|reg| reg.fetch_ref(model, &which));
    match found {
        Ok(mv) => {
            eprintln!("keeping the vocabularies of {model} version {}", mv.version);
            Ok(mv
                .signature
                .inputs
                .into_iter()
                .filter_map(|f| Some((f.name, f.vocab?)))
                .collect())
        }
        Err(RegistryError::NotFound(_)) => {
            eprintln!("no {model} {which:?} in the registry yet: vocabularies start fresh");
            Ok(Default::default())
        }
        Err(e) => Err(e).with_context(|| format!("reading {model} {which:?} from {registry}")),
    }
}

/// The test metrics of every trained model, one row each.
pub fn table(report: &TrainReport) -> String {
    let mut s = format!(
        "rows: train {} / valid {} / test {}; features {}\n",
        report.rows.train,
        report.rows.valid,
        report.rows.test,
        report.features.len()
    );
    s.push_str(&format!(
        "{:<6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}  {}\n",
        "model", "test_auc", "ks", "gini", "brier", "logloss", "val_auc", "fit_s", "size"
    ));
    for t in report.trained() {
        let size = match t.algorithm {
            train::Algorithm::Lr => format!("{} iterations", t.details["iterations"]),
            train::Algorithm::Gbdt => format!("{} trees", t.details["trees"]),
        };
        s.push_str(&format!(
            "{:<6} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>9.2}  {size}\n",
            t.algorithm.name(),
            t.test.auc,
            t.test.ks,
            t.test.gini,
            t.test.brier,
            t.test.log_loss,
            t.valid.auc,
            t.seconds
        ));
    }
    s
}
