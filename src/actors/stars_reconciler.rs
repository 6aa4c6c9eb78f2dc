//! The Stars reconciliation (bot subsystem, leader only): reads the bot's Stars transactions
//! from Telegram (`getStarTransactions`, every page) and compares them with the payments this
//! shop recorded. Run by [`Periodic`](super::periodic::Periodic).
//!
//! - A Telegram payment with no record here (its `successful_payment` was lost, say in a crash
//!   between Telegram's delivery and the write) is recorded now, through the same path as the
//!   update: it pays its order if it still fits, or is kept as unmatched and alerted.
//! - A refund Telegram lists that is not recorded here is recorded (the order is refunded).
//! - A credited payment older than [`SETTLE_GRACE`] (by default) that Telegram does not list is reported to
//!   operators once.
//!
//! Each finding counts in `stars_reconciliation_findings_total{kind}`; the credited payments
//! Telegram does not list are the `stars_reconciliation_missing` gauge.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use teloxide::types::{StarTransaction, TransactionPartner, TransactionPartnerUserKind};

use super::periodic::Round;
use crate::bot::OrderDesk;
use crate::bot::outbound::Outbound;
use crate::domain::now_ms;
use crate::store::{IncomingStarsPayment, StarsRefunded, StarsSettled, Store};

/// Transactions per `getStarTransactions` page (the Bot API's most).
const PAGE: u8 = 100;
/// Pages read in one round at most.
const MAX_PAGES: u32 = 1000;
/// A payment this young may not be listed by Telegram yet.
pub const SETTLE_GRACE: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct StarsReconciler {
    pub store: Store,
    pub orders: Arc<dyn OrderDesk>,
    pub outbound: Outbound,
    /// Credited payments younger than this are not expected among Telegram's transactions yet
    /// ([`SETTLE_GRACE`]).
    pub grace: Duration,
}

/// What Telegram's transactions say about invoice payments.
#[derive(Debug, Default)]
pub struct TelegramLedger {
    /// Incoming invoice payments by charge id.
    pub paid: HashMap<String, IncomingStarsPayment>,
    /// Charge ids Telegram refunded.
    pub refunded: HashSet<String>,
}

impl TelegramLedger {
    /// Sorts transactions into invoice payments and their refunds; everything else (ads, API
    /// fees, withdrawals, gifts) is not a sale of this shop's.
    pub fn read(transactions: &[StarTransaction]) -> TelegramLedger {
        let mut ledger = TelegramLedger::default();
        for t in transactions {
            let charge = t.id.0.clone();
            if let Some(TransactionPartner::User(u)) = &t.source
                && let TransactionPartnerUserKind::InvoicePayment(p) = &u.kind
            {
                ledger.paid.insert(
                    charge.clone(),
                    IncomingStarsPayment {
                        charge_id: charge,
                        provider_charge_id: String::new(),
                        telegram_id: u.user.id.0 as i64,
                        currency: crate::domain::stars::CURRENCY.to_owned(),
                        total_amount: i64::from(t.amount),
                        payload: p.invoice_payload.clone().unwrap_or_default(),
                    },
                );
            } else if let Some(TransactionPartner::User(u)) = &t.receiver
                && matches!(u.kind, TransactionPartnerUserKind::InvoicePayment(_))
            {
                ledger.refunded.insert(charge);
            }
        }
        ledger
    }
}

fn finding(kind: &'static str) {
    metrics::counter!("stars_reconciliation_findings_total", "kind" => kind).increment(1);
}

impl StarsReconciler {
    async fn transactions(&self, stopping: &AtomicBool) -> Option<Vec<StarTransaction>> {
        let mut all = Vec::new();
        for page in 0..MAX_PAGES {
            if stopping.load(Ordering::Relaxed) {
                return None;
            }
            let offset = page * u32::from(PAGE);
            match self.outbound.star_transactions(offset, PAGE).await {
                Ok(r) => {
                    let n = r.transactions.len();
                    all.extend(r.transactions);
                    if n < usize::from(PAGE) {
                        return Some(all);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, offset, "Stars transactions not read; reconciliation retries later");
                    return None;
                }
            }
        }
        Some(all)
    }

    /// One comparison of Telegram's transactions with the records; faults end the round.
    pub async fn reconcile(&self, stopping: &AtomicBool) -> Result<(), crate::store::StoreError> {
        let Some(transactions) = self.transactions(stopping).await else {
            return Ok(());
        };
        let ledger = TelegramLedger::read(&transactions);
        for (charge, payment) in &ledger.paid {
            if stopping.load(Ordering::Relaxed) {
                return Ok(());
            }
            let recorded = self.store.stars_payment_by_charge(charge).await?;
            if recorded.is_none() {
                match self.orders.pay_stars(payment).await {
                    Ok(StarsSettled::Paid(order)) => {
                        finding("unrecorded_payment");
                        tracing::warn!(order_id = order.id, %charge, "a Stars payment Telegram lists was not recorded; it paid its order now");
                    }
                    Ok(StarsSettled::Unmatched { payment_id, misfit }) => {
                        finding("unrecorded_payment");
                        tracing::warn!(payment_id, %charge, reason = %misfit, "a Stars payment Telegram lists was not recorded; kept as unmatched");
                    }
                    Ok(StarsSettled::Repeated) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, %charge, "unrecorded Stars payment not placed yet")
                    }
                }
            }
        }
        for charge in &ledger.refunded {
            if let Some(p) = self.store.stars_payment_by_charge(charge).await?
                && p.refunded_at.is_none()
                && let StarsRefunded::Done(_) = self
                    .store
                    .mark_stars_refunded(p.id, "reconciler:stars")
                    .await?
            {
                finding("unrecorded_refund");
                metrics::counter!("stars_refunds_total").increment(1);
                tracing::warn!(payment_id = p.id, %charge, "a Stars refund Telegram lists was not recorded; recorded now");
            }
        }
        let grace = i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX);
        let mut missing = 0;
        for p in self.store.credited_stars_payments(now_ms() - grace).await? {
            if !ledger.paid.contains_key(&p.charge_id) && !ledger.refunded.contains(&p.charge_id) {
                missing += 1;
                if self.store.report_missing_stars_transaction(p.id).await? {
                    finding("missing_transaction");
                    tracing::warn!(payment_id = p.id, charge = %p.charge_id, "a credited Stars payment is not among Telegram's transactions; operators told");
                }
            }
        }
        metrics::gauge!("stars_reconciliation_missing").set(f64::from(missing));
        Ok(())
    }
}

impl Round for StarsReconciler {
    // each placement is one transaction: cutting the round leaves nothing half-done
    const FINISH_ON_STOP: Option<Duration> = None;

    fn first_after(&self) -> Option<Duration> {
        Some(Duration::from_secs(2))
    }

    async fn round(&self, stopping: Arc<AtomicBool>) {
        if let Err(e) = self.reconcile(&stopping).await {
            tracing::warn!(error = %e, "Stars reconciliation failed; retrying later");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sampled_transactions_read_as_payments_and_refunds() {
        let sample: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/data/wire/telegram-stars/getStarTransactions.json"
        ))
        .unwrap();
        let parsed: teloxide::types::StarTransactions =
            serde_json::from_value(sample["response"]["body"]["result"].clone()).unwrap();
        let ledger = TelegramLedger::read(&parsed.transactions);
        assert_eq!(ledger.paid.len(), 2, "two incoming invoice payments");
        let first = &ledger.paid["EXAMPLE-telegram-charge-0001"];
        assert_eq!(
            (
                first.telegram_id,
                first.total_amount,
                first.payload.as_str()
            ),
            (123456789, 100, "order:8f3a2c")
        );
        assert_eq!(
            ledger.refunded,
            HashSet::from(["EXAMPLE-telegram-charge-0001".to_owned()]),
            "the refund of the first; API fees and withdrawals are no sales"
        );
    }
}
