//! The payment matcher: single owner of the unique-amount allocation table
//! (payments subsystem). Allocates amounts for new orders, releases them when orders end, and says
//! which order a transfer pays. The table is rebuilt from the database at start, so a restart
//! never hands out an amount that a live order (or a quarantine) still holds.

use std::collections::HashMap;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::{ActorCallError, call_slot, cast_slot};
use crate::domain::allocation::{
    Allocation, AllocationState, AllocationTable, Hold, MatchResult, Release, SlotsExhausted,
    TableRules,
};
use crate::domain::{Money, now_ms};
use crate::messages::matcher::{MatcherMsg, MatcherStats};
use crate::payments::AmountMatcher;
use crate::store::{AmountSource, BoxFuture, Store};
use crate::supervision::ActorSlot;

const NAME: &str = "payment matcher";

/// How often finished quarantines are dropped.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Read-only configuration of the matcher.
#[derive(Clone)]
pub struct Matcher {
    pub chain: String,
    pub token: String,
    /// The receiving wallets, tried in this order.
    pub wallets: Vec<String>,
    pub rules: TableRules,
    /// Where the table is rebuilt from; `None` starts empty (benchmarks).
    pub store: Option<Store>,
}

pub struct MatcherState {
    table: AllocationTable,
    /// Wallet address -> index; configured wallets first, then wallets that left the
    /// configuration but still hold amounts (matchable, never allocated again).
    wallet_index: HashMap<String, usize>,
    wallets: Vec<String>,
    active: metrics::Gauge,
}

impl MatcherState {
    fn index_of(&mut self, wallet: &str) -> usize {
        if let Some(&i) = self.wallet_index.get(wallet) {
            return i;
        }
        let i = self.wallets.len();
        self.wallets.push(wallet.to_owned());
        self.wallet_index.insert(wallet.to_owned(), i);
        i
    }

    fn publish(&self) {
        self.active.set(self.table.pending() as f64);
    }
}

impl Actor for Matcher {
    type Msg = MatcherMsg;
    type State = MatcherState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = MatcherState {
            table: AllocationTable::new(self.rules, self.wallets.len()),
            wallet_index: self
                .wallets
                .iter()
                .enumerate()
                .map(|(i, w)| (w.clone(), i))
                .collect(),
            wallets: self.wallets.clone(),
            active: metrics::gauge!("matcher_allocations_active", "chain" => self.chain.clone()),
        };
        if let Some(store) = &self.store {
            let live = store.live_allocations().await?;
            let mut restored = 0;
            for a in live
                .into_iter()
                .filter(|a| a.chain == self.chain && a.token == self.token)
            {
                let hold = match (a.state, a.quarantine_until) {
                    (AllocationState::Quarantined, Some(until)) => Hold::Quarantined {
                        order_id: a.order_id,
                        until,
                    },
                    _ => Hold::Pending {
                        order_id: a.order_id,
                        expires_at: a.expires_at,
                    },
                };
                let index = state.index_of(&a.wallet);
                state.table.restore(index, a.amount, hold);
                restored += 1;
            }
            tracing::info!(restored, chain = %self.chain, "allocation table rebuilt from the database");
        }
        state.publish();
        myself.send_interval(PURGE_EVERY, || MatcherMsg::Purge);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MatcherMsg::Allocate {
                order_id,
                price,
                reply,
            } => {
                let result = state
                    .table
                    .allocate(order_id, price, now_ms())
                    .map(|a| a.map_wallet(|i| state.wallets[i].clone()));
                if result.is_err() {
                    metrics::counter!("matcher_slots_exhausted_total").increment(1);
                }
                let _ = reply.send(result);
                state.publish();
            }
            MatcherMsg::Release { order_id, release } => {
                state.table.release(order_id, release, now_ms());
                state.publish();
            }
            MatcherMsg::TakenElsewhere { wallet, amount } => {
                let index = state.index_of(&wallet);
                let rules = state.table.rules();
                // the holder is unknown here: keep the amount out of reach for as long as any
                // order could hold it
                state.table.restore(
                    index,
                    amount,
                    Hold::Elsewhere {
                        until: now_ms() + rules.window_ms + rules.quarantine_ms,
                    },
                );
            }
            MatcherMsg::Match {
                wallet,
                amount,
                at,
                reply,
            } => {
                let result = match state.wallet_index.get(&wallet) {
                    Some(&i) => state.table.match_transfer(i, amount, at),
                    None => MatchResult::NoMatch,
                };
                let _ = reply.send(result);
            }
            MatcherMsg::Stats { reply } => {
                let pending = state.table.pending();
                let _ = reply.send(MatcherStats {
                    pending,
                    quarantined: state.table.len() - pending,
                });
            }
            MatcherMsg::Purge => {
                state.table.purge(now_ms());
            }
        }
        Ok(())
    }
}

/// How the rest of the code talks to the matcher. Survives matcher restarts.
#[derive(Clone)]
pub struct MatcherHandle {
    slot: ActorSlot<MatcherMsg>,
    timeout: Duration,
}

impl MatcherHandle {
    pub fn new(slot: ActorSlot<MatcherMsg>) -> Self {
        MatcherHandle {
            slot,
            timeout: Duration::from_secs(5),
        }
    }

    pub fn slot(&self) -> &ActorSlot<MatcherMsg> {
        &self.slot
    }

    pub async fn allocate(
        &self,
        order_id: i64,
        price: Money,
    ) -> Result<Result<Allocation, SlotsExhausted>, ActorCallError> {
        call_slot(&self.slot, NAME, self.timeout, |reply| {
            MatcherMsg::Allocate {
                order_id,
                price,
                reply,
            }
        })
        .await
    }

    pub fn release(&self, order_id: i64, release: Release) -> Result<(), ActorCallError> {
        cast_slot(&self.slot, NAME, MatcherMsg::Release { order_id, release })
    }

    pub async fn match_transfer(
        &self,
        wallet: &str,
        amount: Money,
        at: i64,
    ) -> Result<MatchResult, ActorCallError> {
        let wallet = wallet.to_owned();
        call_slot(&self.slot, NAME, self.timeout, |reply| MatcherMsg::Match {
            wallet,
            amount,
            at,
            reply,
        })
        .await
    }

    pub async fn stats(&self) -> Result<MatcherStats, ActorCallError> {
        call_slot(&self.slot, NAME, self.timeout, |reply| MatcherMsg::Stats {
            reply,
        })
        .await
    }
}

/// Why no amount could be given to a new order.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AllocateError {
    #[error(transparent)]
    Busy(#[from] SlotsExhausted),
    #[error(transparent)]
    Actor(#[from] ActorCallError),
}

impl AmountMatcher for MatcherHandle {
    fn match_transfer<'a>(
        &'a self,
        wallet: &'a str,
        amount: Money,
        at: i64,
    ) -> BoxFuture<'a, Result<MatchResult, ActorCallError>> {
        Box::pin(MatcherHandle::match_transfer(self, wallet, amount, at))
    }
}

impl AmountSource for MatcherHandle {
    type Error = AllocateError;

    fn allocate(
        &self,
        order_id: i64,
        price: Money,
    ) -> BoxFuture<'_, Result<Allocation, AllocateError>> {
        Box::pin(async move { Ok(MatcherHandle::allocate(self, order_id, price).await??) })
    }

    fn taken_elsewhere(&self, allocation: &Allocation) {
        let _ = cast_slot(
            &self.slot,
            NAME,
            MatcherMsg::TakenElsewhere {
                wallet: allocation.wallet.clone(),
                amount: allocation.amount,
            },
        );
    }
}
