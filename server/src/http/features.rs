//! `POST /v1/features`: stored feature values and their statuses for a list of entities, as
//! Feast's `get-online-features` answers, so that online values can be inspected.
//!
//! ```json
//! {"features": ["credit_activity:debt_to_income"], "entities": {"applicant_id": [1, 2]}}
//! {"feature_service": "credit-risk", "entities": {"applicant_id": [1, 2]}}
//! ```
//! `feature_service` names a served model: its online features. The answer has
//! `metadata.feature_names` (the key first) and one `results` entry per name with `values`,
//! `statuses` (`PRESENT`, `NULL_VALUE`, `OUTSIDE_MAX_AGE`, `NOT_FOUND`) and
//! `event_timestamps`.

use bytes::Bytes;
use hyper::body::Body;
use hyper::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::HttpState;
use super::body::read_body;
use super::response::{Resp, json_response};
use crate::core::ApiError;

/// Most entities one read may name.
const MAX_ENTITIES: usize = 10_000;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[serde(default)]
    features: Vec<String>,
    #[serde(default)]
    feature_service: Option<String>,
    entities: serde_json::Map<String, Value>,
    #[serde(default)]
    full_feature_names: bool,
}

pub(super) async fn read<B>(
    state: &HttpState,
    headers: &HeaderMap,
    body: B,
) -> Result<Resp, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let bytes = read_body(
        headers,
        body,
        state.max_body_bytes,
        state.core.limits.body_read_timeout,
    )
    .await?;
    let req: Request = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid feature request: {e}")))?;
    let (key, ids) = match req.entities.iter().collect::<Vec<_>>()[..] {
        [(key, ids)] => (key.clone(), ids),
        _ => {
            return Err(ApiError::BadRequest(
                "field `entities` must name one join key with its ids, e.g. {\"applicant_id\": [1, 2]}".into(),
            ));
        }
    };
    let ids: Vec<i64> = ids
        .as_array()
        .ok_or_else(|| ApiError::BadRequest(format!("entities.{key} must be a list of ids")))?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_i64().ok_or_else(|| {
                ApiError::BadRequest(format!("entities.{key}[{i}] is {v}, not an integer id"))
            })
        })
        .collect::<Result<_, _>>()?;
    if ids.len() > MAX_ENTITIES {
        return Err(ApiError::BadRequest(format!(
            "{} entities; at most {MAX_ENTITIES} per request",
            ids.len()
        )));
    }
    let mut refs: Vec<(String, String)> = Vec::new();
    if let Some(service) = &req.feature_service {
        let m = state.core.lookup(service, None)?;
        let online = m.schema.signature.online.as_ref().ok_or_else(|| {
            ApiError::BadRequest(format!("model {service:?} reads no online features"))
        })?;
        if online.entity_key != key {
            return Err(ApiError::BadRequest(format!(
                "model {service:?} is keyed by {:?}, not {key:?}",
                online.entity_key
            )));
        }
        for v in &online.views {
            refs.extend(v.features.iter().map(|f| (v.name.clone(), f.clone())));
        }
    }
    for f in &req.features {
        let (view, field) = f.split_once(':').ok_or_else(|| {
            ApiError::BadRequest(format!("feature {f:?} must be written view:feature"))
        })?;
        refs.push((view.to_string(), field.to_string()));
    }
    if refs.is_empty() {
        return Err(ApiError::BadRequest(
            "name the features (\"features\": [\"view:feature\", …]) or a served model (\"feature_service\")".into(),
        ));
    }
    let columns = state.core.read_features(&refs, ids.clone()).await?;
    let mut names = vec![key.clone()];
    names.extend(refs.iter().map(|(v, f)| {
        if req.full_feature_names {
            format!("{v}__{f}")
        } else {
            f.clone()
        }
    }));
    let mut results = vec![json!({
        "values": ids,
        "statuses": vec!["PRESENT"; ids.len()],
        "event_timestamps": vec!["1970-01-01T00:00:00Z"; ids.len()],
    })];
    for c in columns {
        let values: Vec<Value> = c
            .values
            .iter()
            .map(|v| match v {
                vane_online::Value::Num(x) => json!(x),
                vane_online::Value::Str(s) => json!(s),
                vane_online::Value::Null => Value::Null,
            })
            .collect();
        let stamps: Vec<String> = c
            .event_ts_us
            .iter()
            .map(|t| vane_registry::rfc3339_utc(t.map_or(0, |us| us.max(0) as u64 / 1_000_000)))
            .collect();
        results.push(json!({
            "values": values,
            "statuses": c.statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "event_timestamps": stamps,
        }));
    }
    Ok(json_response(
        StatusCode::OK,
        json!({"metadata": {"feature_names": names}, "results": results}),
    ))
}
