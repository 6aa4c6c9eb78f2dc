//! The outbox worker (notifier subsystem): delivers the notifications that settlements queued in
//! the outbox, to customers (in their language) and to the operators' chats. Sending is paced by
//! [`Outbound`]; a message that fails for a transient reason stays queued and is tried again with
//! backoff, so no notification is lost to a network fault or a restart. Telegram's permanent
//! refusals (the user blocked the bot) end that message, logged.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use dashmap::DashMap;

use super::periodic::Round;
use crate::bot::notices;
use crate::bot::outbound::{Outbound, SendError};
use crate::domain::Audience;
use crate::domain::{OrderStatus, now_ms};
use crate::store::{OutboxMessage, Store};

/// Messages taken per round and kind.
const BATCH: i64 = 50;
/// Attempts before a message that keeps failing is given up (about a day with the backoff).
const MAX_ATTEMPTS: i64 = 30;
/// How long a claimed message is left to its sender before another instance may try it.
pub(crate) const CLAIM_MS: i64 = 5 * 60 * 1000;

#[derive(Clone)]
pub struct OutboxWorker {
    pub store: Store,
    pub outbound: Outbound,
    pub operator_chats: Vec<i64>,
    /// The language of operator alerts (`telegram.default_language`).
    pub operator_language: crate::config::Language,
    pub shop: notices::Shop,
    /// Operator chats each message has already reached, so a retry after one chat failed goes
    /// only to the chats still missing it (kept across restarts of the worker, not the process).
    pub reached: Arc<DashMap<i64, Vec<i64>>>,
}

/// Delay before attempt `attempts + 1`: 2 s doubling, at most an hour.
fn retry_delay_ms(attempts: i64) -> i64 {
    (2_000i64 << attempts.clamp(0, 11)).min(3_600_000)
}

/// A message that was not delivered goes back in the queue with backoff, or is given up when
/// its error is permanent or its attempts are spent (the error stays on the row). Shared by
/// notifications and merchant callbacks; `true` when it was given up.
pub(crate) async fn retry_or_give_up(
    store: &Store,
    m: &OutboxMessage,
    error: &str,
    permanent: bool,
) -> Result<bool, crate::store::StoreError> {
    let give_up = permanent || m.attempts + 1 >= MAX_ATTEMPTS;
    store
        .outbox_retry(m.id, now_ms() + retry_delay_ms(m.attempts), error, give_up)
        .await?;
    Ok(give_up)
}

/// A row that does not read as an event is given up at once; the reason stays on the row.
fn unreadable(e: serde_json::Error) -> SendError {
    SendError::Unsendable(format!("unreadable outbox row: {e}"))
}

impl OutboxWorker {
    async fn deliver_due(&self) -> Result<(), crate::store::StoreError> {
        // each message is claimed just before it is sent: an instance that lost the lead and
        // does not know it yet cannot send the same message as the new leader
        for m in self
            .store
            .due_outbox(Audience::Customer.as_str(), BATCH)
            .await?
        {
            if self.store.claim_outbox(&m, now_ms() + CLAIM_MS).await? {
                let result = self.deliver_customer(&m).await;
                self.settle(&m, result).await?;
            }
        }
        for m in self
            .store
            .due_outbox(Audience::Operator.as_str(), BATCH)
            .await?
        {
            if self.store.claim_outbox(&m, now_ms() + CLAIM_MS).await? {
                let result = self.deliver_operator(&m).await;
                self.settle(&m, result).await?;
            }
        }
        metrics::gauge!("outbox_pending").set(self.store.outbox_pending_count().await? as f64);
        Ok(())
    }

    async fn deliver_customer(&self, m: &OutboxMessage) -> Result<(), SendError> {
        let event = m.event().map_err(unreadable)?;
        if let Some(order_id) = event.order_id() {
            // beside the notice, not before it: the tidying waits for spare capacity
            let worker = self.clone();
            tokio::spawn(async move { worker.take_off_payment_buttons(order_id).await });
        }
        let notice = notices::customer(&self.store, &self.shop, &event)
            .await
            .map_err(|e| SendError::Transient(e.to_string()))?;
        let Some(n) = notice else { return Ok(()) };
        let result = self
            .outbound
            .send_text(n.chat_id, &n.text, None)
            .await
            .map(|_| ());
        if let Err(e) = &result
            && e.user_is_gone()
        {
            let _ = self.store.mark_blocked(n.chat_id).await;
        }
        result
    }

    /// Once an order stops waiting for payment, the buttons of its payment message (check,
    /// cancel, pay from the balance) no longer apply: they are taken off. A failure here is
    /// logged and tried again with the order's next notification; a press on a button left
    /// behind is refused by the bot anyway.
    async fn take_off_payment_buttons(&self, order_id: i64) {
        let pending = match self.store.order(order_id).await {
            Ok(o) => o.status == OrderStatus::PendingPayment,
            Err(_) => return,
        };
        if pending {
            return;
        }
        let Ok(Some((chat, message))) = self.store.payment_message(order_id).await else {
            return;
        };
        let Ok(message) = i32::try_from(message) else {
            let _ = self.store.forget_payment_message(order_id).await;
            return;
        };
        match self.outbound.remove_buttons(chat, message).await {
            Ok(()) | Err(SendError::Refused(_)) => {
                let _ = self.store.forget_payment_message(order_id).await;
            }
            Err(e) => {
                tracing::debug!(order_id, error = %e, "payment buttons not taken off yet");
            }
        }
    }

    async fn deliver_operator(&self, m: &OutboxMessage) -> Result<(), SendError> {
        if self.operator_chats.is_empty() {
            // no operator chat configured: the dashboard lists these facts anyway
            return Ok(());
        }
        let event = m.event().map_err(unreadable)?;
        let text = notices::operator(&self.store, &event, self.operator_language)
            .await
            .map_err(|e| SendError::Transient(e.to_string()))?;
        if let Some(text) = text {
            for chat in &self.operator_chats {
                let done = self.reached.get(&m.id).is_some_and(|r| r.contains(chat));
                if done {
                    continue;
                }
                self.outbound.send_text(*chat, &text, None).await?;
                self.reached.entry(m.id).or_default().push(*chat);
            }
        }
        Ok(())
    }

    async fn settle(
        &self,
        m: &OutboxMessage,
        result: Result<(), SendError>,
    ) -> Result<(), crate::store::StoreError> {
        match result {
            Ok(()) => {
                self.reached.remove(&m.id);
                self.store.outbox_sent(m.id).await
            }
            Err(e) => {
                if retry_or_give_up(&self.store, m, &e.to_string(), e.is_permanent()).await? {
                    // settled for good: no retry will need to know which chats it reached
                    self.reached.remove(&m.id);
                    tracing::warn!(outbox_id = m.id, error = %e, "notification given up");
                } else {
                    tracing::debug!(outbox_id = m.id, error = %e, "notification will be retried");
                }
                Ok(())
            }
        }
    }
}

impl Round for OutboxWorker {
    // let the current round finish its messages: a message sent but not marked would be sent
    // again after the restart
    const FINISH_ON_STOP: Option<Duration> = Some(Duration::from_secs(5));

    async fn round(&self, _: Arc<AtomicBool>) {
        if let Err(e) = self.deliver_due().await {
            tracing::warn!(error = %e, "outbox round failed; retrying");
        }
    }
}
