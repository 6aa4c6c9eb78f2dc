//! `POST /telegram/webhook`: updates pushed by Telegram in webhook mode. Telegram echoes the
//! secret token registered with the webhook; a call without it is refused.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::AppState;
use super::error::ApiError;

pub async fn webhook(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let given = headers
        .get("x-telegram-bot-api-secret-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let expected = app.webhook_secret.expose();
    if !super::auth::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::unauthorized("wrong or missing secret token"));
    }
    let update: teloxide::types::Update = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("malformed", format!("not a Telegram update: {e}")))?;
    app.bot
        .deliver(update)
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(StatusCode::OK)
}
