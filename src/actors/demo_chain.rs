//! The demo chain (payments subsystem, `tron.source = "demo"` only): a stand-in for TRON that the
//! dashboard and the simulator use to "send" USDT. A demo transfer goes through the same payment
//! pipeline as a real one: it is seen at once and confirmed a moment later.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::{ActorCallError, call_slot};
use crate::domain::Ingested;
use crate::domain::{Money, now_ms};
use crate::messages::scanners::DemoChainMsg;
use crate::messages::scanners::PaymentsError;
use crate::payments::progress::ChainProgress;
use crate::payments::{CHAIN, Payments, TOKEN};
use crate::store::NewTransfer;
use crate::supervision::ActorSlot;

pub const SOURCE: &str = "demo";
/// Sender shown on demo transfers.
pub const DEMO_PAYER: &str = "TNtbiqvanUnm4YHK9SYzRGR8ktiHRduDbM";
const NAME: &str = "demo chain";

#[derive(Clone)]
pub struct DemoChain {
    pub payments: Payments,
    pub progress: ChainProgress,
    /// Time between "seen" and "confirmed".
    pub confirm_after: Duration,
}

impl Actor for DemoChain {
    type Msg = DemoChainMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<DemoChainMsg>,
        _: (),
    ) -> Result<(), ActorProcessingErr> {
        self.progress.register(SOURCE, 0);
        myself.send_interval(Duration::from_millis(500), || DemoChainMsg::Advance);
        tracing::warn!("DEMO chain active: transfers are simulated, no real money moves");
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<DemoChainMsg>,
        msg: DemoChainMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DemoChainMsg::Pay { to, amount, reply } => {
                let transfer = NewTransfer {
                    chain: CHAIN.to_owned(),
                    txid: format!(
                        "{:032x}{:032x}",
                        rand::random::<u128>(),
                        rand::random::<u128>()
                    )[..64]
                        .to_owned(),
                    log_index: 0,
                    token: TOKEN.to_owned(),
                    from_address: DEMO_PAYER.to_owned(),
                    to_address: to,
                    amount,
                    block_number: None,
                    block_time: now_ms(),
                    confirmed: self.confirm_after.is_zero(),
                    source: SOURCE.to_owned(),
                };
                let result = self.payments.ingest(&transfer).await;
                if !transfer.confirmed && result.is_ok() {
                    let confirmed = NewTransfer {
                        confirmed: true,
                        ..transfer
                    };
                    myself.send_after(self.confirm_after, move || {
                        DemoChainMsg::Confirm(Box::new(confirmed))
                    });
                }
                let _ = reply.send(result);
            }
            DemoChainMsg::Confirm(transfer) => {
                if let Err(e) = self.payments.ingest(&transfer).await {
                    tracing::warn!(error = %e, "demo transfer not placed yet; the reconciler retries");
                }
            }
            DemoChainMsg::Advance => {
                // everything up to a confirmation delay ago has been "read"
                let at = now_ms() - i64::try_from(self.confirm_after.as_millis()).unwrap_or(0);
                self.progress.advance(SOURCE, at, None, None);
            }
        }
        Ok(())
    }
}

/// How the dashboard and the simulator send demo payments.
#[derive(Clone)]
pub struct DemoChainHandle {
    slot: ActorSlot<DemoChainMsg>,
}

impl DemoChainHandle {
    pub fn new(slot: ActorSlot<DemoChainMsg>) -> Self {
        DemoChainHandle { slot }
    }

    pub fn slot(&self) -> &ActorSlot<DemoChainMsg> {
        &self.slot
    }

    /// Sends `amount` USDT to `to` on the demo chain.
    pub async fn pay(
        &self,
        to: &str,
        amount: Money,
    ) -> Result<Result<Ingested, PaymentsError>, ActorCallError> {
        let to = to.to_owned();
        call_slot(&self.slot, NAME, Duration::from_secs(10), |reply| {
            DemoChainMsg::Pay { to, amount, reply }
        })
        .await
    }
}
