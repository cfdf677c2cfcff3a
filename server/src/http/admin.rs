//! The repository endpoints: bearer-token checks, and commands queued to the control plane
//! without waiting on it (its queue is bounded).

use hyper::StatusCode;
use hyper::header;
use serde_json::json;
use tokio::sync::oneshot;

use super::HttpState;
use super::response::{Resp, json_response};
use crate::control::Command;
use crate::core::ApiError;

/// Checks `Authorization: Bearer <token>` for the repository endpoints (as Triton's
/// `--http-restricted-api=model-repository:…` does): they make the server poll the registry
/// and load or drop versions, which no anonymous client should trigger.
pub(super) fn authorize(state: &HttpState, headers: &hyper::HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.admin_token else {
        return Err(ApiError::Forbidden(
            "repository control is disabled: start the server with --admin-token".into(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::Unauthorized("missing bearer token (Authorization: Bearer <token>)".into())
        })?;
    // Compare without an early exit so timing does not leak the token's prefix.
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::Forbidden("invalid bearer token".into()))
    }
}

/// Queues a command for the registry watcher without waiting: its queue is bounded.
fn control(state: &HttpState, cmd: Command) -> Result<(), ApiError> {
    let tx = state
        .control
        .get()
        .ok_or_else(|| ApiError::NotReady("the registry watcher is not running yet".into()))?;
    tx.try_send(cmd).map_err(|e| match e {
        crossbeam_channel::TrySendError::Full(_) => {
            ApiError::Busy("the registry watcher has too many commands queued; retry".into())
        }
        crossbeam_channel::TrySendError::Disconnected(_) => {
            ApiError::NotReady("the registry watcher has stopped".into())
        }
    })
}

pub(super) async fn repository_index(state: &HttpState) -> Result<Resp, ApiError> {
    let (tx, rx) = oneshot::channel();
    control(state, Command::Sync(Some(tx)))?;
    let index = rx
        .await
        .map_err(|_| ApiError::Internal("the registry watcher dropped the request".into()))?;
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_value(index).unwrap_or_default(),
    ))
}

pub(super) async fn repository_change(
    state: &HttpState,
    model: &str,
    load: bool,
) -> Result<Resp, ApiError> {
    let dropped = || ApiError::Internal("the registry watcher dropped the request".into());
    if load {
        let (reply, rx) = oneshot::channel();
        control(state, Command::Load(model.to_string(), reply))?;
        let index = rx
            .await
            .map_err(|_| dropped())?
            .map_err(ApiError::NotFound)?;
        Ok(json_response(
            StatusCode::OK,
            json!({ "name": model, "state": "READY", "index": index }),
        ))
    } else {
        let (reply, rx) = oneshot::channel();
        control(state, Command::Unload(model.to_string(), reply))?;
        rx.await
            .map_err(|_| dropped())?
            .map_err(ApiError::NotFound)?;
        Ok(json_response(
            StatusCode::OK,
            json!({ "name": model, "state": "UNLOADED" }),
        ))
    }
}
