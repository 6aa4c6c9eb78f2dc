//! Telegram Stars: Stars orders, the pre-checkout check, payments recorded once per
//! `telegram_payment_charge_id`, refunds, and the support requests of `/paysupport`.
//!
//! A Stars payment is written in the same transaction that pays its order, keyed by its charge
//! id: Telegram delivers updates at least once, and a second delivery (after a restart, or to a
//! second instance) meets the unique key and changes nothing. A payment that does not fit the
//! order its payload names is kept as `unmatched`, alerted to operators and refundable; it never
//! pays anything.

use serde::Serialize;
use serde_json::json;

use super::orders::{NewOrder, Order, order_columns};
use super::settlement::{Paid, SettleContext, enqueue_callback, order_in, take_back_commission};
use super::tx::Tx;
use super::{AuditRecord, Page, Store, StoreError, StoreResult, in_tx, on_pool};
use crate::domain::stars::{StarsMisfit, StarsOrder, check_payment, order_of_payload};
use crate::domain::{OrderStatus, OutboxEvent, PaymentMethod, ProductKind, now_ms};

/// A Stars payment as Telegram reported it (`successful_payment`).
#[derive(Debug, Clone)]
pub struct IncomingStarsPayment {
    pub charge_id: String,
    pub provider_charge_id: String,
    /// The payer's Telegram id.
    pub telegram_id: i64,
    pub currency: String,
    pub total_amount: i64,
    pub payload: String,
}

/// A recorded Stars payment.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
pub struct StarsPayment {
    pub id: i64,
    pub charge_id: String,
    pub provider_charge_id: String,
    pub telegram_id: i64,
    pub user_id: Option<i64>,
    pub order_id: Option<i64>,
    pub currency: String,
    /// Whole Stars paid.
    pub total_amount: i64,
    pub payload: String,
    /// `credited` (paid its order) or `unmatched` (paid nothing; waits for an operator).
    pub outcome: String,
    /// Why an unmatched payment paid nothing.
    pub problem: Option<String>,
    pub refunded_at: Option<i64>,
    pub created_at: i64,
}

macro_rules! stars_payment_columns {
    () => {
        "id, charge_id, provider_charge_id, telegram_id, user_id, order_id, currency, total_amount, \
         payload, outcome, problem, refunded_at, created_at"
    };
}

/// A customer's request for help with a payment (`/paysupport`).
#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
pub struct SupportRequest {
    pub id: i64,
    pub user_id: i64,
    pub telegram_id: i64,
    pub first_name: String,
    pub username: Option<String>,
    /// What the request is about (`payment`).
    pub topic: String,
    /// `open` or `closed`.
    pub status: String,
    pub created_at: i64,
    pub closed_at: Option<i64>,
}

/// What recording a Stars payment did.
#[derive(Debug, Clone)]
pub enum StarsSettled {
    /// It paid its order (fulfilled as far as possible): the order as it now stands.
    Paid(Box<Order>),
    /// This charge was recorded before: nothing changed.
    Repeated,
    /// Recorded as unmatched and alerted to operators.
    Unmatched {
        payment_id: i64,
        misfit: StarsMisfit,
    },
}

/// What a refund of Stars found.
#[derive(Debug, Clone)]
pub enum StarsRefunded {
    /// The payment is now marked refunded (and its order, if it paid one).
    Done(Box<StarsPayment>),
    /// It was marked refunded before.
    Already(Box<StarsPayment>),
}

/// The order a payload names, with what the Stars checks need, read inside a transaction.
async fn stars_order_in(
    tx: &mut Tx<'_>,
    order_id: Option<i64>,
) -> StoreResult<Option<(Order, StarsOrder)>> {
    let Some(order_id) = order_id else {
        return Ok(None);
    };
    let order: Option<Order> = tx
        .fetch_optional(
            concat!("select ", order_columns!(), " from orders where id = $1"),
            &[order_id.into()],
        )
        .await?;
    let Some(order) = order else {
        return Ok(None);
    };
    let telegram_id: i64 = tx
        .scalar_one(
            "select telegram_id from users where id = $1",
            &[order.user_id.into()],
        )
        .await?;
    let check = StarsOrder {
        status: order.status,
        method: order.payment_method,
        stars: order.stars,
        telegram_id,
    };
    Ok(Some((order, check)))
}

/// Reserves the stock a digital Stars order needs, so the item paid for is there when the
/// payment arrives; `false` when too little is left (nothing stays reserved then).
async fn reserve_stock(tx: &mut Tx<'_>, order: &Order) -> StoreResult<bool> {
    if order.kind != ProductKind::Digital {
        return Ok(true);
    }
    let held: i64 = tx
        .scalar_one(
            "select count(*) from stock_items where order_id = $1 and delivered_at is null",
            &[order.id.into()],
        )
        .await?;
    let need = order.quantity - held;
    if need <= 0 {
        return Ok(true);
    }
    let taken = tx
        .execute(
            "update stock_items set order_id = $1 where order_id is null and id in \
             (select id from stock_items where product_id = $2 and order_id is null order by id limit $3)",
            &[order.id.into(), order.product_id.into(), need.into()],
        )
        .await?;
    Ok(taken as i64 == need)
}

impl Store {
    /// Creates a pending Stars order: no unique amount (Telegram names the order in the
    /// invoice payload), its price in whole Stars, payable until `window_ms` from now.
    pub async fn create_stars_order(
        &self,
        new: &NewOrder,
        stars: i64,
        window_ms: i64,
        who: &str,
    ) -> StoreResult<Order> {
        if stars <= 0 {
            return Err(StoreError::Conflict(
                "a Stars order costs at least one Star".to_owned(),
            ));
        }
        let now = now_ms();
        let order = in_tx!(self, tx => {
            let order: Order = sqlx::query_as(concat!(
                "insert into orders (user_id, product_id, kind, quantity, price, payable_amount, \
                 chain, token, payment_method, stars, status, request_text, agent_id, expires_at, \
                 created_at, updated_at) \
                 values ($1, $2, $3, $4, 0, 0, 'telegram', 'XTR', 'stars', $5, 'pending_payment', $6, \
                 (select a.id from users u join agents a on a.id = u.referred_by_agent_id \
                  where u.id = $1 and a.status = 'active'), $7, $8, $8) returning ",
                order_columns!()
            ))
            .bind(new.user_id)
            .bind(new.product_id)
            .bind(new.kind.as_str())
            .bind(new.quantity)
            .bind(stars)
            .bind(&new.request_text)
            .bind(now + window_ms)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            Tx::from(&mut *tx)
                .append_audit(&AuditRecord::new(who, "order.created", "order", order.id).after(&order))
                .await?;
            order
        });
        Ok(order)
    }

    /// The pre-checkout question: may `payer` pay `amount` in `currency` for the order
    /// `payload` names? On yes the stock is reserved for the order.
    pub async fn precheck_stars(
        &self,
        payload: &str,
        payer: i64,
        currency: &str,
        amount: i64,
    ) -> StoreResult<Result<(), StarsMisfit>> {
        let mut t = self.begin().await?;
        let mut tx = t.tx();
        let found = stars_order_in(&mut tx, order_of_payload(payload)).await?;
        if let Err(m) = check_payment(found.as_ref().map(|(_, c)| c), payer, currency, amount) {
            return Ok(Err(m));
        }
        let Some((order, _)) = found else {
            return Ok(Err(StarsMisfit::NoOrder));
        };
        if !reserve_stock(&mut tx, &order).await? {
            return Ok(Err(StarsMisfit::OutOfStock));
        }
        t.commit().await?;
        Ok(Ok(()))
    }

    /// Records a Stars payment once per charge id and pays the order it names when it fits,
    /// with the same fulfilment, commission and notifications as a USDT payment.
    pub async fn settle_stars_payment(
        &self,
        p: &IncomingStarsPayment,
        ctx: &SettleContext<'_>,
    ) -> StoreResult<StarsSettled> {
        let now = now_ms();
        let mut t = self.begin().await?;
        let mut tx = t.tx();
        let found = stars_order_in(&mut tx, order_of_payload(&p.payload)).await?;
        let verdict = check_payment(
            found.as_ref().map(|(_, c)| c),
            p.telegram_id,
            &p.currency,
            p.total_amount,
        );
        let user_id: Option<i64> = tx
            .scalar_optional(
                "select id from users where telegram_id = $1",
                &[p.telegram_id.into()],
            )
            .await?;
        // the order stays linked when it is the payer's own (an operator sees which order the
        // Stars were meant for); another user's order is not named
        let (paying, linked, misfit) = match (verdict, found) {
            (Ok(()), Some((order, _))) => (Some(order), None, None),
            (Err(m), Some((order, c))) if c.telegram_id == p.telegram_id => {
                (None, Some(order.id), Some(m))
            }
            (Err(m), _) => (None, None, Some(m)),
            (Ok(()), None) => (None, None, Some(StarsMisfit::NoOrder)),
        };
        let outcome = if paying.is_some() {
            "credited"
        } else {
            "unmatched"
        };
        let order_id = paying.as_ref().map(|o| o.id).or(linked);
        let problem = misfit.map(|m| m.to_string());
        let payment_id: Option<i64> = tx
            .scalar_optional(
                "insert into stars_payments (charge_id, provider_charge_id, telegram_id, user_id, \
                 order_id, currency, total_amount, payload, outcome, problem, created_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 on conflict (charge_id) do nothing returning id",
                &[
                    (&p.charge_id).into(),
                    (&p.provider_charge_id).into(),
                    p.telegram_id.into(),
                    user_id.into(),
                    order_id.into(),
                    (&p.currency).into(),
                    p.total_amount.into(),
                    (&p.payload).into(),
                    outcome.into(),
                    (&problem).into(),
                    now.into(),
                ],
            )
            .await?;
        let Some(payment_id) = payment_id else {
            // the charge was recorded before (a redelivered update): nothing happens twice
            return Ok(StarsSettled::Repeated);
        };
        let Some(order) = paying else {
            let misfit = misfit.unwrap_or(StarsMisfit::NoOrder);
            tx.append_audit(
                &AuditRecord::new(
                    ctx.who,
                    "stars_payment.unmatched",
                    "stars_payment",
                    payment_id,
                )
                .after(
                    &json!({"charge_id": p.charge_id, "telegram_id": p.telegram_id,
                        "amount": p.total_amount, "currency": p.currency, "payload": p.payload,
                        "problem": misfit.to_string()}),
                ),
            )
            .await?;
            tx.enqueue_event(&OutboxEvent::StarsPaymentUnmatched { payment_id })
                .await?;
            t.commit().await?;
            return Ok(StarsSettled::Unmatched { payment_id, misfit });
        };
        let paid = tx
            .execute(
                "update orders set status = 'paid', paid_at = $2, updated_at = $2 \
                 where id = $1 and status = 'pending_payment'",
                &[order.id.into(), now.into()],
            )
            .await?;
        if paid != 1 {
            // closed by another instance since the read: keep the payment, unmatched
            drop(t);
            return Box::pin(self.settle_stars_payment(p, ctx)).await;
        }
        tx.append_audit(
            &AuditRecord::new(ctx.who, "order.paid", "order", order.id)
                .before(&json!({"status": OrderStatus::PendingPayment}))
                .after(
                    &json!({"status": OrderStatus::Paid, "stars": p.total_amount,
                    "charge_id": p.charge_id}),
                ),
        )
        .await?;
        let paid = Paid {
            now,
            credit: 0,
            transfer_id: None,
        };
        let outcome = paid
            .announce_and_fulfil(&mut tx, &order, ctx, self.callbacks)
            .await?;
        t.commit().await?;
        Ok(match outcome {
            crate::store::PayOutcome::Paid(order) => StarsSettled::Paid(order),
            _ => StarsSettled::Repeated,
        })
    }

    /// The payment that paid `order_id`, if a Stars payment did.
    pub async fn stars_payment_of_order(&self, order_id: i64) -> StoreResult<Option<StarsPayment>> {
        on_pool!(self, pool => {
            Ok(sqlx::query_as(concat!(
                "select ", stars_payment_columns!(),
                " from stars_payments where order_id = $1 and outcome = 'credited'"
            ))
            .bind(order_id)
            .fetch_optional(pool)
            .await?)
        })
    }

    pub async fn stars_payment(&self, id: i64) -> StoreResult<StarsPayment> {
        on_pool!(self, pool => {
            sqlx::query_as(concat!("select ", stars_payment_columns!(), " from stars_payments where id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound("stars payment"))
        })
    }

    pub async fn stars_payment_by_charge(
        &self,
        charge_id: &str,
    ) -> StoreResult<Option<StarsPayment>> {
        on_pool!(self, pool => {
            Ok(sqlx::query_as(concat!(
                "select ", stars_payment_columns!(), " from stars_payments where charge_id = $1"
            ))
            .bind(charge_id)
            .fetch_optional(pool)
            .await?)
        })
    }

    /// Recorded Stars payments, newest first; `outcome` filters (`credited`, `unmatched`).
    pub async fn list_stars_payments(
        &self,
        outcome: Option<&str>,
        page: Page,
    ) -> StoreResult<Vec<StarsPayment>> {
        on_pool!(self, pool => {
            Ok(sqlx::query_as(concat!(
                "select ", stars_payment_columns!(),
                " from stars_payments where ($1 is null or outcome = $1) order by id desc limit $2 offset $3"
            ))
            .bind(outcome)
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Credited, unrefunded Stars payments recorded before `before` (Unix ms), oldest first:
    /// what the reconciliation expects to find among Telegram's Stars transactions.
    pub async fn credited_stars_payments(&self, before: i64) -> StoreResult<Vec<StarsPayment>> {
        on_pool!(self, pool => {
            Ok(sqlx::query_as(concat!(
                "select ", stars_payment_columns!(),
                " from stars_payments where outcome = 'credited' and refunded_at is null \
                  and created_at < $1 order by id"
            ))
            .bind(before)
            .fetch_all(pool)
            .await?)
        })
    }

    /// Tells operators, once, that a credited Stars payment is missing from Telegram's Stars
    /// transactions. `true` the first time.
    pub async fn report_missing_stars_transaction(&self, payment_id: i64) -> StoreResult<bool> {
        self.enqueue_event(&OutboxEvent::StarsTransactionMissing { payment_id })
            .await
    }

    /// Marks a Stars payment refunded (Telegram has given the Stars back). When it paid an
    /// order, the order becomes `refunded`, the delivered items are revoked, the agent's
    /// commission is taken back and the customer is told, in the same transaction.
    pub async fn mark_stars_refunded(
        &self,
        payment_id: i64,
        who: &str,
    ) -> StoreResult<StarsRefunded> {
        let now = now_ms();
        let mut t = self.begin().await?;
        let mut tx = t.tx();
        let payment: StarsPayment = tx
            .fetch_optional(
                concat!(
                    "select ",
                    stars_payment_columns!(),
                    " from stars_payments where id = $1"
                ),
                &[payment_id.into()],
            )
            .await?
            .ok_or(StoreError::NotFound("stars payment"))?;
        let marked = tx
            .execute(
                "update stars_payments set refunded_at = $2 where id = $1 and refunded_at is null",
                &[payment_id.into(), now.into()],
            )
            .await?;
        if marked != 1 {
            return Ok(StarsRefunded::Already(Box::new(payment)));
        }
        tx.append_audit(
            &AuditRecord::new(who, "stars_payment.refunded", "stars_payment", payment_id)
                .before(&json!({"refunded_at": null}))
                .after(&json!({"refunded_at": now, "amount": payment.total_amount})),
        )
        .await?;
        if let (Some(order_id), "credited") = (payment.order_id, payment.outcome.as_str()) {
            refund_stars_order(&mut tx, order_id, now, who, self.callbacks).await?;
        }
        t.commit().await?;
        let mut payment = payment;
        payment.refunded_at = Some(now);
        Ok(StarsRefunded::Done(Box::new(payment)))
    }

    /// Support requests, newest first; `status` filters (`open`, `closed`).
    pub async fn list_support_requests(
        &self,
        status: Option<&str>,
        page: Page,
    ) -> StoreResult<Vec<SupportRequest>> {
        on_pool!(self, pool => {
            Ok(sqlx::query_as(
                "select r.id, r.user_id, u.telegram_id, u.first_name, u.username, r.topic, r.status, \
                 r.created_at, r.closed_at from support_requests r join users u on u.id = r.user_id \
                 where ($1 is null or r.status = $1) order by r.id desc limit $2 offset $3",
            )
            .bind(status)
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(pool)
            .await?)
        })
    }

    /// An operator closes a support request (answered); `false` when it was closed already.
    pub async fn close_support_request(&self, id: i64, who: &str) -> StoreResult<bool> {
        let mut t = self.begin().await?;
        let mut tx = t.tx();
        let exists: Option<String> = tx
            .scalar_optional(
                "select status from support_requests where id = $1",
                &[id.into()],
            )
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound("support request"));
        }
        let now = now_ms();
        let closed = tx
            .execute(
                "update support_requests set status = 'closed', closed_at = $2 where id = $1 and status = 'open'",
                &[id.into(), now.into()],
            )
            .await?;
        if closed == 1 {
            tx.append_audit(
                &AuditRecord::new(who, "support_request.closed", "support_request", id)
                    .before(&json!({"status": "open"}))
                    .after(&json!({"status": "closed"})),
            )
            .await?;
            t.commit().await?;
        }
        Ok(closed == 1)
    }

    /// A customer's `/paysupport`: a request for operators, who are alerted.
    pub async fn open_support_request(&self, user_id: i64, topic: &str) -> StoreResult<i64> {
        let mut t = self.begin().await?;
        let mut tx = t.tx();
        let id: i64 = tx
            .scalar_one(
                "insert into support_requests (user_id, topic, created_at) values ($1, $2, $3) returning id",
                &[user_id.into(), topic.into(), now_ms().into()],
            )
            .await?;
        tx.enqueue_event(&OutboxEvent::SupportRequest {
            request_id: id,
            user_id,
        })
        .await?;
        t.commit().await?;
        Ok(id)
    }
}

/// The order side of a Stars refund: `refunded`, items revoked, commission taken back, the
/// customer and the merchant told.
async fn refund_stars_order(
    tx: &mut Tx<'_>,
    order_id: i64,
    now: i64,
    who: &str,
    callbacks: bool,
) -> StoreResult<()> {
    let before = order_in(tx, order_id).await?;
    if before.payment_method != PaymentMethod::Stars {
        return Err(StoreError::Conflict(
            "the order was not paid with Stars".to_owned(),
        ));
    }
    if before.status == OrderStatus::Refunded {
        return Ok(());
    }
    before.status.check_transition(OrderStatus::Refunded)?;
    let moved = tx
        .execute(
            "update orders set status = 'refunded', updated_at = $2 where id = $1 and status = $3",
            &[order_id.into(), now.into(), before.status.as_str().into()],
        )
        .await?;
    if moved != 1 {
        return Err(StoreError::Conflict(
            "the order changed meanwhile; try again".to_owned(),
        ));
    }
    tx.execute(
        "update stock_items set revoked_at = $2 where order_id = $1 and revoked_at is null",
        &[order_id.into(), now.into()],
    )
    .await?;
    take_back_commission(tx, order_id).await?;
    tx.append_audit(
        &AuditRecord::new(who, "order.refunded", "order", order_id)
            .before(&json!({"status": before.status}))
            .after(&json!({"status": OrderStatus::Refunded, "stars": before.stars})),
    )
    .await?;
    tx.enqueue_event(&OutboxEvent::OrderStatus {
        order_id,
        user_id: before.user_id,
        status: OrderStatus::Refunded,
    })
    .await?;
    enqueue_callback(tx, callbacks, OrderStatus::Refunded, order_id).await?;
    Ok(())
}
