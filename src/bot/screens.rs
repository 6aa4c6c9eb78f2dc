//! The screens of the bot and what each command, button and text does. Runs inside the user's
//! session actor, so one user's updates are handled strictly in order.
//!
//! Screens edit the message whose button was pressed instead of flooding the chat; commands open
//! a new message. Every button that names an order is checked against the session's user, so a
//! forged callback naming someone else's order does nothing.

use teloxide::types::{
    CallbackQuery, InlineKeyboardButtonKind, InlineKeyboardMarkup, MaybeInaccessibleMessage,
    Message, Update, UpdateKind,
};

use super::callback::Action;
use super::keyboards::{back, button, main_menu, markup, pager};
use super::outbound::SendError;
use super::texts::{clean_input, t, tf};
use super::{Awaiting, BotEnv, MAX_REQUEST_CHARS, Session};
use crate::config::Language;
use crate::domain::order::{TOPUP_MAX, TOPUP_MIN, check_topup, product_order_price};
use crate::domain::{
    AgentStatus, Money, OrderRuleError, OrderStatus, ProductKind, now_ms, utc_minutes,
};
use crate::messages::orders::OrderError;
use crate::store::{NewOrder, Order, OrderFilter, Page, PayOutcome, ProductFilter, StoreError};

const PAGE_SIZE: usize = 8;
const TOPUP_CHOICES: [i64; 4] = [10, 20, 50, 100];

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error(transparent)]
    Send(#[from] SendError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a screen goes: a new message, or the message whose button was pressed.
#[derive(Debug, Clone, Copy)]
enum Target {
    New,
    Edit(i32),
}

/// What kind of update this is, for `bot_updates_total{kind}`.
pub fn kind_of(update: &Update) -> &'static str {
    match &update.kind {
        UpdateKind::Message(m) if m.text().is_some_and(|t| t.starts_with('/')) => "command",
        UpdateKind::Message(m) if m.text().is_some() => "text",
        UpdateKind::Message(_) => "other_message",
        UpdateKind::CallbackQuery(_) => "callback",
        UpdateKind::EditedMessage(_) => "edited_message",
        _ => "other",
    }
}

/// Handles one update of this session's user.
pub async fn handle(env: &BotEnv, s: &mut Session, update: &Update) -> Result<(), BotError> {
    match &update.kind {
        UpdateKind::Message(m) => on_message(env, s, m).await,
        UpdateKind::CallbackQuery(q) => on_callback(env, s, q).await,
        // edits of old messages, and everything else, change nothing
        _ => Ok(()),
    }
}

/// Tells a user once that they are over the rate limit.
pub async fn rate_limited(env: &BotEnv, s: &Session) -> Result<(), BotError> {
    env.outbound
        .send_text(s.telegram_id, t(s.lang, "misc.rate_limited"), None)
        .await?;
    Ok(())
}

async fn show(
    env: &BotEnv,
    s: &Session,
    target: Target,
    text: &str,
    kb: InlineKeyboardMarkup,
) -> Result<(), BotError> {
    if let Target::Edit(id) = target {
        match env
            .outbound
            .edit_text(s.telegram_id, id, text, Some(kb.clone()))
            .await
        {
            Ok(()) => return Ok(()),
            // a photo, or a message too old to edit: send the screen anew
            Err(SendError::Refused(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    env.outbound
        .send_text(s.telegram_id, text, Some(kb))
        .await?;
    Ok(())
}

async fn say(env: &BotEnv, s: &Session, text: &str) -> Result<(), BotError> {
    env.outbound.send_text(s.telegram_id, text, None).await?;
    Ok(())
}

async fn on_message(env: &BotEnv, s: &mut Session, m: &Message) -> Result<(), BotError> {
    let Some(text) = m.text() else {
        return say(env, s, t(s.lang, "misc.unsupported")).await;
    };
    if let Some(command) = text.strip_prefix('/') {
        let (name, payload) = command
            .split_once(char::is_whitespace)
            .unwrap_or((command, ""));
        let name = name.split('@').next().unwrap_or(name).to_ascii_lowercase();
        return on_command(env, s, &name, payload.trim()).await;
    }
    match s.saved.awaiting.clone() {
        Some(Awaiting::Request { product_id }) => on_request_text(env, s, product_id, text).await,
        Some(Awaiting::TopupAmount) => on_topup_text(env, s, text).await,
        None => {
            show(
                env,
                s,
                Target::New,
                t(s.lang, "menu.hint"),
                main_menu(s.lang),
            )
            .await
        }
    }
}

async fn on_command(
    env: &BotEnv,
    s: &mut Session,
    name: &str,
    payload: &str,
) -> Result<(), BotError> {
    if name != "cancel" {
        s.saved.awaiting = None;
    }
    match name {
        "start" => {
            if let Some(code) = payload.strip_prefix("ref_") {
                bind_referral(env, s, code).await?;
            } else if let Some(id) = payload
                .strip_prefix("p_")
                .and_then(|i| i.parse::<i64>().ok())
            {
                return product(env, s, Target::New, id).await;
            }
            menu(env, s, Target::New).await
        }
        "menu" => menu(env, s, Target::New).await,
        "catalog" => catalog(env, s, Target::New, 0).await,
        "orders" => orders(env, s, Target::New, 0).await,
        "profile" => profile(env, s, Target::New).await,
        "balance" => balance(env, s, Target::New).await,
        "language" => language(env, s, Target::New).await,
        "help" => info(env, s, Target::New, "help.text").await,
        "terms" => info(env, s, Target::New, "terms.text").await,
        "privacy" => info(env, s, Target::New, "privacy.text").await,
        "agent" => agent(env, s, Target::New).await,
        "cancel" => {
            if s.saved.awaiting.take().is_some() {
                say(env, s, t(s.lang, "cancel.done")).await?;
                menu(env, s, Target::New).await
            } else {
                say(env, s, t(s.lang, "cancel.nothing")).await
            }
        }
        _ => say(env, s, t(s.lang, "misc.unknown_command")).await,
    }
}

/// First touch wins: a referral code binds only on the user's first contact.
async fn bind_referral(env: &BotEnv, s: &Session, code: &str) -> Result<(), BotError> {
    if !s.first_contact || code.is_empty() || code.len() > 32 {
        return Ok(());
    }
    if let Some(agent) = env.store.active_agent_by_code(code).await?
        && env.store.bind_referral(s.user_id, agent.id).await?
    {
        tracing::info!(user_id = s.user_id, agent_id = agent.id, "referral bound");
        env.store
            .audit(
                crate::store::AuditRecord::new("bot", "user.referred", "user", s.user_id)
                    .after(&serde_json::json!({"agent_id": agent.id})),
            )
            .await?;
    }
    Ok(())
}

async fn on_callback(env: &BotEnv, s: &mut Session, q: &CallbackQuery) -> Result<(), BotError> {
    let target = match &q.message {
        Some(MaybeInaccessibleMessage::Regular(m)) if m.text().is_some() => Target::Edit(m.id.0),
        _ => Target::New,
    };
    let Some(action) = q.data.as_deref().and_then(Action::parse) else {
        env.outbound
            .answer_callback(&q.id.0, Some(t(s.lang, "misc.button_expired")), true)
            .await?;
        return Ok(());
    };
    match button_state(env, q, &action) {
        ButtonState::Live => {}
        ButtonState::NotShown => {
            env.outbound
                .answer_callback(&q.id.0, Some(t(s.lang, "misc.button_expired")), true)
                .await?;
            return Ok(());
        }
        ButtonState::Old => {
            env.outbound
                .answer_callback(&q.id.0, Some(t(s.lang, "misc.keyboard_refreshed")), true)
                .await?;
            // the same choice, shown anew, so the customer confirms current stock and prices
            match action {
                Action::Quantity { product, .. } => {
                    if let Some(n) = buy(env, s, Target::New, product).await? {
                        say(env, s, &n).await?;
                    }
                }
                _ => topup(env, s, Target::New).await?,
            }
            return Ok(());
        }
    }
    // answers that are only a short notice; screens answer with nothing
    let mut notice: Option<String> = None;
    match action {
        Action::Menu => {
            s.saved.awaiting = None;
            menu(env, s, target).await?
        }
        Action::Catalog { page } => catalog(env, s, target, page).await?,
        Action::Category { id, page } => category(env, s, target, id, page).await?,
        Action::Product(id) => product(env, s, target, id).await?,
        Action::Buy(id) => notice = buy(env, s, target, id).await?,
        Action::Quantity { product, qty } => {
            notice = order_product(env, s, product, i64::from(qty), None).await?
        }
        Action::Orders { page } => orders(env, s, target, page).await?,
        Action::Order(id) => match own_order(env, s, id).await? {
            Some(o) => order_detail(env, s, target, &o).await?,
            None => notice = Some(t(s.lang, "order.not_found").to_owned()),
        },
        Action::Check(id) => notice = Some(check_payment(env, s, id).await?),
        Action::CancelOrder(id) => notice = Some(cancel_order(env, s, id).await?),
        Action::PayFromBalance(id) => notice = pay_from_balance(env, s, id).await?,
        Action::Profile => profile(env, s, target).await?,
        Action::Balance => balance(env, s, target).await?,
        Action::Topup => topup(env, s, target).await?,
        Action::TopupAmount(micros) => {
            let amount = Money::from_micros(micros);
            notice = match check_topup(amount) {
                Ok(()) => order_topup(env, s, amount).await?,
                Err(_) => Some(t(s.lang, "misc.button_expired").to_owned()),
            };
        }
        Action::TopupCustom => {
            s.saved.awaiting = Some(Awaiting::TopupAmount);
            say(
                env,
                s,
                &tf(
                    s.lang,
                    "balance.custom",
                    &[("min", &TOPUP_MIN), ("max", &TOPUP_MAX)],
                ),
            )
            .await?;
        }
        Action::Language => language(env, s, target).await?,
        Action::SetLanguage(lang) => {
            s.lang = lang;
            env.store.set_user_language(s.user_id, lang.code()).await?;
            notice = Some(t(lang, "language.set").to_owned());
            menu(env, s, target).await?;
        }
        Action::Help => info(env, s, target, "help.text").await?,
        Action::Terms => info(env, s, target, "terms.text").await?,
        Action::Privacy => info(env, s, target, "privacy.text").await?,
        Action::AgentApply => notice = Some(apply_as_agent(env, s).await?),
    }
    env.outbound
        .answer_callback(&q.id.0, notice.as_deref(), notice.is_some())
        .await?;
    Ok(())
}

/// Whether a pressed button may act.
enum ButtonState {
    Live,
    /// Not a button of the pressed message: forged data, or taken off when its order left
    /// `pending_payment`.
    NotShown,
    /// A quantity or top-up keyboard older than `telegram.order_button_lifetime`.
    Old,
}

/// A button that orders or acts on an order counts only if the bot showed it on the pressed
/// message, and a quantity or top-up keyboard only while it is younger than
/// `telegram.order_button_lifetime` (an older one is shown again instead of ordering). Navigation
/// buttons are always live: they only show screens, and every screen checks what it shows.
fn button_state(env: &BotEnv, q: &CallbackQuery, action: &Action) -> ButtonState {
    let offers_an_order = matches!(action, Action::Quantity { .. } | Action::TopupAmount(_));
    let acts_on_an_order = matches!(
        action,
        Action::Check(_) | Action::CancelOrder(_) | Action::PayFromBalance(_)
    );
    if !offers_an_order && !acts_on_an_order {
        return ButtonState::Live;
    }
    let (Some(MaybeInaccessibleMessage::Regular(m)), Some(data)) = (&q.message, q.data.as_deref())
    else {
        return ButtonState::NotShown;
    };
    let shown = m.reply_markup().is_some_and(|k| {
        k.inline_keyboard
            .iter()
            .flatten()
            .any(|b| matches!(&b.kind, InlineKeyboardButtonKind::CallbackData(d) if d == data))
    });
    if !shown {
        return ButtonState::NotShown;
    }
    if !offers_an_order {
        return ButtonState::Live;
    }
    let shown_at_s = m.edit_date().unwrap_or(&m.date).timestamp();
    let age_ms = now_ms().saturating_sub(shown_at_s.saturating_mul(1000));
    let lifetime_ms = i64::try_from(env.order_button_lifetime.as_millis()).unwrap_or(i64::MAX);
    if age_ms <= lifetime_ms {
        ButtonState::Live
    } else {
        ButtonState::Old
    }
}

async fn menu(env: &BotEnv, s: &Session, target: Target) -> Result<(), BotError> {
    let text = tf(
        s.lang,
        "menu.title",
        &[("shop", &env.shop_name), ("name", &s.first_name)],
    );
    show(env, s, target, &text, main_menu(s.lang)).await
}

async fn info(env: &BotEnv, s: &Session, target: Target, key: &str) -> Result<(), BotError> {
    let kb = markup(vec![
        vec![
            button(t(s.lang, "btn.terms"), Action::Terms),
            button(t(s.lang, "btn.privacy"), Action::Privacy),
        ],
        vec![button(t(s.lang, "btn.main"), Action::Menu)],
    ]);
    show(env, s, target, t(s.lang, key), kb).await
}

fn pages(total: usize) -> u32 {
    total.div_ceil(PAGE_SIZE).max(1) as u32
}

async fn catalog(env: &BotEnv, s: &Session, target: Target, page: u32) -> Result<(), BotError> {
    let lang = s.lang;
    let categories = env.store.list_categories(false).await?;
    let loose = env
        .store
        .list_products(
            &ProductFilter {
                category_id: None,
                include_hidden: false,
            },
            Page::new(Page::MAX_LIMIT, 0),
        )
        .await?
        .into_iter()
        .filter(|p| p.category_id.is_none())
        .collect::<Vec<_>>();
    let mut entries: Vec<_> = categories
        .iter()
        .map(|c| {
            let name = if lang == Language::Zh && !c.name_zh.is_empty() {
                &c.name_zh
            } else {
                &c.name_en
            };
            button(format!("📁 {name}"), Action::Category { id: c.id, page: 0 })
        })
        .collect();
    entries.extend(loose.iter().map(|p| {
        button(
            format!("{} · {} USDT", p.name(lang.code()), p.price),
            Action::Product(p.id),
        )
    }));
    if entries.is_empty() {
        return show(
            env,
            s,
            target,
            t(lang, "catalog.empty"),
            back(lang, Action::Menu),
        )
        .await;
    }
    let total = pages(entries.len());
    let page = page.min(total - 1);
    let mut rows: Vec<_> = entries
        .into_iter()
        .skip(page as usize * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|b| vec![b])
        .collect();
    rows.extend(pager(lang, page, total, |p| Action::Catalog { page: p }));
    rows.push(vec![button(t(lang, "btn.main"), Action::Menu)]);
    let mut text = t(lang, "catalog.title").to_owned();
    if total > 1 {
        text.push_str("\n\n");
        text.push_str(&tf(
            lang,
            "catalog.page",
            &[("page", &(page + 1)), ("pages", &total)],
        ));
    }
    show(env, s, target, &text, markup(rows)).await
}

async fn category(
    env: &BotEnv,
    s: &Session,
    target: Target,
    id: i64,
    page: u32,
) -> Result<(), BotError> {
    let lang = s.lang;
    let Some(cat) = env
        .store
        .list_categories(false)
        .await?
        .into_iter()
        .find(|c| c.id == id)
    else {
        return catalog(env, s, target, 0).await;
    };
    let filter = ProductFilter {
        category_id: Some(id),
        include_hidden: false,
    };
    let total_items = env.store.count_products(&filter).await? as usize;
    let total = pages(total_items);
    let page = page.min(total - 1);
    let products = env
        .store
        .list_products(
            &filter,
            Page::new(PAGE_SIZE as i64, i64::from(page) * PAGE_SIZE as i64),
        )
        .await?;
    let mut rows: Vec<_> = products
        .iter()
        .map(|p| {
            vec![button(
                format!("{} · {} USDT", p.name(lang.code()), p.price),
                Action::Product(p.id),
            )]
        })
        .collect();
    rows.extend(pager(lang, page, total, |p| Action::Category {
        id,
        page: p,
    }));
    rows.push(vec![
        button(t(lang, "btn.back"), Action::Catalog { page: 0 }),
        button(t(lang, "btn.main"), Action::Menu),
    ]);
    let name = if lang == Language::Zh && !cat.name_zh.is_empty() {
        &cat.name_zh
    } else {
        &cat.name_en
    };
    let mut text = tf(lang, "catalog.category", &[("name", name)]);
    if products.is_empty() {
        text.push_str("\n\n");
        text.push_str(t(lang, "catalog.empty"));
    }
    show(env, s, target, &text, markup(rows)).await
}

async fn product(env: &BotEnv, s: &Session, target: Target, id: i64) -> Result<(), BotError> {
    let lang = s.lang;
    let p = match env.store.product(id).await {
        Ok(p) if !p.hidden => p,
        Ok(_) | Err(StoreError::NotFound(_)) => {
            return show(
                env,
                s,
                target,
                t(lang, "product.gone"),
                back(lang, Action::Catalog { page: 0 }),
            )
            .await;
        }
        Err(e) => return Err(e.into()),
    };
    let mut text = tf(
        lang,
        "product.detail",
        &[
            ("name", &p.name(lang.code())),
            ("description", &p.description(lang.code())),
            ("price", &p.price),
        ],
    );
    let mut available = true;
    if p.kind == ProductKind::Digital {
        let stock = env.store.stock_available(p.id).await?;
        available = stock > 0;
        text.push('\n');
        if available {
            text.push_str(&tf(lang, "product.stock", &[("count", &stock)]));
        } else {
            text.push_str(t(lang, "product.out_of_stock"));
        }
    }
    let to = p
        .category_id
        .map(|c| Action::Category { id: c, page: 0 })
        .unwrap_or(Action::Catalog { page: 0 });
    let mut rows = Vec::new();
    if available {
        rows.push(vec![button(t(lang, "btn.buy"), Action::Buy(p.id))]);
    }
    rows.push(vec![
        button(t(lang, "btn.back"), to),
        button(t(lang, "btn.main"), Action::Menu),
    ]);
    show(env, s, target, &text, markup(rows)).await
}

/// The "buy" button: ask for a request text, a quantity, or an amount, by product kind.
async fn buy(
    env: &BotEnv,
    s: &mut Session,
    target: Target,
    id: i64,
) -> Result<Option<String>, BotError> {
    let lang = s.lang;
    let p = match env.store.product(id).await {
        Ok(p) if !p.hidden => p,
        Ok(_) | Err(StoreError::NotFound(_)) => {
            return Ok(Some(t(lang, "product.gone").to_owned()));
        }
        Err(e) => return Err(e.into()),
    };
    match p.kind {
        ProductKind::Service => {
            s.saved.awaiting = Some(Awaiting::Request { product_id: p.id });
            let text = tf(
                lang,
                "order.ask_request",
                &[
                    ("product", &p.name(lang.code())),
                    ("max", &MAX_REQUEST_CHARS),
                ],
            );
            say(env, s, &text).await?;
            Ok(None)
        }
        ProductKind::Digital => {
            let stock = env.store.stock_available(p.id).await?;
            if stock == 0 {
                return Ok(Some(t(lang, "product.out_of_stock").to_owned()));
            }
            let choices: Vec<_> = [1u32, 2, 3, 5, 10]
                .into_iter()
                .filter(|q| i64::from(*q) <= stock)
                .map(|q| {
                    button(
                        q.to_string(),
                        Action::Quantity {
                            product: p.id,
                            qty: q,
                        },
                    )
                })
                .collect();
            let kb = markup(vec![
                choices,
                vec![button(t(lang, "btn.back"), Action::Product(p.id))],
            ]);
            let text = tf(
                lang,
                "order.ask_quantity",
                &[("product", &p.name(lang.code())), ("count", &stock)],
            );
            show(env, s, target, &text, kb).await?;
            Ok(None)
        }
        ProductKind::Topup => {
            topup(env, s, target).await?;
            Ok(None)
        }
    }
}

async fn on_request_text(
    env: &BotEnv,
    s: &mut Session,
    product_id: i64,
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
    if let Some(notice) = order_product(env, s, product_id, 1, Some(text)).await? {
        say(env, s, &notice).await?;
    }
    Ok(())
}

async fn on_topup_text(env: &BotEnv, s: &mut Session, raw: &str) -> Result<(), BotError> {
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

/// Creates an order for a product and shows its payment instructions; `Some(notice)` when it
/// could not be created.
async fn order_product(
    env: &BotEnv,
    s: &mut Session,
    product_id: i64,
    quantity: i64,
    request: Option<String>,
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
    create_and_instruct(env, s, &new, p.name(lang.code())).await
}

async fn order_topup(
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

async fn create_and_instruct(
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
async fn instructions(
    env: &BotEnv,
    s: &Session,
    order: &Order,
    product_name: &str,
) -> Result<(), BotError> {
    let lang = s.lang;
    let address = order.wallet.clone().unwrap_or_default();
    let minutes = ((order.expires_at - now_ms()).max(0) + 59_999) / 60_000;
    let text = tf(
        lang,
        "pay.instructions",
        &[
            ("id", &order.id),
            ("product", &product_name),
            ("amount", &order.payable_amount),
            ("address", &address),
            ("deadline", &utc_minutes(order.expires_at)),
            ("minutes", &minutes),
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
    let sent = match super::qr::png(&address) {
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

/// The order if it belongs to this session's user; `None` for anyone else's (forged buttons).
async fn own_order(env: &BotEnv, s: &Session, id: i64) -> Result<Option<Order>, BotError> {
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

fn status_text(lang: Language, status: OrderStatus) -> &'static str {
    t(lang, &format!("status.{}", status.as_str()))
}

async fn product_name(env: &BotEnv, lang: Language, o: &Order) -> String {
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

async fn check_payment(env: &BotEnv, s: &Session, id: i64) -> Result<String, BotError> {
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

async fn cancel_order(env: &BotEnv, s: &Session, id: i64) -> Result<String, BotError> {
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

async fn pay_from_balance(env: &BotEnv, s: &Session, id: i64) -> Result<Option<String>, BotError> {
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

async fn orders(env: &BotEnv, s: &Session, target: Target, page: u32) -> Result<(), BotError> {
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
                ("amount", &o.payable_amount),
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

async fn order_detail(
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
            ("amount", &o.payable_amount),
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

async fn profile(env: &BotEnv, s: &Session, target: Target) -> Result<(), BotError> {
    let lang = s.lang;
    let user = env.store.user(s.user_id).await?;
    let count = env.store.count_orders_of_user(s.user_id).await?;
    let username = user
        .username
        .as_deref()
        .map(|u| format!("@{u}"))
        .unwrap_or_else(|| t(lang, "profile.no_username").to_owned());
    let text = tf(
        lang,
        "profile.text",
        &[
            ("telegram_id", &user.telegram_id),
            ("username", &username),
            ("date", &utc_minutes(user.created_at)),
            ("balance", &user.balance),
            ("orders", &count),
        ],
    );
    show(env, s, target, &text, back(lang, Action::Menu)).await
}

async fn balance(env: &BotEnv, s: &Session, target: Target) -> Result<(), BotError> {
    let lang = s.lang;
    let user = env.store.user(s.user_id).await?;
    let mut text = tf(lang, "balance.text", &[("balance", &user.balance)]);
    let history = env.store.ledger(s.user_id, 5).await?;
    if !history.is_empty() {
        text.push_str("\n\n");
        text.push_str(t(lang, "balance.history"));
        for e in history {
            let sign = if e.delta.is_negative() { "" } else { "+" };
            text.push('\n');
            text.push_str(&tf(
                lang,
                "balance.entry",
                &[
                    ("delta", &format!("{sign}{}", e.delta)),
                    ("reason", &t(lang, &format!("reason.{}", e.reason))),
                    ("date", &utc_minutes(e.created_at)),
                ],
            ));
        }
    }
    let kb = markup(vec![
        vec![button(t(lang, "btn.topup"), Action::Topup)],
        vec![button(t(lang, "btn.main"), Action::Menu)],
    ]);
    show(env, s, target, &text, kb).await
}

async fn topup(env: &BotEnv, s: &Session, target: Target) -> Result<(), BotError> {
    let lang = s.lang;
    let amounts: Vec<_> = TOPUP_CHOICES
        .iter()
        .map(|&u| button(format!("{u} USDT"), Action::TopupAmount(u * 1_000_000)))
        .collect();
    let kb = markup(vec![
        amounts,
        vec![button(t(lang, "btn.custom_amount"), Action::TopupCustom)],
        vec![
            button(t(lang, "btn.back"), Action::Balance),
            button(t(lang, "btn.main"), Action::Menu),
        ],
    ]);
    show(env, s, target, t(lang, "balance.choose"), kb).await
}

async fn language(env: &BotEnv, s: &Session, target: Target) -> Result<(), BotError> {
    let kb = markup(vec![
        vec![
            button("English", Action::SetLanguage(Language::En)),
            button("中文", Action::SetLanguage(Language::Zh)),
        ],
        vec![button(t(s.lang, "btn.main"), Action::Menu)],
    ]);
    show(env, s, target, t(s.lang, "language.choose"), kb).await
}

/// The commands offered in Telegram's menu, in a language.
pub fn commands(lang: Language) -> Vec<teloxide::types::BotCommand> {
    [
        "start", "menu", "catalog", "orders", "profile", "balance", "language", "agent", "help",
        "terms", "privacy", "cancel",
    ]
    .into_iter()
    .map(|c| teloxide::types::BotCommand::new(c, t(lang, &format!("cmd.{c}"))))
    .collect()
}

/// `/agent`: the agent's link and earnings, or the offer to apply.
async fn agent(env: &BotEnv, s: &Session, target: Target) -> Result<(), BotError> {
    let lang = s.lang;
    match env.store.agent_by_user(s.user_id).await? {
        Some(a) if a.status == AgentStatus::Pending => say(env, s, t(lang, "agent.already")).await,
        Some(a) if a.status == AgentStatus::Rejected => {
            say(env, s, t(lang, "agent.rejected")).await
        }
        Some(a) => {
            let st = env.store.agent_stats(a.id).await?;
            let link = crate::domain::agent::referral_link(&env.bot_username, &a.code);
            let bps = format!("{}.{:02}", a.commission_bps / 100, a.commission_bps % 100);
            let text = tf(
                lang,
                "agent.info",
                &[
                    ("status", &a.status.as_str()),
                    ("link", &link),
                    ("referred", &st.referred_users),
                    ("orders", &st.paid_orders),
                    ("sales", &st.sales),
                    ("bps", &bps),
                    ("pending", &st.pending),
                    (
                        "available",
                        &st.available
                            .checked_add(st.requested)
                            .unwrap_or(st.available),
                    ),
                    ("paid", &st.paid),
                ],
            );
            show(env, s, target, &text, back(lang, Action::Menu)).await
        }
        _ => {
            let kb = markup(vec![
                vec![button(t(lang, "agent.apply"), Action::AgentApply)],
                vec![button(t(lang, "btn.main"), Action::Menu)],
            ]);
            show(env, s, target, t(lang, "agent.offer"), kb).await
        }
    }
}

async fn apply_as_agent(env: &BotEnv, s: &Session) -> Result<String, BotError> {
    let lang = s.lang;
    match env.store.agent_by_user(s.user_id).await? {
        Some(a) if a.status == AgentStatus::Rejected => {
            return Ok(t(lang, "agent.rejected").to_owned());
        }
        Some(_) => return Ok(t(lang, "agent.already").to_owned()),
        None => {}
    }
    env.store
        .create_agent(
            &crate::store::NewAgent {
                user_id: Some(s.user_id),
                name: s.first_name.clone(),
                code: crate::domain::agent::new_code(),
                commission_bps: 0,
                status: AgentStatus::Pending,
            },
            &format!("user:{}", s.user_id),
        )
        .await?;
    Ok(t(lang, "agent.applied").to_owned())
}
