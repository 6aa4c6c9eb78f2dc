//! Bearer-token authentication. Tokens are random strings shown once; only their SHA-256 hash is
//! stored. A request without a token, or with an unknown or revoked one, gets 401; a valid token
//! whose role lacks the right gets 403.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::domain::Role;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: i64,
    pub name: String,
    pub role: Role,
    pub agent_id: Option<i64>,
}

impl Caller {
    /// The audit-log name of this caller.
    pub fn actor(&self) -> String {
        format!("token:{}", self.token_id)
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
        if agent.status != "active" {
            return Err(ApiError::forbidden(format!(
                "the agent is {}",
                agent.status
            )));
        }
        let granted: Vec<String> = serde_json::from_str(&agent.permissions).unwrap_or_default();
        if !granted.iter().any(|g| g == permission) {
            return Err(ApiError::forbidden(format!(
                "this agent lacks the {permission} permission"
            )));
        }
        Ok(Some(id))
    }
}

/// A new random token: `tb_` and 43 characters of base58.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("tb_{}", bs58::encode(bytes).into_string())
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
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
        let found = app.store.token_by_hash(&hash_token(token)).await?;
        let token = found.ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
        let store = app.store.clone();
        let id = token.id;
        tokio::spawn(async move {
            let _ = store.touch_token(id).await;
        });
        Ok(Caller {
            token_id: token.id,
            name: token.name,
            role: token.role,
            agent_id: token.agent_id,
        })
    }
}
