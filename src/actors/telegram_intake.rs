//! The Telegram intake (bot subsystem): brings updates in and hands them to the router.
//!
//! - Polling (a token, or the built-in simulator): teloxide's long-polling listener runs in a
//!   task owned by this actor. Stopping it drops the in-flight `getUpdates`; updates not yet
//!   confirmed by the next offset are delivered again and the router drops the repeats. While
//!   the router restarts, the update in hand is held and offered again until it is taken.
//! - Webhook: the actor registers `http.public_url` + `/telegram/webhook` with a secret token;
//!   the HTTP server receives the updates and hands them to the router.
//!
//! At start it also registers the command menu in English and Chinese.

use std::time::Duration;

use futures_util::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use teloxide::payloads::SetWebhookSetters;
use teloxide::prelude::Requester;
use teloxide::update_listeners::{AsUpdateStream, Polling};
use tokio::task::JoinHandle;

use super::bot_router::BotHandle;
use crate::bot::commands;
use crate::bot::outbound::Outbound;
use crate::config::{Language, Secret};
use crate::messages::bot::{IntakeMsg, IntakeStatus};
use crate::supervision::Leadership;
use crate::supervision::leader::{until_following, until_leading};

/// How long one `getUpdates` waits for news.
const LONG_POLL: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub enum IntakeMode {
    Polling,
    Webhook { url: String, secret: Secret },
}

#[derive(Clone)]
pub struct TelegramIntake {
    pub outbound: Outbound,
    pub router: BotHandle,
    pub mode: IntakeMode,
    /// Polls only while this instance leads.
    pub leader: Leadership,
}

pub struct IntakeState {
    task: Option<JoinHandle<()>>,
    updates: std::sync::Arc<std::sync::atomic::AtomicU64>,
    last_error: Option<String>,
}

impl TelegramIntake {
    fn start_polling(
        &self,
        myself: &ActorRef<IntakeMsg>,
        counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> JoinHandle<()> {
        let bot = self.outbound.bot().clone();
        let router = self.router.clone();
        let me = myself.clone();
        let mut leading = self.leader.watch();
        tokio::spawn(async move {
            loop {
                // only the leading instance polls: Telegram answers a second poller with 409
                until_leading(&mut leading).await;
                let mut polling = Polling::builder(bot.clone())
                    .timeout(LONG_POLL)
                    .delete_webhook()
                    .await
                    .build();
                let mut stream = Box::pin(polling.as_stream());
                let ended = loop {
                    tokio::select! {
                        item = stream.next() => match item {
                            Some(Ok(update)) => {
                                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                hand_over(&router, update).await;
                            }
                            Some(Err(e)) => tracing::warn!(error = %e, "getUpdates failed; teloxide backs off"),
                            None => break true,
                        },
                        _ = until_following(&mut leading) => {
                            tracing::info!("leadership moved to another instance: Telegram polling stops here");
                            break false;
                        }
                    }
                };
                if ended {
                    break;
                }
            }
            let _ = me.cast(IntakeMsg::PollingEnded(
                "the update stream ended".to_owned(),
            ));
        })
    }
}

/// Hands one update to the router, waiting while the router restarts. The next `getUpdates`,
/// which confirms this update to Telegram, is only sent once the update is handed over, so an
/// update is never confirmed and then lost; later updates wait behind it, in order. If this
/// task is stopped while it waits, Telegram delivers the update again.
async fn hand_over(router: &BotHandle, update: teloxide::types::Update) {
    let mut waiting_since: Option<std::time::Instant> = None;
    loop {
        match router.deliver(update.clone()) {
            Ok(()) => {
                if let Some(since) = waiting_since {
                    tracing::info!(
                        waited_ms = since.elapsed().as_millis() as u64,
                        "router is back; held update handed over"
                    );
                }
                return;
            }
            Err(e) => {
                if waiting_since.is_none() {
                    tracing::warn!(error = %e, "router not running; holding the update until it is back");
                    waiting_since = Some(std::time::Instant::now());
                }
                tokio::time::sleep(ROUTER_RETRY).await;
            }
        }
    }
}

/// How often a held update is offered to a restarting router.
const ROUTER_RETRY: Duration = Duration::from_millis(50);

impl Actor for TelegramIntake {
    type Msg = IntakeMsg;
    type State = IntakeState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<IntakeMsg>,
        _: (),
    ) -> Result<IntakeState, ActorProcessingErr> {
        let outbound = self.outbound.clone();
        tokio::spawn(async move {
            for (lang, code) in [(Language::En, None), (Language::Zh, Some("zh"))] {
                if let Err(e) = outbound.set_commands(commands::menu(lang), code).await {
                    tracing::warn!(error = %e, "command menu not registered");
                }
            }
        });
        let updates = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = match &self.mode {
            IntakeMode::Polling => Some(self.start_polling(&myself, updates.clone())),
            IntakeMode::Webhook { url, secret } => {
                self.outbound
                    .bot()
                    .set_webhook(reqwest::Url::parse(url)?)
                    .secret_token(secret.expose().to_owned())
                    .await?;
                tracing::info!(%url, "telegram webhook registered");
                None
            }
        };
        Ok(IntakeState {
            task,
            updates,
            last_error: None,
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<IntakeMsg>,
        state: &mut IntakeState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(task) = state.task.take() {
            task.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<IntakeMsg>,
        msg: IntakeMsg,
        state: &mut IntakeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IntakeMsg::Status(reply) => {
                let _ = reply.send(IntakeStatus {
                    mode: match self.mode {
                        IntakeMode::Polling => "polling",
                        IntakeMode::Webhook { .. } => "webhook",
                    },
                    updates: state.updates.load(std::sync::atomic::Ordering::Relaxed),
                    last_error: state.last_error.clone(),
                });
            }
            IntakeMsg::PollingEnded(reason) => {
                tracing::warn!(%reason, "polling ended; starting again");
                state.last_error = Some(reason);
                tokio::time::sleep(Duration::from_secs(1)).await;
                state.task = Some(self.start_polling(&myself, state.updates.clone()));
            }
        }
        Ok(())
    }
}
