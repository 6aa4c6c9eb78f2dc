//! Which instance runs the singletons. Several instances may share one PostgreSQL database
//! (API replicas behind a load balancer); the work that must happen once (polling Telegram,
//! scanning the chain, delivering the outbox, broadcasts and merchant callbacks, reconciling)
//! runs only on the instance that holds a PostgreSQL advisory lock. The others keep those actors
//! running but idle, and take over when the holder goes away: its database session ends, the
//! lock is released, and the next instance to ask gets it.
//!
//! On SQLite there is one instance by construction, and it always leads.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;
use tokio::sync::watch;

/// The advisory lock key ("telebot" in ASCII). Advisory locks are scoped to one database, so
/// shops on separate databases of one server do not contend.
const LOCK_KEY: i64 = 0x0074_656c_6562_6f74;
/// How often a follower asks for the lock, and the holder checks its session is alive.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Cheap to clone; every singleton actor holds one.
#[derive(Clone)]
pub struct Leadership {
    state: watch::Receiver<bool>,
    _task: Option<Arc<AbortOnDrop>>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Leadership {
    /// The only instance (SQLite): leads from the start.
    pub fn sole() -> Self {
        let (_, state) = watch::channel(true);
        metrics::gauge!("instance_leader").set(1.0);
        Leadership { state, _task: None }
    }

    /// Contends for the lock on the PostgreSQL database at `url`, on a connection of its own,
    /// until the last clone is dropped.
    pub fn contend(url: String) -> Self {
        let (tx, state) = watch::channel(false);
        let task = tokio::spawn(hold_the_lock(url, tx));
        Leadership {
            state,
            _task: Some(Arc::new(AbortOnDrop(task))),
        }
    }

    pub fn is_leader(&self) -> bool {
        *self.state.borrow()
    }

    /// Follows changes of leadership (`true` while this instance leads).
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.state.clone()
    }
}

/// Returns once this instance leads (at once if it does already).
pub async fn until_leading(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            // nobody will change it any more: it stays as it is
            std::future::pending::<()>().await;
        }
    }
}

/// Returns when this instance stops leading (never, if it cannot change any more).
pub async fn until_following(rx: &mut watch::Receiver<bool>) {
    loop {
        if !*rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn hold_the_lock(url: String, leading: watch::Sender<bool>) {
    let mut announced_follower = false;
    loop {
        let mut conn = match sqlx::PgConnection::connect(&url).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "leadership: database unreachable; not leading");
                tokio::time::sleep(CHECK_EVERY).await;
                continue;
            }
        };
        loop {
            if *leading.borrow() {
                // the lock lives as long as this session: check the session still answers
                if let Err(e) = sqlx::query("select 1").execute(&mut conn).await {
                    tracing::error!(error = %e, "leadership lost: the lock's database session failed");
                    set(&leading, false);
                    break;
                }
            } else {
                match sqlx::query_scalar::<_, bool>("select pg_try_advisory_lock($1)")
                    .bind(LOCK_KEY)
                    .fetch_one(&mut conn)
                    .await
                {
                    Ok(true) => {
                        tracing::info!(
                            "leadership taken: this instance runs the singletons (Telegram polling, \
                             scanners, outbox, broadcasts, callbacks, reconciler)"
                        );
                        set(&leading, true);
                    }
                    Ok(false) => {
                        if !announced_follower {
                            tracing::info!(
                                "another instance leads: the singletons stay idle here until it stops"
                            );
                            announced_follower = true;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "leadership: lock request failed; reconnecting");
                        break;
                    }
                }
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
    }
}

fn set(leading: &watch::Sender<bool>, value: bool) {
    leading.send_replace(value);
    metrics::gauge!("instance_leader").set(if value { 1.0 } else { 0.0 });
}
