//! Dashboard accounts and API tokens: creating, changing and revoking them, and how their
//! secrets are made and checked. The REST API, the CLI and demo mode all call these and only
//! translate [`AccessError`] (into a status code, an exit message, a log line).
//!
//! Tokens are `tb_` and 32 random bytes in base58, stored as their SHA-256; passwords are
//! stored as argon2id PHC strings with a random salt.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::Role;
use crate::domain::account::check_account;
use crate::store::{ApiToken, DashboardUser, Store, StoreError};

/// Why an account or token operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// An input breaks its rule; `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no active token #{0} (unknown or already revoked)")]
    NoSuchToken(i64),
    #[error("the password could not be hashed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> AccessError {
    AccessError::Invalid {
        field,
        message: message.into(),
    }
}

/// Creates a dashboard account or sets its password and role, recorded for `by`; ends every
/// session opened with the old password or role.
pub async fn set_account(
    store: &Store,
    username: &str,
    password: &str,
    role: Option<Role>,
    by: &str,
) -> Result<DashboardUser, AccessError> {
    // no role given: an existing account keeps its own, a new one is an operator
    let role = match role {
        Some(role) => role,
        None => store
            .dashboard_user(username)
            .await?
            .map_or(Role::Operator, |u| u.role),
    };
    check_account(username, password, role).map_err(|e| invalid(e.field(), e.to_string()))?;
    let hash = hash_password(password).map_err(AccessError::Hash)?;
    let user = store
        .upsert_dashboard_user(username, &hash, role, by)
        .await?;
    store
        .end_sessions_of(&format!("dashboard:{username}"))
        .await?;
    Ok(user)
}

/// A token just created: the secret, shown this once, and what is stored of it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    /// The secret; shown only now.
    pub token: String,
    #[serde(flatten)]
    pub info: ApiToken,
}

/// Creates an API token, recorded for `by`. An agent token names the agent it acts as; no
/// other token names one.
pub async fn issue_token(
    store: &Store,
    name: &str,
    role: Role,
    agent_id: Option<i64>,
    by: &str,
) -> Result<NewToken, AccessError> {
    crate::domain::text::check_text(name, 1, 64).map_err(|e| invalid("name", e.to_string()))?;
    match (role, agent_id) {
        (Role::Agent, None) => {
            return Err(invalid(
                "agent_id",
                "an agent token needs the agent it acts as",
            ));
        }
        (Role::Agent, Some(id)) => {
            store
                .agent(id)
                .await
                .map_err(|_| invalid("agent_id", "no such agent"))?;
        }
        (_, Some(_)) => return Err(invalid("agent_id", "only agent tokens name an agent")),
        _ => {}
    }
    let token = new_token();
    let info = store
        .create_token(name, role, &hash_token(&token), agent_id, by)
        .await?;
    Ok(NewToken { token, info })
}

/// Revokes a token, recorded for `by`, and ends every dashboard session opened with it.
pub async fn revoke_token(store: &Store, id: i64, by: &str) -> Result<ApiToken, AccessError> {
    let token = match store.revoke_token(id, by).await {
        Ok(t) => t,
        Err(StoreError::NotFound(_)) => return Err(AccessError::NoSuchToken(id)),
        Err(e) => return Err(e.into()),
    };
    store.end_sessions_of(&format!("token:{id}")).await?;
    Ok(token)
}

/// A new random token: `tb_` and the base58 form of 32 random bytes (43 or 44 characters).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("tb_{}", bs58::encode(bytes).into_string())
}

/// What is stored of a token (or a session cookie): its SHA-256, in hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares without stopping at the first difference, so timing reveals nothing of a secret.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An argon2id hash (PHC string) of a password, with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against an argon2 PHC hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_verify_only_against_their_hash() {
        let h = super::hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify_password("correct horse", &h));
        assert!(!super::verify_password("correct hors", &h));
        assert!(!super::verify_password("x", "not a hash"));
        assert_ne!(h, super::hash_password("correct horse").unwrap(), "salted");
    }
}
