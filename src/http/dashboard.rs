//! The operator dashboard at `/admin`: one page and its script and styles, compiled into the
//! binary (no Node step), plus login, logout and "who am I". The page works through the REST
//! API with a session cookie; every change it makes carries the session's CSRF token.
//!
//! Pages are served with a strict Content-Security-Policy (scripts and styles only from this
//! origin, no inline script), and the script renders every value from users and products as
//! text, never as markup.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api::ApiJson;
use super::auth::{CSRF_HEADER, Caller, SESSION_COOKIE, constant_time_eq, hash_token};
use super::error::ApiError;
use super::login_guard::{MAX_USERNAME_CHARS, Refusal};
use crate::domain::{Role, now_ms};
use crate::store::AuditRecord;

const INDEX: &str = include_str!("../../assets/dashboard/index.html");
const SCRIPT: &str = include_str!("../../assets/dashboard/app.js");
const STYLE: &str = include_str!("../../assets/dashboard/app.css");
/// The charting library, vendored unchanged (assets/dashboard/vendor/uplot/, MIT).
const CHARTS_SCRIPT: &str = include_str!("../../assets/dashboard/vendor/uplot/uPlot.iife.min.js");
const CHARTS_STYLE: &str = include_str!("../../assets/dashboard/vendor/uplot/uPlot.min.css");

/// How long a dashboard session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(index))
        .route("/admin/", get(index))
        .route("/admin/assets/app.js", get(script))
        .route("/admin/assets/app.css", get(style))
        .route(
            "/admin/assets/vendor/uplot.js",
            get(|| async { page("text/javascript; charset=utf-8", CHARTS_SCRIPT) }),
        )
        .route(
            "/admin/assets/vendor/uplot.css",
            get(|| async { page("text/css; charset=utf-8", CHARTS_STYLE) }),
        )
        .route("/admin/api/login", post(login))
        .route("/admin/api/logout", post(logout))
        .route("/admin/api/me", get(me))
        .route("/admin/api/session", get(session))
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
        demo: app.config.tron.is_demo(),
        simulator: app.simulator.is_some(),
    }
}

fn refused(r: Refusal) -> ApiError {
    let (code, message, retry_after) = match r {
        Refusal::Locked { retry_after } => (
            "locked",
            format!(
                "too many failed logins; try again in {} minutes",
                retry_after.as_secs().div_ceil(60)
            ),
            retry_after.as_secs().max(1),
        ),
        Refusal::Busy => (
            "busy",
            "too many logins are being checked; try again in a second".to_owned(),
            1,
        ),
    };
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message).with_retry_after(retry_after)
}

/// The address a login comes from: the TCP peer, or with `security.client_address_header` set
/// (behind a reverse proxy) the last address in that header, which the proxy wrote.
fn client_address(app: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
    let header = app.config.security.client_address_header.as_str();
    if !header.is_empty()
        && let Some(ip) = headers
            .get_all(header)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|a| a.trim().parse::<IpAddr>().ok())
    {
        return ip;
    }
    peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip())
}

async fn login(
    State(app): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let address = client_address(&app, &headers, peer.map(|Extension(ConnectInfo(p))| p));
    let (subject, name, role, agent_id) = match (body.username, body.password, body.token) {
        (Some(username), Some(password), None) => {
            let username = username.trim();
            if username.chars().count() > MAX_USERNAME_CHARS {
                return Err(ApiError::invalid(
                    "username",
                    format!("at most {MAX_USERNAME_CHARS} characters"),
                ));
            }
            let attempt = app
                .login_guard
                .reserve(Some(username), address)
                .map_err(refused)?;
            let account = if crate::domain::account::is_account_name(username) {
                app.store.dashboard_user(username).await?
            } else {
                None
            };
            // unknown names cost the same check, so timing does not tell which names exist
            let hash = account
                .as_ref()
                .map_or(DUMMY_HASH, |a| a.password_hash.as_str());
            let ok = match app.login_guard.check_password(&password, hash).await {
                Ok(ok) => ok,
                Err(r) => {
                    attempt.not_tried();
                    return Err(refused(r));
                }
            };
            let account = match account {
                Some(a) if ok => a,
                other => {
                    let recorded = match other {
                        Some(a) => a.username,
                        None => app.login_guard.unknown_name(username),
                    };
                    drop(attempt);
                    app.store
                        .audit(AuditRecord::new(
                            "dashboard",
                            "login.failed",
                            "dashboard_user",
                            &recorded,
                        ))
                        .await?;
                    return Err(ApiError::unauthorized("wrong username or password"));
                }
            };
            attempt.succeeded();
            app.store.touch_dashboard_login(account.id).await?;
            (
                format!("dashboard:{}", account.username),
                account.username,
                account.role,
                None,
            )
        }
        (None, None, Some(token)) => {
            let attempt = app.login_guard.reserve(None, address).map_err(refused)?;
            let token = token.trim();
            let found = if token.is_empty() || token.len() > 200 {
                None
            } else {
                app.store.token_by_hash(&hash_token(token)).await?
            };
            let Some(t) = found else {
                drop(attempt);
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
            attempt.succeeded();
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
    caller: Caller,
    request: axum::extract::Request,
) -> Result<Json<Me>, ApiError> {
    let (parts, _) = request.into_parts();
    Ok(Json(session_of(&app, &parts, caller).await?))
}

/// What the page needs of a logged-in caller, with the CSRF token of its session cookie.
async fn session_of(app: &AppState, parts: &Parts, caller: Caller) -> Result<Me, ApiError> {
    let csrf = match super::auth::cookie(parts, SESSION_COOKIE) {
        Some(c) => app
            .store
            .dashboard_session(&hash_token(c))
            .await?
            .map(|s| s.csrf)
            .unwrap_or_default(),
        None => String::new(),
    };
    Ok(me_of(app, caller.name, caller.role, csrf))
}

/// Who is logged in, if anyone: what the page asks on a fresh load. Unlike `/admin/api/me` it
/// answers 200 either way (`{"me": null}` without a session), so opening the dashboard logged
/// out leaves no failed request in the browser's console.
async fn session(
    State(app): State<AppState>,
    request: axum::extract::Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (mut parts, _) = request.into_parts();
    match Caller::from_request_parts(&mut parts, &app).await {
        Ok(caller) => Ok(Json(
            serde_json::json!({ "me": session_of(&app, &parts, caller).await? }),
        )),
        Err(_) => Ok(Json(serde_json::json!({ "me": null }))),
    }
}

/// An argon2id hash of a random password, verified against when a name is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$T0Rl8G4Yn0pGkYb0Nx1y8r4dS4fQ1q1m1xZ3q3u1x0I";
