//! `/tokens`: API tokens (admins only). A token is shown once, when it is created; only its
//! hash is stored.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiJson, check_text, path_id};
use crate::domain::Role;
use crate::http::AppState;
use crate::http::auth::{Caller, hash_token, new_token};
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    /// The secret; shown only now.
    pub token: String,
    #[serde(flatten)]
    pub info: ApiToken,
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

/// Creates a token (shared by the API and `telebot token create`).
pub async fn issue(
    store: &crate::store::Store,
    name: &str,
    role: Role,
    agent_id: Option<i64>,
    actor: &str,
) -> Result<NewToken, ApiError> {
    check_text("name", name, 1, 64)?;
    match (role, agent_id) {
        (Role::Agent, None) => {
            return Err(ApiError::invalid(
                "agent_id",
                "an agent token needs the agent it acts as",
            ));
        }
        (Role::Agent, Some(id)) => {
            store
                .agent(id)
                .await
                .map_err(|_| ApiError::invalid("agent_id", "no such agent"))?;
        }
        (_, Some(_)) => {
            return Err(ApiError::invalid(
                "agent_id",
                "only agent tokens name an agent",
            ));
        }
        _ => {}
    }
    let token = new_token();
    let info = store
        .create_token(name, role, &hash_token(&token), agent_id, actor)
        .await?;
    Ok(NewToken { token, info })
}

#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = TokenBody,
    responses((status = 201, body = NewToken), (status = 401), (status = 403), (status = 422)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    caller.require(&[Role::Admin])?;
    let created = issue(
        &app.store,
        &body.name,
        body.role,
        body.agent_id,
        &caller.actor(),
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
    withdraw(&app.store, id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes token `id` at once, ends the dashboard sessions opened with it and records who did
/// it; shared by the API and `telebot token revoke`.
pub async fn withdraw(
    store: &crate::store::Store,
    id: i64,
    actor: &str,
) -> Result<ApiToken, ApiError> {
    let token = store.revoke_token(id, actor).await?;
    store.end_sessions_of(&format!("token:{id}")).await?;
    Ok(token)
}
