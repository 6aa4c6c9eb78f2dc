//! Supervision: the tree of subsystems, the restart strategy, and the registry operators use to
//! see and restart subsystems.
//!
//! The tree itself is drawn once, in the crate documentation (src/lib.rs); src/app.rs builds
//! it.
//!
//! Each supervisor restarts a failed child after an exponential backoff, allows at most
//! `supervision.max_restarts` within `supervision.restart_window`, then gives up and fails
//! itself, which hands the decision to its parent. Every restart is logged and counted in
//! `actor_restarts_total{subsystem}`. The HTTP server runs beside the tree under the same
//! shutdown signal.

use std::future::Future;
use std::pin::Pin;

pub mod leader;
pub mod registry;
pub mod slot;
pub mod strategy;
pub mod supervisor;

pub use leader::Leadership;
pub use registry::{ChildState, Registry, SubsystemStatus};
pub use slot::ActorSlot;
pub use strategy::{Decision, RestartBudget, RestartPolicy, Strategy};
pub use supervisor::{ChildSpec, StartFn, Supervisor};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub use crate::messages::supervisor::SupervisionError;
