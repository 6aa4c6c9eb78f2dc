//! Messages of the bot's actors: the [router](crate::actors::bot_router), the
//! [session actors](crate::actors::session) and the [Telegram intake](crate::actors::telegram_intake).

use std::time::Instant;

use ractor::RpcReplyPort;
use teloxide::types::Update;

pub enum RouterMsg {
    /// An update from Telegram (polling, webhook or simulator), to be routed to its user.
    Incoming(Box<Update>),
    /// How many session actors are alive.
    Sessions(RpcReplyPort<usize>),
    /// Stop sessions idle longer than the idle timeout (sent by the router's own timer).
    Sweep,
}

pub enum SessionMsg {
    /// An update of this session's user, with the time it was received.
    Update(Box<Update>, Instant),
}

/// What the intake reports about itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IntakeStatus {
    pub mode: &'static str,
    pub updates: u64,
    pub last_error: Option<String>,
}

pub enum IntakeMsg {
    /// Current counters.
    Status(RpcReplyPort<IntakeStatus>),
    /// The polling task ended (error or stop); restart it after a pause.
    PollingEnded(String),
}
