//! Notifications queued in the outbox, rendered for the people who receive them: customers in
//! their own language, operators in English.

use serde_json::Value;

use super::texts::{t, tf};
use crate::config::Language;
use crate::domain::{OrderStatus, ProductKind};
use crate::store::{Store, StoreError};

/// A rendered message for one chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub chat_id: i64,
    pub text: String,
}

fn int(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

/// What notices need to know about the shop.
#[derive(Debug, Clone)]
pub struct Shop {
    pub name: String,
    pub bot_username: String,
}

/// The customer's message for an outbox event; `None` when the event no longer applies (an
/// unknown event, or its order or user is gone).
pub async fn customer(
    store: &Store,
    shop: &Shop,
    event: &Value,
) -> Result<Option<Notice>, StoreError> {
    let Some(name) = event.get("event").and_then(Value::as_str) else {
        return Ok(None);
    };
    if name == "agent_approved" {
        return agent_approved(store, shop, event).await;
    }
    let Some(order_id) = int(event, "order_id") else {
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
    let text = match name {
        "payment_seen" => tf(lang, "notify.payment_seen", &[("id", id)]),
        "order_paid" if order.kind == ProductKind::Service => {
            tf(lang, "notify.in_progress", &[("id", id)])
        }
        "order_paid" => tf(lang, "notify.paid", &[("id", id)]),
        "order_delivered" => tf(
            lang,
            "notify.delivered",
            &[
                ("id", id),
                ("delivery", &order.delivery.clone().unwrap_or_default()),
            ],
        ),
        "balance_credited" => {
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
        "order_expired" => tf(lang, "notify.expired", &[("id", id)]),
        "order_cancelled" => tf(lang, "notify.cancelled", &[("id", id)]),
        "late_payment_credited" => {
            let Some(tid) = int(event, "transfer_id") else {
                return Ok(None);
            };
            let amount = store.transfer(tid).await?.amount;
            tf(
                lang,
                "notify.late_credited",
                &[("id", id), ("amount", &amount)],
            )
        }
        "order_status" => {
            let status = event
                .get("status")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<OrderStatus>().ok())
                .unwrap_or(order.status);
            tf(
                lang,
                "notify.status",
                &[
                    ("id", id),
                    ("status", &t(lang, &format!("status.{}", status.as_str()))),
                ],
            )
        }
        _ => return Ok(None),
    };
    Ok(Some(Notice {
        chat_id: user.telegram_id,
        text,
    }))
}

/// The operators' message for an outbox event, in `lang` (the shop's
/// `telegram.default_language`), from the locale files.
pub async fn operator(
    store: &Store,
    event: &Value,
    lang: Language,
) -> Result<Option<String>, StoreError> {
    let Some(name) = event.get("event").and_then(Value::as_str) else {
        return Ok(None);
    };
    let order = int(event, "order_id").unwrap_or(0);
    let transfer = int(event, "transfer_id").unwrap_or(0);
    let text = match name {
        "service_request" => {
            let Some(order_id) = int(event, "order_id") else {
                return Ok(None);
            };
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
        "stock_exhausted" => tf(lang, "operator.stock_exhausted", &[("id", &order)]),
        "late_payment_review" => tf(
            lang,
            "operator.late_payment_review",
            &[("id", &order), ("transfer", &transfer)],
        ),
        "unmatched_transfer" => {
            let Some(tid) = int(event, "transfer_id") else {
                return Ok(None);
            };
            let tr = store.transfer(tid).await?;
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
        _ => return Ok(None),
    };
    Ok(Some(text))
}

/// The new agent's welcome: their referral link.
async fn agent_approved(
    store: &Store,
    shop: &Shop,
    event: &Value,
) -> Result<Option<Notice>, StoreError> {
    let (Some(agent_id), Some(user_id)) = (int(event, "agent_id"), int(event, "user_id")) else {
        return Ok(None);
    };
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
