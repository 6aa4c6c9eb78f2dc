//! `/tokens`: API tokens (admins only). A token is shown once, when it is created; only its
//! hash is stored.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiJson, path_id};
use crate::accounts::NewToken;
use crate::domain::Role;
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::store::ApiToken;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    pub name: String,
    pub role: Role,
    /// Required for the agent role: the agent this token acts as.
    #[serde(default)]
    pub agent_id: Option<i64>,
}

#[utoipa::path(get, path = "/tokens", tag = "tokens",
    responses((status = 200, body = Vec<ApiToken>), (status = 401), (status = 403)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ApiToken>>, ApiError> {
    caller.require(&[Role::Admin])?;
    Ok(Json(app.store.list_tokens().await?))
}

#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = TokenBody,
    responses((status = 201, body = NewToken), (status = 401), (status = 403), (status = 422)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    caller.require(&[Role::Admin])?;
    let created = crate::accounts::issue_token(
        &app.store,
        &body.name,
        body.role,
        body.agent_id,
        &caller.audit_name(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens", params(("id" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Admin])?;
    let id = path_id(&id, "id")?;
    crate::accounts::revoke_token(&app.store, id, &caller.audit_name()).await?;
    Ok(StatusCode::NO_CONTENT)
}
