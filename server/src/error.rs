//! HTTP error responses. Every failure is `{"error","message"}` (plus `conflict` or
//! `source_id`/`replaced_by_source_id`) with the reference server's status and code.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use oversqlite_protocol::{ErrorBody, PushConflictDetails};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: ErrorBody::new(code, message),
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message)
    }

    pub fn conflict(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(409, code, message)
    }

    pub fn source_retired(source_id: &str, replaced_by: Option<String>) -> ApiError {
        let mut error = ApiError::conflict(
            oversqlite_protocol::codes::SOURCE_RETIRED,
            format!("source {source_id} is retired"),
        );
        error.body.source_id = Some(source_id.to_string());
        error.body.replaced_by_source_id = replaced_by.filter(|s| !s.is_empty());
        error
    }

    pub fn push_conflict(message: String, details: PushConflictDetails) -> ApiError {
        let mut error = ApiError::conflict(oversqlite_protocol::codes::PUSH_CONFLICT, message);
        error.body.conflict = Some(details);
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// Outcome of a service operation: a protocol error the client must see, or an internal
/// fault that the route reports as `500 <op>_failed`.
#[derive(Debug)]
pub enum Fail {
    Api(Box<ApiError>),
    Internal(String),
}

impl Fail {
    pub fn into_api(self, failed_code: &str, failed_message: &str) -> ApiError {
        match self {
            Fail::Api(error) => *error,
            Fail::Internal(detail) => {
                tracing::error!(code = failed_code, detail = %detail, "internal failure");
                ApiError::new(500, failed_code, failed_message)
            }
        }
    }
}

impl From<ApiError> for Fail {
    fn from(error: ApiError) -> Fail {
        Fail::Api(Box::new(error))
    }
}

impl From<rusqlite::Error> for Fail {
    fn from(error: rusqlite::Error) -> Fail {
        Fail::Internal(format!("store: {error}"))
    }
}

impl From<serde_json::Error> for Fail {
    fn from(error: serde_json::Error) -> Fail {
        Fail::Internal(format!("json: {error}"))
    }
}

pub type ServiceResult<T> = Result<T, Fail>;
