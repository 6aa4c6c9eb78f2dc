//! Logs (tracing, text or JSON) and the Prometheus metrics recorder.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogConfig, LogFormat};

/// Installs the global log subscriber. `RUST_LOG`, when set, wins over `log.level`.
/// Safe to call more than once (later calls do nothing).
pub fn init_logging(cfg: &LogConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(&cfg.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_target(true)
        // colour only for a person at a terminal, never in files or pipes
        .with_ansi(std::io::stdout().is_terminal());
    let _ = match cfg.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}

/// Buckets for latencies measured in seconds (HTTP, bot updates, payment detection).
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder (installed on first use; metrics are global, so every
/// application instance in one process shares it).
pub fn metrics_handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
                .expect("static bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was installed already; /metrics may be empty");
            }
            describe();
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok();
            handle
        })
        .clone()
}

/// Help texts for the exposition, and every unlabelled series created at zero so a fresh
/// instance already exposes them (rates work from the first scrape).
fn describe() {
    use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
    describe_counter!("bot_updates_total", "Telegram updates handled, by kind");
    describe_histogram!(
        "bot_update_duration_seconds",
        Unit::Seconds,
        "Time from receiving an update to finishing it"
    );
    describe_gauge!("bot_sessions_active", "Session actors alive");
    describe_counter!(
        "rate_limited_total",
        "Bot updates refused by the per-user rate limit"
    );
    describe_counter!(
        "rate_limit_errors_total",
        "Rate-limit checks that failed (Redis down)"
    );
    describe_counter!("orders_created_total", "Orders created");
    describe_counter!(
        "orders_paid_total",
        "Orders paid (by transfer or from the balance)"
    );
    describe_counter!("orders_expired_total", "Orders expired without payment");
    describe_histogram!(
        "order_payment_duration_seconds",
        Unit::Seconds,
        "Time from order creation to payment"
    );
    describe_counter!(
        "payments_matched_total",
        "Confirmed transfers placed, by outcome"
    );
    describe_counter!(
        "payments_dust_total",
        "Unmatched transfers below payments.unmatched_alert_min: kept without an operator alert"
    );
    describe_histogram!(
        "payment_detection_latency_seconds",
        Unit::Seconds,
        "Time from a transfer's block to the order being paid"
    );
    describe_gauge!(
        "scanner_lag_seconds",
        Unit::Seconds,
        "How far behind now each chain scanner has read"
    );
    describe_counter!(
        "scanner_errors_total",
        "Upstream faults of the chain scanners, by kind"
    );
    describe_gauge!(
        "matcher_allocations_active",
        "Unique amounts held by pending orders, by chain"
    );
    describe_counter!(
        "matcher_slots_exhausted_total",
        "Orders refused because every unique amount was in use"
    );
    describe_counter!(
        "actor_restarts_total",
        "Restarts of supervised subsystems and actors, by path"
    );
    describe_counter!(
        "http_requests_total",
        "HTTP requests, by route template and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request handling time, by route template"
    );
    describe_gauge!(
        "outbox_pending",
        "Notifications and callbacks waiting to be delivered"
    );
    describe_gauge!(
        "instance_leader",
        "1 while this instance holds the leadership lock and runs the singletons, else 0"
    );
    describe_counter!(
        "callbacks_total",
        "Merchant callback deliveries, by outcome (delivered, retried, given_up)"
    );
    describe_counter!(
        "telegram_send_retries_total",
        "Bot API calls retried (after 429, a network fault or a server fault), by reason"
    );
    describe_gauge!(
        "http_connections_active",
        "HTTP connections open and served (overflow connections not counted)"
    );
    describe_counter!(
        "http_connections_over_limit_total",
        "Connections arriving at http.max_connections (room made by closing the idlest, or /healthz only)"
    );
    describe_counter!(
        "stars_payments_total",
        "Telegram Stars payments reported by successful_payment, by outcome (credited, unmatched, repeated, failed)"
    );
    describe_counter!(
        "stars_refunds_total",
        "Telegram Stars payments refunded (from the API or dashboard, or recorded from Telegram)"
    );
    describe_histogram!(
        "precheckout_duration_seconds",
        Unit::Seconds,
        "Time from receiving a pre_checkout_query to answering it (Telegram allows 10 s)"
    );
    describe_counter!(
        "stars_precheckouts_total",
        "Pre-checkout queries answered, by outcome (ok, or the reason for refusing)"
    );
    describe_counter!(
        "stars_reconciliation_findings_total",
        "Differences the Stars reconciliation found with Telegram's transactions, by kind"
    );
    describe_gauge!(
        "stars_reconciliation_missing",
        "Credited Stars payments that Telegram's transactions do not list"
    );
    for outcome in ["credited", "unmatched", "repeated", "failed"] {
        counter!("stars_payments_total", "outcome" => outcome).increment(0);
    }
    for outcome in [
        "ok",
        "no_order",
        "other_user",
        "not_stars",
        "currency",
        "amount",
        "not_pending",
        "out_of_stock",
        "error",
        "timeout",
    ] {
        counter!("stars_precheckouts_total", "outcome" => outcome).increment(0);
    }
    for kind in [
        "unrecorded_payment",
        "unrecorded_refund",
        "missing_transaction",
    ] {
        counter!("stars_reconciliation_findings_total", "kind" => kind).increment(0);
    }
    gauge!("stars_reconciliation_missing").set(0.0);
    counter!("stars_refunds_total").increment(0);
    gauge!("http_connections_active").set(0.0);
    for name in [
        "http_connections_over_limit_total",
        "rate_limited_total",
        "orders_created_total",
        "orders_paid_total",
        "orders_expired_total",
        "matcher_slots_exhausted_total",
        "payments_dust_total",
    ] {
        counter!(name).increment(0);
    }
    for outcome in ["paid", "late_credited", "review", "unmatched", "duplicate"] {
        counter!("payments_matched_total", "outcome" => outcome).increment(0);
    }
    for reason in ["retry_after", "network", "server"] {
        counter!("telegram_send_retries_total", "reason" => reason).increment(0);
    }
    for kind in [
        "command",
        "text",
        "other_message",
        "callback",
        "edited_message",
        "other",
        "repeated",
        "ignored",
        "pre_checkout",
        "payment",
    ] {
        counter!("bot_updates_total", "kind" => kind).increment(0);
    }
    counter!("rate_limit_errors_total").increment(0);
    for kind in SCANNER_ERROR_KINDS {
        counter!("scanner_errors_total", "chain" => crate::domain::tron::CHAIN, "kind" => *kind)
            .increment(0);
    }
    for outcome in ["delivered", "retried", "given_up"] {
        counter!("callbacks_total", "outcome" => outcome).increment(0);
    }
    // the dynamic actors; each supervised subsystem adds its own path when it starts
    for subsystem in ["orders/order", "bot/session"] {
        counter!("actor_restarts_total", "subsystem" => subsystem).increment(0);
    }
    gauge!("matcher_allocations_active", "chain" => crate::domain::tron::CHAIN).set(0.0);
    gauge!("outbox_pending").set(0.0);
    gauge!("bot_sessions_active").set(0.0);
    // histograms appear from start with zero observations
    for name in [
        "bot_update_duration_seconds",
        "order_payment_duration_seconds",
        "payment_detection_latency_seconds",
        "precheckout_duration_seconds",
    ] {
        let _ = metrics::histogram!(name);
    }
    // the routes probes and scrapers call; every other route appears with its first request
    for route in ["/healthz", "/readyz", "/metrics"] {
        counter!("http_requests_total", "route" => route, "status" => "200").increment(0);
        let _ = metrics::histogram!("http_request_duration_seconds", "route" => route);
    }
}

/// Every `kind` of `scanner_errors_total`.
pub const SCANNER_ERROR_KINDS: &[&str] = &[
    "rate_limited",
    "server_error",
    "http_error",
    "timeout",
    "connect",
    "malformed",
    "api_error",
    "node_error",
    "out_of_order",
    "store",
    "conflicting_report",
];
