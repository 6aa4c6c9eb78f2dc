//! Messages of the [payment matcher](crate::actors::matcher).

use ractor::RpcReplyPort;

use crate::domain::Money;
use crate::domain::allocation::{MatchResult, ReleaseReason, SlotsExhausted};

/// An amount handed out for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub wallet: String,
    pub amount: Money,
    /// End of the payment window, Unix ms.
    pub expires_at: i64,
}

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
        reply: RpcReplyPort<Result<Assignment, SlotsExhausted>>,
    },
    /// End an order's hold (paid: free now; expired or cancelled: quarantine).
    Release {
        order_id: i64,
        reason: ReleaseReason,
    },
    /// The database holds `amount` on `wallet` for another order (a second instance gave it
    /// out): mark it taken so it is not offered again.
    TakenElsewhere {
        wallet: String,
        amount: Money,
        order_id: i64,
    },
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
