use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Every failure a client can see. Internal details go to the log, not the body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedFormat(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The same refusal, saying where it applies ("sensor 17: ..."); internal
    /// errors stay as they are (their detail never reaches the client).
    pub fn context(self, place: &str) -> Self {
        let at = |m: String| format!("{place}: {m}");
        match self {
            ApiError::BadRequest(m) => ApiError::BadRequest(at(m)),
            ApiError::NotFound(m) => ApiError::NotFound(at(m)),
            ApiError::Unauthorized(m) => ApiError::Unauthorized(at(m)),
            ApiError::Unavailable(m) => ApiError::Unavailable(at(m)),
            ApiError::TooLarge(m) => ApiError::TooLarge(at(m)),
            ApiError::UnsupportedFormat(m) => ApiError::UnsupportedFormat(at(m)),
            ApiError::Conflict(m) => ApiError::Conflict(at(m)),
            ApiError::Forbidden(m) => ApiError::Forbidden(at(m)),
            internal @ ApiError::Internal(_) => internal,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "InvalidParameterValue"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
            ApiError::UnsupportedFormat(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "ServerError")
            }
        };
        let body = serde_json::json!({"code": code, "description": self.to_string()});
        (status, Json(body)).into_response()
    }
}
