//! The broadcaster (notifier subsystem): sends an operator's broadcast to every customer,
//! paced by [`Outbound`], saving its position after each customer so that a restart resumes
//! where it stopped instead of starting over.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::bot::outbound::Outbound;
use crate::messages::notifier::BroadcastMsg;
use crate::store::Store;

const BATCH: i64 = 100;

#[derive(Clone)]
pub struct Broadcaster {
    pub store: Store,
    pub outbound: Outbound,
    pub every: Duration,
}

pub struct BroadcasterState {
    job: super::Job,
}

impl Broadcaster {
    /// Sends running broadcasts until none is left.
    async fn run(&self) -> Result<(), crate::store::StoreError> {
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
                // a cancellation stops the broadcast between two messages
                if self.store.broadcast(b.id).await?.status != "running" {
                    break;
                }
                let sent = match self.outbound.send_text(chat, &b.text, None).await {
                    Ok(_) => true,
                    Err(e) => {
                        if e.user_is_gone() {
                            self.store.mark_blocked(chat).await?;
                        }
                        false
                    }
                };
                self.store.broadcast_progress(b.id, user_id, sent).await?;
            }
        }
        Ok(())
    }
}

impl Actor for Broadcaster {
    type Msg = BroadcastMsg;
    type State = BroadcasterState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<BroadcastMsg>,
        _: (),
    ) -> Result<BroadcasterState, ActorProcessingErr> {
        myself.send_interval(self.every, || BroadcastMsg::Tick);
        Ok(BroadcasterState {
            job: super::Job::default(),
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<BroadcastMsg>,
        state: &mut BroadcasterState,
    ) -> Result<(), ActorProcessingErr> {
        // the position is saved after every message: stopping now loses nothing
        state.job.abort();
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<BroadcastMsg>,
        msg: BroadcastMsg,
        state: &mut BroadcasterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            BroadcastMsg::Tick => {
                let me = self.clone();
                state.job.start(async move {
                    if let Err(e) = me.run().await {
                        tracing::warn!(error = %e, "broadcast paused by a storage fault; resuming later");
                    }
                });
            }
        }
        Ok(())
    }
}
