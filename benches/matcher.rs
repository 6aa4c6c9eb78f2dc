//! Matcher throughput: allocate + release pairs through the matcher actor, beside the same work
//! on the bare allocation table (a HashMap, no actor) in the same run. The ratio is the price of
//! owning the table in an actor. Releases free the amount at once (as for an order whose
//! creation failed), so the table stays small; a paid or expired amount would rest in
//! quarantine and fill the slots.
//!
//! Two more groups: `matcher_fill` runs the same pair on the bare table and through the actor
//! with 0, 50, 90 and 99 % of the slots already held by pending orders, on one wallet and on
//! four (filled in the order they are tried), which is the cost of finding a free slot as
//! wallets fill; `actor_floor` is an empty ractor actor in the same runtime answering a call,
//! and a call followed by a cast (what one allocate + release pair sends), the framework's
//! floor for the matcher's round trip.
//!
//! `cargo bench --bench matcher`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ractor::Actor;
use telebot::actors::matcher::{Matcher, MatcherHandle};
use telebot::domain::Money;
use telebot::domain::allocation::{AllocationTable, Release, TableRules};
use telebot::supervision::ActorSlot;

const RULES: TableRules = TableRules {
    step: Money::from_micros(1_000),
    max_slots: 999,
    window_ms: 900_000,
    quarantine_ms: 1_800_000,
};
const PRICE: Money = Money::from_micros(10_000_000);
/// Concurrent callers, like many customers ordering at once.
const CALLERS: u64 = 8;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = rt.block_on(matcher(1));

    let mut group = c.benchmark_group("matcher");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));

    group.bench_function("hashmap_floor_allocate_release", |b| {
        let mut table = AllocationTable::new(RULES, 1);
        let mut order = 0i64;
        b.iter(|| {
            order += 1;
            let a = table.allocate(order, PRICE, 0).unwrap();
            table.release(order, Release::Free, 0);
            a
        })
    });

    group.bench_function("actor_allocate_release", |b| {
        b.iter_custom(|iters| rt.block_on(pairs(handle.clone(), iters)))
    });
    group.finish();

    let mut fill = c.benchmark_group("matcher_fill");
    fill.throughput(Throughput::Elements(1));
    fill.warm_up_time(Duration::from_secs(1));
    fill.measurement_time(Duration::from_secs(3));
    for wallets in [1usize, 4] {
        for percent in [0u32, 50, 90, 99] {
            let held = i64::from(RULES.max_slots) * wallets as i64 * i64::from(percent) / 100;
            fill.bench_function(format!("table_{wallets}w_{percent}pct"), |b| {
                let mut table = AllocationTable::new(RULES, wallets);
                for order in 0..held {
                    table.allocate(HELD + order, PRICE, 0).unwrap();
                }
                let mut order = 0i64;
                b.iter(|| {
                    order += 1;
                    let a = table.allocate(order, PRICE, 0).unwrap();
                    table.release(order, Release::Free, 0);
                    a
                })
            });
            let handle = rt.block_on(async {
                let handle = matcher(wallets).await;
                for order in 0..held {
                    handle.allocate(HELD + order, PRICE).await.unwrap().unwrap();
                }
                handle
            });
            fill.bench_function(format!("actor_{wallets}w_{percent}pct"), |b| {
                b.iter_custom(|iters| rt.block_on(pairs(handle.clone(), iters)))
            });
        }
    }
    fill.finish();

    let echo = rt.block_on(async {
        let (actor, _) = Actor::spawn(None, Echo, ()).await.unwrap();
        actor
    });
    let mut floor = c.benchmark_group("actor_floor");
    floor.throughput(Throughput::Elements(1));
    floor.measurement_time(Duration::from_secs(5));
    floor.bench_function("empty_actor_call", |b| {
        b.iter_custom(|iters| {
            let echo = echo.clone();
            rt.block_on(async move {
                let per_caller = iters.div_ceil(CALLERS);
                let start = Instant::now();
                let mut tasks = Vec::new();
                for _ in 0..CALLERS {
                    let e = echo.clone();
                    tasks.push(tokio::spawn(async move {
                        for i in 0..per_caller {
                            // with a timeout, as every handle calls
                            let v = e
                                .call(
                                    |reply| EchoMsg(i, Some(reply)),
                                    Some(Duration::from_secs(5)),
                                )
                                .await
                                .unwrap();
                            assert!(matches!(v, ractor::rpc::CallResult::Success(x) if x == i));
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_caller * CALLERS) as f64)
            })
        })
    });
    floor.bench_function("empty_actor_call_and_cast", |b| {
        b.iter_custom(|iters| {
            let echo = echo.clone();
            rt.block_on(async move {
                let per_caller = iters.div_ceil(CALLERS);
                let start = Instant::now();
                let mut tasks = Vec::new();
                for _ in 0..CALLERS {
                    let e = echo.clone();
                    tasks.push(tokio::spawn(async move {
                        for i in 0..per_caller {
                            let v = e
                                .call(
                                    |reply| EchoMsg(i, Some(reply)),
                                    Some(Duration::from_secs(5)),
                                )
                                .await
                                .unwrap();
                            assert!(matches!(v, ractor::rpc::CallResult::Success(x) if x == i));
                            e.cast(EchoMsg(i, None)).unwrap();
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_caller * CALLERS) as f64)
            })
        })
    });
    floor.finish();
}

/// Order ids of the holds that fill the table before a measurement.
const HELD: i64 = 1 << 50;

/// A matcher actor with `wallets` receiving wallets and an empty table.
async fn matcher(wallets: usize) -> Arc<MatcherHandle> {
    let slot = ActorSlot::new();
    let matcher = Matcher {
        chain: "tron".into(),
        token: "USDT".into(),
        wallets: (0..wallets).map(|i| format!("wallet-{i}")).collect(),
        rules: RULES,
        store: None,
    };
    let (actor, _) = Actor::spawn(None, matcher, ()).await.unwrap();
    slot.set(actor);
    Arc::new(MatcherHandle::new(slot))
}

/// `iters` allocate (call) + release (cast) pairs from `CALLERS` concurrent callers; the time
/// per pair, scaled to `iters`.
async fn pairs(handle: Arc<MatcherHandle>, iters: u64) -> Duration {
    let per_caller = iters.div_ceil(CALLERS);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..CALLERS {
        let h = handle.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_caller {
                let order = (caller as i64) << 40 | i as i64;
                h.allocate(order, PRICE).await.unwrap().unwrap();
                h.release(order, Release::Free).unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start
        .elapsed()
        .mul_f64(iters as f64 / (per_caller * CALLERS) as f64)
}

/// An actor that answers every call with what it was given: nothing but the framework.
struct Echo;

struct EchoMsg(u64, Option<ractor::RpcReplyPort<u64>>);

impl Actor for Echo {
    type Msg = EchoMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ractor::ActorRef<EchoMsg>,
        _: (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ractor::ActorRef<EchoMsg>,
        EchoMsg(v, reply): EchoMsg,
        _: &mut (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        if let Some(reply) = reply {
            let _ = reply.send(v);
        }
        Ok(())
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
