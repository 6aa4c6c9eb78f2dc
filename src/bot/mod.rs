//! The Telegram bot: what customers see.
//!
//! Updates come in through teloxide (long polling, the webhook route, or the built-in
//! simulator), go to the router actor, and from there to one session actor per Telegram user, so
//! one user's updates are handled in order while users run in parallel. The screens (menus,
//! catalog, ordering, payment instructions, orders, profile, balance) are in [`screens`]; texts
//! come from `locales/` through [`texts`]; everything sent goes through [`outbound::Outbound`],
//! which paces and retries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Language;
use crate::messages::orders::OrderError;
use crate::ratelimit::RateLimiter;
use crate::store::{
    BoxFuture, IncomingStarsPayment, NewOrder, Order, PayOutcome, StarsSettled, Store,
};

pub mod callback;
pub mod commands;
pub mod keyboards;
pub mod notices;
pub mod outbound;
pub mod qr;
pub mod screens;
pub mod simulator;
pub mod stars;
pub mod texts;

/// What the screens ask of the orders subsystem. The order manager's handle
/// ([`crate::actors::order_manager::OrdersHandle`]) answers it.
pub trait OrderDesk: Send + Sync {
    /// A pending order with its unique amount, or why none could be made.
    fn create<'a>(
        &'a self,
        new: &'a NewOrder,
        who: &'a str,
    ) -> BoxFuture<'a, Result<Order, OrderError>>;
    /// The customer pays a pending order from their balance.
    fn pay_from_balance<'a>(
        &'a self,
        order_id: i64,
        who: &'a str,
    ) -> BoxFuture<'a, Result<PayOutcome, OrderError>>;
    /// A pending Stars order costing `stars`.
    fn create_stars<'a>(
        &'a self,
        new: &'a NewOrder,
        stars: i64,
        who: &'a str,
    ) -> BoxFuture<'a, Result<Order, OrderError>>;
    /// A Stars payment Telegram reported: recorded once, paying its order when it fits.
    fn pay_stars<'a>(
        &'a self,
        payment: &'a IncomingStarsPayment,
    ) -> BoxFuture<'a, Result<StarsSettled, OrderError>>;
    /// The customer's own cancellation.
    fn cancel<'a>(
        &'a self,
        order_id: i64,
        who: &'a str,
    ) -> BoxFuture<'a, Result<Order, OrderError>>;
}

/// What every session shares; read-only.
pub struct BotEnv {
    pub store: Store,
    pub orders: std::sync::Arc<dyn OrderDesk>,
    pub outbound: outbound::Outbound,
    pub limiter: RateLimiter,
    pub default_language: Language,
    pub shop_name: String,
    pub bot_username: String,
    pub idle_timeout: Duration,
    /// Quantity and top-up keyboards older than this no longer order.
    pub order_button_lifetime: Duration,
    /// Products with a Stars price offer "Pay with Stars".
    pub stars_enabled: bool,
    /// Time a customer has to pay a Stars invoice.
    pub stars_window: Duration,
}

/// What a session must remember between updates; saved in `users.session_state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedState {
    /// The text the bot waits for, if any.
    #[serde(default)]
    pub awaiting: Option<Awaiting>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Awaiting {
    /// The request text of a service order (paid with Stars when `stars`).
    Request {
        product_id: i64,
        #[serde(default)]
        stars: bool,
    },
    /// A custom top-up amount.
    TopupAmount,
}

/// One customer's session, owned by their session actor.
#[derive(Debug)]
pub struct Session {
    pub telegram_id: i64,
    pub user_id: i64,
    pub lang: Language,
    /// As Telegram reports it (shown escaped).
    pub first_name: String,
    /// The user was created by this session's first update (referral links bind then).
    pub first_contact: bool,
    pub saved: SavedState,
}

/// Longest request text of a service order.
pub const MAX_REQUEST_CHARS: usize = 1000;
