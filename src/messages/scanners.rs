//! Messages of the chain scanners ([TronGrid](crate::actors::trongrid_scanner),
//! [full node](crate::actors::fullnode_scanner)) and the [demo chain](crate::actors::demo_chain).

use std::collections::{HashMap, HashSet};

use ractor::RpcReplyPort;

use crate::domain::Money;
use crate::domain::transfer::Ingested;
use crate::messages::ActorCallError;
use crate::messages::orders::OrderError;
use crate::store::StoreError;

/// What one TronGrid poll achieved.
#[derive(Debug, Default)]
pub struct TronGridPoll {
    /// New cursor (block time, Unix ms) of every wallet whose listing was read: to its end, or
    /// up to the last item read when it was cut.
    pub cursors: HashMap<String, i64>,
    /// When the poll started (Unix ms).
    pub started_at: i64,
    /// Wallets whose listing was longer than one poll reads: the next poll continues from the
    /// cursor itself, without the resume overlap, so a long listing always moves forward.
    pub cut: HashSet<String>,
    pub fault: Option<ScanFault>,
}

pub enum TronGridMsg {
    /// Time to poll (sent by the actor's own timer).
    Tick,
    /// A poll finished (its work ran outside the actor).
    Polled(TronGridPoll),
}

/// What one full-node poll achieved.
#[derive(Debug, Default)]
pub struct FullNodePoll {
    /// Last block read completely with confirmed transfers, if it moved.
    pub cursor: Option<i64>,
    /// Last block read for "seen" (unconfirmed) transfers.
    pub seen_upto: Option<i64>,
    pub head: Option<i64>,
    /// Block time up to which everything confirmed was read.
    pub position: Option<i64>,
    /// More confirmed blocks are waiting: poll again at once.
    pub behind: bool,
    pub fault: Option<ScanFault>,
}

pub enum FullNodeMsg {
    /// Time to poll.
    Tick,
    /// A poll finished.
    Polled(FullNodePoll),
}

pub enum DemoChainMsg {
    /// Send `amount` to `to` on the demo chain (seen at once, confirmed a moment later).
    Pay {
        to: String,
        amount: Money,
        reply: RpcReplyPort<Result<Ingested, PaymentsError>>,
    },
    /// A demo transfer's confirmation time has come.
    Confirm(Box<crate::store::NewTransfer>),
    /// Move the demo chain's read position to now.
    Advance,
}

/// An upstream problem, with a bounded `kind` for metrics.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ScanFault {
    pub kind: &'static str,
    pub message: String,
}

impl ScanFault {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        ScanFault {
            kind,
            message: message.into(),
        }
    }
}

impl From<PaymentsError> for ScanFault {
    fn from(e: PaymentsError) -> Self {
        ScanFault::new("store", e.to_string())
    }
}

/// Why the payment pipeline ([`crate::payments::Payments`]) could not place a transfer; it
/// travels in the demo chain's reply.
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("order service: {0}")]
    Orders(#[from] OrderError),
    #[error(transparent)]
    Actor(#[from] ActorCallError),
}
