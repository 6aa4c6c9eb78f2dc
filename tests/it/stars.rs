//! Telegram Stars end to end through teloxide: the bot, in webhook mode, talks to a loopback Bot
//! API that answers `sendInvoice`, `answerPreCheckoutQuery` and `refundStarPayment` in their
//! real wire format (`tests/data/wire/telegram-stars/`), and the updates Telegram would send
//! (callback queries, `pre_checkout_query`, `successful_payment`, `refunded_payment`) are
//! posted to the webhook as Telegram posts them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use telebot::domain::{OrderStatus, ProductKind, Role};
use telebot::store::{ProductInput, Store};

use crate::common::chain::TronGrid;
use crate::common::{TestDb, WALLET, start_app, token, wait_for, wait_status};

const SECRET: &str = "stars-hook-secret";
const CUSTOMER: i64 = 123_456_789;
const STRANGER: i64 = 555_000_111;
const OPERATOR_CHAT: i64 = 9_000_001;

fn sample_transactions() -> Vec<Value> {
    let v: Value = serde_json::from_str(include_str!(
        "../data/wire/telegram-stars/getStarTransactions.json"
    ))
    .unwrap();
    v["response"]["body"]["result"]["transactions"]
        .as_array()
        .unwrap()
        .clone()
}

fn sample(name: &str) -> Value {
    let text = match name {
        "sendInvoice" => include_str!("../data/wire/telegram-stars/sendInvoice.json"),
        "pre_checkout_query" => include_str!("../data/wire/telegram-stars/pre_checkout_query.json"),
        "successful_payment" => include_str!("../data/wire/telegram-stars/successful_payment.json"),
        "refundStarPayment" => include_str!("../data/wire/telegram-stars/refundStarPayment.json"),
        "refunded_payment" => include_str!("../data/wire/telegram-stars/refunded_payment.json"),
        other => panic!("no sample {other}"),
    };
    serde_json::from_str(text).unwrap()
}

#[derive(Default)]
struct FakeState {
    calls: Vec<(String, Value)>,
    /// Error bodies for the next refundStarPayment calls (from the sample's error_responses).
    refund_errors: VecDeque<Value>,
    next_message_id: i64,
    /// What getStarTransactions lists, oldest first.
    star_transactions: Vec<Value>,
}

#[derive(Clone)]
struct FakeBotApi {
    url: String,
    state: Arc<Mutex<FakeState>>,
}

impl FakeBotApi {
    async fn start() -> FakeBotApi {
        let state = Arc::new(Mutex::new(FakeState {
            next_message_id: 100,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/{bot}/{method}", post(call))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeBotApi { url, state }
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

    /// Texts the bot sent to `chat`.
    fn texts_to(&self, chat: i64) -> Vec<String> {
        self.calls("sendMessage")
            .into_iter()
            .filter(|c| c["chat_id"].as_i64() == Some(chat))
            .filter_map(|c| c["text"].as_str().map(str::to_owned))
            .collect()
    }

    /// Telegram's record of a payment (`incoming`) or of its refund, shaped as the sample's.
    fn list_transaction(
        &self,
        charge: &str,
        from: i64,
        payload: &str,
        amount: i64,
        incoming: bool,
    ) {
        let sample = sample_transactions();
        let mut t = sample[if incoming { 0 } else { 2 }].clone();
        t["id"] = json!(charge);
        t["amount"] = json!(amount);
        let side = if incoming { "source" } else { "receiver" };
        t[side]["user"] = user(from);
        t[side]["invoice_payload"] = json!(payload);
        self.state.lock().unwrap().star_transactions.push(t);
    }

    fn refuse_next_refund(&self, description: &str) {
        let body = sample("refundStarPayment")["error_responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["body"].clone())
            .find(|b| b["description"] == description)
            .unwrap_or_else(|| panic!("no sampled error {description}"));
        self.state.lock().unwrap().refund_errors.push_back(body);
    }
}

async fn call(
    State(state): State<Arc<Mutex<FakeState>>>,
    Path((_bot, method)): Path<(String, String)>,
    body: String,
) -> Response {
    let params: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    s.calls.push((method.clone(), params.clone()));
    let ok = |result: Value| axum::Json(json!({"ok": true, "result": result})).into_response();
    let bot_user = json!({"id": 7000000001i64, "is_bot": true, "first_name": "Shop Bot", "username": "example_shop_bot"});
    match method.to_ascii_lowercase().as_str() {
        "getme" => ok(
            json!({"id": 7000000001i64, "is_bot": true, "first_name": "Shop Bot",
            "username": "example_shop_bot", "can_join_groups": false, "can_read_all_group_messages": false,
            "supports_inline_queries": false, "can_connect_to_business": false, "has_main_web_app": false}),
        ),
        "sendinvoice" => {
            // the sampled answer, for this chat and this invoice
            let mut result = sample("sendInvoice")["response"]["body"]["result"].clone();
            s.next_message_id += 1;
            result["message_id"] = json!(s.next_message_id);
            result["chat"]["id"] = params["chat_id"].clone();
            result["invoice"]["title"] = params["title"].clone();
            result["invoice"]["description"] = params["description"].clone();
            result["invoice"]["total_amount"] = params["prices"][0]["amount"].clone();
            ok(result)
        }
        "sendmessage" | "editmessagetext" | "sendphoto" => {
            s.next_message_id += 1;
            let mut m = json!({"message_id": s.next_message_id, "from": bot_user,
                "chat": {"id": params["chat_id"], "first_name": "Alice", "type": "private"},
                "date": 1_767_225_600, "text": params["text"].as_str().unwrap_or("photo")});
            if !params["reply_markup"].is_null() {
                m["reply_markup"] = params["reply_markup"].clone();
            }
            ok(m)
        }
        "answerprecheckoutquery" => {
            if params["ok"] == json!(false) && params["error_message"].is_null() {
                let err = &sample("pre_checkout_query")["answerPreCheckoutQuery_error_responses"]
                    [1]["body"];
                return (StatusCode::BAD_REQUEST, axum::Json(err.clone())).into_response();
            }
            ok(
                sample("pre_checkout_query")["answerPreCheckoutQuery_response"]["body"]["result"]
                    .clone(),
            )
        }
        "getstartransactions" => {
            let offset = params["offset"].as_u64().unwrap_or(0) as usize;
            let limit = params["limit"].as_u64().unwrap_or(100).clamp(1, 100) as usize;
            let page: Vec<Value> = s
                .star_transactions
                .iter()
                .skip(offset)
                .take(limit)
                .cloned()
                .collect();
            ok(json!({"transactions": page}))
        }
        "refundstarpayment" => match s.refund_errors.pop_front() {
            Some(err) => (StatusCode::BAD_REQUEST, axum::Json(err)).into_response(),
            None => ok(sample("refundStarPayment")["response"]["body"]["result"].clone()),
        },
        _ => ok(json!(true)),
    }
}

/// A shop whose digital key sells for 2.5 USDT or 100 Stars, with `stock` keys.
async fn stars_product(store: &Store, stock: usize) -> i64 {
    let p = store
        .create_product(
            &ProductInput {
                category_id: None,
                kind: ProductKind::Digital,
                name_en: "Premium key, 30 days".into(),
                name_zh: "高级密钥 30 天".into(),
                description_en: "One licence key, delivered in this chat after payment.".into(),
                description_zh: String::new(),
                price: telebot::domain::Money::parse("2.5").unwrap(),
                stars_price: Some(100),
                hidden: false,
                position: 0,
            },
            "test",
        )
        .await
        .unwrap();
    let items: Vec<String> = (1..=stock).map(|i| format!("KEY-{i:04}")).collect();
    store.add_stock(p.id, &items, "test").await.unwrap();
    p.id
}

struct Shop {
    app: telebot::app::Running,
    _chain: TronGrid,
    fake: FakeBotApi,
    http: reqwest::Client,
    next_update: i64,
}

fn user(id: i64) -> Value {
    json!({"id": id, "is_bot": false, "first_name": "Alice", "username": "alice_example", "language_code": "en"})
}

impl Shop {
    async fn start(db: &TestDb, fake: &FakeBotApi) -> Shop {
        let chats = format!("[{OPERATOR_CHAT}]");
        let chain = TronGrid::start().await;
        let app = start_app(
            &db.url,
            &[
                ("TELEBOT__TELEGRAM__TOKEN", "123:abc"),
                ("TELEBOT__TELEGRAM__API_URL", fake.url.as_str()),
                ("TELEBOT__TELEGRAM__MODE", "webhook"),
                ("TELEBOT__TELEGRAM__WEBHOOK_SECRET", SECRET),
                ("TELEBOT__TELEGRAM__OPERATOR_CHAT_IDS", chats.as_str()),
                ("TELEBOT__HTTP__PUBLIC_URL", "https://shop.example.com"),
                ("TELEBOT__TRON__SOURCE", "trongrid"),
                ("TELEBOT__TRON__TRONGRID_URL", chain.url.as_str()),
                ("TELEBOT__PAYMENTS__WALLETS", WALLET),
            ],
        )
        .await;
        Shop {
            app,
            _chain: chain,
            fake: fake.clone(),
            http: reqwest::Client::new(),
            next_update: 900_000_001,
        }
    }

    /// Posts one update the way Telegram's webhook does; returns its id.
    async fn post(&mut self, kind: &str, body: Value) -> i64 {
        let id = self.next_update;
        self.next_update += 1;
        self.post_as(id, kind, body).await;
        id
    }

    async fn post_as(&self, update_id: i64, kind: &str, body: Value) {
        // Telegram's writer puts a newline after the update id (tests/data/wire/telegram-stars/README.md)
        let raw = format!("{{\"update_id\":{update_id},\n\"{kind}\":{body}}}");
        let r = self
            .http
            .post(format!("http://{}/telegram/webhook", self.app.http_addr))
            .header("x-telegram-bot-api-secret-token", SECRET)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "webhook took the update");
    }

    /// The customer presses `data` on a fresh bot message that shows it.
    async fn press(&mut self, from: i64, data: &str) {
        let now = telebot::domain::now_ms() / 1000;
        let q = json!({"id": format!("cb{}", self.next_update), "from": user(from), "chat_instance": "1",
            "data": data,
            "message": {"message_id": 7, "date": now, "chat": {"id": from, "type": "private", "first_name": "Alice"},
                "from": {"id": 7000000001i64, "is_bot": true, "first_name": "Shop Bot"},
                "text": "choose",
                "reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": data}]]}}});
        self.post("callback_query", q).await;
    }

    /// Orders one key with Stars and waits for its invoice: (order id, the sendInvoice call).
    async fn buy_with_stars(&mut self, from: i64, product: i64) -> (i64, Value) {
        let before = self.fake.calls("sendInvoice").len();
        self.press(from, &format!("bs:{product}")).await;
        self.press(from, &format!("sq:{product}:1")).await;
        let invoice = wait_for("the Stars invoice", Duration::from_secs(10), || async {
            self.fake.calls("sendInvoice").get(before).cloned()
        })
        .await;
        let payload = invoice["payload"].as_str().unwrap();
        let id = payload.strip_prefix("order:").unwrap().parse().unwrap();
        (id, invoice)
    }

    /// A pre-checkout query as Telegram sends it; waits for and returns the bot's answer.
    async fn pre_checkout(&mut self, from: i64, payload: &str, amount: i64) -> (Value, Duration) {
        let mut q = sample("pre_checkout_query")["getUpdates_response"]["body"]["result"][0]
            ["pre_checkout_query"]
            .clone();
        let query_id = format!("43820012345{}", self.next_update);
        q["id"] = json!(query_id);
        q["from"] = user(from);
        q["invoice_payload"] = json!(payload);
        q["total_amount"] = json!(amount);
        let started = Instant::now();
        self.post("pre_checkout_query", q).await;
        let answer = wait_for(
            "the pre-checkout answer",
            Duration::from_secs(10),
            || async {
                self.fake
                    .calls("answerPreCheckoutQuery")
                    .into_iter()
                    .find(|a| a["pre_checkout_query_id"] == json!(query_id))
            },
        )
        .await;
        (answer, started.elapsed())
    }

    /// A `successful_payment` service message as Telegram sends it.
    fn payment(from: i64, payload: &str, amount: i64, charge: &str) -> Value {
        let mut m = sample("successful_payment")["update"]["message"].clone();
        m["from"] = user(from);
        m["chat"]["id"] = json!(from);
        m["successful_payment"]["invoice_payload"] = json!(payload);
        m["successful_payment"]["total_amount"] = json!(amount);
        m["successful_payment"]["telegram_payment_charge_id"] = json!(charge);
        m
    }

    async fn api(&self, method: reqwest::Method, path: &str, token: &str) -> (u16, Value) {
        let r = self
            .http
            .request(
                method,
                format!("http://{}/api/v1{path}", self.app.http_addr),
            )
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

async fn delivered_messages(fake: &FakeBotApi, chat: i64) -> usize {
    fake.texts_to(chat)
        .iter()
        .filter(|t| t.contains("Your item"))
        .count()
}

async fn payments_recorded(store: &Store) -> usize {
    store
        .list_stars_payments(None, telebot::store::Page::new(200, 0))
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_key_bought_with_stars_is_delivered_once_and_refunded_from_the_api() {
    bought_delivered_once_refunded(TestDb::sqlite().await).await;
}

#[tokio::test]
#[cfg_attr(
    not(telebot_postgres),
    ignore = "needs PostgreSQL: set TELEBOT_TEST_POSTGRES_URL"
)]
async fn a_key_bought_with_stars_is_delivered_once_and_refunded_from_the_api_on_postgres() {
    bought_delivered_once_refunded(TestDb::postgres().await).await;
}

async fn bought_delivered_once_refunded(db: TestDb) {
    let fake = FakeBotApi::start().await;
    let product = stars_product(&db.store, 2).await;
    let mut shop = Shop::start(&db, &fake).await;

    let (order_id, invoice) = shop.buy_with_stars(CUSTOMER, product).await;
    assert_eq!(invoice["chat_id"], CUSTOMER);
    assert_eq!(invoice["currency"], "XTR");
    assert_eq!(
        invoice["prices"].as_array().unwrap().len(),
        1,
        "one price for Stars"
    );
    assert_eq!(invoice["prices"][0]["amount"], 100);
    assert!(invoice.get("provider_token").is_none(), "{invoice}");
    assert_eq!(invoice["payload"], format!("order:{order_id}"));
    let title = invoice["title"].as_str().unwrap();
    assert!((1..=32).contains(&title.chars().count()), "{title}");
    let description = invoice["description"].as_str().unwrap();
    assert!(
        (1..=255).contains(&description.chars().count()),
        "{description}"
    );
    let order = db.store.order(order_id).await.unwrap();
    assert_eq!(order.status, OrderStatus::PendingPayment);
    assert_eq!(order.stars, Some(100));
    assert_eq!(order.payment_method.as_str(), "stars");
    assert_eq!(order.price.micros(), 0, "no USDT amount on a Stars order");

    let payload = format!("order:{order_id}");
    let (answer, _) = shop.pre_checkout(CUSTOMER, &payload, 100).await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(
        db.store.stock_available(product).await.unwrap(),
        1,
        "the key is reserved for the order while Telegram takes the Stars"
    );

    let charge = "EXAMPLE-telegram-charge-0001";
    let paid = Shop::payment(CUSTOMER, &payload, 100, charge);
    let first = shop.post("message", paid.clone()).await;
    wait_status(&db.store, order_id, OrderStatus::Delivered).await;
    wait_for("the delivery message", Duration::from_secs(10), || async {
        (delivered_messages(&fake, CUSTOMER).await == 1).then_some(())
    })
    .await;
    let order = db.store.order(order_id).await.unwrap();
    assert_eq!(order.delivery.as_deref(), Some("KEY-0001"));

    // Telegram delivers at least once: the same update, and the same payment in a new update
    shop.post_as(first, "message", paid.clone()).await;
    shop.post("message", paid.clone()).await;
    // and again after a restart, when the router remembers no update ids
    shop.app.shutdown().await;
    let shop = Shop::start(&db, &fake).await;
    shop.post_as(first, "message", paid.clone()).await;
    // a repeat changes nothing there is to wait for: give it the time a first payment takes
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        delivered_messages(&fake, CUSTOMER).await,
        1,
        "delivered once"
    );
    assert_eq!(payments_recorded(&db.store).await, 1, "recorded once");
    assert_eq!(db.store.stock_available(product).await.unwrap(), 1);

    // an operator refunds it
    let admin = token(&db.store, Role::Admin, None).await;
    let (status, body) = shop
        .api(
            reqwest::Method::POST,
            &format!("/orders/{order_id}/refund"),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["telegram"], "refunded");
    assert_eq!(body["order"]["status"], "refunded");
    let refund = fake.calls("refundStarPayment");
    assert_eq!(refund.len(), 1);
    assert_eq!(refund[0]["user_id"], CUSTOMER);
    assert_eq!(refund[0]["telegram_payment_charge_id"], charge);
    wait_for(
        "the customer told of the refund",
        Duration::from_secs(10),
        || async {
            fake.texts_to(CUSTOMER)
                .into_iter()
                .find(|t| t.contains(&format!("Order #{order_id}")) && t.contains("refunded"))
        },
    )
    .await;
    assert_eq!(
        db.store.stock_available(product).await.unwrap(),
        1,
        "the delivered key is revoked, not put back on sale"
    );
    let (status, body) = shop
        .api(
            reqwest::Method::POST,
            &format!("/orders/{order_id}/refund"),
            &admin,
        )
        .await;
    assert_eq!(status, 409, "a second refund is refused: {body}");
    assert_eq!(fake.calls("refundStarPayment").len(), 1);
    shop.app.shutdown().await;
    db.finish().await;
}

#[tokio::test]
async fn stars_payments_that_fit_no_order_are_kept_alerted_and_refundable() {
    let db = TestDb::sqlite().await;
    let fake = FakeBotApi::start().await;
    let product = stars_product(&db.store, 3).await;
    let mut shop = Shop::start(&db, &fake).await;
    let admin = token(&db.store, Role::Admin, None).await;
    let (order_id, _) = shop.buy_with_stars(CUSTOMER, product).await;
    let payload = format!("order:{order_id}");

    // a pre-checkout from someone else, for a wrong amount, or for a payload of no order
    for (from, payload, amount) in [
        (STRANGER, payload.as_str(), 100),
        (CUSTOMER, payload.as_str(), 99),
        (CUSTOMER, "order:999999", 100),
        (CUSTOMER, "sub:alice:plan1", 100),
    ] {
        let (answer, _) = shop.pre_checkout(from, payload, amount).await;
        assert_eq!(answer["ok"], false, "{from} {payload} {amount}: {answer}");
        assert!(
            answer["error_message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    assert_eq!(
        db.store.stock_available(product).await.unwrap(),
        3,
        "nothing reserved"
    );

    // payments that arrive anyway pay nothing: an unknown payload, another user's order, a wrong amount
    for (from, payload, amount, charge) in [
        (CUSTOMER, "order:999999", 100, "charge-unknown"),
        (STRANGER, payload.as_str(), 100, "charge-stranger"),
        (CUSTOMER, payload.as_str(), 5, "charge-short"),
    ] {
        shop.post("message", Shop::payment(from, payload, amount, charge))
            .await;
    }
    let unmatched = wait_for(
        "three unmatched payments",
        Duration::from_secs(10),
        || async {
            let list = db
                .store
                .list_stars_payments(Some("unmatched"), telebot::store::Page::new(50, 0))
                .await
                .unwrap();
            (list.len() == 3).then_some(list)
        },
    )
    .await;
    assert_eq!(
        db.store.order(order_id).await.unwrap().status,
        OrderStatus::PendingPayment,
        "no misfit paid the order"
    );
    wait_for("operator alerts", Duration::from_secs(10), || async {
        let alerts = fake
            .texts_to(OPERATOR_CHAT)
            .into_iter()
            .filter(|t| t.contains("Stars payment #") && t.contains("paid nothing"))
            .count();
        (alerts == 3).then_some(())
    })
    .await;
    let (status, listed) = shop
        .api(
            reqwest::Method::GET,
            "/stars/payments?outcome=unmatched",
            &admin,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);

    // refunds of unmatched payments: Telegram's errors are told apart
    let stranger = unmatched
        .iter()
        .find(|p| p.charge_id == "charge-stranger")
        .unwrap();
    assert_eq!(stranger.order_id, None, "another user's order is not named");
    fake.refuse_next_refund("Bad Request: CHARGE_ID_EMPTY");
    let (status, body) = shop
        .api(
            reqwest::Method::POST,
            &format!("/stars/payments/{}/refund", stranger.id),
            &admin,
        )
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CHARGE_ID_EMPTY"),
        "{body}"
    );
    assert!(
        db.store
            .stars_payment(stranger.id)
            .await
            .unwrap()
            .refunded_at
            .is_none()
    );
    fake.refuse_next_refund("Bad Request: CHARGE_ALREADY_REFUNDED");
    let (status, body) = shop
        .api(
            reqwest::Method::POST,
            &format!("/stars/payments/{}/refund", stranger.id),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["telegram"], "already_refunded");
    assert!(body["stars_payment"]["refunded_at"].is_i64());
    let short = unmatched
        .iter()
        .find(|p| p.charge_id == "charge-short")
        .unwrap();
    assert_eq!(
        short.order_id,
        Some(order_id),
        "the payer's own order is named for the operator"
    );
    let (status, body) = shop
        .api(
            reqwest::Method::POST,
            &format!("/stars/payments/{}/refund", short.id),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        db.store.order(order_id).await.unwrap().status,
        OrderStatus::PendingPayment,
        "refunding a payment that paid nothing leaves the order alone"
    );

    // "Check payment" on a pending Stars order points to its invoice, not to a USDT amount
    assert_eq!(
        db.store.order(order_id).await.unwrap().status,
        OrderStatus::PendingPayment
    );
    shop.press(CUSTOMER, &format!("ck:{order_id}")).await;
    wait_for("the check answer", Duration::from_secs(10), || async {
        fake.calls("answerCallbackQuery").into_iter().find(|a| {
            a["text"]
                .as_str()
                .is_some_and(|t| t.contains("waits for 100 Stars") && !t.contains("USDT"))
        })
    })
    .await;

    // a cancelled order cannot be paid any more
    let who = format!("user:{}", db.store.order(order_id).await.unwrap().user_id);
    shop.app.app.orders.cancel(order_id, &who).await.unwrap();
    let (answer, _) = shop.pre_checkout(CUSTOMER, &payload, 100).await;
    assert_eq!(answer["ok"], false);
    assert!(
        answer["error_message"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{answer}"
    );
    shop.app.shutdown().await;
    db.finish().await;
}

#[tokio::test]
async fn a_refund_made_elsewhere_refunds_the_order_and_paysupport_opens_a_request() {
    let db = TestDb::sqlite().await;
    let fake = FakeBotApi::start().await;
    let product = stars_product(&db.store, 1).await;
    let mut shop = Shop::start(&db, &fake).await;
    let (order_id, _) = shop.buy_with_stars(CUSTOMER, product).await;
    let payload = format!("order:{order_id}");
    let (answer, _) = shop.pre_checkout(CUSTOMER, &payload, 100).await;
    assert_eq!(answer["ok"], true);
    shop.post(
        "message",
        Shop::payment(CUSTOMER, &payload, 100, "EXAMPLE-telegram-charge-0001"),
    )
    .await;
    wait_status(&db.store, order_id, OrderStatus::Delivered).await;

    // the sampled refunded_payment (no `from`), for this order's charge
    let mut refunded = sample("refunded_payment")["update"]["message"].clone();
    refunded["chat"]["id"] = json!(CUSTOMER);
    refunded["refunded_payment"]["invoice_payload"] = json!(payload);
    shop.post("message", refunded).await;
    wait_status(&db.store, order_id, OrderStatus::Refunded).await;
    assert!(
        fake.calls("refundStarPayment").is_empty(),
        "Telegram refunded it already"
    );
    let payment = db
        .store
        .stars_payment_of_order(order_id)
        .await
        .unwrap()
        .unwrap();
    assert!(payment.refunded_at.is_some());

    // /paysupport answers from the locale file and tells the operators
    let now = telebot::domain::now_ms() / 1000;
    shop.post(
        "message",
        json!({"message_id": 50, "from": user(CUSTOMER), "date": now,
            "chat": {"id": CUSTOMER, "type": "private", "first_name": "Alice"},
            "text": "/paysupport", "entities": [{"type": "bot_command", "offset": 0, "length": 11}]}),
    )
    .await;
    wait_for("the support answer", Duration::from_secs(10), || async {
        fake.texts_to(CUSTOMER)
            .into_iter()
            .find(|t| t.contains("Payment support") && t.contains("request #"))
    })
    .await;
    wait_for(
        "the operators' support alert",
        Duration::from_secs(10),
        || async {
            fake.texts_to(OPERATOR_CHAT).into_iter().find(|t| {
                t.contains("Payment support request #") && t.contains(&CUSTOMER.to_string())
            })
        },
    )
    .await;
    // operators list it and mark it answered
    let operator = token(&db.store, Role::Operator, None).await;
    let (status, open) = shop
        .api(
            reqwest::Method::GET,
            "/support/requests?status=open",
            &operator,
        )
        .await;
    assert_eq!(status, 200);
    let items = open["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["telegram_id"], CUSTOMER);
    let id = items[0]["id"].as_i64().unwrap();
    let path = format!("/support/requests/{id}/close");
    let (status, _) = shop.api(reqwest::Method::POST, &path, &operator).await;
    assert_eq!(status, 204);
    let (status, _) = shop.api(reqwest::Method::POST, &path, &operator).await;
    assert_eq!(status, 409, "closed already");
    let (_, open) = shop
        .api(
            reqwest::Method::GET,
            "/support/requests?status=open",
            &operator,
        )
        .await;
    assert!(open["items"].as_array().unwrap().is_empty());
    shop.app.shutdown().await;
    db.finish().await;
}

#[tokio::test]
async fn a_new_shop_refuses_digital_goods_and_services_without_a_stars_price() {
    let defaults = telebot::config::Config::load_with_env(
        telebot::config::FileLayer::None,
        Vec::<(String, String)>::new(),
    )
    .unwrap();
    assert!(defaults.stars.require_price, "on by default for new shops");
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[("TELEBOT__STARS__REQUIRE_PRICE", "true")]).await;
    let operator = token(&db.store, Role::Operator, None).await;
    let http = reqwest::Client::new();
    let create = |body: Value| {
        let http = http.clone();
        let url = format!("http://{}/api/v1/products", app.http_addr);
        let operator = operator.clone();
        async move {
            let r = http
                .post(url)
                .bearer_auth(operator)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    for kind in ["digital", "service"] {
        let (status, body) =
            create(json!({"kind": kind, "name_en": "Key", "name_zh": "钥匙", "price": "5"})).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["field"], "stars_price");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Telegram Stars"),
            "{body}"
        );
    }
    let (status, body) = create(json!({"kind": "digital", "name_en": "Key", "name_zh": "钥匙", "price": "5", "stars_price": 250})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["stars_price"], 250);
    let (status, body) = create(json!({"kind": "topup", "name_en": "Top-up", "name_zh": "充值", "price": "0", "stars_price": 10})).await;
    assert_eq!(status, 422, "Stars cannot buy balance: {body}");
    let (status, _) =
        create(json!({"kind": "topup", "name_en": "Top-up", "name_zh": "充值", "price": "0"}))
            .await;
    assert_eq!(status, 201);
    for bad in [json!(0), json!(1.5), json!(-3), json!(100_001)] {
        let (status, body) = create(json!({"kind": "service", "name_en": "Work", "name_zh": "工作", "price": "5", "stars_price": bad})).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    app.shutdown().await;
    db.finish().await;
}

#[tokio::test]
async fn an_agent_earns_stars_on_stars_sales_and_is_paid_out_per_currency() {
    let db = TestDb::sqlite().await;
    let fake = FakeBotApi::start().await;
    let product = stars_product(&db.store, 2).await;
    let agent = db
        .store
        .create_agent(
            &telebot::store::NewAgent {
                user_id: None,
                name: "Reseller".into(),
                code: "resell1".into(),
                commission_bps: 1500,
                status: telebot::domain::AgentStatus::Active,
            },
            "test",
        )
        .await
        .unwrap();
    let (customer, _) = db
        .store
        .upsert_telegram_user(&telebot::store::TelegramProfile {
            telegram_id: CUSTOMER,
            username: None,
            first_name: "Alice".into(),
            language: "en".into(),
        })
        .await
        .unwrap();
    assert!(db.store.bind_referral(customer.id, agent.id).await.unwrap());
    let mut shop = Shop::start(&db, &fake).await;
    let (order_id, _) = shop.buy_with_stars(CUSTOMER, product).await;
    let payload = format!("order:{order_id}");
    shop.pre_checkout(CUSTOMER, &payload, 100).await;
    shop.post(
        "message",
        Shop::payment(CUSTOMER, &payload, 100, "charge-agent-1"),
    )
    .await;
    wait_status(&db.store, order_id, OrderStatus::Delivered).await;

    let commissions = db
        .store
        .commissions(agent.id, telebot::store::Page::new(10, 0))
        .await
        .unwrap();
    assert_eq!(commissions.len(), 1);
    assert_eq!(commissions[0].currency, "XTR");
    assert_eq!(commissions[0].amount, "15", "15% of 100 Stars, in Stars");
    let stats = db.store.agent_stats(agent.id).await.unwrap();
    assert_eq!(stats.stars.sales, 100);
    assert_eq!(stats.stars.pending, 15);
    assert_eq!(stats.pending.micros(), 0, "no Stars counted as USDT");
    assert_eq!(stats.sales.micros(), 0);

    // once the hold is over, a payout pays one currency
    db.store
        .execute_admin("update commissions set available_at = 0")
        .await
        .unwrap();
    let address = WALLET;
    assert!(
        db.store
            .request_payout(agent.id, address, "USDT", "test")
            .await
            .unwrap()
            .is_none(),
        "no USDT earned"
    );
    let payout = db
        .store
        .request_payout(agent.id, address, "XTR", "test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (payout.amount.as_str(), payout.currency.as_str()),
        ("15", "XTR")
    );

    // a refund takes the commission back out of the undecided payout
    let admin = token(&db.store, Role::Admin, None).await;
    let (status, body) = shop
        .api(
            reqwest::Method::POST,
            &format!("/orders/{order_id}/refund"),
            &admin,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let payout = db.store.payout(payout.id).await.unwrap();
    assert_eq!(payout.status, "rejected", "nothing left to pay");
    assert!(
        db.store
            .commissions(agent.id, telebot::store::Page::new(10, 0))
            .await
            .unwrap()
            .is_empty()
    );
    shop.app.shutdown().await;
    db.finish().await;
}

#[tokio::test]
async fn the_built_in_simulator_buys_with_stars_from_the_chat() {
    let db = TestDb::sqlite().await;
    let product = stars_product(&db.store, 2).await;
    let app = start_app(&db.url, &[]).await;
    let alice = crate::common::sim::SimUser::new(app.http_addr, 4242);
    alice.say(&format!("/start p_{product}")).await;
    let screen = alice.expect(0, "Premium key").await;
    assert!(screen.text.contains("100 ⭐"), "{}", screen.text);
    let v = alice.version().await;
    alice
        .press(screen.message_id, &screen.button("Pay with Stars"))
        .await;
    let keyboard = alice.expect(v, "How many").await;
    alice
        .press(keyboard.message_id, &format!("sq:{product}:1"))
        .await;
    let invoice = alice.invoice().await;
    let details = invoice.invoice.clone().unwrap();
    assert_eq!(details["currency"], "XTR");
    assert_eq!(details["total_amount"], 100);
    let v = alice.version().await;
    let paid = alice.pay(invoice.message_id).await;
    assert_eq!(paid["ok"], true, "{paid}");
    let delivered = alice.expect(v, "Your item").await;
    assert!(delivered.text.contains("KEY-0001"), "{}", delivered.text);
    // "My orders" names the amount in the currency it was paid in
    let v = alice.version().await;
    alice.say("/orders").await;
    let list = alice.expect(v, "Your orders").await;
    assert!(list.text.contains("100 ⭐"), "{}", list.text);
    assert!(!list.text.contains("0.000000"), "{}", list.text);
    let again = reqwest::Client::new()
        .post(format!(
            "http://{}/sim/api/users/4242/payments",
            app.http_addr
        ))
        .json(&json!({"message_id": invoice.message_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400, "an invoice is paid once");

    // Telegram refunds it on its own: the order follows
    let charge = paid["charge_id"].as_str().unwrap();
    alice.refund_elsewhere(charge).await;
    let order_id = db
        .store
        .stars_payment_by_charge(charge)
        .await
        .unwrap()
        .unwrap()
        .order_id
        .unwrap();
    wait_status(&db.store, order_id, OrderStatus::Refunded).await;
    app.shutdown().await;
    db.finish().await;
}

#[tokio::test]
async fn the_reconciliation_records_what_telegram_lists_and_reports_what_it_does_not() {
    let db = TestDb::sqlite().await;
    let fake = FakeBotApi::start().await;
    let product = stars_product(&db.store, 5).await;
    let mut shop = Shop::start(&db, &fake).await;
    // A: paid at Telegram, but its successful_payment never reached the shop
    let (lost, _) = shop.buy_with_stars(CUSTOMER, product).await;
    // B: recorded here, not listed by Telegram
    let (unlisted, _) = shop.buy_with_stars(CUSTOMER, product).await;
    // C: paid and recorded, then refunded at Telegram without the refunded_payment arriving
    let (refunded, _) = shop.buy_with_stars(CUSTOMER, product).await;
    for (order, charge) in [(unlisted, "charge-b"), (refunded, "charge-c")] {
        let payload = format!("order:{order}");
        shop.pre_checkout(CUSTOMER, &payload, 100).await;
        shop.post("message", Shop::payment(CUSTOMER, &payload, 100, charge))
            .await;
        wait_status(&db.store, order, OrderStatus::Delivered).await;
    }
    // Telegram's list, paged: API fees and withdrawals (no sales) fill the first page and
    // more, and one payment names no order of this shop
    {
        let fillers = sample_transactions();
        let mut s = fake.state.lock().unwrap();
        for i in 0..150 {
            let mut t = fillers[3 + i % 2].clone();
            t["id"] = json!(format!("fee-{i}"));
            s.star_transactions.push(t);
        }
    }
    fake.list_transaction("charge-foreign", STRANGER, "sub:x", 7, true);
    fake.list_transaction("charge-a", CUSTOMER, &format!("order:{lost}"), 100, true);
    fake.list_transaction(
        "charge-c",
        CUSTOMER,
        &format!("order:{refunded}"),
        100,
        true,
    );
    fake.list_transaction(
        "charge-c",
        CUSTOMER,
        &format!("order:{refunded}"),
        100,
        false,
    );

    let reconciler = telebot::actors::stars_reconciler::StarsReconciler {
        store: db.store.clone(),
        orders: shop.app.app.bot_env.orders.clone(),
        outbound: shop.app.app.bot_env.outbound.clone(),
        grace: Duration::ZERO,
    };
    let stopping = std::sync::atomic::AtomicBool::new(false);
    reconciler.reconcile(&stopping).await.unwrap();
    // (the service's own reconciler may have run a round too)
    let offsets: Vec<Value> = fake
        .calls("getStarTransactions")
        .iter()
        .map(|p| p["offset"].clone())
        .collect();
    assert!(
        offsets.contains(&json!(100)) && offsets.iter().all(|o| *o == json!(0) || *o == json!(100)),
        "154 transactions are read as two pages of 100: {offsets:?}"
    );

    wait_status(&db.store, lost, OrderStatus::Delivered).await;
    assert_eq!(
        db.store.order(refunded).await.unwrap().status,
        OrderStatus::Refunded
    );
    let unmatched = db
        .store
        .list_stars_payments(Some("unmatched"), telebot::store::Page::new(200, 0))
        .await
        .unwrap();
    assert_eq!(
        unmatched.len(),
        1,
        "the payment of no order is kept as unmatched"
    );
    assert_eq!(
        (unmatched[0].charge_id.as_str(), unmatched[0].total_amount),
        ("charge-foreign", 7)
    );
    wait_for(
        "the missing-transaction alert",
        Duration::from_secs(10),
        || async {
            fake.texts_to(OPERATOR_CHAT).into_iter().find(|t| {
                t.contains("is not among Telegram's Stars transactions")
                    && t.contains(&format!("order #{unlisted}"))
            })
        },
    )
    .await;

    // a second round finds nothing new: no second delivery, no second alert
    reconciler.reconcile(&stopping).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(delivered_messages(&fake, CUSTOMER).await, 3);
    let alerts = fake
        .texts_to(OPERATOR_CHAT)
        .into_iter()
        .filter(|t| t.contains("is not among Telegram's Stars transactions"))
        .count();
    assert_eq!(alerts, 1);
    shop.app.shutdown().await;
    db.finish().await;
}

/// Telegram waits 10 s for the pre-checkout answer: with the database locked by another
/// writer for longer than that, the customer is still answered (asked to try again, no Stars
/// taken) while the lock is held, and the next query after it is gone is accepted.
#[tokio::test]
async fn pre_checkout_is_answered_while_the_database_is_locked() {
    use sqlx::Connection;
    let db = TestDb::sqlite().await;
    let fake = FakeBotApi::start().await;
    let product = stars_product(&db.store, 1).await;
    let mut shop = Shop::start(&db, &fake).await;
    let (order_id, _) = shop.buy_with_stars(CUSTOMER, product).await;
    let payload = format!("order:{order_id}");

    let mut blocker = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("begin immediate")
        .execute(&mut blocker)
        .await
        .unwrap();
    let (answer, _) = shop.pre_checkout(CUSTOMER, &payload, 100).await;
    // still locked here: the answer did not wait for the database
    assert_eq!(answer["ok"], false, "{answer}");
    assert!(
        answer["error_message"]
            .as_str()
            .unwrap()
            .contains("No Stars were taken"),
        "{answer}"
    );
    sqlx::query("rollback").execute(&mut blocker).await.unwrap();
    drop(blocker);
    let (answer, _) = shop.pre_checkout(CUSTOMER, &payload, 100).await;
    assert_eq!(answer["ok"], true, "{answer}");
    shop.app.shutdown().await;
    db.finish().await;
}

/// A Stars quantity button orders only from the message that shows it: forged callback data
/// (another message, another product) sends no invoice and creates no order.
#[tokio::test]
async fn forged_stars_buttons_order_nothing() {
    let db = TestDb::sqlite().await;
    let fake = FakeBotApi::start().await;
    let product = stars_product(&db.store, 3).await;
    let mut shop = Shop::start(&db, &fake).await;
    let now = telebot::domain::now_ms() / 1000;
    for data in [
        format!("sq:{product}:1"),
        format!("sq:{product}:100"),
        "sq:999:1".to_owned(),
    ] {
        // pressed on a message whose keyboard never showed it
        let q = json!({"id": format!("forged-{data}"), "from": user(CUSTOMER), "chat_instance": "1",
            "data": data,
            "message": {"message_id": 9, "date": now, "chat": {"id": CUSTOMER, "type": "private", "first_name": "Alice"},
                "from": {"id": 7000000001i64, "is_bot": true, "first_name": "Shop Bot"}, "text": "menu",
                "reply_markup": {"inline_keyboard": [[{"text": "Menu", "callback_data": "m"}]]}}});
        shop.post("callback_query", q).await;
        let id = format!("forged-{data}");
        let answer = wait_for("the refusal", Duration::from_secs(10), || async {
            fake.calls("answerCallbackQuery")
                .into_iter()
                .find(|a| a["callback_query_id"] == json!(id))
        })
        .await;
        assert!(
            answer["text"].as_str().unwrap().contains("no longer valid"),
            "{answer}"
        );
    }
    // a real one still works, so the refusals above were the forgery's
    shop.buy_with_stars(CUSTOMER, product).await;
    assert_eq!(fake.calls("sendInvoice").len(), 1);
    let orders = db
        .store
        .list_orders(&Default::default(), telebot::store::Page::new(50, 0))
        .await
        .unwrap();
    assert_eq!(orders.len(), 1, "only the real button ordered");
    shop.app.shutdown().await;
    db.finish().await;
}

/// Two instances on one PostgreSQL database both receive the same `successful_payment` (a
/// webhook redelivered to another instance behind a load balancer): one delivery, one record.
#[tokio::test]
#[cfg_attr(
    not(telebot_postgres),
    ignore = "needs PostgreSQL: set TELEBOT_TEST_POSTGRES_URL"
)]
async fn a_payment_reaching_two_instances_delivers_once() {
    let db = TestDb::postgres().await;
    let fake = FakeBotApi::start().await;
    let product = stars_product(&db.store, 2).await;
    let mut first = Shop::start(&db, &fake).await;
    let mut second = Shop::start(&db, &fake).await;
    second.next_update = 800_000_001;
    let (order_id, _) = first.buy_with_stars(CUSTOMER, product).await;
    let payload = format!("order:{order_id}");
    let (answer, _) = first.pre_checkout(CUSTOMER, &payload, 100).await;
    assert_eq!(answer["ok"], true);
    let paid = Shop::payment(CUSTOMER, &payload, 100, "charge-two-instances");
    tokio::join!(
        first.post("message", paid.clone()),
        second.post("message", paid.clone())
    );
    wait_status(&db.store, order_id, OrderStatus::Delivered).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(payments_recorded(&db.store).await, 1);
    wait_for("the delivery message", Duration::from_secs(15), || async {
        (delivered_messages(&fake, CUSTOMER).await >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        delivered_messages(&fake, CUSTOMER).await,
        1,
        "delivered once"
    );
    second.app.shutdown().await;
    first.app.shutdown().await;
    db.finish().await;
}

/// A Stars order is paid only with Stars: the balance does not pay it (its USDT price is 0, so
/// it would cost nothing). An operator's assignment of a USDT transfer meets the same check.
#[tokio::test]
async fn a_stars_order_is_not_paid_from_the_balance() {
    let db = TestDb::sqlite().await;
    let fake = FakeBotApi::start().await;
    let product = stars_product(&db.store, 1).await;
    let mut shop = Shop::start(&db, &fake).await;
    let (order_id, _) = shop.buy_with_stars(CUSTOMER, product).await;
    let order = db.store.order(order_id).await.unwrap();
    db.store
        .adjust_balance(
            order.user_id,
            telebot::domain::Money::parse("100").unwrap(),
            telebot::store::LedgerReason::Adjustment,
            None,
            None,
        )
        .await
        .unwrap();
    let outcome = shop
        .app
        .app
        .orders
        .pay_from_balance(order_id, "test")
        .await
        .unwrap();
    assert!(
        matches!(
            outcome,
            telebot::store::PayOutcome::DoesNotFit(telebot::store::Misfit::PaidInStars)
        ),
        "{outcome:?}"
    );
    let user = db.store.user(order.user_id).await.unwrap();
    assert_eq!(user.balance.to_string(), "100.000000", "nothing debited");
    assert_eq!(
        db.store.order(order_id).await.unwrap().status,
        OrderStatus::PendingPayment
    );
    shop.app.shutdown().await;
    db.finish().await;
}
