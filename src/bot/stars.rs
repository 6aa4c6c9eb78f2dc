//! Telegram Stars updates: the pre-checkout query, and the `successful_payment` and
//! `refunded_payment` service messages.
//!
//! The router hands these to their own task instead of the user's session: Telegram waits at
//! most 10 seconds for the pre-checkout answer, and a payment must never wait behind a queue
//! of chat updates or be dropped by the chat rate limit.

use std::time::{Duration, Instant};

use teloxide::types::{Message, PreCheckoutQuery, RefundedPayment, SuccessfulPayment};

use super::BotEnv;
use super::texts::{language_for, t, tf};
use crate::domain::stars::StarsMisfit;
use crate::store::{IncomingStarsPayment, StarsRefunded, StarsSettled};

/// Longest the pre-checkout check may take before the answer is "try again": Telegram's limit
/// is 10 seconds, and the answer still has to travel.
const PRECHECK_BUDGET: Duration = Duration::from_secs(5);
/// Attempts at recording a payment while the database fails, and the first pause between them.
const PAYMENT_ATTEMPTS: u32 = 6;
const PAYMENT_RETRY: Duration = Duration::from_millis(500);

/// Answers a pre-checkout query: yes only when the order its payload names is the payer's,
/// pending, priced at this amount in Stars, and (digital goods) its stock is reserved.
pub async fn on_pre_checkout(env: &BotEnv, q: &PreCheckoutQuery) {
    let started = Instant::now();
    let lang = language_for(q.from.language_code.as_deref(), env.default_language);
    let check = env.store.precheck_stars(
        &q.invoice_payload,
        q.from.id.0 as i64,
        &q.currency,
        i64::from(q.total_amount),
    );
    let (outcome, verdict): (&str, Result<(), String>) = match tokio::time::timeout(
        PRECHECK_BUDGET,
        check,
    )
    .await
    {
        Ok(Ok(Ok(()))) => ("ok", Ok(())),
        Ok(Ok(Err(misfit))) => {
            let text = match misfit {
                StarsMisfit::OutOfStock => t(lang, "pay.stars_out_of_stock").to_owned(),
                StarsMisfit::NotPending(status) => tf(
                    lang,
                    "pay.stars_not_pending",
                    &[("status", &t(lang, &format!("status.{status}")))],
                ),
                _ => t(lang, "pay.stars_mismatch").to_owned(),
            };
            tracing::info!(payload = %q.invoice_payload, reason = %misfit, "pre-checkout refused");
            (misfit.code(), Err(text))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "pre-checkout could not be checked");
            ("error", Err(t(lang, "pay.stars_unavailable").to_owned()))
        }
        Err(_) => {
            tracing::warn!(
                budget_ms = PRECHECK_BUDGET.as_millis() as u64,
                "pre-checkout check too slow; refused so the customer can try again"
            );
            ("timeout", Err(t(lang, "pay.stars_unavailable").to_owned()))
        }
    };
    let answer = env
        .outbound
        .answer_pre_checkout(
            &q.id.0,
            verdict.as_ref().map(|_| ()).map_err(|e| e.as_str()),
        )
        .await;
    if let Err(e) = answer {
        tracing::warn!(error = %e, "pre-checkout answer not delivered");
    }
    metrics::histogram!("precheckout_duration_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("stars_precheckouts_total", "outcome" => outcome).increment(1);
}

/// A `successful_payment` or `refunded_payment` service message.
pub async fn on_payment_message(env: &BotEnv, m: &Message) {
    if let Some(p) = m.successful_payment() {
        on_successful_payment(env, m, p).await;
    } else if let Some(r) = refunded_payment(m) {
        on_refunded_payment(env, r).await;
    }
}

/// The refund a service message reports, if it reports one.
pub fn refunded_payment(m: &Message) -> Option<&RefundedPayment> {
    match &m.kind {
        teloxide::types::MessageKind::RefundedPayment(r) => Some(&r.refunded_payment),
        _ => None,
    }
}

/// Whether the router hands this message to the Stars task instead of a session.
pub fn is_payment_message(m: &Message) -> bool {
    m.successful_payment().is_some() || refunded_payment(m).is_some()
}

async fn on_successful_payment(env: &BotEnv, m: &Message, p: &SuccessfulPayment) {
    // the payer is the sender; in a private chat the chat id is the same user
    let telegram_id = m
        .from
        .as_ref()
        .map(|u| u.id.0 as i64)
        .unwrap_or(m.chat.id.0);
    let payment = IncomingStarsPayment {
        charge_id: p.telegram_payment_charge_id.0.clone(),
        provider_charge_id: p.provider_payment_charge_id.clone(),
        telegram_id,
        currency: p.currency.clone(),
        total_amount: i64::from(p.total_amount),
        payload: p.invoice_payload.clone(),
    };
    let mut pause = PAYMENT_RETRY;
    for attempt in 1..=PAYMENT_ATTEMPTS {
        match env.orders.pay_stars(&payment).await {
            Ok(StarsSettled::Paid(order)) => {
                metrics::counter!("stars_payments_total", "outcome" => "credited").increment(1);
                tracing::info!(order_id = order.id, charge = %payment.charge_id, "Stars payment credited");
                return;
            }
            Ok(StarsSettled::Repeated) => {
                metrics::counter!("stars_payments_total", "outcome" => "repeated").increment(1);
                tracing::info!(charge = %payment.charge_id, "Stars payment seen before; nothing done twice");
                return;
            }
            Ok(StarsSettled::Unmatched { payment_id, misfit }) => {
                metrics::counter!("stars_payments_total", "outcome" => "unmatched").increment(1);
                tracing::warn!(payment_id, reason = %misfit, charge = %payment.charge_id, "Stars payment paid nothing; operators alerted");
                let lang = language_for(
                    m.from.as_ref().and_then(|u| u.language_code.as_deref()),
                    env.default_language,
                );
                let text = tf(
                    lang,
                    "pay.stars_unmatched",
                    &[("amount", &payment.total_amount), ("problem", &misfit)],
                );
                if let Err(e) = env.outbound.send_text(telegram_id, &text, None).await {
                    tracing::debug!(error = %e, "unmatched Stars notice not sent");
                }
                return;
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, charge = %payment.charge_id, "Stars payment not recorded yet; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
    metrics::counter!("stars_payments_total", "outcome" => "failed").increment(1);
    tracing::error!(charge = %payment.charge_id, payload = %payment.payload, amount = payment.total_amount,
        "Stars payment could not be recorded; the reconciliation with Telegram's Stars transactions finds it");
}

async fn on_refunded_payment(env: &BotEnv, r: &RefundedPayment) {
    let charge = &r.telegram_payment_charge_id.0;
    let found = match env.store.stars_payment_by_charge(charge).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, %charge, "refunded_payment not recorded");
            return;
        }
    };
    let Some(payment) = found else {
        tracing::warn!(%charge, "Telegram reports a refund of a Stars payment this shop never recorded");
        return;
    };
    match env
        .store
        .mark_stars_refunded(payment.id, "telegram:refunded_payment")
        .await
    {
        Ok(StarsRefunded::Done(_)) => {
            metrics::counter!("stars_refunds_total").increment(1);
            tracing::info!(payment_id = payment.id, order_id = ?payment.order_id, "Stars refund made elsewhere recorded");
        }
        Ok(StarsRefunded::Already(_)) => {}
        Err(e) => tracing::warn!(error = %e, %charge, "refunded_payment not recorded"),
    }
}
