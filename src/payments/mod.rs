//! The payment pipeline: every transfer, from whichever source (scanners, the signed webhook, the
//! demo chain), goes through [`Payments::ingest`]: recorded once by (chain, txid, log index), then
//! placed exactly once: it pays an order, is credited as a late payment (or held for review), or
//! is kept as unmatched for operators. Nothing is dropped: a transfer whose placement failed stays
//! `pending` in the database and the reconciler places it again.

use std::collections::HashSet;
use std::sync::Arc;

use crate::config::LatePaymentRule;
use crate::domain::allocation::MatchResult;
use crate::domain::transfer::{Ingested, Placement};
use crate::domain::{AllocationState, Money, OrderStatus, OutboxEvent, TransferOutcome, now_ms};
use crate::messages::ActorCallError;
use crate::messages::orders::OrderError;
use crate::messages::scanners::PaymentsError;
use crate::store::{
    BoxFuture, NewTransfer, PayOutcome, Placed, Recorded, Store, StoreError, Transfer,
};

pub mod callback;
pub mod progress;
pub mod scan;
pub mod tron;
pub mod webhook;

/// The only chain and token so far.
pub use crate::domain::tron::{CHAIN, TOKEN};

/// What the pipeline asks of the payment matcher: which order holds an amount on a wallet.
/// The matcher's handle ([`crate::actors::matcher::MatcherHandle`]) answers it.
pub trait AmountMatcher: Send + Sync {
    fn match_transfer<'a>(
        &'a self,
        wallet: &'a str,
        amount: Money,
        at: i64,
    ) -> BoxFuture<'a, Result<MatchResult, ActorCallError>>;
}

/// What the pipeline asks of the orders subsystem: pay a pending order with a transfer. The
/// order manager's handle ([`crate::actors::order_manager::OrdersHandle`]) answers it.
pub trait OrderPayer: Send + Sync {
    fn pay(&self, order_id: i64, transfer_id: i64)
    -> BoxFuture<'_, Result<PayOutcome, OrderError>>;
}

/// Shared by scanners, the webhook and the demo chain; cheap to clone.
#[derive(Clone)]
pub struct Payments {
    pub store: Store,
    matcher: Arc<dyn AmountMatcher>,
    orders: Arc<dyn OrderPayer>,
    pub late_rule: LatePaymentRule,
    /// Unmatched transfers below this raise no operator alert.
    pub unmatched_alert_min: Money,
    wallets: Arc<HashSet<String>>,
}

impl Payments {
    pub fn new(
        store: Store,
        matcher: impl AmountMatcher + 'static,
        orders: impl OrderPayer + 'static,
        late_rule: LatePaymentRule,
        unmatched_alert_min: Money,
        wallets: &[String],
    ) -> Self {
        Payments {
            store,
            matcher: Arc::new(matcher),
            orders: Arc::new(orders),
            late_rule,
            unmatched_alert_min,
            wallets: Arc::new(wallets.iter().cloned().collect()),
        }
    }

    pub fn is_our_wallet(&self, address: &str) -> bool {
        self.wallets.contains(address)
    }

    /// Records a reported transfer and places it.
    pub async fn ingest(&self, t: &NewTransfer) -> Result<Ingested, PaymentsError> {
        let (transfer, recorded) = self.store.record_transfer(t).await?;
        if !transfer.confirmed {
            if recorded == Recorded::New {
                self.announce_seen(&transfer).await?;
            }
            return Ok(Ingested {
                transfer_id: transfer.id,
                placement: Placement::Confirming,
                order_id: None,
            });
        }
        self.place(&transfer).await
    }

    /// Like [`Payments::ingest`], for scanners: a report that contradicts an earlier one (same
    /// transaction and index, different amount or receiver) is logged, counted and skipped, so
    /// one bad report cannot stop a scanner's cursor.
    pub async fn ingest_from_scanner(
        &self,
        t: &NewTransfer,
    ) -> Result<Option<Ingested>, PaymentsError> {
        match self.ingest(t).await {
            Ok(i) => Ok(Some(i)),
            Err(PaymentsError::Store(StoreError::Conflict(m))) => {
                metrics::counter!("scanner_errors_total", "chain" => CHAIN, "kind" => "conflicting_report").increment(1);
                tracing::error!(txid = %t.txid, source = %t.source, "{m}; the first report is kept");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Places a confirmed transfer that is still `pending`; reports an earlier placement
    /// otherwise.
    pub async fn place(&self, transfer: &Transfer) -> Result<Ingested, PaymentsError> {
        if transfer.outcome != TransferOutcome::Pending {
            return Ok(Ingested {
                transfer_id: transfer.id,
                placement: Placement::Duplicate,
                order_id: transfer.order_id,
            });
        }
        let placed = self.place_pending(transfer).await?;
        metrics::counter!("payments_matched_total", "outcome" => placed.placement.label())
            .increment(1);
        if placed.placement == Placement::Paid {
            metrics::histogram!("payment_detection_latency_seconds")
                .record(((now_ms() - transfer.block_time).max(0) as f64) / 1000.0);
        }
        Ok(placed)
    }

    async fn place_pending(&self, t: &Transfer) -> Result<Ingested, PaymentsError> {
        let done = |placement, order_id| Ingested {
            transfer_id: t.id,
            placement,
            order_id,
        };
        // the wallet is not checked against the configuration: a wallet taken out of it may
        // still hold amounts of pending orders, and the matcher and database know those
        if t.chain != CHAIN || t.token != TOKEN {
            return self.unmatched(t).await;
        }
        let verdict = match self
            .matcher
            .match_transfer(&t.to_address, t.amount, t.block_time)
            .await?
        {
            found @ (MatchResult::Order(_) | MatchResult::Late(_)) => found,
            // held by another instance, or not in this instance's table: the database knows
            // every live holder
            MatchResult::Elsewhere | MatchResult::NoMatch => match self
                .store
                .amount_holder(&t.chain, &t.token, &t.to_address, t.amount)
                .await?
            {
                Some(h) if h.state == AllocationState::Pending && t.block_time <= h.expires_at => {
                    MatchResult::Order(h.order_id)
                }
                Some(h)
                    if h.state == AllocationState::Pending
                        || h.quarantine_until.is_some_and(|u| t.block_time < u) =>
                {
                    MatchResult::Late(h.order_id)
                }
                _ => MatchResult::NoMatch,
            },
        };
        match verdict {
            MatchResult::Order(order_id) => match self.orders.pay(order_id, t.id).await {
                Ok(PayOutcome::Paid(_)) => Ok(done(Placement::Paid, Some(order_id))),
                Ok(PayOutcome::AlreadySettled) => Ok(done(Placement::Duplicate, Some(order_id))),
                Ok(PayOutcome::NotPending(OrderStatus::Expired | OrderStatus::Cancelled))
                | Ok(PayOutcome::DoesNotFit(crate::store::Misfit::AfterWindow)) => {
                    self.late(t, order_id).await
                }
                Ok(PayOutcome::NotPending(_))
                | Ok(PayOutcome::DoesNotFit(_))
                | Ok(PayOutcome::InsufficientBalance)
                | Err(OrderError::NotPending(_)) => {
                    // the order was paid by another transfer: this one is a second payment
                    self.late(t, order_id).await
                }
                Err(e) => Err(e.into()),
            },
            MatchResult::Late(order_id) => self.late(t, order_id).await,
            // the database lookup above leaves no amount held elsewhere unresolved
            MatchResult::NoMatch | MatchResult::Elsewhere => self.unmatched(t).await,
        }
    }

    async fn late(&self, t: &Transfer, order_id: i64) -> Result<Ingested, PaymentsError> {
        let (placed, placement) = match self.late_rule {
            LatePaymentRule::CreditBalance => (
                self.store
                    .credit_late_payment(t.id, order_id, "system")
                    .await?,
                Placement::LateCredited,
            ),
            LatePaymentRule::OperatorReview => (
                self.store
                    .hold_for_review(t.id, Some(order_id), "system")
                    .await?,
                Placement::Review,
            ),
        };
        tracing::info!(transfer_id = t.id, order_id, ?placement, "late payment");
        Ok(Ingested {
            transfer_id: t.id,
            placement: if placed == Placed::Done {
                placement
            } else {
                Placement::Duplicate
            },
            order_id: Some(order_id),
        })
    }

    async fn unmatched(&self, t: &Transfer) -> Result<Ingested, PaymentsError> {
        let alert = t.amount >= self.unmatched_alert_min;
        let placed = self.store.mark_unmatched(t.id, "system", alert).await?;
        if alert {
            tracing::warn!(transfer_id = t.id, txid = %t.txid, amount = %t.amount, to = %t.to_address, "transfer matches no order; kept for operators");
        } else {
            if placed == Placed::Done {
                metrics::counter!("payments_dust_total").increment(1);
            }
            tracing::info!(transfer_id = t.id, txid = %t.txid, amount = %t.amount, to = %t.to_address, "dust transfer matches no order; kept without an alert");
        }
        Ok(Ingested {
            transfer_id: t.id,
            placement: if placed == Placed::Done {
                Placement::Unmatched
            } else {
                Placement::Duplicate
            },
            order_id: None,
        })
    }

    /// Tells the customer a payment for their order was seen and is confirming.
    async fn announce_seen(&self, t: &Transfer) -> Result<(), PaymentsError> {
        if !self.is_our_wallet(&t.to_address) {
            return Ok(());
        }
        if let MatchResult::Order(order_id) = self
            .matcher
            .match_transfer(&t.to_address, t.amount, t.block_time)
            .await?
        {
            let order = self.store.order(order_id).await?;
            let event = OutboxEvent::PaymentSeen {
                order_id,
                user_id: order.user_id,
                transfer_id: t.id,
            };
            self.store.enqueue_event(&event).await?;
        }
        Ok(())
    }

    /// Places every confirmed transfer left `pending` (a crash or fault between recording and
    /// placing). Returns how many were placed.
    pub async fn reconcile(&self) -> Result<usize, PaymentsError> {
        // quarantines that are over free their amounts in the database as well
        self.store.release_quarantined(now_ms()).await?;
        let pending = self.store.unprocessed_transfers().await?;
        let mut placed = 0;
        for t in pending {
            match self.place(&t).await {
                Ok(_) => placed += 1,
                Err(e) => {
                    tracing::warn!(transfer_id = t.id, error = %e, "transfer not placed yet; will retry")
                }
            }
        }
        Ok(placed)
    }
}
