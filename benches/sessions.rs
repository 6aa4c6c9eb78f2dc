//! Memory of idle bot sessions: RSS growth per session actor with 100,000 sessions alive under
//! the router's supervision, each spawned as the router spawns it for a new user.
//!
//! Beside it, the same count of empty ractor actors (no state, no handler) under the same
//! parent: the floor any actor pays, whatever it holds. A counting allocator reports the live
//! heap per actor and the allocations it is made of, so the figure can be traced to its parts.
//!
//! `cargo bench --bench sessions` (SESSIONS in the environment changes the count)

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorCell};
use telebot::actors::session::SessionActor;
use telebot::bot::BotEnv;
use telebot::config::Language;

/// Counts live heap bytes, and live allocations by exact size up to `SIZES` bytes.
struct Counting;

const SIZES: usize = 8192;
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_BY_SIZE: [AtomicI64; SIZES + 1] = [const { AtomicI64::new(0) }; SIZES + 1];

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        LIVE_BY_SIZE[layout.size().min(SIZES)].fetch_add(1, Ordering::Relaxed);
        // SAFETY: the layout is passed through unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        LIVE_BY_SIZE[layout.size().min(SIZES)].fetch_sub(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this same layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn rss_bytes() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

struct Snapshot {
    rss: i64,
    heap: i64,
    by_size: Vec<i64>,
}

fn snapshot() -> Snapshot {
    Snapshot {
        rss: rss_bytes(),
        heap: LIVE_BYTES.load(Ordering::Relaxed),
        by_size: LIVE_BY_SIZE
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect(),
    }
}

/// Spawns `count` actors with `spawn_one`, keeps them alive, and prints what they cost.
/// Returns the RSS growth per actor in bytes.
async fn measure<F, Fut, A>(label: &str, count: usize, keep: &mut Vec<A>, spawn_one: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = A>,
{
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = snapshot();
    for i in 0..count {
        keep.push(spawn_one(i).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = snapshot();
    let per_rss = (after.rss - before.rss) as f64 / count as f64;
    let per_heap = (after.heap - before.heap) as f64 / count as f64;
    let parts: Vec<String> = before
        .by_size
        .iter()
        .zip(&after.by_size)
        .enumerate()
        .filter_map(|(size, (b, a))| {
            let each = (a - b) as f64 / count as f64;
            (each >= 0.5).then(|| {
                let size = if size == SIZES {
                    format!(">{SIZES}")
                } else {
                    size.to_string()
                };
                if (each - 1.0).abs() < 0.05 {
                    size
                } else {
                    format!("{each:.1}x{size}")
                }
            })
        })
        .collect();
    println!(
        "{label}: {count}, RSS growth {:.1} MiB, {per_rss:.0} bytes each (heap {per_heap:.0} bytes: {})",
        (after.rss - before.rss) as f64 / 1048576.0,
        parts.join(" + ")
    );
    per_rss
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
            orders: Arc::new(orders),
            outbound: telebot::bot::outbound::Outbound::unpaced(bot),
            limiter: telebot::ratelimit::RateLimiter::local(20),
            default_language: Language::En,
            shop_name: "Bench".into(),
            bot_username: "bench_bot".into(),
            idle_timeout: Duration::from_secs(3600),
            order_button_lifetime: Duration::from_secs(120),
            stars_enabled: true,
            stars_window: Duration::from_secs(900),
        });
        // a parent that supervises the sessions, as the router does
        let (parent, _) = Actor::spawn(None, Parent, ()).await.unwrap();
        let parent = parent.get_cell();
        let spawn_session = |i: usize| {
            let env = env.clone();
            let parent = parent.clone();
            async move {
                let session = SessionActor { env };
                let id = 1_000_000 + i as i64;
                Actor::spawn_linked(None, session, id, parent)
                    .await
                    .unwrap()
                    .0
            }
        };
        let spawn_empty = |_| {
            let parent: ActorCell = parent.clone();
            async move {
                Actor::spawn_linked(None, Parent, (), parent)
                    .await
                    .unwrap()
                    .0
            }
        };
        // warm up the allocator and runtime so the measured actors carry no one-off costs
        let mut warm = Vec::new();
        for i in 0..1_000 {
            warm.push(spawn_session(i).await);
        }
        let mut sessions = Vec::with_capacity(count);
        let per = measure("idle sessions", count, &mut sessions, spawn_session).await;
        let mut empty = Vec::with_capacity(count);
        let floor = measure("empty ractor actors", count, &mut empty, spawn_empty).await;
        println!(
            "  a session costs {:.0} bytes more than an empty ractor actor",
            per - floor
        );
        println!(
            "  target under 2048 bytes per session: {}",
            if per < 2048.0 { "met" } else { "NOT met" }
        );
        for s in sessions.iter().chain(warm.iter()) {
            s.stop(None);
        }
        for a in &empty {
            a.stop(None);
        }
    });
}

/// An actor with no state that ignores everything: the floor, and the sessions' parent.
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
