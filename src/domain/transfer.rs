//! What became of a transfer seen on chain.

use serde::{Deserialize, Serialize};

/// The outcome of a transfer: `Pending` until it is placed, then exactly one of the others.
/// Every placement is conditional on the transfer still being `Pending` (or, for an operator's
/// assignment, set aside), so a transfer reported twice is placed once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferOutcome {
    /// Recorded, not placed yet (unconfirmed, or left over by a crash before placing).
    Pending,
    /// Paid the pending order whose unique amount it carries.
    Matched,
    /// An operator assigned it to an order by hand.
    Assigned,
    /// Came after its order's window and was credited to the customer's balance.
    Late,
    /// Came after its order's window and waits for an operator's decision.
    Review,
    /// Pays nothing we know; kept for operators.
    Unmatched,
}

string_enum!(TransferOutcome, "transfer outcome", {
    Pending => "pending",
    Matched => "matched",
    Assigned => "assigned",
    Late => "late",
    Review => "review",
    Unmatched => "unmatched",
});

impl TransferOutcome {
    /// Set aside for an operator: the only placed outcomes an operator may still assign.
    pub fn is_set_aside(self) -> bool {
        matches!(self, TransferOutcome::Unmatched | TransferOutcome::Review)
    }

    /// The outcomes a transfer can be listed by, for error messages.
    pub fn listing() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|o| o.as_str()).collect();
        names.join(", ")
    }
}

/// Where a transfer ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Seen but not yet confirmed; placed once it is.
    Confirming,
    /// Paid this order.
    Paid,
    /// Paid an order after its window: credited to the customer's balance.
    LateCredited,
    /// Paid an order after its window: waiting for an operator.
    Review,
    /// Matches no order: kept for operators.
    Unmatched,
    /// Reported before and already placed: nothing changed.
    Duplicate,
}

impl Placement {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Placement::Confirming => "confirming",
            Placement::Paid => "paid",
            Placement::LateCredited => "late_credited",
            Placement::Review => "review",
            Placement::Unmatched => "unmatched",
            Placement::Duplicate => "duplicate",
        }
    }
}

/// What ingesting one transfer did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Ingested {
    pub transfer_id: i64,
    pub placement: Placement,
    pub order_id: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::TransferOutcome;

    #[test]
    fn text_forms_round_trip() {
        for o in TransferOutcome::ALL {
            assert_eq!(o.as_str().parse::<TransferOutcome>().unwrap(), *o);
        }
        assert!("Matched".parse::<TransferOutcome>().is_err());
        assert_eq!(
            TransferOutcome::listing(),
            "pending, matched, assigned, late, review, unmatched"
        );
    }
}
