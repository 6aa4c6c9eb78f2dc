//! Order creation throughput: `POST /api/v1/orders` with a service token from 32 concurrent
//! clients, beside the floor: the same rows (the order, its unique amount, its audit entry)
//! written by 32 concurrent tasks straight through sqlx, one transaction per order, on the same
//! database in the same run. Reports orders per second and the p99 latency of each.
//!
//! Runs on the embedded default (SQLite in a temporary folder), and on PostgreSQL as well when
//! `TELEBOT_BENCH_POSTGRES_URL` names a database it may fill (e.g. the test database).
//!
//! `cargo bench --bench orders` (ORDERS and CONCURRENCY in the environment change the load)

use std::sync::Arc;
use std::time::{Duration, Instant};

use telebot::config::{Config, FileLayer};
use telebot::domain::{Money, ProductKind, Role};
use telebot::store::{ProductInput, TelegramProfile};

/// The issue's target for SQLite.
const TARGET_SQLITE: f64 = 2_000.0;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Figures {
    per_second: f64,
    p99: Duration,
}

/// Runs `total` jobs from `concurrency` workers; `job(i)` is the i-th one.
async fn load<F, Fut>(total: usize, concurrency: usize, job: F) -> Figures
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (job, next) = (job.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut times = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return times;
                }
                let t = Instant::now();
                job(i).await;
                times.push(t.elapsed());
            }
        }));
    }
    let mut times = Vec::new();
    for w in workers {
        times.extend(w.await.unwrap());
    }
    let elapsed = start.elapsed();
    times.sort();
    Figures {
        per_second: total as f64 / elapsed.as_secs_f64(),
        p99: times[(times.len() * 99 / 100).min(times.len() - 1)],
    }
}

/// The floor: what a minimal order creation writes, one transaction per order.
async fn bare_inserts(url: &str, user_id: i64, total: usize, concurrency: usize) -> Figures {
    const ORDER: &str = "insert into orders (user_id, product_id, kind, quantity, price, payable_amount, chain, \
         token, status, wallet, expires_at, created_at, updated_at) values ($1, null, 'service', 1, \
         5000000, $2, 'tron', 'USDT', 'pending_payment', 'floor-wallet', $3, $3, $3) returning id";
    const ALLOCATION: &str = "insert into allocations (chain, token, wallet, amount, order_id, state, \
         expires_at, created_at) values ('tron', 'USDT', 'floor-wallet', $1, $2, 'pending', $3, $3)";
    const AUDIT: &str = "insert into audit_log (at, actor, action, entity, entity_id, before, after) \
         values ($1, 'bench', 'order.created', 'order', $2, null, '{}')";
    let now = 1_900_000_000_000i64;
    // the same three statements on either driver's transaction
    macro_rules! one_order {
        ($tx:expr, $i:expr) => {{
            let mut tx = $tx;
            let amount = 1_000_000_000 + $i as i64;
            let id: i64 = sqlx::query_scalar(ORDER)
                .bind(user_id)
                .bind(amount)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            sqlx::query(ALLOCATION)
                .bind(amount)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(AUDIT)
                .bind(now)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }};
    }
    if url.starts_with("sqlite:") {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
        use std::str::FromStr;
        let options = SqliteConnectOptions::from_str(url)
            .unwrap()
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(concurrency as u32)
            .connect_with(options)
            .await
            .unwrap();
        // writers take turns on an async lock, as the service's do (SQLite's busy handler
        // would otherwise make them sleep)
        let turn = Arc::new(tokio::sync::Mutex::new(()));
        load(total, concurrency, move |i| {
            let (pool, turn) = (pool.clone(), turn.clone());
            async move {
                let _turn = turn.lock().await;
                one_order!(pool.begin_with("begin immediate").await.unwrap(), i)
            }
        })
        .await
    } else {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(concurrency as u32)
            .connect(url)
            .await
            .unwrap();
        load(total, concurrency, move |i| {
            let pool = pool.clone();
            async move { one_order!(pool.begin().await.unwrap(), i) }
        })
        .await
    }
}

async fn run(label: &str, db: &str, total: usize, concurrency: usize, target: Option<f64>) {
    let env: Vec<(String, String)> = [
        ("TELEBOT__HTTP__ADDR", "127.0.0.1:0"),
        ("TELEBOT__DATABASE__URL", db),
        ("TELEBOT__DATABASE__MAX_CONNECTIONS", "16"),
        ("TELEBOT__LOG__LEVEL", "warn"),
        // every order of the run stays pending: room for all of them on one price
        ("TELEBOT__PAYMENTS__MAX_SLOTS", "100000"),
        ("TELEBOT__SECURITY__RATE_LIMIT_PER_MINUTE", "100000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let running = telebot::app::start(Config::load_with_env(FileLayer::None, env).unwrap())
        .await
        .unwrap();
    let store = &running.app.store;
    let product = store
        .create_product(
            &ProductInput {
                category_id: None,
                kind: ProductKind::Service,
                name_en: "Consultation".into(),
                name_zh: "咨询".into(),
                description_en: String::new(),
                description_zh: String::new(),
                price: Money::from_micros(5_000_000),
                stars_price: None,
                hidden: false,
                position: 0,
            },
            "bench",
        )
        .await
        .unwrap();
    let mut users = Vec::new();
    for i in 0..concurrency as i64 {
        let (user, _) = store
            .upsert_telegram_user(&TelegramProfile {
                telegram_id: 5_000_000 + i,
                username: None,
                first_name: format!("Buyer {i}"),
                language: "en".into(),
            })
            .await
            .unwrap();
        users.push(user.id);
    }
    let token = telebot::accounts::issue_token(store, "bench", Role::Service, None, "bench")
        .await
        .ok()
        .unwrap()
        .token;
    let url = format!("http://{}/api/v1/orders", running.http_addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let users = Arc::new(users);
    let full = load(total, concurrency, move |i| {
        let (client, url, token, users) =
            (client.clone(), url.clone(), token.clone(), users.clone());
        async move {
            let r = client
                .post(&url)
                .bearer_auth(&token)
                .json(&serde_json::json!({
                    "user_id": users[i % users.len()],
                    "product_id": product.id,
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        }
    })
    .await;
    let bare = bare_inserts(db, users_first(store).await, total, concurrency).await;
    println!("{label}: {total} orders, {concurrency} at once");
    println!(
        "  bare inserts       {:>8.0} orders/s   p99 {:>7.2} ms",
        bare.per_second,
        bare.p99.as_secs_f64() * 1e3
    );
    println!(
        "  POST /api/v1/orders{:>8.0} orders/s   p99 {:>7.2} ms",
        full.per_second,
        full.p99.as_secs_f64() * 1e3
    );
    print!(
        "  ratio full/bare: {:.2}",
        full.per_second / bare.per_second
    );
    match target {
        Some(t) => println!(
            "; target >= {t:.0} orders/s: {}",
            if full.per_second >= t {
                "met"
            } else {
                "NOT met"
            }
        ),
        None => println!(),
    }
    running.shutdown().await;
}

async fn users_first(store: &telebot::store::Store) -> i64 {
    store
        .user_by_telegram_id(5_000_000)
        .await
        .unwrap()
        .unwrap()
        .id
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("orders: benchmark");
        return;
    }
    let total = env_or("ORDERS", 5_000);
    let concurrency = env_or("CONCURRENCY", 32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}/bench.db", dir.path().display());
        run("SQLite", &db, total, concurrency, Some(TARGET_SQLITE)).await;
        if let Ok(url) = std::env::var("TELEBOT_BENCH_POSTGRES_URL") {
            reset_postgres(&url).await;
            run("PostgreSQL", &url, total, concurrency, None).await;
        }
    });
}

/// Starts PostgreSQL from an empty schema, so each run measures the same work.
async fn reset_postgres(url: &str) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query("drop schema public cascade")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("create schema public")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}
