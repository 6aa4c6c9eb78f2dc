//! Several instances on one PostgreSQL database (API replicas): one holds the leadership lock and
//! runs the singletons (scanners, Telegram polling, outbox, broadcasts, callbacks); the others
//! serve requests with those idle, and one of them takes over when the leader stops. Runs when
//! TELEBOT_TEST_POSTGRES_URL is set; a single SQLite instance always leads.

use std::time::Duration;

use crate::common::chain::{TronGrid, transfer_to};
use crate::common::{TestDb, WALLET, connect, order_for, shop, start_app, wait_for, wait_status};
use telebot::domain::Role;
use telebot::domain::{OrderStatus, TransferOutcome};

fn vars(tg: &TronGrid) -> Vec<(&str, &str)> {
    vec![
        ("TELEBOT__TRON__SOURCE", "trongrid"),
        ("TELEBOT__PAYMENTS__WALLETS", WALLET),
        ("TELEBOT__TRON__TRONGRID_URL", tg.url.as_str()),
        ("TELEBOT__TRON__POLL_INTERVAL", "40ms"),
        ("TELEBOT__TRON__MAX_BACKOFF", "200ms"),
        ("TELEBOT__TRON__CONFIRMATIONS", "seen"),
        // short, so that an idle follower would show as stalled if it were counted
        ("TELEBOT__TRON__STALL_THRESHOLD", "300ms"),
    ]
}

async fn readyz(addr: std::net::SocketAddr) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
#[cfg_attr(
    not(telebot_postgres),
    ignore = "needs PostgreSQL: set TELEBOT_TEST_POSTGRES_URL"
)]
async fn one_instance_leads_and_another_takes_over_when_it_stops() {
    let db = TestDb::postgres().await;
    let tg = TronGrid::start().await;
    let first = start_app(&db.url, &vars(&tg)).await;
    wait_for(
        "the first instance leads",
        Duration::from_secs(10),
        || async { first.app.leadership.is_leader().then_some(()) },
    )
    .await;
    let second = start_app(&db.url, &vars(&tg)).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(first.app.leadership.is_leader());
    assert!(
        !second.app.leadership.is_leader(),
        "only one instance leads"
    );
    // the follower serves and is ready: its idle scanner does not count as stalled
    let (code, body) = readyz(second.http_addr).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["leader"], false);
    assert_eq!(readyz(first.http_addr).await.1["leader"], true);

    // an order taken by the follower is paid through the leader's scanner
    let (user, product) = shop(&db.store, 301, "4", 3).await;
    let before = order_for(&second.app, user.id, &product, 1).await;
    tg.push(transfer_to(before.payable_amount, true));
    wait_status(&db.store, before.id, OrderStatus::Delivered).await;

    // the leader stops: the other instance takes over and goes on scanning from where it was
    first.shutdown().await;
    wait_for(
        "the second instance leads",
        Duration::from_secs(15),
        || async { second.app.leadership.is_leader().then_some(()) },
    )
    .await;
    let after = order_for(&second.app, user.id, &product, 1).await;
    tg.push(transfer_to(after.payable_amount, true));
    wait_status(&db.store, after.id, OrderStatus::Delivered).await;
    assert_eq!(
        db.store
            .transfers_by_outcome(TransferOutcome::Matched, 10)
            .await
            .unwrap()
            .len(),
        2,
        "each payment counted once"
    );
    second.shutdown().await;
    db.finish().await;
}

#[tokio::test]
async fn a_single_sqlite_instance_always_leads() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    assert!(app.app.leadership.is_leader());
    assert_eq!(readyz(app.http_addr).await.1["leader"], true);
    app.shutdown().await;
}

/// A token used in one process (read once, then served from its memory) and revoked by another
/// (the CLI, or another instance) stops working in the first at once.
async fn a_token_revoked_elsewhere_stops_at_once(db: TestDb, wait: Duration) {
    let here = connect(&db.url).await;
    wait_for("tokens are cached", Duration::from_secs(10), || async {
        here.tokens_cached().then_some(())
    })
    .await;
    let t = db
        .store
        .create_token("laptop", Role::Operator, "hash-of-laptop", None, "test")
        .await
        .unwrap();
    let kept = db
        .store
        .create_token("ci", Role::Operator, "hash-of-ci", None, "test")
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            here.live_token("hash-of-laptop").await.unwrap().unwrap().id,
            t.id
        );
        assert!(here.live_token("hash-of-ci").await.unwrap().is_some());
    }
    db.store.revoke_token(t.id, "test").await.unwrap();
    let started = std::time::Instant::now();
    wait_for("the revoked token is refused", wait, || async {
        here.live_token("hash-of-laptop")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    eprintln!("refused {:?} after the revocation", started.elapsed());
    assert_eq!(
        here.live_token("hash-of-ci").await.unwrap().map(|t| t.id),
        Some(kept.id),
        "the other token still works"
    );
    here.close().await;
    db.finish().await;
}

#[tokio::test]
async fn a_token_revoked_by_another_process_stops_at_once_on_sqlite() {
    // the first check after the revocation already refuses it
    a_token_revoked_elsewhere_stops_at_once(TestDb::sqlite().await, Duration::ZERO).await;
}

#[tokio::test]
#[cfg_attr(
    not(telebot_postgres),
    ignore = "needs PostgreSQL: set TELEBOT_TEST_POSTGRES_URL"
)]
async fn a_token_revoked_on_another_instance_stops_as_its_notification_arrives() {
    a_token_revoked_elsewhere_stops_at_once(TestDb::postgres().await, Duration::from_secs(1)).await;
}
