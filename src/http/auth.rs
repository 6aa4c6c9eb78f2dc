//! Authentication of API calls: a bearer token (random, shown once, stored as a SHA-256 hash), or
//! a dashboard session cookie (HttpOnly, SameSite=Strict) whose state-changing requests must also
//! carry the session's CSRF token in `X-CSRF-Token`. No credentials, or unknown or revoked ones:
//! 401; a valid caller whose role lacks the right: 403.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

pub use crate::accounts::{
    constant_time_eq, hash_password, hash_token, new_token, verify_password,
};

use super::AppState;
use super::error::ApiError;
use crate::domain::{Role, now_ms};

/// Name of the dashboard's session cookie.
pub const SESSION_COOKIE: &str = "telebot_session";
/// Header that carries the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A token's `last_used_at` is written again once it is this old (milliseconds).
const TOUCH_EVERY_MS: i64 = 60_000;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The audit-log name: `token:<id>` or `dashboard:<username>`.
    pub subject: String,
    pub name: String,
    pub role: Role,
    pub agent_id: Option<i64>,
}

impl Caller {
    /// The audit-log name of this caller.
    pub fn audit_name(&self) -> String {
        self.subject.clone()
    }

    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the {} role may not do this",
                self.role
            )))
        }
    }
}

impl Caller {
    /// For an agent token: the agent it acts as, if that agent is active and holds
    /// `permission` (403 otherwise). `None` for every other role.
    pub async fn agent_scope(
        &self,
        store: &crate::store::Store,
        permission: &str,
    ) -> Result<Option<i64>, ApiError> {
        if self.role != Role::Agent {
            return Ok(None);
        }
        let id = self
            .agent_id
            .ok_or_else(|| ApiError::forbidden("this agent token is not bound to an agent"))?;
        let agent = store.agent(id).await?;
        let granted: Vec<String> = serde_json::from_str(&agent.permissions).unwrap_or_default();
        if !granted.iter().any(|g| g == permission) {
            return Err(ApiError::forbidden(format!(
                "this agent lacks the {permission} permission"
            )));
        }
        Ok(Some(id))
    }

    /// The agent a listing is narrowed to: what the caller asked for, or, for an agent, its own
    /// id; an agent asking for another's is refused with `refusal`.
    pub async fn listing_agent(
        &self,
        store: &crate::store::Store,
        permission: &str,
        asked: Option<i64>,
        refusal: &str,
    ) -> Result<Option<i64>, ApiError> {
        match self.agent_scope(store, permission).await? {
            None => Ok(asked),
            Some(own) if asked.is_none_or(|a| a == own) => Ok(Some(own)),
            Some(_) => Err(ApiError::forbidden(refusal)),
        }
    }
}

/// The value of one cookie of a request.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        if parts.headers.get(AUTHORIZATION).is_none()
            && let Some(session) = cookie(parts, SESSION_COOKIE)
        {
            return session_caller(parts, app, session).await;
        }
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 200)
            .ok_or_else(|| ApiError::unauthorized("malformed Authorization header"))?;
        let hash = hash_token(token);
        let found = app.store.live_token(&hash).await?;
        let token = found.ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
        // last use is kept to the minute: a write per request would serialise every API call
        // behind the database's write lock
        if token
            .last_used_at
            .is_none_or(|at| now_ms() - at >= TOUCH_EVERY_MS)
        {
            let store = app.store.clone();
            let id = token.id;
            store.note_token_use(&hash, now_ms());
            tokio::spawn(async move {
                let _ = store.touch_token(id, TOUCH_EVERY_MS).await;
            });
        }
        let caller = Caller {
            subject: format!("token:{}", token.id),
            name: token.name,
            role: token.role,
            agent_id: token.agent_id,
        };
        caller.require_active_agent(app).await?;
        Ok(caller)
    }
}

impl Caller {
    /// An agent's token or dashboard session works only while the agent is active: suspended,
    /// rejected or still pending, every request is refused with 403 `agent_inactive`.
    async fn require_active_agent(&self, app: &AppState) -> Result<(), ApiError> {
        if self.role != Role::Agent {
            return Ok(());
        }
        let Some(id) = self.agent_id else {
            return Err(ApiError::forbidden(
                "this agent token is not bound to an agent",
            ));
        };
        let status = match app.store.agent(id).await {
            Ok(agent) => agent.status.to_string(),
            Err(crate::store::StoreError::NotFound(_)) => "removed".to_owned(),
            Err(e) => return Err(e.into()),
        };
        if status == crate::domain::AgentStatus::Active.as_str() {
            Ok(())
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "agent_inactive",
                format!("the agent is {status}; its tokens do not work until it is active again"),
            ))
        }
    }
}

async fn session_caller(parts: &Parts, app: &AppState, cookie: &str) -> Result<Caller, ApiError> {
    if cookie.len() > 200 {
        return Err(ApiError::unauthorized("malformed session cookie"));
    }
    let session = app
        .store
        .dashboard_session(&hash_token(cookie))
        .await?
        .ok_or_else(|| ApiError::unauthorized("the session has ended; log in again"))?;
    let safe = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if !safe {
        let given = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), session.csrf.as_bytes()) {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "csrf",
                "missing or wrong X-CSRF-Token",
            ));
        }
    }
    let caller = Caller {
        name: session
            .subject
            .split_once(':')
            .map(|(_, n)| n.to_owned())
            .unwrap_or_default(),
        subject: session.subject,
        role: session.role,
        agent_id: session.agent_id,
    };
    caller.require_active_agent(app).await?;
    Ok(caller)
}
