//! Training sets joined point-in-time from a feature repository.

use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use serde_json::Value;
use vane_registry::{OnlineKey, OnlineSpec, OnlineView};

use super::{TrainError, TrainSpec, file_lineage};
use crate::credit;
use vane_features::{ENTITY_TIMESTAMP, FeatureRepo, get_historical_features, read_parquet_table};

/// A feature service's point-in-time training set, the online spec that lets the server read
/// the same view features by entity, and the lineage of every file involved.
pub struct ServiceTrainingSet {
    pub batches: Vec<RecordBatch>,
    pub online: Option<OnlineSpec>,
    pub lineage: Value,
}

/// Joins `entities` (join key, `event_timestamp`, label, request-time features) to the views of
/// `service` (default: the repository's only service) as of each row's timestamp. Fills
/// `spec.features` (the example credit-risk order when the service has exactly those
/// features, else view features then request features) and `spec.time_column` when unset.
pub fn service_training_set(
    repo_path: &Path,
    service: Option<&str>,
    entities: &Path,
    spec: &mut TrainSpec,
) -> Result<ServiceTrainingSet, TrainError> {
    let invalid = |m: String| TrainError::Invalid(m);
    let repo = FeatureRepo::load(repo_path).map_err(|e| invalid(e.to_string()))?;
    let service = match service {
        Some(name) => repo.service(name).ok_or_else(|| {
            invalid(format!(
                "{}: no feature service {name:?}",
                repo_path.display()
            ))
        })?,
        None => match repo.feature_services.as_slice() {
            [only] => only,
            [] => {
                return Err(invalid(format!(
                    "{}: defines no feature service",
                    repo_path.display()
                )));
            }
            _ => {
                return Err(invalid(format!(
                    "{}: several feature services; choose one with --service",
                    repo_path.display()
                )));
            }
        },
    };
    let entity_df = read_parquet_table(entities, None)
        .map_err(|e| invalid(format!("{}: {e}", entities.display())))?;
    let joined = get_historical_features(&repo, &entity_df, &service.features)
        .map_err(|e| invalid(format!("point-in-time join of {}: {e}", entities.display())))?;
    if spec.features.is_empty() {
        let mut names: Vec<String> = service.features.iter().map(|r| r.feature.clone()).collect();
        names.extend(service.request_features.iter().cloned());
        let example = credit::feature_names();
        spec.features = if example.len() == names.len()
            && example.iter().all(|c| names.iter().any(|n| n == c))
        {
            example.iter().map(|c| c.to_string()).collect()
        } else {
            names
        };
    }
    if spec.time_column.is_none() {
        spec.time_column = Some(ENTITY_TIMESTAMP.to_string());
    }
    let mut views: Vec<OnlineView> = Vec::new();
    let mut files: Vec<PathBuf> = vec![entities.to_path_buf(), repo_path.to_path_buf()];
    for r in &service.features {
        let view = repo
            .view(&r.view)
            .ok_or_else(|| invalid(format!("unknown view {:?}", r.view)))?;
        match views.iter_mut().find(|v| v.name == view.name) {
            Some(v) => v.features.push(r.feature.clone()),
            None => {
                views.push(OnlineView {
                    name: view.name.clone(),
                    keys: view.join_keys.iter().map(|k| k.name.clone()).collect(),
                    ttl_s: view.ttl_s,
                    features: vec![r.feature.clone()],
                });
                files.push(repo.source_path(view));
            }
        }
    }
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let mut lineage = file_lineage(&paths)?;
    lineage["feature_service"] = Value::String(service.name.clone());
    Ok(ServiceTrainingSet {
        batches: vec![joined],
        online: (!views.is_empty()).then(|| OnlineSpec {
            keys: repo
                .join_keys(&service.features)
                .into_iter()
                .map(|k| OnlineKey::new(k.name, k.dtype.as_str()))
                .collect(),
            views,
        }),
        lineage,
    })
}
