//! Memory of idle bot sessions: RSS growth per session actor with 100,000 sessions alive under
//! the router's supervision, each spawned as the router spawns it for a new user.
//!
//! `cargo bench --bench sessions` (SESSIONS in the environment changes the count)

use std::sync::Arc;
use std::time::Duration;

use ractor::Actor;
use telebot::actors::session::SessionActor;
use telebot::bot::BotEnv;
use telebot::config::Language;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("sessions: benchmark");
        return;
    }
    let count: usize = std::env::var("SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let store = telebot::store::Store::connect(&telebot::store::ConnectOptions {
            url: format!("sqlite://{}/s.db", dir.path().display()),
            max_connections: 1,
            connect_timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        let matcher =
            telebot::actors::matcher::MatcherHandle::new(telebot::supervision::ActorSlot::new());
        let orders = telebot::actors::order_manager::OrdersHandle::new(
            telebot::supervision::ActorSlot::new(),
            matcher,
            store.clone(),
        );
        let bot = teloxide::Bot::new("0:bench")
            .set_api_url(reqwest::Url::parse("http://127.0.0.1:9").unwrap());
        let env = Arc::new(BotEnv {
            store,
            orders,
            outbound: telebot::bot::outbound::Outbound::unpaced(bot),
            limiter: telebot::ratelimit::RateLimiter::local(20),
            default_language: Language::En,
            shop_name: "Bench".into(),
            bot_username: "bench_bot".into(),
            idle_timeout: Duration::from_secs(3600),
        });
        // a parent that supervises the sessions, as the router does
        let (parent, _) = Actor::spawn(None, Parent, ()).await.unwrap();
        // warm up allocator and runtime so the first sessions do not carry one-off costs
        let mut warm = Vec::new();
        for i in 0..1_000 {
            let (a, _) = Actor::spawn_linked(
                None,
                SessionActor { env: env.clone() },
                i,
                parent.get_cell(),
            )
            .await
            .unwrap();
            warm.push(a);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_bytes();
        let mut sessions = Vec::with_capacity(count);
        for i in 0..count {
            let (a, _) = Actor::spawn_linked(
                None,
                SessionActor { env: env.clone() },
                1_000_000 + i as i64,
                parent.get_cell(),
            )
            .await
            .unwrap();
            sessions.push(a);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_bytes();
        let per = (after.saturating_sub(before)) as f64 / count as f64;
        println!(
            "idle sessions: {count}, RSS growth {:.1} MiB, {:.0} bytes per session",
            (after - before) as f64 / 1048576.0,
            per
        );
        println!(
            "  target under 2048 bytes per session: {}",
            if per < 2048.0 { "met" } else { "NOT met" }
        );
        for s in sessions.iter().chain(warm.iter()) {
            s.stop(None);
        }
    });
}

struct Parent;

impl Actor for Parent {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(
        &self,
        _: ractor::ActorRef<()>,
        _: (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        Ok(())
    }
    async fn handle_supervisor_evt(
        &self,
        _: ractor::ActorRef<()>,
        _: ractor::SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        Ok(())
    }
}
