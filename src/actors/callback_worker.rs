//! The callback worker (notifier subsystem, present when `payments.callback_url` is set):
//! delivers the merchant callbacks that settlements queued in the outbox, one at a time in the
//! order they were queued. A callback the merchant's server does not take stays queued and is
//! tried again with the outbox's backoff (2 s doubling to an hour, about a day in all), so an
//! outage on the merchant's side loses nothing. It runs apart from the Telegram notifications
//! so that a slow merchant server never delays a customer's message.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::outbox_worker::{CLAIM_MS, retry_or_give_up};
use super::periodic::Round;
use crate::domain::Audience;
use crate::domain::now_ms;
use crate::payments::callback::{CallbackClient, CallbackError, build};
use crate::store::{OutboxMessage, Store, StoreError};

/// Callbacks taken per round.
const BATCH: i64 = 20;

#[derive(Clone)]
pub struct CallbackWorker {
    pub store: Store,
    pub client: CallbackClient,
}

impl CallbackWorker {
    async fn deliver_due(&self) -> Result<(), StoreError> {
        for m in self
            .store
            .due_outbox(Audience::Callback.as_str(), BATCH)
            .await?
        {
            // claimed first, so a callback is not sent by two instances during a handover
            if self.store.claim_outbox(&m, now_ms() + CLAIM_MS).await? {
                let result = self.deliver(&m).await;
                self.settle(&m, result).await?;
            }
        }
        Ok(())
    }

    async fn deliver(&self, m: &OutboxMessage) -> Result<(), CallbackError> {
        let callback = build(&self.store, m).await?;
        self.client.send(&callback).await
    }

    async fn settle(
        &self,
        m: &OutboxMessage,
        result: Result<(), CallbackError>,
    ) -> Result<(), StoreError> {
        match result {
            Ok(()) => {
                metrics::counter!("callbacks_total", "outcome" => "delivered").increment(1);
                self.store.outbox_sent(m.id).await
            }
            Err(e) => {
                if retry_or_give_up(&self.store, m, &e.to_string(), e.is_permanent()).await? {
                    metrics::counter!("callbacks_total", "outcome" => "given_up").increment(1);
                    tracing::warn!(outbox_id = m.id, error = %e, "merchant callback given up");
                } else {
                    metrics::counter!("callbacks_total", "outcome" => "retried").increment(1);
                    tracing::info!(outbox_id = m.id, attempt = m.attempts + 1, error = %e,
                        "merchant callback not delivered; will retry");
                }
                Ok(())
            }
        }
    }
}

impl Round for CallbackWorker {
    // a callback sent but not marked would be sent again after the restart; the merchant
    // recognises it by X-Telebot-Delivery
    const FINISH_ON_STOP: Option<Duration> = Some(Duration::from_secs(5));

    async fn round(&self, _: Arc<AtomicBool>) {
        if let Err(e) = self.deliver_due().await {
            tracing::warn!(error = %e, "callback round failed; retrying");
        }
    }
}
