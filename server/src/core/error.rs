//! Every way a request can fail, in the serving core's terms; the HTTP layer maps each to
//! its status in one place (`http::response`).

use vane_protocol::DecodeError;

use super::batcher::JobError;
use crate::telemetry::labels::Outcome;

/// Every way a request can fail, as the client sees it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    MethodNotAllowed(String, &'static str),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("server overloaded: the queue of model {model:?} is full; retry shortly")]
    Overloaded { model: String, retry_after_s: u32 },
    /// Too much in flight elsewhere than a model queue (admission, control); retry in 1 s.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    NotReady(String),
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The `outcome` label for metrics.
    pub fn outcome(&self) -> Outcome {
        match self {
            ApiError::PayloadTooLarge(_) => Outcome::TooLarge,
            ApiError::Overloaded { .. } | ApiError::Busy(_) => Outcome::Rejected,
            ApiError::DeadlineExceeded(_) => Outcome::Timeout,
            ApiError::Internal(_) | ApiError::NotReady(_) => Outcome::Error,
            _ => Outcome::BadRequest,
        }
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::DeadlineExceeded { .. } => ApiError::DeadlineExceeded(e.to_string()),
            JobError::Backend(b) => ApiError::Internal(b.to_string()),
        }
    }
}

impl From<DecodeError> for ApiError {
    fn from(e: DecodeError) -> Self {
        ApiError::BadRequest(e.0)
    }
}
