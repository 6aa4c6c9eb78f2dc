//! Matcher throughput: allocate + release pairs through the matcher actor, beside the same work
//! on the bare allocation table (a HashMap, no actor) in the same run. The ratio is the price of
//! owning the table in an actor. Releases free the amount at once (as for an order whose
//! creation failed), so the table stays small; a paid or expired amount would rest in
//! quarantine and fill the slots.
//!
//! Two more groups: `matcher_fill` runs the same pair on the bare table with 0, 50, 90 and 99 %
//! of one wallet's `max_slots` already held by pending orders (the cost of finding a free slot
//! as a wallet fills), and `actor_floor` is the call round trip of an empty ractor actor in the
//! same runtime, the framework's floor for the matcher's round trip.
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
    let handle = rt.block_on(async {
        let slot = ActorSlot::new();
        let matcher = Matcher {
            chain: "tron".into(),
            token: "USDT".into(),
            wallets: vec!["TJmmqjb1DK9TTZbQXzRQ2AuA94z4gKAPFh".into()],
            rules: RULES,
            store: None,
        };
        let (actor, _) = Actor::spawn(None, matcher, ()).await.unwrap();
        slot.set(actor);
        Arc::new(MatcherHandle::new(slot))
    });

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
        b.iter_custom(|iters| {
            let handle = handle.clone();
            rt.block_on(async move {
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
            })
        })
    });
    group.finish();

    let mut fill = c.benchmark_group("matcher_fill");
    fill.throughput(Throughput::Elements(1));
    fill.measurement_time(Duration::from_secs(3));
    for percent in [0u32, 50, 90, 99] {
        fill.bench_function(format!("table_allocate_release_at_{percent}pct"), |b| {
            let mut table = AllocationTable::new(RULES, 1);
            let held = RULES.max_slots * percent / 100;
            for order in 0..i64::from(held) {
                table.allocate(1_000_000 + order, PRICE, 0).unwrap();
            }
            let mut order = 0i64;
            b.iter(|| {
                order += 1;
                let a = table.allocate(order, PRICE, 0).unwrap();
                table.release(order, Release::Free, 0);
                a
            })
        });
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
                                .call(|reply| EchoMsg(i, reply), Some(Duration::from_secs(5)))
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
    floor.finish();
}

/// An actor that answers every call with what it was given: nothing but the framework.
struct Echo;

struct EchoMsg(u64, ractor::RpcReplyPort<u64>);

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
        let _ = reply.send(v);
        Ok(())
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
