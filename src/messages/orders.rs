//! Messages of the [order manager](crate::actors::order_manager) and the
//! [order actors](crate::actors::order) it supervises.

use ractor::RpcReplyPort;

use crate::store::{Order, PayOutcome};

/// Why an order operation did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OrderError {
    #[error("all payable amounts are in use; try again after {retry_at}")]
    Busy { retry_at: i64 },
    #[error("no such order")]
    NotFound,
    #[error("the order is {0}, no longer waiting for payment")]
    NotPending(crate::domain::OrderStatus),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Unavailable(#[from] crate::actors::ActorCallError),
    #[error("storage failed: {0}")]
    Store(String),
}

impl From<crate::store::StoreError> for OrderError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::NotFound(_) => OrderError::NotFound,
            crate::store::StoreError::Transition(t) => OrderError::Invalid(t.to_string()),
            other => OrderError::Store(other.to_string()),
        }
    }
}

pub enum OrderManagerMsg {
    /// A new pending order: give it an order actor.
    Track(Box<Order>),
    /// Pay an order with a recorded transfer (routed to its order actor); `assigned_by` names
    /// the operator who assigns the transfer by hand.
    Pay {
        order_id: i64,
        transfer_id: i64,
        assigned_by: Option<String>,
        reply: RpcReplyPort<Result<PayOutcome, OrderError>>,
    },
    /// Pay a pending order from its customer's balance.
    PayFromBalance {
        order_id: i64,
        actor: String,
        reply: RpcReplyPort<Result<PayOutcome, OrderError>>,
    },
    /// Cancel a pending order on behalf of `actor` (the customer or an operator).
    Cancel {
        order_id: i64,
        actor: String,
        reply: RpcReplyPort<Result<Order, OrderError>>,
    },
    /// Start the actor of a pending order again after it failed.
    Respawn(i64),
    /// How many order actors are alive.
    Live(RpcReplyPort<usize>),
}

pub enum OrderMsg {
    /// The payment window is over: expire the order (once the chain scanners have caught up).
    Expire,
    /// Pay the order with a recorded transfer (by hand when `assigned_by` is set).
    Pay {
        transfer_id: i64,
        assigned_by: Option<String>,
        reply: RpcReplyPort<Result<PayOutcome, OrderError>>,
    },
    /// Pay the order from its customer's balance.
    PayFromBalance {
        actor: String,
        reply: RpcReplyPort<Result<PayOutcome, OrderError>>,
    },
    /// Cancel the order.
    Cancel {
        actor: String,
        reply: RpcReplyPort<Result<Order, OrderError>>,
    },
}
