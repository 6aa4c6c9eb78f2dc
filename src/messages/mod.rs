//! Message enums of the actors, one file per actor, with their reply types. No logic lives here.

pub mod bot;
pub mod matcher;
pub mod orders;
pub mod periodic;
pub mod scanners;
pub mod supervisor;

/// A call to an actor that did not get an answer. Part of every handle's contract, so it lives
/// with the messages rather than with the actors.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ActorCallError {
    #[error("{0} is not running (restarting?)")]
    Unavailable(&'static str),
    #[error("{0} did not answer in time")]
    Timeout(&'static str),
}
