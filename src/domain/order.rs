//! Order and product kinds, and the order state machine.
//!
//! ```text
//! pending_payment ──> paid ──> delivered ───> completed
//!        │              ├────> in_progress ─> completed
//!        │              └────> completed (top-ups)
//!        ├──> expired         paid / delivered / in_progress / completed ──> refunded
//!        └──> cancelled
//! ```
//! Every change goes through [`OrderStatus::check_transition`], so an illegal move is refused with
//! the same error wherever it is attempted (bot, API, order actor).

use serde::{Deserialize, Serialize};

/// What a product is, which decides how a paid order is fulfilled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProductKind {
    /// Work done by the operators; a paid order becomes a request in their queue.
    Service,
    /// Goods delivered from uploaded stock items (keys, accounts, files).
    Digital,
    /// Credits the paid amount to the customer's balance.
    Topup,
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Delivered,
    InProgress,
    Completed,
    Expired,
    Cancelled,
    Refunded,
}

/// An order status change that the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an order cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

string_enum!(ProductKind, "product kind", {
    Service => "service",
    Digital => "digital",
    Topup => "topup",
});

string_enum!(OrderStatus, "order status", {
    PendingPayment => "pending_payment",
    Paid => "paid",
    Delivered => "delivered",
    InProgress => "in_progress",
    Completed => "completed",
    Expired => "expired",
    Cancelled => "cancelled",
    Refunded => "refunded",
});

impl OrderStatus {
    /// Whether the state machine allows moving from `self` to `to`.
    pub fn can_become(self, to: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, to),
            (PendingPayment, Paid | Expired | Cancelled)
                | (Paid, Delivered | InProgress | Completed | Refunded)
                | (Delivered | InProgress, Completed | Refunded)
                | (Completed, Refunded)
        )
    }

    pub fn check_transition(self, to: OrderStatus) -> Result<(), IllegalTransition> {
        if self.can_become(to) {
            Ok(())
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// No further change is possible.
    pub fn is_final(self) -> bool {
        OrderStatus::ALL.iter().all(|&to| !self.can_become(to))
    }

    /// The customer has paid for this order (counts as revenue).
    pub fn is_paid(self) -> bool {
        use OrderStatus::*;
        matches!(self, Paid | Delivered | InProgress | Completed)
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;

    #[test]
    fn the_happy_paths_are_allowed() {
        for (a, b) in [
            (PendingPayment, Paid),
            (Paid, Delivered),
            (Delivered, Completed),
            (Paid, InProgress),
            (InProgress, Completed),
            (Paid, Completed),
            (PendingPayment, Expired),
            (PendingPayment, Cancelled),
            (Completed, Refunded),
        ] {
            assert!(a.check_transition(b).is_ok(), "{a} -> {b}");
        }
    }

    #[test]
    fn illegal_moves_are_refused_with_both_ends_named() {
        let err = Expired.check_transition(Paid).unwrap_err();
        assert_eq!(err.to_string(), "an order cannot go from expired to paid");
        for (a, b) in [
            (PendingPayment, Delivered),
            (PendingPayment, Completed),
            (Paid, PendingPayment),
            (Cancelled, Paid),
            (Refunded, Completed),
            (Completed, InProgress),
            (Paid, Paid),
        ] {
            assert!(a.check_transition(b).is_err(), "{a} -> {b}");
        }
    }

    #[test]
    fn final_states_are_final() {
        assert!(Expired.is_final() && Cancelled.is_final() && Refunded.is_final());
        assert!(!PendingPayment.is_final() && !Completed.is_final());
    }

    #[test]
    fn names_round_trip() {
        for s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>().unwrap(), *s);
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert!("PAID".parse::<OrderStatus>().is_err());
        assert_eq!(
            "digital".parse::<ProductKind>().unwrap(),
            ProductKind::Digital
        );
    }
}
