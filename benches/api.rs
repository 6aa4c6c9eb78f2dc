//! `GET /api/v1/products` under a load generator (wrk, from Debian's packages), beside a bare axum
//! handler that answers the same bytes on the same kind of server, in one run. The full path
//! includes the token check (a database lookup), the catalog query and JSON encoding.
//!
//! `cargo bench --bench api` (DURATION seconds and CONNECTIONS in the environment change the load)

use std::process::Command;

use telebot::config::{Config, FileLayer};
use telebot::domain::{Money, ProductKind, Role};
use telebot::store::ProductInput;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Figures {
    rps: f64,
    p99_ms: f64,
}

fn wrk(url: &str, token: &str, seconds: u64, connections: u64) -> Figures {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-H",
            &format!("Authorization: Bearer {token}"),
            url,
        ])
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    let p99 = text
        .lines()
        .find(|l| l.trim_start().starts_with("99%"))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(parse_duration_ms)
        .unwrap_or(f64::NAN);
    if text.contains("Non-2xx") {
        panic!("errors under load:\n{text}");
    }
    Figures { rps, p99_ms: p99 }
}

fn parse_duration_ms(s: &str) -> f64 {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => n,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("api: benchmark");
        return;
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("wrk is not installed (apt-get install wrk): nothing measured");
        return;
    }
    let seconds = env_or("DURATION", 10);
    let connections = env_or("CONNECTIONS", 32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (app, token, body) = rt.block_on(async {
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        let db = format!("sqlite://{}/bench.db", dir.path().display());
        let env: Vec<(String, String)> = [
            ("TELEBOT__HTTP__ADDR", "127.0.0.1:0"),
            ("TELEBOT__DATABASE__URL", db.as_str()),
            ("TELEBOT__LOG__LEVEL", "warn"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let running = telebot::app::start(Config::load_with_env(FileLayer::None, env).unwrap())
            .await
            .unwrap();
        for i in 0..50 {
            running
                .app
                .store
                .create_product(
                    &ProductInput {
                        category_id: None,
                        kind: ProductKind::Digital,
                        name_en: format!("Product {i}"),
                        name_zh: format!("商品 {i}"),
                        description_en: "A product for the benchmark".into(),
                        description_zh: "基准测试商品".into(),
                        price: Money::from_micros(1_000_000 + i * 1000),
                        stars_price: None,
                        hidden: false,
                        position: i,
                    },
                    "bench",
                )
                .await
                .unwrap();
        }
        let token = telebot::accounts::issue_token(
            &running.app.store,
            "bench",
            Role::Service,
            None,
            "bench",
        )
        .await
        .ok()
        .unwrap()
        .token;
        let url = format!("http://{}/api/v1/products", running.http_addr);
        let body = reqwest::Client::new()
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        (running, token, body)
    });
    let bare = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = body.clone();
        let router = axum::Router::new().route(
            "/api/v1/products",
            axum::routing::get(move || {
                let body = body.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    });
    let bare_fig = wrk(
        &format!("http://{bare}/api/v1/products"),
        &token,
        seconds,
        connections,
    );
    let full_fig = wrk(
        &format!("http://{}/api/v1/products", app.http_addr),
        &token,
        seconds,
        connections,
    );
    println!(
        "GET /api/v1/products, 50 products ({} bytes), wrk -t2 -c{connections} -d{seconds}s:",
        body.len()
    );
    println!(
        "  bare axum handler   {:>9.0} req/s   p99 {:>7.2} ms",
        bare_fig.rps, bare_fig.p99_ms
    );
    println!(
        "  full service        {:>9.0} req/s   p99 {:>7.2} ms",
        full_fig.rps, full_fig.p99_ms
    );
    println!("  ratio full/bare: {:.2}", full_fig.rps / bare_fig.rps);
    rt.block_on(app.shutdown());
}
