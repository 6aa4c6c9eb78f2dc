//! The customer's orders: the list, one order's detail, and the ownership check every button
//! that names an order goes through.

use super::{BotError, PAGE_SIZE, Target, show};
use crate::bot::callback::Action;
use crate::bot::keyboards::{back, button, markup};
use crate::bot::texts::{t, tf};
use crate::bot::{BotEnv, Session};
use crate::config::Language;
use crate::domain::{OrderStatus, utc_minutes};
use crate::store::{Order, OrderFilter, Page, StoreError};

/// The order if it belongs to this session's user; `None` for anyone else's (forged buttons).
pub(super) async fn own_order(
    env: &BotEnv,
    s: &Session,
    id: i64,
) -> Result<Option<Order>, BotError> {
    match env.store.order(id).await {
        Ok(o) if o.user_id == s.user_id => Ok(Some(o)),
        Ok(o) => {
            tracing::warn!(
                user_id = s.user_id,
                order_id = o.id,
                "callback names another user's order; ignored"
            );
            Ok(None)
        }
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What an order costs, in its currency: "10.001 USDT" or "100 ⭐".
pub(super) fn order_amount(o: &Order) -> String {
    match (o.payment_method, o.stars) {
        (crate::domain::PaymentMethod::Stars, Some(n)) => format!("{n} ⭐"),
        _ => format!("{} {}", o.payable_amount, crate::domain::tron::TOKEN),
    }
}

pub(super) fn status_text(lang: Language, status: OrderStatus) -> &'static str {
    t(lang, &format!("status.{}", status.as_str()))
}

pub(super) async fn product_name(env: &BotEnv, lang: Language, o: &Order) -> String {
    match o.product_id {
        Some(pid) => env
            .store
            .product_any(pid)
            .await
            .map(|p| p.name(lang.code()).to_owned())
            .unwrap_or_else(|_| format!("#{pid}")),
        None => t(lang, "product.topup").to_owned(),
    }
}

pub(super) async fn orders(
    env: &BotEnv,
    s: &Session,
    target: Target,
    page: u32,
) -> Result<(), BotError> {
    let lang = s.lang;
    let filter = OrderFilter {
        user_id: Some(s.user_id),
        ..Default::default()
    };
    let list = env
        .store
        .list_orders(
            &filter,
            Page::new(PAGE_SIZE as i64 + 1, i64::from(page) * PAGE_SIZE as i64),
        )
        .await?;
    if list.is_empty() && page == 0 {
        return show(
            env,
            s,
            target,
            t(lang, "orders.empty"),
            back(lang, Action::Menu),
        )
        .await;
    }
    let more = list.len() > PAGE_SIZE;
    let mut rows = Vec::new();
    let mut lines = vec![t(lang, "orders.title").to_owned()];
    for o in list.iter().take(PAGE_SIZE) {
        let name = product_name(env, lang, o).await;
        lines.push(tf(
            lang,
            "orders.line",
            &[
                ("id", &o.id),
                ("product", &name),
                ("amount", &order_amount(o)),
                ("status", &status_text(lang, o.status)),
            ],
        ));
        rows.push(vec![button(
            format!("#{} · {}", o.id, name),
            Action::Order(o.id),
        )]);
    }
    let mut nav = Vec::new();
    if page > 0 {
        nav.push(button(
            t(lang, "btn.prev"),
            Action::Orders { page: page - 1 },
        ));
    }
    if more {
        nav.push(button(
            t(lang, "btn.next"),
            Action::Orders { page: page + 1 },
        ));
    }
    if !nav.is_empty() {
        rows.push(nav);
    }
    rows.push(vec![button(t(lang, "btn.main"), Action::Menu)]);
    show(env, s, target, &lines.join("\n"), markup(rows)).await
}

pub(super) async fn order_detail(
    env: &BotEnv,
    s: &Session,
    target: Target,
    o: &Order,
) -> Result<(), BotError> {
    let lang = s.lang;
    let name = product_name(env, lang, o).await;
    let mut text = tf(
        lang,
        "orders.detail",
        &[
            ("id", &o.id),
            ("product", &name),
            ("quantity", &o.quantity),
            ("amount", &order_amount(o)),
            ("status", &status_text(lang, o.status)),
            ("created", &utc_minutes(o.created_at)),
        ],
    );
    if let Some(r) = &o.request_text {
        text.push('\n');
        text.push_str(&tf(lang, "orders.request", &[("request", r)]));
    }
    if let Some(d) = &o.delivery {
        text.push_str("\n\n");
        text.push_str(&tf(lang, "orders.delivery", &[("delivery", d)]));
    }
    let mut rows = Vec::new();
    if o.status == OrderStatus::PendingPayment {
        rows.push(vec![
            button(t(lang, "btn.check"), Action::Check(o.id)),
            button(t(lang, "btn.cancel_order"), Action::CancelOrder(o.id)),
        ]);
    }
    rows.push(vec![
        button(t(lang, "btn.back"), Action::Orders { page: 0 }),
        button(t(lang, "btn.main"), Action::Menu),
    ]);
    show(env, s, target, &text, markup(rows)).await
}
