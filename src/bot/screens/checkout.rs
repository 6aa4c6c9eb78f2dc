//! From a chosen product or top-up to a pending order: the request text, the amount, the
//! payment instructions, and what the instruction buttons do (check, cancel, pay from balance).

use super::catalog::sold_for_stars;
use super::orders::{own_order, status_text};
use super::{BotError, say};
use crate::bot::callback::Action;
use crate::bot::keyboards::{button, markup};
use crate::bot::outbound::StarsInvoice;
use crate::bot::texts::{clean_input, t, tf, time_left};
use crate::bot::{BotEnv, MAX_REQUEST_CHARS, Session};
use crate::domain::order::{TOPUP_MAX, TOPUP_MIN, check_topup, product_order_price};
use crate::domain::stars::{DESCRIPTION_MAX, TITLE_MAX, fit_invoice_text, invoice_payload};
use crate::domain::{Money, OrderRuleError, OrderStatus, ProductKind, now_ms, utc_minutes};
use crate::messages::orders::OrderError;
use crate::store::{NewOrder, Order, PayOutcome, StoreError};

pub(super) async fn on_request_text(
    env: &BotEnv,
    s: &mut Session,
    product_id: i64,
    stars: bool,
    raw: &str,
) -> Result<(), BotError> {
    let text = clean_input(raw);
    let len = text.chars().count();
    if len == 0 {
        return say(env, s, t(s.lang, "order.request_empty")).await;
    }
    if len > MAX_REQUEST_CHARS {
        return say(
            env,
            s,
            &tf(
                s.lang,
                "order.request_too_long",
                &[("len", &len), ("max", &MAX_REQUEST_CHARS)],
            ),
        )
        .await;
    }
    s.saved.awaiting = None;
    if let Some(notice) = order_product(env, s, product_id, 1, Some(text), stars).await? {
        say(env, s, &notice).await?;
    }
    Ok(())
}

pub(super) async fn on_topup_text(
    env: &BotEnv,
    s: &mut Session,
    raw: &str,
) -> Result<(), BotError> {
    let text = clean_input(raw);
    match Money::parse(text.trim_end_matches(crate::domain::tron::TOKEN).trim()) {
        Ok(amount) if check_topup(amount).is_ok() => {
            s.saved.awaiting = None;
            if let Some(notice) = order_topup(env, s, amount).await? {
                say(env, s, &notice).await?;
            }
            Ok(())
        }
        _ => {
            say(
                env,
                s,
                &tf(
                    s.lang,
                    "balance.invalid",
                    &[("min", &TOPUP_MIN), ("max", &TOPUP_MAX)],
                ),
            )
            .await
        }
    }
}

/// Creates an order for a product and shows its payment instructions (a Stars invoice when
/// `stars`); `Some(notice)` when it could not be created.
pub(super) async fn order_product(
    env: &BotEnv,
    s: &mut Session,
    product_id: i64,
    quantity: i64,
    request: Option<String>,
    stars: bool,
) -> Result<Option<String>, BotError> {
    let lang = s.lang;
    let p = match env.store.product(product_id).await {
        Ok(p) if !p.hidden => p,
        Ok(_) | Err(StoreError::NotFound(_)) => {
            return Ok(Some(t(lang, "product.gone").to_owned()));
        }
        Err(e) => return Err(e.into()),
    };
    let offer = env.store.offer(&p).await?;
    let price = match product_order_price(&offer, quantity) {
        Ok(price) => price,
        Err(OrderRuleError::NotEnoughStock { available }) => {
            return Ok(Some(tf(
                lang,
                "order.not_enough_stock",
                &[("count", &available)],
            )));
        }
        // a button the bot never offers (a forged or outdated one): nothing is ordered
        Err(e) => {
            tracing::info!(user_id = s.user_id, product_id, quantity, reason = %e, "order refused by the order rules");
            return Ok(Some(t(lang, "misc.button_expired").to_owned()));
        }
    };
    let new = NewOrder {
        user_id: s.user_id,
        product_id: Some(p.id),
        kind: p.kind,
        quantity,
        price,
        chain: crate::payments::CHAIN.to_owned(),
        token: crate::payments::TOKEN.to_owned(),
        request_text: request,
    };
    if stars {
        let Some(total) = sold_for_stars(env, &p).and_then(|n| n.checked_mul(quantity)) else {
            return Ok(Some(t(lang, "pay.stars_disabled").to_owned()));
        };
        return create_and_invoice(env, s, &new, total, p.name(lang.code())).await;
    }
    create_and_instruct(env, s, &new, p.name(lang.code())).await
}

/// A Stars order and its invoice in the chat: Telegram shows the Pay button, asks the bot
/// (pre-checkout) before it takes the Stars, and reports the payment.
async fn create_and_invoice(
    env: &BotEnv,
    s: &Session,
    new: &NewOrder,
    stars: i64,
    product_name: &str,
) -> Result<Option<String>, BotError> {
    let lang = s.lang;
    let Ok(amount) = u32::try_from(stars) else {
        return Ok(Some(t(lang, "pay.stars_disabled").to_owned()));
    };
    let order = match env
        .orders
        .create_stars(new, stars, &format!("user:{}", s.user_id))
        .await
    {
        Ok(order) => order,
        Err(e) => {
            tracing::warn!(error = %e, user_id = s.user_id, "Stars order not created");
            return Ok(Some(t(lang, "order.failed").to_owned()));
        }
    };
    let what = format!("{product_name} × {}", order.quantity);
    let description = tf(
        lang,
        "pay.stars_invoice",
        &[
            ("id", &order.id),
            ("product", &what),
            ("stars", &stars),
            ("deadline", &utc_minutes(order.expires_at)),
        ],
    );
    let invoice = StarsInvoice {
        title: fit_invoice_text(
            product_name,
            TITLE_MAX,
            &tf(lang, "pay.stars_invoice_title", &[("id", &order.id)]),
        ),
        description: fit_invoice_text(&description, DESCRIPTION_MAX, &what),
        payload: invoice_payload(order.id),
        label: fit_invoice_text(&what, TITLE_MAX, product_name),
        stars: amount,
    };
    env.outbound.send_invoice(s.telegram_id, &invoice).await?;
    Ok(None)
}

pub(super) async fn order_topup(
    env: &BotEnv,
    s: &mut Session,
    amount: Money,
) -> Result<Option<String>, BotError> {
    let new = NewOrder {
        user_id: s.user_id,
        product_id: None,
        kind: ProductKind::Topup,
        quantity: 1,
        price: amount,
        chain: crate::payments::CHAIN.to_owned(),
        token: crate::payments::TOKEN.to_owned(),
        request_text: None,
    };
    create_and_instruct(env, s, &new, t(s.lang, "product.topup")).await
}

pub(super) async fn create_and_instruct(
    env: &BotEnv,
    s: &Session,
    new: &NewOrder,
    product_name: &str,
) -> Result<Option<String>, BotError> {
    let lang = s.lang;
    let who = format!("user:{}", s.user_id);
    match env.orders.create(new, &who).await {
        Ok(order) => {
            instructions(env, s, &order, product_name).await?;
            Ok(None)
        }
        Err(OrderError::Busy { retry_at }) => {
            let minutes = ((retry_at - now_ms()).max(0) + 59_999) / 60_000;
            Ok(Some(tf(
                lang,
                "order.busy",
                &[("minutes", &minutes.max(1))],
            )))
        }
        Err(e) => {
            tracing::warn!(error = %e, user_id = s.user_id, "order not created");
            Ok(Some(t(lang, "order.failed").to_owned()))
        }
    }
}

/// Payment instructions: exact amount and address (tap to copy), a QR code, the deadline, and
/// buttons to check, cancel, or pay from the balance.
pub(super) async fn instructions(
    env: &BotEnv,
    s: &Session,
    order: &Order,
    product_name: &str,
) -> Result<(), BotError> {
    let lang = s.lang;
    let address = order.wallet.clone().unwrap_or_default();
    let left = time_left(lang, order.expires_at - now_ms());
    // a top-up is one amount; goods and services say how many
    let what = if order.kind == ProductKind::Topup {
        product_name.to_owned()
    } else {
        format!("{product_name} × {}", order.quantity)
    };
    let text = tf(
        lang,
        "pay.instructions",
        &[
            ("id", &order.id),
            ("product", &what),
            ("amount", &order.payable_amount),
            ("address", &address),
            ("deadline", &utc_minutes(order.expires_at)),
            ("left", &left),
        ],
    );
    let mut rows = vec![vec![
        button(t(lang, "btn.check"), Action::Check(order.id)),
        button(t(lang, "btn.cancel_order"), Action::CancelOrder(order.id)),
    ]];
    if order.kind != ProductKind::Topup {
        let balance = env.store.user(s.user_id).await?.balance;
        if balance >= order.price {
            rows.push(vec![button(
                t(lang, "btn.pay_balance"),
                Action::PayFromBalance(order.id),
            )]);
        }
    }
    rows.push(vec![button(t(lang, "btn.main"), Action::Menu)]);
    let sent = match crate::bot::qr::png(&address) {
        Ok(png) => {
            env.outbound
                .send_photo(s.telegram_id, png, &text, Some(markup(rows)))
                .await?
        }
        Err(e) => {
            tracing::warn!(error = %e, "QR code not rendered; sending text only");
            env.outbound
                .send_text(s.telegram_id, &text, Some(markup(rows)))
                .await?
        }
    };
    // its buttons are taken off when the order stops waiting for payment
    env.store
        .save_payment_message(order.id, s.telegram_id, i64::from(sent.id.0))
        .await?;
    Ok(())
}

pub(super) async fn check_payment(env: &BotEnv, s: &Session, id: i64) -> Result<String, BotError> {
    let lang = s.lang;
    let Some(o) = own_order(env, s, id).await? else {
        return Ok(t(lang, "order.not_found").to_owned());
    };
    if o.status != OrderStatus::PendingPayment {
        return Ok(tf(
            lang,
            "pay.done",
            &[("id", &o.id), ("status", &status_text(lang, o.status))],
        ));
    }
    if let (crate::domain::PaymentMethod::Stars, Some(stars)) = (o.payment_method, o.stars) {
        // paid through Telegram's invoice, confirmed the moment Telegram reports it
        return Ok(tf(
            lang,
            "pay.stars_pending",
            &[("id", &o.id), ("stars", &stars)],
        ));
    }
    let wallet = o.wallet.clone().unwrap_or_default();
    let seen = env
        .store
        .unconfirmed_transfers_to(&wallet, o.payable_amount, o.created_at)
        .await?;
    Ok(if !seen.is_empty() {
        tf(lang, "pay.confirming", &[("id", &o.id)])
    } else if now_ms() > o.expires_at {
        // the window has ended but the scanners may still find a transfer made in time
        tf(lang, "pay.window_closed", &[("id", &o.id)])
    } else {
        tf(
            lang,
            "pay.pending",
            &[("id", &o.id), ("amount", &o.payable_amount)],
        )
    })
}

pub(super) async fn cancel_order(env: &BotEnv, s: &Session, id: i64) -> Result<String, BotError> {
    let lang = s.lang;
    if own_order(env, s, id).await?.is_none() {
        return Ok(t(lang, "order.not_found").to_owned());
    }
    Ok(
        match env.orders.cancel(id, &format!("user:{}", s.user_id)).await {
            Ok(_) => tf(lang, "order.cancelled", &[("id", &id)]),
            Err(OrderError::NotPending(status)) => tf(
                lang,
                "order.cannot_cancel",
                &[("status", &status_text(lang, status))],
            ),
            Err(e) => {
                tracing::warn!(error = %e, order_id = id, "cancellation failed");
                t(lang, "order.failed").to_owned()
            }
        },
    )
}

pub(super) async fn pay_from_balance(
    env: &BotEnv,
    s: &Session,
    id: i64,
) -> Result<Option<String>, BotError> {
    let lang = s.lang;
    let Some(o) = own_order(env, s, id).await? else {
        return Ok(Some(t(lang, "order.not_found").to_owned()));
    };
    let outcome = env
        .orders
        .pay_from_balance(id, &format!("user:{}", s.user_id))
        .await;
    Ok(Some(match outcome {
        Ok(PayOutcome::Paid(_)) => tf(lang, "pay.from_balance", &[("id", &id)]),
        Ok(PayOutcome::InsufficientBalance) => {
            let balance = env.store.user(s.user_id).await?.balance;
            tf(
                lang,
                "pay.balance_short",
                &[("balance", &balance), ("amount", &o.price)],
            )
        }
        Ok(PayOutcome::NotPending(status)) | Err(OrderError::NotPending(status)) => tf(
            lang,
            "pay.done",
            &[("id", &id), ("status", &status_text(lang, status))],
        ),
        Ok(_) | Err(_) => t(lang, "order.failed").to_owned(),
    }))
}
