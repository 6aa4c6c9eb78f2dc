//! `/healthz` (the process answers), `/readyz` (it can do its work) and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;
use crate::supervision::ChildState;

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "alive" }))
}

/// Ready when the database answers and every subsystem runs. The body lists what is wrong.
pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let mut problems = Vec::new();
    let database = match app.store.ping().await {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            problems.push(format!("database: {e}"));
            "unreachable".to_owned()
        }
    };
    let subsystems = app.registry.list();
    for s in &subsystems {
        if s.state != ChildState::Running {
            problems.push(format!("subsystem {} is {:?}", s.path, s.state).to_lowercase());
        }
    }
    if subsystems.is_empty() {
        problems.push("supervision tree not started".to_owned());
    }
    let leader = app.leadership.is_leader();
    if leader {
        // an instance that follows does not scan: its scanners are idle, not stalled
        let threshold =
            i64::try_from(app.config.tron.stall_threshold.as_millis()).unwrap_or(i64::MAX);
        problems.extend(app.progress.stalled(threshold));
    }
    let scanners: serde_json::Map<String, serde_json::Value> = app
        .progress
        .statuses()
        .into_iter()
        .map(|(name, s)| (name, serde_json::to_value(s).unwrap_or_default()))
        .collect();
    let ready = problems.is_empty();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": database,
        "leader": leader,
        "subsystems": subsystems,
        "scanners": scanners,
        "problems": problems,
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

pub async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::metrics_handle().render(),
    )
}
