//! Notifications queued in the outbox, rendered for the people who receive them: customers in
//! their own language, operators in English.

use super::texts::{t, tf};
use crate::config::Language;
use crate::domain::{OutboxEvent, ProductKind};
use crate::store::{Store, StoreError};

/// A rendered message for one chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub chat_id: i64,
    pub text: String,
}

/// What notices need to know about the shop.
#[derive(Debug, Clone)]
pub struct Shop {
    pub name: String,
    pub bot_username: String,
}

/// The customer's message for an outbox event; `None` when the event no longer applies (its
/// order or user is gone) or is not for customers.
pub async fn customer(
    store: &Store,
    shop: &Shop,
    event: &OutboxEvent,
) -> Result<Option<Notice>, StoreError> {
    if let OutboxEvent::AgentApproved { agent_id, user_id } = *event {
        return agent_approved(store, shop, agent_id, user_id).await;
    }
    let Some(order_id) = event.order_id() else {
        return Ok(None);
    };
    let order = match store.order(order_id).await {
        Ok(o) => o,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let user = store.user(order.user_id).await?;
    let lang = super::texts::parse_language(&user.language);
    let id: &(dyn std::fmt::Display + Sync) = &order.id;
    let text = match event {
        OutboxEvent::PaymentSeen { .. } => tf(lang, "notify.payment_seen", &[("id", id)]),
        OutboxEvent::OrderPaid { .. } if order.kind == ProductKind::Service => {
            tf(lang, "notify.in_progress", &[("id", id)])
        }
        OutboxEvent::OrderPaid { .. } => tf(lang, "notify.paid", &[("id", id)]),
        OutboxEvent::OrderDelivered { .. } => tf(
            lang,
            "notify.delivered",
            &[
                ("id", id),
                ("delivery", &order.delivery.clone().unwrap_or_default()),
            ],
        ),
        OutboxEvent::BalanceCredited { .. } => {
            let amount = match order.transfer_id {
                Some(tid) => store.transfer(tid).await?.amount,
                None => order.price,
            };
            tf(
                lang,
                "notify.balance_credited",
                &[("id", id), ("amount", &amount)],
            )
        }
        OutboxEvent::OrderExpired { .. } => tf(lang, "notify.expired", &[("id", id)]),
        OutboxEvent::OrderCancelled { .. } => tf(lang, "notify.cancelled", &[("id", id)]),
        OutboxEvent::LatePaymentCredited { transfer_id, .. } => {
            let amount = store.transfer(*transfer_id).await?.amount;
            tf(
                lang,
                "notify.late_credited",
                &[("id", id), ("amount", &amount)],
            )
        }
        OutboxEvent::OrderStatus { status, .. } => tf(
            lang,
            "notify.status",
            &[
                ("id", id),
                ("status", &t(lang, &format!("status.{}", status.as_str()))),
            ],
        ),
        OutboxEvent::AgentApproved { .. }
        | OutboxEvent::ServiceRequest { .. }
        | OutboxEvent::StockExhausted { .. }
        | OutboxEvent::LatePaymentReview { .. }
        | OutboxEvent::UnmatchedTransfer { .. }
        | OutboxEvent::StarsPaymentUnmatched { .. }
        | OutboxEvent::StarsTransactionMissing { .. }
        | OutboxEvent::SupportRequest { .. }
        | OutboxEvent::Callback(_) => return Ok(None),
    };
    Ok(Some(Notice {
        chat_id: user.telegram_id,
        text,
    }))
}

/// The operators' message for an outbox event, in `lang` (the shop's
/// `telegram.default_language`), from the locale files; `None` for an event not for operators.
pub async fn operator(
    store: &Store,
    event: &OutboxEvent,
    lang: Language,
) -> Result<Option<String>, StoreError> {
    let text = match *event {
        OutboxEvent::ServiceRequest { order_id } => {
            let o = store.order(order_id).await?;
            let request = o
                .request_text
                .unwrap_or_else(|| t(lang, "operator.no_text").to_owned());
            tf(
                lang,
                "operator.service_request",
                &[("id", &o.id), ("text", &request)],
            )
        }
        OutboxEvent::StockExhausted { order_id } => {
            tf(lang, "operator.stock_exhausted", &[("id", &order_id)])
        }
        OutboxEvent::LatePaymentReview {
            transfer_id,
            order_id,
        } => tf(
            lang,
            "operator.late_payment_review",
            &[("id", &order_id.unwrap_or(0)), ("transfer", &transfer_id)],
        ),
        OutboxEvent::UnmatchedTransfer { transfer_id } => {
            let tr = store.transfer(transfer_id).await?;
            tf(
                lang,
                "operator.unmatched_transfer",
                &[
                    ("transfer", &tr.id),
                    ("amount", &tr.amount),
                    ("from", &tr.from_address),
                    ("txid", &tr.txid),
                ],
            )
        }
        OutboxEvent::StarsPaymentUnmatched { payment_id } => {
            let p = store.stars_payment(payment_id).await?;
            tf(
                lang,
                "operator.stars_unmatched",
                &[
                    ("payment", &p.id),
                    ("amount", &p.total_amount),
                    ("currency", &p.currency),
                    ("telegram_id", &p.telegram_id),
                    ("problem", &p.problem.unwrap_or_default()),
                ],
            )
        }
        OutboxEvent::StarsTransactionMissing { payment_id } => {
            let p = store.stars_payment(payment_id).await?;
            tf(
                lang,
                "operator.stars_missing",
                &[
                    ("payment", &p.id),
                    ("amount", &p.total_amount),
                    ("order", &p.order_id.unwrap_or(0)),
                    ("charge", &p.charge_id),
                ],
            )
        }
        OutboxEvent::SupportRequest {
            request_id,
            user_id,
        } => {
            let u = store.user(user_id).await?;
            tf(
                lang,
                "operator.support_request",
                &[
                    ("id", &request_id),
                    ("telegram_id", &u.telegram_id),
                    ("name", &u.first_name),
                ],
            )
        }
        _ => return Ok(None),
    };
    Ok(Some(text))
}

/// The new agent's welcome: their referral link.
async fn agent_approved(
    store: &Store,
    shop: &Shop,
    agent_id: i64,
    user_id: i64,
) -> Result<Option<Notice>, StoreError> {
    let agent = store.agent(agent_id).await?;
    let user = store.user(user_id).await?;
    let lang = super::texts::parse_language(&user.language);
    let link = crate::domain::agent::referral_link(&shop.bot_username, &agent.code);
    let text = tf(
        lang,
        "agent.approved",
        &[("shop", &shop.name), ("link", &link)],
    );
    Ok(Some(Notice {
        chat_id: user.telegram_id,
        text,
    }))
}
