//! Tells the integration tests which optional servers the build was asked to test against.
//!
//! `TELEBOT_TEST_POSTGRES_URL` and `TELEBOT_TEST_REDIS_URL` turn on `cfg(telebot_postgres)` and
//! `cfg(telebot_redis)`; the PostgreSQL and Redis tests are ignored (with the variable named as
//! the reason) when their flag is off, so a run without the servers says what it skipped instead
//! of passing those tests without running them. The service itself does not look at either flag.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for (var, flag) in [
        ("TELEBOT_TEST_POSTGRES_URL", "telebot_postgres"),
        ("TELEBOT_TEST_REDIS_URL", "telebot_redis"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({flag})");
        println!("cargo::rerun-if-env-changed={var}");
        if std::env::var(var).is_ok_and(|v| !v.is_empty()) {
            println!("cargo::rustc-cfg={flag}");
        }
    }
}
