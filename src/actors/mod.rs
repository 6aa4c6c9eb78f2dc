//! The actors, one per file: the actor struct (read-only configuration), its `State`, the
//! `Actor` implementation, and the `Clone` handle through which the rest of the code talks to it.

use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorRef, MessagingErr, RpcReplyPort};

use crate::supervision::ActorSlot;

/// The one piece of work an actor runs outside itself at a time (a poll, a delivery round), so
/// the actor keeps answering while it runs.
#[derive(Default)]
pub(crate) struct Job(Option<tokio::task::JoinHandle<()>>);

impl Job {
    /// Starts `work` unless the previous one still runs (then the tick is skipped).
    pub(crate) fn start<F: std::future::Future<Output = ()> + Send + 'static>(&mut self, work: F) {
        if self.0.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.0 = Some(tokio::spawn(work));
    }

    /// The work reported back: a new one may start.
    pub(crate) fn done(&mut self) {
        self.0 = None;
    }

    /// Cancels the work (it is written so that cancelling leaves nothing half-done).
    pub(crate) fn abort(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }

    /// Lets the work finish, for at most `limit`; then cancels it. (Dropping the handle of a
    /// task that outlived the limit would leave it running beside the actor's next start.)
    pub(crate) async fn finish(&mut self, limit: Duration) {
        if let Some(mut t) = self.0.take()
            && tokio::time::timeout(limit, &mut t).await.is_err()
        {
            t.abort();
        }
    }
}

pub mod bot_router;
pub mod broadcaster;
pub mod callback_worker;
pub mod demo_chain;
pub mod fullnode_scanner;
pub mod matcher;
pub mod order;
pub mod order_manager;
pub mod outbox_worker;
pub mod periodic;
pub mod reconciler;
pub mod session;
pub mod stars_reconciler;
pub mod telegram_intake;
pub mod trongrid_scanner;

pub use crate::messages::ActorCallError;

/// Calls the actor in `slot` and waits up to `timeout` for its reply.
pub(crate) async fn call_slot<M, R>(
    slot: &ActorSlot<M>,
    name: &'static str,
    timeout: Duration,
    build: impl FnOnce(RpcReplyPort<R>) -> M,
) -> Result<R, ActorCallError>
where
    M: ractor::Message,
    R: Send + 'static,
{
    let actor: ActorRef<M> = slot.get().ok_or(ActorCallError::Unavailable(name))?;
    match actor.call(build, Some(timeout)).await {
        Ok(CallResult::Success(r)) => Ok(r),
        Ok(CallResult::Timeout) => Err(ActorCallError::Timeout(name)),
        Ok(CallResult::SenderError) | Err(_) => Err(ActorCallError::Unavailable(name)),
    }
}

/// Sends a message without waiting for an answer.
pub(crate) fn cast_slot<M: ractor::Message>(
    slot: &ActorSlot<M>,
    name: &'static str,
    msg: M,
) -> Result<(), ActorCallError> {
    let actor = slot.get().ok_or(ActorCallError::Unavailable(name))?;
    actor
        .cast(msg)
        .map_err(|_: MessagingErr<M>| ActorCallError::Unavailable(name))
}
