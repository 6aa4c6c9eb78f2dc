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
//!
//! What may be ordered at all is decided here too, once: [`product_order_price`] and
//! [`check_topup`] hold the rules on quantities, stock and top-up amounts that the bot, the API
//! (and the dashboard through it) apply alike; each edge only translates [`OrderRuleError`] into
//! its own form (a bot text, a 422).

use serde::{Deserialize, Serialize};

use super::Money;

/// Most items of one product in one order.
pub const MAX_QUANTITY: i64 = 100;
/// Smallest top-up: 1 USDT (the error text below names both limits).
pub const TOPUP_MIN: Money = Money::from_micros(1_000_000);
/// Largest top-up: 10,000 USDT.
pub const TOPUP_MAX: Money = Money::from_micros(10_000_000_000);

/// What the order rules need to know about a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductOffer {
    pub kind: ProductKind,
    pub price: Money,
    /// Hidden products are not on sale.
    pub hidden: bool,
    /// Unsold stock items (digital goods only; `None` for the others).
    pub stock: Option<i64>,
}

/// An order the rules refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderRuleError {
    #[error("the product is not on sale")]
    NotOnSale,
    #[error("a top-up is ordered with an amount, not a quantity")]
    TopupNeedsAmount,
    #[error("the quantity must be between 1 and {MAX_QUANTITY}")]
    QuantityOutOfRange,
    #[error("only digital goods come in quantities")]
    QuantityNotOffered,
    #[error("not enough stock: {available} left")]
    NotEnoughStock { available: i64 },
    #[error("the total price is too large")]
    PriceTooLarge,
    #[error("a top-up is between 1 and 10000 USDT")]
    TopupOutOfRange,
}

/// The price of `quantity` items of `product`, if the rules allow that order.
pub fn product_order_price(product: &ProductOffer, quantity: i64) -> Result<Money, OrderRuleError> {
    if product.hidden {
        return Err(OrderRuleError::NotOnSale);
    }
    if product.kind == ProductKind::Topup {
        return Err(OrderRuleError::TopupNeedsAmount);
    }
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(OrderRuleError::QuantityOutOfRange);
    }
    if product.kind != ProductKind::Digital && quantity != 1 {
        return Err(OrderRuleError::QuantityNotOffered);
    }
    if product.kind == ProductKind::Digital {
        let available = product.stock.unwrap_or(0);
        if available < quantity {
            return Err(OrderRuleError::NotEnoughStock { available });
        }
    }
    product
        .price
        .checked_mul(quantity)
        .ok_or(OrderRuleError::PriceTooLarge)
}

/// Whether `amount` may be topped up.
pub fn check_topup(amount: Money) -> Result<(), OrderRuleError> {
    if amount < TOPUP_MIN || amount > TOPUP_MAX {
        return Err(OrderRuleError::TopupOutOfRange);
    }
    Ok(())
}

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

    fn offer(kind: ProductKind, stock: Option<i64>) -> ProductOffer {
        ProductOffer {
            kind,
            price: Money::parse("2.5").unwrap(),
            hidden: false,
            stock,
        }
    }

    #[test]
    fn order_rules_price_what_may_be_ordered_and_refuse_the_rest() {
        let digital = offer(ProductKind::Digital, Some(3));
        assert_eq!(
            product_order_price(&digital, 3).unwrap().to_string(),
            "7.500000"
        );
        assert_eq!(
            product_order_price(&digital, 4),
            Err(OrderRuleError::NotEnoughStock { available: 3 })
        );
        for q in [0, -1, MAX_QUANTITY + 1] {
            assert_eq!(
                product_order_price(&offer(ProductKind::Digital, Some(1000)), q),
                Err(OrderRuleError::QuantityOutOfRange)
            );
        }
        let service = offer(ProductKind::Service, None);
        assert!(product_order_price(&service, 1).is_ok());
        assert_eq!(
            product_order_price(&service, 7),
            Err(OrderRuleError::QuantityNotOffered)
        );
        assert_eq!(
            product_order_price(&offer(ProductKind::Topup, None), 3),
            Err(OrderRuleError::TopupNeedsAmount)
        );
        let hidden = ProductOffer {
            hidden: true,
            ..digital
        };
        assert_eq!(
            product_order_price(&hidden, 1),
            Err(OrderRuleError::NotOnSale)
        );
        let dear = ProductOffer {
            price: Money::from_micros(i64::MAX / 2),
            ..offer(ProductKind::Digital, Some(10))
        };
        assert_eq!(
            product_order_price(&dear, 3),
            Err(OrderRuleError::PriceTooLarge)
        );
    }

    #[test]
    fn top_ups_are_between_one_and_ten_thousand_usdt() {
        assert!(check_topup(TOPUP_MIN).is_ok() && check_topup(TOPUP_MAX).is_ok());
        assert_eq!(
            check_topup(Money::ZERO),
            Err(OrderRuleError::TopupOutOfRange)
        );
        assert_eq!(
            check_topup(Money::from_micros(999_999)),
            Err(OrderRuleError::TopupOutOfRange)
        );
        assert_eq!(
            check_topup(Money::from_micros(10_000_000_001)),
            Err(OrderRuleError::TopupOutOfRange)
        );
        assert_eq!(
            OrderRuleError::TopupOutOfRange.to_string(),
            "a top-up is between 1 and 10000 USDT"
        );
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
