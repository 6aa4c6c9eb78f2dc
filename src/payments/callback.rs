//! Merchant callbacks: order events POSTed to `payments.callback_url` as signed JSON.
//!
//! Settlements queue a `callback` row in the outbox in the same transaction as the order's change
//! (see `enqueue_callback!` in the store), so an event is never lost and never invented. The
//! callback worker turns each row into a request built from the order as it stands at delivery:
//!
//! ```text
//! POST <callback_url>
//! Content-Type: application/json
//! X-Telebot-Event: order.paid
//! X-Telebot-Delivery: 42                      (the outbox id: the same on every retry)
//! X-Telebot-Timestamp: 1764070000             (Unix seconds)
//! X-Telebot-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with callback_secret>
//!
//! {"event":"order.paid","delivery_id":42,"occurred_at":1764069999123,
//!  "order":{...},"customer":{"telegram_id":...,"username":...},"transfer":{...} or null}
//! ```
//!
//! Any 2xx answer delivers it; anything else (or no answer within `callback_timeout`) is retried
//! with backoff. The signature is the payment webhook's, so a merchant checks both the same way.

use std::time::Duration;

use serde::Serialize;

use super::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use crate::config::Secret;
use crate::domain::OutboxEvent;
use crate::store::{OutboxMessage, Store, StoreError};

pub const EVENT_HEADER: &str = "x-telebot-event";
pub const DELIVERY_HEADER: &str = "x-telebot-delivery";

/// The customer of the order, as the merchant knows them from Telegram.
#[derive(Debug, Serialize)]
struct Customer {
    telegram_id: i64,
    username: Option<String>,
}

/// The paying transfer, when the order was paid on chain.
#[derive(Debug, Serialize)]
struct PaidBy {
    chain: String,
    token: String,
    txid: String,
    log_index: i64,
    from: String,
    to: String,
    amount: String,
    block_number: Option<i64>,
    block_time: i64,
}

/// One event ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    pub event: String,
    pub delivery_id: i64,
    pub body: Vec<u8>,
}

/// Why a callback was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The row cannot become a request (its order is gone, its payload unreadable): retrying
    /// will not help.
    #[error("cannot build the callback: {0}")]
    Unbuildable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The merchant's server did not take it; worth trying again later.
    #[error("{0}")]
    NotDelivered(String),
}

impl CallbackError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, CallbackError::Unbuildable(_))
    }
}

/// Builds the request body of a queued callback from the order as it stands now. The digital
/// goods delivered to the customer are left out: they are the customer's, not the callback's.
pub async fn build(store: &Store, m: &OutboxMessage) -> Result<Callback, CallbackError> {
    let callback = match m.event() {
        Ok(OutboxEvent::Callback(c)) => c,
        Ok(other) => {
            return Err(CallbackError::Unbuildable(format!(
                "a {} event is not a merchant callback",
                other.audience()
            )));
        }
        Err(e) => {
            return Err(CallbackError::Unbuildable(format!(
                "unreadable payload: {e}"
            )));
        }
    };
    let event = callback.name();
    let order_id = callback.order_id;
    let mut order = match store.order(order_id).await {
        Ok(o) => o,
        Err(StoreError::NotFound(_)) => {
            return Err(CallbackError::Unbuildable(format!(
                "order {order_id} does not exist"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    order.delivery = None;
    let user = store.user(order.user_id).await?;
    let transfer = match order.transfer_id {
        Some(id) => {
            let t = store.transfer(id).await?;
            Some(PaidBy {
                chain: t.chain,
                token: t.token,
                txid: t.txid,
                log_index: t.log_index,
                from: t.from_address,
                to: t.to_address,
                amount: t.amount.to_string(),
                block_number: t.block_number,
                block_time: t.block_time,
            })
        }
        None => None,
    };
    let body = serde_json::json!({
        "event": event,
        "delivery_id": m.id,
        "occurred_at": callback.at,
        "order": order,
        "customer": Customer { telegram_id: user.telegram_id, username: user.username },
        "transfer": transfer,
    });
    Ok(Callback {
        event,
        delivery_id: m.id,
        body: serde_json::to_vec(&body).expect("JSON values serialize"),
    })
}

/// Sends callbacks to the merchant's server.
#[derive(Clone)]
pub struct CallbackClient {
    http: reqwest::Client,
    url: String,
    secret: Secret,
}

impl CallbackClient {
    pub fn new(url: &str, secret: Secret, timeout: Duration) -> CallbackClient {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // a redirect would carry the signed event to a server the operator did not name
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("telebot/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds with rustls");
        CallbackClient {
            http,
            url: url.to_owned(),
            secret,
        }
    }

    /// POSTs one callback, signed at the moment of sending. `Ok` on any 2xx answer.
    pub async fn send(&self, c: &Callback) -> Result<(), CallbackError> {
        let timestamp = crate::domain::now_ms().div_euclid(1000).to_string();
        let signature = sign(self.secret.expose(), &timestamp, &c.body);
        let answer = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, &c.event)
            .header(DELIVERY_HEADER, c.delivery_id.to_string())
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(SIGNATURE_HEADER, format!("sha256={signature}"))
            .body(c.body.clone())
            .send()
            .await
            .map_err(|e| CallbackError::NotDelivered(format!("request failed: {e}")))?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(CallbackError::NotDelivered(format!(
                "the callback URL answered HTTP {}",
                status.as_u16()
            )))
        }
    }
}
