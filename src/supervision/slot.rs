//! A shared, re-pointable reference to an actor, so handles keep working across restarts.
//!
//! The factory that starts an actor stores the new reference in the slot; every handle reads it
//! on each call. While the actor is down the slot is empty and callers get a typed "unavailable"
//! error instead of a dead reference.

use std::sync::{Arc, RwLock};

use ractor::ActorRef;

pub struct ActorSlot<M> {
    inner: Arc<RwLock<Option<ActorRef<M>>>>,
}

impl<M> Clone for ActorSlot<M> {
    fn clone(&self) -> Self {
        ActorSlot {
            inner: self.inner.clone(),
        }
    }
}

impl<M> Default for ActorSlot<M> {
    fn default() -> Self {
        ActorSlot {
            inner: Arc::new(RwLock::new(None)),
        }
    }
}

impl<M> ActorSlot<M> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self, actor: ActorRef<M>) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = Some(actor);
    }

    pub fn get(&self) -> Option<ActorRef<M>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
