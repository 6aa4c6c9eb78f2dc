//! The session actor: one per Telegram user (bot subsystem, under the router). It handles that
//! user's updates strictly in order, keeps the little state a conversation needs (language, the
//! text the bot waits for), restores it from the database when it starts and saves it when it
//! changes. The router stops it after `telegram.session_idle_timeout` without updates.
//!
//! The state stays small and the user is loaded on the first update rather than at spawn, so an
//! idle session costs little memory and spawning one costs no database round trip.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use teloxide::types::{Update, User};
use tracing::Instrument;

use crate::bot::screens;
use crate::bot::texts::{language_for, parse_language};
use crate::bot::{BotEnv, SavedState, Session};
use crate::messages::bot::SessionMsg;
use crate::ratelimit::Decision;
use crate::store::TelegramProfile;

pub struct SessionActor {
    pub env: Arc<BotEnv>,
}

pub struct SessionState {
    telegram_id: i64,
    session: Option<Session>,
}

/// The Telegram user behind an update, if it has one (channel posts do not).
pub fn sender(update: &Update) -> Option<&User> {
    update.from()
}

impl SessionActor {
    /// Loads (or creates) the user on the first update of this session.
    async fn load(
        &self,
        telegram_id: i64,
        from: &User,
    ) -> Result<Session, crate::store::StoreError> {
        let profile = TelegramProfile {
            telegram_id,
            username: from.username.clone(),
            first_name: from.first_name.chars().take(128).collect(),
            language: language_for(from.language_code.as_deref(), self.env.default_language)
                .code()
                .to_owned(),
        };
        let (user, created) = self.env.store.upsert_telegram_user(&profile).await?;
        let saved: SavedState = serde_json::from_str(&user.session_state).unwrap_or_default();
        Ok(Session {
            telegram_id,
            user_id: user.id,
            lang: parse_language(&user.language),
            first_name: user.first_name,
            first_contact: created,
            saved,
        })
    }

    async fn on_update(
        &self,
        state: &mut SessionState,
        update: &Update,
    ) -> Result<(), ActorProcessingErr> {
        let Some(from) = sender(update) else {
            return Ok(());
        };
        if state.session.is_none() {
            state.session = Some(self.load(state.telegram_id, from).await?);
        }
        let Some(session) = state.session.as_mut() else {
            return Ok(());
        };
        match self.env.limiter.check(state.telegram_id).await {
            Decision::Allowed => {}
            Decision::LimitedNotify => {
                if let Err(e) = screens::rate_limited(&self.env, session).await {
                    tracing::debug!(error = %e, "rate-limit notice not sent");
                }
                return Ok(());
            }
            Decision::Limited => return Ok(()),
        }
        let before = session.saved.clone();
        if let Err(e) = screens::handle(&self.env, session, update).await {
            tracing::warn!(error = %e, "update not fully handled");
        }
        session.first_contact = false;
        tracing::debug!("update handled");
        if session.saved != before {
            let json = serde_json::to_string(&session.saved).unwrap_or_else(|_| "{}".to_owned());
            self.env
                .store
                .save_session_state(session.user_id, &json)
                .await?;
        }
        Ok(())
    }
}

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = i64;

    async fn pre_start(
        &self,
        _: ActorRef<SessionMsg>,
        telegram_id: i64,
    ) -> Result<SessionState, ActorProcessingErr> {
        Ok(SessionState {
            telegram_id,
            session: None,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<SessionMsg>,
        msg: SessionMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SessionMsg::Update(update, received) => {
                let kind = screens::kind_of(&update);
                let span = tracing::info_span!(
                    "update",
                    update_id = update.id.0,
                    user = state.telegram_id,
                    kind
                );
                // boxed: the actor's idle footprint stays small whatever this future holds
                Box::pin(self.on_update(state, &update))
                    .instrument(span)
                    .await?;
                metrics::counter!("bot_updates_total", "kind" => kind).increment(1);
                metrics::histogram!("bot_update_duration_seconds")
                    .record(received.elapsed().as_secs_f64());
            }
        }
        Ok(())
    }
}
