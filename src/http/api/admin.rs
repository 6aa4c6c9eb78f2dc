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
            &caller.audit_name(),
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
    crate::bot::texts::check_telegram_html(&body.text)
        .map_err(|reason| ApiError::invalid("text", reason))?;
    Ok((
        StatusCode::CREATED,
        Json(
            app.store
                .create_broadcast(&body.text, &caller.audit_name())
                .await?,
        ),
    ))
}

#[utoipa::path(get, path = "/admin/overview", tag = "admin",
    responses((status = 200, body = crate::store::Overview), (status = 401), (status = 403)))]
pub async fn overview(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<crate::store::Overview>, ApiError> {
    caller.require(&[Role::Admin, Role::Operator])?;
    Ok(Json(app.store.overview(crate::domain::now_ms()).await?))
}

/// One chain scanner as operators see it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ScannerView {
    pub source: String,
    pub chain: &'static str,
    /// Block time read up to (Unix ms).
    pub position: i64,
    /// Seconds behind now.
    pub lag_seconds: i64,
    /// Latest block (full node) or listing time (TronGrid).
    pub head: Option<i64>,
    pub cursor: Option<i64>,
    pub last_error: Option<String>,
    pub last_ok_at: Option<i64>,
    pub errors: u64,
}

#[utoipa::path(get, path = "/admin/scanners", tag = "admin",
    responses((status = 200, body = Vec<ScannerView>), (status = 401), (status = 403)))]
pub async fn scanners(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ScannerView>>, ApiError> {
    caller.require(&[Role::Admin, Role::Operator])?;
    let now = crate::domain::now_ms();
    Ok(Json(
        app.progress
            .statuses()
            .into_iter()
            .map(|(source, s)| ScannerView {
                source,
                chain: crate::domain::tron::CHAIN,
                position: s.position,
                lag_seconds: (now - s.position).max(0) / 1000,
                head: s.head,
                cursor: s.cursor,
                last_error: s.last_error,
                last_ok_at: s.last_ok_at,
                errors: s.errors,
            })
            .collect(),
    ))
}

/// The bot as operators see it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BotView {
    /// `polling` or `webhook`.
    pub mode: &'static str,
    /// No token: the built-in Telegram simulator answers (demo mode).
    pub simulated: bool,
    pub token_set: bool,
    pub bot_username: String,
    pub sessions_active: Option<usize>,
    /// `demo`, `trongrid`, `fullnode` or `both`.
    pub chain_source: &'static str,
    pub rate_limit_per_minute: u32,
    /// `in-process` or `redis`.
    pub rate_limit_backend: &'static str,
    /// Updates refused by the rate limit since start.
    pub rate_limited: u64,
}

#[utoipa::path(get, path = "/admin/bot", tag = "admin",
    responses((status = 200, body = BotView), (status = 401), (status = 403)))]
pub async fn bot(State(app): State<AppState>, caller: Caller) -> Result<Json<BotView>, ApiError> {
    caller.require(&[Role::Admin, Role::Operator])?;
    let c = &app.config;
    Ok(Json(BotView {
        mode: match c.telegram.mode {
            crate::config::TelegramMode::Polling => "polling",
            crate::config::TelegramMode::Webhook => "webhook",
        },
        simulated: c.telegram.is_simulated(),
        token_set: c.telegram.token.is_set(),
        bot_username: c.telegram.bot_username.clone(),
        sessions_active: app.bot.sessions().await.ok(),
        chain_source: c.tron.source.as_str(),
        rate_limit_per_minute: c.security.rate_limit_per_minute,
        rate_limit_backend: app.limiter.backend(),
        rate_limited: app.limiter.refused(),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DemoPayBody {
    /// The pending order to pay with its exact amount, on the demo chain.
    pub order_id: i64,
}

#[utoipa::path(post, path = "/admin/demo/pay", tag = "admin", request_body = DemoPayBody,
    responses((status = 200, body = crate::domain::Ingested), (status = 401), (status = 403), (status = 404, description = "Not in demo mode"), (status = 409)))]
pub async fn demo_pay(
    State(app): State<AppState>,
    caller: Caller,
    super::ApiJson(body): super::ApiJson<DemoPayBody>,
) -> Result<Json<crate::domain::Ingested>, ApiError> {
    caller.require(&[Role::Admin, Role::Operator])?;
    let demo = app
        .demo_chain
        .clone()
        .ok_or_else(|| ApiError::not_found("demo chain (tron.source is not demo)"))?;
    let order = app
        .store
        .order(body.order_id)
        .await
        .map_err(|_| ApiError::invalid("order_id", "no such order"))?;
    if order.status != crate::domain::OrderStatus::PendingPayment {
        return Err(ApiError::conflict(format!("the order is {}", order.status)));
    }
    let wallet = order.wallet.clone().unwrap_or_default();
    let ingested = demo
        .pay(&wallet, order.payable_amount)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(ApiError::internal)?;
    app.store
        .audit(
            AuditRecord::new(&caller.audit_name(), "demo.paid", "order", order.id)
                .after(&serde_json::json!({"amount": order.payable_amount})),
        )
        .await?;
    Ok(Json(ingested))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountBody {
    /// 3 to 32 letters, digits, dots, dashes or underscores.
    pub username: String,
    /// At least 10 characters.
    pub password: String,
    /// `admin` or `operator`.
    pub role: Role,
}

#[utoipa::path(get, path = "/admin/accounts", tag = "admin",
    responses((status = 200, body = Vec<crate::store::DashboardUser>), (status = 401), (status = 403)))]
pub async fn accounts(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<crate::store::DashboardUser>>, ApiError> {
    caller.require(&[Role::Admin])?;
    Ok(Json(app.store.list_dashboard_users().await?))
}

#[utoipa::path(post, path = "/admin/accounts", tag = "admin", request_body = AccountBody,
    responses((status = 201, body = crate::store::DashboardUser), (status = 401), (status = 403), (status = 422)))]
pub async fn create_account(
    State(app): State<AppState>,
    caller: Caller,
    super::ApiJson(body): super::ApiJson<AccountBody>,
) -> Result<(StatusCode, Json<crate::store::DashboardUser>), ApiError> {
    caller.require(&[Role::Admin])?;
    let user = crate::accounts::set_account(
        &app.store,
        &body.username,
        &body.password,
        Some(body.role),
        &caller.audit_name(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[utoipa::path(post, path = "/admin/broadcasts/{id}/cancel", tag = "admin", params(("id" = i64, Path)),
    responses((status = 200, body = Broadcast), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn cancel_broadcast(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Broadcast>, ApiError> {
    caller.require(&[Role::Admin, Role::Operator])?;
    let id = super::path_id(&id, "id")?;
    let (_, after) = app.store.cancel_broadcast(id, &caller.audit_name()).await?;
    Ok(Json(after))
}
