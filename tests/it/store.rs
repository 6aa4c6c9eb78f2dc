//! The store suite: the same tests on SQLite (always) and PostgreSQL (when
//! TELEBOT_TEST_POSTGRES_URL is set; a set but unreachable server fails the run).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::TestDb;
use telebot::domain::allocation::Allocation;
use telebot::domain::{
    AllocationState, Money, OrderStatus, ProductKind, Role, TransferOutcome, now_ms,
};
use telebot::store::*;

macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = super::TestDb::sqlite().await;
                    super::$name(&db.store).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[cfg_attr(not(telebot_postgres), ignore = "needs PostgreSQL: set TELEBOT_TEST_POSTGRES_URL")]
                async fn $name() {
                    let db = super::TestDb::postgres().await;
                    super::$name(&db.store).await;
                    db.finish().await;
                }
            )*
        }
    };
}

store_suite!(
    one_user_per_telegram_id,
    referral_binds_first_touch_only,
    catalog_round_trip,
    orders_get_unique_amounts_in_one_transaction,
    amount_source_failure_leaves_no_order,
    transfers_are_recorded_once,
    balance_never_goes_negative_and_a_transfer_credits_once,
    concurrent_settlements_pay_an_order_once,
    a_paid_amount_rests_in_quarantine_until_released,
    audit_log_is_append_only,
    scan_cursors_only_move_forward,
    outbox_is_idempotent_and_retries,
    an_outbox_message_is_claimed_by_one_sender,
    api_tokens_are_found_by_hash_until_revoked,
    money_survives_the_round_trip_exactly,
);

fn profile(telegram_id: i64, name: &str) -> TelegramProfile {
    TelegramProfile {
        telegram_id,
        username: Some(format!("user{telegram_id}")),
        first_name: name.to_owned(),
        language: "en".to_owned(),
    }
}

async fn user(store: &Store, telegram_id: i64) -> User {
    store
        .upsert_telegram_user(&profile(telegram_id, "Ann"))
        .await
        .unwrap()
        .0
}

async fn one_user_per_telegram_id(store: &Store) {
    let (first, created) = store
        .upsert_telegram_user(&profile(42, "Ann"))
        .await
        .unwrap();
    assert!(created);
    let (again, created) = store
        .upsert_telegram_user(&profile(42, "Annie"))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(first.id, again.id);
    assert_eq!(again.first_name, "Annie", "the profile is refreshed");

    // many first contacts at once still make one row
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.upsert_telegram_user(&profile(7, "Bob")).await.unwrap().1
        }));
    }
    let mut created = 0;
    for t in tasks {
        created += usize::from(t.await.unwrap());
    }
    assert_eq!(created, 1);
    assert_eq!(store.count_users().await.unwrap(), 2);
    assert!(store.user_by_telegram_id(7).await.unwrap().is_some());
    assert!(store.user_by_telegram_id(8).await.unwrap().is_none());
}

async fn new_agent(store: &Store, code: &str) -> Agent {
    store
        .create_agent(
            &NewAgent {
                user_id: None,
                name: format!("agent {code}"),
                code: code.to_owned(),
                commission_bps: 1_000,
                status: telebot::domain::AgentStatus::Active,
            },
            "test",
        )
        .await
        .unwrap()
}

async fn referral_binds_first_touch_only(store: &Store) {
    let u = user(store, 1).await;
    let a = new_agent(store, "alpha").await;
    let b = new_agent(store, "beta").await;
    assert!(store.bind_referral(u.id, a.id).await.unwrap());
    assert!(!store.bind_referral(u.id, b.id).await.unwrap());
    assert_eq!(
        store.user(u.id).await.unwrap().referred_by_agent_id,
        Some(a.id)
    );
    assert!(matches!(
        store
            .create_agent(
                &NewAgent {
                    user_id: None,
                    name: "dup".into(),
                    code: "alpha".into(),
                    commission_bps: 0,
                    status: telebot::domain::AgentStatus::Pending,
                },
                "test"
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .active_agent_by_code("beta")
            .await
            .unwrap()
            .unwrap()
            .id,
        b.id
    );
    assert!(store.active_agent_by_code("gamma").await.unwrap().is_none());
}

fn product_input(kind: ProductKind, price: &str) -> ProductInput {
    ProductInput {
        category_id: None,
        kind,
        name_en: "VPN key".into(),
        name_zh: "VPN 密钥".into(),
        description_en: "One year".into(),
        description_zh: "一年".into(),
        price: Money::parse(price).unwrap(),
        stars_price: None,
        hidden: false,
        position: 0,
    }
}

async fn catalog_round_trip(store: &Store) {
    let cat = store
        .create_category(
            &NewCategory {
                slug: "keys".into(),
                name_en: "Keys".into(),
                name_zh: "密钥".into(),
                position: 1,
            },
            "test",
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_category(
                &NewCategory {
                    slug: "keys".into(),
                    name_en: "Again".into(),
                    name_zh: "".into(),
                    position: 0,
                },
                "test"
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    let mut input = product_input(ProductKind::Digital, "12.5");
    input.category_id = Some(cat.id);
    let p = store.create_product(&input, "test").await.unwrap();
    assert_eq!(p.price.to_string(), "12.500000");
    assert_eq!(p.name("zh"), "VPN 密钥");

    input.hidden = true;
    input.price = Money::parse("13").unwrap();
    let after = store.update_product(p.id, &input, "token:7").await.unwrap();
    assert_eq!(after.price.to_string(), "13.000000");
    // every catalog change is in the audit log, written in the same transaction
    let trail = store
        .list_audit(
            &telebot::store::AuditFilter {
                entity: Some("product".into()),
                entity_id: Some(p.id.to_string()),
                ..Default::default()
            },
            Page::default(),
        )
        .await
        .unwrap();
    let updated = trail
        .iter()
        .find(|a| a.action == "product.updated")
        .expect("the update is audited");
    assert_eq!(updated.actor, "token:7");
    assert!(
        updated.before.as_deref().unwrap().contains("\"12.500000\""),
        "{updated:?}"
    );
    assert!(
        updated.after.as_deref().unwrap().contains("\"13.000000\""),
        "{updated:?}"
    );
    assert!(trail.iter().any(|a| a.action == "product.created"));

    let visible = ProductFilter {
        category_id: Some(cat.id),
        include_hidden: false,
    };
    assert!(
        store
            .list_products(&visible, Page::default())
            .await
            .unwrap()
            .is_empty()
    );
    let all = ProductFilter {
        include_hidden: true,
        ..visible
    };
    assert_eq!(store.count_products(&all).await.unwrap(), 1);

    let added = store
        .add_stock(p.id, &["KEY-1".to_owned(), "KEY-2".to_owned()], "test")
        .await
        .unwrap();
    assert_eq!(added, (2, 2));
    assert_eq!(store.stock_available(p.id).await.unwrap(), 2);
    // the same credential can never be in stock twice: within one upload or against unsold stock
    let upload = |items: &[&str]| items.iter().map(|i| (*i).to_owned()).collect::<Vec<_>>();
    match store
        .add_stock(
            p.id,
            &upload(&["KEY-3", "KEY-2", "KEY-4", "KEY-3 "]),
            "test",
        )
        .await
    {
        Err(StoreError::DuplicateStock(d)) => {
            assert_eq!(d.repeated, vec![(3, 0)]);
            assert_eq!(d.in_stock, vec![1]);
            let text = d.to_string();
            assert!(text.contains("items[3] repeats items[0]"), "{text}");
            assert!(text.contains("items[1] is already in stock"), "{text}");
        }
        other => panic!("duplicates accepted: {other:?}"),
    }
    assert_eq!(
        store.stock_available(p.id).await.unwrap(),
        2,
        "nothing added"
    );
    assert_eq!(
        store
            .add_stock(p.id, &upload(&["KEY-3", "KEY-4"]), "test")
            .await
            .unwrap(),
        (2, 4)
    );
    let service = store
        .create_product(&product_input(ProductKind::Service, "5"), "test")
        .await
        .unwrap();
    assert!(matches!(
        store.add_stock(service.id, &["x".to_owned()], "test").await,
        Err(StoreError::Conflict(_))
    ));

    store.delete_product(p.id, "test").await.unwrap();
    assert!(matches!(
        store.product(p.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_product(p.id, "test").await,
        Err(StoreError::NotFound(_))
    ));
}

/// An amount source that offers amounts from a script and records what it was told.
struct Scripted {
    offers: Mutex<Vec<i64>>,
    taken: AtomicUsize,
}

impl Scripted {
    fn new(offers: &[i64]) -> Self {
        Scripted {
            offers: Mutex::new(offers.iter().rev().copied().collect()),
            taken: AtomicUsize::new(0),
        }
    }
}

impl AmountSource for Scripted {
    type Error = &'static str;
    fn allocate(
        &self,
        _order_id: i64,
        _price: Money,
    ) -> BoxFuture<'_, Result<Allocation, &'static str>> {
        let next = self.offers.lock().unwrap().pop();
        Box::pin(async move {
            let micros = next.ok_or("busy")?;
            Ok(Allocation {
                wallet: "TJmmqjb1DK9TTZbQXzRQ2AuA94z4gKAPFh".into(),
                amount: Money::from_micros(micros),
                expires_at: now_ms() + 60_000,
            })
        })
    }
    fn taken_elsewhere(&self, _allocation: &Allocation) {
        self.taken.fetch_add(1, Ordering::SeqCst);
    }
}

fn new_order(user_id: i64, price: i64) -> NewOrder {
    NewOrder {
        user_id,
        product_id: None,
        kind: ProductKind::Topup,
        quantity: 1,
        price: Money::from_micros(price),
        chain: "tron".into(),
        token: "USDT".into(),
        request_text: None,
    }
}

async fn orders_get_unique_amounts_in_one_transaction(store: &Store) {
    let u = user(store, 5).await;
    let agent = new_agent(store, "ref").await;
    store.bind_referral(u.id, agent.id).await.unwrap();

    let first = Scripted::new(&[10_001_000]);
    let CreateOrder::Created(a) = store
        .create_order(&new_order(u.id, 10_000_000), &first, "test")
        .await
        .unwrap()
    else {
        panic!("first order not created");
    };
    assert_eq!(a.payable_amount.micros(), 10_001_000);
    assert_eq!(a.status, OrderStatus::PendingPayment);
    assert_eq!(
        a.agent_id,
        Some(agent.id),
        "the referring agent is attributed"
    );

    // a second source that believes the same amount is free is corrected by the database
    let second = Scripted::new(&[10_001_000, 10_002_000]);
    let CreateOrder::Created(b) = store
        .create_order(&new_order(u.id, 10_000_000), &second, "test")
        .await
        .unwrap()
    else {
        panic!("second order not created");
    };
    assert_eq!(b.payable_amount.micros(), 10_002_000);
    assert_eq!(second.taken.load(Ordering::SeqCst), 1);

    // a source that never offers anything free ends in a conflict, and writes nothing
    let stubborn = Scripted::new(&[10_001_000; 32]);
    let err = store
        .create_order(&new_order(u.id, 10_000_000), &stubborn, "test")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let live = store.live_allocations().await.unwrap();
    assert_eq!(live.len(), 2);
    assert_eq!(store.pending_orders().await.unwrap().len(), 2);
    let audit = store
        .list_audit(
            &AuditFilter {
                action: Some("order.created".into()),
                ..Default::default()
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 2);
}

async fn amount_source_failure_leaves_no_order(store: &Store) {
    let u = user(store, 6).await;
    let busy = Scripted::new(&[]);
    match store
        .create_order(&new_order(u.id, 1_000_000), &busy, "test")
        .await
        .unwrap()
    {
        CreateOrder::Unavailable(e) => assert_eq!(e, "busy"),
        CreateOrder::Created(o) => panic!("order {} created without an amount", o.id),
    }
    let orders = store
        .list_orders(
            &OrderFilter {
                user_id: Some(u.id),
                ..Default::default()
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert!(orders.is_empty());
}

fn transfer(txid: &str, log_index: i64, micros: i64, confirmed: bool) -> NewTransfer {
    NewTransfer {
        chain: "tron".into(),
        txid: txid.into(),
        log_index,
        token: "USDT".into(),
        from_address: "TNtbiqvanUnm4YHK9SYzRGR8ktiHRduDbM".into(),
        to_address: "TJmmqjb1DK9TTZbQXzRQ2AuA94z4gKAPFh".into(),
        amount: Money::from_micros(micros),
        block_number: None,
        block_time: 1_784_641_290_000,
        confirmed,
        source: "test".into(),
    }
}

async fn transfers_are_recorded_once(store: &Store) {
    let (t, r) = store
        .record_transfer(&transfer("aa", 0, 195_170_000, false))
        .await
        .unwrap();
    assert_eq!(r, Recorded::New);
    assert!(!t.confirmed);
    let (_, r) = store
        .record_transfer(&transfer("aa", 0, 195_170_000, false))
        .await
        .unwrap();
    assert_eq!(r, Recorded::Duplicate);
    let mut confirmed = transfer("aa", 0, 195_170_000, true);
    confirmed.block_number = Some(86_738_346);
    let (t2, r) = store.record_transfer(&confirmed).await.unwrap();
    assert_eq!(r, Recorded::NowConfirmed);
    assert_eq!(t2.id, t.id);
    assert_eq!(t2.block_number, Some(86_738_346));
    let (_, r) = store.record_transfer(&confirmed).await.unwrap();
    assert_eq!(r, Recorded::Duplicate);
    // another log of the same transaction is another transfer
    let (t3, r) = store
        .record_transfer(&transfer("aa", 1, 5, true))
        .await
        .unwrap();
    assert_eq!(r, Recorded::New);
    assert_ne!(t3.id, t.id);
    // same identity, different amount: refused, first report kept
    assert!(matches!(
        store.record_transfer(&transfer("aa", 0, 1, true)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.transfer(t.id).await.unwrap().amount.micros(),
        195_170_000
    );
    let unprocessed = store.unprocessed_transfers().await.unwrap();
    assert_eq!(unprocessed.len(), 2);
}

async fn balance_never_goes_negative_and_a_transfer_credits_once(store: &Store) {
    let u = user(store, 9).await;
    let (t, _) = store
        .record_transfer(&transfer("bb", 0, 5_000_000, true))
        .await
        .unwrap();
    let after = store
        .adjust_balance(
            u.id,
            Money::from_micros(5_000_000),
            LedgerReason::Topup,
            None,
            Some(t.id),
        )
        .await
        .unwrap();
    assert_eq!(after.to_string(), "5.000000");
    let again = store
        .adjust_balance(
            u.id,
            Money::from_micros(5_000_000),
            LedgerReason::Topup,
            None,
            Some(t.id),
        )
        .await;
    assert!(
        again.unwrap_err().is_unique_violation(),
        "a transfer credits once"
    );
    store
        .adjust_balance(
            u.id,
            Money::from_micros(-3_000_000),
            LedgerReason::OrderPayment,
            None,
            None,
        )
        .await
        .unwrap();
    let overdraw = store
        .adjust_balance(
            u.id,
            Money::from_micros(-3_000_000),
            LedgerReason::OrderPayment,
            None,
            None,
        )
        .await;
    assert!(matches!(overdraw, Err(StoreError::Conflict(_))));
    assert_eq!(
        store.user(u.id).await.unwrap().balance.to_string(),
        "2.000000"
    );
    let ledger = store.ledger(u.id, 10).await.unwrap();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[0].balance_after.to_string(), "2.000000");
}

/// A pending 10 USDT top-up order whose payable amount is `micros`.
async fn top_up_order(store: &Store, user_id: i64, micros: i64) -> Box<Order> {
    match store
        .create_order(
            &new_order(user_id, 10_000_000),
            &Scripted::new(&[micros]),
            "test",
        )
        .await
        .unwrap()
    {
        CreateOrder::Created(order) => order,
        CreateOrder::Unavailable(e) => panic!("order not created: {e}"),
    }
}

/// Many settlements of one order race (two transfers of its amount, each placed by several
/// instances at once, and one of them also set aside as unmatched): one wins, the money moves
/// once, and every loser leaves no trace.
async fn concurrent_settlements_pay_an_order_once(store: &Store) {
    let u = user(store, 12).await;
    let order = top_up_order(store, u.id, 10_003_000).await;
    let (t1, _) = store
        .record_transfer(&transfer("c1", 0, 10_003_000, true))
        .await
        .unwrap();
    let (t2, _) = store
        .record_transfer(&transfer("c2", 0, 10_003_000, true))
        .await
        .unwrap();
    let order_id = order.id;
    let ctx = || SettleContext {
        who: "test",
        commission_hold_ms: 0,
        manual: false,
        quarantine_until: now_ms() + 60_000,
    };
    let mut racers = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        let transfer_id = if i % 2 == 0 { t1.id } else { t2.id };
        racers.push(tokio::spawn(async move {
            if i == 9 {
                // (payments, transfers set aside)
                let placed = store.mark_unmatched(t1.id, "test", true).await.unwrap();
                return (0, usize::from(placed == Placed::Done));
            }
            let outcome = store
                .pay_order(order_id, transfer_id, &ctx())
                .await
                .unwrap();
            (usize::from(matches!(outcome, PayOutcome::Paid(_))), 0)
        }));
    }
    let (mut paid, mut set_aside) = (0, 0);
    for r in racers {
        let (p, s) = r.await.unwrap();
        paid += p;
        set_aside += s;
    }
    assert_eq!(paid, 1, "one settlement pays");
    let settled = store.order(order.id).await.unwrap();
    assert_ne!(settled.status, OrderStatus::PendingPayment);
    let winner = settled.transfer_id.expect("the order names its transfer");
    let (w, other) = if winner == t1.id {
        (t1.id, t2.id)
    } else {
        (t2.id, t1.id)
    };
    let w = store.transfer(w).await.unwrap();
    assert_eq!(
        (w.outcome.as_str(), w.order_id),
        ("matched", Some(order.id))
    );
    let other = store.transfer(other).await.unwrap();
    assert_ne!(other.order_id, Some(order.id));
    if set_aside == 1 {
        // set aside before any payment claimed it: t1 is unmatched and t2 paid
        assert_eq!(winner, t2.id);
        assert_eq!(other.outcome, TransferOutcome::Unmatched);
    } else {
        assert_eq!(other.outcome, TransferOutcome::Pending);
    }
    // the top-up was credited once, by the winning transfer
    assert_eq!(store.user(u.id).await.unwrap().balance.micros(), 10_003_000);
    let ledger = store.ledger(u.id, 10).await.unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].transfer_id, Some(winner));
    let paid_audits = store
        .list_audit(
            &AuditFilter {
                action: Some("order.paid".into()),
                entity_id: Some(order.id.to_string()),
                ..Default::default()
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(paid_audits.len(), 1);
}

/// A paid order's amount stays out of reach until its quarantine ends and the reconciler
/// releases it; then a new order may get it again.
async fn a_paid_amount_rests_in_quarantine_until_released(store: &Store) {
    let u = user(store, 13).await;
    let order = top_up_order(store, u.id, 10_004_000).await;
    let (t, _) = store
        .record_transfer(&transfer("q1", 0, 10_004_000, true))
        .await
        .unwrap();
    let rest_until = now_ms() + 60_000;
    let ctx = SettleContext {
        who: "test",
        commission_hold_ms: 0,
        manual: false,
        quarantine_until: rest_until,
    };
    let outcome = store.pay_order(order.id, t.id, &ctx).await.unwrap();
    assert!(matches!(outcome, PayOutcome::Paid(_)));
    let live = store.live_allocations().await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].state, AllocationState::Quarantined);
    assert_eq!(live[0].quarantine_until, Some(rest_until));

    // while it rests, a new order cannot get the amount
    let busy = Scripted::new(&[10_004_000]);
    assert!(matches!(
        store
            .create_order(&new_order(u.id, 10_000_000), &busy, "test")
            .await
            .unwrap(),
        CreateOrder::Unavailable(_)
    ));
    assert_eq!(busy.taken.load(Ordering::SeqCst), 1);
    assert_eq!(store.release_quarantined(rest_until - 1).await.unwrap(), 0);

    // once the time has passed it is released, once, and can be handed out again
    assert_eq!(store.release_quarantined(rest_until).await.unwrap(), 1);
    assert_eq!(store.release_quarantined(rest_until).await.unwrap(), 0);
    assert!(store.live_allocations().await.unwrap().is_empty());
    let CreateOrder::Created(again) = store
        .create_order(
            &new_order(u.id, 10_000_000),
            &Scripted::new(&[10_004_000]),
            "test",
        )
        .await
        .unwrap()
    else {
        panic!("the released amount was not handed out again");
    };
    assert_eq!(again.payable_amount.micros(), 10_004_000);
}

async fn audit_log_is_append_only(store: &Store) {
    store
        .audit(
            AuditRecord::new("token:1", "product.updated", "product", 3)
                .after(&serde_json::json!({"price": "1"})),
        )
        .await
        .unwrap();
    let entries = store
        .list_audit(&AuditFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert!(store.try_tamper_audit(entries[0].id).await.is_err());
    let after = store
        .list_audit(&AuditFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].actor, "token:1");
}

async fn scan_cursors_only_move_forward(store: &Store) {
    assert_eq!(store.scan_cursor("tron:fullnode").await.unwrap(), None);
    store.save_scan_cursor("tron:fullnode", 100).await.unwrap();
    store.save_scan_cursor("tron:fullnode", 90).await.unwrap();
    assert_eq!(store.scan_cursor("tron:fullnode").await.unwrap(), Some(100));
    store.save_scan_cursor("tron:fullnode", 120).await.unwrap();
    assert_eq!(store.scan_cursor("tron:fullnode").await.unwrap(), Some(120));
}

async fn outbox_is_idempotent_and_retries(store: &Store) {
    assert!(
        store
            .enqueue("telegram", Some("paid:1"), "{}")
            .await
            .unwrap()
    );
    assert!(
        !store
            .enqueue("telegram", Some("paid:1"), "{}")
            .await
            .unwrap()
    );
    assert!(store.enqueue("telegram", None, "{\"a\":1}").await.unwrap());
    let due = store.due_outbox("telegram", 10).await.unwrap();
    assert_eq!(due.len(), 2);
    store
        .outbox_retry(due[0].id, now_ms() + 60_000, "429", false)
        .await
        .unwrap();
    store.outbox_sent(due[1].id).await.unwrap();
    assert!(store.due_outbox("telegram", 10).await.unwrap().is_empty());
    assert_eq!(store.outbox_pending_count().await.unwrap(), 1);
    store
        .outbox_retry(due[0].id, now_ms(), "gone", true)
        .await
        .unwrap();
    assert_eq!(store.outbox_pending_count().await.unwrap(), 0);
}

/// Two instances may list the same due message (one of them lost the lead and does not know
/// yet); only one claims it, and a claimed message is not listed again until its claim runs out.
async fn an_outbox_message_is_claimed_by_one_sender(store: &Store) {
    assert!(store.enqueue("telegram", Some("k"), "{}").await.unwrap());
    let due = store.due_outbox("telegram", 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let until = now_ms() + 60_000;
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (store, m) = (store.clone(), due[0].clone());
        senders.push(tokio::spawn(async move {
            store.claim_outbox(&m, until).await.unwrap()
        }));
    }
    let mut claimed = 0;
    for s in senders {
        claimed += usize::from(s.await.unwrap());
    }
    assert_eq!(claimed, 1);
    assert!(store.due_outbox("telegram", 10).await.unwrap().is_empty());
    // still pending: a sender that died after claiming leaves it to be tried again
    assert_eq!(store.outbox_pending_count().await.unwrap(), 1);
    // a failed attempt makes it due again at its retry time, for whoever leads then
    store
        .outbox_retry(due[0].id, now_ms() - 1, "network", false)
        .await
        .unwrap();
    let again = store.due_outbox("telegram", 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert!(store.claim_outbox(&again[0], until).await.unwrap());
    store.outbox_sent(again[0].id).await.unwrap();
    assert!(!store.claim_outbox(&again[0], until).await.unwrap());
}

async fn api_tokens_are_found_by_hash_until_revoked(store: &Store) {
    let t = store
        .create_token("ci", Role::Operator, "abc123", None, "test")
        .await
        .unwrap();
    assert_eq!(
        store.token_by_hash("abc123").await.unwrap().unwrap().role,
        Role::Operator
    );
    // requests arriving together each record the use; only the first one writes
    let mut touches = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        touches.push(tokio::spawn(async move {
            store.touch_token(t.id, 60_000).await.unwrap()
        }));
    }
    for touch in touches {
        touch.await.unwrap();
    }
    let first = store.token_by_hash("abc123").await.unwrap().unwrap();
    let used = first.last_used_at.expect("use recorded");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.touch_token(t.id, 60_000).await.unwrap();
    let again = store.token_by_hash("abc123").await.unwrap().unwrap();
    assert_eq!(again.last_used_at, Some(used));
    store.touch_token(t.id, 0).await.unwrap();
    let later = store.token_by_hash("abc123").await.unwrap().unwrap();
    assert!(later.last_used_at.unwrap() > used);
    store.revoke_token(t.id, "test").await.unwrap();
    assert!(store.token_by_hash("abc123").await.unwrap().is_none());
    assert!(matches!(
        store.revoke_token(t.id, "test").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn money_survives_the_round_trip_exactly(store: &Store) {
    let big = Money::parse("9000000000000.000001").unwrap();
    let p = store
        .create_product(
            &ProductInput {
                price: big,
                stars_price: None,
                ..product_input(ProductKind::Service, "1")
            },
            "test",
        )
        .await
        .unwrap();
    assert_eq!(store.product(p.id).await.unwrap().price, big);
}
