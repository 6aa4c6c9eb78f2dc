//! `/audit`: the append-only record of every privileged action and state change.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::{ApiQuery, Listing, PageParams};
use crate::domain::Role;
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::store::{AuditEntry, AuditFilter};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Who acted: `token:<id>`, `user:<id>`, `system`, `bot`, `cli`, `dashboard:<name>`.
    pub actor: Option<String>,
    /// `order`, `transfer`, `product`, `agent`, `payout`, `token`, `user`, ...
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    /// For example `order.paid`.
    pub action: Option<String>,
    /// At or after (Unix ms).
    pub since: Option<i64>,
    /// Before (Unix ms).
    pub until: Option<i64>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Listing<AuditEntry>), (status = 401), (status = 403), (status = 422)))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Listing<AuditEntry>>, ApiError> {
    caller.require(&[Role::Admin, Role::Operator])?;
    let page = PageParams {
        limit: q.limit,
        offset: q.offset,
    }
    .page()?;
    for (field, v) in [
        ("actor", &q.actor),
        ("entity", &q.entity),
        ("entity_id", &q.entity_id),
        ("action", &q.action),
    ] {
        if v.as_ref().is_some_and(|s| s.len() > 100) {
            return Err(ApiError::invalid(field, "at most 100 characters"));
        }
    }
    let filter = AuditFilter {
        actor: q.actor,
        entity: q.entity,
        entity_id: q.entity_id,
        action: q.action,
        since: q.since,
        until: q.until,
    };
    Ok(Json(Listing::new(
        app.store.list_audit(&filter, page).await?,
        page,
    )))
}
