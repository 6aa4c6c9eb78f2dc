//! A flash sale end to end: 1,000 customers each press "Buy" on the sale's announcement within
//! 10 s (the bot path: a loopback Bot API, teloxide polling, the router, a session actor per
//! customer, the order actor, the matcher, the database); each receives the payment message;
//! all 1,000 transfers then appear in three blocks at a loopback TronGrid; the scanner finds
//! them, the orders are paid and delivered, and the delivery messages go out through the paced
//! sender. A load harness, not criterion: the figures are times of one whole run.
//!
//! The loopback Bot API enforces Telegram's limits the way the bot believes they are (30
//! messages a second overall, a burst of 3 and then 1 a second per chat), answering `429 Too
//! Many Requests` with `retry_after` to any message over them; the harness counts those and
//! checks that every customer still got every message.
//!
//! Floors, in the same run: orders need nothing below the bot path but the database (see
//! `cargo bench --bench orders`); the delivery messages cannot go out faster than 30 a second,
//! so 1,000 customers take 1,000 / 30 = 33.3 s at the least.
//!
//! Runs on the embedded default, and on PostgreSQL as well when `TELEBOT_BENCH_POSTGRES_URL`
//! names a database it may empty (e.g. the test database).
//!
//! `cargo bench --bench flash_sale` (CUSTOMERS, SALE_SECONDS and POLL_MS change the defaults)

#[path = "../tests/it/common/chain.rs"]
mod chain;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chain::{ChainTransfer, PAYER, TronGrid, random_txid};
use serde_json::{Value, json};
use telebot::bot::simulator::{SimUser, Simulator};
use telebot::config::{Config, FileLayer};
use telebot::domain::{Money, OrderStatus, ProductKind, now_ms};
use telebot::store::{OrderFilter, Page, ProductInput, Store};

const WALLET: &str = "TJmmqjb1DK9TTZbQXzRQ2AuA94z4gKAPFh";
/// Telegram's overall message rate.
const GLOBAL_RATE: f64 = 30.0;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A token bucket, as Telegram is modelled here.
struct Bucket {
    tokens: f64,
    last: Instant,
    capacity: f64,
    rate: f64,
}

impl Bucket {
    fn new(capacity: f64, rate: f64) -> Bucket {
        Bucket {
            tokens: capacity,
            last: Instant::now(),
            capacity,
            rate,
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate)
            .min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the loopback Bot API saw.
struct Limits {
    global: Bucket,
    chats: HashMap<i64, Bucket>,
    /// Messages refused with 429 for being over a limit.
    over: u64,
    /// Messages accepted.
    sent: u64,
}

/// Refuses a message over Telegram's limits with 429 before the simulator sees it. A small
/// slack (one message) keeps timer jitter from counting as a breach.
async fn telegram_limits(
    axum::extract::State(limits): axum::extract::State<Arc<Mutex<Limits>>>,
    request: Request,
    next: Next,
) -> Response {
    // method names are case-insensitive (teloxide writes `SendMessage`)
    let method = request
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if !matches!(
        method.as_str(),
        "sendmessage" | "editmessagetext" | "editmessagereplymarkup" | "sendphoto"
    ) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let chat = chat_id(&bytes);
    let allowed = {
        let mut l = limits.lock().unwrap();
        let chat_ok = chat.is_none_or(|c| {
            l.chats
                .entry(c)
                .or_insert_with(|| Bucket::new(4.0, 1.0))
                .take()
        });
        let ok = chat_ok && l.global.take();
        if ok {
            l.sent += 1;
        } else {
            l.over += 1;
        }
        ok
    };
    if !allowed {
        return (
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({
                "ok": false,
                "error_code": 429,
                "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1}
            })),
        )
            .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The chat a Bot API call is for: from a JSON body, or from a multipart form (a photo).
fn chat_id(body: &[u8]) -> Option<i64> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return v["chat_id"].as_i64();
    }
    let text = String::from_utf8_lossy(body);
    let (_, rest) = text.split_once("name=\"chat_id\"")?;
    let value = rest.trim_start_matches(|c: char| c != '\n').trim_start();
    value
        .split(|c: char| c.is_whitespace())
        .next()?
        .parse()
        .ok()
}

/// A bot message's words: its text, or a photo's caption.
fn words(m: &telebot::bot::simulator::SimMessage) -> &str {
    m.text.as_deref().or(m.caption.as_deref()).unwrap_or("")
}

async fn serve_telegram(sim: Arc<Simulator>, limits: Arc<Mutex<Limits>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router: axum::Router = telebot::http::simulator::router(sim).layer(
        axum::middleware::from_fn_with_state(limits, telegram_limits),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}/sim")
}

/// Every order in `status`, page by page.
async fn orders_in(store: &Store, status: OrderStatus) -> Vec<telebot::store::Order> {
    let filter = OrderFilter {
        status: Some(status),
        ..Default::default()
    };
    let mut all = Vec::new();
    loop {
        let page = store
            .list_orders(&filter, Page::new(Page::MAX_LIMIT, all.len() as i64))
            .await
            .unwrap();
        let done = (page.len() as i64) < Page::MAX_LIMIT;
        all.extend(page);
        if done {
            return all;
        }
    }
}

async fn count(store: &Store, status: OrderStatus) -> usize {
    orders_in(store, status).await.len()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

async fn run(label: &str, db: &str, customers: usize, sale: Duration, poll_ms: u64) {
    let sim = Arc::new(Simulator::new("flash_bot"));
    let limits = Arc::new(Mutex::new(Limits {
        global: Bucket::new(GLOBAL_RATE + 1.0, GLOBAL_RATE),
        chats: HashMap::new(),
        over: 0,
        sent: 0,
    }));
    let api = serve_telegram(sim.clone(), limits.clone()).await;
    let tg = TronGrid::start().await;
    let poll = format!("{poll_ms}ms");
    let slots = (customers + 100).to_string();
    let env: Vec<(String, String)> = [
        ("TELEBOT__HTTP__ADDR", "127.0.0.1:0"),
        ("TELEBOT__DATABASE__URL", db),
        ("TELEBOT__TELEGRAM__TOKEN", "123456:flash-sale"),
        ("TELEBOT__TELEGRAM__API_URL", api.as_str()),
        ("TELEBOT__TELEGRAM__MODE", "polling"),
        ("TELEBOT__TRON__SOURCE", "trongrid"),
        ("TELEBOT__PAYMENTS__WALLETS", WALLET),
        ("TELEBOT__PAYMENTS__MAX_SLOTS", slots.as_str()),
        ("TELEBOT__TRON__TRONGRID_URL", tg.url.as_str()),
        ("TELEBOT__TRON__POLL_INTERVAL", poll.as_str()),
        ("TELEBOT__TRON__CONFIRMATIONS", "seen"),
        ("TELEBOT__SECURITY__RATE_LIMIT_PER_MINUTE", "100000"),
        ("TELEBOT__LOG__LEVEL", "warn"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let running = telebot::app::start(Config::load_with_env(FileLayer::None, env).unwrap())
        .await
        .unwrap();
    let store = running.app.store.clone();
    let product = store
        .create_product(
            &ProductInput {
                category_id: None,
                kind: ProductKind::Digital,
                name_en: "Limited licence".into(),
                name_zh: "限量许可证".into(),
                description_en: String::new(),
                description_zh: String::new(),
                price: Money::parse("9.9").unwrap(),
                stars_price: None,
                hidden: false,
                position: 0,
            },
            "bench",
        )
        .await
        .unwrap();
    let items: Vec<String> = (0..customers).map(|i| format!("KEY-{i:05}")).collect();
    store.add_stock(product.id, &items, "bench").await.unwrap();

    // the customers already know the shop: each has the sale's announcement with its button
    let buy = format!("q:{}:1", product.id);
    let users: Vec<(SimUser, i64)> = (0..customers)
        .map(|i| {
            let user = SimUser {
                id: 100_000 + i as i64,
                first_name: format!("Customer {i}"),
                username: None,
                language_code: Some("en".into()),
            };
            sim.open_chat(&user);
            let m = sim
                .send_message(
                    user.id,
                    "Flash sale: one licence each while they last",
                    Some(json!({"inline_keyboard": [[{"text": "Buy one", "callback_data": buy}]]})),
                )
                .unwrap();
            (user, m["message_id"].as_i64().unwrap())
        })
        .collect();
    let announced = sim.version();
    limits.lock().unwrap().sent = 0;

    // the sale: every customer presses "Buy" once, spread evenly over `sale`
    let start = Instant::now();
    let gap = sale / customers as u32;
    for (i, (user, message)) in users.iter().enumerate() {
        let at = start + gap * i as u32;
        tokio::time::sleep_until(at.into()).await;
        sim.user_callback(user, *message, &buy).unwrap();
    }
    let pressed = start.elapsed();
    // orders as the database holds them, and the payment message in every chat
    let mut created_at = None;
    let mut instructed_at = None;
    while created_at.is_none() || instructed_at.is_none() {
        if created_at.is_none() && count(&store, OrderStatus::PendingPayment).await >= customers {
            created_at = Some(start.elapsed());
        }
        if instructed_at.is_none()
            && users.iter().all(|(u, _)| {
                sim.chat(u.id, announced)
                    .iter()
                    .any(|m| m.from_bot && words(m).contains(WALLET))
            })
        {
            instructed_at = Some(start.elapsed());
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the sale did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (created_at, instructed_at) = (created_at.unwrap(), instructed_at.unwrap());
    let ordering_sent = limits.lock().unwrap().sent;

    // every customer pays; the transfers land in three blocks
    let pending = orders_in(&store, OrderStatus::PendingPayment).await;
    assert_eq!(pending.len(), customers);
    let before_paid = sim.version();
    let block = Instant::now();
    let block_time = now_ms();
    for (i, order) in pending.iter().enumerate() {
        tg.push(ChainTransfer {
            txid: random_txid(),
            from: PAYER.into(),
            to: WALLET.into(),
            amount: order.payable_amount,
            block_time: block_time + (i % 3) as i64,
            block: 70_000_000 + (i % 3) as i64,
            confirmed: true,
        });
    }
    let mut paid_at = None;
    let mut delivered: HashMap<i64, Duration> = HashMap::new();
    while paid_at.is_none() || delivered.len() < customers {
        if paid_at.is_none() && count(&store, OrderStatus::PendingPayment).await == 0 {
            paid_at = Some(block.elapsed());
        }
        for (u, _) in &users {
            if !delivered.contains_key(&u.id)
                && sim
                    .chat(u.id, before_paid)
                    .iter()
                    .any(|m| m.from_bot && words(m).contains("KEY-"))
            {
                delivered.insert(u.id, block.elapsed());
            }
        }
        assert!(
            block.elapsed() < Duration::from_secs(900),
            "deliveries did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let paid_at = paid_at.unwrap();
    let last_delivery = delivered.values().max().copied().unwrap();
    let delivered_orders = count(&store, OrderStatus::Delivered).await;
    let (over, sent) = {
        let l = limits.lock().unwrap();
        (l.over, l.sent)
    };
    let delivery_sent = sent - ordering_sent;
    let floor = customers as f64 / GLOBAL_RATE;
    let paid_target = poll_ms as f64 / 1000.0 + 1.0;
    println!(
        "{label}: {customers} customers pressing Buy over {:.0} s, poll interval {poll_ms} ms",
        secs(sale)
    );
    println!(
        "  ordering     {customers} orders created by {:.2} s ({:.0} orders/s over the presses, last press at {:.2} s)",
        secs(created_at),
        customers as f64 / secs(created_at),
        secs(pressed)
    );
    println!(
        "               payment messages in every chat by {:.2} s ({ordering_sent} messages; floor at 30/s {:.1} s)",
        secs(instructed_at),
        ordering_sent as f64 / GLOBAL_RATE
    );
    println!(
        "  payment      block to the last order paid {:.2} s (target <= poll interval + 1 s = {paid_target:.1} s: {})",
        secs(paid_at),
        if secs(paid_at) <= paid_target {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  delivery     block to the last delivery message {:.2} s, {delivery_sent} messages; {:.2}x the floor of {customers} / 30 = {floor:.1} s (target <= 1.2x: {})",
        secs(last_delivery),
        secs(last_delivery) / floor,
        if secs(last_delivery) / floor <= 1.2 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  limits       {over} messages answered 429 for being over a limit; {delivered_orders} of {customers} orders delivered, every customer got the key"
    );
    running.shutdown().await;
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("flash_sale: benchmark");
        return;
    }
    let customers = env_or("CUSTOMERS", 1_000) as usize;
    let sale = Duration::from_secs(env_or("SALE_SECONDS", 10));
    let poll_ms = env_or("POLL_MS", 1_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}/bench.db", dir.path().display());
        run("SQLite", &db, customers, sale, poll_ms).await;
        if let Ok(url) = std::env::var("TELEBOT_BENCH_POSTGRES_URL") {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::query("drop schema public cascade")
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("create schema public")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            run("PostgreSQL", &url, customers, sale, poll_ms).await;
        }
    });
}
