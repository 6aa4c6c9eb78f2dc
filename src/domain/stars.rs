//! Telegram Stars (currency `XTR`): the rules a Stars sale follows, wherever it is checked.
//!
//! Stars are whole numbers and never meet the micro-USDT [`super::Money`] columns: a product
//! carries its Stars price beside its USDT price, a Stars order keeps its price in `orders.stars`,
//! and a commission earned on a Stars sale is kept in Stars. Telegram names the order through the
//! invoice payload (`order:<id>`), which is no secret: every payment is checked against the
//! order it names ([`check_payment`]) before it pays anything.

use serde::{Deserialize, Serialize};

use super::{OrderStatus, ProductKind};

/// Telegram's currency code for Stars.
pub const CURRENCY: &str = "XTR";
/// Invoice title limit (characters).
pub const TITLE_MAX: usize = 32;
/// Invoice description limit (characters).
pub const DESCRIPTION_MAX: usize = 255;
/// Invoice payload limit (bytes).
pub const PAYLOAD_MAX: usize = 128;
/// Highest Stars price a product may have.
pub const MAX_STARS_PRICE: i64 = 100_000;

/// How an order is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// USDT: the unique amount on the chain, or the customer's balance.
    Usdt,
    /// Telegram Stars, through an invoice in the chat.
    Stars,
}

string_enum!(PaymentMethod, "payment method", {
    Usdt => "usdt",
    Stars => "stars",
});

/// The invoice payload that names an order.
pub fn invoice_payload(order_id: i64) -> String {
    format!("order:{order_id}")
}

/// The order an invoice payload names, if it is one of ours.
pub fn order_of_payload(payload: &str) -> Option<i64> {
    let id = payload.strip_prefix("order:")?;
    if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok().filter(|n| *n > 0)
}

/// `text` cut to `max` characters (with an ellipsis when cut), never empty.
pub fn fit_invoice_text(text: &str, max: usize, fallback: &str) -> String {
    let text = text.trim();
    let text = if text.is_empty() { fallback } else { text };
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// A product's Stars price that the shop's rules refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StarsPriceError {
    #[error(
        "this shop sells every digital good and service for Telegram Stars too: set stars_price"
    )]
    Required,
    #[error("top-ups are paid in USDT only: Telegram Stars cannot buy balance")]
    Topup,
    #[error("stars_price is a whole number of Stars from 1 to {MAX_STARS_PRICE}")]
    OutOfRange,
}

/// Whether a product of `kind` may carry `stars_price` when the shop `requires` one on every
/// digital good and service.
pub fn check_stars_price(
    kind: ProductKind,
    stars_price: Option<i64>,
    requires: bool,
) -> Result<(), StarsPriceError> {
    match (kind, stars_price) {
        (ProductKind::Topup, Some(_)) => Err(StarsPriceError::Topup),
        (ProductKind::Topup, None) => Ok(()),
        (_, None) if requires => Err(StarsPriceError::Required),
        (_, None) => Ok(()),
        (_, Some(n)) if !(1..=MAX_STARS_PRICE).contains(&n) => Err(StarsPriceError::OutOfRange),
        (_, Some(_)) => Ok(()),
    }
}

/// What a Stars payment (or its pre-checkout) is checked against: the order its payload names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StarsOrder {
    pub status: OrderStatus,
    pub method: PaymentMethod,
    /// Whole Stars the order costs.
    pub stars: Option<i64>,
    /// The Telegram user the order belongs to.
    pub telegram_id: i64,
}

/// Why a Stars payment does not pay the order its payload names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StarsMisfit {
    #[error("the payload names no order of this shop")]
    NoOrder,
    #[error("the order belongs to another user")]
    OtherUser,
    #[error("the order is not paid with Stars")]
    NotStars,
    #[error("the currency is not XTR")]
    Currency,
    #[error("the amount differs from the order's price in Stars")]
    Amount,
    #[error("the order is {0}, not waiting for payment")]
    NotPending(OrderStatus),
    #[error("the item is out of stock")]
    OutOfStock,
}

impl StarsMisfit {
    /// Short name for logs and the `stars_payments_total{outcome}` metric.
    pub fn code(self) -> &'static str {
        match self {
            StarsMisfit::NoOrder => "no_order",
            StarsMisfit::OtherUser => "other_user",
            StarsMisfit::NotStars => "not_stars",
            StarsMisfit::Currency => "currency",
            StarsMisfit::Amount => "amount",
            StarsMisfit::NotPending(_) => "not_pending",
            StarsMisfit::OutOfStock => "out_of_stock",
        }
    }
}

/// Whether a payment of `amount` in `currency` by `payer` pays `order`. Pre-checkout asks the
/// same question before Telegram takes the Stars; the stock is checked there besides.
pub fn check_payment(
    order: Option<&StarsOrder>,
    payer: i64,
    currency: &str,
    amount: i64,
) -> Result<(), StarsMisfit> {
    let order = order.ok_or(StarsMisfit::NoOrder)?;
    if order.telegram_id != payer {
        return Err(StarsMisfit::OtherUser);
    }
    if order.method != PaymentMethod::Stars {
        return Err(StarsMisfit::NotStars);
    }
    if currency != CURRENCY {
        return Err(StarsMisfit::Currency);
    }
    if order.stars != Some(amount) {
        return Err(StarsMisfit::Amount);
    }
    if order.status != OrderStatus::PendingPayment {
        return Err(StarsMisfit::NotPending(order.status));
    }
    Ok(())
}

/// An agent's commission on a Stars sale, in whole Stars (rounded down).
pub fn stars_commission(stars: i64, bps: u32) -> i64 {
    let c = i128::from(stars) * i128::from(bps) / 10_000;
    i64::try_from(c).unwrap_or(0).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_orders_and_nothing_else() {
        assert_eq!(invoice_payload(42), "order:42");
        assert_eq!(order_of_payload("order:42"), Some(42));
        for bad in [
            "order:",
            "order:0",
            "order:-1",
            "order:1x",
            "order: 1",
            "sub:alice:plan1",
            "order:99999999999999999999",
            "",
        ] {
            assert_eq!(order_of_payload(bad), None, "{bad:?}");
        }
        assert!(invoice_payload(i64::MAX).len() <= PAYLOAD_MAX);
    }

    #[test]
    fn invoice_texts_fit_telegrams_limits() {
        let long = "键".repeat(40);
        let title = fit_invoice_text(&long, TITLE_MAX, "x");
        assert_eq!(title.chars().count(), TITLE_MAX);
        assert!(title.ends_with('…'));
        assert_eq!(
            fit_invoice_text("  ", DESCRIPTION_MAX, "Order #1"),
            "Order #1"
        );
        assert_eq!(fit_invoice_text("Key", TITLE_MAX, "x"), "Key");
    }

    #[test]
    fn the_shop_rule_on_stars_prices() {
        use ProductKind::*;
        assert_eq!(
            check_stars_price(Digital, None, true),
            Err(StarsPriceError::Required)
        );
        assert_eq!(
            check_stars_price(Service, None, true),
            Err(StarsPriceError::Required)
        );
        assert!(check_stars_price(Digital, None, false).is_ok());
        assert!(check_stars_price(Topup, None, true).is_ok());
        assert_eq!(
            check_stars_price(Topup, Some(5), false),
            Err(StarsPriceError::Topup)
        );
        for n in [0, -3, MAX_STARS_PRICE + 1] {
            assert_eq!(
                check_stars_price(Digital, Some(n), false),
                Err(StarsPriceError::OutOfRange)
            );
        }
        assert!(check_stars_price(Service, Some(MAX_STARS_PRICE), true).is_ok());
    }

    #[test]
    fn a_payment_pays_only_the_pending_stars_order_of_its_payer_at_its_price() {
        let order = StarsOrder {
            status: OrderStatus::PendingPayment,
            method: PaymentMethod::Stars,
            stars: Some(100),
            telegram_id: 7,
        };
        assert_eq!(check_payment(Some(&order), 7, "XTR", 100), Ok(()));
        assert_eq!(
            check_payment(None, 7, "XTR", 100),
            Err(StarsMisfit::NoOrder)
        );
        assert_eq!(
            check_payment(Some(&order), 8, "XTR", 100),
            Err(StarsMisfit::OtherUser)
        );
        assert_eq!(
            check_payment(Some(&order), 7, "USD", 100),
            Err(StarsMisfit::Currency)
        );
        assert_eq!(
            check_payment(Some(&order), 7, "XTR", 99),
            Err(StarsMisfit::Amount)
        );
        let usdt = StarsOrder {
            method: PaymentMethod::Usdt,
            stars: None,
            ..order
        };
        assert_eq!(
            check_payment(Some(&usdt), 7, "XTR", 100),
            Err(StarsMisfit::NotStars)
        );
        let expired = StarsOrder {
            status: OrderStatus::Expired,
            ..order
        };
        assert_eq!(
            check_payment(Some(&expired), 7, "XTR", 100),
            Err(StarsMisfit::NotPending(OrderStatus::Expired))
        );
    }

    #[test]
    fn commissions_in_stars_round_down() {
        assert_eq!(stars_commission(100, 1000), 10);
        assert_eq!(stars_commission(99, 1000), 9);
        assert_eq!(stars_commission(5, 100), 0);
        assert_eq!(stars_commission(i64::MAX, 10_000), i64::MAX);
    }
}
