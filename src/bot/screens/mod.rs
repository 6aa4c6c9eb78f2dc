//! The screens of the bot and what each command, button and text does. Runs inside the user's
//! session actor, so one user's updates are handled strictly in order.
//!
//! Screens edit the message whose button was pressed instead of flooding the chat; commands open
//! a new message. Every button that names an order is checked against the session's user, so a
//! forged callback naming someone else's order does nothing.
//!
//! One file per screen family: `catalog.rs`, `checkout.rs` (ordering and paying), `orders.rs` and
//! `account.rs`; this file takes an update apart and sends it to its screen.

mod account;
mod catalog;
mod checkout;
mod orders;

use teloxide::types::{
    CallbackQuery, InlineKeyboardButtonKind, InlineKeyboardMarkup, MaybeInaccessibleMessage,
    Message, Update, UpdateKind,
};

use super::callback::Action;
use super::commands::{self, Command};
use super::keyboards::{button, main_menu, markup};
use super::outbound::SendError;
use super::texts::{t, tf};
use super::{Awaiting, BotEnv, Session};
use crate::domain::order::{TOPUP_MAX, TOPUP_MIN, check_topup};
use crate::domain::{Money, now_ms};
use crate::store::StoreError;
use account::{agent, apply_as_agent, balance, language, profile, topup};
use catalog::{buy, catalog, category, product};
use checkout::{
    cancel_order, check_payment, on_request_text, on_topup_text, order_product, order_topup,
    pay_from_balance,
};
use orders::{order_detail, orders, own_order};

const PAGE_SIZE: usize = 8;

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
    if let Some((command, payload)) = commands::parse(text) {
        let Some(command) = command else {
            s.saved.awaiting = None;
            return say(env, s, t(s.lang, "misc.unknown_command")).await;
        };
        return on_command(env, s, command, payload).await;
    }
    match s.saved.awaiting.clone() {
        Some(Awaiting::Request { product_id, stars }) => {
            on_request_text(env, s, product_id, stars, text).await
        }
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
    command: Command,
    payload: &str,
) -> Result<(), BotError> {
    if command != Command::Cancel {
        s.saved.awaiting = None;
    }
    match command {
        Command::Start => {
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
        Command::Menu => menu(env, s, Target::New).await,
        Command::Catalog => catalog(env, s, Target::New, 0).await,
        Command::Orders => orders(env, s, Target::New, 0).await,
        Command::Profile => profile(env, s, Target::New).await,
        Command::Balance => balance(env, s, Target::New).await,
        Command::Language => language(env, s, Target::New).await,
        Command::Help => info(env, s, Target::New, "help.text").await,
        Command::Terms => info(env, s, Target::New, "terms.text").await,
        Command::Privacy => info(env, s, Target::New, "privacy.text").await,
        Command::Agent => agent(env, s, Target::New).await,
        Command::Paysupport => {
            let id = env.store.open_support_request(s.user_id, "payment").await?;
            say(env, s, &tf(s.lang, "paysupport.text", &[("id", &id)])).await
        }
        Command::Cancel => {
            if s.saved.awaiting.take().is_some() {
                say(env, s, t(s.lang, "cancel.done")).await?;
                menu(env, s, Target::New).await
            } else {
                say(env, s, t(s.lang, "cancel.nothing")).await
            }
        }
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
                    if let Some(n) = buy(env, s, Target::New, product, false).await? {
                        say(env, s, &n).await?;
                    }
                }
                Action::StarsQuantity { product, .. } => {
                    if let Some(n) = buy(env, s, Target::New, product, true).await? {
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
        Action::Buy(id) => notice = buy(env, s, target, id, false).await?,
        Action::BuyStars(id) => notice = buy(env, s, target, id, true).await?,
        Action::Quantity { product, qty } => {
            notice = order_product(env, s, product, i64::from(qty), None, false).await?
        }
        Action::StarsQuantity { product, qty } => {
            notice = order_product(env, s, product, i64::from(qty), None, true).await?
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
    let offers_an_order = matches!(
        action,
        Action::Quantity { .. } | Action::StarsQuantity { .. } | Action::TopupAmount(_)
    );
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
