//! Messages of the [periodic workers](crate::actors::periodic): the reconciler, the outbox
//! worker, the callback worker and the broadcaster.

pub enum PeriodicMsg {
    /// Time for a round (sent by the actor's own timer).
    Tick,
}
