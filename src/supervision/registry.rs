//! The registry of supervised subsystems: what runs, since when, how often it restarted, and
//! the way for operators to restart one.
//!
//! Every supervisor writes the state of its children here under a path (`payments`,
//! `payments/matcher`), together with a reference to itself, so a restart request for any path
//! goes to the supervisor that owns that child.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use ractor::{ActorCell, ActorRef};
use serde::Serialize;

use super::SupervisionError;
use crate::domain::now_ms;
use crate::messages::supervisor::SupervisorMsg;

/// Life state of a supervised child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    Starting,
    Running,
    /// Failed; waiting out its backoff before the next start.
    Restarting,
    /// Its supervisor gave up (restart budget spent) and escalated.
    Failed,
    Stopped,
}

/// What the registry tells operators about one subsystem.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubsystemStatus {
    pub path: String,
    pub state: ChildState,
    pub uptime_secs: u64,
    pub restarts: u64,
    pub started_at: Option<i64>,
    pub last_error: Option<String>,
}

struct Entry {
    state: ChildState,
    since: Option<Instant>,
    started_at: Option<i64>,
    restarts: u64,
    last_error: Option<String>,
    owner: ActorRef<SupervisorMsg>,
    cell: Option<ActorCell>,
}

/// Shared by every supervisor of one application instance; cheap to clone.
#[derive(Clone, Default)]
pub struct Registry {
    entries: Arc<DashMap<String, Entry>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every known subsystem, sorted by path (parents before their children).
    pub fn list(&self) -> Vec<SubsystemStatus> {
        let mut out: Vec<SubsystemStatus> = self
            .entries
            .iter()
            .map(|e| status_of(e.key(), e.value()))
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    pub fn status(&self, path: &str) -> Option<SubsystemStatus> {
        self.entries.get(path).map(|e| status_of(path, &e))
    }

    /// Restarts the subsystem at `path` (and everything under it); returns when it runs again.
    pub async fn restart(&self, path: &str, timeout: Duration) -> Result<(), SupervisionError> {
        let owner = self
            .entries
            .get(path)
            .map(|e| e.owner.clone())
            .ok_or_else(|| SupervisionError::UnknownSubsystem(path.to_owned()))?;
        let child = path.rsplit('/').next().unwrap_or(path).to_owned();
        let result = owner
            .call(
                |reply| SupervisorMsg::Restart { child, reply },
                Some(timeout),
            )
            .await;
        match result {
            Ok(ractor::rpc::CallResult::Success(r)) => r,
            Ok(ractor::rpc::CallResult::Timeout) => Err(SupervisionError::Timeout(path.to_owned())),
            Ok(ractor::rpc::CallResult::SenderError) | Err(_) => {
                Err(SupervisionError::SupervisorDown(path.to_owned()))
            }
        }
    }

    /// Every subsystem is running.
    pub fn all_running(&self) -> bool {
        self.entries.iter().all(|e| e.state == ChildState::Running)
    }

    pub(crate) fn set_state(
        &self,
        path: &str,
        owner: &ActorRef<SupervisorMsg>,
        state: ChildState,
        error: Option<String>,
    ) {
        let mut entry = self
            .entries
            .entry(path.to_owned())
            .or_insert_with(|| Entry {
                state,
                since: None,
                started_at: None,
                restarts: 0,
                last_error: None,
                owner: owner.clone(),
                cell: None,
            });
        entry.owner = owner.clone();
        entry.state = state;
        match state {
            ChildState::Running => {
                entry.since = Some(Instant::now());
                entry.started_at = Some(now_ms());
            }
            _ => {
                entry.since = None;
                entry.cell = None;
            }
        }
        if error.is_some() {
            entry.last_error = error;
        }
    }

    pub(crate) fn set_cell(&self, path: &str, cell: ActorCell) {
        if let Some(mut e) = self.entries.get_mut(path) {
            e.cell = Some(cell);
        }
    }

    /// The running actor at `path` (for inspection and fault-injection tests).
    pub fn cell(&self, path: &str) -> Option<ActorCell> {
        self.entries.get(path).and_then(|e| e.cell.clone())
    }

    pub(crate) fn count_restart(&self, path: &str) {
        if let Some(mut e) = self.entries.get_mut(path) {
            e.restarts += 1;
        }
    }
}

fn status_of(path: &str, e: &Entry) -> SubsystemStatus {
    SubsystemStatus {
        path: path.to_owned(),
        state: e.state,
        uptime_secs: e.since.map(|s| s.elapsed().as_secs()).unwrap_or(0),
        restarts: e.restarts,
        started_at: e.started_at,
        last_error: e.last_error.clone(),
    }
}
