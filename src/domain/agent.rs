//! Agents (resellers): their status and the moves between statuses.
//!
//! ```text
//! pending ──> active <──> suspended
//!    └──────> rejected
//! ```
//!
//! An agent applies through the bot (`pending`) or is created by an operator (`active`). Only an
//! `active` agent earns commissions on new orders, and only its tokens and sessions work.

use serde::{Deserialize, Serialize};

/// Where an agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Applied, waiting for an operator.
    Pending,
    /// Earns commissions; its tokens work.
    Active,
    /// Stopped for now; may be made active again.
    Suspended,
    /// Refused; final.
    Rejected,
}

string_enum!(AgentStatus, "agent status", {
    Pending => "pending",
    Active => "active",
    Suspended => "suspended",
    Rejected => "rejected",
});

/// A status change the agent state machine refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an agent cannot go from {from} to {to}")]
pub struct IllegalAgentTransition {
    pub from: AgentStatus,
    pub to: AgentStatus,
}

impl AgentStatus {
    /// Checks a status change; staying the same is always allowed.
    pub fn check_transition(self, to: AgentStatus) -> Result<(), IllegalAgentTransition> {
        use AgentStatus::*;
        let allowed = self == to
            || matches!(
                (self, to),
                (Pending, Active | Rejected) | (Active, Suspended) | (Suspended, Active)
            );
        if allowed {
            Ok(())
        } else {
            Err(IllegalAgentTransition { from: self, to })
        }
    }
}

/// An agent's referral link: `https://t.me/<bot>?start=ref_<code>`.
pub fn referral_link(bot_username: &str, code: &str) -> String {
    format!("https://t.me/{bot_username}?start=ref_{code}")
}

/// A new random referral code: 8 lowercase letters and digits without look-alikes (no i, l,
/// o, 0, 1).
pub fn new_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..8)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::AgentStatus::{self, *};

    #[test]
    fn the_agent_state_machine() {
        let allowed = [
            (Pending, Active),
            (Pending, Rejected),
            (Active, Suspended),
            (Suspended, Active),
        ];
        for from in AgentStatus::ALL {
            for to in AgentStatus::ALL {
                let expected = from == to || allowed.contains(&(*from, *to));
                assert_eq!(
                    from.check_transition(*to).is_ok(),
                    expected,
                    "{from} -> {to}"
                );
            }
        }
        assert_eq!("suspended".parse::<AgentStatus>(), Ok(Suspended));
        assert!("flying".parse::<AgentStatus>().is_err());
    }
}
