//! `POST /internal/payments/notify`: the signed payment webhook. The signature is checked over
//! the raw body before anything is parsed, and the body is validated completely before anything
//! is stored, so a refused request leaves no trace in the database.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::AppState;
use super::error::ApiError;
use crate::domain::Ingested;
use crate::domain::now_ms;
use crate::payments::webhook::{NotifyRequest, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify};

pub async fn notify(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Ingested>, ApiError> {
    let secret = &app.config.security.webhook_secret;
    if !secret.is_set() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhook_disabled",
            "set security.webhook_secret to enable this endpoint",
        ));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let window = i64::try_from(app.config.security.webhook_replay_window.as_secs()).unwrap_or(300);
    verify(
        secret.expose(),
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        now_ms() / 1000,
        window,
    )
    .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "bad_signature", e.to_string()))?;
    let request: NotifyRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "malformed",
            format!("body is not a valid notification: {e}"),
        )
    })?;
    let transfer = request
        .into_transfer()
        .map_err(|e| ApiError::bad_request("invalid_field", e.message).with_field(e.field))?;
    let ingested = app.payments.ingest(&transfer).await.map_err(|e| match e {
        crate::messages::scanners::PaymentsError::Store(crate::store::StoreError::Conflict(m)) => {
            ApiError::conflict(m)
        }
        other => ApiError::internal(other),
    })?;
    Ok(Json(ingested))
}
