//! Messages of the notifier's actors: the [outbox worker](crate::actors::outbox_worker), the
//! [callback worker](crate::actors::callback_worker) and the [broadcaster](crate::actors::broadcaster).

pub enum OutboxMsg {
    /// Deliver what is due (sent by the actor's own timer).
    Tick,
}

pub enum BroadcastMsg {
    /// Continue any running broadcast (sent by the actor's own timer).
    Tick,
}

pub enum CallbackMsg {
    /// Deliver the merchant callbacks that are due (sent by the actor's own timer).
    Tick,
}
