//! Per-user rate limiting of bot updates: `security.rate_limit_per_minute` over a sliding
//! one-minute window.
//!
//! The window is the usual two-bucket approximation: the previous minute's count, weighted by how
//! much of it still overlaps the last 60 seconds, plus the current minute's count. Over the limit,
//! the first refused update says so ([`Decision::LimitedNotify`], the user gets one polite notice)
//! and the rest are refused quietly until an update is allowed again. In-process by default;
//! with `redis.url` set the counters live in Redis so every instance shares one budget.

use std::sync::Arc;

use dashmap::DashMap;

use crate::domain::now_ms;

const WINDOW_MS: i64 = 60_000;

/// What to do with one update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// First refusal of a streak: tell the user once.
    LimitedNotify,
    /// Further refusals: drop silently.
    Limited,
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Decision::Allowed
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The limiter behind the bot's sessions; cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    backend: Backend,
    refused: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone)]
enum Backend {
    Local(LocalLimiter),
    Redis(RedisLimiter),
}

impl RateLimiter {
    fn with(backend: Backend) -> Self {
        RateLimiter {
            backend,
            refused: Arc::default(),
        }
    }

    pub fn local(limit_per_minute: u32) -> Self {
        Self::with(Backend::Local(LocalLimiter::new(limit_per_minute)))
    }

    /// Connects to Redis (fails if it cannot be reached).
    pub async fn redis(
        url: &str,
        prefix: &str,
        limit_per_minute: u32,
    ) -> Result<Self, RateLimitError> {
        Ok(Self::with(Backend::Redis(
            RedisLimiter::connect(url, prefix, limit_per_minute).await?,
        )))
    }

    /// Counts one update of `user` at `now` (Unix ms) and decides. A Redis fault lets the update
    /// through (and is logged and counted): losing a customer's message is worse than a burst.
    pub async fn check_at(&self, user: i64, now: i64) -> Decision {
        let decision = match &self.backend {
            Backend::Local(l) => l.check_at(user, now),
            Backend::Redis(r) => match r.check_at(user, now).await {
                Ok(d) => d,
                Err(e) => {
                    metrics::counter!("rate_limit_errors_total").increment(1);
                    tracing::warn!(error = %e, "rate limiter unavailable; update let through");
                    Decision::Allowed
                }
            },
        };
        if !decision.is_allowed() {
            metrics::counter!("rate_limited_total").increment(1);
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        decision
    }

    pub async fn check(&self, user: i64) -> Decision {
        self.check_at(user, now_ms()).await
    }

    /// Forgets idle in-process counters (Redis keys expire on their own).
    pub fn sweep(&self, now: i64) {
        if let Backend::Local(l) = &self.backend {
            l.sweep(now);
        }
    }

    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Local(_) => "in-process",
            Backend::Redis(_) => "redis",
        }
    }

    /// Updates refused by this instance since it started.
    pub fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// `true` when one more update would exceed the limit.
fn over_limit(prev: i64, curr: i64, limit: i64, now: i64) -> bool {
    let into_window = now.rem_euclid(WINDOW_MS);
    prev * (WINDOW_MS - into_window) + (curr + 1) * WINDOW_MS > limit * WINDOW_MS
}

#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    window: i64,
    prev: i64,
    curr: i64,
    limited: bool,
}

/// Counters in this process.
#[derive(Clone)]
pub struct LocalLimiter {
    limit: i64,
    counters: Arc<DashMap<i64, Counter>>,
}

impl LocalLimiter {
    pub fn new(limit_per_minute: u32) -> Self {
        LocalLimiter {
            limit: i64::from(limit_per_minute),
            counters: Arc::new(DashMap::new()),
        }
    }

    pub fn check_at(&self, user: i64, now: i64) -> Decision {
        let window = now.div_euclid(WINDOW_MS);
        let mut c = self.counters.entry(user).or_default();
        if c.window != window {
            c.prev = if c.window == window - 1 { c.curr } else { 0 };
            c.curr = 0;
            c.window = window;
        }
        if over_limit(c.prev, c.curr, self.limit, now) {
            if c.limited {
                Decision::Limited
            } else {
                c.limited = true;
                Decision::LimitedNotify
            }
        } else {
            c.curr += 1;
            c.limited = false;
            Decision::Allowed
        }
    }

    /// Forgets users idle for two windows, so the map does not grow without bound.
    pub fn sweep(&self, now: i64) {
        let window = now.div_euclid(WINDOW_MS);
        self.counters.retain(|_, c| c.window >= window - 1);
    }
}

/// The same algorithm as one Lua script, atomic per user in Redis.
const SCRIPT: &str = r#"
local limit = tonumber(ARGV[1])
local into = tonumber(ARGV[2])
local window = 60000
local curr = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
if prev * (window - into) + (curr + 1) * window > limit * window then
  if redis.call('SET', KEYS[3], '1', 'NX', 'PX', 2 * window) then
    return 1
  end
  return 2
end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 2 * window)
redis.call('DEL', KEYS[3])
return 0
"#;

/// Counters in Redis, shared by every instance using the same `prefix`.
#[derive(Clone)]
pub struct RedisLimiter {
    limit: i64,
    prefix: String,
    conn: redis::aio::ConnectionManager,
    script: Arc<redis::Script>,
}

impl RedisLimiter {
    pub async fn connect(
        url: &str,
        prefix: &str,
        limit_per_minute: u32,
    ) -> Result<Self, RateLimitError> {
        let client = redis::Client::open(url)?;
        let mut conn = redis::aio::ConnectionManager::new(client).await?;
        // fail now, at start, rather than on the first customer's message
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(RedisLimiter {
            limit: i64::from(limit_per_minute),
            prefix: prefix.to_owned(),
            conn,
            script: Arc::new(redis::Script::new(SCRIPT)),
        })
    }

    pub async fn check_at(&self, user: i64, now: i64) -> Result<Decision, RateLimitError> {
        let window = now.div_euclid(WINDOW_MS);
        // one hash tag per user keeps the three keys on one cluster slot
        let tag = format!("{}{{{user}}}", self.prefix);
        let mut conn = self.conn.clone();
        let code: i64 = self
            .script
            .key(format!("{tag}:{window}"))
            .key(format!("{tag}:{}", window - 1))
            .key(format!("{tag}:limited"))
            .arg(self.limit)
            .arg(now.rem_euclid(WINDOW_MS))
            .invoke_async(&mut conn)
            .await?;
        Ok(match code {
            0 => Decision::Allowed,
            1 => Decision::LimitedNotify,
            _ => Decision::Limited,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weighted_previous_minute_counts() {
        // 20 in the previous minute, 15 s into this one: 20 * 0.75 = 15 still count
        assert!(!over_limit(20, 4, 20, 15_000));
        assert!(over_limit(20, 5, 20, 15_000));
        // at the very start of a window the whole previous minute counts
        assert!(over_limit(20, 0, 20, 0));
    }
}
