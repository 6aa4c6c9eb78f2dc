//! Payment state of orders.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use super::{ApiJson, ApiQuery, Listing, PageParams, path_id};
use crate::domain::{Money, OrderStatus, Role, TransferOutcome, now_ms};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::store::{Order, PayOutcome, Transfer};

/// What `GET /api/v1/payments/{order_id}` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentState {
    pub order_id: i64,
    /// `awaiting_payment`, `confirming`, `checking_chain` (the window has ended and the scanners
    /// still look for a transfer made in time), `paid`, `expired`, `cancelled` or `refunded`.
    pub state: &'static str,
    pub order_status: OrderStatus,
    #[schema(value_type = String)]
    pub price: Money,
    #[schema(value_type = String)]
    pub payable_amount: Money,
    pub chain: String,
    pub token: String,
    pub wallet: Option<String>,
    pub expires_at: i64,
    pub paid_at: Option<i64>,
    pub transfers: Vec<TransferView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TransferView {
    pub txid: String,
    pub log_index: i64,
    #[schema(value_type = String)]
    pub amount: Money,
    pub from: String,
    pub block_time: i64,
    pub confirmed: bool,
    pub outcome: TransferOutcome,
}

impl From<Transfer> for TransferView {
    fn from(t: Transfer) -> Self {
        TransferView {
            txid: t.txid,
            log_index: t.log_index,
            amount: t.amount,
            from: t.from_address,
            block_time: t.block_time,
            confirmed: t.confirmed,
            outcome: t.outcome,
        }
    }
}

#[utoipa::path(get, path = "/payments/{order_id}", tag = "payments", params(("order_id" = i64, Path)),
    responses((status = 200, body = PaymentState), (status = 401), (status = 404), (status = 422)))]
pub async fn payment_of_order(
    State(app): State<AppState>,
    caller: Caller,
    Path(order_id): Path<String>,
) -> Result<Json<PaymentState>, ApiError> {
    let order_id = path_id(&order_id, "order_id")?;
    let order = app.store.order(order_id).await?;
    caller.require(&[Role::Admin, Role::Operator, Role::Service, Role::Agent])?;
    // an agent sees only its own referrals' orders; others look like they do not exist
    if let Some(own) = caller.agent_scope(&app.store, "view_orders").await?
        && order.agent_id != Some(own)
    {
        return Err(ApiError::not_found("order"));
    }
    let mut transfers: Vec<Transfer> = app.store.transfers_of_order(order_id).await?;
    let mut confirming = false;
    if order.status == OrderStatus::PendingPayment
        && let Some(wallet) = &order.wallet
    {
        let seen = app
            .store
            .unconfirmed_transfers_to(wallet, order.payable_amount, order.created_at)
            .await?;
        confirming = !seen.is_empty();
        transfers.extend(seen);
    }
    let state = match order.status {
        OrderStatus::PendingPayment if confirming => "confirming",
        // the window has ended; the scanners still look for a transfer made in time
        OrderStatus::PendingPayment if now_ms() > order.expires_at => "checking_chain",
        OrderStatus::PendingPayment => "awaiting_payment",
        OrderStatus::Expired => "expired",
        OrderStatus::Cancelled => "cancelled",
        OrderStatus::Refunded => "refunded",
        _ => "paid",
    };
    Ok(Json(PaymentState {
        order_id,
        state,
        order_status: order.status,
        price: order.price,
        payable_amount: order.payable_amount,
        chain: order.chain,
        token: order.token,
        wallet: order.wallet,
        expires_at: order.expires_at,
        paid_at: order.paid_at,
        transfers: transfers.into_iter().map(TransferView::from).collect(),
    }))
}

const OPERATORS: &[Role] = &[Role::Admin, Role::Operator];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TransferQuery {
    /// `pending`, `matched`, `late`, `review`, `unmatched` or `assigned`.
    pub outcome: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/payments/transfers", tag = "payments", params(TransferQuery),
    responses((status = 200, body = Listing<Transfer>), (status = 401), (status = 403), (status = 422)))]
pub async fn list_transfers(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<TransferQuery>,
) -> Result<Json<Listing<Transfer>>, ApiError> {
    caller.require(OPERATORS)?;
    let page = PageParams {
        limit: q.limit,
        offset: q.offset,
    }
    .page()?;
    let outcome = match q.outcome.as_deref().map(str::parse::<TransferOutcome>) {
        None => None,
        Some(Ok(o)) => Some(o),
        Some(Err(_)) => {
            return Err(ApiError::invalid(
                "outcome",
                format!("one of {}", TransferOutcome::listing()),
            ));
        }
    };
    Ok(Json(Listing::new(
        app.store.list_transfers(outcome, page).await?,
        page,
    )))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// The pending order this transfer pays.
    pub order_id: i64,
}

#[utoipa::path(post, path = "/payments/transfers/{id}/assign", tag = "payments", params(("id" = i64, Path)), request_body = AssignBody,
    responses((status = 200, body = Order, description = "The order, paid and fulfilled"), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn assign_transfer(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AssignBody>,
) -> Result<Json<Order>, ApiError> {
    caller.require(OPERATORS)?;
    let transfer_id = path_id(&id, "id")?;
    let transfer = app.store.transfer(transfer_id).await?;
    if !transfer.outcome.is_set_aside() {
        return Err(ApiError::conflict(format!(
            "the transfer is {}; only unmatched or held transfers are assigned",
            transfer.outcome
        )));
    }
    app.store
        .order(body.order_id)
        .await
        .map_err(|_| ApiError::invalid("order_id", "no such order"))?;
    match app
        .orders
        .assign(body.order_id, transfer_id, &caller.audit_name())
        .await?
    {
        PayOutcome::Paid(order) => Ok(Json(*order)),
        PayOutcome::NotPending(status) => Err(ApiError::conflict(format!(
            "the order is {status}, not waiting for payment"
        ))),
        PayOutcome::AlreadySettled => Err(ApiError::conflict("the transfer was placed meanwhile")),
        PayOutcome::DoesNotFit(why) => Err(ApiError::conflict(why.to_string())),
        PayOutcome::InsufficientBalance => Err(ApiError::conflict("insufficient balance")),
    }
}
