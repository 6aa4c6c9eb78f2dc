//! One error type for every HTTP answer that is not a success, with one stable JSON shape:
//! `{"error": {"code": "...", "message": "...", "field": "..."}}`. Server faults are logged and
//! answered without internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::messages::orders::OrderError;
use crate::store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A field that breaks its rules (422).
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).with_field(field)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// A fault on our side: logged in full, answered in general terms.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; it has been logged",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": { "code": self.code, "message": self.message, "field": self.field }
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(s),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::DuplicateStock(d) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "duplicate_items",
                d.to_string(),
            )
            .with_field("items"),
            StoreError::Transition(t) => {
                ApiError::new(StatusCode::CONFLICT, "illegal_transition", t.to_string())
            }
            StoreError::AgentTransition(t) => {
                ApiError::new(StatusCode::CONFLICT, "illegal_transition", t.to_string())
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::accounts::AccessError> for ApiError {
    fn from(e: crate::accounts::AccessError) -> Self {
        use crate::accounts::AccessError;
        match e {
            AccessError::Invalid { field, message } => ApiError::invalid(field, message),
            AccessError::NoSuchToken(_) => ApiError::not_found("live token"),
            AccessError::Store(e) => e.into(),
            e @ AccessError::Hash(_) => ApiError::internal(e),
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::Busy { retry_at } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("all payable amounts are in use; retry after {retry_at}"),
            ),
            OrderError::NotFound => ApiError::not_found("order"),
            OrderError::NotPending(s) => ApiError::new(
                StatusCode::CONFLICT,
                "not_pending",
                format!("the order is {s}"),
            ),
            OrderError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            OrderError::Unavailable(e) => ApiError::unavailable(e.to_string()),
            OrderError::Store(m) => ApiError::internal(m),
        }
    }
}
