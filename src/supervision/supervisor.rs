//! The generic supervisor actor: starts its children in order, restarts them by its
//! [`RestartPolicy`] when they fail, escalates to its own parent when the restart budget is spent,
//! and stops them in reverse order when it stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::registry::{ChildState, Registry};
use super::strategy::{Decision, RestartBudget, RestartPolicy, Strategy};
use super::{BoxFuture, SupervisionError};
use crate::messages::supervisor::SupervisorMsg;

/// Starts one child, linked to the given supervisor cell, and re-points whatever handles talk to
/// it. Called again on every restart.
pub type StartFn = Arc<
    dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, ActorProcessingErr>> + Send + Sync,
>;

/// A child as its supervisor knows it: a name and how to start it.
#[derive(Clone)]
pub struct ChildSpec {
    pub name: String,
    pub start: StartFn,
}

impl ChildSpec {
    pub fn new<F, Fut>(name: impl Into<String>, start: F) -> Self
    where
        F: Fn(ActorCell) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<ActorCell, ActorProcessingErr>> + Send + 'static,
    {
        ChildSpec {
            name: name.into(),
            start: Arc::new(move |sup| Box::pin(start(sup))),
        }
    }

    /// A child that is itself a supervisor of `children`.
    pub fn supervisor(
        name: impl Into<String>,
        path: String,
        policy: RestartPolicy,
        children: Vec<ChildSpec>,
        registry: Registry,
        stop_timeout: Duration,
    ) -> Self {
        let spec = Supervisor {
            path,
            policy,
            children,
            registry,
            stop_timeout,
        };
        ChildSpec::new(name, move |sup: ActorCell| {
            let spec = spec.clone();
            async move {
                let (actor, _) = Actor::spawn_linked(None, spec, (), sup).await?;
                Ok(actor.get_cell())
            }
        })
    }
}

/// Configuration of one supervisor (read-only; live children are in [`SupervisorState`]).
#[derive(Clone)]
pub struct Supervisor {
    /// Where this supervisor sits in the tree ("" for the root, "payments", ...).
    pub path: String,
    pub policy: RestartPolicy,
    pub children: Vec<ChildSpec>,
    pub registry: Registry,
    /// How long a stopping child may take to finish its work.
    pub stop_timeout: Duration,
}

struct Child {
    spec: ChildSpec,
    path: String,
    cell: Option<ActorCell>,
    budget: RestartBudget,
    generation: u64,
}

pub struct SupervisorState {
    children: Vec<Child>,
}

impl Supervisor {
    fn child_path(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{}", self.path, name)
        }
    }

    async fn start_child(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        child: &mut Child,
    ) -> Result<(), ActorProcessingErr> {
        self.registry
            .set_state(&child.path, myself, ChildState::Starting, None);
        let cell = (child.spec.start)(myself.get_cell()).await?;
        child.cell = Some(cell.clone());
        self.registry
            .set_state(&child.path, myself, ChildState::Running, None);
        self.registry.set_cell(&child.path, cell);
        Ok(())
    }

    /// Handles a child that died or could not start: restart after backoff, or escalate.
    fn on_child_failure(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        index: usize,
        reason: String,
    ) -> Result<(), ActorProcessingErr> {
        let now = Instant::now();
        let child = &mut state.children[index];
        child.cell = None;
        let decision = child.budget.on_failure(&self.policy, now);
        match decision {
            Decision::Escalate => {
                tracing::error!(
                    subsystem = %child.path,
                    reason = %reason,
                    max_restarts = self.policy.max_restarts,
                    window = ?self.policy.window,
                    "restart budget spent; escalating to the parent supervisor"
                );
                self.registry.set_state(
                    &child.path,
                    myself,
                    ChildState::Failed,
                    Some(reason.clone()),
                );
                Err(Box::new(SupervisionError::Escalated {
                    child: child.path.clone(),
                    reason,
                }))
            }
            Decision::Restart(delay) => {
                let victims: Vec<usize> = match self.policy.strategy {
                    Strategy::OneForOne => vec![index],
                    Strategy::OneForAll => (0..state.children.len()).collect(),
                };
                for i in victims {
                    let c = &mut state.children[i];
                    if let Some(cell) = c.cell.take() {
                        // siblings stop too under one-for-all; their exit events no longer
                        // match a current child and are ignored
                        cell.stop(Some("sibling failed (one-for-all)".to_owned()));
                    }
                    c.generation += 1;
                    tracing::warn!(
                        subsystem = %c.path,
                        reason = %reason,
                        delay_ms = delay.as_millis() as u64,
                        "restarting after failure"
                    );
                    metrics::counter!("actor_restarts_total", "subsystem" => c.path.clone())
                        .increment(1);
                    self.registry.count_restart(&c.path);
                    self.registry.set_state(
                        &c.path,
                        myself,
                        ChildState::Restarting,
                        (i == index).then(|| reason.clone()),
                    );
                    let msg = SupervisorMsg::StartChild {
                        child: c.spec.name.clone(),
                        generation: c.generation,
                    };
                    myself.send_after(delay, move || msg);
                }
                Ok(())
            }
        }
    }

    fn index_of_cell(state: &SupervisorState, cell: &ActorCell) -> Option<usize> {
        let id = cell.get_id();
        state
            .children
            .iter()
            .position(|c| c.cell.as_ref().is_some_and(|x| x.get_id() == id))
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = SupervisorState {
            children: self
                .children
                .iter()
                .map(|spec| Child {
                    path: {
                        let path = self.child_path(&spec.name);
                        // exported at zero from the start, so rate() and absent() work at once
                        metrics::counter!("actor_restarts_total", "subsystem" => path.clone())
                            .increment(0);
                        path
                    },
                    spec: spec.clone(),
                    cell: None,
                    budget: RestartBudget::default(),
                    generation: 0,
                })
                .collect(),
        };
        for i in 0..state.children.len() {
            if let Err(e) = self.start_child(&myself, &mut state.children[i]).await {
                let path = state.children[i].path.clone();
                self.registry
                    .set_state(&path, &myself, ChildState::Failed, Some(e.to_string()));
                // children started so far stop with us
                for c in state.children[..i].iter().rev() {
                    if let Some(cell) = &c.cell {
                        stop_gracefully(cell, &c.path, "start-up failed", self.stop_timeout).await;
                    }
                }
                return Err(format!("{path} failed to start: {e}").into());
            }
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for c in state.children.iter_mut().rev() {
            if let Some(cell) = c.cell.take() {
                stop_gracefully(&cell, &c.path, "shutdown", self.stop_timeout).await;
            }
            self.registry
                .set_state(&c.path, &myself, ChildState::Stopped, None);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::StartChild { child, generation } => {
                let Some(index) = state.children.iter().position(|c| c.spec.name == child) else {
                    return Ok(());
                };
                let c = &mut state.children[index];
                if c.generation != generation || c.cell.is_some() {
                    return Ok(());
                }
                if let Err(e) = self.start_child(&myself, c).await {
                    let reason = format!("failed to start: {e}");
                    return self.on_child_failure(&myself, state, index, reason);
                }
                tracing::info!(subsystem = %state.children[index].path, "restarted");
            }
            SupervisorMsg::Restart { child, reply } => {
                let Some(index) = state.children.iter().position(|c| c.spec.name == child) else {
                    let _ = reply.send(Err(SupervisionError::UnknownSubsystem(child)));
                    return Ok(());
                };
                let c = &mut state.children[index];
                c.generation += 1;
                if let Some(cell) = c.cell.take() {
                    stop_gracefully(&cell, &c.path, "restart requested", self.stop_timeout).await;
                }
                tracing::info!(subsystem = %c.path, "restart requested by an operator");
                metrics::counter!("actor_restarts_total", "subsystem" => c.path.clone())
                    .increment(1);
                self.registry.count_restart(&c.path);
                let result = self.start_child(&myself, c).await;
                match result {
                    Ok(()) => {
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let reason = format!("failed to start after a requested restart: {e}");
                        let _ = reply.send(Err(SupervisionError::StartFailed(reason.clone())));
                        return self.on_child_failure(&myself, state, index, reason);
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (
                cell,
                format!(
                    "stopped unexpectedly: {}",
                    reason.unwrap_or_else(|| "no reason".into())
                ),
            ),
            _ => return Ok(()),
        };
        // events of children that were replaced or stopped on purpose do not match a current one
        let Some(index) = Self::index_of_cell(state, &cell) else {
            return Ok(());
        };
        self.on_child_failure(&myself, state, index, reason)
    }
}

/// Asks a child to stop and waits for it to finish its work; kills it if it does not in time.
async fn stop_gracefully(cell: &ActorCell, path: &str, reason: &str, timeout: Duration) {
    if cell
        .stop_and_wait(Some(reason.to_owned()), Some(timeout))
        .await
        .is_err()
    {
        tracing::warn!(subsystem = %path, "did not stop in time; killed");
        cell.kill();
    }
}
