//! Agents (resellers): referral codes, commission rates, commissions and payouts.

use serde::Serialize;
use sqlx::FromRow;

use super::audit::AuditRecord;
use super::tx::Tx;
use super::{Store, StoreError, StoreResult, in_tx, on_pool};
use crate::domain::{AgentStatus, now_ms};

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct Agent {
    pub id: i64,
    pub user_id: Option<i64>,
    pub name: String,
    pub code: String,
    pub commission_bps: i64,
    #[sqlx(try_from = "String")]
    pub status: AgentStatus,
    pub permissions: String,
    pub payout_address: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewAgent {
    pub user_id: Option<i64>,
    pub name: String,
    pub code: String,
    pub commission_bps: u32,
    /// `Pending` (applied through the bot) or `Active` (created by an operator).
    pub status: AgentStatus,
}

macro_rules! agent_columns {
    () => {
        "id, user_id, name, code, commission_bps, status, permissions, payout_address, created_at, \
         updated_at"
    };
}

impl Store {
    /// Creates an agent and records it for `actor` in the audit log in the same transaction:
    /// `agent.applied` for a pending application from the bot, `agent.created` otherwise.
    pub async fn create_agent(&self, a: &NewAgent, who: &str) -> StoreResult<Agent> {
        let now = now_ms();
        let conflict = |e: sqlx::Error| {
            let e = StoreError::from(e);
            if e.is_unique_violation() {
                StoreError::Conflict("an agent with this code or user exists".to_owned())
            } else {
                e
            }
        };
        let action = if a.status == AgentStatus::Pending {
            "agent.applied"
        } else {
            "agent.created"
        };
        Ok(in_tx!(self, tx => {
            let agent: Agent = sqlx::query_as(concat!(
                "insert into agents (user_id, name, code, commission_bps, status, permissions, created_at, updated_at) \
                 values ($1, $2, $3, $4, $5, '[\"view_referrals\",\"view_orders\",\"request_payouts\"]', $6, $6) returning ",
                agent_columns!()
            ))
            .bind(a.user_id)
            .bind(&a.name)
            .bind(&a.code)
            .bind(i64::from(a.commission_bps))
            .bind(a.status.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(conflict)?;
            Tx::from(&mut *tx).append_audit(&AuditRecord::new(who, action, "agent", agent.id).after(&agent)).await?;
            agent
        }))
    }

    pub async fn agent(&self, id: i64) -> StoreResult<Agent> {
        on_pool!(self, pool => {
            sqlx::query_as(concat!("select ", agent_columns!(), " from agents where id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
        .ok_or(StoreError::NotFound("agent"))
    }

    /// The active agent behind a referral code.
    pub async fn active_agent_by_code(&self, code: &str) -> StoreResult<Option<Agent>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select ", agent_columns!(), " from agents where code = $1 and status = 'active'"
            ))
            .bind(code)
            .fetch_optional(pool)
            .await?
        }))
    }
}

/// Changes an operator makes to an agent; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AgentUpdate {
    pub commission_bps: Option<u32>,
    /// Checked against the agent state machine in the same transaction as the change.
    pub status: Option<AgentStatus>,
    pub permissions: Option<String>,
    pub payout_address: Option<String>,
    pub name: Option<String>,
}

/// What an agent earned and sold.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AgentStats {
    pub referred_users: i64,
    pub paid_orders: i64,
    #[schema(value_type = String)]
    pub sales: crate::domain::Money,
    /// Commissions still in their hold period.
    #[schema(value_type = String)]
    pub pending: crate::domain::Money,
    /// Commissions that can be paid out.
    #[schema(value_type = String)]
    pub available: crate::domain::Money,
    /// Commissions in a payout request that is not decided yet.
    #[schema(value_type = String)]
    pub requested: crate::domain::Money,
    #[schema(value_type = String)]
    pub paid: crate::domain::Money,
    /// The same for Stars sales, in whole Stars (never added to the USDT figures).
    pub stars: StarsEarnings,
}

/// An agent's Stars sales and commissions, in whole Stars.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct StarsEarnings {
    pub sales: i64,
    pub pending: i64,
    pub available: i64,
    pub requested: i64,
    pub paid: i64,
}

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct Commission {
    pub id: i64,
    pub agent_id: i64,
    pub order_id: i64,
    /// USDT as a decimal string, or whole Stars (`currency` says which).
    #[sqlx(skip)]
    pub amount: String,
    /// The amount in the currency's smallest unit: micro-USDT, or Stars.
    #[sqlx(rename = "amount")]
    #[serde(skip)]
    pub units: i64,
    /// `USDT` or `XTR` (Telegram Stars, earned on Stars sales).
    pub currency: String,
    /// `pending` (in its hold period), `available`, `requested` (in a payout request) or `paid`.
    pub status: String,
    pub available_at: i64,
    pub payout_id: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct Payout {
    pub id: i64,
    pub agent_id: i64,
    /// USDT as a decimal string, or whole Stars (`currency` says which).
    #[sqlx(skip)]
    pub amount: String,
    #[sqlx(rename = "amount")]
    #[serde(skip)]
    pub units: i64,
    /// `USDT` or `XTR`: a payout pays commissions of one currency.
    pub currency: String,
    pub address: String,
    /// `requested`, `approved`, `rejected` or `paid`.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub created_at: i64,
}

/// How an amount of `currency` reads: a USDT decimal, or whole Stars.
pub fn amount_text(units: i64, currency: &str) -> String {
    if currency == crate::domain::stars::CURRENCY {
        units.to_string()
    } else {
        crate::domain::Money::from_micros(units).to_string()
    }
}

impl Commission {
    fn readable(mut self) -> Self {
        self.amount = amount_text(self.units, &self.currency);
        self
    }
}

impl Payout {
    fn readable(mut self) -> Self {
        self.amount = amount_text(self.units, &self.currency);
        self
    }
}

/// The effective status of a commission: `pending` turns `available` once its hold is over.
macro_rules! commission_status {
    () => {
        "case when status = 'paid' then 'paid' when payout_id is not null then 'requested' \
         when available_at <= $2 then 'available' else 'pending' end"
    };
}

impl Store {
    pub async fn list_agents(
        &self,
        status: Option<AgentStatus>,
        page: super::Page,
    ) -> StoreResult<Vec<Agent>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select ", agent_columns!(), " from agents where ($1 is null or status = $1) order by id limit $2 offset $3"
            ))
            .bind(status.map(AgentStatus::as_str))
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn agent_by_user(&self, user_id: i64) -> StoreResult<Option<Agent>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!("select ", agent_columns!(), " from agents where user_id = $1"))
                .bind(user_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Applies an operator's changes; returns the agent before and after.
    pub async fn update_agent(
        &self,
        id: i64,
        u: &AgentUpdate,
        who: &str,
    ) -> StoreResult<(Agent, Agent)> {
        // the change, its audit entry and the approval notice commit together
        Ok(in_tx!(self, tx => {
            let before: Agent = sqlx::query_as(concat!("select ", agent_columns!(), " from agents where id = $1"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("agent"))?;
            if let Some(to) = u.status {
                before.status.check_transition(to)?;
            }
            let after: Agent = sqlx::query_as(concat!(
                "update agents set commission_bps = coalesce($2, commission_bps), status = coalesce($3, status), \
                 permissions = coalesce($4, permissions), payout_address = coalesce($5, payout_address), \
                 name = coalesce($6, name), updated_at = $7 where id = $1 returning ",
                agent_columns!()
            ))
            .bind(id)
            .bind(u.commission_bps.map(i64::from))
            .bind(u.status.map(AgentStatus::as_str))
            .bind(&u.permissions)
            .bind(&u.payout_address)
            .bind(&u.name)
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await?;
            Tx::from(&mut *tx).append_audit(&AuditRecord::new(who, "agent.updated", "agent", id)
                .before(&before)
                .after(&after)).await?;
            if before.status != AgentStatus::Active
                && after.status == AgentStatus::Active
                && let Some(user_id) = after.user_id
            {
                let event = crate::domain::OutboxEvent::AgentApproved { agent_id: id, user_id };
                Tx::from(&mut *tx).enqueue_event(&event).await?;
            }
            (before, after)
        }))
    }

    pub async fn agent_stats(&self, id: i64) -> StoreResult<AgentStats> {
        let now = now_ms();
        let (referred, paid_orders, sales, stars_sales): (i64, i64, i64, i64) = on_pool!(self, pool => {
            sqlx::query_as(
                "select (select count(*) from users where referred_by_agent_id = $1), \
                 (select count(*) from orders where agent_id = $1 and status in ('paid','delivered','in_progress','completed')), \
                 (select cast(coalesce(sum(price), 0) as bigint) from orders where agent_id = $1 \
                  and status in ('paid','delivered','in_progress','completed')), \
                 (select cast(coalesce(sum(stars), 0) as bigint) from orders where agent_id = $1 \
                  and payment_method = 'stars' and status in ('paid','delivered','in_progress','completed'))",
            )
            .bind(id)
            .fetch_one(pool)
            .await?
        });
        let sums: Vec<(String, String, i64)> = on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select currency, s, cast(sum(amount) as bigint) from (select currency, ", commission_status!(),
                " as s, amount from commissions where agent_id = $1) c group by currency, s"
            ))
            .bind(id)
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        let mut stats = AgentStats {
            referred_users: referred,
            paid_orders,
            sales: crate::domain::Money::from_micros(sales),
            ..Default::default()
        };
        stats.stars.sales = stars_sales;
        for (currency, status, sum) in sums {
            if currency == crate::domain::stars::CURRENCY {
                let s = &mut stats.stars;
                match status.as_str() {
                    "pending" => s.pending = sum,
                    "available" => s.available = sum,
                    "requested" => s.requested = sum,
                    "paid" => s.paid = sum,
                    _ => {}
                }
                continue;
            }
            let m = crate::domain::Money::from_micros(sum);
            match status.as_str() {
                "pending" => stats.pending = m,
                "available" => stats.available = m,
                "requested" => stats.requested = m,
                "paid" => stats.paid = m,
                _ => {}
            }
        }
        Ok(stats)
    }

    /// Newest first, with their effective status.
    pub async fn commissions(
        &self,
        agent_id: i64,
        page: super::Page,
    ) -> StoreResult<Vec<Commission>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select id, agent_id, order_id, amount, currency, ", commission_status!(),
                " as status, available_at, payout_id, created_at from commissions where agent_id = $1 \
                 order by id desc limit $3 offset $4"
            ))
            .bind(agent_id)
            .bind(now_ms())
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(pool)
            .await?
        })
        .into_iter()
        .map(Commission::readable)
        .collect())
    }

    /// Requests a payout of everything available in `currency` (`USDT` or `XTR`) to `address`,
    /// in one transaction: the available commissions of that currency are tied to the request.
    /// `None` when nothing is available.
    pub async fn request_payout(
        &self,
        agent_id: i64,
        address: &str,
        currency: &str,
        who: &str,
    ) -> StoreResult<Option<Payout>> {
        let now = now_ms();
        let payout = super::in_tx!(self, tx => {
            let available: i64 = sqlx::query_scalar(
                "select cast(coalesce(sum(amount), 0) as bigint) from commissions where agent_id = $1 \
                 and payout_id is null and status in ('pending', 'available') and available_at <= $2 \
                 and currency = $3",
            )
            .bind(agent_id)
            .bind(now)
            .bind(currency)
            .fetch_one(&mut *tx)
            .await?;
            if available <= 0 {
                return Ok(None);
            }
            let payout: Payout = sqlx::query_as(
                "insert into payouts (agent_id, amount, address, status, created_at, currency) \
                 values ($1, $2, $3, 'requested', $4, $5) \
                 returning id, agent_id, amount, currency, address, status, decided_by, decided_at, created_at",
            )
            .bind(agent_id)
            .bind(available)
            .bind(address)
            .bind(now)
            .bind(currency)
            .fetch_one(&mut *tx)
            .await?;
            let payout = payout.readable();
            sqlx::query(
                "update commissions set payout_id = $2 where agent_id = $1 and payout_id is null \
                 and status in ('pending', 'available') and available_at <= $3 and currency = $4",
            )
            .bind(agent_id)
            .bind(payout.id)
            .bind(now)
            .bind(currency)
            .execute(&mut *tx)
            .await?;
            Tx::from(&mut *tx).append_audit(&super::AuditRecord::new(who, "payout.requested", "payout", payout.id).after(&payout)).await?;
            Some(payout)
        });
        Ok(payout)
    }

    pub async fn payouts(
        &self,
        agent_id: Option<i64>,
        status: Option<&str>,
        page: super::Page,
    ) -> StoreResult<Vec<Payout>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "select id, agent_id, amount, currency, address, status, decided_by, decided_at, created_at from payouts \
                 where ($1 is null or agent_id = $1) and ($2 is null or status = $2) order by id desc limit $3 offset $4",
            )
            .bind(agent_id)
            .bind(status)
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(pool)
            .await?
        })
        .into_iter()
        .map(Payout::readable)
        .collect())
    }

    pub async fn payout(&self, id: i64) -> StoreResult<Payout> {
        on_pool!(self, pool => {
            sqlx::query_as(
                "select id, agent_id, amount, currency, address, status, decided_by, decided_at, created_at from payouts where id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        })
        .map(Payout::readable)
        .ok_or(StoreError::NotFound("payout"))
    }

    /// An operator decides a payout: `approved` (to be sent), `paid` (sent: its commissions are
    /// paid) or `rejected` (its commissions are available again).
    pub async fn decide_payout(
        &self,
        id: i64,
        to: &str,
        who: &str,
    ) -> StoreResult<(Payout, Payout)> {
        let now = now_ms();
        let pair = super::in_tx!(self, tx => {
            let before: Payout = sqlx::query_as(
                "select id, agent_id, amount, currency, address, status, decided_by, decided_at, created_at from payouts where id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("payout"))?;
            let before = before.readable();
            let allowed = matches!((before.status.as_str(), to), ("requested", "approved" | "rejected" | "paid") | ("approved", "paid" | "rejected"));
            if !allowed {
                return Err(StoreError::Conflict(format!("a {} payout cannot become {to}", before.status)));
            }
            let after: Payout = sqlx::query_as(
                "update payouts set status = $2, decided_by = $3, decided_at = $4 where id = $1 \
                 returning id, agent_id, amount, currency, address, status, decided_by, decided_at, created_at",
            )
            .bind(id)
            .bind(to)
            .bind(who)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let after = after.readable();
            match to {
                "paid" => {
                    sqlx::query("update commissions set status = 'paid' where payout_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                "rejected" => {
                    sqlx::query("update commissions set payout_id = null where payout_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                _ => {}
            }
            let action = format!("payout.{to}");
            Tx::from(&mut *tx).append_audit(&super::AuditRecord::new(who, &action, "payout", id).before(&before).after(&after)).await?;
            (before, after)
        });
        Ok(pair)
    }
}
