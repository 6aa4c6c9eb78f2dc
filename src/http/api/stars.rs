//! Refunds (`POST /orders/{id}/refund`, in Stars through Telegram or in USDT to the balance) and
//! the recorded Stars payments (`/stars/payments`), including the unmatched ones an operator
//! refunds.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiQuery, Listing, PageParams, path_id};
use crate::bot::outbound::SendError;
use crate::domain::{OrderStatus, PaymentMethod, Role};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::store::{Order, StarsPayment, StarsRefunded, SupportRequest};

const OPERATORS: &[Role] = &[Role::Admin, Role::Operator];

/// A listing filter that takes one of `allowed` (or nothing).
fn one_of<'a>(
    field: &str,
    value: Option<&'a str>,
    allowed: &[&str],
) -> Result<Option<&'a str>, ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(ApiError::invalid(
            field,
            format!("one of {}", allowed.join(", ")),
        )),
        v => Ok(v),
    }
}

/// What a refund did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefundOutcome {
    /// The order as it now stands (none for an unmatched Stars payment that paid no order).
    pub order: Option<Order>,
    /// The Stars payment given back, for a Stars refund.
    pub stars_payment: Option<StarsPayment>,
    /// What Telegram answered for a Stars refund: `refunded`, or `already_refunded`
    /// (`CHARGE_ALREADY_REFUNDED`: the Stars went back before, elsewhere).
    pub telegram: Option<&'static str>,
}

#[utoipa::path(post, path = "/orders/{id}/refund", tag = "orders", params(("id" = i64, Path)),
    responses((status = 200, body = RefundOutcome), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "The order cannot be refunded (not paid, a top-up, already refunded)"),
        (status = 502, description = "Telegram refused the Stars refund; its answer is in the message"),
        (status = 503, description = "Telegram could not be reached; nothing changed, try again")))]
/// Refunds a paid order: a Stars order gets its Stars back through Telegram (`refundStarPayment`),
/// a USDT order is credited to the customer's balance. Either way the order becomes `refunded`,
/// delivered items are revoked (Stars), the agent's commission is taken back and the customer
/// is told.
pub async fn refund_order(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RefundOutcome>, ApiError> {
    caller.require(OPERATORS)?;
    let id = path_id(&id, "id")?;
    let order = app.store.order(id).await?;
    if order.status == OrderStatus::Refunded {
        return Err(ApiError::conflict(format!(
            "order #{id} is refunded already"
        )));
    }
    if order.payment_method == PaymentMethod::Usdt {
        let (_, after) = app
            .store
            .set_order_status(id, OrderStatus::Refunded, &caller.audit_name())
            .await?;
        return Ok(Json(RefundOutcome {
            order: Some(after),
            stars_payment: None,
            telegram: None,
        }));
    }
    let payment = app.store.stars_payment_of_order(id).await?.ok_or_else(|| {
        ApiError::conflict(format!(
            "order #{id} is {}: no Stars payment to refund",
            order.status
        ))
    })?;
    let outcome = give_back(&app, payment, &caller.audit_name()).await?;
    Ok(Json(outcome))
}

#[utoipa::path(post, path = "/stars/payments/{id}/refund", tag = "payments", params(("id" = i64, Path)),
    responses((status = 200, body = RefundOutcome), (status = 401), (status = 403), (status = 404),
        (status = 409), (status = 502), (status = 503)))]
/// Gives a recorded Stars payment back, typically one that paid nothing (unmatched).
pub async fn refund_payment(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RefundOutcome>, ApiError> {
    caller.require(OPERATORS)?;
    let id = path_id(&id, "id")?;
    let payment = app.store.stars_payment(id).await?;
    Ok(Json(give_back(&app, payment, &caller.audit_name()).await?))
}

/// Asks Telegram for the refund, then records it. Nothing is recorded when Telegram refuses or
/// cannot be reached, so the operator can try again.
async fn give_back(
    app: &AppState,
    payment: StarsPayment,
    who: &str,
) -> Result<RefundOutcome, ApiError> {
    if payment.refunded_at.is_some() {
        return Err(ApiError::conflict(format!(
            "Stars payment #{} is refunded already",
            payment.id
        )));
    }
    let answer = app
        .outbound
        .refund_star_payment(payment.telegram_id, &payment.charge_id)
        .await;
    let telegram = match answer {
        Ok(true) => "refunded",
        Ok(false) => "already_refunded",
        Err(SendError::Refused(e)) => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "telegram_refused",
                format!("Telegram refused the refund: {e}"),
            ));
        }
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "telegram_unavailable",
                format!("Telegram could not be reached; nothing was refunded: {e}"),
            )
            .with_retry_after(30));
        }
    };
    let recorded = app.store.mark_stars_refunded(payment.id, who).await?;
    let payment = match recorded {
        StarsRefunded::Done(p) => {
            metrics::counter!("stars_refunds_total").increment(1);
            *p
        }
        StarsRefunded::Already(p) => *p,
    };
    let order = match payment.order_id.filter(|_| payment.outcome == "credited") {
        Some(order_id) => Some(app.store.order(order_id).await?),
        None => None,
    };
    Ok(RefundOutcome {
        order,
        stars_payment: Some(payment),
        telegram: Some(telegram),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SupportQuery {
    /// `open` or `closed`.
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/support/requests", tag = "admin", params(SupportQuery),
    responses((status = 200, body = Listing<SupportRequest>), (status = 401), (status = 403), (status = 422)))]
/// Customers' `/paysupport` requests, newest first.
pub async fn list_support(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SupportQuery>,
) -> Result<Json<Listing<SupportRequest>>, ApiError> {
    caller.require(OPERATORS)?;
    let page = PageParams {
        limit: q.limit,
        offset: q.offset,
    }
    .page()?;
    let status = one_of("status", q.status.as_deref(), &["open", "closed"])?;
    Ok(Json(Listing::new(
        app.store.list_support_requests(status, page).await?,
        page,
    )))
}

#[utoipa::path(post, path = "/support/requests/{id}/close", tag = "admin", params(("id" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
/// Marks a support request answered.
pub async fn close_support(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(OPERATORS)?;
    let id = path_id(&id, "id")?;
    if app
        .store
        .close_support_request(id, &caller.audit_name())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::conflict(format!(
            "support request #{id} is closed already"
        )))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StarsPaymentQuery {
    /// `credited` or `unmatched`.
    pub outcome: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/stars/payments", tag = "payments", params(StarsPaymentQuery),
    responses((status = 200, body = Listing<StarsPayment>), (status = 401), (status = 403), (status = 422)))]
/// Stars payments Telegram reported, newest first.
pub async fn list_payments(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<StarsPaymentQuery>,
) -> Result<Json<Listing<StarsPayment>>, ApiError> {
    caller.require(OPERATORS)?;
    let page = PageParams {
        limit: q.limit,
        offset: q.offset,
    }
    .page()?;
    let outcome = one_of("outcome", q.outcome.as_deref(), &["credited", "unmatched"])?;
    Ok(Json(Listing::new(
        app.store.list_stars_payments(outcome, page).await?,
        page,
    )))
}
