//! Talking to Telegram itself: webhook mode with its secret token, the retry after
//! `429 Too Many Requests` and after server faults, against a loopback server that answers like
//! the Bot API.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::chain::TronGrid;
use crate::common::{TestDb, WALLET, start_app, wait_for};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Default)]
struct FakeState {
    calls: Vec<(String, Value)>,
    throttle_next_send: bool,
    /// Answers for the next sendMessage calls, before they succeed again.
    send_faults: std::collections::VecDeque<Fault>,
    /// Only sends to this chat meet `send_faults` (all sends when unset).
    fail_sends_to: Option<i64>,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// A proxy in front of the Bot API answers with its own HTML page.
    ProxyHtml502,
    /// The Bot API's JSON answer for a gateway fault.
    Json502,
    /// A request Telegram will never accept.
    BadRequest,
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
    let method = method.to_ascii_lowercase();
    let targeted = s
        .fail_sends_to
        .is_none_or(|chat| params["chat_id"].as_i64() == Some(chat));
    if method == "sendmessage"
        && targeted
        && let Some(fault) = s.send_faults.pop_front()
    {
        return match fault {
            Fault::ProxyHtml502 => (
                StatusCode::BAD_GATEWAY,
                [("content-type", "text/html")],
                "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            )
                .into_response(),
            Fault::Json502 => (
                StatusCode::BAD_GATEWAY,
                axum::Json(json!({"ok": false, "error_code": 502, "description": "Bad Gateway"})),
            )
                .into_response(),
            Fault::BadRequest => (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"})),
            )
                .into_response(),
        };
    }
    match method.as_str() {
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

/// An instance with a real-looking token talking to `fake`, in webhook mode (so it does not
/// poll), with the chain read from `tg`; `extra` adds settings.
async fn start_against(
    db: &TestDb,
    fake: &FakeTelegram,
    tg: &TronGrid,
    extra: &[(&str, &str)],
) -> telebot::app::Running {
    let mut vars = vec![
        ("TELEBOT__TELEGRAM__TOKEN", "123:abc"),
        ("TELEBOT__TELEGRAM__API_URL", fake.url.as_str()),
        ("TELEBOT__TELEGRAM__MODE", "webhook"),
        ("TELEBOT__HTTP__PUBLIC_URL", "https://shop.example.com"),
        ("TELEBOT__TRON__SOURCE", "trongrid"),
        ("TELEBOT__TRON__TRONGRID_URL", tg.url.as_str()),
        ("TELEBOT__PAYMENTS__WALLETS", WALLET),
    ];
    vars.extend_from_slice(extra);
    start_app(&db.url, &vars).await
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
async fn server_faults_are_retried_and_bad_requests_are_not() {
    let fake = FakeTelegram::start().await;
    let bot = teloxide::Bot::new("123:abc").set_api_url(reqwest::Url::parse(&fake.url).unwrap());
    let outbound = telebot::bot::outbound::Outbound::new(bot);
    fake.state
        .lock()
        .unwrap()
        .send_faults
        .push_back(Fault::ProxyHtml502);
    outbound
        .send_text(42, "after the outage", None)
        .await
        .unwrap();
    let sends = fake.calls("sendMessage");
    assert_eq!(sends.len(), 2, "a proxy's error page, then the message");
    assert_eq!(sends[1]["text"], "after the outage");

    fake.state
        .lock()
        .unwrap()
        .send_faults
        .push_back(Fault::BadRequest);
    let refused = outbound.send_text(43, "nobody", None).await.unwrap_err();
    assert!(refused.is_permanent(), "{refused}");
    assert_eq!(
        fake.calls("sendMessage").len(),
        3,
        "a bad request is not retried"
    );

    // still failing after the retry: transient, so the outbox and broadcaster keep it
    fake.state
        .lock()
        .unwrap()
        .send_faults
        .extend([Fault::Json502, Fault::ProxyHtml502]);
    let failed = outbound.send_text(44, "later", None).await.unwrap_err();
    assert!(!failed.is_permanent(), "{failed}");
}

#[tokio::test]
async fn a_broadcast_goes_through_a_telegram_outage() {
    let db = TestDb::sqlite().await;
    let fake = FakeTelegram::start().await;
    let tg = TronGrid::start().await;
    for id in [801, 802] {
        db.store
            .upsert_telegram_user(&telebot::store::TelegramProfile {
                telegram_id: id,
                username: None,
                first_name: "Reader".into(),
                language: "en".into(),
            })
            .await
            .unwrap();
    }
    let app = start_against(&db, &fake, &tg, &[]).await;
    fake.state
        .lock()
        .unwrap()
        .send_faults
        .extend([Fault::ProxyHtml502, Fault::Json502]);
    // each 5xx costs teloxide's own 10 s pause: the first customer's message fails twice (one
    // send and its retry, so Outbound gives up), waits the broadcaster's 10 s, then goes
    let b = db
        .store
        .create_broadcast("Opening hours change", "token:1")
        .await
        .unwrap();
    let done = wait_for("broadcast finished", Duration::from_secs(90), || async {
        db.store
            .broadcast(b.id)
            .await
            .ok()
            .filter(|b| b.status == "done")
    })
    .await;
    assert_eq!((done.sent, done.failed), (2, 0));
    let delivered: Vec<i64> = fake
        .calls("sendMessage")
        .iter()
        .filter(|c| c["text"] == "Opening hours change")
        .map(|c| c["chat_id"].as_i64().unwrap())
        .collect();
    // the first customer's message was tried three times (two faults), the second's once
    assert_eq!(delivered, vec![801, 801, 801, 802]);
    app.shutdown().await;
}

/// An operator alert goes to every operator chat; when one chat fails for a while, the retry
/// reaches only that chat, and the others do not get the alert twice.
#[tokio::test]
async fn an_operator_alert_reaches_each_operator_chat_once() {
    let db = TestDb::sqlite().await;
    let fake = FakeTelegram::start().await;
    let tg = TronGrid::start().await;
    let app = start_against(
        &db,
        &fake,
        &tg,
        &[("TELEBOT__TELEGRAM__OPERATOR_CHAT_IDS", "901,902")],
    )
    .await;
    // the first chat gets it; the second fails (a send and its retry), so the message stays
    // queued and is tried again
    {
        let mut s = fake.state.lock().unwrap();
        s.fail_sends_to = Some(902);
        s.send_faults.extend([Fault::Json502, Fault::Json502]);
    }
    db.store
        .enqueue(
            "operator",
            Some("stock:77"),
            &json!({"event": "stock_exhausted", "order_id": 77}).to_string(),
        )
        .await
        .unwrap();
    let sent = |chat: i64| {
        fake.calls("sendMessage")
            .iter()
            .filter(|c| c["chat_id"] == chat && c["text"].as_str().unwrap_or("").contains("#77"))
            .count()
    };
    wait_for(
        "the second chat reached",
        Duration::from_secs(60),
        || async { (sent(902) == 3).then_some(()) },
    )
    .await;
    // the alert is marked sent only after its last delivery: from then on nothing more goes out
    wait_for("the alert marked sent", Duration::from_secs(20), || async {
        let rows = db.store.outbox_by_kind("operator", 10).await.unwrap();
        rows.iter().all(|r| r.status == "sent").then_some(())
    })
    .await;
    assert_eq!(sent(901), 1, "the chat that had it is not sent it again");
    assert_eq!(sent(902), 3, "two faults, then delivered");
    let text = fake.calls("sendMessage")[0]["text"].clone();
    assert_eq!(
        text, "⚠️ Order #77 is paid but stock ran out: deliver it by hand.",
        "the alert's text comes from the locale file of the shop's language"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn webhook_mode_registers_its_secret_and_refuses_calls_without_it() {
    let db = TestDb::sqlite().await;
    let fake = FakeTelegram::start().await;
    let tg = TronGrid::start().await;
    let app = start_against(
        &db,
        &fake,
        &tg,
        &[("TELEBOT__TELEGRAM__WEBHOOK_SECRET", "hook-Secret_1")],
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
