//! A simulated Telegram user, driving the bot through the simulator's user-side API over HTTP.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{Value, json};

/// A customer in the simulator.
#[derive(Clone)]
pub struct SimUser {
    pub id: i64,
    base: String,
    client: reqwest::Client,
}

/// One message of the chat, as the simulator reports it.
#[derive(Debug, Clone)]
pub struct ChatMessage {
    pub message_id: i64,
    pub from_bot: bool,
    pub text: String,
    pub photo: Option<String>,
    pub buttons: Vec<(String, String)>,
    /// A Stars invoice (title, description, currency, total_amount, paid).
    pub invoice: Option<Value>,
    /// A payment service message (successful_payment, refunded_payment).
    pub payment: Option<Value>,
    pub version: u64,
}

impl ChatMessage {
    fn from_json(v: &Value) -> ChatMessage {
        let buttons = v["reply_markup"]["inline_keyboard"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .flat_map(|r| r.as_array().cloned().unwrap_or_default())
                    .map(|b| {
                        (
                            b["text"].as_str().unwrap_or("").to_owned(),
                            b["callback_data"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        ChatMessage {
            message_id: v["message_id"].as_i64().unwrap(),
            from_bot: v["from_bot"].as_bool().unwrap(),
            text: v["text"]
                .as_str()
                .or(v["caption"].as_str())
                .unwrap_or("")
                .to_owned(),
            photo: v["photo"].as_str().map(str::to_owned),
            buttons,
            invoice: (!v["invoice"].is_null()).then(|| v["invoice"].clone()),
            payment: (!v["payment"].is_null()).then(|| v["payment"].clone()),
            version: v["version"].as_u64().unwrap(),
        }
    }

    /// The callback data of the button whose label contains `label`.
    pub fn button(&self, label: &str) -> String {
        self.buttons
            .iter()
            .find(|(text, _)| text.contains(label))
            .map(|(_, data)| data.clone())
            .unwrap_or_else(|| panic!("no button {label:?} in {:?}", self.buttons))
    }
}

impl SimUser {
    pub fn new(http: std::net::SocketAddr, id: i64) -> SimUser {
        SimUser {
            id,
            base: format!("http://{http}"),
            client: reqwest::Client::new(),
        }
    }

    /// Sends a text message with a profile.
    pub async fn say_as(&self, text: &str, first_name: &str, language: &str) {
        let r = self
            .client
            .post(format!("{}/sim/api/users/{}/messages", self.base, self.id))
            .json(&json!({"text": text, "first_name": first_name, "username": format!("u{}", self.id), "language_code": language}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    pub async fn say(&self, text: &str) {
        self.say_as(text, &format!("User {}", self.id), "en").await;
    }

    /// Presses a button; returns the callback query id.
    pub async fn press(&self, message_id: i64, data: &str) -> String {
        let r = self
            .client
            .post(format!("{}/sim/api/users/{}/callbacks", self.base, self.id))
            .json(&json!({"message_id": message_id, "data": data}))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        v["callback_query_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_owned()
    }

    /// Opens the quantity keyboard of digital product `product_id` from bot message `message_id`
    /// and presses its `qty` button, as a customer would; returns the payment instructions.
    pub async fn order_quantity(&self, message_id: i64, product_id: i64, qty: u32) -> ChatMessage {
        let keyboard = self.quantity_keyboard(message_id, product_id).await;
        self.press_quantity(&keyboard, product_id, qty).await
    }

    /// Presses "Buy" of digital product `product_id` on bot message `message_id`; returns the
    /// quantity keyboard the bot shows.
    pub async fn quantity_keyboard(&self, message_id: i64, product_id: i64) -> ChatMessage {
        let v = self.version().await;
        self.press(message_id, &format!("b:{product_id}")).await;
        self.expect(v, "How many").await
    }

    /// Presses the `qty` button of a quantity keyboard; returns the payment instructions.
    pub async fn press_quantity(
        &self,
        keyboard: &ChatMessage,
        product_id: i64,
        qty: u32,
    ) -> ChatMessage {
        let data = format!("q:{product_id}:{qty}");
        assert!(
            keyboard.buttons.iter().any(|(_, d)| *d == data),
            "no {data} in {:?}",
            keyboard.buttons
        );
        let v = self.version().await;
        self.press(keyboard.message_id, &data).await;
        self.expect(v, "Send <b>exactly</b>").await
    }

    /// Presses "Pay" on a Stars invoice: `{"ok": true, "charge_id": ...}` or the bot's refusal.
    pub async fn pay(&self, message_id: i64) -> Value {
        let r = self
            .client
            .post(format!("{}/sim/api/users/{}/payments", self.base, self.id))
            .json(&json!({"message_id": message_id}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{v}");
        v
    }

    /// Telegram refunds a charge on its own (the bot gets `refunded_payment`).
    pub async fn refund_elsewhere(&self, charge_id: &str) {
        let r = self
            .client
            .post(format!("{}/sim/api/refunds", self.base))
            .json(&json!({"charge_id": charge_id}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    /// The newest unpaid invoice in the chat, once the bot has sent one.
    pub async fn invoice(&self) -> ChatMessage {
        super::wait_for("a Stars invoice", Duration::from_secs(20), || async {
            self.chat()
                .await
                .into_iter()
                .rev()
                .find(|m| m.invoice.as_ref().is_some_and(|i| i["paid"] == false))
        })
        .await
    }

    /// The answer the bot gave to a button press, once it has answered.
    pub async fn callback_answer(&self, query_id: &str) -> Value {
        super::wait_for("callback answered", Duration::from_secs(10), || async {
            let r = self
                .client
                .get(format!("{}/sim/api/callbacks/{query_id}", self.base))
                .send()
                .await
                .ok()?;
            if r.status().is_success() {
                r.json::<Value>().await.ok()
            } else {
                None
            }
        })
        .await
    }

    pub async fn chat(&self) -> Vec<ChatMessage> {
        let v: Value = self
            .client
            .get(format!("{}/sim/api/users/{}/chat", self.base, self.id))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(ChatMessage::from_json)
            .collect()
    }

    /// Bot messages so far.
    pub async fn bot_messages(&self) -> Vec<ChatMessage> {
        self.chat()
            .await
            .into_iter()
            .filter(|m| m.from_bot)
            .collect()
    }

    /// Waits for a bot message (new or edited after `after_version`) whose text contains `needle`.
    pub async fn expect(&self, after_version: u64, needle: &str) -> ChatMessage {
        let what = format!("a bot message containing {needle:?}");
        super::wait_for(&what, Duration::from_secs(40), || async {
            self.chat()
                .await
                .into_iter()
                .find(|m| m.from_bot && m.version > after_version && m.text.contains(needle))
        })
        .await
    }

    /// The newest version seen in this chat.
    pub async fn version(&self) -> u64 {
        self.chat()
            .await
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0)
    }
}
