//! Messages of the [reconciler](crate::actors::reconciler).

pub enum ReconcilerMsg {
    /// Place what is pending (sent by the actor's own timer).
    Run,
}
