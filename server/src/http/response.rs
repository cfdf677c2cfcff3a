//! The one place where errors become HTTP statuses and bodies.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};

use crate::core::ApiError;

pub type Resp = Response<Full<Bytes>>;

/// A JSON body with `status`.
pub fn json_response(status: StatusCode, body: serde_json::Value) -> Resp {
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

pub fn status(e: &ApiError) -> StatusCode {
    match e {
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

/// `{"error": "..."}` with the status and, where they apply, `Retry-After` / `Allow`.
pub fn error_response(e: ApiError) -> Resp {
    let status = status(&e);
    let body =
        serde_json::to_vec(&serde_json::json!({ "error": e.to_string() })).unwrap_or_default();
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    match &e {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_headers() {
        let r = error_response(ApiError::Overloaded {
            model: "m".into(),
            retry_after_s: 1,
        });
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = error_response(ApiError::MethodNotAllowed("no".into(), "GET"));
        assert_eq!(r.headers()[header::ALLOW], "GET");
        assert_eq!(
            status(&ApiError::PayloadTooLarge("x".into())),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status(&ApiError::DeadlineExceeded("x".into())),
            StatusCode::GATEWAY_TIMEOUT
        );
        let r = error_response(ApiError::Busy("x".into()));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = error_response(ApiError::RequestTimeout("x".into()));
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(r.headers()[header::CONNECTION], "close");
    }
}
