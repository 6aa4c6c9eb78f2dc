//! `/orders`: create purchases, consultations and top-ups, list and read them, and move them
//! along the state machine (the customer is told through the bot).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiJson, ApiQuery, Listing, PageParams, check_text, path_id};
use crate::domain::order::{check_topup, product_order_price};
use crate::domain::{Money, OrderRuleError, OrderStatus, ProductKind, Role};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::store::{NewOrder, Order, OrderFilter};

const READERS: &[Role] = &[Role::Admin, Role::Operator, Role::Service, Role::Agent];
const CREATORS: &[Role] = &[Role::Admin, Role::Operator, Role::Service];
const EDITORS: &[Role] = &[Role::Admin, Role::Operator];

/// A new order: a product (with a quantity, and a request text for services) or a top-up.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderBody {
    pub user_id: i64,
    /// The product; leave out for a top-up.
    #[serde(default)]
    pub product_id: Option<i64>,
    /// Items of a digital product (1 to 100, default 1).
    #[serde(default)]
    pub quantity: Option<i64>,
    /// What the customer asks for (services), up to 1000 characters.
    #[serde(default)]
    pub request_text: Option<String>,
    /// Amount of a top-up, as a decimal string.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub topup_amount: Option<Money>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    pub status: OrderStatus,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    pub status: Option<OrderStatus>,
    pub user_id: Option<i64>,
    pub agent_id: Option<i64>,
    /// Created at or after (Unix ms).
    pub since: Option<i64>,
    /// Created before (Unix ms).
    pub until: Option<i64>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/orders", tag = "orders", params(OrderQuery),
    responses((status = 200, body = Listing<Order>), (status = 401), (status = 403), (status = 422)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<OrderQuery>,
) -> Result<Json<Listing<Order>>, ApiError> {
    caller.require(READERS)?;
    let page = PageParams {
        limit: q.limit,
        offset: q.offset,
    }
    .page()?;
    let agent_id = caller
        .listing_agent(
            &app.store,
            "view_orders",
            q.agent_id,
            "an agent sees only its own referrals' orders",
        )
        .await?;
    let filter = OrderFilter {
        status: q.status,
        user_id: q.user_id,
        agent_id,
        since: q.since,
        until: q.until,
    };
    let orders = app.store.list_orders(&filter, page).await?;
    Ok(Json(Listing::new(
        orders.into_iter().map(|o| as_seen_by(&caller, o)).collect(),
        page,
    )))
}

/// An agent reads its referrals' orders but never what was delivered to them (licence keys,
/// answers to service requests): that belongs to the customer alone.
fn as_seen_by(caller: &Caller, mut order: Order) -> Order {
    if caller.role == Role::Agent {
        order.delivery = None;
    }
    order
}

#[utoipa::path(get, path = "/orders/{id}", tag = "orders", params(("id" = i64, Path)),
    responses((status = 200, body = Order), (status = 401), (status = 404)))]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Order>, ApiError> {
    caller.require(READERS)?;
    let order = app.store.order(path_id(&id, "id")?).await?;
    if let Some(own) = caller.agent_scope(&app.store, "view_orders").await?
        && order.agent_id != Some(own)
    {
        return Err(ApiError::not_found("order"));
    }
    Ok(Json(as_seen_by(&caller, order)))
}

#[utoipa::path(post, path = "/orders", tag = "orders", request_body = OrderBody,
    responses((status = 201, body = Order, description = "The order with its unique payable amount, wallet and deadline"),
        (status = 401), (status = 403), (status = 404), (status = 409), (status = 422), (status = 503, description = "All payable amounts are in use")))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<OrderBody>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    caller.require(CREATORS)?;
    let user = app
        .store
        .user(body.user_id)
        .await
        .map_err(|_| ApiError::invalid("user_id", "no such user"))?;
    let new = match (body.product_id, body.topup_amount) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "topup_amount",
                "give either product_id or topup_amount",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "product_id",
                "give either product_id or topup_amount",
            ));
        }
        (None, Some(amount)) => {
            check_topup(amount).map_err(rule_error)?;
            NewOrder {
                user_id: user.id,
                product_id: None,
                kind: ProductKind::Topup,
                quantity: 1,
                price: amount,
                chain: crate::payments::CHAIN.to_owned(),
                token: crate::payments::TOKEN.to_owned(),
                request_text: None,
            }
        }
        (Some(product_id), None) => {
            let product = app
                .store
                .product(product_id)
                .await
                .map_err(|_| ApiError::invalid("product_id", "no such product"))?;
            let quantity = body.quantity.unwrap_or(1);
            let offer = app.store.offer(&product).await?;
            let price = product_order_price(&offer, quantity).map_err(rule_error)?;
            if let Some(text) = &body.request_text {
                check_text("request_text", text, 1, crate::bot::MAX_REQUEST_CHARS)?;
            }
            NewOrder {
                user_id: user.id,
                product_id: Some(product.id),
                kind: product.kind,
                quantity,
                price,
                chain: crate::payments::CHAIN.to_owned(),
                token: crate::payments::TOKEN.to_owned(),
                request_text: body.request_text,
            }
        }
    };
    let order = app.orders.create(&new, &caller.audit_name()).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

/// The order rules' refusal as the API says it: the field at fault, or a conflict on stock.
fn rule_error(e: OrderRuleError) -> ApiError {
    let field = match e {
        OrderRuleError::NotEnoughStock { .. } => return ApiError::conflict(e.to_string()),
        OrderRuleError::NotOnSale => "product_id",
        OrderRuleError::TopupNeedsAmount | OrderRuleError::TopupOutOfRange => "topup_amount",
        OrderRuleError::QuantityOutOfRange
        | OrderRuleError::QuantityNotOffered
        | OrderRuleError::PriceTooLarge => "quantity",
    };
    ApiError::invalid(field, e.to_string())
}

#[utoipa::path(put, path = "/orders/{id}", tag = "orders", params(("id" = i64, Path)), request_body = StatusBody,
    responses((status = 200, body = Order), (status = 401), (status = 403), (status = 404), (status = 409, description = "The state machine refuses the change"), (status = 422)))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Json<Order>, ApiError> {
    caller.require(EDITORS)?;
    let id = path_id(&id, "id")?;
    let current = app.store.order(id).await?;
    if current.status == OrderStatus::PendingPayment {
        // a pending order belongs to its order actor: it frees the amount into quarantine
        return match body.status {
            OrderStatus::Cancelled => Ok(Json(app.orders.cancel(id, &caller.audit_name()).await?)),
            to => Err(ApiError::new(
                StatusCode::CONFLICT,
                "illegal_transition",
                format!(
                    "an order cannot go from pending_payment to {to} by hand; payments arrive as transfers"
                ),
            )),
        };
    }
    let (_, after) = app
        .store
        .set_order_status(id, body.status, &caller.audit_name())
        .await?;
    Ok(Json(after))
}
