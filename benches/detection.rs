//! Payment detection latency: from the moment a transfer is visible at a loopback TronGrid to
//! the order being paid, through the whole service (scanner, pipeline, order actor, database).
//! A load harness rather than criterion, because the figure of interest is a percentile of a
//! distribution, not a mean.
//!
//! `cargo bench --bench detection` (POLL_MS and ORDERS in the environment change the defaults)

#[path = "../tests/it/common/chain.rs"]
mod chain;

use std::time::{Duration, Instant};

use chain::{ChainTransfer, PAYER, TronGrid, random_txid};
use telebot::config::{Config, FileLayer};
use telebot::domain::{OrderStatus, ProductKind, now_ms};
use telebot::store::{NewOrder, ProductInput, TelegramProfile};

const WALLET: &str = "TJmmqjb1DK9TTZbQXzRQ2AuA94z4gKAPFh";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("detection: benchmark");
        return;
    }
    let poll_ms = env_or("POLL_MS", 200);
    let orders = env_or("ORDERS", 100) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let tg = TronGrid::start().await;
        let poll = format!("{poll_ms}ms");
        let db = format!("sqlite://{}/bench.db", dir.path().display());
        let env: Vec<(String, String)> = [
            ("TELEBOT__HTTP__ADDR", "127.0.0.1:0"),
            ("TELEBOT__DATABASE__URL", db.as_str()),
            ("TELEBOT__TRON__SOURCE", "trongrid"),
            ("TELEBOT__PAYMENTS__WALLETS", WALLET),
            ("TELEBOT__TRON__TRONGRID_URL", tg.url.as_str()),
            ("TELEBOT__TRON__POLL_INTERVAL", poll.as_str()),
            ("TELEBOT__TRON__CONFIRMATIONS", "seen"),
            ("TELEBOT__LOG__LEVEL", "warn"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = Config::load_with_env(FileLayer::None, env).unwrap();
        let running = telebot::app::start(config).await.unwrap();
        let app = running.app.clone();
        let (user, _) = app
            .store
            .upsert_telegram_user(&TelegramProfile {
                telegram_id: 1,
                username: None,
                first_name: "Bench".into(),
                language: "en".into(),
            })
            .await
            .unwrap();
        let product = app
            .store
            .create_product(
                &ProductInput {
                    category_id: None,
                    kind: ProductKind::Service,
                    name_en: "Consultation".into(),
                    name_zh: "咨询".into(),
                    description_en: String::new(),
                    description_zh: String::new(),
                    price: telebot::domain::Money::parse("10").unwrap(),
                    stars_price: None,
                    hidden: false,
                    position: 0,
                },
                "bench",
            )
            .await
            .unwrap();
        let mut latencies = Vec::with_capacity(orders);
        for i in 0..orders {
            let order = app
                .orders
                .create(
                    &NewOrder {
                        user_id: user.id,
                        product_id: Some(product.id),
                        kind: product.kind,
                        quantity: 1,
                        price: product.price,
                        chain: "tron".into(),
                        token: "USDT".into(),
                        request_text: Some("bench".into()),
                    },
                    "bench",
                )
                .await
                .unwrap();
            // transfers become visible at random points of the poll cycle, as real ones do
            tokio::time::sleep(Duration::from_millis(
                rand::random::<u64>() % poll_ms.max(1),
            ))
            .await;
            tg.push(ChainTransfer {
                txid: random_txid(),
                from: PAYER.into(),
                to: WALLET.into(),
                amount: order.payable_amount,
                block_time: now_ms(),
                block: 0,
                confirmed: true,
            });
            let visible = Instant::now();
            loop {
                let o = app.store.order(order.id).await.unwrap();
                if o.status != OrderStatus::PendingPayment {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            latencies.push(visible.elapsed());
            if (i + 1) % 25 == 0 {
                eprintln!("{} / {orders} orders paid", i + 1);
            }
        }
        latencies.sort();
        let p50 = percentile(&latencies, 50.0);
        let p99 = percentile(&latencies, 99.0);
        println!("detection latency over {orders} payments, poll interval {poll_ms} ms:");
        println!(
            "  p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
            ms(p50),
            ms(p99),
            ms(*latencies.last().unwrap())
        );
        println!(
            "  target p99 <= poll interval + 50 ms = {} ms: {}",
            poll_ms + 50,
            if ms(p99) <= (poll_ms + 50) as f64 {
                "met"
            } else {
                "NOT met"
            }
        );
        running.shutdown().await;
    });
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
