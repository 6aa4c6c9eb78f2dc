//! Message enums of the actors, one file per actor, with their reply types. No logic lives here.

pub mod bot;
pub mod matcher;
pub mod notifier;
pub mod orders;
pub mod reconciler;
pub mod scanners;
pub mod supervisor;
