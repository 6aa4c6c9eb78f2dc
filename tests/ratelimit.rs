//! The rate-limit suite: in-process always, and against the real Redis when
//! TELEBOT_TEST_REDIS_URL is set (a set but unreachable server fails the run).

mod common;

use telebot::ratelimit::{Decision, RateLimiter};

/// A minute boundary, so the tests control where in the window they are.
const T0: i64 = 1_790_000_040_000;

async fn redis(limit: u32) -> Option<RateLimiter> {
    let url = std::env::var(common::REDIS_ENV)
        .ok()
        .filter(|v| !v.is_empty())?;
    let prefix = format!("telebot-test:{:016x}:", rand::random::<u64>());
    Some(
        RateLimiter::redis(&url, &prefix, limit)
            .await
            .unwrap_or_else(|e| {
                panic!("{} is set but Redis cannot be used: {e}", common::REDIS_ENV)
            }),
    )
}

macro_rules! limiter_suite {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(|limit| async move { telebot::ratelimit::RateLimiter::local(limit) }).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    if super::redis(1).await.is_none() {
                        eprintln!("{} not set: Redis run skipped", super::common::REDIS_ENV);
                        return;
                    }
                    super::$name(|limit| async move { super::redis(limit).await.unwrap() }).await;
                }
            )*
        }
    };
}

limiter_suite!(
    over_the_limit_one_notice_then_silence,
    other_users_keep_their_budget,
    the_window_frees_again,
);

async fn over_the_limit_one_notice_then_silence<F, Fut>(make: F)
where
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = RateLimiter>,
{
    let limiter = make(20).await;
    for i in 0..20 {
        assert_eq!(
            limiter.check_at(1, T0 + i).await,
            Decision::Allowed,
            "update {i}"
        );
    }
    assert_eq!(limiter.check_at(1, T0 + 20).await, Decision::LimitedNotify);
    for i in 21..30 {
        assert_eq!(limiter.check_at(1, T0 + i).await, Decision::Limited);
    }
}

async fn other_users_keep_their_budget<F, Fut>(make: F)
where
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = RateLimiter>,
{
    let limiter = make(3).await;
    for _ in 0..5 {
        limiter.check_at(1, T0).await;
    }
    assert!(!limiter.check_at(1, T0).await.is_allowed());
    for _ in 0..3 {
        assert_eq!(limiter.check_at(2, T0).await, Decision::Allowed);
    }
}

async fn the_window_frees_again<F, Fut>(make: F)
where
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = RateLimiter>,
{
    let limiter = make(4).await;
    for _ in 0..4 {
        assert!(limiter.check_at(9, T0).await.is_allowed());
    }
    assert_eq!(
        limiter.check_at(9, T0 + 1_000).await,
        Decision::LimitedNotify
    );
    // 30 s into the next minute half of the previous minute still counts: 2 of 4 used
    let later = T0 + 90_000;
    assert!(limiter.check_at(9, later).await.is_allowed());
    assert!(limiter.check_at(9, later).await.is_allowed());
    assert_eq!(
        limiter.check_at(9, later).await,
        Decision::LimitedNotify,
        "a new streak gets a new notice"
    );
    // two minutes on, the budget is whole again
    let fresh = T0 + 180_000;
    for _ in 0..4 {
        assert!(limiter.check_at(9, fresh).await.is_allowed());
    }
}
