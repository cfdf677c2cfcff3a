//! The one place where errors become HTTP statuses.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};

use crate::batcher::JobError;
use crate::metrics::Outcome;

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
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed(..) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Overloaded { .. } | ApiError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::DeadlineExceeded(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

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

    /// `{"error": "..."}` with the status and, where they apply, `Retry-After` / `Allow`.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let status = self.status();
        let body = serde_json::to_vec(&serde_json::json!({ "error": self.to_string() }))
            .unwrap_or_default();
        let mut builder = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json");
        match &self {
            ApiError::Overloaded { retry_after_s, .. } => {
                builder = builder.header(header::RETRY_AFTER, retry_after_s.to_string());
            }
            ApiError::Busy(_) => builder = builder.header(header::RETRY_AFTER, "1"),
            // The rest of the body was never read: the connection cannot carry another request.
            ApiError::RequestTimeout(_) => builder = builder.header(header::CONNECTION, "close"),
            ApiError::MethodNotAllowed(_, allow) => {
                builder = builder.header(header::ALLOW, *allow);
            }
            ApiError::Unauthorized(_) => {
                builder = builder.header(header::WWW_AUTHENTICATE, "Bearer");
            }
            _ => {}
        }
        builder
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_headers() {
        let r = ApiError::Overloaded {
            model: "m".into(),
            retry_after_s: 1,
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = ApiError::MethodNotAllowed("no".into(), "GET").into_response();
        assert_eq!(r.headers()[header::ALLOW], "GET");
        assert_eq!(
            ApiError::PayloadTooLarge("x".into()).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            ApiError::DeadlineExceeded("x".into()).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        let r = ApiError::Busy("x".into()).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = ApiError::RequestTimeout("x".into()).into_response();
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(r.headers()[header::CONNECTION], "close");
    }
}
