//! The rate-limit suite: in-process always, and against the real Redis when
//! TELEBOT_TEST_REDIS_URL is set (a set but unreachable server fails the run).

use telebot::ratelimit::{Decision, RateLimiter};

/// A minute boundary, so the tests control where in the window they are.
const T0: i64 = 1_790_000_040_000;

async fn redis(limit: u32) -> RateLimiter {
    let url = crate::common::env_url(crate::common::REDIS_ENV);
    let prefix = format!("telebot-test:{:016x}:", rand::random::<u64>());
    RateLimiter::redis(&url, &prefix, limit)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{} is set but Redis cannot be used: {e}",
                crate::common::REDIS_ENV
            )
        })
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
                #[cfg_attr(not(telebot_redis), ignore = "needs Redis: set TELEBOT_TEST_REDIS_URL")]
                async fn $name() {
                    super::$name(super::redis).await;
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

/// Two instances with the same Redis share one budget per user: what one counted, the other
/// sees, and only one of them sends the notice.
#[tokio::test]
#[cfg_attr(not(telebot_redis), ignore = "needs Redis: set TELEBOT_TEST_REDIS_URL")]
async fn instances_on_one_redis_share_one_budget() {
    let url = crate::common::env_url(crate::common::REDIS_ENV);
    let prefix = format!("telebot-test:{:016x}:", rand::random::<u64>());
    let a = RateLimiter::redis(&url, &prefix, 20).await.unwrap();
    let b = RateLimiter::redis(&url, &prefix, 20).await.unwrap();
    for i in 0..20 {
        let instance = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            instance.check_at(5, T0 + i).await,
            Decision::Allowed,
            "update {i}"
        );
    }
    assert_eq!(b.check_at(5, T0 + 20).await, Decision::LimitedNotify);
    assert_eq!(a.check_at(5, T0 + 21).await, Decision::Limited);
    assert_eq!(b.check_at(5, T0 + 22).await, Decision::Limited);
    // another user is untouched on both
    assert_eq!(a.check_at(6, T0 + 23).await, Decision::Allowed);
    assert_eq!(b.check_at(6, T0 + 24).await, Decision::Allowed);
}

/// When Redis goes away after start, updates are let through (a customer's message matters
/// more than a burst) instead of failing or hanging.
#[tokio::test]
#[cfg_attr(not(telebot_redis), ignore = "needs Redis: set TELEBOT_TEST_REDIS_URL")]
async fn a_lost_redis_lets_updates_through() {
    let url = crate::common::env_url(crate::common::REDIS_ENV);
    let upstream = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    // a TCP relay to the real Redis that can be cut
    let relay = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let accept = {
        let links = links.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = relay.accept().await {
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                links.lock().unwrap().push(link);
            }
        })
    };
    let limiter = RateLimiter::redis(&format!("redis://{relay_addr}"), "telebot-test:lost:", 1)
        .await
        .unwrap();
    assert_eq!(limiter.check_at(7, T0).await, Decision::Allowed);
    assert_eq!(limiter.check_at(7, T0 + 1).await, Decision::LimitedNotify);
    // Redis goes away: the relay stops, and its connections are closed once their tasks end
    accept.abort();
    let _ = accept.await;
    let open: Vec<_> = links.lock().unwrap().drain(..).collect();
    for link in open {
        link.abort();
        let _ = link.await;
    }
    assert_eq!(
        limiter.check_at(7, T0 + 2).await,
        Decision::Allowed,
        "with Redis gone the update goes through"
    );
}
