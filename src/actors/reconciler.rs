//! The reconciler (payments subsystem): places every confirmed transfer that is still `pending`,
//! at start and then periodically. A crash or fault between recording a transfer and placing it
//! therefore delays a payment but never loses it.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::messages::reconciler::ReconcilerMsg;
use crate::payments::Payments;

#[derive(Clone)]
pub struct Reconciler {
    pub payments: Payments,
    pub every: Duration,
    /// Works only while this instance leads (see [`crate::supervision::Leadership`]).
    pub leader: crate::supervision::Leadership,
}

pub struct ReconcilerState {
    job: super::Job,
}

impl Actor for Reconciler {
    type Msg = ReconcilerMsg;
    type State = ReconcilerState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<ReconcilerMsg>,
        _: (),
    ) -> Result<ReconcilerState, ActorProcessingErr> {
        // the first run waits a moment so the order actors are back after a restart
        myself.send_after(Duration::from_millis(500), || ReconcilerMsg::Run);
        myself.send_interval(self.every, || ReconcilerMsg::Run);
        Ok(ReconcilerState {
            job: super::Job::default(),
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<ReconcilerMsg>,
        state: &mut ReconcilerState,
    ) -> Result<(), ActorProcessingErr> {
        // a placement is one transaction: cutting the task leaves it pending, never half-done
        state.job.abort();
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<ReconcilerMsg>,
        msg: ReconcilerMsg,
        state: &mut ReconcilerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ReconcilerMsg::Run => {
                if !self.leader.is_leader() {
                    return Ok(());
                }
                let payments = self.payments.clone();
                state.job.start(async move {
                    match payments.reconcile().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(placed = n, "reconciled pending transfers"),
                        Err(e) => {
                            tracing::warn!(error = %e, "reconciliation failed; retrying later")
                        }
                    }
                });
            }
        }
        Ok(())
    }
}
