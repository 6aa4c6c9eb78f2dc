//! `/agents` and `/payouts`: resellers, their referral links, commissions and payouts.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiJson, ApiQuery, Listing, PageParams, check_text, path_id};
use crate::domain::agent::{new_code, referral_link};
use crate::domain::{AgentStatus, Role, TronAddress};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::store::{Agent, AgentStats, AgentUpdate, Commission, NewAgent, Payout};

const OPERATORS: &[Role] = &[Role::Admin, Role::Operator];
const SELF_OR_OPERATORS: &[Role] = &[Role::Admin, Role::Operator, Role::Agent];

/// What agents may see and do with their tokens; all granted unless an operator narrows them.
pub const PERMISSIONS: &[&str] = &["view_referrals", "view_orders", "request_payouts"];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentBody {
    pub name: String,
    /// Referral code (3 to 32 lowercase letters, digits or underscores); generated if left out.
    #[serde(default)]
    pub code: Option<String>,
    /// Commission per paid order in basis points (100 = 1%).
    pub commission_bps: u32,
    /// The agent's Telegram user, if any.
    #[serde(default)]
    pub user_id: Option<i64>,
    #[serde(default)]
    pub payout_address: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentChange {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub commission_bps: Option<u32>,
    /// `active`, `suspended` or `rejected`.
    #[serde(default)]
    pub status: Option<String>,
    /// Any of `view_referrals`, `view_orders`, `request_payouts`.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    #[serde(default)]
    pub payout_address: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    #[serde(flatten)]
    pub agent: Agent,
    /// `https://t.me/<bot>?start=ref_<code>`
    pub referral_link: String,
    pub stats: AgentStats,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AgentQuery {
    /// `pending`, `active`, `suspended` or `rejected`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutBody {
    /// TRON address to pay to; the agent's saved payout address when left out.
    #[serde(default)]
    pub address: Option<String>,
    /// Which commissions: `USDT` (the default) or `XTR` (earned on Telegram Stars sales, in
    /// whole Stars). One payout pays one currency.
    #[serde(default)]
    pub currency: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutDecision {
    /// `approved`, `rejected` or `paid`.
    pub status: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PayoutQuery {
    /// `requested`, `approved`, `rejected` or `paid`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

fn parse_status(s: &str) -> Result<AgentStatus, ApiError> {
    s.parse()
        .map_err(|_| ApiError::invalid("status", "pending, active, suspended or rejected"))
}

fn check_code(code: &str) -> Result<(), ApiError> {
    if code.len() < 3
        || code.len() > 32
        || !code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(ApiError::invalid(
            "code",
            "3 to 32 lowercase letters, digits or underscores",
        ));
    }
    Ok(())
}

fn check_address(field: &str, address: &str) -> Result<(), ApiError> {
    TronAddress::parse(address)
        .map(|_| ())
        .map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// The agent a caller may act on: any for operators, only itself for an agent token.
fn allowed(
    caller: &Caller,
    agent_id: i64,
    permission: Option<&str>,
    agent: &Agent,
) -> Result<(), ApiError> {
    caller.require(SELF_OR_OPERATORS)?;
    if caller.role == Role::Agent {
        if caller.agent_id != Some(agent_id) {
            return Err(ApiError::not_found("agent"));
        }
        if let Some(p) = permission {
            let granted: Vec<String> = serde_json::from_str(&agent.permissions).unwrap_or_default();
            if !granted.iter().any(|g| g == p) {
                return Err(ApiError::forbidden(format!(
                    "this agent lacks the {p} permission"
                )));
            }
        }
    }
    Ok(())
}

async fn view(app: &AppState, agent: Agent) -> Result<AgentView, ApiError> {
    let stats = app.store.agent_stats(agent.id).await?;
    Ok(AgentView {
        referral_link: referral_link(&app.config.telegram.bot_username, &agent.code),
        stats,
        agent,
    })
}

#[utoipa::path(get, path = "/agents", tag = "agents", params(AgentQuery),
    responses((status = 200, body = Listing<Agent>), (status = 401), (status = 403), (status = 422)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AgentQuery>,
) -> Result<Json<Listing<Agent>>, ApiError> {
    caller.require(SELF_OR_OPERATORS)?;
    let page = PageParams {
        limit: q.limit,
        offset: q.offset,
    }
    .page()?;
    let status = q.status.as_deref().map(parse_status).transpose()?;
    if caller.role == Role::Agent {
        let own = caller
            .agent_id
            .ok_or_else(|| ApiError::forbidden("this agent token is not bound to an agent"))?;
        let me = app.store.agent(own).await?;
        let items = if status.is_none_or(|s| s == me.status) {
            vec![me]
        } else {
            vec![]
        };
        return Ok(Json(Listing::new(items, page)));
    }
    Ok(Json(Listing::new(
        app.store.list_agents(status, page).await?,
        page,
    )))
}

#[utoipa::path(post, path = "/agents", tag = "agents", request_body = AgentBody,
    responses((status = 201, body = AgentView), (status = 401), (status = 403), (status = 409), (status = 422)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AgentBody>,
) -> Result<(StatusCode, Json<AgentView>), ApiError> {
    caller.require(OPERATORS)?;
    check_text("name", &body.name, 1, 64)?;
    if body.commission_bps > 10_000 {
        return Err(ApiError::invalid("commission_bps", "0 to 10000 (100%)"));
    }
    let code = match body.code {
        Some(c) => {
            check_code(&c)?;
            c
        }
        None => new_code(),
    };
    if let Some(a) = &body.payout_address {
        check_address("payout_address", a)?;
    }
    if let Some(uid) = body.user_id {
        app.store
            .user(uid)
            .await
            .map_err(|_| ApiError::invalid("user_id", "no such user"))?;
    }
    let agent = app
        .store
        .create_agent(
            &NewAgent {
                user_id: body.user_id,
                name: body.name,
                code,
                commission_bps: body.commission_bps,
                status: AgentStatus::Active,
            },
            &caller.audit_name(),
        )
        .await?;
    let agent = match body.payout_address {
        Some(address) => {
            let change = AgentUpdate {
                payout_address: Some(address),
                ..Default::default()
            };
            app.store
                .update_agent(agent.id, &change, &caller.audit_name())
                .await?
                .1
        }
        None => agent,
    };
    Ok((StatusCode::CREATED, Json(view(&app, agent).await?)))
}

#[utoipa::path(get, path = "/agents/{id}", tag = "agents", params(("id" = i64, Path)),
    responses((status = 200, body = AgentView), (status = 401), (status = 403), (status = 404)))]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    let id = path_id(&id, "id")?;
    let agent = app.store.agent(id).await?;
    allowed(&caller, id, None, &agent)?;
    Ok(Json(view(&app, agent).await?))
}

#[utoipa::path(put, path = "/agents/{id}", tag = "agents", params(("id" = i64, Path)), request_body = AgentChange,
    responses((status = 200, body = AgentView), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AgentChange>,
) -> Result<Json<AgentView>, ApiError> {
    caller.require(OPERATORS)?;
    let id = path_id(&id, "id")?;
    app.store.agent(id).await?;
    if let Some(name) = &body.name {
        check_text("name", name, 1, 64)?;
    }
    if body.commission_bps.is_some_and(|b| b > 10_000) {
        return Err(ApiError::invalid("commission_bps", "0 to 10000 (100%)"));
    }
    if let Some(perms) = &body.permissions
        && let Some(bad) = perms.iter().find(|p| !PERMISSIONS.contains(&p.as_str()))
    {
        return Err(ApiError::invalid(
            "permissions",
            format!("unknown permission {bad:?}"),
        ));
    }
    if let Some(a) = &body.payout_address {
        check_address("payout_address", a)?;
    }
    let change = AgentUpdate {
        commission_bps: body.commission_bps,
        status: body.status.as_deref().map(parse_status).transpose()?,
        permissions: body
            .permissions
            .map(|p| serde_json::to_string(&p).unwrap_or_default()),
        payout_address: body.payout_address,
        name: body.name,
    };
    let (_, after) = app
        .store
        .update_agent(id, &change, &caller.audit_name())
        .await?;
    Ok(Json(view(&app, after).await?))
}

#[utoipa::path(get, path = "/agents/{id}/commissions", tag = "agents", params(("id" = i64, Path), PageParams),
    responses((status = 200, body = Listing<Commission>), (status = 401), (status = 403), (status = 404)))]
pub async fn commissions(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<Listing<Commission>>, ApiError> {
    let id = path_id(&id, "id")?;
    let agent = app.store.agent(id).await?;
    allowed(&caller, id, None, &agent)?;
    let page = p.page()?;
    Ok(Json(Listing::new(
        app.store.commissions(id, page).await?,
        page,
    )))
}

#[utoipa::path(get, path = "/agents/{id}/payouts", tag = "agents", params(("id" = i64, Path), PageParams),
    responses((status = 200, body = Listing<Payout>), (status = 401), (status = 403), (status = 404)))]
pub async fn payouts_of_agent(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<Listing<Payout>>, ApiError> {
    let id = path_id(&id, "id")?;
    let agent = app.store.agent(id).await?;
    allowed(&caller, id, None, &agent)?;
    let page = p.page()?;
    Ok(Json(Listing::new(
        app.store.payouts(Some(id), None, page).await?,
        page,
    )))
}

#[utoipa::path(post, path = "/agents/{id}/payouts", tag = "agents", params(("id" = i64, Path)), request_body = PayoutBody,
    responses((status = 201, body = Payout, description = "A payout of every available commission"), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn request_payout(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PayoutBody>,
) -> Result<(StatusCode, Json<Payout>), ApiError> {
    let id = path_id(&id, "id")?;
    let agent = app.store.agent(id).await?;
    allowed(&caller, id, Some("request_payouts"), &agent)?;
    if agent.status != AgentStatus::Active {
        return Err(ApiError::conflict(format!("the agent is {}", agent.status)));
    }
    let address = body
        .address
        .or(agent.payout_address.clone())
        .ok_or_else(|| ApiError::invalid("address", "no payout address given or saved"))?;
    check_address("address", &address)?;
    let currency = match body.currency.as_deref() {
        None | Some("USDT") => crate::domain::tron::TOKEN,
        Some("XTR") => crate::domain::stars::CURRENCY,
        Some(_) => return Err(ApiError::invalid("currency", "USDT or XTR")),
    };
    match app
        .store
        .request_payout(id, &address, currency, &caller.audit_name())
        .await?
    {
        Some(p) => Ok((StatusCode::CREATED, Json(p))),
        None => Err(ApiError::conflict(
            "no commission is available for payout yet",
        )),
    }
}

#[utoipa::path(get, path = "/payouts", tag = "agents", params(PayoutQuery),
    responses((status = 200, body = Listing<Payout>), (status = 401), (status = 403), (status = 422)))]
pub async fn list_payouts(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PayoutQuery>,
) -> Result<Json<Listing<Payout>>, ApiError> {
    caller.require(OPERATORS)?;
    let page = PageParams {
        limit: q.limit,
        offset: q.offset,
    }
    .page()?;
    if let Some(s) = &q.status
        && !matches!(s.as_str(), "requested" | "approved" | "rejected" | "paid")
    {
        return Err(ApiError::invalid(
            "status",
            "requested, approved, rejected or paid",
        ));
    }
    Ok(Json(Listing::new(
        app.store.payouts(None, q.status.as_deref(), page).await?,
        page,
    )))
}

#[utoipa::path(put, path = "/payouts/{id}", tag = "agents", params(("id" = i64, Path)), request_body = PayoutDecision,
    responses((status = 200, body = Payout), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn decide_payout(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PayoutDecision>,
) -> Result<Json<Payout>, ApiError> {
    caller.require(OPERATORS)?;
    let id = path_id(&id, "id")?;
    if !matches!(body.status.as_str(), "approved" | "rejected" | "paid") {
        return Err(ApiError::invalid("status", "approved, rejected or paid"));
    }
    let (_, after) = app
        .store
        .decide_payout(id, &body.status, &caller.audit_name())
        .await?;
    Ok(Json(after))
}
