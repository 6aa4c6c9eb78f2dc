//! Roles of API tokens and dashboard accounts.

use serde::{Deserialize, Serialize};

/// What a credential may do; the permission matrix lives with the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including tokens and subsystem restarts.
    Admin,
    /// Runs the shop: catalog, orders, payments, agents.
    Operator,
    /// A reseller: sees only its own referrals, orders and commissions.
    Agent,
    /// Machine integrations: read catalog, create orders, read payments.
    Service,
}

string_enum!(Role, "role", {
    Admin => "admin",
    Operator => "operator",
    Agent => "agent",
    Service => "service",
});
