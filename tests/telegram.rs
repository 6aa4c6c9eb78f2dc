//! Talking to Telegram itself: webhook mode with its secret token, and the retry after
//! `429 Too Many Requests`, against a loopback server that answers like the Bot API.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::chain::TronGrid;
use common::{TestDb, WALLET, start_app, wait_for};
use serde_json::{Value, json};

#[derive(Default)]
struct FakeState {
    calls: Vec<(String, Value)>,
    throttle_next_send: bool,
}

#[derive(Clone)]
struct FakeTelegram {
    url: String,
    state: Arc<Mutex<FakeState>>,
}

impl FakeTelegram {
    async fn start() -> FakeTelegram {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let app = Router::new()
            .route("/{bot}/{method}", post(call))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeTelegram { url, state }
    }

    fn calls(&self, method: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(m, _)| m.eq_ignore_ascii_case(method))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

async fn call(
    State(state): State<Arc<Mutex<FakeState>>>,
    Path((_bot, method)): Path<(String, String)>,
    body: String,
) -> Response {
    let params: Value = serde_json::from_str(&body).unwrap_or_else(|_| multipart_fields(&body));
    let mut s = state.lock().unwrap();
    s.calls.push((method.clone(), params.clone()));
    let ok = |result: Value| axum::Json(json!({"ok": true, "result": result})).into_response();
    match method.to_ascii_lowercase().as_str() {
        "sendmessage" if s.throttle_next_send => {
            s.throttle_next_send = false;
            (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}})),
            )
                .into_response()
        }
        "sendmessage" => ok(json!({
            "message_id": s.calls.len(), "date": 1_700_000_000,
            "chat": {"id": params["chat_id"], "type": "private", "first_name": "X"},
            "from": {"id": 1, "is_bot": true, "first_name": "Shop", "username": "shop_bot"},
            "text": params["text"],
        })),
        "getme" => ok(
            json!({"id": 1, "is_bot": true, "first_name": "Shop", "username": "shop_bot",
            "can_join_groups": false, "can_read_all_group_messages": false, "supports_inline_queries": false,
            "can_connect_to_business": false, "has_main_web_app": false}),
        ),
        _ => ok(json!(true)),
    }
}

/// The text fields of a multipart body (setWebhook is sent as multipart, for its certificate).
fn multipart_fields(body: &str) -> Value {
    let mut fields = serde_json::Map::new();
    for part in body
        .split("Content-Disposition: form-data; name=\"")
        .skip(1)
    {
        if let Some((name, rest)) = part.split_once('"')
            && let Some((_, value)) = rest.split_once("\r\n\r\n")
        {
            let value = value.split("\r\n--").next().unwrap_or("");
            fields.insert(name.to_owned(), Value::String(value.to_owned()));
        }
    }
    Value::Object(fields)
}

#[tokio::test]
async fn a_429_is_waited_out_and_the_message_still_goes() {
    let fake = FakeTelegram::start().await;
    fake.state.lock().unwrap().throttle_next_send = true;
    let bot = teloxide::Bot::new("123:abc").set_api_url(reqwest::Url::parse(&fake.url).unwrap());
    let outbound = telebot::bot::outbound::Outbound::new(bot);
    let started = Instant::now();
    outbound.send_text(42, "hello", None).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retry_after was honoured"
    );
    let sends = fake.calls("sendMessage");
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[1]["text"], "hello");
}

#[tokio::test]
async fn webhook_mode_registers_its_secret_and_refuses_calls_without_it() {
    let db = TestDb::sqlite().await;
    let fake = FakeTelegram::start().await;
    let tg = TronGrid::start().await;
    let app = start_app(
        &db.url,
        &[
            ("TELEBOT__TELEGRAM__TOKEN", "123:abc"),
            ("TELEBOT__TELEGRAM__API_URL", fake.url.as_str()),
            ("TELEBOT__TELEGRAM__MODE", "webhook"),
            ("TELEBOT__TELEGRAM__WEBHOOK_SECRET", "hook-Secret_1"),
            ("TELEBOT__HTTP__PUBLIC_URL", "https://shop.example.com"),
            ("TELEBOT__TRON__SOURCE", "trongrid"),
            ("TELEBOT__TRON__TRONGRID_URL", tg.url.as_str()),
            ("TELEBOT__PAYMENTS__WALLETS", WALLET),
        ],
    )
    .await;
    let set = wait_for("setWebhook", Duration::from_secs(10), || async {
        fake.calls("setWebhook").into_iter().next()
    })
    .await;
    assert_eq!(set["url"], "https://shop.example.com/telegram/webhook");
    assert_eq!(set["secret_token"], "hook-Secret_1");

    let url = format!("http://{}/telegram/webhook", app.http_addr);
    let update = json!({"update_id": 77, "message": {"message_id": 1, "date": 1_700_000_000,
        "chat": {"id": 777, "type": "private", "first_name": "Web"},
        "from": {"id": 777, "is_bot": false, "first_name": "Web"}, "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}});
    let client = reqwest::Client::new();
    let denied = client.post(&url).json(&update).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    let wrong = client
        .post(&url)
        .header("x-telegram-bot-api-secret-token", "nope")
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let malformed = client
        .post(&url)
        .header("x-telegram-bot-api-secret-token", "hook-Secret_1")
        .body("{\"update_id\":")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert!(
        fake.calls("sendMessage").is_empty(),
        "nothing answered for refused calls"
    );

    let accepted = client
        .post(&url)
        .header("x-telegram-bot-api-secret-token", "hook-Secret_1")
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    let reply = wait_for("the bot's answer", Duration::from_secs(10), || async {
        fake.calls("sendMessage").into_iter().next()
    })
    .await;
    assert_eq!(reply["chat_id"], 777);
    assert!(reply["text"].as_str().unwrap().contains("Welcome"));
    app.shutdown().await;
}
