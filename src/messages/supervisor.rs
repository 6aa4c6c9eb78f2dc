//! Messages of the [`Supervisor`](crate::supervision::Supervisor) actor.

use ractor::RpcReplyPort;

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

/// Errors of supervision and of the registry's restart requests.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SupervisionError {
    #[error("no subsystem named {0:?}")]
    UnknownSubsystem(String),
    #[error("{0}")]
    StartFailed(String),
    #[error("the supervisor of {0:?} is not running")]
    SupervisorDown(String),
    #[error("restarting {0:?} did not finish in time")]
    Timeout(String),
    #[error("{child} exceeded its restart budget: {reason}")]
    Escalated { child: String, reason: String },
}
