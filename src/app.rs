//! Wiring: opens the store, builds the handles, starts the supervision tree and the HTTP server,
//! and shuts everything down in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorRef};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actors::bot_router::{BotHandle, BotRouter};
use crate::actors::broadcaster::Broadcaster;
use crate::actors::callback_worker::CallbackWorker;
use crate::actors::demo_chain::{DemoChain, DemoChainHandle};
use crate::actors::fullnode_scanner::FullNodeScanner;
use crate::actors::matcher::{Matcher, MatcherHandle};
use crate::actors::order::OrderEnv;
use crate::actors::order_manager::{OrderManager, OrdersHandle};
use crate::actors::outbox_worker::OutboxWorker;
use crate::actors::periodic::Periodic;
use crate::actors::reconciler::Reconciler;
use crate::actors::telegram_intake::{IntakeMode, TelegramIntake};
use crate::actors::trongrid_scanner::TronGridScanner;
use crate::bot::BotEnv;
use crate::bot::outbound::Outbound;
use crate::bot::simulator::Simulator;
use crate::config::{Config, Secret, TelegramMode, TronSource};
use crate::domain::TronAddress;
use crate::domain::allocation::TableRules;
use crate::domain::tron::{CHAIN, TOKEN};
use crate::http::HttpState;
use crate::http::login_guard::LoginGuard;
use crate::messages::supervisor::SupervisorMsg;
use crate::payments::Payments;
use crate::payments::callback::CallbackClient;
use crate::payments::progress::ChainProgress;
use crate::ratelimit::RateLimiter;
use crate::store::{ConnectOptions, Store, StoreError};
use crate::supervision::{ActorSlot, ChildSpec, Leadership, Registry, RestartPolicy, Supervisor};

/// Receiving wallets of the demo chain (valid TRON addresses that belong to nobody we know).
pub const DEMO_WALLETS: &[&str] = &["T9yD14Nj9j7xAB4dbGeiX9h8unkKHxuWwb"];

/// Longest wait for lagging scanners after a payment window ends before the order expires
/// anyway (a later payment then follows the late-payment rule).
const MAX_EXPIRY_WAIT: Duration = Duration::from_secs(3600);
/// How often the outbox is checked for due notifications.
const OUTBOX_EVERY: Duration = Duration::from_millis(300);
/// How often the broadcaster looks for a running broadcast.
const BROADCAST_EVERY: Duration = Duration::from_secs(1);
/// Token the bot uses with the built-in simulator.
const SIMULATOR_TOKEN: &str = "0:simulator";
/// How often transfers left pending by a fault are placed again.
const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// Time between "seen" and "confirmed" on the demo chain.
const DEMO_CONFIRMATION: Duration = Duration::from_millis(1500);

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("rate limiter: {0}")]
    RateLimit(#[from] crate::ratelimit::RateLimitError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("supervision tree: {0}")]
    Tree(String),
    #[error("telegram: {0}")]
    Telegram(String),
}

/// Everything the tree and the HTTP server are built from; handles only, no actor internals.
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub registry: Registry,
    pub matcher: MatcherHandle,
    pub orders: OrdersHandle,
    pub payments: Payments,
    pub progress: ChainProgress,
    /// Present when `tron.source = "demo"`.
    pub demo_chain: Option<DemoChainHandle>,
    pub limiter: RateLimiter,
    /// Receiving wallets in use (configured, or the demo chain's).
    pub wallets: Vec<String>,
    /// Wallets the scanners read: the ones in use, then wallets taken out of the configuration
    /// that still hold amounts of pending or quarantined orders.
    pub watched_wallets: Vec<String>,
    /// The bot's router, for updates that arrive over HTTP (webhook mode).
    pub bot: BotHandle,
    pub bot_env: Arc<BotEnv>,
    /// Present when no Telegram token is configured (demo mode).
    pub simulator: Option<Arc<Simulator>>,
    /// Secret Telegram echoes on webhook calls.
    pub webhook_secret: Secret,
    /// Whether this instance runs the singletons (always, on SQLite).
    pub leadership: Leadership,
}

impl App {
    /// What the HTTP handlers get: the handles they use, and the dashboard's login guard,
    /// which only they use.
    fn http_state(&self) -> HttpState {
        HttpState {
            config: self.config.clone(),
            store: self.store.clone(),
            registry: self.registry.clone(),
            orders: self.orders.clone(),
            payments: self.payments.clone(),
            progress: self.progress.clone(),
            limiter: self.limiter.clone(),
            bot: self.bot.clone(),
            outbound: self.bot_env.outbound.clone(),
            simulator: self.simulator.clone(),
            webhook_secret: self.webhook_secret.clone(),
            login_guard: LoginGuard::new(),
            leadership: self.leadership.clone(),
            demo_chain: self.demo_chain.clone(),
            product_pages: Default::default(),
        }
    }
}

/// A started instance: the tree, the HTTP server, and how to stop them.
pub struct Running {
    pub app: Arc<App>,
    /// Where the HTTP server actually listens (the configured port may be 0 in tests).
    pub http_addr: SocketAddr,
    root: ActorRef<SupervisorMsg>,
    root_done: JoinHandle<()>,
    http: JoinHandle<()>,
    stop_http: watch::Sender<bool>,
}

/// The configured wallets, then every wallet taken out of the configuration that still holds
/// amounts of pending or quarantined orders: a customer who pays such an order after the change
/// is still found by the scanners. The configuration changes only with a restart, and no new
/// amount is handed out on a removed wallet, so the list is worked out once, at start.
async fn watched_wallets(store: &Store, configured: &[String]) -> Result<Vec<String>, StoreError> {
    let mut watched = configured.to_vec();
    for a in store.live_allocations().await? {
        if a.chain != CHAIN || a.token != TOKEN || watched.contains(&a.wallet) {
            continue;
        }
        if TronAddress::parse(&a.wallet).is_err() {
            tracing::warn!(wallet = %a.wallet, "live amount on a wallet that is not a TRON address; not scanned");
            continue;
        }
        tracing::info!(wallet = %a.wallet, "wallet no longer configured still holds live amounts; it is scanned until they end");
        watched.push(a.wallet);
    }
    Ok(watched)
}

/// Opens the database and applies migrations (also `telebot migrate`).
pub async fn open_store(config: &Config) -> Result<Store, StoreError> {
    let store = Store::connect(&ConnectOptions {
        url: config.database.url.expose().to_owned(),
        max_connections: config.database.max_connections,
        connect_timeout: config.database.connect_timeout,
    })
    .await?
    .with_callbacks(!config.payments.callback_url.is_empty());
    store.migrate().await?;
    Ok(store)
}

/// Starts the whole service. Returns once the tree is up and the HTTP server listens.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let config = Arc::new(config);
    let store = open_store(&config).await?;
    let limiter = if config.redis.url.is_set() {
        RateLimiter::redis(
            config.redis.url.expose(),
            "telebot:rl:",
            config.security.rate_limit_per_minute,
        )
        .await?
    } else {
        RateLimiter::local(config.security.rate_limit_per_minute)
    };
    let wallets: Vec<String> = if config.tron.is_demo() {
        DEMO_WALLETS.iter().map(|w| (*w).to_owned()).collect()
    } else {
        config
            .payments
            .wallets
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    // the listener first: in demo mode the bot talks to the simulator on this very address
    let listener = TcpListener::bind(config.http.addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.http.addr,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.http.addr,
        source,
    })?;
    let (bot, simulator) = telegram_bot(&config, http_addr)?;
    let watched_wallets = if config.tron.is_demo() {
        wallets.clone()
    } else {
        watched_wallets(&store, &wallets).await?
    };
    let registry = Registry::new();
    let matcher = MatcherHandle::new(ActorSlot::new());
    let orders = OrdersHandle::new(ActorSlot::new(), matcher.clone(), store.clone())
        .with_stars(config.stars.window, millis(config.payments.commission_hold));
    let payments = Payments::new(
        store.clone(),
        matcher.clone(),
        orders.clone(),
        config.payments.late_payment,
        config.payments.unmatched_alert_min,
        &watched_wallets,
    );
    let demo_chain = config
        .tron
        .is_demo()
        .then(|| DemoChainHandle::new(ActorSlot::new()));
    // Telegram's limits apply to Telegram; the built-in simulator has none
    let outbound = if simulator.is_some() {
        Outbound::unpaced(bot)
    } else {
        Outbound::new(bot)
    };
    let bot_env = Arc::new(BotEnv {
        store: store.clone(),
        orders: Arc::new(orders.clone()),
        outbound,
        limiter: limiter.clone(),
        default_language: config.telegram.default_language,
        shop_name: config.telegram.shop_name.clone(),
        bot_username: config.telegram.bot_username.clone(),
        idle_timeout: config.telegram.session_idle_timeout,
        order_button_lifetime: config.telegram.order_button_lifetime,
        stars_enabled: config.stars.enabled,
        stars_window: config.stars.window,
    });
    let webhook_secret = if config.telegram.webhook_secret.is_set() {
        config.telegram.webhook_secret.clone()
    } else {
        Secret::new(format!("{:032x}", rand::random::<u128>()))
    };
    let app = Arc::new(App {
        config: config.clone(),
        store: store.clone(),
        registry: registry.clone(),
        matcher,
        orders,
        payments,
        progress: ChainProgress::new(),
        demo_chain,
        limiter,
        wallets,
        watched_wallets,
        bot: BotHandle::new(ActorSlot::new()),
        bot_env,
        simulator,
        webhook_secret,
        leadership: if config.is_sqlite() {
            Leadership::sole()
        } else {
            Leadership::contend(config.database.url.expose().to_owned())
        },
    });

    // the HTTP server starts before the tree: the bot's intake polls the simulator through it
    let (stop_http, stop_rx) = watch::channel(false);
    let router = crate::http::router(Arc::new(app.http_state()));
    let limits = crate::http::serve::Limits {
        max_connections: config.http.max_connections,
        header_read_timeout: config.http.header_read_timeout,
        idle_timeout: config.http.idle_timeout,
    };
    let http = spawn_server(listener, router, limits, stop_rx.clone());
    if config.metrics.enabled && !config.metrics.addr.is_empty() {
        let addr: SocketAddr = config
            .metrics
            .addr
            .parse()
            .map_err(|_| StartError::Tree("metrics.addr is not HOST:PORT".to_owned()))?;
        let metrics_listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        let metrics_router =
            axum::Router::new().route("/metrics", axum::routing::get(crate::http::health::metrics));
        // runs until the same shutdown signal; its handle is not awaited: it has no work in flight
        drop(spawn_server(
            metrics_listener,
            metrics_router,
            limits,
            stop_rx,
        ));
    }
    let (root, root_done) = match Actor::spawn(None, root_supervisor(&app), ()).await {
        Ok(r) => r,
        Err(e) => {
            let _ = stop_http.send(true);
            return Err(StartError::Tree(e.to_string()));
        }
    };

    Ok(Running {
        app,
        http_addr,
        root,
        root_done,
        http,
        stop_http,
    })
}

impl Running {
    /// Stops intake first (HTTP, then the bot), lets in-flight work finish, then the rest of the
    /// tree in reverse start order, and closes the database last.
    pub async fn shutdown(self) {
        let grace = self.app.config.http.shutdown_grace;
        if let Some(sim) = &self.app.simulator {
            sim.close();
        }
        let _ = self.stop_http.send(true);
        if tokio::time::timeout(grace, self.http).await.is_err() {
            tracing::warn!("http requests still running after the grace period");
        }
        let root = self.root.get_cell();
        if root
            .stop_and_wait(Some("shutdown".to_owned()), Some(grace * 2))
            .await
            .is_err()
        {
            tracing::warn!("supervision tree did not stop within the grace period");
        }
        let _ = self.root_done.await;
        self.app.store.close().await;
    }

    /// Resolves when the root supervisor has stopped (escalation from below, or shutdown).
    pub async fn tree_stopped(&mut self) {
        let _ = (&mut self.root_done).await;
    }

    pub fn root(&self) -> ActorCell {
        self.root.get_cell()
    }
}

/// The tree: notifier, payments, orders, bot (started in this order, stopped in reverse, so
/// intake stops first and notifications flush last).
fn root_supervisor(app: &Arc<App>) -> Supervisor {
    let policy = RestartPolicy::from_config(&app.config.supervision);
    let grace = app.config.http.shutdown_grace;
    let registry = app.registry.clone();
    let sub = |name: &str, children: Vec<ChildSpec>| {
        ChildSpec::supervisor(
            name,
            name.to_owned(),
            policy,
            children,
            registry.clone(),
            grace,
        )
    };
    Supervisor {
        path: String::new(),
        policy,
        children: vec![
            sub("notifier", notifier_children(app)),
            sub("payments", payments_children(app)),
            sub("orders", orders_children(app)),
            sub("bot", bot_children(app)),
        ],
        registry: app.registry.clone(),
        stop_timeout: grace * 2,
    }
}

fn payments_children(app: &Arc<App>) -> Vec<ChildSpec> {
    let p = &app.config.payments;
    let matcher = Matcher {
        chain: CHAIN.to_owned(),
        token: TOKEN.to_owned(),
        wallets: app.wallets.clone(),
        rules: TableRules {
            step: p.amount_step,
            max_slots: p.max_slots,
            window_ms: millis(p.window),
            quarantine_ms: millis(p.quarantine),
        },
        store: Some(app.store.clone()),
    };
    let mut children = vec![actor_child(
        "matcher",
        matcher,
        Some(app.matcher.slot().clone()),
    )];
    let t = &app.config.tron;
    let overlap_ms = millis(t.resume_overlap);
    let lookback_ms = millis(p.window);
    if matches!(t.source, TronSource::Trongrid | TronSource::Both) {
        let scanner = TronGridScanner {
            base_url: t.trongrid_url.clone(),
            api_key: t.trongrid_api_key.clone(),
            contract: t.usdt_contract,
            wallets: app
                .watched_wallets
                .iter()
                .filter_map(|w| TronAddress::parse(w).ok())
                .collect(),
            poll_interval: t.poll_interval,
            confirmations: t.confirmations,
            overlap_ms,
            initial_lookback_ms: lookback_ms,
            request_timeout: t.request_timeout,
            max_backoff: t.max_backoff,
            payments: app.payments.clone(),
            progress: app.progress.clone(),
            leader: app.leadership.clone(),
        };
        children.push(actor_child("scanner-trongrid", scanner, None));
    }
    if matches!(t.source, TronSource::Fullnode | TronSource::Both) {
        let scanner = FullNodeScanner {
            base_url: t.fullnode_url.clone(),
            contract: t.usdt_contract,
            wallets: app.watched_wallets.iter().cloned().collect(),
            poll_interval: t.poll_interval,
            confirmations: t.confirmations,
            overlap_ms,
            initial_lookback_ms: lookback_ms,
            request_timeout: t.request_timeout,
            max_backoff: t.max_backoff,
            payments: app.payments.clone(),
            progress: app.progress.clone(),
            leader: app.leadership.clone(),
        };
        children.push(actor_child("scanner-fullnode", scanner, None));
    }
    if let Some(demo) = &app.demo_chain {
        let chain = DemoChain {
            payments: app.payments.clone(),
            progress: app.progress.clone(),
            confirm_after: DEMO_CONFIRMATION,
        };
        children.push(actor_child("demo-chain", chain, Some(demo.slot().clone())));
    }
    let reconciler = Reconciler {
        payments: app.payments.clone(),
    };
    children.push(actor_child(
        "reconciler",
        Periodic::new(reconciler, RECONCILE_EVERY, app.leadership.clone()),
        None,
    ));
    children
}

/// The Bot API client: Telegram (or `telegram.api_url`) with a token, the built-in simulator
/// without one.
fn telegram_bot(
    config: &Config,
    http_addr: SocketAddr,
) -> Result<(teloxide::Bot, Option<Arc<Simulator>>), StartError> {
    let t = &config.telegram;
    if t.is_simulated() {
        let simulator = Arc::new(Simulator::new(&t.bot_username));
        let url = format!("http://{http_addr}/sim");
        let api = reqwest::Url::parse(&url).map_err(|e| StartError::Telegram(e.to_string()))?;
        return Ok((
            teloxide::Bot::new(SIMULATOR_TOKEN).set_api_url(api),
            Some(simulator),
        ));
    }
    let mut bot = teloxide::Bot::new(t.token.expose());
    if !t.api_url.is_empty() {
        let api = reqwest::Url::parse(t.api_url.trim_end_matches('/'))
            .map_err(|e| StartError::Telegram(e.to_string()))?;
        bot = bot.set_api_url(api);
    }
    Ok((bot, None))
}

fn bot_children(app: &Arc<App>) -> Vec<ChildSpec> {
    let router = BotRouter {
        env: app.bot_env.clone(),
    };
    let mode = match app.config.telegram.mode {
        TelegramMode::Polling => IntakeMode::Polling,
        TelegramMode::Webhook => IntakeMode::Webhook {
            url: format!(
                "{}/telegram/webhook",
                app.config.http.public_url.trim_end_matches('/')
            ),
            secret: app.webhook_secret.clone(),
        },
    };
    let intake = TelegramIntake {
        outbound: app.bot_env.outbound.clone(),
        router: app.bot.clone(),
        mode,
        leader: app.leadership.clone(),
    };
    let mut children = vec![
        actor_child("router", router, Some(app.bot.slot().clone())),
        actor_child("telegram", intake, None),
    ];
    if app.config.stars.enabled {
        let reconciler = crate::actors::stars_reconciler::StarsReconciler {
            store: app.store.clone(),
            orders: app.bot_env.orders.clone(),
            outbound: app.bot_env.outbound.clone(),
            grace: crate::actors::stars_reconciler::SETTLE_GRACE,
        };
        children.push(actor_child(
            "stars-reconciler",
            Periodic::new(
                reconciler,
                app.config.stars.reconcile_every,
                app.leadership.clone(),
            ),
            None,
        ));
    }
    children
}

fn notifier_children(app: &Arc<App>) -> Vec<ChildSpec> {
    let outbox = OutboxWorker {
        store: app.store.clone(),
        outbound: app.bot_env.outbound.clone(),
        operator_chats: app.config.telegram.operator_chat_ids.clone(),
        operator_language: app.config.telegram.default_language,
        shop: crate::bot::notices::Shop {
            name: app.config.telegram.shop_name.clone(),
            bot_username: app.config.telegram.bot_username.clone(),
        },
        reached: Default::default(),
    };
    let broadcaster = Broadcaster {
        store: app.store.clone(),
        outbound: app.bot_env.outbound.clone(),
        leader: app.leadership.clone(),
    };
    let leader = &app.leadership;
    let mut children = vec![
        actor_child(
            "outbox",
            Periodic::new(outbox, OUTBOX_EVERY, leader.clone()),
            None,
        ),
        actor_child(
            "broadcaster",
            Periodic::new(broadcaster, BROADCAST_EVERY, leader.clone()),
            None,
        ),
    ];
    let p = &app.config.payments;
    if !p.callback_url.is_empty() {
        let callbacks = CallbackWorker {
            store: app.store.clone(),
            client: CallbackClient::new(
                &p.callback_url,
                p.callback_secret.clone(),
                p.callback_timeout,
            ),
        };
        children.push(actor_child(
            "callbacks",
            Periodic::new(callbacks, OUTBOX_EVERY, leader.clone()),
            None,
        ));
    }
    children
}

fn orders_children(app: &Arc<App>) -> Vec<ChildSpec> {
    let p = &app.config.payments;
    let env = OrderEnv {
        store: app.store.clone(),
        matcher: app.matcher.clone(),
        progress: app.progress.clone(),
        quarantine_ms: millis(p.quarantine),
        commission_hold_ms: millis(p.commission_hold),
        max_expiry_wait_ms: millis(MAX_EXPIRY_WAIT),
    };
    vec![actor_child(
        "manager",
        OrderManager { env },
        Some(app.orders.slot().clone()),
    )]
}

/// A child spec for an actor that takes no arguments; `slot` is re-pointed on every start.
fn actor_child<A>(name: &str, actor: A, slot: Option<ActorSlot<A::Msg>>) -> ChildSpec
where
    A: Actor<Arguments = ()> + Clone,
{
    ChildSpec::new(name, move |sup| {
        let actor = actor.clone();
        let slot = slot.clone();
        async move {
            let (actor_ref, _) = Actor::spawn_linked(None, actor, (), sup).await?;
            if let Some(slot) = slot {
                slot.set(actor_ref.clone());
            }
            Ok(actor_ref.get_cell())
        }
    })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Serves `router` on `listener` until `stop` turns true, finishing in-flight requests.
fn spawn_server(
    listener: TcpListener,
    router: axum::Router,
    limits: crate::http::serve::Limits,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(crate::http::serve::serve(listener, router, limits, stop))
}
