//! TeleBot: a self-hosted platform for selling services and digital goods through a Telegram bot,
//! paid in USDT on TRON.

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
    if config.metrics.enabled {
        telemetry::metrics_handle();
    }
    let started = std::time::Instant::now();
    for line in config.summary() {
        tracing::info!("{line}");
    }
    let demo = config.tron.source == config::TronSource::Demo;
    let mut running = app::start(config).await?;
    if demo {
        if demo::seed_catalog(&running.app.store).await? {
            tracing::info!("demo catalog created (English and Chinese)");
        }
        match demo::demo_admin(&running.app.store).await {
            Ok(password) => tracing::warn!(
                "DEMO dashboard: http://{}/admin (log in as admin / {password}); \
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
    }
    tracing::info!(
        addr = %running.http_addr,
        startup_ms = started.elapsed().as_millis() as u64,
        "telebot is up: http://{}/readyz",
        running.http_addr
    );
    tokio::select! {
        _ = shutdown_signal() => {
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

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
