//! The Telegram simulator: the state behind a Bot-API-compatible subset that the service serves
//! itself when no token is configured (demo mode). The bot talks to it through teloxide exactly
//! as to Telegram; simulated users post messages and press buttons through a small user-side API
//! (used by the dashboard's chat window and by tests).
//!
//! Bot side: getMe, getUpdates (long polling with offset and timeout), getWebhookInfo,
//! deleteWebhook, sendMessage, sendPhoto, editMessageText, editMessageReplyMarkup,
//! answerCallbackQuery, setMyCommands, deleteMessage. Responses carry full `Message` objects.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::domain::now_ms;

/// Chats and messages kept per simulated user (older ones are dropped).
const MAX_MESSAGES_PER_CHAT: usize = 500;
/// How long Telegram waits for the bot's pre-checkout answer.
const PRECHECK_LIMIT: Duration = Duration::from_secs(10);
/// Pending updates kept when the bot is not polling.
const MAX_PENDING_UPDATES: usize = 10_000;

/// A simulated Telegram user.
#[derive(Debug, Clone, Serialize)]
pub struct SimUser {
    pub id: i64,
    pub first_name: String,
    pub username: Option<String>,
    pub language_code: Option<String>,
}

impl SimUser {
    fn json(&self) -> Value {
        let mut v = json!({"id": self.id, "is_bot": false, "first_name": self.first_name});
        if let Some(u) = &self.username {
            v["username"] = json!(u);
        }
        if let Some(l) = &self.language_code {
            v["language_code"] = json!(l);
        }
        v
    }
}

/// One message in a simulated chat, as the user side sees it.
#[derive(Debug, Clone, Serialize)]
pub struct SimMessage {
    pub message_id: i64,
    pub from_bot: bool,
    pub date: i64,
    pub text: Option<String>,
    pub caption: Option<String>,
    pub photo: Option<String>,
    pub reply_markup: Option<Value>,
    pub edited: bool,
    /// Unix seconds of the last edit, sent as `edit_date` like Telegram does.
    pub edit_date: Option<i64>,
    /// A Stars invoice the bot sent: title, description, currency, total_amount, and whether
    /// the simulated user has paid it.
    pub invoice: Option<Value>,
    /// A payment service message (`successful_payment` or `refunded_payment`), as the chat
    /// shows it.
    pub payment: Option<Value>,
    /// Increases on every change, so pollers can ask for what changed since.
    pub version: u64,
}

impl SimMessage {
    /// A new message of the bot (`from_bot`) or the user, dated now, with nothing in it yet.
    fn new(from_bot: bool) -> SimMessage {
        SimMessage {
            message_id: 0,
            from_bot,
            date: now_ms() / 1000,
            text: None,
            caption: None,
            photo: None,
            reply_markup: None,
            edited: false,
            edit_date: None,
            invoice: None,
            payment: None,
            version: 0,
        }
    }
}

struct SimChat {
    user: SimUser,
    messages: VecDeque<SimMessage>,
    next_message_id: i64,
}

#[derive(Default)]
struct State {
    next_update_id: i64,
    updates: VecDeque<(i64, Value)>,
    chats: HashMap<i64, SimChat>,
    files: HashMap<String, Vec<u8>>,
    callback_answers: HashMap<String, Value>,
    commands: HashMap<String, Value>,
    version: u64,
    /// Payload of each invoice message, by (chat, message id): not shown to the user.
    invoice_payloads: HashMap<(i64, i64), String>,
    /// Answers to pre-checkout queries, by query id (`None` while unanswered).
    prechecks: HashMap<String, Option<Value>>,
    /// Stars payments made, by charge id.
    charges: HashMap<String, SimCharge>,
    /// The bot's Stars transactions, in the order they happened (getStarTransactions).
    star_transactions: Vec<Value>,
}

struct SimCharge {
    user_id: i64,
    refunded: bool,
}

/// A Bot API error as Telegram sends it.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    pub code: u16,
    pub description: String,
}

impl ApiFailure {
    fn bad_request(description: impl Into<String>) -> Self {
        ApiFailure {
            code: 400,
            description: format!("Bad Request: {}", description.into()),
        }
    }
}

pub struct Simulator {
    bot_id: i64,
    bot_username: String,
    state: Mutex<State>,
    updates_ready: Notify,
    changed: Notify,
    closed: std::sync::atomic::AtomicBool,
    /// Every message the bot sends, announced as (chat id, time) for load measurements.
    sent: tokio::sync::broadcast::Sender<(i64, std::time::Instant)>,
}

impl Simulator {
    pub fn new(bot_username: &str) -> Self {
        Simulator {
            bot_id: 7_000_000_001,
            bot_username: bot_username.to_owned(),
            state: Mutex::new(State {
                next_update_id: 1,
                ..Default::default()
            }),
            updates_ready: Notify::new(),
            changed: Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
            sent: tokio::sync::broadcast::channel(65_536).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bot_user(&self) -> Value {
        json!({
            "id": self.bot_id, "is_bot": true, "first_name": "TeleBot", "username": self.bot_username,
            "can_join_groups": false, "can_read_all_group_messages": false, "supports_inline_queries": false,
            "can_connect_to_business": false, "has_main_web_app": false,
        })
    }

    fn message_json(&self, chat: &SimChat, m: &SimMessage) -> Value {
        let mut chat_json =
            json!({"id": chat.user.id, "type": "private", "first_name": chat.user.first_name});
        if let Some(u) = &chat.user.username {
            chat_json["username"] = json!(u);
        }
        let mut v = json!({
            "message_id": m.message_id,
            "date": m.date,
            "chat": chat_json,
            "from": if m.from_bot { self.bot_user() } else { chat.user.json() },
        });
        if let Some(t) = &m.text {
            v["text"] = json!(t);
        }
        if let Some(p) = &m.photo {
            v["photo"] = json!([{"file_id": p, "file_unique_id": p, "width": 512, "height": 512}]);
            v["caption"] = json!(m.caption.clone().unwrap_or_default());
        }
        if let Some(markup) = &m.reply_markup {
            v["reply_markup"] = markup.clone();
        }
        if let Some(at) = m.edit_date {
            v["edit_date"] = json!(at);
        }
        if let Some(invoice) = &m.invoice {
            v["invoice"] = json!({
                "title": invoice["title"], "description": invoice["description"], "start_parameter": "",
                "currency": invoice["currency"], "total_amount": invoice["total_amount"],
            });
        }
        v
    }

    fn push_update(&self, state: &mut State, kind: &str, body: Value) -> i64 {
        let id = state.next_update_id;
        state.next_update_id += 1;
        state
            .updates
            .push_back((id, json!({"update_id": id, kind: body})));
        while state.updates.len() > MAX_PENDING_UPDATES {
            state.updates.pop_front();
        }
        id
    }

    fn chat_mut<'a>(state: &'a mut State, user: &SimUser) -> &'a mut SimChat {
        let chat = state.chats.entry(user.id).or_insert_with(|| SimChat {
            user: user.clone(),
            messages: VecDeque::new(),
            next_message_id: 1,
        });
        chat.user.first_name = user.first_name.clone();
        if user.username.is_some() {
            chat.user.username = user.username.clone();
        }
        if user.language_code.is_some() {
            chat.user.language_code = user.language_code.clone();
        }
        chat
    }

    fn add_message(state: &mut State, chat_id: i64, mut m: SimMessage) -> Option<SimMessage> {
        state.version += 1;
        m.version = state.version;
        let chat = state.chats.get_mut(&chat_id)?;
        m.message_id = chat.next_message_id;
        chat.next_message_id += 1;
        chat.messages.push_back(m.clone());
        while chat.messages.len() > MAX_MESSAGES_PER_CHAT {
            chat.messages.pop_front();
        }
        Some(m)
    }

    // ---- user side -------------------------------------------------------------------------

    /// A simulated user has a chat with the bot without having written yet (a subscriber the
    /// bot may message first, as after an earlier visit).
    pub fn open_chat(&self, user: &SimUser) {
        Self::chat_mut(&mut self.lock(), user);
    }

    /// A simulated user sends a text message; returns (update id, message id).
    pub fn user_message(&self, user: &SimUser, text: &str) -> (i64, i64) {
        let (update_id, message_id) = {
            let mut s = self.lock();
            Self::chat_mut(&mut s, user);
            let m = Self::add_message(
                &mut s,
                user.id,
                SimMessage {
                    text: Some(text.to_owned()),
                    ..SimMessage::new(false)
                },
            )
            .expect("chat exists");
            let body = {
                let chat = &s.chats[&user.id];
                let mut v = self.message_json(chat, &m);
                if text.starts_with('/') {
                    let len = text
                        .split_whitespace()
                        .next()
                        .map(|c| c.encode_utf16().count())
                        .unwrap_or(0);
                    v["entities"] = json!([{"type": "bot_command", "offset": 0, "length": len}]);
                }
                v
            };
            (self.push_update(&mut s, "message", body), m.message_id)
        };
        self.updates_ready.notify_waiters();
        self.changed.notify_waiters();
        (update_id, message_id)
    }

    /// A simulated user presses an inline button of a bot message; returns (update id, query id).
    pub fn user_callback(
        &self,
        user: &SimUser,
        message_id: i64,
        data: &str,
    ) -> Result<(i64, String), ApiFailure> {
        let id = {
            let mut s = self.lock();
            Self::chat_mut(&mut s, user);
            let chat = &s.chats[&user.id];
            let message = chat
                .messages
                .iter()
                .find(|m| m.message_id == message_id && m.from_bot)
                .ok_or_else(|| ApiFailure::bad_request("message not found"))?;
            let query_id = format!(
                "{}{:012}",
                user.id,
                rand::random::<u64>() % 1_000_000_000_000
            );
            let body = json!({
                "id": query_id,
                "from": chat.user.json(),
                "message": self.message_json(chat, message),
                "chat_instance": format!("sim-{}", user.id),
                "data": data,
            });
            (self.push_update(&mut s, "callback_query", body), query_id)
        };
        self.updates_ready.notify_waiters();
        Ok(id)
    }

    /// Any other update (sticker, photo, channel post, ...) as raw JSON, for robustness tests.
    pub fn raw_update(&self, kind: &str, body: Value) -> i64 {
        let id = {
            let mut s = self.lock();
            // a private chat with a sender becomes a chat the bot can answer in
            if body["chat"]["type"] == "private"
                && let Some(id) = body["from"]["id"].as_i64()
            {
                let user = SimUser {
                    id,
                    first_name: body["from"]["first_name"].as_str().unwrap_or("").to_owned(),
                    username: body["from"]["username"].as_str().map(str::to_owned),
                    language_code: body["from"]["language_code"].as_str().map(str::to_owned),
                };
                Self::chat_mut(&mut s, &user);
            }
            self.push_update(&mut s, kind, body)
        };
        self.updates_ready.notify_waiters();
        id
    }

    /// The chat with a simulated user: every message with a version above `since`.
    pub fn chat(&self, user_id: i64, since: u64) -> Vec<SimMessage> {
        let s = self.lock();
        s.chats
            .get(&user_id)
            .map(|c| {
                c.messages
                    .iter()
                    .filter(|m| m.version > since)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Simulated users known so far.
    pub fn users(&self) -> Vec<SimUser> {
        let s = self.lock();
        let mut users: Vec<SimUser> = s.chats.values().map(|c| c.user.clone()).collect();
        users.sort_by_key(|u| u.id);
        users
    }

    /// Waits until something in any chat changes, or `timeout` passes.
    pub async fn wait_change(&self, since: u64, timeout: Duration) {
        let notified = self.changed.notified();
        if self.lock().version > since || self.is_closed() {
            return;
        }
        let _ = tokio::time::timeout(timeout, notified).await;
    }

    pub fn version(&self) -> u64 {
        self.lock().version
    }

    pub fn file(&self, file_id: &str) -> Option<Vec<u8>> {
        self.lock().files.get(file_id).cloned()
    }

    pub fn callback_answer(&self, query_id: &str) -> Option<Value> {
        self.lock().callback_answers.get(query_id).cloned()
    }

    pub fn commands(&self, language: &str) -> Option<Value> {
        self.lock().commands.get(language).cloned()
    }

    // ---- bot side --------------------------------------------------------------------------

    pub fn get_me(&self) -> Value {
        self.bot_user()
    }

    pub fn webhook_info(&self) -> Value {
        json!({"url": "", "has_custom_certificate": false, "pending_update_count": self.lock().updates.len()})
    }

    /// Ends every long poll at once (shutdown: nobody waits for a poll to time out).
    pub fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.updates_ready.notify_waiters();
        self.changed.notify_waiters();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Long polling: updates with id >= `offset`, waiting up to `timeout` when there are none.
    pub async fn get_updates(&self, offset: Option<i64>, limit: usize, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.is_closed() {
                return Value::Array(vec![]);
            }
            let notified = self.updates_ready.notified();
            {
                let mut s = self.lock();
                if let Some(offset) = offset {
                    while s.updates.front().is_some_and(|(id, _)| *id < offset) {
                        s.updates.pop_front();
                    }
                }
                if !s.updates.is_empty() {
                    let batch: Vec<Value> = s
                        .updates
                        .iter()
                        .take(limit.clamp(1, 100))
                        .map(|(_, u)| u.clone())
                        .collect();
                    return Value::Array(batch);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Value::Array(vec![]);
            }
        }
    }

    fn bot_message(
        &self,
        chat_id: i64,
        text: Option<String>,
        photo: Option<(String, Vec<u8>)>,
        caption: Option<String>,
        markup: Option<Value>,
    ) -> Result<Value, ApiFailure> {
        let result = {
            let mut s = self.lock();
            if !s.chats.contains_key(&chat_id) {
                return Err(ApiFailure::bad_request("chat not found"));
            }
            let photo_id = photo.map(|(id, bytes)| {
                s.files.insert(id.clone(), bytes);
                id
            });
            let m = Self::add_message(
                &mut s,
                chat_id,
                SimMessage {
                    text,
                    caption,
                    photo: photo_id,
                    reply_markup: markup,
                    ..SimMessage::new(true)
                },
            )
            .ok_or_else(|| ApiFailure::bad_request("chat not found"))?;
            self.message_json(&s.chats[&chat_id], &m)
        };
        self.changed.notify_waiters();
        let _ = self.sent.send((chat_id, std::time::Instant::now()));
        Ok(result)
    }

    /// Announces every message the bot sends from now on (chat id, time).
    pub fn subscribe_sent(&self) -> tokio::sync::broadcast::Receiver<(i64, std::time::Instant)> {
        self.sent.subscribe()
    }

    pub fn send_message(
        &self,
        chat_id: i64,
        text: &str,
        markup: Option<Value>,
    ) -> Result<Value, ApiFailure> {
        if text.trim().is_empty() {
            return Err(ApiFailure::bad_request("message text is empty"));
        }
        if text.chars().count() > 4096 {
            return Err(ApiFailure::bad_request("message is too long"));
        }
        self.bot_message(chat_id, Some(text.to_owned()), None, None, markup)
    }

    pub fn send_photo(
        &self,
        chat_id: i64,
        bytes: Vec<u8>,
        caption: Option<String>,
        markup: Option<Value>,
    ) -> Result<Value, ApiFailure> {
        if caption.as_ref().is_some_and(|c| c.chars().count() > 1024) {
            return Err(ApiFailure::bad_request("message caption is too long"));
        }
        let file_id = format!("sim-photo-{:016x}", rand::random::<u64>());
        self.bot_message(chat_id, None, Some((file_id, bytes)), caption, markup)
    }

    /// editMessageText / editMessageReplyMarkup: `text` or `markup` replaced.
    pub fn edit_message(
        &self,
        chat_id: i64,
        message_id: i64,
        text: Option<&str>,
        markup: Option<Value>,
    ) -> Result<Value, ApiFailure> {
        let result = {
            let mut s = self.lock();
            s.version += 1;
            let version = s.version;
            let chat = s
                .chats
                .get_mut(&chat_id)
                .ok_or_else(|| ApiFailure::bad_request("chat not found"))?;
            let m = chat
                .messages
                .iter_mut()
                .find(|m| m.message_id == message_id && m.from_bot)
                .ok_or_else(|| ApiFailure::bad_request("message to edit not found"))?;
            if let Some(t) = text {
                if m.photo.is_some() {
                    return Err(ApiFailure::bad_request(
                        "there is no text in the message to edit",
                    ));
                }
                if m.text.as_deref() == Some(t) && markup.as_ref() == m.reply_markup.as_ref() {
                    return Err(ApiFailure::bad_request(
                        "message is not modified: specified new message content and reply markup are exactly the same",
                    ));
                }
                m.text = Some(t.to_owned());
            }
            m.reply_markup = markup;
            m.edited = true;
            m.edit_date = Some(now_ms() / 1000);
            m.version = version;
            let m = m.clone();
            let chat = &s.chats[&chat_id];
            self.message_json(chat, &m)
        };
        self.changed.notify_waiters();
        Ok(result)
    }

    pub fn delete_message(&self, chat_id: i64, message_id: i64) -> bool {
        let mut s = self.lock();
        s.version += 1;
        let Some(chat) = s.chats.get_mut(&chat_id) else {
            return false;
        };
        let before = chat.messages.len();
        chat.messages.retain(|m| m.message_id != message_id);
        before != chat.messages.len()
    }

    pub fn answer_callback(&self, query_id: &str, text: Option<String>, show_alert: bool) {
        self.lock().callback_answers.insert(
            query_id.to_owned(),
            json!({"text": text, "show_alert": show_alert}),
        );
        self.changed.notify_waiters();
    }

    /// The bot's answer to a button press, waiting up to `timeout` for the bot to give it.
    pub async fn wait_callback_answer(&self, query_id: &str, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // registered before the check, so an answer given in between still wakes us
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(answer) = self.callback_answer(query_id) {
                return Some(answer);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.callback_answer(query_id);
            }
        }
    }

    // ---- Telegram Stars ----------------------------------------------------------------------

    /// sendInvoice for Stars: the checks of the Bot API server (required fields, one positive
    /// integer price), Telegram's length limits, and the invoice message it returns.
    pub fn send_invoice(&self, chat_id: i64, v: &Value) -> Result<Value, ApiFailure> {
        for key in ["title", "description", "payload", "currency"] {
            if v[key].as_str().is_none_or(str::is_empty) {
                return Err(ApiFailure::bad_request(format!(
                    "parameter \"{key}\" is required"
                )));
            }
        }
        let text = |key: &str| v[key].as_str().unwrap_or_default().to_owned();
        let (title, description, payload, currency) = (
            text("title"),
            text("description"),
            text("payload"),
            text("currency"),
        );
        // Telegram's limits (the exact error texts are not known; these are the simulator's)
        if title.chars().count() > 32 || description.chars().count() > 255 || payload.len() > 128 {
            return Err(ApiFailure::bad_request(
                "title (32), description (255) or payload (128 bytes) too long [simulator check]",
            ));
        }
        if currency != crate::domain::stars::CURRENCY {
            return Err(ApiFailure::bad_request(
                "the simulator takes Telegram Stars (XTR) invoices only",
            ));
        }
        let prices = match &v["prices"] {
            Value::String(s) => serde_json::from_str::<Value>(s)
                .map_err(|_| ApiFailure::bad_request("can't parse prices JSON object"))?,
            Value::Array(a) => Value::Array(a.clone()),
            Value::Null => return Err(ApiFailure::bad_request("parameter \"prices\" is required")),
            _ => return Err(ApiFailure::bad_request("can't parse prices JSON object")),
        };
        let prices = prices
            .as_array()
            .ok_or_else(|| ApiFailure::bad_request("can't parse prices JSON object"))?;
        if prices.is_empty() {
            return Err(ApiFailure::bad_request("there must be at least one price"));
        }
        let mut total: i64 = 0;
        for p in prices {
            if p["label"].as_str().is_none_or(str::is_empty) {
                return Err(ApiFailure::bad_request(
                    "can't parse labeled price: Field \"label\" must be non-empty",
                ));
            }
            let amount = p["amount"].as_i64().ok_or_else(|| {
                ApiFailure::bad_request(
                    "can't parse labeled price: Field \"amount\" must be a valid Number",
                )
            })?;
            total = total.saturating_add(amount);
        }
        if total <= 0 {
            return Err(ApiFailure::bad_request("total price must be positive"));
        }
        let invoice = json!({"title": title, "description": description, "currency": currency,
            "total_amount": total, "paid": false});
        let result = {
            let mut s = self.lock();
            if !s.chats.contains_key(&chat_id) {
                return Err(ApiFailure::bad_request("chat not found"));
            }
            let m = Self::add_message(
                &mut s,
                chat_id,
                SimMessage {
                    invoice: Some(invoice),
                    ..SimMessage::new(true)
                },
            )
            .ok_or_else(|| ApiFailure::bad_request("chat not found"))?;
            s.invoice_payloads.insert((chat_id, m.message_id), payload);
            self.message_json(&s.chats[&chat_id], &m)
        };
        self.changed.notify_waiters();
        let _ = self.sent.send((chat_id, std::time::Instant::now()));
        Ok(result)
    }

    /// The simulated user presses "Pay" on an invoice: a pre-checkout query goes to the bot,
    /// and only when the bot says yes within Telegram's 10 seconds are the Stars taken and the
    /// `successful_payment` message sent. Returns `{"ok": bool, "error_message"?, "charge_id"?}`.
    pub async fn pay_invoice(&self, user: &SimUser, message_id: i64) -> Result<Value, ApiFailure> {
        let (query_id, payload, currency, amount) = {
            let mut s = self.lock();
            Self::chat_mut(&mut s, user);
            let chat = &s.chats[&user.id];
            let invoice = chat
                .messages
                .iter()
                .find(|m| m.message_id == message_id && m.from_bot)
                .and_then(|m| m.invoice.clone())
                .ok_or_else(|| ApiFailure::bad_request("no invoice with this message id"))?;
            if invoice["paid"] == json!(true) {
                return Err(ApiFailure::bad_request("this invoice is paid already"));
            }
            let payload = s
                .invoice_payloads
                .get(&(user.id, message_id))
                .cloned()
                .unwrap_or_default();
            let query_id = format!("{}", rand::random::<u64>() >> 1);
            let currency = invoice["currency"].as_str().unwrap_or("XTR").to_owned();
            let amount = invoice["total_amount"].as_i64().unwrap_or(0);
            let body = json!({"id": query_id, "from": chat.user.json(), "currency": currency,
                "total_amount": amount, "invoice_payload": payload});
            s.prechecks.insert(query_id.clone(), None);
            self.push_update(&mut s, "pre_checkout_query", body);
            (query_id, payload, currency, amount)
        };
        self.updates_ready.notify_waiters();
        let deadline = tokio::time::Instant::now() + PRECHECK_LIMIT;
        let answer = loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(Some(a)) = self.lock().prechecks.get(&query_id) {
                break Some(a.clone());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break self.lock().prechecks.get(&query_id).cloned().flatten();
            }
        };
        // Telegram forgets the query once it is answered or too old
        self.lock().prechecks.remove(&query_id);
        let Some(answer) = answer else {
            return Ok(json!({"ok": false,
                "error_message": "the bot did not answer the pre-checkout query within 10 seconds"}));
        };
        if answer["ok"] != json!(true) {
            return Ok(answer);
        }
        let charge_id = format!("sim-charge-{:016x}", rand::random::<u64>());
        {
            let mut s = self.lock();
            let date = now_ms() / 1000;
            s.version += 1;
            let version = s.version;
            if let Some(m) = s
                .chats
                .get_mut(&user.id)
                .and_then(|c| c.messages.iter_mut().find(|m| m.message_id == message_id))
            {
                if let Some(invoice) = m.invoice.as_mut() {
                    invoice["paid"] = json!(true);
                }
                m.version = version;
            }
            s.charges.insert(
                charge_id.clone(),
                SimCharge {
                    user_id: user.id,
                    refunded: false,
                },
            );
            let partner = json!({"transaction_type": "invoice_payment", "type": "user",
                "user": s.chats[&user.id].user.json(), "invoice_payload": payload});
            s.star_transactions
                .push(json!({"id": charge_id, "date": date, "source": partner, "amount": amount}));
            let paid =
                json!({"kind": "successful_payment", "currency": currency, "total_amount": amount});
            let m = Self::add_message(
                &mut s,
                user.id,
                SimMessage {
                    date,
                    payment: Some(paid),
                    ..SimMessage::new(false)
                },
            )
            .expect("chat exists");
            let mut body = self.message_json(&s.chats[&user.id], &m);
            body["successful_payment"] = json!({"currency": currency, "total_amount": amount,
                "invoice_payload": payload, "telegram_payment_charge_id": charge_id,
                "provider_payment_charge_id": ""});
            self.push_update(&mut s, "message", body);
        }
        self.updates_ready.notify_waiters();
        self.changed.notify_waiters();
        Ok(json!({"ok": true, "charge_id": charge_id}))
    }

    /// answerPreCheckoutQuery.
    pub fn answer_pre_checkout(
        &self,
        query_id: &str,
        ok: bool,
        error_message: Option<String>,
    ) -> Result<(), ApiFailure> {
        if !ok && error_message.as_deref().is_none_or(str::is_empty) {
            return Err(ApiFailure::bad_request(
                "parameter \"error_message\" is required",
            ));
        }
        {
            let mut s = self.lock();
            match s.prechecks.get_mut(query_id) {
                Some(slot @ None) => {
                    *slot = Some(if ok {
                        json!({"ok": true})
                    } else {
                        json!({"ok": false, "error_message": error_message})
                    });
                }
                _ => {
                    return Err(ApiFailure::bad_request(
                        "query is too old and response timeout expired or query ID is invalid",
                    ));
                }
            }
        }
        self.changed.notify_waiters();
        Ok(())
    }

    /// refundStarPayment: the Stars go back to the user, with Telegram's errors for an unknown,
    /// someone else's or an already refunded charge.
    pub fn refund_star_payment(&self, user_id: i64, charge_id: &str) -> Result<(), ApiFailure> {
        if charge_id.is_empty() {
            return Err(ApiFailure::bad_request(
                "parameter \"telegram_payment_charge_id\" is required",
            ));
        }
        if user_id <= 0 {
            return Err(ApiFailure::bad_request("invalid user_id specified"));
        }
        self.record_refund(Some(user_id), charge_id, false)
    }

    /// A refund made outside the bot (Telegram support): the bot gets a `refunded_payment`
    /// service message.
    pub fn refund_elsewhere(&self, charge_id: &str) -> Result<(), ApiFailure> {
        self.record_refund(None, charge_id, true)
    }

    fn record_refund(
        &self,
        user_id: Option<i64>,
        charge_id: &str,
        tell_bot: bool,
    ) -> Result<(), ApiFailure> {
        {
            let mut s = self.lock();
            let charge = s
                .charges
                .get_mut(charge_id)
                .ok_or_else(|| ApiFailure::bad_request("CHARGE_ID_EMPTY"))?;
            if user_id.is_some_and(|u| u != charge.user_id) {
                return Err(ApiFailure::bad_request("USER_ID_INVALID"));
            }
            if charge.refunded {
                return Err(ApiFailure::bad_request("CHARGE_ALREADY_REFUNDED"));
            }
            charge.refunded = true;
            let payer = charge.user_id;
            let incoming = s
                .star_transactions
                .iter()
                .find(|t| t["id"] == json!(charge_id) && t.get("source").is_some())
                .cloned()
                .unwrap_or(Value::Null);
            let (amount, payload) = (
                incoming["amount"].clone(),
                incoming["source"]["invoice_payload"].clone(),
            );
            let date = now_ms() / 1000;
            s.star_transactions
                .push(json!({"id": charge_id, "date": date,
                "receiver": incoming["source"], "amount": amount}));
            let shown =
                json!({"kind": "refunded_payment", "currency": "XTR", "total_amount": amount});
            let Some(m) = Self::add_message(
                &mut s,
                payer,
                SimMessage {
                    date,
                    payment: Some(shown),
                    ..SimMessage::new(true)
                },
            ) else {
                return Ok(());
            };
            if tell_bot {
                let chat = &s.chats[&payer];
                let mut body = self.message_json(chat, &m);
                // the sampled refunded_payment message carries no sender
                if let Some(o) = body.as_object_mut() {
                    o.remove("from");
                }
                body["refunded_payment"] = json!({"currency": "XTR", "total_amount": amount,
                    "invoice_payload": payload, "telegram_payment_charge_id": charge_id});
                self.push_update(&mut s, "message", body);
            }
        }
        self.updates_ready.notify_waiters();
        self.changed.notify_waiters();
        Ok(())
    }

    /// getStarTransactions: the bot's Stars transactions in the order they happened, `offset`
    /// and `limit` clamped as the Bot API server clamps them.
    pub fn star_transactions(&self, offset: i64, limit: i64) -> Value {
        let s = self.lock();
        let offset = offset.max(0) as usize;
        let limit = limit.clamp(1, 100) as usize;
        let page: Vec<Value> = s
            .star_transactions
            .iter()
            .skip(offset)
            .take(limit)
            .cloned()
            .collect();
        json!({"transactions": page})
    }

    /// The username the simulated bot answers as.
    pub fn bot_username(&self) -> &str {
        &self.bot_username
    }

    pub fn set_commands(&self, language: &str, commands: Value) {
        self.lock().commands.insert(language.to_owned(), commands);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> SimUser {
        SimUser {
            id: 42,
            first_name: "Ann".into(),
            username: Some("ann".into()),
            language_code: Some("en".into()),
        }
    }

    #[tokio::test]
    async fn updates_parse_as_teloxide_types() {
        let sim = Simulator::new("shop_bot");
        sim.user_message(&user(), "/start ref_abc");
        let updates = sim.get_updates(None, 10, Duration::ZERO).await;
        let parsed: Vec<teloxide::types::Update> = serde_json::from_value(updates).unwrap();
        assert_eq!(parsed.len(), 1);
        let sent = sim
            .send_message(
                42,
                "hello",
                Some(json!({"inline_keyboard": [[{"text": "a", "callback_data": "m"}]]})),
            )
            .unwrap();
        let msg: teloxide::types::Message = serde_json::from_value(sent.clone()).unwrap();
        assert_eq!(msg.text(), Some("hello"));
        let (_, _) = sim.user_callback(&user(), msg.id.0.into(), "m").unwrap();
        let updates = sim.get_updates(Some(2), 10, Duration::ZERO).await;
        let parsed: Vec<teloxide::types::Update> = serde_json::from_value(updates).unwrap();
        assert_eq!(parsed.len(), 1, "the offset confirmed the first update");
        let photo = sim
            .send_photo(42, vec![1, 2, 3], Some("qr".into()), None)
            .unwrap();
        let _: teloxide::types::Message = serde_json::from_value(photo).unwrap();
        let me: teloxide::types::Me = serde_json::from_value(sim.get_me()).unwrap();
        assert_eq!(me.username(), "shop_bot");
    }

    #[tokio::test]
    async fn long_polling_waits_and_wakes() {
        let sim = std::sync::Arc::new(Simulator::new("shop_bot"));
        let waiter = {
            let sim = sim.clone();
            tokio::spawn(async move { sim.get_updates(None, 10, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        sim.user_message(&user(), "hi");
        let got = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.as_array().unwrap().len(), 1);
    }
}
