//! The operator dashboard at `/admin`: one page and its script and styles, compiled into the
//! binary (no Node step), plus login, logout and "who am I". The page works through the REST
//! API with a session cookie; every change it makes carries the session's CSRF token.
//!
//! Pages are served with a strict Content-Security-Policy (scripts and styles only from this
//! origin, no inline script), and the script renders every value from users and products as
//! text, never as markup.

use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api::ApiJson;
use super::auth::{
    CSRF_HEADER, Caller, SESSION_COOKIE, constant_time_eq, hash_token, verify_password,
};
use super::error::ApiError;
use crate::domain::{Role, now_ms};
use crate::store::AuditRecord;

const INDEX: &str = include_str!("../../assets/dashboard/index.html");
const SCRIPT: &str = include_str!("../../assets/dashboard/app.js");
const STYLE: &str = include_str!("../../assets/dashboard/app.css");

/// How long a dashboard session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Failed logins of one name allowed within `LOCKOUT_WINDOW` before it is locked for the rest of it.
const MAX_FAILED_LOGINS: u32 = 10;
const LOCKOUT_WINDOW: Duration = Duration::from_secs(15 * 60);

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(index))
        .route("/admin/", get(index))
        .route("/admin/assets/app.js", get(script))
        .route("/admin/assets/app.css", get(style))
        .route("/admin/api/login", post(login))
        .route("/admin/api/logout", post(logout))
        .route("/admin/api/me", get(me))
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

async fn script() -> Response {
    page("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    page("text/css; charset=utf-8", STYLE)
}

/// Log in with a dashboard account or with an API token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

/// What the page needs to know about its session.
#[derive(Debug, Serialize)]
pub struct Me {
    pub name: String,
    pub role: Role,
    pub csrf: String,
    /// Demo mode: simulated Telegram and simulated chain.
    pub demo: bool,
    /// The Telegram simulator is available.
    pub simulator: bool,
}

fn me_of(app: &AppState, name: String, role: Role, csrf: String) -> Me {
    Me {
        name,
        role,
        csrf,
        demo: app.is_demo_chain(),
        simulator: app.simulator.is_some(),
    }
}

/// Refuses a name that failed too often lately (brute force on passwords; tokens are 256 random
/// bits and need no such guard).
fn guard(app: &AppState, name: &str) -> Result<(), ApiError> {
    app.login_failures
        .retain(|_, (_, since)| since.elapsed() <= LOCKOUT_WINDOW);
    let mut entry = app
        .login_failures
        .entry(name.to_owned())
        .or_insert((0, Instant::now()));
    if entry.1.elapsed() > LOCKOUT_WINDOW {
        *entry = (0, Instant::now());
    }
    if entry.0 >= MAX_FAILED_LOGINS {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "locked",
            "too many failed logins; try again in 15 minutes",
        ));
    }
    Ok(())
}

fn record_failure(app: &AppState, name: &str) {
    app.login_failures
        .entry(name.to_owned())
        .or_insert((0, Instant::now()))
        .0 += 1;
}

async fn login(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let (subject, name, role, agent_id) = match (body.username, body.password, body.token) {
        (Some(username), Some(password), None) => {
            let username = username.trim().to_owned();
            guard(&app, &username)?;
            let account = app.store.dashboard_user(&username).await?;
            let ok = match &account {
                Some(a) => verify_password(&password, &a.password_hash),
                // spend the same time on unknown names
                None => verify_password(&password, DUMMY_HASH),
            };
            let Some(account) = account.filter(|_| ok) else {
                record_failure(&app, &username);
                app.store
                    .audit(AuditRecord::new(
                        "dashboard",
                        "login.failed",
                        "dashboard_user",
                        &username,
                    ))
                    .await?;
                return Err(ApiError::unauthorized("wrong username or password"));
            };
            app.store.touch_dashboard_login(account.id).await?;
            (
                format!("dashboard:{}", account.username),
                account.username,
                account.role,
                None,
            )
        }
        (None, None, Some(token)) => {
            let found = app.store.token_by_hash(&hash_token(token.trim())).await?;
            let Some(t) = found else {
                app.store
                    .audit(AuditRecord::new(
                        "dashboard",
                        "login.failed",
                        "api_token",
                        "unknown",
                    ))
                    .await?;
                return Err(ApiError::unauthorized("unknown or revoked token"));
            };
            (format!("token:{}", t.id), t.name, t.role, t.agent_id)
        }
        _ => {
            return Err(ApiError::invalid(
                "username",
                "give username and password, or token",
            ));
        }
    };
    let cookie = super::auth::new_token();
    let csrf = format!("{:032x}", rand::random::<u128>());
    let expires_at = now_ms() + SESSION_LIFETIME.as_millis() as i64;
    app.store
        .create_dashboard_session(
            &hash_token(&cookie),
            &subject,
            role,
            agent_id,
            &csrf,
            expires_at,
        )
        .await?;
    app.store
        .audit(AuditRecord::new(
            &subject,
            "login",
            "dashboard_session",
            &subject,
        ))
        .await?;
    let secure = if app.config.http.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let set = format!(
        "{SESSION_COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_LIFETIME.as_secs()
    );
    let mut response = Json(me_of(&app, name, role, csrf)).into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&set).map_err(ApiError::internal)?,
    );
    Ok(response)
}

async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (parts, _) = axum::http::Request::new(()).into_parts();
    let mut parts = parts;
    parts.headers = headers;
    if let Some(cookie) = super::auth::cookie(&parts, SESSION_COOKIE) {
        let hash = hash_token(cookie);
        if let Some(session) = app.store.dashboard_session(&hash).await? {
            let given = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(given.as_bytes(), session.csrf.as_bytes()) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "missing or wrong X-CSRF-Token",
                ));
            }
        }
        app.store.end_dashboard_session(&hash).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("telebot_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

async fn me(
    State(app): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Json<Me>, ApiError> {
    let (mut parts, _) = axum::http::Request::new(()).into_parts();
    parts.headers = headers;
    let csrf = match super::auth::cookie(&parts, SESSION_COOKIE) {
        Some(c) => app
            .store
            .dashboard_session(&hash_token(c))
            .await?
            .map(|s| s.csrf)
            .unwrap_or_default(),
        None => String::new(),
    };
    Ok(Json(me_of(&app, caller.name, caller.role, csrf)))
}

/// An argon2id hash of a random password, verified against when a name is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$T0Rl8G4Yn0pGkYb0Nx1y8r4dS4fQ1q1m1xZ3q3u1x0I";
