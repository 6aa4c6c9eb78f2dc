//! Outbox events: the facts a settlement (or an agent approval, or a payment seen on chain)
//! queues in the same transaction as the change that caused them, for the notifier and the
//! callback worker to deliver after it commits.
//!
//! Each event is one variant; its JSON form (`{"event": "order_paid", ...}`) is what the outbox
//! row stores, so the writers and the readers share this one type instead of field names. Who
//! receives an event ([`Audience`], the row's `kind`) and the key that makes queueing it
//! idempotent ([`OutboxEvent::dedupe_key`]) follow from the variant, so a replayed settlement
//! never queues the same fact twice.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::OrderStatus;

/// Who an outbox row is for: its `kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// The customer's Telegram chat, in their language.
    Customer,
    /// The operators' chats (`telegram.operator_chat_ids`).
    Operator,
    /// The merchant's server (`callbacks.url`).
    Callback,
}

string_enum!(Audience, "outbox audience", {
    Customer => "customer",
    Operator => "operator",
    Callback => "callback",
});

/// One queued fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum OutboxEvent {
    /// A payment for the order was seen on chain and is confirming.
    PaymentSeen {
        order_id: i64,
        user_id: i64,
        transfer_id: i64,
    },
    /// The order was paid (a service order is then in progress).
    OrderPaid {
        order_id: i64,
        user_id: i64,
    },
    /// Digital goods were delivered; the text reads the delivery from the order.
    OrderDelivered {
        order_id: i64,
        user_id: i64,
    },
    /// A top-up reached the balance.
    BalanceCredited {
        order_id: i64,
        user_id: i64,
    },
    OrderExpired {
        order_id: i64,
        user_id: i64,
    },
    OrderCancelled {
        order_id: i64,
        user_id: i64,
    },
    /// A transfer that came after the order's window was credited to the balance.
    LatePaymentCredited {
        order_id: i64,
        user_id: i64,
        transfer_id: i64,
    },
    /// An operator moved a paid order along (delivered, completed, refunded, ...).
    OrderStatus {
        order_id: i64,
        user_id: i64,
        status: OrderStatus,
    },
    /// An agent became active: their referral link is sent to them.
    AgentApproved {
        agent_id: i64,
        user_id: i64,
    },
    /// A paid service order waits for the operators.
    ServiceRequest {
        order_id: i64,
    },
    /// A paid digital order found too little stock; an operator delivers by hand.
    StockExhausted {
        order_id: i64,
    },
    /// A late payment waits for an operator's decision.
    LatePaymentReview {
        transfer_id: i64,
        order_id: Option<i64>,
    },
    /// A transfer that pays nothing we know (above the dust threshold).
    UnmatchedTransfer {
        transfer_id: i64,
    },
    /// A Stars payment that paid no order (no such order, another user's, a wrong amount, an
    /// order no longer pending): it waits for an operator, who can refund it.
    StarsPaymentUnmatched {
        payment_id: i64,
    },
    /// A credited Stars payment that Telegram's Stars transactions do not list (found by the
    /// reconciliation): an operator checks it.
    StarsTransactionMissing {
        payment_id: i64,
    },
    /// A customer asked for help with a payment (/paysupport).
    SupportRequest {
        request_id: i64,
        user_id: i64,
    },
    /// The merchant's callback of an order reaching a status; its `event` is `order.<status>`.
    #[serde(untagged)]
    Callback(OrderCallback),
}

/// A merchant callback: the order reached `status` at `at` (Unix ms). The body sent is built
/// from the order as it stands when the callback is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCallback {
    #[serde(rename = "event", with = "callback_name")]
    pub status: OrderStatus,
    pub order_id: i64,
    pub at: i64,
}

impl OrderCallback {
    /// The event name merchants see: `order.paid`, `order.expired`, ...
    pub fn name(&self) -> String {
        format!("order.{}", self.status)
    }
}

mod callback_name {
    use super::*;

    pub fn serialize<S: Serializer>(status: &OrderStatus, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("order.{status}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OrderStatus, D::Error> {
        let name = String::deserialize(d)?;
        name.strip_prefix("order.")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| serde::de::Error::custom(format!("unknown callback event `{name}`")))
    }
}

impl OutboxEvent {
    /// Who receives it.
    pub fn audience(&self) -> Audience {
        use OutboxEvent::*;
        match self {
            PaymentSeen { .. }
            | OrderPaid { .. }
            | OrderDelivered { .. }
            | BalanceCredited { .. }
            | OrderExpired { .. }
            | OrderCancelled { .. }
            | LatePaymentCredited { .. }
            | OrderStatus { .. }
            | AgentApproved { .. } => Audience::Customer,
            ServiceRequest { .. }
            | StockExhausted { .. }
            | LatePaymentReview { .. }
            | UnmatchedTransfer { .. }
            | StarsPaymentUnmatched { .. }
            | StarsTransactionMissing { .. }
            | SupportRequest { .. } => Audience::Operator,
            Callback(_) => Audience::Callback,
        }
    }

    /// The key under which it is queued at most once. These keys are stored in existing
    /// databases: changing one would let a replay queue a fact a second time.
    pub fn dedupe_key(&self) -> String {
        use OutboxEvent::*;
        match self {
            PaymentSeen { transfer_id, .. } => format!("seen:{transfer_id}"),
            OrderPaid { order_id, .. } => format!("paid:{order_id}"),
            OrderDelivered { order_id, .. } => format!("delivered:{order_id}"),
            BalanceCredited { order_id, .. } => format!("topup:{order_id}"),
            OrderExpired { order_id, .. } => format!("order_expired:{order_id}"),
            OrderCancelled { order_id, .. } => format!("order_cancelled:{order_id}"),
            LatePaymentCredited { transfer_id, .. } => format!("late:{transfer_id}"),
            OrderStatus {
                order_id, status, ..
            } => format!("status:{order_id}:{status}"),
            AgentApproved { agent_id, .. } => format!("agent_approved:{agent_id}"),
            ServiceRequest { order_id } => format!("service:{order_id}"),
            StockExhausted { order_id } => format!("stock:{order_id}"),
            LatePaymentReview { transfer_id, .. } => format!("review:{transfer_id}"),
            UnmatchedTransfer { transfer_id } => format!("unmatched:{transfer_id}"),
            StarsPaymentUnmatched { payment_id } => format!("stars_unmatched:{payment_id}"),
            StarsTransactionMissing { payment_id } => format!("stars_missing:{payment_id}"),
            SupportRequest { request_id, .. } => format!("support:{request_id}"),
            Callback(c) => format!("callback:{}:{}", c.name(), c.order_id),
        }
    }

    /// The order the event is about, if any.
    pub fn order_id(&self) -> Option<i64> {
        use OutboxEvent::*;
        match self {
            PaymentSeen { order_id, .. }
            | OrderPaid { order_id, .. }
            | OrderDelivered { order_id, .. }
            | BalanceCredited { order_id, .. }
            | OrderExpired { order_id, .. }
            | OrderCancelled { order_id, .. }
            | LatePaymentCredited { order_id, .. }
            | OrderStatus { order_id, .. }
            | ServiceRequest { order_id }
            | StockExhausted { order_id } => Some(*order_id),
            LatePaymentReview { order_id, .. } => *order_id,
            Callback(c) => Some(c.order_id),
            AgentApproved { .. }
            | UnmatchedTransfer { .. }
            | StarsPaymentUnmatched { .. }
            | StarsTransactionMissing { .. }
            | SupportRequest { .. } => None,
        }
    }

    /// The JSON stored in the outbox row.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("outbox events serialize")
    }

    /// Reads a stored row back.
    pub fn from_json(payload: &str) -> Result<OutboxEvent, serde_json::Error> {
        serde_json::from_str(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_forms_read_back_as_written() {
        // the rows below are the forms earlier versions stored; they must still read
        let rows = [
            (
                r#"{"event":"order_paid","order_id":5,"user_id":2}"#,
                OutboxEvent::OrderPaid {
                    order_id: 5,
                    user_id: 2,
                },
            ),
            (
                r#"{"event":"order_status","order_id":5,"user_id":2,"status":"refunded"}"#,
                OutboxEvent::OrderStatus {
                    order_id: 5,
                    user_id: 2,
                    status: OrderStatus::Refunded,
                },
            ),
            (
                r#"{"event":"unmatched_transfer","transfer_id":9,"order_id":null}"#,
                OutboxEvent::UnmatchedTransfer { transfer_id: 9 },
            ),
            (
                r#"{"event":"stock_exhausted","order_id":77,"user_id":3}"#,
                OutboxEvent::StockExhausted { order_id: 77 },
            ),
            (
                r#"{"event":"order.paid","order_id":5,"at":1700000000000}"#,
                OutboxEvent::Callback(OrderCallback {
                    status: OrderStatus::Paid,
                    order_id: 5,
                    at: 1_700_000_000_000,
                }),
            ),
        ];
        for (json, event) in rows {
            assert_eq!(OutboxEvent::from_json(json).unwrap(), event, "{json}");
            assert_eq!(
                OutboxEvent::from_json(&event.to_json()).unwrap(),
                event,
                "{json}"
            );
        }
    }

    #[test]
    fn callbacks_keep_their_merchant_names_and_keys() {
        let e = OutboxEvent::Callback(OrderCallback {
            status: OrderStatus::InProgress,
            order_id: 4,
            at: 1,
        });
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["event"], "order.in_progress");
        assert_eq!(e.dedupe_key(), "callback:order.in_progress:4");
        assert_eq!(e.audience(), Audience::Callback);
    }

    #[test]
    fn unknown_or_broken_rows_are_errors() {
        for bad in [
            r#"{"event":"order_teleported","order_id":1}"#,
            r#"{"event":"order.pending_paymentx","order_id":1,"at":1}"#,
            r#"{"event":"order_paid"}"#,
            "not json",
        ] {
            assert!(OutboxEvent::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_and_audiences_follow_the_variant() {
        let paid = OutboxEvent::OrderPaid {
            order_id: 8,
            user_id: 1,
        };
        assert_eq!(paid.dedupe_key(), "paid:8");
        assert_eq!(paid.audience(), Audience::Customer);
        let review = OutboxEvent::LatePaymentReview {
            transfer_id: 3,
            order_id: Some(8),
        };
        assert_eq!(review.dedupe_key(), "review:3");
        assert_eq!(review.audience(), Audience::Operator);
        assert_eq!(review.order_id(), Some(8));
    }
}
