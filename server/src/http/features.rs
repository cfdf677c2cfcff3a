//! `POST /v1/features`: stored feature values and their statuses for a list of entities, as
//! Feast's `get-online-features` answers, so that online values can be inspected.
//!
//! ```json
//! {"features": ["credit_activity:debt_to_income"], "entities": {"applicant_id": [1, 2]}}
//! {"feature_service": "credit-risk", "entities": {"applicant_id": [1, 2]}}
//! {"features": ["applicant_merchant:purchases_30d"],
//!  "entities": {"applicant_id": [1, 2], "merchant_code": ["acme", "zeta"]}}
//! ```
//! `entities` gives each join key the views need (integers for INT64 keys, strings for STRING
//! keys), one value per entity. `feature_service` names a served model: its online features.
//! The answer has `metadata.feature_names` (the join keys first) and one `results` entry per
//! name with `values`,
//! `statuses` (`PRESENT`, `NULL_VALUE`, `OUTSIDE_MAX_AGE`, `NOT_FOUND`) and
//! `event_timestamps`.

use bytes::Bytes;
use hyper::StatusCode;
use hyper::body::Body;
use serde_json::{Value, json};

use super::HttpState;
use super::body::{BodyHead, read_body};
use super::response::{Resp, json_response};
use crate::core::ApiError;
use vane_protocol::KeyColumn;

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

pub(super) async fn read<B>(state: &HttpState, head: BodyHead, body: B) -> Result<Resp, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let bytes = read_body(
        head,
        body,
        state.max_body_bytes,
        state.core.limits.body_read_timeout,
    )
    .await?;
    let req: Request = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid feature request: {e}")))?;
    let entities = entity_columns(&req.entities)?;
    let n = entities.first().map_or(0, |(_, c)| c.len());
    let mut refs: Vec<(String, String)> = Vec::new();
    if let Some(service) = &req.feature_service {
        let m = state.core.lookup(service, None)?;
        let online = m.schema.signature.online.as_ref().ok_or_else(|| {
            ApiError::BadRequest(format!("model {service:?} reads no online features"))
        })?;
        if let Some(k) = online
            .keys
            .iter()
            .find(|k| !entities.iter().any(|(n, _)| *n == k.name))
        {
            return Err(ApiError::BadRequest(format!(
                "model {service:?} is keyed by {}; field `entities` lacks {:?}",
                online.key_names(),
                k.name
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
    let mut names: Vec<String> = entities.iter().map(|(k, _)| k.clone()).collect();
    let mut results: Vec<Value> = entities
        .iter()
        .map(|(_, c)| {
            let values = match c {
                KeyColumn::Int(v) => json!(v),
                KeyColumn::Str(v) => json!(v),
            };
            json!({
                "values": values,
                "statuses": vec!["PRESENT"; n],
                "event_timestamps": vec!["1970-01-01T00:00:00Z"; n],
            })
        })
        .collect();
    let columns = state.core.read_features(&refs, entities).await?;
    names.extend(refs.iter().map(|(v, f)| {
        if req.full_feature_names {
            format!("{v}__{f}")
        } else {
            f.clone()
        }
    }));
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

/// `entities` as typed key columns of one length: integers (INT64 keys) or strings (STRING
/// keys).
fn entity_columns(
    entities: &serde_json::Map<String, Value>,
) -> Result<Vec<(String, KeyColumn)>, ApiError> {
    if entities.is_empty() {
        return Err(ApiError::BadRequest(
            "field `entities` must name the join keys with their values, e.g. {\"applicant_id\": [1, 2]}".into(),
        ));
    }
    let mut out: Vec<(String, KeyColumn)> = Vec::with_capacity(entities.len());
    for (key, values) in entities {
        let values = values.as_array().ok_or_else(|| {
            ApiError::BadRequest(format!("entities.{key} must be a list of key values"))
        })?;
        if values.len() > MAX_ENTITIES {
            return Err(ApiError::BadRequest(format!(
                "entities.{key}: {} entities; at most {MAX_ENTITIES} per request",
                values.len()
            )));
        }
        let col = if values.first().is_some_and(Value::is_string) {
            let strs = values.iter().enumerate().map(|(i, v)| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "entities.{key}[{i}] is {v}, not a string like the first"
                    ))
                })
            });
            KeyColumn::Str(strs.collect::<Result<_, _>>()?)
        } else {
            let ints = values.iter().enumerate().map(|(i, v)| {
                v.as_i64().ok_or_else(|| {
                    ApiError::BadRequest(format!("entities.{key}[{i}] is {v}, not an integer id"))
                })
            });
            KeyColumn::Int(ints.collect::<Result<_, _>>()?)
        };
        if let Some((first, c)) = out.first()
            && c.len() != col.len()
        {
            return Err(ApiError::BadRequest(format!(
                "entities.{key} has {} values but entities.{first} has {}; give one value per entity for each key",
                col.len(),
                c.len()
            )));
        }
        out.push((key.clone(), col));
    }
    Ok(out)
}
