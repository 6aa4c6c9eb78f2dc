//! Messages of the [order manager](crate::actors::order_manager) and the
//! [order actors](crate::actors::order) it supervises.

use ractor::RpcReplyPort;

use crate::store::{IncomingStarsPayment, Order, PayOutcome, StarsSettled};

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
    Unavailable(#[from] super::ActorCallError),
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
    /// A message for the actor of order `order_id`, started from the database first if it is
    /// not running; when that fails the message's reply carries the error.
    ToOrder { order_id: i64, msg: OrderMsg },
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
        who: String,
        reply: RpcReplyPort<Result<PayOutcome, OrderError>>,
    },
    /// Pay the order with a Stars payment Telegram reported.
    PayStars {
        payment: Box<IncomingStarsPayment>,
        reply: RpcReplyPort<Result<StarsSettled, OrderError>>,
    },
    /// Cancel the order.
    Cancel {
        who: String,
        reply: RpcReplyPort<Result<Order, OrderError>>,
    },
}

impl OrderMsg {
    /// Answers the message with `e` instead of handling it (its order actor cannot be had).
    pub fn refuse(self, e: OrderError) {
        match self {
            OrderMsg::Expire => {}
            OrderMsg::Pay { reply, .. } | OrderMsg::PayFromBalance { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            OrderMsg::Cancel { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            OrderMsg::PayStars { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}
