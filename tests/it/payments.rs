//! Payments end to end, against loopback TronGrid and full-node peers that speak the real wire
//! formats: paid orders, "seen, confirming", exactly-once counting across sources and the
//! webhook, restarts and crashes in the middle of a stream, upstream faults, late and unmatched
//! transfers, and concurrent allocations.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::chain::{
    ChainTransfer, Fault, FullNode, PAYER, TronGrid, random_txid, transfer_to,
};
use crate::common::{
    TestDb, WALLET, order_for, pass_deadline, shop, start_app, token, wait_for, wait_paid,
    wait_status,
};
use telebot::domain::{AllocationState, Money, OrderStatus, Role, TransferOutcome, now_ms};
use telebot::payments::webhook::sign;
use telebot::store::{Page, Store};

const LIMIT: Duration = Duration::from_secs(20);

fn tg_vars<'a>(tg: &'a TronGrid, confirmations: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("TELEBOT__TRON__SOURCE", "trongrid"),
        ("TELEBOT__PAYMENTS__WALLETS", WALLET),
        ("TELEBOT__TRON__TRONGRID_URL", tg.url.as_str()),
        ("TELEBOT__TRON__POLL_INTERVAL", "40ms"),
        ("TELEBOT__TRON__MAX_BACKOFF", "200ms"),
        ("TELEBOT__TRON__REQUEST_TIMEOUT", "500ms"),
        ("TELEBOT__TRON__CONFIRMATIONS", confirmations),
        // an order waits this long past its window for late indexing before it expires
        ("TELEBOT__TRON__RESUME_OVERLAP", "1s"),
    ]
}

fn node_vars<'a>(node: &'a FullNode, confirmations: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("TELEBOT__TRON__SOURCE", "fullnode"),
        ("TELEBOT__PAYMENTS__WALLETS", WALLET),
        ("TELEBOT__TRON__FULLNODE_URL", node.url.as_str()),
        ("TELEBOT__TRON__POLL_INTERVAL", "40ms"),
        ("TELEBOT__TRON__MAX_BACKOFF", "100ms"),
        ("TELEBOT__TRON__CONFIRMATIONS", confirmations),
    ]
}

async fn outbox_events(store: &Store, kind: &str) -> Vec<serde_json::Value> {
    store
        .outbox_by_kind(kind, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| serde_json::from_str(&m.payload).unwrap())
        .collect()
}

async fn has_event(store: &Store, kind: &str, event: &str, order_id: i64) -> bool {
    outbox_events(store, kind)
        .await
        .iter()
        .any(|e| e["event"] == event && e["order_id"] == order_id)
}

/// The audit actions recorded for one entity, with the actor of each.
async fn audited(store: &Store, entity: &str, id: i64) -> Vec<(String, String)> {
    store
        .list_audit(
            &telebot::store::AuditFilter {
                entity: Some(entity.into()),
                entity_id: Some(id.to_string()),
                ..Default::default()
            },
            Page::default(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.action, a.actor))
        .collect()
}

fn has_action(trail: &[(String, String)], action: &str) -> bool {
    trail.iter().any(|(a, _)| a == action)
}

async fn payment_state(base: &str, token: &str, order_id: i64) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("http://{base}/api/v1/payments/{order_id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_trongrid_payment_is_seen_confirmed_paid_and_delivered() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let mut vars = tg_vars(&tg, "solidified");
    vars.push(("TELEBOT__TRON__TRONGRID_API_KEY", "key-123"));
    let app = start_app(&db.url, &vars).await;
    let api = token(&db.store, Role::Service, None).await;
    let base = app.http_addr.to_string();
    let (user, product) = shop(&db.store, 100, "10", 3).await;

    let order = order_for(&app.app, user.id, &product, 1).await;
    assert_eq!(order.payable_amount.to_string(), "10.001000");
    assert_eq!(order.wallet.as_deref(), Some(WALLET));
    assert_eq!(
        payment_state(&base, &api, order.id).await["state"],
        "awaiting_payment"
    );

    let t = transfer_to(order.payable_amount, false);
    tg.push(t.clone());
    wait_for("payment seen notice", LIMIT, || async {
        has_event(&db.store, "customer", "payment_seen", order.id)
            .await
            .then_some(())
    })
    .await;
    assert_eq!(
        payment_state(&base, &api, order.id).await["state"],
        "confirming"
    );
    assert_eq!(
        db.store.order(order.id).await.unwrap().status,
        OrderStatus::PendingPayment
    );

    tg.confirm(&t.txid);
    let paid = wait_status(&db.store, order.id, OrderStatus::Delivered).await;
    assert_eq!(
        paid.delivery.as_deref(),
        Some(format!("KEY-{}-0", product.id).as_str())
    );
    assert_eq!(db.store.stock_available(product.id).await.unwrap(), 2);
    let state = payment_state(&base, &api, order.id).await;
    assert_eq!(state["state"], "paid");
    assert_eq!(state["transfers"][0]["outcome"], "matched");
    assert_eq!(state["transfers"][0]["amount"], "10.001000");
    // one message to the customer: the delivery says the order is paid
    assert!(!has_event(&db.store, "customer", "order_paid", order.id).await);
    assert!(has_event(&db.store, "customer", "order_delivered", order.id).await);
    let audit = db
        .store
        .list_audit(
            &telebot::store::AuditFilter {
                entity: Some("order".into()),
                entity_id: Some(order.id.to_string()),
                ..Default::default()
            },
            Page::default(),
        )
        .await
        .unwrap();
    let actions: HashSet<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert!(
        actions.contains("order.created")
            && actions.contains("order.paid")
            && actions.contains("order.fulfilled"),
        "{actions:?}"
    );
    let held = db.store.live_allocations().await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        held[0].state,
        AllocationState::Quarantined,
        "a paid amount rests before it is handed out again"
    );
    let requests = tg.requests();
    assert!(
        requests
            .iter()
            .all(|(_, key)| key.as_deref() == Some("key-123")),
        "TRON-PRO-API-KEY is sent"
    );
    assert!(
        requests
            .iter()
            .any(|(q, _)| q.contains("only_confirmed=true"))
    );
    assert!(
        requests
            .iter()
            .any(|(q, _)| q.contains("only_unconfirmed=true"))
    );
    app.shutdown().await;
}

#[tokio::test]
async fn full_node_block_scanning_finds_and_confirms_transfers() {
    let db = TestDb::sqlite().await;
    let node = FullNode::start(5_000).await;
    let app = start_app(&db.url, &node_vars(&node, "solidified")).await;
    let (user, product) = shop(&db.store, 101, "25", 1).await;
    let order = order_for(&app.app, user.id, &product, 1).await;

    let block = node.push_block(transfer_to(order.payable_amount, true));
    wait_for("payment seen in an unsolidified block", LIMIT, || async {
        has_event(&db.store, "customer", "payment_seen", order.id)
            .await
            .then_some(())
    })
    .await;
    assert_eq!(
        db.store.order(order.id).await.unwrap().status,
        OrderStatus::PendingPayment
    );

    node.advance(19);
    let paid = wait_status(&db.store, order.id, OrderStatus::Delivered).await;
    let transfer = db.store.transfer(paid.transfer_id.unwrap()).await.unwrap();
    assert_eq!(transfer.block_number, Some(block));
    assert!(transfer.confirmed);
    wait_for("cursor saved past the block", LIMIT, || async {
        db.store
            .scan_cursor("tron:fullnode")
            .await
            .unwrap()
            .filter(|c| *c >= block)
    })
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn one_transfer_from_two_scanners_and_the_webhook_is_counted_once() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let node = FullNode::start(7_000).await;
    let mut vars = tg_vars(&tg, "seen");
    vars[0] = ("TELEBOT__TRON__SOURCE", "both");
    vars.push(("TELEBOT__TRON__FULLNODE_URL", node.url.as_str()));
    vars.push(("TELEBOT__SECURITY__WEBHOOK_SECRET", "hook-secret"));
    let app = start_app(&db.url, &vars).await;
    let (user, product) = shop(&db.store, 102, "3.5", 5).await;
    let order = order_for(&app.app, user.id, &product, 2).await;
    assert_eq!(order.payable_amount.to_string(), "7.001000");

    let t = transfer_to(order.payable_amount, true);
    tg.push(t.clone());
    node.push_block(t.clone());
    let body = serde_json::json!({
        "chain": "tron", "txid": t.txid, "log_index": 0, "token": "USDT", "from": PAYER, "to": WALLET,
        "amount": "7.001", "block_time": t.block_time, "confirmed": true,
    })
    .to_string();
    let ts = (now_ms() / 1000).to_string();
    let response = reqwest::Client::new()
        .post(format!("http://{}/internal/payments/notify", app.http_addr))
        .header("x-telebot-timestamp", &ts)
        .header(
            "x-telebot-signature",
            format!("sha256={}", sign("hook-secret", &ts, body.as_bytes())),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let paid = wait_status(&db.store, order.id, OrderStatus::Delivered).await;
    // let both scanners read the transfer again after the payment
    let before = tg.requests().len();
    wait_for("more TronGrid polls", LIMIT, || async {
        (tg.requests().len() > before + 3).then_some(())
    })
    .await;
    let seen_block = node.block_requests().len();
    node.advance(2);
    wait_for("more full-node polls", LIMIT, || async {
        (node.block_requests().len() > seen_block + 1).then_some(())
    })
    .await;

    let transfer = db.store.transfer_by_key("tron", &t.txid, 0).await.unwrap();
    assert_eq!(transfer.outcome, TransferOutcome::Matched);
    assert_eq!(paid.transfer_id, Some(transfer.id));
    assert_eq!(
        db.store.stock_available(product.id).await.unwrap(),
        3,
        "two items delivered, once"
    );
    assert_eq!(paid.delivery.unwrap().lines().count(), 2);
    assert!(
        db.store
            .transfers_by_outcome(TransferOutcome::Unmatched, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        db.store
            .transfers_by_outcome(TransferOutcome::Late, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let paid_events = outbox_events(&db.store, "customer")
        .await
        .into_iter()
        .filter(|e| e["event"] == "order_delivered")
        .count();
    assert_eq!(paid_events, 1, "the customer is told once");
    assert_eq!(
        db.store.user(user.id).await.unwrap().balance,
        Money::ZERO,
        "nothing credited twice"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn ten_thousand_concurrent_allocations_never_share_an_amount() {
    use ractor::Actor;
    use telebot::actors::matcher::{Matcher, MatcherHandle};
    use telebot::domain::allocation::TableRules;
    let slot = telebot::supervision::ActorSlot::new();
    let matcher = Matcher {
        chain: "tron".into(),
        token: "USDT".into(),
        wallets: vec![WALLET.into(), "TUoHaVjx7n5xz8LwPRDckgFrDWhMhuSuJM".into()],
        rules: TableRules {
            step: Money::from_micros(1),
            max_slots: 250,
            window_ms: 900_000,
            quarantine_ms: 1_800_000,
        },
        store: None,
    };
    let (actor, _) = Actor::spawn(None, matcher, ()).await.unwrap();
    slot.set(actor.clone());
    let handle = MatcherHandle::new(slot);
    // 20 products at different prices, 500 customers ordering each at the same moment
    let prices: Vec<Money> = (0..20)
        .map(|i| Money::from_micros(10_000_000 + i * 10_000))
        .collect();
    let mut tasks = Vec::new();
    for order in 0..10_000i64 {
        let h = handle.clone();
        let price = prices[(order % 20) as usize];
        tasks.push(tokio::spawn(async move {
            let a = h.allocate(order, price).await.unwrap().unwrap();
            (price, a)
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        let (price, a) = t.await.unwrap();
        assert!(
            a.amount > price && a.amount.micros() <= price.micros() + 250,
            "{a:?} for {price}"
        );
        assert!(
            seen.insert((a.wallet, a.amount)),
            "duplicate amount handed out"
        );
    }
    assert_eq!(seen.len(), 10_000);
    // every slot of both wallets is taken at these prices: the next customer is told when to return
    let busy = handle
        .allocate(10_001, prices[0])
        .await
        .unwrap()
        .unwrap_err();
    assert!(busy.retry_at > now_ms());
    actor.stop(None);
}

async fn concurrent_orders_get_distinct_amounts(db: TestDb) {
    let app = start_app(&db.url, &[("TELEBOT__PAYMENTS__MAX_SLOTS", "500")]).await;
    let (user, product) = shop(&db.store, 103, "5", 0).await;
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let a = app.app.clone();
        let p = product.clone();
        tasks.push(tokio::spawn(async move {
            order_for(&a, user.id, &p, 1).await.payable_amount
        }));
    }
    let mut amounts = HashSet::new();
    for t in tasks {
        assert!(amounts.insert(t.await.unwrap()));
    }
    let live = db.store.live_allocations().await.unwrap();
    assert_eq!(live.len(), 200);
    assert_eq!(
        live.iter().map(|a| a.amount).collect::<HashSet<_>>().len(),
        200
    );
    app.shutdown().await;
    db.finish().await;
}

#[tokio::test]
async fn concurrent_orders_get_distinct_amounts_on_sqlite() {
    concurrent_orders_get_distinct_amounts(TestDb::sqlite().await).await;
}

#[tokio::test]
#[cfg_attr(
    not(telebot_postgres),
    ignore = "needs PostgreSQL: set TELEBOT_TEST_POSTGRES_URL"
)]
async fn concurrent_orders_get_distinct_amounts_on_postgres() {
    concurrent_orders_get_distinct_amounts(TestDb::postgres().await).await;
}

#[tokio::test]
async fn restarts_and_a_crash_in_a_stream_of_payments_lose_nothing() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let vars = tg_vars(&tg, "seen");
    let app = start_app(&db.url, &vars).await;
    let (user, product) = shop(&db.store, 104, "1", 40).await;
    let mut orders = Vec::new();
    for _ in 0..30 {
        orders.push(order_for(&app.app, user.id, &product, 1).await);
    }

    let feed = {
        let tg = tg.clone();
        let amounts: Vec<Money> = orders.iter().map(|o| o.payable_amount).collect();
        tokio::spawn(async move {
            for (i, amount) in amounts.into_iter().enumerate() {
                if i >= 20 {
                    break;
                }
                tg.push(transfer_to(amount, true));
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    wait_paid(&db.store, &orders, 2).await;
    app.app.registry.restart("payments", LIMIT).await.unwrap();
    wait_paid(&db.store, &orders, 5).await;
    // a crash: the scanner is killed mid-work, without a chance to clean up
    let scanner = app
        .app
        .registry
        .cell("payments/scanner-trongrid")
        .expect("scanner running");
    scanner.kill();
    wait_paid(&db.store, &orders, 8).await;
    app.app.registry.restart("orders", LIMIT).await.unwrap();
    feed.await.unwrap();
    let scanner = app
        .app
        .registry
        .status("payments/scanner-trongrid")
        .unwrap();
    assert!(
        scanner.restarts >= 1,
        "the killed scanner was restarted: {scanner:?}"
    );
    // the whole instance stops and a new one starts on the same database
    app.shutdown().await;
    for o in &orders[20..] {
        tg.push(transfer_to(o.payable_amount, true));
    }
    let app = start_app(&db.url, &vars).await;
    for o in &orders {
        wait_status(&db.store, o.id, OrderStatus::Delivered).await;
    }
    assert_eq!(db.store.stock_available(product.id).await.unwrap(), 10);
    assert!(db.store.unprocessed_transfers().await.unwrap().is_empty());
    assert!(
        db.store
            .transfers_by_outcome(TransferOutcome::Unmatched, 10)
            .await
            .unwrap()
            .is_empty()
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_payment_made_in_time_while_the_service_was_down_still_pays() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let mut vars = tg_vars(&tg, "seen");
    vars.push(("TELEBOT__PAYMENTS__WINDOW", "2s"));
    let app = start_app(&db.url, &vars).await;
    let (user, product) = shop(&db.store, 105, "2", 1).await;
    let order = order_for(&app.app, user.id, &product, 1).await;
    app.shutdown().await;
    // paid one second into the window, while nothing was running; the window then ends
    let mut t = transfer_to(order.payable_amount, true);
    t.block_time = order.created_at + 1_000;
    tg.push(t);
    pass_deadline(order.expires_at, 500).await;
    let app = start_app(&db.url, &vars).await;
    wait_status(&db.store, order.id, OrderStatus::Delivered).await;
    app.shutdown().await;
}

/// An order whose payment window ended while nothing was running, and that nobody paid, is
/// expired when the service starts again, and the customer is told.
#[tokio::test]
async fn an_unpaid_order_whose_window_passed_while_down_expires_at_start() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let mut vars = tg_vars(&tg, "seen");
    vars.push(("TELEBOT__PAYMENTS__WINDOW", "1s"));
    let app = start_app(&db.url, &vars).await;
    let (user, product) = shop(&db.store, 107, "2", 1).await;
    let order = order_for(&app.app, user.id, &product, 1).await;
    app.shutdown().await;
    pass_deadline(order.expires_at, 500).await;
    assert_eq!(
        db.store.order(order.id).await.unwrap().status,
        OrderStatus::PendingPayment,
        "nothing ran while the service was down"
    );
    let app = start_app(&db.url, &vars).await;
    wait_status(&db.store, order.id, OrderStatus::Expired).await;
    assert!(has_event(&db.store, "customer", "order_expired", order.id).await);
    let trail = audited(&db.store, "order", order.id).await;
    assert!(has_action(&trail, "order.expired"), "{trail:?}");
    assert_eq!(
        db.store.stock_available(product.id).await.unwrap(),
        1,
        "the reserved item is back in stock"
    );
    app.shutdown().await;
}

/// The matcher's table is rebuilt from the database when it restarts: amounts held by pending
/// orders stay taken, so a new order never gets one of them.
#[tokio::test]
async fn a_restarted_matcher_still_refuses_the_amounts_of_pending_orders() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let mut vars = tg_vars(&tg, "seen");
    vars.push(("TELEBOT__PAYMENTS__MAX_SLOTS", "2"));
    let app = start_app(&db.url, &vars).await;
    let (user, product) = shop(&db.store, 108, "3", 5).await;
    let first = order_for(&app.app, user.id, &product, 1).await;
    app.app
        .registry
        .restart("payments/matcher", LIMIT)
        .await
        .unwrap();
    let second = order_for(&app.app, user.id, &product, 1).await;
    assert_ne!(second.payable_amount, first.payable_amount);
    app.app
        .registry
        .restart("payments/matcher", LIMIT)
        .await
        .unwrap();
    let third = app
        .app
        .orders
        .create(
            &telebot::store::NewOrder {
                user_id: user.id,
                product_id: Some(product.id),
                kind: product.kind,
                quantity: 1,
                price: product.price,
                chain: "tron".into(),
                token: "USDT".into(),
                request_text: None,
            },
            "test",
        )
        .await;
    assert!(
        matches!(
            third,
            Err(telebot::messages::orders::OrderError::Busy { .. })
        ),
        "both amounts are still held after two restarts: {third:?}"
    );
    // and payments still find their orders
    tg.push(transfer_to(first.payable_amount, true));
    tg.push(transfer_to(second.payable_amount, true));
    wait_status(&db.store, first.id, OrderStatus::Delivered).await;
    wait_status(&db.store, second.id, OrderStatus::Delivered).await;
    app.shutdown().await;
}

async fn expect_fault_recovery(tg_fault: Option<Fault>, node_fault: Option<Fault>, kind: &str) {
    telebot::telemetry::metrics_handle();
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let node = FullNode::start(9_000).await;
    let source = if tg_fault.is_some() {
        "trongrid"
    } else {
        "fullnode"
    };
    let mut vars = tg_vars(&tg, "seen");
    vars[0] = ("TELEBOT__TRON__SOURCE", source);
    vars.push(("TELEBOT__TRON__FULLNODE_URL", node.url.as_str()));
    let app = start_app(&db.url, &vars).await;
    let (user, product) = shop(&db.store, 106, "4", 1).await;
    let order = order_for(&app.app, user.id, &product, 1).await;
    let mut other = transfer_to(Money::from_micros(1), true);
    other.block_time -= 10;
    tg.push(other);
    if let Some(f) = tg_fault {
        tg.fail_next(f, 2);
        tg.push(transfer_to(order.payable_amount, true));
    }
    if let Some(f) = node_fault {
        node.push_block(transfer_to(order.payable_amount, true));
        node.fail_next(f, 2);
    }
    wait_status(&db.store, order.id, OrderStatus::Delivered).await;
    let statuses = app.app.progress.statuses();
    let (_, status) = statuses.iter().find(|(s, _)| s == source).unwrap();
    assert!(status.errors >= 1, "{kind}: the fault was noticed");
    let metrics = telebot::telemetry::metrics_handle().render();
    assert!(
        metrics.contains(&format!(
            "scanner_errors_total{{chain=\"tron\",kind=\"{kind}\"}}"
        )),
        "{kind} missing from metrics"
    );
    assert_eq!(
        db.store
            .transfers_by_outcome(TransferOutcome::Unmatched, 10)
            .await
            .unwrap()
            .len(),
        usize::from(source == "trongrid")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn trongrid_rate_limits_are_backed_off() {
    expect_fault_recovery(Some(Fault::TronGridError(429)), None, "rate_limited").await;
    expect_fault_recovery(Some(Fault::TronGridError(403)), None, "rate_limited").await;
}

#[tokio::test]
async fn server_errors_and_timeouts_are_backed_off() {
    expect_fault_recovery(Some(Fault::ServerError), None, "server_error").await;
    expect_fault_recovery(Some(Fault::Slow(Duration::from_secs(2))), None, "timeout").await;
    expect_fault_recovery(None, Some(Fault::ServerError), "server_error").await;
}

#[tokio::test]
async fn broken_bodies_are_backed_off() {
    expect_fault_recovery(Some(Fault::Truncated), None, "malformed").await;
    expect_fault_recovery(Some(Fault::Garbage), None, "malformed").await;
    expect_fault_recovery(None, Some(Fault::Truncated), "malformed").await;
}

#[tokio::test]
async fn a_busy_node_and_pages_out_of_order_are_backed_off() {
    expect_fault_recovery(None, Some(Fault::NodeError), "node_error").await;
    expect_fault_recovery(Some(Fault::OutOfOrder), None, "out_of_order").await;
}

#[tokio::test]
async fn a_failed_block_is_read_again_not_skipped() {
    let db = TestDb::sqlite().await;
    let node = FullNode::start(3_000).await;
    let app = start_app(&db.url, &node_vars(&node, "seen")).await;
    let (user, product) = shop(&db.store, 107, "6", 1).await;
    let order = order_for(&app.app, user.id, &product, 1).await;
    wait_for("scanner at the head", LIMIT, || async {
        db.store
            .scan_cursor("tron:fullnode")
            .await
            .unwrap()
            .filter(|c| *c >= 3_000)
    })
    .await;
    // head, then the block with the payment fails twice
    node.fail_next(Fault::Slow(Duration::ZERO), 1);
    let block = node.push_block(transfer_to(order.payable_amount, true));
    node.fail_next(Fault::NodeError, 2);
    wait_status(&db.store, order.id, OrderStatus::Delivered).await;
    let asked = node
        .block_requests()
        .iter()
        .filter(|b| **b == block)
        .count();
    assert!(
        asked >= 2,
        "block {block} was read again after failing ({asked} requests)"
    );
    app.shutdown().await;
}

/// TronGrid lists a transfer some seconds after its block (later still after solidification).
/// A payment made three seconds before the window ends but listed after it still pays its
/// order: the order waits for the resume overlap past its window, and meanwhile the API says the
/// chain is being checked rather than that the order expired.
async fn a_payment_indexed_late_still_pays(db: TestDb, confirmations: &str, lag: Duration) {
    let tg = TronGrid::start().await;
    let mut vars = tg_vars(&tg, confirmations);
    vars.push(("TELEBOT__PAYMENTS__WINDOW", "5s"));
    vars.push(("TELEBOT__TRON__RESUME_OVERLAP", "10s"));
    let app = start_app(&db.url, &vars).await;
    let api = token(&db.store, Role::Service, None).await;
    let base = app.http_addr.to_string();
    let (user, product) = shop(&db.store, 120, "4", 1).await;
    let order = order_for(&app.app, user.id, &product, 1).await;
    let mut t = transfer_to(order.payable_amount, true);
    t.block_time = order.expires_at - 3_000;
    tg.push_indexed_late(t, lag);

    wait_for("the payment window to end", LIMIT, || async {
        (now_ms() > order.expires_at + 500).then_some(())
    })
    .await;
    assert_eq!(
        payment_state(&base, &api, order.id).await["state"],
        "checking_chain",
        "{confirmations}: past the window, before the listing shows the transfer"
    );
    let paid = wait_for(
        "the in-time payment to pay its order",
        lag + LIMIT,
        || async {
            let o = db.store.order(order.id).await.unwrap();
            (o.status != OrderStatus::PendingPayment).then_some(o)
        },
    )
    .await;
    assert_eq!(
        paid.status,
        OrderStatus::Delivered,
        "{confirmations}: a transfer made in time delivers the goods"
    );
    assert!(
        db.store
            .transfers_by_outcome(TransferOutcome::Late, 10)
            .await
            .unwrap()
            .is_empty(),
        "{confirmations}: nothing is taken for a late payment"
    );
    assert_eq!(db.store.user(user.id).await.unwrap().balance, Money::ZERO);
    app.shutdown().await;
    db.finish().await;
}

/// The three confirmation settings, each on its own instance and database, side by side:
/// "seen" with a transfer listed 6 s after its block, a block count and "solidified" with one
/// listed 4 s after TronGrid's minute of solidification.
async fn payments_indexed_late_still_pay([seen, count, solid]: [TestDb; 3]) {
    let solidified = Duration::from_millis(telebot::actors::trongrid_scanner::SOLIDIFY_MS as u64);
    tokio::join!(
        a_payment_indexed_late_still_pays(seen, "seen", Duration::from_secs(6)),
        a_payment_indexed_late_still_pays(count, "19", solidified + Duration::from_secs(4)),
        a_payment_indexed_late_still_pays(solid, "solidified", solidified + Duration::from_secs(4)),
    );
}

#[tokio::test]
async fn payments_indexed_late_still_pay_on_sqlite() {
    let dbs = [
        TestDb::sqlite().await,
        TestDb::sqlite().await,
        TestDb::sqlite().await,
    ];
    payments_indexed_late_still_pay(dbs).await;
}

#[tokio::test]
#[cfg_attr(
    not(telebot_postgres),
    ignore = "needs PostgreSQL: set TELEBOT_TEST_POSTGRES_URL"
)]
async fn payments_indexed_late_still_pay_on_postgres() {
    let dbs = [
        TestDb::postgres().await,
        TestDb::postgres().await,
        TestDb::postgres().await,
    ];
    payments_indexed_late_still_pay(dbs).await;
}

#[tokio::test]
async fn a_late_payment_is_credited_and_its_amount_is_not_reused() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let mut vars = tg_vars(&tg, "seen");
    vars.push(("TELEBOT__PAYMENTS__WINDOW", "1s"));
    let app = start_app(&db.url, &vars).await;
    let (user, product) = shop(&db.store, 108, "9", 2).await;
    let expired = order_for(&app.app, user.id, &product, 1).await;
    wait_status(&db.store, expired.id, OrderStatus::Expired).await;
    assert!(has_event(&db.store, "customer", "order_expired", expired.id).await);

    let next = order_for(&app.app, user.id, &product, 1).await;
    assert_ne!(
        next.payable_amount, expired.payable_amount,
        "a quarantined amount is not handed out"
    );

    tg.push(transfer_to(expired.payable_amount, true));
    let credited = wait_for("late payment credited", LIMIT, || async {
        let u = db.store.user(user.id).await.unwrap();
        (u.balance == expired.payable_amount).then_some(u)
    })
    .await;
    assert_eq!(credited.balance.to_string(), "9.001000");
    let late = db
        .store
        .transfers_by_outcome(TransferOutcome::Late, 10)
        .await
        .unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].order_id, Some(expired.id));
    let trail = audited(&db.store, "transfer", late[0].id).await;
    assert!(has_action(&trail, "transfer.late_credited"), "{trail:?}");
    let trail = audited(&db.store, "order", expired.id).await;
    assert!(has_action(&trail, "order.expired"), "{trail:?}");
    assert_eq!(
        db.store.order(next.id).await.unwrap().status,
        OrderStatus::PendingPayment,
        "the new order is untouched"
    );
    let ledger = db.store.ledger(user.id, 10).await.unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].reason, "late_payment");
    app.shutdown().await;
}

#[tokio::test]
async fn a_late_payment_can_wait_for_an_operator_instead() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let mut vars = tg_vars(&tg, "seen");
    vars.push(("TELEBOT__PAYMENTS__WINDOW", "1s"));
    vars.push(("TELEBOT__PAYMENTS__LATE_PAYMENT", "operator_review"));
    let app = start_app(&db.url, &vars).await;
    let (user, product) = shop(&db.store, 109, "9", 1).await;
    let order = order_for(&app.app, user.id, &product, 1).await;
    wait_status(&db.store, order.id, OrderStatus::Expired).await;
    tg.push(transfer_to(order.payable_amount, true));
    let review = wait_for("transfer held for review", LIMIT, || async {
        db.store
            .transfers_by_outcome(TransferOutcome::Review, 10)
            .await
            .unwrap()
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(review.order_id, Some(order.id));
    assert_eq!(db.store.user(user.id).await.unwrap().balance, Money::ZERO);
    let trail = audited(&db.store, "transfer", review.id).await;
    assert!(has_action(&trail, "transfer.review"), "{trail:?}");
    let operator = outbox_events(&db.store, "operator").await;
    assert!(
        operator
            .iter()
            .any(|e| e["event"] == "late_payment_review" && e["transfer_id"] == review.id)
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_unmatched_transfer_is_kept_and_reported() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let app = start_app(&db.url, &tg_vars(&tg, "seen")).await;
    let stray = transfer_to(Money::parse("12.345678").unwrap(), true);
    tg.push(stray.clone());
    let kept = wait_for("unmatched transfer kept", LIMIT, || async {
        db.store
            .transfers_by_outcome(TransferOutcome::Unmatched, 10)
            .await
            .unwrap()
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(kept.txid, stray.txid);
    assert_eq!(kept.amount.to_string(), "12.345678");
    let trail = audited(&db.store, "transfer", kept.id).await;
    assert!(has_action(&trail, "transfer.unmatched"), "{trail:?}");
    let operator = outbox_events(&db.store, "operator").await;
    assert!(
        operator
            .iter()
            .any(|e| e["event"] == "unmatched_transfer" && e["transfer_id"] == kept.id)
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_flood_longer_than_one_poll_reads_does_not_hide_a_payment() {
    flood_then_payment(1).await;
}

#[tokio::test]
async fn a_flood_within_one_block_time_does_not_hide_a_payment() {
    flood_then_payment(0).await;
}

#[tokio::test]
async fn a_flood_once_read_is_not_read_again_at_every_poll() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let mut vars = tg_vars(&tg, "seen");
    vars.push(("TELEBOT__TRON__RESUME_OVERLAP", "5s"));
    let app = start_app(&db.url, &vars).await;
    // a minute ago: 10,400 zero-value spam transfers within ten seconds, then one of dust
    let start = now_ms() - 60_000;
    for i in 0..10_400 {
        tg.push(ChainTransfer {
            block_time: start + i,
            ..transfer_to(Money::ZERO, true)
        });
    }
    let dust = ChainTransfer {
        block_time: start + 10_400,
        ..transfer_to(Money::parse("0.000001").unwrap(), true)
    };
    tg.push(dust.clone());
    wait_for("dust recorded", LIMIT, || async {
        db.store
            .transfers_by_outcome(TransferOutcome::Unmatched, 10)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.txid == dust.txid)
    })
    .await;

    // everything up to the dust was read to its end, long before the overlap: each later poll
    // reads one page from the dust on, not the last five seconds of spam (25 pages) again
    let before = tg.requests().len();
    let is_first_page = |q: &String| !q.contains("fingerprint");
    let requests = wait_for("ten more polls", LIMIT, || async {
        let requests = tg.requests().split_off(before);
        (requests.iter().filter(|(q, _)| is_first_page(q)).count() >= 10).then_some(requests)
    })
    .await;
    let polls = requests.iter().filter(|(q, _)| is_first_page(q)).count();
    assert!(
        requests.len() <= polls + 2,
        "{} requests in {polls} polls",
        requests.len()
    );
    app.shutdown().await;
}

/// 10,400 spam transfers `spacing` ms apart, then a customer's payment.
async fn flood_then_payment(spacing: i64) {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let app = start_app(&db.url, &tg_vars(&tg, "seen")).await;
    let (user, product) = shop(&db.store, 120, "10", 1).await;
    let order = order_for(&app.app, user.id, &product, 1).await;
    // address-poisoning spam: 10,400 zero-value transfers (52 full pages, more than one poll
    // reads) within ten seconds or all at one block time, well inside the two-minute resume
    // overlap; among them dust of 0.000001 USDT, before and after where the first poll stops
    let start = now_ms();
    let item = |i: i64, amount: Money| ChainTransfer {
        block_time: start + i * spacing,
        ..transfer_to(amount, true)
    };
    let dust = Money::parse("0.000001").unwrap();
    let mut dust_txids = HashSet::new();
    for i in 0..10_400 {
        let t = item(i, if i % 5_000 == 7 { dust } else { Money::ZERO });
        if t.amount == dust {
            dust_txids.insert(t.txid.clone());
        }
        tg.push(t);
    }
    let payment = item(10_400, order.payable_amount);
    tg.push(payment.clone());

    let paid = wait_status(&db.store, order.id, OrderStatus::Delivered).await;
    assert!(paid.delivery.is_some());
    let transfers = db.store.transfers_of_order(order.id).await.unwrap();
    assert_eq!(transfers.len(), 1);
    assert_eq!(transfers[0].txid, payment.txid);
    // the dust is kept for operators, but raises no alert
    let kept: HashSet<String> = db
        .store
        .transfers_by_outcome(TransferOutcome::Unmatched, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.txid)
        .collect();
    assert_eq!(kept, dust_txids);
    let operator = outbox_events(&db.store, "operator").await;
    assert!(
        !operator.iter().any(|e| e["event"] == "unmatched_transfer"),
        "{operator:?}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_scanner_report_that_contradicts_an_earlier_one_is_skipped_not_stuck_on() {
    telebot::telemetry::metrics_handle();
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let app = start_app(&db.url, &tg_vars(&tg, "seen")).await;
    let (user, product) = shop(&db.store, 130, "10", 1).await;
    let order = order_for(&app.app, user.id, &product, 1).await;
    // the webhook reported this transaction first: 5 USDT to the wallet
    let first = transfer_to(Money::parse("5").unwrap(), true);
    let webhook = app
        .app
        .payments
        .ingest(&telebot::store::NewTransfer {
            chain: "tron".into(),
            txid: first.txid.clone(),
            log_index: 0,
            token: "USDT".into(),
            from_address: PAYER.into(),
            to_address: WALLET.into(),
            amount: first.amount,
            block_number: None,
            block_time: first.block_time,
            confirmed: true,
            source: "webhook".into(),
        })
        .await
        .unwrap();
    // TronGrid lists the same transaction with another amount, then the customer's payment
    tg.push(ChainTransfer {
        amount: Money::parse("500").unwrap(),
        ..first.clone()
    });
    tg.push(ChainTransfer {
        block_time: first.block_time + 1,
        ..transfer_to(order.payable_amount, true)
    });

    wait_status(&db.store, order.id, OrderStatus::Delivered).await;
    let kept = db.store.transfer(webhook.transfer_id).await.unwrap();
    assert_eq!(kept.amount.to_string(), "5.000000");
    assert_eq!(kept.source, "webhook");
    let metrics = reqwest::get(format!("http://{}/metrics", app.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("scanner_errors_total{")
                && l.contains("kind=\"conflicting_report\"")
                && !l.ends_with(" 0")),
        "{metrics}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_wallet_taken_out_of_the_configuration_is_scanned_while_it_holds_orders() {
    const NEW_WALLET: &str = "TWsghcMkFXe1hnwZAWVQ9fUrZBtYv2aGJ8";
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let app = start_app(&db.url, &tg_vars(&tg, "seen")).await;
    let (user, product) = shop(&db.store, 140, "10", 2).await;
    let order = order_for(&app.app, user.id, &product, 1).await;
    assert_eq!(order.wallet.as_deref(), Some(WALLET));
    app.shutdown().await;

    // the operator replaces the wallet; the order placed before still waits on the old one
    let mut vars: Vec<(&str, &str)> = tg_vars(&tg, "seen")
        .into_iter()
        .filter(|(k, _)| *k != "TELEBOT__PAYMENTS__WALLETS")
        .collect();
    vars.push(("TELEBOT__PAYMENTS__WALLETS", NEW_WALLET));
    let app = start_app(&db.url, &vars).await;
    tg.push(transfer_to(order.payable_amount, true));
    let paid = wait_status(&db.store, order.id, OrderStatus::Delivered).await;
    assert!(paid.transfer_id.is_some());
    assert_eq!(app.app.watched_wallets, [NEW_WALLET, WALLET]);
    // new orders only get the new wallet
    let fresh = order_for(&app.app, user.id, &product, 1).await;
    assert_eq!(fresh.wallet.as_deref(), Some(NEW_WALLET));
    app.shutdown().await;
}

#[tokio::test]
async fn an_order_waits_for_the_real_time_of_the_last_block_read_when_slots_were_skipped() {
    let db = TestDb::sqlite().await;
    let node = FullNode::start(1_000).await;
    let mut vars = node_vars(&node, "seen");
    vars.push(("TELEBOT__PAYMENTS__WINDOW", "3s"));
    let app = start_app(&db.url, &vars).await;
    let (user, product) = shop(&db.store, 150, "10", 1).await;
    let order = order_for(&app.app, user.id, &product, 1).await;
    // the customer pays in time, in block 1006; then the chain skipped slots: 20 blocks 30 s
    // apart. Counted back from the head at 3 s a block, block 1005 would seem eight minutes
    // later than it is. The node cannot serve the payment's block for now.
    node.fail_block(1_006, usize::MAX);
    let mut blocks: Vec<(i64, Option<ChainTransfer>)> = vec![(200, None); 5];
    blocks.push((200, Some(transfer_to(order.payable_amount, true))));
    blocks.extend(vec![(30_000, None); 20]);
    let numbers = node.append(blocks);
    assert_eq!(numbers[5], 1_006);
    assert!(node.block_time(1_006) <= order.expires_at);

    // past the window, the payment's block still unread: the order must wait for it
    let wait = (order.expires_at - now_ms()).max(0) as u64 + 2_000;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert!(
        node.block_requests().contains(&1_005),
        "block 1005 was read"
    );
    assert_eq!(
        db.store.order(order.id).await.unwrap().status,
        OrderStatus::PendingPayment,
        "expired while its payment's block was unread"
    );
    let watermark = app.app.progress.watermark().unwrap();
    assert!(watermark <= node.block_time(1_005), "{watermark}");

    node.fail_block(1_006, 0);
    let paid = wait_status(&db.store, order.id, OrderStatus::Delivered).await;
    assert!(paid.transfer_id.is_some());
    app.shutdown().await;
}

#[tokio::test]
async fn the_webhook_checks_signatures_and_input_before_storing_anything() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let mut vars = tg_vars(&tg, "seen");
    vars.push(("TELEBOT__SECURITY__WEBHOOK_SECRET", "s3cret"));
    let app = start_app(&db.url, &vars).await;
    let (user, product) = shop(&db.store, 110, "1", 1).await;
    let order = order_for(&app.app, user.id, &product, 1).await;
    let url = format!("http://{}/internal/payments/notify", app.http_addr);
    let client = reqwest::Client::new();
    let txid = random_txid();
    let good = serde_json::json!({
        "chain": "tron", "txid": txid, "log_index": 0, "token": "USDT", "from": PAYER, "to": WALLET,
        "amount": order.payable_amount.to_string(), "block_time": now_ms(), "confirmed": true,
    });
    let send = |body: String, ts: i64, secret: &'static str| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let ts = ts.to_string();
            let r = client
                .post(url)
                .header("x-telebot-timestamp", &ts)
                .header(
                    "x-telebot-signature",
                    format!("sha256={}", sign(secret, &ts, body.as_bytes())),
                )
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let now = now_ms() / 1000;

    let (status, body) = send(good.to_string(), now, "wrong").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "bad_signature");
    let (status, _) = send(good.to_string(), now - 3_600, "s3cret").await;
    assert_eq!(status, 401, "a stale timestamp is a replay");
    let (status, body) = send("{\"chain\":".to_owned(), now, "s3cret").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "malformed");
    let mut extra = good.clone();
    extra["note"] = serde_json::json!("hi");
    let (status, body) = send(extra.to_string(), now, "s3cret").await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("note"));
    for (field, value) in [
        ("amount", serde_json::json!("1.0000001")),
        (
            "to",
            serde_json::json!("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u"),
        ),
        ("txid", serde_json::json!("xyz")),
        ("chain", serde_json::json!("ethereum")),
    ] {
        let mut bad = good.clone();
        bad[field] = value;
        let (status, body) = send(bad.to_string(), now, "s3cret").await;
        assert_eq!(status, 400, "{field}");
        assert_eq!(body["error"]["field"], field);
    }
    assert!(
        db.store.transfer_by_key("tron", &txid, 0).await.is_err(),
        "nothing stored for refused calls"
    );
    let no_headers = client
        .post(&url)
        .body(good.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(no_headers.status(), 401);

    let (status, body) = send(good.to_string(), now, "s3cret").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["placement"], "paid");
    assert_eq!(body["order_id"], order.id);
    let (status, body) = send(good.to_string(), now, "s3cret").await;
    assert_eq!(status, 200);
    assert_eq!(body["placement"], "duplicate", "a replay changes nothing");
    wait_status(&db.store, order.id, OrderStatus::Delivered).await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_payment_api_needs_a_token_and_respects_agents() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    let (user, product) = shop(&db.store, 111, "1", 1).await;
    let order = order_for(&app.app, user.id, &product, 1).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/api/v1/payments/{}", app.http_addr, order.id);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        client
            .get(&url)
            .bearer_auth("tb_nope")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let other = db
        .store
        .create_agent(
            &telebot::store::NewAgent {
                user_id: None,
                name: "someone else".into(),
                code: "other".into(),
                commission_bps: 500,
                status: telebot::domain::AgentStatus::Active,
            },
            "test",
        )
        .await
        .unwrap();
    let agent = token(&db.store, Role::Agent, Some(other.id)).await;
    assert_eq!(
        client
            .get(&url)
            .bearer_auth(&agent)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let operator = token(&db.store, Role::Operator, None).await;
    let r = client
        .get(&url)
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bad = format!("http://{}/api/v1/payments/abc", app.http_addr);
    let r = client
        .get(&bad)
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["field"], "order_id");
    app.shutdown().await;
}

#[tokio::test]
async fn demo_chain_payments_go_through_the_same_pipeline() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    let (user, product) = shop(&db.store, 112, "15", 1).await;
    let order = order_for(&app.app, user.id, &product, 1).await;
    let demo = app
        .app
        .demo_chain
        .clone()
        .expect("demo chain in the default configuration");
    let first = demo
        .pay(order.wallet.as_deref().unwrap(), order.payable_amount)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.placement, telebot::domain::Placement::Confirming);
    wait_status(&db.store, order.id, OrderStatus::Delivered).await;
    assert!(has_event(&db.store, "customer", "payment_seen", order.id).await);
    app.shutdown().await;
}

#[tokio::test]
async fn a_repeated_payment_is_credited_to_its_payer_not_to_a_new_order() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let app = start_app(&db.url, &tg_vars(&tg, "seen")).await;
    let (user, product) = shop(&db.store, 113, "6", 3).await;
    let first = order_for(&app.app, user.id, &product, 1).await;
    tg.push(transfer_to(first.payable_amount, true));
    wait_status(&db.store, first.id, OrderStatus::Delivered).await;
    // another customer orders the same product: the paid amount is not handed out again
    let (other, _) = shop(&db.store, 114, "1", 0).await;
    let second = order_for(&app.app, other.id, &product, 1).await;
    assert_ne!(second.payable_amount, first.payable_amount);
    // the first customer's wallet app sends the payment once more
    tg.push(transfer_to(first.payable_amount, true));
    let credited = wait_for(
        "the repeated payment credited to its payer",
        LIMIT,
        || async {
            let u = db.store.user(user.id).await.unwrap();
            (u.balance == first.payable_amount).then_some(u)
        },
    )
    .await;
    assert_eq!(credited.balance.to_string(), "6.001000");
    assert_eq!(
        db.store.order(second.id).await.unwrap().status,
        OrderStatus::PendingPayment
    );
    app.shutdown().await;
}

/// A merchant's server on loopback: records every callback and answers with the queued statuses
/// (200 once they run out).
#[derive(Clone, Default)]
struct Merchant {
    received: std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, axum::body::Bytes)>>>,
    answers: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<u16>>>,
}

impl Merchant {
    async fn start(answers: &[u16]) -> (Merchant, String) {
        let m = Merchant::default();
        m.answers.lock().unwrap().extend(answers);
        let state = m.clone();
        let router = axum::Router::new().route(
            "/hooks/telebot",
            axum::routing::post(
                |axum::extract::State(m): axum::extract::State<Merchant>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    m.received.lock().unwrap().push((headers, body));
                    let code = m.answers.lock().unwrap().pop_front().unwrap_or(200);
                    axum::http::StatusCode::from_u16(code).unwrap()
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, router.with_state(state))
                .await
                .unwrap();
        });
        (m, format!("http://{addr}/hooks/telebot"))
    }

    /// Callbacks received so far: (delivery id, event, verified body).
    fn events(&self, secret: &str) -> Vec<(String, String, serde_json::Value)> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(h, body)| {
                let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
                telebot::payments::webhook::verify(
                    secret,
                    header("x-telebot-timestamp"),
                    header("x-telebot-signature"),
                    body,
                    now_ms() / 1000,
                    300,
                )
                .expect("every callback carries a valid signature");
                assert_eq!(header("content-type"), Some("application/json"));
                (
                    header("x-telebot-delivery").unwrap().to_owned(),
                    header("x-telebot-event").unwrap().to_owned(),
                    serde_json::from_slice(body).unwrap(),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn merchant_callbacks_are_signed_retried_and_sent_once_per_event() {
    const SECRET: &str = "merchant-callback-secret";
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    // the merchant's server fails the first call: it must come again, unchanged
    let (merchant, url) = Merchant::start(&[503]).await;
    let mut vars = tg_vars(&tg, "solidified");
    vars.push(("TELEBOT__PAYMENTS__CALLBACK_URL", url.as_str()));
    vars.push(("TELEBOT__PAYMENTS__CALLBACK_SECRET", SECRET));
    let app = start_app(&db.url, &vars).await;
    let base = app.http_addr.to_string();
    let operator = token(&db.store, Role::Operator, None).await;
    let (user, product) = shop(&db.store, 4242, "10", 3).await;

    let order = order_for(&app.app, user.id, &product, 1).await;
    let t = transfer_to(order.payable_amount, true);
    tg.push(t.clone());
    wait_status(&db.store, order.id, OrderStatus::Delivered).await;
    let events = wait_for("the paid callback, retried", LIMIT, || async {
        let e = merchant.events(SECRET);
        (e.len() >= 2).then_some(e)
    })
    .await;
    let (first, second) = (&events[0], &events[1]);
    assert_eq!(first, second, "a retry carries the same delivery and body");
    let (_, event, body) = second;
    assert_eq!(event, "order.paid");
    assert_eq!(body["event"], "order.paid");
    assert_eq!(body["order"]["id"], order.id);
    assert_eq!(body["order"]["payable_amount"], "10.001000");
    assert!(
        body["order"].get("delivery").is_none(),
        "the customer's goods stay out of callbacks: {body}"
    );
    assert_eq!(body["customer"]["telegram_id"], 4242);
    assert_eq!(body["transfer"]["txid"], t.txid.as_str());
    assert_eq!(body["transfer"]["amount"], "10.001000");
    assert_eq!(body["transfer"]["from"], PAYER);

    // an operator refund and a cancelled order each make one more callback
    let client = reqwest::Client::new();
    let put = |id: i64, status: &'static str| {
        client
            .put(format!("http://{base}/api/v1/orders/{id}"))
            .bearer_auth(&operator)
            .json(&serde_json::json!({ "status": status }))
            .send()
    };
    assert_eq!(put(order.id, "refunded").await.unwrap().status(), 200);
    let unpaid = order_for(&app.app, user.id, &product, 1).await;
    assert_eq!(put(unpaid.id, "cancelled").await.unwrap().status(), 200);
    let events = wait_for("refund and cancel callbacks", LIMIT, || async {
        let e = merchant.events(SECRET);
        (e.len() >= 4).then_some(e)
    })
    .await;
    let refund = events.iter().find(|e| e.1 == "order.refunded").unwrap();
    assert_eq!(refund.2["order"]["status"], "refunded");
    let cancel = events.iter().find(|e| e.1 == "order.cancelled").unwrap();
    assert_eq!(cancel.2["order"]["id"], unpaid.id);
    assert_eq!(cancel.2["order"]["status"], "cancelled");
    assert!(cancel.2["transfer"].is_null());

    // nothing stays queued, and nothing was sent twice: a row is marked sent only after its
    // delivery, so once all are sent every delivery there will be has arrived
    let rows = wait_for("every callback marked sent", LIMIT, || async {
        let rows = db.store.outbox_by_kind("callback", 100).await.unwrap();
        rows.iter().all(|r| r.status == "sent").then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(merchant.events(SECRET).len(), 4);
    app.shutdown().await;
}

#[tokio::test]
async fn without_a_callback_url_nothing_is_queued_for_merchants() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    let (user, product) = shop(&db.store, 77, "5", 1).await;
    let order = order_for(&app.app, user.id, &product, 1).await;
    let cancelled = app.app.orders.cancel(order.id, "test").await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    let trail = audited(&db.store, "order", order.id).await;
    assert!(
        trail
            .iter()
            .any(|(a, actor)| a == "order.cancelled" && actor == "test"),
        "the cancellation is audited under who asked for it: {trail:?}"
    );
    assert!(
        db.store
            .outbox_by_kind("callback", 100)
            .await
            .unwrap()
            .is_empty()
    );
    app.shutdown().await;
}
