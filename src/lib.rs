//! TeleBot: a self-hosted platform for selling services and digital goods through a Telegram bot,
//! paid in USDT on TRON.
//!
//! # The process
//!
//! One tree of supervised actors (ractor on tokio) beside one HTTP server, over one store
//! (SQLite or PostgreSQL). This is the only drawing of the tree in the code; docs/ARCHITECTURE.md
//! draws the same one with more words.
//!
//! ```text
//! root supervisor (one-for-one)                 src/app.rs builds it, src/supervision/ runs it
//! ├── notifier   supervisor
//! │   ├── outbox        customer and operator notifications      src/actors/outbox_worker.rs
//! │   ├── broadcaster   operator broadcasts, paced, resumable    src/actors/broadcaster.rs
//! │   └── callbacks     signed merchant callbacks (configured)   src/actors/callback_worker.rs
//! ├── payments   supervisor
//! │   ├── matcher       owns the unique-amount allocation table  src/actors/matcher.rs
//! │   ├── scanner-*     TronGrid, full node or demo chain        src/actors/*_scanner.rs, demo_chain.rs
//! │   └── reconciler    places transfers a fault left pending    src/actors/reconciler.rs
//! ├── orders     supervisor
//! │   └── manager       one order actor per pending order        src/actors/order_manager.rs
//! │       └── order <id>   its expiry timer; pays, expires, cancels  src/actors/order.rs
//! └── bot        supervisor
//!     ├── router        one session actor per Telegram user      src/actors/bot_router.rs
//!     │   └── session <telegram id>   that user's updates in order  src/actors/session.rs
//!     └── telegram      long polling or webhook registration     src/actors/telegram_intake.rs
//!
//! http (axum, own accept loop)  /api/v1 /admin /sim /internal /telegram/webhook /healthz /metrics
//!                               src/http/, started before the tree and stopped first
//! ```
//!
//! Children start in the order drawn and stop in reverse. Actors talk through typed handles and
//! messages in `src/messages/`; rules (money, order and agent state machines, order and account
//! rules) live in `src/domain/` without I/O; `src/store/` is the only code that speaks SQL. The
//! outbox, broadcaster, callbacks and reconciler are one pattern, [`actors::periodic`]: a timer,
//! one round at a time, only on the instance that leads.
//!
//! Imports run one way, from the edges down: `main`/`cli` → `app` → `http` → `actors` → `bot`
//! → `payments`, `supervision` → `messages` → `store` → `config` → `domain`. Where a lower layer needs an actor
//! (the payment pipeline pays orders, the screens create them) it names a small trait of its own
//! ([`payments::AmountMatcher`], [`payments::OrderPayer`], [`bot::OrderDesk`]) that the handle
//! implements, so no import runs back up.
//!
//! # The buy flow
//!
//! A customer taps a product in the bot: the update reaches their session actor
//! ([`bot::screens`] for what each button does; `screens/checkout.rs` for ordering), which
//! checks the order rules ([`domain::order`]) and asks the orders subsystem to create the order
//! through [`bot::OrderDesk`], which [`actors::order_manager::OrdersHandle`] implements. In the
//! caller's task one transaction stores the order with a unique amount the matcher hands out
//! ([`messages::matcher`]); the order manager then starts the order's actor with its expiry
//! timer ([`messages::orders`]), and the bot shows the payment instructions. The REST API's
//! `POST /orders` ([`http::api`]) goes through the same handle and rules.
//!
//! # The payment flow
//!
//! A scanner reads USDT transfers to the shop's wallets ([`payments::scan`], [`payments::tron`])
//! and hands each to [`payments`], which records it and asks the matcher which order the amount
//! belongs to ([`payments::AmountMatcher`]), then has the order's actor pay it
//! ([`payments::OrderPayer`]); the settlement transaction ([`store`], `settlement.rs`) pays the
//! order, delivers stock or credits the balance, books the agent's commission and queues the
//! notices in the outbox, all at once; the [`actors::outbox_worker`] delivers them. The order actor expires its order only once every scanner has read past
//! the deadline ([`payments::progress`]); a transfer made in time always pays its order.

pub mod accounts;
pub mod actors;
pub mod app;
pub mod bot;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod http;
pub mod messages;
pub mod payments;
pub mod ratelimit;
pub mod store;
pub mod supervision;
pub mod telemetry;

use config::Config;

/// Runs the service until Ctrl-C or SIGTERM, then shuts down gracefully.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Listen for SIGTERM and Ctrl-C before anything starts: a signal that arrives while the
    // service starts (or a moment after it reports ready) then stops it gracefully instead of
    // killing it with the default action.
    let mut stop = ShutdownSignals::listen()?;
    if config.metrics.enabled {
        telemetry::metrics_handle();
    }
    let started = std::time::Instant::now();
    for line in config.summary() {
        tracing::info!("{line}");
    }
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let demo = config.tron.is_demo();
    let mut running = app::start(config).await?;
    if demo {
        if demo::seed_catalog(&running.app.store).await? {
            tracing::info!("demo catalog created (English and Chinese)");
        }
        match demo::demo_admin(&running.app.store).await {
            Ok(Some(password)) => tracing::warn!(
                "DEMO dashboard: http://{}/admin (log in as admin / {password}); \
                 chat with the bot in its Telegram simulator panel",
                running.http_addr
            ),
            Ok(None) => tracing::warn!(
                "DEMO dashboard: http://{}/admin (log in as admin with the password you set); \
                 chat with the bot in its Telegram simulator panel",
                running.http_addr
            ),
            Err(e) => tracing::warn!(error = %e, "demo login not created"),
        }
    } else {
        tracing::info!(
            "dashboard: http://{}/admin (log in with an account from `telebot account set` or an admin API token)",
            running.http_addr
        );
        if running.app.simulator.is_some() {
            // real wallets, but no Telegram token: the simulator's user side has no login
            tracing::warn!(
                "no telegram.token: customers are simulated at http://{}/sim, which anyone who \
                 can reach this address may use; payments to the configured wallets are real. \
                 Keep http.addr private or set telegram.token",
                running.http_addr
            );
        }
    }
    tracing::info!(
        addr = %running.http_addr,
        startup_ms = started.elapsed().as_millis() as u64,
        "telebot is up: http://{}/readyz",
        running.http_addr
    );
    tokio::select! {
        _ = stop.recv() => {
            tracing::info!("shutdown requested; finishing in-flight work");
            running.shutdown().await;
            tracing::info!("stopped cleanly");
            Ok(())
        }
        _ = running.tree_stopped() => {
            anyhow::bail!("the supervision tree stopped: a subsystem exceeded its restart budget")
        }
    }
}

/// Applies migrations and exits (`telebot migrate`).
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = app::open_store(config).await?;
    tracing::info!(backend = store.backend(), "migrations applied");
    store.close().await;
    Ok(())
}

/// The signals that ask the service to stop: SIGTERM (what container runtimes and systemd send)
/// and SIGINT (Ctrl-C). The handlers are installed when this is created; signals that arrive
/// before `recv` is awaited are kept, not lost.
struct ShutdownSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn listen() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.interrupt.recv() => {},
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
