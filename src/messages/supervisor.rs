//! Messages of the [`Supervisor`](crate::supervision::Supervisor) actor.

use ractor::RpcReplyPort;

use crate::supervision::SupervisionError;

pub enum SupervisorMsg {
    /// Restart one child now, on an operator's request: stop it gracefully and start it again.
    /// Counted like any restart, but not against the failure budget.
    Restart {
        child: String,
        reply: RpcReplyPort<Result<(), SupervisionError>>,
    },
    /// Start a child whose backoff delay has passed; ignored when `generation` is stale (the
    /// child was started by other means meanwhile).
    StartChild { child: String, generation: u64 },
}
