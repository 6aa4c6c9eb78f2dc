//! Wiring: opens the store, builds the handles, starts the supervision tree and the HTTP server,
//! and shuts everything down in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorRef};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::actors::matcher::{Matcher, MatcherHandle};
use crate::config::{Config, TronSource};
use crate::domain::allocation::TableRules;
use crate::messages::supervisor::SupervisorMsg;
use crate::ratelimit::RateLimiter;
use crate::store::{ConnectOptions, Store, StoreError};
use crate::supervision::{ActorSlot, ChildSpec, Registry, RestartPolicy, Supervisor};

/// Receiving wallets of the demo chain (valid TRON addresses that belong to nobody we know).
pub const DEMO_WALLETS: &[&str] = &["T9yD14Nj9j7xAB4dbGeiX9h8unkKHxuWwb"];

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
}

/// Everything the actors and HTTP handlers share; handles only, no actor internals.
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub registry: Registry,
    pub matcher: MatcherHandle,
    pub limiter: RateLimiter,
    /// Receiving wallets in use (configured, or the demo chain's).
    pub wallets: Vec<String>,
}

impl App {
    pub fn is_demo_chain(&self) -> bool {
        self.config.tron.source == TronSource::Demo
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

/// Opens the database and applies migrations (also `telebot migrate`).
pub async fn open_store(config: &Config) -> Result<Store, StoreError> {
    let store = Store::connect(&ConnectOptions {
        url: config.database.url.expose().to_owned(),
        max_connections: config.database.max_connections,
        connect_timeout: config.database.connect_timeout,
    })
    .await?;
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
    let wallets: Vec<String> = if config.tron.source == TronSource::Demo {
        DEMO_WALLETS.iter().map(|w| (*w).to_owned()).collect()
    } else {
        config
            .payments
            .wallets
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let registry = Registry::new();
    let matcher = MatcherHandle::new(ActorSlot::new());
    let app = Arc::new(App {
        config: config.clone(),
        store: store.clone(),
        registry: registry.clone(),
        matcher,
        limiter,
        wallets,
    });

    let (root, root_done) = Actor::spawn(None, root_supervisor(&app), ())
        .await
        .map_err(|e| StartError::Tree(e.to_string()))?;

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
    let (stop_http, mut stop_rx) = watch::channel(false);
    let router = crate::http::router(app.clone());
    let http = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "http server failed");
        }
    });

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
            sub("notifier", vec![]),
            sub("payments", payments_children(app)),
            sub("orders", vec![]),
            sub("bot", vec![]),
        ],
        registry: app.registry.clone(),
        stop_timeout: grace * 2,
    }
}

fn payments_children(app: &Arc<App>) -> Vec<ChildSpec> {
    let p = &app.config.payments;
    let matcher = Matcher {
        chain: "tron".to_owned(),
        token: "USDT".to_owned(),
        wallets: app.wallets.clone(),
        rules: TableRules {
            step: p.amount_step,
            max_slots: p.max_slots,
            window_ms: millis(p.window),
            quarantine_ms: millis(p.quarantine),
        },
        store: Some(app.store.clone()),
    };
    let slot = app.matcher.slot().clone();
    vec![ChildSpec::new("matcher", move |sup| {
        let matcher = matcher.clone();
        let slot = slot.clone();
        async move {
            let (actor, _) = Actor::spawn_linked(None, matcher, (), sup).await?;
            slot.set(actor.clone());
            Ok(actor.get_cell())
        }
    })]
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
