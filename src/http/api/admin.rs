//! `/admin`: subsystems (the supervision tree, restarts) and broadcasts.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiJson, check_text};
use crate::domain::Role;
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::store::{AuditRecord, Broadcast};
use crate::supervision::{SubsystemStatus, SupervisionError};

#[utoipa::path(get, path = "/admin/subsystems", tag = "admin",
    responses((status = 200, body = Vec<SubsystemStatus>), (status = 401), (status = 403)))]
pub async fn subsystems(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<SubsystemStatus>>, ApiError> {
    caller.require(&[Role::Admin, Role::Operator])?;
    Ok(Json(app.registry.list()))
}

#[utoipa::path(post, path = "/admin/subsystems/{name}/restart", tag = "admin",
    params(("name" = String, Path, description = "A subsystem path such as `payments` or `payments/matcher` (slashes may be written as dots)")),
    responses((status = 200, body = SubsystemStatus), (status = 401), (status = 403), (status = 404), (status = 503)))]
pub async fn restart(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<SubsystemStatus>, ApiError> {
    caller.require(&[Role::Admin])?;
    let path = name.replace('.', "/");
    match app.registry.restart(&path, Duration::from_secs(30)).await {
        Ok(()) => {}
        Err(SupervisionError::UnknownSubsystem(_)) => return Err(ApiError::not_found("subsystem")),
        Err(e) => return Err(ApiError::unavailable(e.to_string())),
    }
    app.store
        .audit(AuditRecord::new(
            &caller.actor(),
            "subsystem.restarted",
            "subsystem",
            &path,
        ))
        .await?;
    app.registry
        .status(&path)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("subsystem"))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastBody {
    /// Telegram HTML, up to 4000 characters.
    pub text: String,
}

#[utoipa::path(get, path = "/admin/broadcasts", tag = "admin",
    responses((status = 200, body = Vec<Broadcast>), (status = 401), (status = 403)))]
pub async fn list_broadcasts(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Broadcast>>, ApiError> {
    caller.require(&[Role::Admin, Role::Operator])?;
    Ok(Json(app.store.list_broadcasts(50).await?))
}

#[utoipa::path(post, path = "/admin/broadcasts", tag = "admin", request_body = BroadcastBody,
    responses((status = 201, body = Broadcast), (status = 401), (status = 403), (status = 422)))]
pub async fn create_broadcast(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BroadcastBody>,
) -> Result<(StatusCode, Json<Broadcast>), ApiError> {
    caller.require(&[Role::Admin, Role::Operator])?;
    check_text("text", &body.text, 1, 4000)?;
    Ok((
        StatusCode::CREATED,
        Json(
            app.store
                .create_broadcast(&body.text, &caller.actor())
                .await?,
        ),
    ))
}
