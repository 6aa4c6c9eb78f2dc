//! `/users`: Telegram customers.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::{ApiJson, ApiQuery, Listing, PageParams, check_text, path_id};
use crate::domain::Role;
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::store::{TelegramProfile, User, UserFilter};

const READERS: &[Role] = &[Role::Admin, Role::Operator, Role::Service, Role::Agent];
const WRITERS: &[Role] = &[Role::Admin, Role::Operator, Role::Service];

/// A customer profile, created or updated by Telegram id.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    pub telegram_id: i64,
    #[serde(default)]
    pub username: Option<String>,
    pub first_name: String,
    /// `en` or `zh`.
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Only users referred by this agent.
    pub agent_id: Option<i64>,
    pub username: Option<String>,
    /// Only the user with this Telegram id.
    pub telegram_id: Option<i64>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/users", tag = "users", params(UserQuery),
    responses((status = 200, body = Listing<User>), (status = 401), (status = 403), (status = 422)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> Result<Json<Listing<User>>, ApiError> {
    caller.require(READERS)?;
    let page = PageParams {
        limit: q.limit,
        offset: q.offset,
    }
    .page()?;
    let agent_id = caller
        .listing_agent(
            &app.store,
            "view_referrals",
            q.agent_id,
            "an agent sees only its own referrals",
        )
        .await?;
    let filter = UserFilter {
        agent_id,
        username: q.username,
        telegram_id: q.telegram_id,
    };
    Ok(Json(Listing::new(
        app.store.list_users(&filter, page).await?,
        page,
    )))
}

#[utoipa::path(get, path = "/users/{id}", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = User), (status = 401), (status = 403), (status = 404)))]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    caller.require(READERS)?;
    let user = app.store.user(path_id(&id, "id")?).await?;
    if let Some(own) = caller.agent_scope(&app.store, "view_referrals").await?
        && user.referred_by_agent_id != Some(own)
    {
        return Err(ApiError::not_found("user"));
    }
    Ok(Json(user))
}

#[utoipa::path(post, path = "/users", tag = "users", request_body = UserBody,
    responses((status = 200, body = User), (status = 401), (status = 403), (status = 422)))]
pub async fn upsert(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UserBody>,
) -> Result<Json<User>, ApiError> {
    caller.require(WRITERS)?;
    if !(1..1 << 52).contains(&body.telegram_id) {
        return Err(ApiError::invalid(
            "telegram_id",
            "a positive Telegram user id",
        ));
    }
    check_text("first_name", &body.first_name, 1, 128)?;
    if let Some(u) = &body.username
        && (u.len() < 3
            || u.len() > 32
            || !u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(ApiError::invalid(
            "username",
            "3 to 32 letters, digits or underscores",
        ));
    }
    let default = app.config.telegram.default_language.code();
    let language = body.language.as_deref();
    if language.is_some_and(|l| l != "en" && l != "zh") {
        return Err(ApiError::invalid("language", "en or zh"));
    }
    let profile = TelegramProfile {
        telegram_id: body.telegram_id,
        username: body.username,
        first_name: body.first_name,
        language: default.to_owned(),
    };
    let (user, _) = app
        .store
        .save_user_profile(&profile, language, &caller.audit_name())
        .await?;
    Ok(Json(user))
}
