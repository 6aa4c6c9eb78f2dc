//! The HTTP server (axum): health and readiness, Prometheus metrics, and later the REST API,
//! the payment webhook, the dashboard and the Telegram simulator. It runs beside the supervision
//! tree under the same shutdown.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::actors::bot_router::BotHandle;
use crate::actors::demo_chain::DemoChainHandle;
use crate::actors::order_manager::OrdersHandle;
use crate::bot::simulator::Simulator;
use crate::config::{Config, Secret};
use crate::payments::Payments;
use crate::payments::progress::ChainProgress;
use crate::ratelimit::RateLimiter;
use crate::store::Store;
use crate::supervision::{Leadership, Registry};

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod health;
pub mod internal;
pub mod login_guard;
pub mod serve;
pub mod simulator;
pub mod telegram;

/// What the HTTP handlers read: handles to the store and the actors they talk to, and the
/// dashboard's login guard. [`crate::app`] builds it at start.
pub struct HttpState {
    pub config: Arc<Config>,
    pub store: Store,
    pub registry: Registry,
    pub orders: OrdersHandle,
    pub payments: Payments,
    pub progress: ChainProgress,
    pub limiter: RateLimiter,
    /// The bot's router, for updates that arrive over HTTP (webhook mode).
    pub bot: BotHandle,
    /// What the bot sends through, for the calls the API makes to Telegram (Stars refunds).
    pub outbound: crate::bot::outbound::Outbound,
    /// Present when no Telegram token is configured (demo mode).
    pub simulator: Option<Arc<Simulator>>,
    /// Secret Telegram echoes on webhook calls.
    pub webhook_secret: Secret,
    /// Dashboard login throttling and the password-check pool.
    pub login_guard: login_guard::LoginGuard,
    /// Whether this instance runs the singletons (readiness reports it).
    pub leadership: Leadership,
    /// The simulated chain, when `tron.source = "demo"` (the dashboard's demo payments).
    pub demo_chain: Option<DemoChainHandle>,
    /// Product listings as JSON, sent again while the catalog is unchanged.
    pub product_pages: api::catalog::ProductPages,
}

pub type AppState = Arc<HttpState>;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP surface of one instance.
pub fn router(app: AppState) -> Router {
    let limit = app.config.http.body_limit_bytes;
    let timeout = app.config.http.request_timeout;
    let mut router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/internal/payments/notify", post(internal::notify))
        .nest("/api/v1", api::router().0)
        .merge(dashboard::router());
    if let Some(sim) = &app.simulator {
        router = router.merge(simulator::router(sim.clone()));
    }
    if app.config.telegram.mode == crate::config::TelegramMode::Webhook {
        router = router.route("/telegram/webhook", post(telegram::webhook));
    }
    if app.config.metrics.enabled && app.config.metrics.addr.is_empty() {
        router = router.route("/metrics", get(health::metrics));
    }
    router
        .layer(middleware::from_fn(move |req, next| {
            observe(req, next, timeout)
        }))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

/// Request id, time limit, and the per-route metrics of every request.
async fn observe(mut req: Request, next: Next, timeout: std::time::Duration) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    let span = tracing::info_span!("http", request_id = %request_id, method = %req.method(), route = %route);
    let mut response = match tokio::time::timeout(
        timeout,
        tracing::Instrument::instrument(next.run(req), span.clone()),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => error::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long",
        )
        .into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    let code = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if matches!(route.as_str(), "/metrics" | "/healthz" | "/readyz") || route.starts_with("/sim/") {
        tracing::debug!(parent: &span, status = code, elapsed_ms, "request");
    } else {
        tracing::info!(parent: &span, status = code, elapsed_ms, "request");
    }
    let status = code.to_string();
    metrics::counter!("http_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
