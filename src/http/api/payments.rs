//! Payment state of orders.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use crate::domain::{Money, OrderStatus, Role};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::store::Transfer;

/// What `GET /api/v1/payments/{order_id}` answers.
#[derive(Debug, Serialize)]
pub struct PaymentState {
    pub order_id: i64,
    /// `awaiting_payment`, `confirming`, `paid`, `expired`, `cancelled` or `refunded`.
    pub state: &'static str,
    pub order_status: OrderStatus,
    pub price: Money,
    pub payable_amount: Money,
    pub chain: String,
    pub token: String,
    pub wallet: Option<String>,
    pub expires_at: i64,
    pub paid_at: Option<i64>,
    pub transfers: Vec<TransferView>,
}

#[derive(Debug, Serialize)]
pub struct TransferView {
    pub txid: String,
    pub log_index: i64,
    pub amount: Money,
    pub from: String,
    pub block_time: i64,
    pub confirmed: bool,
    pub outcome: String,
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

pub async fn payment_of_order(
    State(app): State<AppState>,
    caller: Caller,
    Path(order_id): Path<String>,
) -> Result<Json<PaymentState>, ApiError> {
    let order_id: i64 = order_id
        .parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::invalid("order_id", "must be a positive whole number"))?;
    let order = app.store.order(order_id).await?;
    match caller.role {
        Role::Admin | Role::Operator | Role::Service => {}
        Role::Agent => {
            // an agent sees only its own referrals' orders; others look like they do not exist
            if caller.agent_id.is_none() || order.agent_id != caller.agent_id {
                return Err(ApiError::not_found("order"));
            }
        }
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
