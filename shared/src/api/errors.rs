//! The API's refusals and failures, each a status, a stable code and a sentence, sent as JSON.
use http::{header, HeaderValue, Method, StatusCode};

use super::{json_response, ApiResponse};
use crate::handler::HandlerError;
use crate::ports::StoreError;

#[derive(Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `Allow` for 405.
    allow: Option<Method>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    pub fn bad_request(message: String) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: String) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: String) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such resource: {what}"),
        )
    }

    pub fn no_room(room: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_room",
            format!("room {room:?} has no connections, snapshot or updates"),
        )
    }

    pub fn method_not_allowed(allowed: &Method) -> ApiError {
        ApiError {
            allow: Some(allowed.clone()),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this resource answers {allowed} only"),
            )
        }
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is over the limit of {limit} bytes (YLAMBDA_MAX_ASSEMBLED_BYTES)"),
        )
    }

    pub fn not_streaming() -> ApiError {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_streaming",
            "the event stream needs a server that streams responses (ylambda dev, or a \
             Function URL with response streaming)",
        )
    }

    pub fn into_response(self) -> ApiResponse {
        let mut response = json_response(
            self.status,
            &serde_json::json!({"error": self.code, "message": self.message}),
        );
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(allow) = self
            .allow
            .and_then(|m| HeaderValue::from_str(m.as_str()).ok())
        {
            headers.insert(header::ALLOW, allow);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::BadCursor(why) => ApiError::bad_request(why),
            other => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backend_unavailable",
                other.to_string(),
            ),
        }
    }
}

impl From<HandlerError> for ApiError {
    fn from(error: HandlerError) -> ApiError {
        match error {
            HandlerError::BadRequest(why) => ApiError::bad_request(why),
            HandlerError::Store(e) => e.into(),
            HandlerError::Refused { status, reason } => ApiError::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
                "refused",
                reason,
            ),
            HandlerError::PolicyViolation(why) => ApiError::forbidden(why),
            other @ HandlerError::Document { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unreadable_document",
                other.to_string(),
            ),
        }
    }
}
