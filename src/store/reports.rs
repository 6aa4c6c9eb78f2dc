//! Figures for the dashboard's overview: revenue, orders, conversion, pending payments, and
//! daily series, computed in SQL both backends share (integer division buckets days).

use serde::Serialize;

use super::{Store, StoreResult, on_pool};
use crate::domain::Money;

const DAY_MS: i64 = 86_400_000;

/// Sales over a period.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Period {
    /// USDT revenue (sales paid in USDT or from the balance).
    #[schema(value_type = String)]
    pub revenue: Money,
    /// Telegram Stars revenue, in whole Stars: shown beside the USDT figure, never added to it.
    pub stars_revenue: i64,
    pub orders: i64,
    pub paid_orders: i64,
    /// Paid orders per order created, 0 to 1.
    pub conversion: f64,
}

/// One day of the series (day = Unix day number, UTC).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Day {
    pub day: i64,
    #[schema(value_type = String)]
    pub revenue: Money,
    /// Whole Stars.
    pub stars_revenue: i64,
    pub orders: i64,
    pub paid_orders: i64,
    /// Mean seconds from a paying transfer's block to its order being paid.
    pub detection_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Overview {
    pub today: Period,
    pub last_30_days: Period,
    pub pending_payments: i64,
    pub days: Vec<Day>,
}

/// Statuses that count as sold.
const PAID: &str = "('paid', 'delivered', 'in_progress', 'completed')";

impl Store {
    async fn period(&self, since: i64) -> StoreResult<Period> {
        let (orders, paid, revenue, stars): (i64, i64, i64, i64) = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "select (select count(*) from orders where created_at >= $1 and kind <> 'topup'), \
                 (select count(*) from orders where paid_at >= $1 and kind <> 'topup' and status in {PAID}), \
                 (select cast(coalesce(sum(price), 0) as bigint) from orders where paid_at >= $1 \
                  and kind <> 'topup' and status in {PAID}), \
                 (select cast(coalesce(sum(stars), 0) as bigint) from orders where paid_at >= $1 \
                  and payment_method = 'stars' and status in {PAID})"
            )))
            .bind(since)
            .fetch_one(pool)
            .await?
        });
        Ok(Period {
            revenue: Money::from_micros(revenue),
            stars_revenue: stars,
            orders,
            paid_orders: paid,
            conversion: if orders > 0 {
                paid as f64 / orders as f64
            } else {
                0.0
            },
        })
    }

    pub async fn overview(&self, now: i64) -> StoreResult<Overview> {
        let today_start = now - now.rem_euclid(DAY_MS);
        let first_day = today_start / DAY_MS - 29;
        let since = first_day * DAY_MS;
        let today = self.period(today_start).await?;
        let last_30_days = self.period(since).await?;
        let pending: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("select count(*) from orders where status = 'pending_payment'")
                .fetch_one(pool)
                .await?
        });
        let created: Vec<(i64, i64)> = on_pool!(self, pool => {
            sqlx::query_as(
                "select created_at / 86400000 as d, count(*) from orders where created_at >= $1 and kind <> 'topup' \
                 group by created_at / 86400000",
            )
            .bind(since)
            .fetch_all(pool)
            .await?
        });
        let sold: Vec<(i64, i64, i64, i64)> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "select paid_at / 86400000 as d, count(*), cast(sum(price) as bigint), \
                 cast(coalesce(sum(stars), 0) as bigint) from orders \
                 where paid_at >= $1 and kind <> 'topup' and status in {PAID} group by paid_at / 86400000"
            )))
            .bind(since)
            .fetch_all(pool)
            .await?
        });
        let detection: Vec<(i64, i64, i64)> = on_pool!(self, pool => {
            sqlx::query_as(
                "select o.paid_at / 86400000 as d, cast(sum(o.paid_at - t.block_time) as bigint), count(*) \
                 from orders o join transfers t on t.id = o.transfer_id where o.paid_at >= $1 \
                 group by o.paid_at / 86400000",
            )
            .bind(since)
            .fetch_all(pool)
            .await?
        });
        let days = (first_day..=today_start / DAY_MS)
            .map(|d| {
                let (paid_orders, revenue, stars_revenue) = sold
                    .iter()
                    .find(|s| s.0 == d)
                    .map(|s| (s.1, s.2, s.3))
                    .unwrap_or((0, 0, 0));
                Day {
                    day: d,
                    revenue: Money::from_micros(revenue),
                    stars_revenue,
                    orders: created.iter().find(|c| c.0 == d).map(|c| c.1).unwrap_or(0),
                    paid_orders,
                    detection_seconds: detection
                        .iter()
                        .find(|x| x.0 == d && x.2 > 0)
                        .map(|x| x.1 as f64 / x.2 as f64 / 1000.0),
                }
            })
            .collect();
        Ok(Overview {
            today,
            last_30_days,
            pending_payments: pending,
            days,
        })
    }
}
