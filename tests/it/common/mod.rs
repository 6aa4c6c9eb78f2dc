//! Helpers shared by the integration tests: a fresh database per test on either backend, a
//! configuration for an instance on a free port, and waiting with a deadline.
#![allow(dead_code)]

pub mod chain;
pub mod sim;
pub mod webdriver;

use std::future::Future;
use std::time::{Duration, Instant};

use telebot::config::{Config, FileLayer};
use telebot::store::{ConnectOptions, Store};

/// Environment variable that enables the PostgreSQL runs of the shared suites.
pub const POSTGRES_ENV: &str = "TELEBOT_TEST_POSTGRES_URL";
/// Environment variable that enables the Redis runs of the shared suites.
pub const REDIS_ENV: &str = "TELEBOT_TEST_REDIS_URL";

/// The server URL in `var`; a test that needs it fails with a clear message when it is unset.
pub fn env_url(var: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{var} is not set: this test needs its server"))
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    admin_url: Option<String>,
    name: Option<String>,
}

impl TestDb {
    /// A new SQLite file in a temporary folder, migrated.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/telebot.db", dir.path().display());
        let store = connect(&url).await;
        TestDb {
            url,
            store,
            _dir: Some(dir),
            admin_url: None,
            name: None,
        }
    }

    /// A new PostgreSQL database, migrated. The tests that call it are ignored unless
    /// [`POSTGRES_ENV`] was set for the build; they fail when it is unset at run time or the
    /// server cannot be used.
    pub async fn postgres() -> TestDb {
        let admin_url = env_url(POSTGRES_ENV);
        let name = format!("telebot_t_{:016x}", rand::random::<u64>());
        let admin = connect_plain(&admin_url).await;
        admin
            .execute_admin(&format!("create database {name}"))
            .await
            .unwrap_or_else(|e| {
                panic!("{POSTGRES_ENV} is set but creating a database failed: {e}")
            });
        admin.close().await;
        let url = replace_db_name(&admin_url, &name);
        let store = connect(&url).await;
        TestDb {
            url,
            store,
            _dir: None,
            admin_url: Some(admin_url),
            name: Some(name),
        }
    }

    /// Closes the pool and drops a PostgreSQL database (SQLite files go with their folder).
    pub async fn finish(self) {
        self.store.close().await;
        if let (Some(admin_url), Some(name)) = (&self.admin_url, &self.name) {
            let admin = connect_plain(admin_url).await;
            let _ = admin
                .execute_admin(&format!("drop database if exists {name} with (force)"))
                .await;
            admin.close().await;
        }
    }
}

async fn connect_plain(url: &str) -> Store {
    Store::connect(&ConnectOptions {
        url: url.to_owned(),
        max_connections: 4,
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

pub async fn connect(url: &str) -> Store {
    let store = connect_plain(url).await;
    store.migrate().await.expect("migrations apply");
    store
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let mut out = match path_start {
        Some(i) => format!("{}/{}", &base[..i], name),
        None => format!("{base}/{name}"),
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Defaults plus `vars` (as `TELEBOT__...` environment pairs), no file; the HTTP server on a
/// free port and the given database.
pub fn config_with(db_url: &str, vars: &[(&str, &str)]) -> Config {
    let mut env: Vec<(String, String)> = vec![
        ("TELEBOT__HTTP__ADDR".into(), "127.0.0.1:0".into()),
        ("TELEBOT__DATABASE__URL".into(), db_url.into()),
        ("TELEBOT__HTTP__SHUTDOWN_GRACE".into(), "3s".into()),
        // most suites create USDT-only products; the Stars suite turns the shop rule back on
        ("TELEBOT__STARS__REQUIRE_PRICE".into(), "false".into()),
    ];
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::load_with_env(FileLayer::None, env).expect("test configuration is valid")
}

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A receiving wallet used by the payment tests (a valid address from the shared vectors).
pub const WALLET: &str = "TJmmqjb1DK9TTZbQXzRQ2AuA94z4gKAPFh";

/// Starts a whole instance on `db_url` with the given settings.
pub async fn start_app(db_url: &str, vars: &[(&str, &str)]) -> telebot::app::Running {
    telebot::app::start(config_with(db_url, vars))
        .await
        .expect("instance starts")
}

/// A visible product without a category; its Chinese name is the English one.
pub async fn product(
    store: &Store,
    kind: telebot::domain::ProductKind,
    name: &str,
    description: &str,
    price: &str,
) -> telebot::store::Product {
    store
        .create_product(
            &telebot::store::ProductInput {
                category_id: None,
                kind,
                name_en: name.into(),
                name_zh: name.into(),
                description_en: description.into(),
                description_zh: String::new(),
                price: telebot::domain::Money::parse(price).unwrap(),
                stars_price: None,
                hidden: false,
                position: 0,
            },
            "test",
        )
        .await
        .unwrap()
}

/// A customer and a digital product with stock, in the given store.
pub async fn shop(
    store: &Store,
    telegram_id: i64,
    price: &str,
    stock: usize,
) -> (telebot::store::User, telebot::store::Product) {
    use telebot::domain::{Money, ProductKind};
    let (user, _) = store
        .upsert_telegram_user(&telebot::store::TelegramProfile {
            telegram_id,
            username: Some(format!("buyer{telegram_id}")),
            first_name: "Buyer".into(),
            language: "en".into(),
        })
        .await
        .unwrap();
    let product = store
        .create_product(
            &telebot::store::ProductInput {
                category_id: None,
                kind: ProductKind::Digital,
                name_en: "Licence key".into(),
                name_zh: "许可证密钥".into(),
                description_en: String::new(),
                description_zh: String::new(),
                price: Money::parse(price).unwrap(),
                stars_price: None,
                hidden: false,
                position: 0,
            },
            "test",
        )
        .await
        .unwrap();
    let items: Vec<String> = (0..stock)
        .map(|i| format!("KEY-{}-{i}", product.id))
        .collect();
    if !items.is_empty() {
        store.add_stock(product.id, &items, "test").await.unwrap();
    }
    (user, product)
}

/// A new order for `quantity` of `product`, through the order service.
pub async fn order_for(
    app: &telebot::app::App,
    user_id: i64,
    product: &telebot::store::Product,
    quantity: i64,
) -> telebot::store::Order {
    app.orders
        .create(
            &telebot::store::NewOrder {
                user_id,
                product_id: Some(product.id),
                kind: product.kind,
                quantity,
                price: product.price.checked_mul(quantity).unwrap(),
                chain: "tron".into(),
                token: "USDT".into(),
                request_text: None,
            },
            "test",
        )
        .await
        .expect("order created")
}

/// An API token with `role`, stored as the service stores them.
pub async fn token(store: &Store, role: telebot::domain::Role, agent_id: Option<i64>) -> String {
    let token = telebot::http::auth::new_token();
    store
        .create_token(
            "test",
            role,
            &telebot::http::auth::hash_token(&token),
            agent_id,
            "test",
        )
        .await
        .unwrap();
    token
}

/// Waits until the order reaches `status`.
pub async fn wait_status(
    store: &Store,
    order_id: i64,
    status: telebot::domain::OrderStatus,
) -> telebot::store::Order {
    wait_for(
        &format!("order {order_id} to be {status}"),
        Duration::from_secs(20),
        || async {
            store
                .order(order_id)
                .await
                .ok()
                .filter(|o| o.status == status)
        },
    )
    .await
}

/// Waits until at least `n` of `orders` have left `pending_payment`: the marker that a stream
/// of payments is under way, so a restart or a crash lands in the middle of it.
pub async fn wait_paid(store: &Store, orders: &[telebot::store::Order], n: usize) {
    wait_for(
        &format!("{n} of {} orders paid", orders.len()),
        Duration::from_secs(20),
        || async {
            let mut paid = 0;
            for o in orders {
                if store
                    .order(o.id)
                    .await
                    .is_ok_and(|o| o.status != telebot::domain::OrderStatus::PendingPayment)
                {
                    paid += 1;
                }
            }
            (paid >= n).then_some(())
        },
    )
    .await
}

/// Sleeps until the wall clock passes `at_ms` (Unix ms) by `margin_ms`: for tests whose subject
/// is a deadline (a payment window, a keyboard's lifetime), which no marker can stand for.
pub async fn pass_deadline(at_ms: i64, margin_ms: i64) {
    let left = at_ms + margin_ms - telebot::domain::now_ms();
    if left > 0 {
        tokio::time::sleep(Duration::from_millis(left as u64)).await;
    }
}
