//! Bot throughput and latency: updates per second and handling latency through the full stack
//! (simulator -> teloxide polling -> router -> session actor -> rate limit -> database ->
//! screen -> reply), beside a bare teloxide dispatcher that answers every message with a fixed
//! text, against the same loopback Bot API server in the same run.
//!
//! `cargo bench --bench bot` (USERS, PER_USER, ROUNDS and RATE in the environment change the load)

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use telebot::bot::simulator::{SimUser, Simulator};
use telebot::config::{Config, FileLayer};
use teloxide::prelude::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn users(n: u64) -> Vec<SimUser> {
    (0..n)
        .map(|i| SimUser {
            id: 10_000 + i as i64,
            first_name: format!("Load {i}"),
            username: None,
            language_code: Some("en".into()),
        })
        .collect()
}

struct Figures {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// Sends `per_user` messages from every user, `rate` per second overall (0: all at once), and
/// measures until every one is answered.
async fn drive(sim: &Simulator, users: &[SimUser], per_user: u64, rate: u64) -> Figures {
    let mut sent_rx = sim.subscribe_sent();
    let total = users.len() as u64 * per_user;
    let injected: Arc<std::sync::Mutex<HashMap<i64, VecDeque<Instant>>>> = Arc::default();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(total as usize);
    let feeder = {
        let injected = injected.clone();
        async move {
            let gap = if rate == 0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(1.0 / rate as f64)
            };
            let mut next = Instant::now();
            for round in 0..per_user {
                for u in users {
                    if !gap.is_zero() {
                        next += gap;
                        tokio::time::sleep_until(next.into()).await;
                    }
                    injected
                        .lock()
                        .unwrap()
                        .entry(u.id)
                        .or_default()
                        .push_back(Instant::now());
                    sim.user_message(u, &format!("hello {round}"));
                }
            }
        }
    };
    let collector = async {
        while (latencies.len() as u64) < total {
            match tokio::time::timeout(Duration::from_secs(30), sent_rx.recv()).await {
                Ok(Ok((chat, at))) => {
                    if let Some(t) = injected
                        .lock()
                        .unwrap()
                        .get_mut(&chat)
                        .and_then(|q| q.pop_front())
                    {
                        latencies.push(at.duration_since(t));
                    }
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                    panic!("collector lagged by {n}")
                }
                _ => panic!("replies stopped at {} of {total}", latencies.len()),
            }
        }
    };
    tokio::join!(feeder, collector);
    let elapsed = started.elapsed();
    latencies.sort();
    let pick = |p: f64| {
        latencies[((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    Figures {
        per_second: total as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

async fn serve_simulator(sim: Arc<Simulator>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router: axum::Router = telebot::http::simulator::router(sim);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}/sim")
}

fn print(name: &str, f: &Figures) {
    println!(
        "  {name:<12} {:>8.0} updates/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
        f.per_second,
        f.p50.as_secs_f64() * 1000.0,
        f.p99.as_secs_f64() * 1000.0
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("bot: benchmark");
        return;
    }
    let n_users = env_or("USERS", 200);
    let per_user = env_or("PER_USER", 25);
    let rate = env_or("RATE", 300);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let rounds = env_or("ROUNDS", 5) as usize;
    rt.block_on(async move {
        // bare teloxide: one handler answering every message with the very reply the service
        // gives to a plain message (the menu hint and its keyboard), so only the stack differs
        let bare_sim = Arc::new(Simulator::new("bare_bot"));
        let url = serve_simulator(bare_sim.clone()).await;
        let bot = Bot::new("0:bare").set_api_url(reqwest::Url::parse(&url).unwrap());
        let handler = Update::filter_message().endpoint(|bot: Bot, msg: Message| async move {
            let lang = telebot::config::Language::En;
            bot.send_message(msg.chat.id, telebot::bot::texts::t(lang, "menu.hint"))
                .parse_mode(teloxide::types::ParseMode::Html)
                .reply_markup(telebot::bot::keyboards::main_menu(lang))
                .await?;
            respond(())
        });
        let mut dispatcher = Dispatcher::builder(bot, handler).build();
        let stop = dispatcher.shutdown_token();
        let bare_task = tokio::spawn(async move { dispatcher.dispatch().await });

        // the full service on its embedded default, with the simulator it serves itself
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}/bench.db", dir.path().display());
        let env: Vec<(String, String)> = [
            ("TELEBOT__HTTP__ADDR", "127.0.0.1:0"),
            ("TELEBOT__DATABASE__URL", db.as_str()),
            ("TELEBOT__SECURITY__RATE_LIMIT_PER_MINUTE", "100000"),
            ("TELEBOT__LOG__LEVEL", "warn"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let running = telebot::app::start(Config::load_with_env(FileLayer::None, env).unwrap())
            .await
            .unwrap();
        let full_sim = running.app.simulator.clone().unwrap();

        let users = users(n_users);
        // warm-up: every user once on both sides before anything is measured
        drive(&bare_sim, &users, 1, 0).await;
        drive(&full_sim, &users, 1, 0).await;
        // rounds alternate between the two stacks, so both see the same machine conditions;
        // the median round of each is reported
        let (mut bare_bursts, mut full_bursts) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            bare_bursts.push(drive(&bare_sim, &users, per_user, 0).await);
            full_bursts.push(drive(&full_sim, &users, per_user, 0).await);
        }
        let bare_paced = drive(&bare_sim, &users, 3, rate).await;
        let full_paced = drive(&full_sim, &users, 3, rate).await;
        bare_sim.close();
        let _ = stop.shutdown();
        bare_task.abort();
        running.shutdown().await;

        let bare_burst = median(bare_bursts);
        let full_burst = median(full_bursts);
        println!(
            "bot throughput, {n_users} users x {per_user} messages at once, median of {rounds} alternating rounds:"
        );
        print("bare", &bare_burst);
        print("full stack", &full_burst);
        println!(
            "  ratio full/bare: {:.2} (target >= 0.80)",
            full_burst.per_second / bare_burst.per_second
        );
        println!("handling latency at {rate} updates/s:");
        print("bare", &bare_paced);
        print("full stack", &full_paced);
    });
}

/// The round with the median throughput.
fn median(mut rounds: Vec<Figures>) -> Figures {
    rounds.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    rounds.swap_remove(rounds.len() / 2)
}
