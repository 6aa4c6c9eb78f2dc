//! Pre-checkout latency while the database is busy: Telegram waits at most 10 seconds for the
//! bot's answer to a Stars `pre_checkout_query`, and the target here is a p99 under 1 second.
//!
//! The service runs in webhook mode against a loopback Bot API that notes when each
//! `answerPreCheckoutQuery` arrives. Pre-checkout queries for pending Stars orders (each one
//! reserves a digital item) are posted to the webhook at a steady rate, first on an idle
//! database, then while writers keep it busy with balance changes (one transaction each, as
//! every payment and refund is). Latency is from posting the update to the answer reaching the
//! Bot API. A load harness, not criterion.
//!
//! Runs on the embedded default, and on PostgreSQL as well when `TELEBOT_BENCH_POSTGRES_URL`
//! names a database it may empty (e.g. the test database).
//!
//! `cargo bench --bench precheckout` (QUERIES, RATE per second and WRITERS change the defaults)

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::post;
use serde_json::{Value, json};
use telebot::config::{Config, FileLayer};
use telebot::domain::{Money, ProductKind};
use telebot::store::{LedgerReason, NewOrder, ProductInput, TelegramProfile};

const SECRET: &str = "bench-secret";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

type Answers = Arc<Mutex<HashMap<String, (Instant, bool)>>>;

async fn bot_api(
    State(answers): State<Answers>,
    Path((_bot, method)): Path<(String, String)>,
    body: String,
) -> axum::Json<Value> {
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    match method.to_ascii_lowercase().as_str() {
        "answerprecheckoutquery" => {
            let id = v["pre_checkout_query_id"].as_str().unwrap_or("").to_owned();
            answers
                .lock()
                .unwrap()
                .insert(id, (Instant::now(), v["ok"] == json!(true)));
            axum::Json(json!({"ok": true, "result": true}))
        }
        "getme" => axum::Json(json!({"ok": true, "result": {"id": 1, "is_bot": true,
            "first_name": "Shop", "username": "shop_bot", "can_join_groups": false,
            "can_read_all_group_messages": false, "supports_inline_queries": false,
            "can_connect_to_business": false, "has_main_web_app": false}})),
        "getstartransactions" => axum::Json(json!({"ok": true, "result": {"transactions": []}})),
        _ => axum::Json(json!({"ok": true, "result": true})),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn run(label: &str, db_url: &str, queries: usize, rate: u64, writers: usize) {
    let answers: Answers = Arc::default();
    let app = axum::Router::new()
        .route("/{bot}/{method}", post(bot_api))
        .with_state(answers.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let chain = format!("http://{}", "127.0.0.1:9");
    let env: Vec<(String, String)> = [
        ("TELEBOT__HTTP__ADDR", "127.0.0.1:0"),
        ("TELEBOT__DATABASE__URL", db_url),
        ("TELEBOT__DATABASE__MAX_CONNECTIONS", "16"),
        ("TELEBOT__TELEGRAM__TOKEN", "123:bench"),
        ("TELEBOT__TELEGRAM__API_URL", api_url.as_str()),
        ("TELEBOT__TELEGRAM__MODE", "webhook"),
        ("TELEBOT__TELEGRAM__WEBHOOK_SECRET", SECRET),
        ("TELEBOT__HTTP__PUBLIC_URL", "https://shop.example.com"),
        ("TELEBOT__TRON__SOURCE", "trongrid"),
        ("TELEBOT__TRON__TRONGRID_URL", chain.as_str()),
        (
            "TELEBOT__PAYMENTS__WALLETS",
            "TJmmqjb1DK9TTZbQXzRQ2AuA94z4gKAPFh",
        ),
        ("TELEBOT__SECURITY__RATE_LIMIT_PER_MINUTE", "100000"),
        ("TELEBOT__LOG__LEVEL", "error"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Config::load_with_env(FileLayer::None, env).unwrap();
    let running = telebot::app::start(config).await.unwrap();
    let store = running.app.store.clone();
    let product = store
        .create_product(
            &ProductInput {
                category_id: None,
                kind: ProductKind::Digital,
                name_en: "Key".into(),
                name_zh: "钥匙".into(),
                description_en: String::new(),
                description_zh: String::new(),
                price: Money::parse("1").unwrap(),
                stars_price: Some(50),
                hidden: false,
                position: 0,
            },
            "bench",
        )
        .await
        .unwrap();
    let items: Vec<String> = (0..queries * 2).map(|i| format!("K-{i}")).collect();
    store.add_stock(product.id, &items, "bench").await.unwrap();
    // customers with a pending Stars order each, for both rounds
    let mut orders = Vec::new();
    for i in 0..queries * 2 {
        let telegram_id = 5_000_000 + i as i64;
        let (user, _) = store
            .upsert_telegram_user(&TelegramProfile {
                telegram_id,
                username: None,
                first_name: "Buyer".into(),
                language: "en".into(),
            })
            .await
            .unwrap();
        let new = NewOrder {
            user_id: user.id,
            product_id: Some(product.id),
            kind: ProductKind::Digital,
            quantity: 1,
            price: Money::parse("1").unwrap(),
            chain: "tron".into(),
            token: "USDT".into(),
            request_text: None,
        };
        let order = store
            .create_stars_order(&new, 50, 3_600_000, "bench")
            .await
            .unwrap();
        orders.push((telegram_id, order.id, user.id));
    }
    let webhook = format!("http://{}/telegram/webhook", running.http_addr);
    let client = reqwest::Client::new();
    let (idle, busy) = orders.split_at(queries);
    for (round, batch, load) in [("idle database", idle, 0), ("busy database", busy, writers)] {
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let mut load_tasks = Vec::new();
        for w in 0..load {
            let (store, stop, writes) = (store.clone(), stop.clone(), writes.clone());
            let user_id = batch[w % batch.len()].2;
            load_tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if store
                        .adjust_balance(
                            user_id,
                            Money::from_micros(1),
                            LedgerReason::Adjustment,
                            None,
                            None,
                        )
                        .await
                        .is_ok()
                    {
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        let writes_before = writes.load(Ordering::Relaxed);
        let mut sent = Vec::new();
        let gap = Duration::from_secs_f64(1.0 / rate as f64);
        for (i, (telegram_id, order_id, _)) in batch.iter().enumerate() {
            let at = started + gap * i as u32;
            tokio::time::sleep_until(at.into()).await;
            let query_id = format!("{}{}", 9_000_000 + i, order_id);
            let body = format!(
                "{{\"update_id\":{},\n\"pre_checkout_query\":{}}}",
                order_id * 10 + if load > 0 { 1 } else { 0 },
                json!({"id": query_id, "from": {"id": telegram_id, "is_bot": false, "first_name": "Buyer", "language_code": "en"},
                    "currency": "XTR", "total_amount": 50, "invoice_payload": format!("order:{order_id}")})
            );
            let posted = Instant::now();
            let r = client
                .post(&webhook)
                .header("x-telegram-bot-api-secret-token", SECRET)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            sent.push((query_id, posted));
        }
        // every query is answered (Telegram's limit is 10 s)
        let deadline = Instant::now() + Duration::from_secs(15);
        while answers.lock().unwrap().len() < sent.len() + if load > 0 { queries } else { 0 }
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed();
        let writes_done = writes.load(Ordering::Relaxed) - writes_before;
        stop.store(true, Ordering::Relaxed);
        for t in load_tasks {
            let _ = t.await;
        }
        let answered = answers.lock().unwrap().clone();
        let mut latencies: Vec<Duration> = Vec::new();
        let mut refused = 0;
        let mut missing = 0;
        for (id, posted) in &sent {
            match answered.get(id) {
                Some((at, ok)) => {
                    latencies.push(at.duration_since(*posted));
                    if !ok {
                        refused += 1;
                    }
                }
                None => missing += 1,
            }
        }
        latencies.sort();
        println!(
            "{label}, {round}: {} queries at {rate}/s{}",
            sent.len(),
            if load > 0 {
                format!(
                    ", {load} writers doing {:.0} balance writes/s",
                    writes_done as f64 / elapsed.as_secs_f64()
                )
            } else {
                String::new()
            }
        );
        println!(
            "  latency      p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 < 1000 ms)",
            percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&latencies, 0.95).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
        println!(
            "  answers      {} ok, {refused} refused, {missing} unanswered",
            latencies.len() - refused
        );
    }
    running.shutdown().await;
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("precheckout: benchmark");
        return;
    }
    let queries = env_or("QUERIES", 300) as usize;
    let rate = env_or("RATE", 50);
    let writers = env_or("WRITERS", 16) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}/bench.db", dir.path().display());
        run("SQLite", &db, queries, rate, writers).await;
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
            run("PostgreSQL", &url, queries, rate, writers).await;
        }
    });
}
