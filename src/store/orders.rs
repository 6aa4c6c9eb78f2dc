//! Orders and their unique-amount allocations.
//!
//! An order and the allocation of its payable amount are written in one transaction: the
//! order's id first, then the amount the payment matcher hands out for that id, the order row
//! with it, and the allocation, guarded by the unique index on live allocations. If another instance holds that amount already, the
//! matcher is told and asked again; the customer never sees an amount the database did not accept.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use sqlx::FromRow;

use super::tx::Tx;
use super::{AuditRecord, Page, Store, StoreError, StoreResult, in_tx, on_pool};
use crate::domain::allocation::Allocation;
use crate::domain::{Money, OrderStatus, PaymentMethod, ProductKind, now_ms};

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct Order {
    pub id: i64,
    pub user_id: i64,
    pub product_id: Option<i64>,
    #[sqlx(try_from = "String")]
    pub kind: ProductKind,
    pub quantity: i64,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String)]
    pub price: Money,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String)]
    pub payable_amount: Money,
    pub chain: String,
    pub token: String,
    pub wallet: Option<String>,
    /// `usdt` or `stars`. A Stars order's `price` and `payable_amount` are 0: it costs `stars`.
    #[sqlx(try_from = "String")]
    pub payment_method: PaymentMethod,
    /// Whole Telegram Stars a Stars order costs.
    pub stars: Option<i64>,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    pub request_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    pub agent_id: Option<i64>,
    pub paid_from_balance: bool,
    pub transfer_id: Option<i64>,
    pub expires_at: i64,
    pub paid_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! order_columns {
    () => {
        "id, user_id, product_id, kind, quantity, price, payable_amount, chain, token, wallet, payment_method, stars, status, \
         request_text, delivery, agent_id, paid_from_balance, transfer_id, expires_at, paid_at, \
         created_at, updated_at"
    };
}
pub(crate) use order_columns;

/// What a new order is for.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub user_id: i64,
    pub product_id: Option<i64>,
    pub kind: ProductKind,
    pub quantity: i64,
    pub price: Money,
    pub chain: String,
    pub token: String,
    pub request_text: Option<String>,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The owner of unique amounts, asked for one while the order's transaction is open.
pub trait AmountSource: Send + Sync {
    /// Error returned when no amount can be handed out (all slots busy).
    type Error: Send;
    /// An amount for `order_id` at `price`.
    fn allocate(
        &self,
        order_id: i64,
        price: Money,
    ) -> BoxFuture<'_, Result<Allocation, Self::Error>>;
    /// The database already holds `amount` (another instance gave it out): never offer it again
    /// while it is live there.
    fn taken_elsewhere(&self, allocation: &Allocation);
}

/// Outcome of creating an order.
#[derive(Debug)]
pub enum CreateOrder<E> {
    Created(Box<Order>),
    /// The amount source had nothing to give; nothing was written.
    Unavailable(E),
}

/// How many taken amounts a single order creation tolerates before giving up.
const MAX_AMOUNT_CONFLICTS: usize = 16;

/// Filters for listing orders.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub user_id: Option<i64>,
    pub agent_id: Option<i64>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl Store {
    /// Creates a pending order with a unique payable amount from `amounts`, in one transaction.
    /// The referring agent of the user (if any and active) is attributed to the order.
    pub async fn create_order<S: AmountSource>(
        &self,
        new: &NewOrder,
        amounts: &S,
        who: &str,
    ) -> StoreResult<CreateOrder<S::Error>> {
        let now = now_ms();
        let created = in_tx!(self, tx => {
            // the id first, so the amount is allocated for it and the order row is written
            // once, already with its amount: SQLite's writer holds the database for the
            // whole transaction, so every statement saved is throughput (docs/BENCHMARKS.md)
            let next_id = match Tx::from(&mut *tx) {
                // the transaction is the only writer (begin immediate): max + 1 stays free
                Tx::Sqlite(_) => "select coalesce(max(id), 0) + 1 from orders",
                Tx::Postgres(_) => "select nextval(pg_get_serial_sequence('orders', 'id'))",
            };
            let order_id: i64 = sqlx::query_scalar(next_id)
                .fetch_one(&mut *tx)
                .await?;
            let mut assigned = match amounts.allocate(order_id, new.price).await {
                Ok(a) => a,
                // dropping the transaction rolls everything back
                Err(e) => return Ok(CreateOrder::Unavailable(e)),
            };
            let mut order: Order = sqlx::query_as(concat!(
                "insert into orders (id, user_id, product_id, kind, quantity, price, payable_amount, \
                 wallet, chain, token, status, request_text, agent_id, expires_at, created_at, updated_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending_payment', $11, \
                 (select a.id from users u join agents a on a.id = u.referred_by_agent_id \
                  where u.id = $2 and a.status = 'active'), $12, $13, $13) returning ",
                order_columns!()
            ))
            .bind(order_id)
            .bind(new.user_id)
            .bind(new.product_id)
            .bind(new.kind.as_str())
            .bind(new.quantity)
            .bind(new.price.micros())
            .bind(assigned.amount.micros())
            .bind(&assigned.wallet)
            .bind(&new.chain)
            .bind(&new.token)
            .bind(&new.request_text)
            .bind(assigned.expires_at)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let mut conflicts = 0;
            let mut released = false;
            loop {
                let inserted: Option<i64> = sqlx::query_scalar(
                    "insert into allocations (chain, token, wallet, amount, order_id, state, expires_at, \
                     created_at) values ($1, $2, $3, $4, $5, 'pending', $6, $7) \
                     on conflict do nothing returning id",
                )
                .bind(&new.chain)
                .bind(&new.token)
                .bind(&assigned.wallet)
                .bind(assigned.amount.micros())
                .bind(order_id)
                .bind(assigned.expires_at)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if inserted.is_some() {
                    break;
                }
                if !released {
                    // a quarantine that is over frees its amount in the database too; then the
                    // same amount is tried once more
                    released = sqlx::query(
                        "update allocations set state = 'released' where chain = $1 and token = $2 \
                         and wallet = $3 and amount = $4 and state = 'quarantined' and quarantine_until <= $5",
                    )
                    .bind(&new.chain)
                    .bind(&new.token)
                    .bind(&assigned.wallet)
                    .bind(assigned.amount.micros())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        > 0;
                    if released {
                        continue;
                    }
                }
                amounts.taken_elsewhere(&assigned);
                conflicts += 1;
                if conflicts >= MAX_AMOUNT_CONFLICTS {
                    return Err(StoreError::Conflict(
                        "no free payable amount could be stored for this order".to_owned(),
                    ));
                }
                assigned = match amounts.allocate(order_id, new.price).await {
                    Ok(a) => a,
                    Err(e) => return Ok(CreateOrder::Unavailable(e)),
                };
                released = false;
                order = sqlx::query_as(concat!(
                    "update orders set payable_amount = $2, wallet = $3, expires_at = $4 where id = $1 returning ",
                    order_columns!()
                ))
                .bind(order_id)
                .bind(assigned.amount.micros())
                .bind(&assigned.wallet)
                .bind(assigned.expires_at)
                .fetch_one(&mut *tx)
                .await?;
            }
            Tx::from(&mut *tx).append_audit(&AuditRecord::new(who, "order.created", "order", order.id).after(&order)).await?;
            order
        });
        Ok(CreateOrder::Created(Box::new(created)))
    }

    pub async fn order(&self, id: i64) -> StoreResult<Order> {
        on_pool!(self, pool => {
            sqlx::query_as(concat!("select ", order_columns!(), " from orders where id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
        .ok_or(StoreError::NotFound("order"))
    }

    /// Newest first.
    pub async fn list_orders(&self, f: &OrderFilter, page: Page) -> StoreResult<Vec<Order>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select ",
                order_columns!(),
                " from orders where ($1 is null or status = $1) and ($2 is null or user_id = $2) \
                 and ($3 is null or agent_id = $3) and ($4 is null or created_at >= $4) \
                 and ($5 is null or created_at < $5) order by id desc limit $6 offset $7"
            ))
            .bind(f.status.map(OrderStatus::as_str))
            .bind(f.user_id)
            .bind(f.agent_id)
            .bind(f.since)
            .bind(f.until)
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn count_orders_of_user(&self, user_id: i64) -> StoreResult<i64> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("select count(*) from orders where user_id = $1")
                .bind(user_id)
                .fetch_one(pool)
                .await?
        }))
    }

    /// Every order still waiting for payment (their actors are re-spawned at start).
    pub async fn pending_orders(&self) -> StoreResult<Vec<Order>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select ",
                order_columns!(),
                " from orders where status = 'pending_payment' order by id"
            ))
            .fetch_all(pool)
            .await?
        }))
    }

    /// Remembers the message that shows an order's payment buttons (the latest one wins).
    pub async fn save_payment_message(
        &self,
        order_id: i64,
        chat_id: i64,
        message_id: i64,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "insert into payment_messages (order_id, chat_id, message_id, created_at) \
                 values ($1, $2, $3, $4) on conflict (order_id) do update \
                 set chat_id = excluded.chat_id, message_id = excluded.message_id, \
                 created_at = excluded.created_at",
            )
            .bind(order_id)
            .bind(chat_id)
            .bind(message_id)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// The chat and message that show an order's payment buttons, if any are still shown.
    pub async fn payment_message(&self, order_id: i64) -> StoreResult<Option<(i64, i64)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as("select chat_id, message_id from payment_messages where order_id = $1")
                .bind(order_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Forgets an order's payment message once its buttons are gone.
    pub async fn forget_payment_message(&self, order_id: i64) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query("delete from payment_messages where order_id = $1")
                .bind(order_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }
}
