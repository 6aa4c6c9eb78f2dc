//! Messages of the chain scanners ([TronGrid](crate::actors::trongrid_scanner),
//! [full node](crate::actors::fullnode_scanner)) and the [demo chain](crate::actors::demo_chain).

use std::collections::{HashMap, HashSet};

use ractor::RpcReplyPort;

use crate::domain::Money;
use crate::payments::scan::ScanFault;
use crate::payments::{Ingested, PaymentsError};

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
