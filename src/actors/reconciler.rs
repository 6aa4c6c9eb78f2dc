//! The reconciler (payments subsystem): places every confirmed transfer that is still `pending`,
//! at start and then periodically. A crash or fault between recording a transfer and placing it
//! therefore delays a payment but never loses it. Run by [`Periodic`](super::periodic::Periodic).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::periodic::Round;
use crate::payments::Payments;

#[derive(Clone)]
pub struct Reconciler {
    pub payments: Payments,
}

impl Round for Reconciler {
    // a placement is one transaction: cutting the round leaves it pending, never half-done
    const FINISH_ON_STOP: Option<Duration> = None;

    /// The first run waits a moment so the order actors are back after a restart.
    fn first_after(&self) -> Option<Duration> {
        Some(Duration::from_millis(500))
    }

    async fn round(&self, _: Arc<AtomicBool>) {
        match self.payments.reconcile().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(placed = n, "reconciled pending transfers"),
            Err(e) => tracing::warn!(error = %e, "reconciliation failed; retrying later"),
        }
    }
}
