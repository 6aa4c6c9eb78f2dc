//! Messages of the [payment matcher](crate::actors::matcher).

use ractor::RpcReplyPort;

use crate::domain::Money;
use crate::domain::allocation::{Allocation, MatchResult, Release, SlotsExhausted};

/// Counts for metrics and the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatcherStats {
    pub pending: usize,
    pub quarantined: usize,
}

pub enum MatcherMsg {
    /// Hand `order_id` the smallest free unique amount above `price`.
    Allocate {
        order_id: i64,
        price: Money,
        reply: RpcReplyPort<Result<Allocation, SlotsExhausted>>,
    },
    /// End an order's hold: quarantine its amount (paid, expired, cancelled) or free it (the
    /// order was never shown).
    Release { order_id: i64, release: Release },
    /// The database holds `amount` on `wallet` for another order (a second instance gave it
    /// out): mark it taken so it is not offered again.
    TakenElsewhere { wallet: String, amount: Money },
    /// What a transfer of `amount` to `wallet` at `at` (Unix ms) pays.
    Match {
        wallet: String,
        amount: Money,
        at: i64,
        reply: RpcReplyPort<MatchResult>,
    },
    /// Current counts.
    Stats { reply: RpcReplyPort<MatcherStats> },
    /// Drop quarantines that are over (sent by the actor's own timer).
    Purge,
}
