//! Everything the bot sends to Telegram goes through [`Outbound`]: paced to Telegram's limits
//! (about 30 messages per second overall, about one per second per chat with a short burst), and
//! retried after `429 Too Many Requests` (waiting the `retry_after` Telegram asks for) and after
//! network faults. Callers get the final result; the notifier keeps failed messages queued.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use teloxide::payloads::{
    AnswerCallbackQuerySetters, AnswerPreCheckoutQuerySetters, EditMessageTextSetters,
    GetStarTransactionsSetters, SendMessageSetters, SendPhotoSetters, SetMyCommandsSetters,
};
use teloxide::prelude::*;
use teloxide::types::{
    BotCommand, InlineKeyboardMarkup, InputFile, LabeledPrice, MessageId, ParseMode,
};
use teloxide::{ApiError, RequestError};
use tokio::sync::Mutex;

/// A Stars invoice, its texts already cut to Telegram's limits.
#[derive(Debug, Clone)]
pub struct StarsInvoice {
    pub title: String,
    pub description: String,
    /// Names the order (`order:<id>`); no secret.
    pub payload: String,
    pub label: String,
    pub stars: u32,
}

/// Overall messages per second.
const GLOBAL_RATE: f64 = 30.0;
/// Per chat: a burst of this many, then one per second.
const CHAT_BURST: f64 = 3.0;
const CHAT_RATE: f64 = 1.0;
/// 429 answers honoured before giving up on one message.
const MAX_RETRY_AFTER: u32 = 5;
/// Network faults retried before giving up on one message.
const MAX_NETWORK_RETRIES: u32 = 3;
/// Server faults (a 5xx answer) retried before giving up on one message. teloxide itself waits
/// 10 s after every 5xx before it reports it, so one more try is all an interactive answer can
/// afford; the outbox and the broadcaster try again later.
const MAX_SERVER_RETRIES: u32 = 1;

struct Bucket {
    tokens: f64,
    last: Instant,
    capacity: f64,
    rate: f64,
}

impl Bucket {
    fn new(capacity: f64, rate: f64) -> Self {
        Bucket {
            tokens: capacity,
            last: Instant::now(),
            capacity,
            rate,
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self) -> Result<(), Duration> {
        self.take_above(1.0)
    }

    /// Takes a token if at least `from` are there, or says how long until they would be.
    fn take_above(&mut self, from: f64) -> Result<(), Duration> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate)
            .min(self.capacity);
        self.last = now;
        if self.tokens >= from {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((from - self.tokens) / self.rate))
        }
    }
}

/// Which of Telegram's limits a request counts against.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// A message in this chat: the chat's limit and the overall one.
    Chat(i64),
    /// The overall limit only.
    Global,
    /// A message in this chat that can wait: sent only while the overall limit has room to
    /// spare, so it never delays a message that matters more (a delivery in a sale).
    Spare(i64),
    /// Neither.
    Free,
}

/// What the overall bucket must hold before a [`Pace::Spare`] request takes from it.
const SPARE_FROM: f64 = GLOBAL_RATE / 2.0;

/// Paced, retrying access to the Bot API; cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    bot: Bot,
    global: Arc<Mutex<Bucket>>,
    chats: Arc<DashMap<i64, Bucket>>,
    /// Telegram's limits apply; the built-in simulator has none.
    paced: bool,
}

/// Why a send failed for good.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Telegram refused it (bad request, the user blocked the bot, ...): retrying will not help.
    #[error("telegram refused: {0}")]
    Refused(String),
    /// Still failing after the retries; worth trying again later.
    #[error("telegram unreachable: {0}")]
    Transient(String),
    /// The message could not be made (an outbox row no version of the service wrote): nothing
    /// was sent, and trying again will not help.
    #[error("cannot be sent: {0}")]
    Unsendable(String),
}

/// Sorts a failed Bot API call: permanent when Telegram says the request itself cannot succeed
/// (a bad request, the bot blocked or not allowed, a chat that moved), transient when the fault is
/// on Telegram's side or on the way there, where trying again later can succeed: network faults,
/// 429s still answered after the retries, a 5xx answer in Telegram's JSON ("Internal Server
/// Error", "Bad Gateway", ...), or an answer that is not JSON at all (a proxy's HTML error page).
fn classify(e: RequestError) -> SendError {
    match e {
        RequestError::Api(ApiError::Unknown(description)) if !is_client_error(&description) => {
            SendError::Transient(description)
        }
        RequestError::Api(_) | RequestError::MigrateToChatId(_) => {
            SendError::Refused(e.to_string())
        }
        RequestError::RetryAfter(_)
        | RequestError::Network(_)
        | RequestError::InvalidJson { .. }
        | RequestError::Io(_) => SendError::Transient(e.to_string()),
    }
}

/// Telegram starts the description of every 4xx answer with its status text; anything else in an
/// error answer comes from a server fault.
fn is_client_error(description: &str) -> bool {
    [
        "Bad Request",
        "Unauthorized",
        "Forbidden",
        "Not Found",
        "Conflict",
    ]
    .iter()
    .any(|prefix| description.starts_with(prefix))
}

impl SendError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Refused(_) | SendError::Unsendable(_))
    }

    /// The user blocked the bot (or deleted their account): stop writing to them.
    pub fn user_is_gone(&self) -> bool {
        matches!(self, SendError::Refused(m) if m.contains("blocked by the user") || m.contains("user is deactivated"))
    }
}

/// Telegram's limits: 4096 characters of message text, 1024 of photo caption.
const TEXT_LIMIT: usize = 4096;
const CAPTION_LIMIT: usize = 1024;

/// Fits HTML text into `max` characters. Text that fits is sent as it is; longer text loses its
/// tags (so no tag is left open) and is cut where no entity is split.
fn fit_html(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut plain = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => plain.push(c),
            _ => {}
        }
    }
    if plain.chars().count() <= max {
        return plain;
    }
    let mut cut: String = plain.chars().take(max - 1).collect();
    if let Some(amp) = cut.rfind('&')
        && !cut[amp..].contains(';')
    {
        cut.truncate(amp);
    }
    cut + "…"
}

impl Outbound {
    /// Paced to Telegram's limits.
    pub fn new(bot: Bot) -> Self {
        Outbound {
            bot,
            global: Arc::new(Mutex::new(Bucket::new(GLOBAL_RATE, GLOBAL_RATE))),
            chats: Arc::new(DashMap::new()),
            paced: true,
        }
    }

    /// Without pacing: for the built-in simulator, which has no limits to respect (retries still
    /// apply).
    pub fn unpaced(bot: Bot) -> Self {
        Outbound {
            paced: false,
            ..Self::new(bot)
        }
    }

    pub fn bot(&self) -> &Bot {
        &self.bot
    }

    async fn pace(&self, pace: Pace) {
        if !self.paced || matches!(pace, Pace::Free) {
            return;
        }
        if let Pace::Chat(chat) | Pace::Spare(chat) = pace {
            loop {
                let wait = {
                    let mut b = self
                        .chats
                        .entry(chat)
                        .or_insert_with(|| Bucket::new(CHAT_BURST, CHAT_RATE));
                    match b.take() {
                        Ok(()) => break,
                        Err(w) => w,
                    }
                };
                tokio::time::sleep(wait).await;
            }
            if self.chats.len() > 50_000 {
                let now = Instant::now();
                self.chats
                    .retain(|_, b| now.duration_since(b.last) < Duration::from_secs(10));
            }
        }
        let from = if matches!(pace, Pace::Spare(_)) {
            SPARE_FROM
        } else {
            1.0
        };
        loop {
            let wait = match self.global.lock().await.take_above(from) {
                Ok(()) => return,
                Err(w) => w,
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Runs one request with pacing and the retry rules.
    async fn call<T, F, Fut>(&self, pace: Pace, mut request: F) -> Result<T, SendError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RequestError>>,
    {
        let mut retry_after = 0;
        let mut network = 0;
        let mut server = 0;
        loop {
            self.pace(pace).await;
            match request().await {
                Ok(v) => return Ok(v),
                Err(RequestError::RetryAfter(s)) if retry_after < MAX_RETRY_AFTER => {
                    retry_after += 1;
                    metrics::counter!("telegram_send_retries_total", "reason" => "retry_after")
                        .increment(1);
                    tracing::warn!(?pace, wait_s = s.seconds(), "telegram asked to slow down");
                    tokio::time::sleep(s.duration()).await;
                }
                Err(e) => {
                    let (reason, tries, limit) = if matches!(e, RequestError::Network(_)) {
                        ("network", &mut network, MAX_NETWORK_RETRIES)
                    } else {
                        ("server", &mut server, MAX_SERVER_RETRIES)
                    };
                    let error = classify(e);
                    if error.is_permanent() || *tries >= limit {
                        return Err(error);
                    }
                    *tries += 1;
                    metrics::counter!("telegram_send_retries_total", "reason" => reason)
                        .increment(1);
                    tracing::debug!(?pace, %error, "telegram request failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(*tries))).await;
                }
            }
        }
    }

    pub async fn send_text(
        &self,
        chat: i64,
        text: &str,
        markup: Option<InlineKeyboardMarkup>,
    ) -> Result<Message, SendError> {
        let text = fit_html(text, TEXT_LIMIT);
        self.call(Pace::Chat(chat), || {
            let mut r = self
                .bot
                .send_message(ChatId(chat), text.clone())
                .parse_mode(ParseMode::Html);
            if let Some(m) = &markup {
                r = r.reply_markup(m.clone());
            }
            async move { r.await }
        })
        .await
    }

    /// Replaces a message's text and buttons. "Not modified" counts as done.
    pub async fn edit_text(
        &self,
        chat: i64,
        message_id: i32,
        text: &str,
        markup: Option<InlineKeyboardMarkup>,
    ) -> Result<(), SendError> {
        let text = fit_html(text, TEXT_LIMIT);
        let result = self
            .call(Pace::Chat(chat), || {
                let mut r = self
                    .bot
                    .edit_message_text(ChatId(chat), MessageId(message_id), text.clone())
                    .parse_mode(ParseMode::Html);
                if let Some(m) = &markup {
                    r = r.reply_markup(m.clone());
                }
                async move { r.await }
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SendError::Refused(m)) if m.contains("not modified") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Takes every button off a message, when the overall limit has room to spare (it is
    /// tidying, not news). A message already without them, or gone, counts as done.
    pub async fn remove_buttons(&self, chat: i64, message_id: i32) -> Result<(), SendError> {
        let result = self
            .call(Pace::Spare(chat), || {
                let r = self
                    .bot
                    .edit_message_reply_markup(ChatId(chat), MessageId(message_id));
                async move { r.await }
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SendError::Refused(m)) if m.contains("not modified") || m.contains("not found") => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    pub async fn send_photo(
        &self,
        chat: i64,
        png: Vec<u8>,
        caption: &str,
        markup: Option<InlineKeyboardMarkup>,
    ) -> Result<Message, SendError> {
        let caption = fit_html(caption, CAPTION_LIMIT);
        self.call(Pace::Chat(chat), || {
            let mut r = self
                .bot
                .send_photo(
                    ChatId(chat),
                    InputFile::memory(png.clone()).file_name("payment.png"),
                )
                .caption(caption.clone())
                .parse_mode(ParseMode::Html);
            if let Some(m) = &markup {
                r = r.reply_markup(m.clone());
            }
            async move { r.await }
        })
        .await
    }

    /// Not paced: Telegram's limits count messages in chats, which a callback answer is not,
    /// and a customer's button spins until its answer arrives (in a flash sale, behind every
    /// message queued before it).
    pub async fn answer_callback(
        &self,
        id: &str,
        text: Option<&str>,
        alert: bool,
    ) -> Result<(), SendError> {
        self.call(Pace::Free, || {
            let mut r = self
                .bot
                .answer_callback_query(teloxide::types::CallbackQueryId(id.to_owned()));
            if let Some(t) = text {
                r = r.text(t.to_owned()).show_alert(alert);
            }
            async move { r.await }
        })
        .await
        .map(|_| ())
    }

    /// A Stars invoice (`XTR`, no provider token, one price). Paced like any message.
    pub async fn send_invoice(
        &self,
        chat: i64,
        invoice: &StarsInvoice,
    ) -> Result<Message, SendError> {
        self.call(Pace::Chat(chat), || {
            let r = self.bot.send_invoice(
                ChatId(chat),
                invoice.title.clone(),
                invoice.description.clone(),
                invoice.payload.clone(),
                crate::domain::stars::CURRENCY,
                [LabeledPrice::new(invoice.label.clone(), invoice.stars)],
            );
            async move { r.await }
        })
        .await
    }

    /// Answers a pre-checkout query: `Ok(())` lets Telegram take the payment, an error message
    /// refuses it. Not paced: Telegram waits at most 10 seconds for it, and it is not a message.
    /// A 400 is final for the query (it is too old, or answered already) and is not retried.
    pub async fn answer_pre_checkout(
        &self,
        query_id: &str,
        verdict: Result<(), &str>,
    ) -> Result<(), SendError> {
        self.call(Pace::Free, || {
            let id = teloxide::types::PreCheckoutQueryId(query_id.to_owned());
            let r = match verdict {
                Ok(()) => self.bot.answer_pre_checkout_query(id, true),
                Err(message) => self
                    .bot
                    .answer_pre_checkout_query(id, false)
                    .error_message(message.to_owned()),
            };
            async move { r.await }
        })
        .await
        .map(|_| ())
    }

    /// Gives a Stars payment back to its payer. `Ok(false)` when Telegram says it was refunded
    /// already (`CHARGE_ALREADY_REFUNDED`), which is not a failure.
    pub async fn refund_star_payment(
        &self,
        telegram_id: i64,
        charge_id: &str,
    ) -> Result<bool, SendError> {
        let result = self
            .call(Pace::Free, || {
                let r = self.bot.refund_star_payment(
                    UserId(telegram_id as u64),
                    teloxide::types::TelegramTransactionId(charge_id.to_owned()),
                );
                async move { r.await }
            })
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SendError::Refused(e)) if e.contains("CHARGE_ALREADY_REFUNDED") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One page of the bot's Stars transactions, oldest first (`getStarTransactions`).
    pub async fn star_transactions(
        &self,
        offset: u32,
        limit: u8,
    ) -> Result<teloxide::types::StarTransactions, SendError> {
        self.call(Pace::Free, || {
            let r = self.bot.get_star_transactions().offset(offset).limit(limit);
            async move { r.await }
        })
        .await
    }

    pub async fn set_commands(
        &self,
        commands: Vec<BotCommand>,
        language: Option<&str>,
    ) -> Result<(), SendError> {
        self.call(Pace::Global, || {
            let mut r = self.bot.set_my_commands(commands.clone());
            if let Some(l) = language {
                r = r.language_code(l.to_owned());
            }
            async move { r.await }
        })
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_html_is_cut_without_broken_tags_or_entities() {
        assert_eq!(fit_html("<b>short</b>", 20), "<b>short</b>");
        let long = format!("<b>{}</b> &amp; more", "x".repeat(30));
        let cut = fit_html(&long, 34);
        assert!(cut.chars().count() <= 34, "{cut}");
        assert!(
            !cut.contains('<') && !cut.contains('&'),
            "no tag, no half entity: {cut}"
        );
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn server_faults_are_transient_and_bad_requests_permanent() {
        let api = |m: &str| RequestError::Api(ApiError::Unknown(m.to_owned()));
        for transient in [
            api("Internal Server Error"),
            api("Bad Gateway"),
            api("Gateway Timeout"),
            api("Service Unavailable"),
            RequestError::InvalidJson {
                source: Arc::new(serde_json::from_str::<u8>("<html>").unwrap_err()),
                raw: "<html><body>502 Bad Gateway</body></html>".into(),
            },
            RequestError::Io(Arc::new(std::io::Error::other("reset"))),
        ] {
            let shown = format!("{transient:?}");
            assert!(!classify(transient).is_permanent(), "{shown}");
        }
        for permanent in [
            api("Bad Request: chat not found"),
            api("Forbidden: bot is not a member of the channel chat"),
            api("Unauthorized"),
            RequestError::Api(ApiError::BotBlocked),
        ] {
            let shown = format!("{permanent:?}");
            assert!(classify(permanent).is_permanent(), "{shown}");
        }
        assert!(classify(RequestError::Api(ApiError::BotBlocked)).user_is_gone());
    }

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_period() {
        let mut b = Bucket::new(CHAT_BURST, CHAT_RATE);
        for _ in 0..3 {
            assert!(b.take().is_ok());
        }
        let wait = b.take().unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
    }
}
