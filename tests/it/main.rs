//! The integration tests, one binary: each module is one area of the service, and the helpers in
//! [`common`] (databases on either backend, loopback Telegram and chain peers, the simulator's
//! client, the browser driver) are compiled once for all of them.
//!
//! Run one area with `cargo test --test it payments::`, one test by its name as usual. The
//! PostgreSQL and Redis runs are compiled in when `TELEBOT_TEST_POSTGRES_URL` and
//! `TELEBOT_TEST_REDIS_URL` are set while building (see `build.rs`); without them those tests
//! are listed as ignored, with the variable to set as the reason.

mod common;

mod api;
mod bot;
mod cluster;
mod connections;
mod dashboard;
mod operations;
mod packaging;
mod payments;
mod ratelimit;
mod service;
mod stars;
mod store;
mod supervision;
mod telegram;
