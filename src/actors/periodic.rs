//! The pattern every timed singleton shares: a timer, one round at a time run outside the actor
//! (so it keeps answering), rounds only while this instance leads, and a stop that lets a round
//! in flight finish or cancels it, as the worker says. The reconciler, the outbox worker, the
//! callback worker and the broadcaster are [`Round`]s run by [`Periodic`]; the scanners, which
//! pace themselves by what each poll found, share the leadership turn through `FollowGate`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::Job;
use crate::messages::periodic::PeriodicMsg;
use crate::supervision::Leadership;

/// What a periodic worker does each time its timer fires.
pub trait Round: Clone + Send + Sync + 'static {
    /// How long a round in flight may go on when the actor stops. `None` cancels it at once: the
    /// worker's writes are single transactions, so cutting a round leaves nothing half-done.
    /// A worker that sends something and then records it says how long it needs to record it.
    const FINISH_ON_STOP: Option<Duration>;

    /// When the first round runs; by default one period after the start.
    fn first_after(&self) -> Option<Duration> {
        None
    }

    /// One round. `stopping` is set when the actor stops: a long round checks it between steps.
    /// Faults are the round's to log: the next tick simply tries again.
    fn round(&self, stopping: Arc<AtomicBool>) -> impl Future<Output = ()> + Send;
}

/// Runs `worker` every `every` while this instance leads.
#[derive(Clone)]
pub struct Periodic<W> {
    pub worker: W,
    pub every: Duration,
    /// Rounds run only while this instance leads (see [`Leadership`]).
    pub leader: Leadership,
}

impl<W: Round> Periodic<W> {
    pub fn new(worker: W, every: Duration, leader: Leadership) -> Self {
        Periodic {
            worker,
            every,
            leader,
        }
    }
}

pub struct PeriodicState {
    job: Job,
    /// Asks the round in flight to stop before its next step.
    stopping: Arc<AtomicBool>,
}

impl<W: Round> Actor for Periodic<W> {
    type Msg = PeriodicMsg;
    type State = PeriodicState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<PeriodicMsg>,
        _: (),
    ) -> Result<PeriodicState, ActorProcessingErr> {
        if let Some(first) = self.worker.first_after() {
            myself.send_after(first, || PeriodicMsg::Tick);
        }
        myself.send_interval(self.every, || PeriodicMsg::Tick);
        Ok(PeriodicState {
            job: Job::default(),
            stopping: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<PeriodicMsg>,
        state: &mut PeriodicState,
    ) -> Result<(), ActorProcessingErr> {
        state.stopping.store(true, Ordering::Relaxed);
        match W::FINISH_ON_STOP {
            Some(limit) => state.job.finish(limit).await,
            None => state.job.abort(),
        }
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<PeriodicMsg>,
        msg: PeriodicMsg,
        state: &mut PeriodicState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PeriodicMsg::Tick => {
                if !self.leader.is_leader() {
                    return Ok(());
                }
                let worker = self.worker.clone();
                let stopping = state.stopping.clone();
                state.job.start(async move { worker.round(stopping).await });
            }
        }
        Ok(())
    }
}

/// What a scanner does at a tick, given the leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Another instance scans: look again after a poll interval.
    Follow,
    /// This instance has just taken over: read the cursors the last leader saved, then scan.
    TakeOver,
    /// Scan on from where the last poll ended.
    Lead,
}

/// Remembers whether a scanner sat out its last tick, so that taking over reloads the cursors.
#[derive(Debug, Default)]
pub(crate) struct FollowGate {
    following: bool,
}

impl FollowGate {
    /// The turn at a tick where this instance `leading` or not.
    pub(crate) fn turn(&mut self, leading: bool) -> Turn {
        if !leading {
            self.following = true;
            Turn::Follow
        } else if std::mem::take(&mut self.following) {
            Turn::TakeOver
        } else {
            Turn::Lead
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use ractor::Actor;

    use super::{FollowGate, Periodic, Round, Turn};
    use crate::supervision::Leadership;

    #[test]
    fn a_scanner_reloads_its_cursors_once_on_taking_over() {
        let mut gate = FollowGate::default();
        assert_eq!(
            gate.turn(true),
            Turn::Lead,
            "leading from the start: nothing to reload"
        );
        assert_eq!(gate.turn(false), Turn::Follow);
        assert_eq!(gate.turn(false), Turn::Follow);
        assert_eq!(gate.turn(true), Turn::TakeOver);
        assert_eq!(gate.turn(true), Turn::Lead);
    }

    /// Counts its rounds and how many ran at once; each round outlasts a few ticks, and the
    /// third lasts until the actor stops, so the stop has a round in flight to end.
    #[derive(Clone, Default)]
    struct Counting {
        started: Arc<AtomicUsize>,
        running: Arc<AtomicUsize>,
        most_at_once: Arc<AtomicUsize>,
        saw_stop: Arc<AtomicBool>,
    }

    impl Round for Counting {
        const FINISH_ON_STOP: Option<Duration> = Some(Duration::from_secs(2));

        fn first_after(&self) -> Option<Duration> {
            Some(Duration::ZERO)
        }

        async fn round(&self, stopping: Arc<AtomicBool>) {
            let n = self.started.fetch_add(1, Ordering::SeqCst) + 1;
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_at_once.fetch_max(now, Ordering::SeqCst);
            if n < 3 {
                tokio::time::sleep(Duration::from_millis(40)).await;
            } else {
                while !stopping.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                self.saw_stop.store(true, Ordering::SeqCst);
            }
            self.running.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn one_round_at_a_time_and_the_stop_lets_it_end() {
        let worker = Counting::default();
        let periodic = Periodic::new(
            worker.clone(),
            Duration::from_millis(10),
            Leadership::sole(),
        );
        let (actor, handle) = Actor::spawn(None, periodic, ()).await.unwrap();
        // ticks come every 10 ms and a round takes 40: the ticks in between start none
        while worker.started.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(worker.most_at_once.load(Ordering::SeqCst), 1);
        actor.stop(None);
        handle.await.unwrap();
        assert!(
            worker.saw_stop.load(Ordering::SeqCst),
            "the round was told to stop and ended"
        );
    }
}
