//! The update router (bot subsystem): gives every Telegram user a session actor and passes each
//! update to it. Routing is all it does, so one user's flood fills only that user's mailbox;
//! rate limiting and the work happen in the sessions, in parallel.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use teloxide::types::UpdateKind;

use super::session::{SessionActor, sender};
use super::{ActorCallError, call_slot, cast_slot};
use crate::bot::BotEnv;
use crate::messages::bot::{RouterMsg, SessionMsg};
use crate::supervision::ActorSlot;

const NAME: &str = "bot router";
/// How long a stopping router waits for its sessions to finish the update in hand.
const SESSION_STOP_WAIT: Duration = Duration::from_secs(3);
/// Update ids remembered to drop repeats (Telegram redelivers unconfirmed updates).
const RECENT_UPDATES: usize = 4096;

#[derive(Clone)]
pub struct BotRouter {
    pub env: Arc<BotEnv>,
}

pub struct RouterState {
    /// Live sessions with the time of their user's last update.
    sessions: HashMap<i64, (ActorRef<SessionMsg>, Instant)>,
    by_actor: HashMap<ActorId, i64>,
    active: metrics::Gauge,
    recent: HashSet<u32>,
    recent_order: VecDeque<u32>,
}

impl RouterState {
    /// `false` if this update id was seen recently.
    fn first_time(&mut self, id: u32) -> bool {
        if !self.recent.insert(id) {
            return false;
        }
        self.recent_order.push_back(id);
        if self.recent_order.len() > RECENT_UPDATES
            && let Some(old) = self.recent_order.pop_front()
        {
            self.recent.remove(&old);
        }
        true
    }

    /// A session ended; the user may already have a newer one, which stays.
    fn forget(&mut self, id: &ActorId) {
        if let Some(user) = self.by_actor.remove(id)
            && self
                .sessions
                .get(&user)
                .is_some_and(|(a, _)| a.get_id() == *id)
        {
            self.sessions.remove(&user);
        }
        self.active.set(self.sessions.len() as f64);
    }
}

impl BotRouter {
    async fn session(
        &self,
        myself: &ActorRef<RouterMsg>,
        state: &mut RouterState,
        user: i64,
    ) -> Result<ActorRef<SessionMsg>, ActorProcessingErr> {
        if let Some((s, seen)) = state.sessions.get_mut(&user) {
            *seen = Instant::now();
            return Ok(s.clone());
        }
        let (actor, _) = Actor::spawn_linked(
            None,
            SessionActor {
                env: self.env.clone(),
            },
            user,
            myself.get_cell(),
        )
        .await?;
        state.by_actor.insert(actor.get_id(), user);
        state.sessions.insert(user, (actor.clone(), Instant::now()));
        state.active.set(state.sessions.len() as f64);
        Ok(actor)
    }
}

impl Actor for BotRouter {
    type Msg = RouterMsg;
    type State = RouterState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<RouterMsg>,
        _: (),
    ) -> Result<RouterState, ActorProcessingErr> {
        // one sweep for all sessions instead of a timer per session keeps idle sessions small
        let every =
            (self.env.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(30));
        myself.send_interval(every, || RouterMsg::Sweep);
        Ok(RouterState {
            sessions: HashMap::new(),
            by_actor: HashMap::new(),
            active: metrics::gauge!("bot_sessions_active"),
            recent: HashSet::new(),
            recent_order: VecDeque::new(),
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<RouterMsg>,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        // sessions finish the update they are handling and save their state before the router
        // goes: once it returns, ractor would end its children wherever they are
        let stopping = state
            .sessions
            .values()
            .map(|(s, _)| s.stop_and_wait(Some("shutdown".to_owned()), Some(SESSION_STOP_WAIT)));
        for (result, (s, _)) in futures_util::future::join_all(stopping)
            .await
            .into_iter()
            .zip(state.sessions.values())
        {
            if result.is_err() {
                s.kill();
            }
        }
        state.active.set(0.0);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<RouterMsg>,
        msg: RouterMsg,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RouterMsg::Incoming(update) => {
                if !state.first_time(update.id.0) {
                    metrics::counter!("bot_updates_total", "kind" => "repeated").increment(1);
                    return Ok(());
                }
                // Stars payments do not queue behind chat updates nor meet the chat rate limit:
                // Telegram waits at most 10 s for a pre-checkout answer
                match &update.kind {
                    UpdateKind::PreCheckoutQuery(q) => {
                        let (env, q) = (self.env.clone(), q.clone());
                        tokio::spawn(
                            async move { crate::bot::stars::on_pre_checkout(&env, &q).await },
                        );
                        metrics::counter!("bot_updates_total", "kind" => "pre_checkout")
                            .increment(1);
                        return Ok(());
                    }
                    UpdateKind::Message(m) if crate::bot::stars::is_payment_message(m) => {
                        let (env, m) = (self.env.clone(), m.clone());
                        tokio::spawn(async move {
                            crate::bot::stars::on_payment_message(&env, &m).await
                        });
                        metrics::counter!("bot_updates_total", "kind" => "payment").increment(1);
                        return Ok(());
                    }
                    _ => {}
                }
                let Some(user) = sender(&update).filter(|u| !u.is_bot).map(|u| u.id.0 as i64)
                else {
                    // channel posts, updates without a sender: nothing to answer
                    metrics::counter!("bot_updates_total", "kind" => "ignored").increment(1);
                    return Ok(());
                };
                let received = Instant::now();
                let session = self.session(&myself, state, user).await?;
                if let Err(ractor::MessagingErr::SendErr(SessionMsg::Update(update, received))) =
                    session.cast(SessionMsg::Update(update, received))
                {
                    // the session was stopping (idle): start a fresh one for this update
                    state.forget(&session.get_id());
                    let fresh = self.session(&myself, state, user).await?;
                    let _ = fresh.cast(SessionMsg::Update(update, received));
                }
            }
            RouterMsg::Sessions(reply) => {
                let _ = reply.send(state.sessions.len());
            }
            RouterMsg::Sweep => {
                let idle = self.env.idle_timeout;
                let expired: Vec<i64> = state
                    .sessions
                    .iter()
                    .filter(|(_, (_, seen))| seen.elapsed() >= idle)
                    .map(|(user, _)| *user)
                    .collect();
                for user in expired {
                    if let Some((session, _)) = state.sessions.remove(&user) {
                        // drain: anything already in its mailbox is handled before it stops
                        let _ = session.drain();
                    }
                }
                state.active.set(state.sessions.len() as f64);
                self.env.limiter.sweep(crate::domain::now_ms());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<RouterMsg>,
        evt: SupervisionEvent,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => state.forget(&cell.get_id()),
            SupervisionEvent::ActorFailed(cell, err) => {
                // the next update of this user starts a new session from the database
                tracing::warn!(error = %err, "session failed; it restarts with the user's next update");
                metrics::counter!("actor_restarts_total", "subsystem" => "bot/session")
                    .increment(1);
                state.forget(&cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }
}

/// How the intake and the webhook route hand updates to the bot.
#[derive(Clone)]
pub struct BotHandle {
    slot: ActorSlot<RouterMsg>,
}

impl BotHandle {
    pub fn new(slot: ActorSlot<RouterMsg>) -> Self {
        BotHandle { slot }
    }

    pub fn slot(&self) -> &ActorSlot<RouterMsg> {
        &self.slot
    }

    pub fn deliver(&self, update: teloxide::types::Update) -> Result<(), ActorCallError> {
        cast_slot(&self.slot, NAME, RouterMsg::Incoming(Box::new(update)))
    }

    pub async fn sessions(&self) -> Result<usize, ActorCallError> {
        call_slot(
            &self.slot,
            NAME,
            std::time::Duration::from_secs(5),
            RouterMsg::Sessions,
        )
        .await
    }
}
