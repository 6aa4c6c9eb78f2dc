//! The broadcaster (notifier subsystem): sends an operator's broadcast to every customer,
//! paced by [`Outbound`], saving its position after each customer so that a restart resumes
//! where it stopped instead of starting over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::periodic::Round;
use crate::bot::outbound::Outbound;
use crate::store::Store;

const BATCH: i64 = 100;

#[derive(Clone)]
pub struct Broadcaster {
    pub store: Store,
    pub outbound: Outbound,
    /// A broadcast pauses between two messages when this instance stops leading.
    pub leader: crate::supervision::Leadership,
}

/// Sends of one message that fail for a transient reason (after [`Outbound`]'s own retries) are
/// tried again this many times, after 10 s, 20 s, 40 s, ... (about five minutes in all), before
/// that customer counts as failed.
const TRANSIENT_ATTEMPTS: u32 = 5;

impl Broadcaster {
    /// Sends running broadcasts until none is left, or until `stopping` is set.
    async fn run(&self, stopping: &AtomicBool) -> Result<(), crate::store::StoreError> {
        while let Some(b) = self.store.next_running_broadcast().await? {
            let users = self
                .store
                .user_chat_ids_after(b.last_user_id, BATCH)
                .await?;
            if users.is_empty() {
                self.store.finish_broadcast(b.id, "done").await?;
                tracing::info!(
                    broadcast_id = b.id,
                    sent = b.sent,
                    failed = b.failed,
                    "broadcast finished"
                );
                continue;
            }
            for (user_id, chat) in users {
                let mut attempts = 0;
                let sent = loop {
                    // a cancellation (or the broadcaster stopping) comes between two messages
                    if stopping.load(Ordering::Relaxed)
                        || !self.leader.is_leader()
                        || self.store.broadcast(b.id).await?.status != "running"
                    {
                        return Ok(());
                    }
                    match self.outbound.send_text(chat, &b.text, None).await {
                        Ok(_) => break true,
                        Err(e) if !e.is_permanent() && attempts < TRANSIENT_ATTEMPTS => {
                            attempts += 1;
                            tracing::warn!(broadcast_id = b.id, chat, attempts, error = %e,
                                "broadcast message not delivered; trying again");
                            tokio::time::sleep(Duration::from_secs(5 << attempts)).await;
                        }
                        Err(e) => {
                            if e.user_is_gone() {
                                self.store.mark_blocked(chat).await?;
                            }
                            break false;
                        }
                    }
                };
                self.store.broadcast_progress(b.id, user_id, sent).await?;
            }
        }
        Ok(())
    }
}

impl Round for Broadcaster {
    // the position is saved after every message: let the message in hand finish and be recorded
    // (cancelling between the send and the record would send it again after the restart); a
    // round still going after that is only sleeping or stuck, and is cancelled
    const FINISH_ON_STOP: Option<Duration> = Some(Duration::from_secs(5));

    async fn round(&self, stopping: Arc<AtomicBool>) {
        if let Err(e) = self.run(&stopping).await {
            tracing::warn!(error = %e, "broadcast paused by a storage fault; resuming later");
        }
    }
}
