//! REST API v1: every endpoint, every role boundary, malformed input, the OpenAPI document, on
//! SQLite and (when TELEBOT_TEST_POSTGRES_URL is set) PostgreSQL.

use crate::common::{TestDb, start_app, token, wait_for};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use telebot::domain::{Money, Role};

macro_rules! api_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = super::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[cfg_attr(not(telebot_postgres), ignore = "needs PostgreSQL: set TELEBOT_TEST_POSTGRES_URL")]
                async fn $name() {
                    let db = super::TestDb::postgres().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

api_suite!(
    every_endpoint_checks_its_roles,
    catalog_endpoints_validate_their_input,
    orders_follow_the_state_machine_and_notify,
    agents_earn_commissions_and_request_payouts,
    operators_assign_unmatched_transfers,
    malformed_input_never_causes_a_server_error,
    the_audit_trail_records_who_did_what,
    a_refund_takes_the_commission_back_and_top_ups_are_not_refunded,
);

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(addr: std::net::SocketAddr) -> Api {
        Api {
            base: format!("http://{addr}/api/v1"),
            client: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }
}

struct Tokens {
    admin: String,
    operator: String,
    service: String,
    agent: String,
    agent_id: i64,
}

async fn tokens(db: &TestDb) -> Tokens {
    let agent = db
        .store
        .create_agent(
            &telebot::store::NewAgent {
                user_id: None,
                name: "Reseller".into(),
                code: "reseller".into(),
                commission_bps: 1_000,
                status: telebot::domain::AgentStatus::Active,
            },
            "test",
        )
        .await
        .unwrap();
    Tokens {
        admin: token(&db.store, Role::Admin, None).await,
        operator: token(&db.store, Role::Operator, None).await,
        service: token(&db.store, Role::Service, None).await,
        agent: token(&db.store, Role::Agent, Some(agent.id)).await,
        agent_id: agent.id,
    }
}

fn product_body(name: &str, kind: &str, price: &str) -> Value {
    json!({"kind": kind, "name_en": name, "name_zh": "商品", "price": price})
}

async fn every_endpoint_checks_its_roles(db: &TestDb) {
    let app = start_app(&db.url, &[]).await;
    let api = Api::new(app.http_addr);
    let t = tokens(db).await;
    let (_, product) = crate::common::shop(&db.store, 1, "5", 5).await;
    let user = db.store.user_by_telegram_id(1).await.unwrap().unwrap();
    let order = crate::common::order_for(&app.app, user.id, &product, 1).await;
    let other_agent = db
        .store
        .create_agent(
            &telebot::store::NewAgent {
                user_id: None,
                name: "Other".into(),
                code: "other".into(),
                commission_bps: 0,
                status: telebot::domain::AgentStatus::Active,
            },
            "test",
        )
        .await
        .unwrap();

    use Role::*;
    // (method, path, body, roles allowed)
    let cases: Vec<(Method, String, Option<Value>, &[Role])> = vec![
        (
            Method::GET,
            "/users".into(),
            None,
            &[Admin, Operator, Service, Agent],
        ),
        (
            Method::POST,
            "/users".into(),
            Some(json!({"telegram_id": 77, "first_name": "New"})),
            &[Admin, Operator, Service],
        ),
        (
            Method::GET,
            format!("/users/{}", user.id),
            None,
            &[Admin, Operator, Service],
        ),
        (
            Method::GET,
            "/categories".into(),
            None,
            &[Admin, Operator, Service, Agent],
        ),
        (
            Method::POST,
            "/categories".into(),
            Some(json!({"slug": "s", "name_en": "S", "name_zh": "S"})),
            &[Admin, Operator],
        ),
        (
            Method::GET,
            "/products".into(),
            None,
            &[Admin, Operator, Service, Agent],
        ),
        (
            Method::POST,
            "/products".into(),
            Some(product_body("P", "service", "1")),
            &[Admin, Operator],
        ),
        (
            Method::GET,
            format!("/products/{}", product.id),
            None,
            &[Admin, Operator, Service, Agent],
        ),
        (
            Method::PUT,
            format!("/products/{}", product.id),
            Some(product_body("Q", "digital", "5")),
            &[Admin, Operator],
        ),
        (
            Method::POST,
            format!("/products/{}/stock", product.id),
            Some(json!({"items": ["K"]})),
            &[Admin, Operator],
        ),
        (
            Method::GET,
            "/orders".into(),
            None,
            &[Admin, Operator, Service, Agent],
        ),
        (
            Method::POST,
            "/orders".into(),
            Some(json!({"user_id": user.id, "product_id": product.id})),
            &[Admin, Operator, Service],
        ),
        (
            Method::GET,
            format!("/orders/{}", order.id),
            None,
            &[Admin, Operator, Service],
        ),
        (
            Method::GET,
            format!("/payments/{}", order.id),
            None,
            &[Admin, Operator, Service],
        ),
        (
            Method::GET,
            "/payments/transfers".into(),
            None,
            &[Admin, Operator],
        ),
        (
            Method::GET,
            "/agents".into(),
            None,
            &[Admin, Operator, Agent],
        ),
        (
            Method::POST,
            "/agents".into(),
            Some(json!({"name": "A", "commission_bps": 500})),
            &[Admin, Operator],
        ),
        (
            Method::GET,
            format!("/agents/{}", t.agent_id),
            None,
            &[Admin, Operator, Agent],
        ),
        (
            Method::PUT,
            format!("/agents/{}", other_agent.id),
            Some(json!({"commission_bps": 700})),
            &[Admin, Operator],
        ),
        (
            Method::GET,
            format!("/agents/{}/commissions", t.agent_id),
            None,
            &[Admin, Operator, Agent],
        ),
        (
            Method::GET,
            format!("/agents/{}/payouts", t.agent_id),
            None,
            &[Admin, Operator, Agent],
        ),
        (Method::GET, "/payouts".into(), None, &[Admin, Operator]),
        (Method::GET, "/tokens".into(), None, &[Admin]),
        (
            Method::POST,
            "/tokens".into(),
            Some(json!({"name": "x", "role": "service"})),
            &[Admin],
        ),
        (Method::GET, "/audit".into(), None, &[Admin, Operator]),
        (
            Method::GET,
            "/admin/subsystems".into(),
            None,
            &[Admin, Operator],
        ),
        (
            Method::POST,
            "/admin/subsystems/notifier/restart".into(),
            None,
            &[Admin],
        ),
        (
            Method::GET,
            "/admin/broadcasts".into(),
            None,
            &[Admin, Operator],
        ),
        (
            Method::POST,
            "/admin/broadcasts".into(),
            Some(json!({"text": "hi"})),
            &[Admin, Operator],
        ),
    ];
    let roles = [
        (Admin, &t.admin),
        (Operator, &t.operator),
        (Service, &t.service),
        (Agent, &t.agent),
    ];
    for (method, path, body, allowed) in &cases {
        let (status, _) = api.call(method.clone(), path, None, body.clone()).await;
        assert_eq!(status, 401, "{method} {path} without a token");
        let (status, _) = api
            .call(method.clone(), path, Some("tb_forged"), body.clone())
            .await;
        assert_eq!(status, 401, "{method} {path} with a forged token");
        for (role, token) in roles {
            let (status, reply) = api
                .call(method.clone(), path, Some(token), body.clone())
                .await;
            if allowed.contains(&role) {
                // a create may meet what an earlier role created (409, or stock already
                // uploaded); never a refusal
                let ok = (200..300).contains(&status)
                    || (*method == Method::POST
                        && (status == 409 || reply["error"]["code"] == "duplicate_items"));
                assert!(ok, "{method} {path} as {role}: {status} {reply}");
            } else {
                assert!(
                    status == 403 || status == 404,
                    "{method} {path} as {role} must be refused: {status} {reply}"
                );
                assert!(
                    reply["error"]["code"].is_string(),
                    "one error shape: {reply}"
                );
            }
        }
    }
    // an agent sees itself, not other agents
    let (status, _) = api
        .get(&format!("/agents/{}", other_agent.id), &t.agent)
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .get(&format!("/users?agent_id={}", other_agent.id), &t.agent)
        .await;
    assert_eq!(status, 403);
    let (_, agents) = api.get("/agents", &t.agent).await;
    assert_eq!(agents["items"].as_array().unwrap().len(), 1);
    // a revoked token stops working at once
    let (_, created) = api
        .post(
            "/tokens",
            &t.admin,
            json!({"name": "temp", "role": "operator"}),
        )
        .await;
    let temp = created["token"].as_str().unwrap().to_owned();
    assert_eq!(api.get("/orders", &temp).await.0, 200);
    let id = created["id"].as_i64().unwrap();
    assert_eq!(
        api.call(
            Method::DELETE,
            &format!("/tokens/{id}"),
            Some(&t.admin),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(api.get("/orders", &temp).await.0, 401);
    app.shutdown().await;
}

async fn catalog_endpoints_validate_their_input(db: &TestDb) {
    let app = start_app(&db.url, &[("TELEBOT__HTTP__BODY_LIMIT_BYTES", "4096")]).await;
    let api = Api::new(app.http_addr);
    let t = tokens(db).await;
    let (status, cat) = api
        .post(
            "/categories",
            &t.operator,
            json!({"slug": "keys", "name_en": "Keys", "name_zh": "密钥"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = api
        .post(
            "/categories",
            &t.operator,
            json!({"slug": "keys", "name_en": "Again", "name_zh": ""}),
        )
        .await;
    assert_eq!(status, 409);
    let mut body = product_body("Key", "digital", "9.990000");
    body["category_id"] = cat["id"].clone();
    let (status, p) = api.post("/products", &t.operator, body.clone()).await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["price"], "9.990000");
    let id = p["id"].as_i64().unwrap();

    for (field, value, expect_field) in [
        ("price", json!("1.0000001"), "price"),
        ("price", json!("-1"), "price"),
        ("price", json!(5), "price"),
        ("price", json!("1e3"), "price"),
        ("kind", json!("weapon"), "kind"),
        ("name_en", json!(""), "name_en"),
        ("name_en", json!("x".repeat(129)), "name_en"),
        ("category_id", json!(999_999), "category_id"),
        ("surprise", json!(true), "."),
    ] {
        let mut b = body.clone();
        b[field] = value.clone();
        let (status, err) = api.post("/products", &t.operator, b).await;
        assert_eq!(status, 422, "{field}={value}: {err}");
        assert_eq!(err["error"]["code"], "invalid_field");
        if expect_field != "." {
            assert_eq!(err["error"]["field"], expect_field, "{err}");
        } else {
            assert!(
                err["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("surprise"),
                "{err}"
            );
        }
    }
    let (status, err) = api
        .call(Method::POST, "/products", Some(&t.operator), None)
        .await;
    assert_eq!(status, 415, "{err}");
    let raw = api
        .client
        .post(format!("{}/products", api.base))
        .bearer_auth(&t.operator)
        .header("content-type", "application/json")
        .body("{\"kind\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let big = api
        .post(
            "/products",
            &t.operator,
            product_body(&"x".repeat(5000), "service", "1"),
        )
        .await;
    assert_eq!(big.0, 413);

    let (status, _) = api
        .post(
            &format!("/products/{id}/stock"),
            &t.operator,
            json!({"items": ["A", "B"]}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, left) = api.get(&format!("/products/{id}/stock"), &t.operator).await;
    assert_eq!(
        (status, left["available"].as_i64()),
        (200, Some(2)),
        "{left}"
    );
    assert_eq!(api.get("/products/999999/stock", &t.operator).await.0, 404);
    assert_eq!(
        api.get(&format!("/products/{id}/stock"), &t.service)
            .await
            .0,
        403
    );
    let (status, err) = api
        .post(
            &format!("/products/{id}/stock"),
            &t.operator,
            json!({"items": []}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("items"))
    );
    // a line already in stock, or twice in the upload, is refused and nothing is added
    let (status, err) = api
        .post(
            &format!("/products/{id}/stock"),
            &t.operator,
            json!({"items": ["C", "A", "C"]}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("duplicate_items")),
        "{err}"
    );
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("items[1] is already in stock"),
        "{message}"
    );
    assert!(message.contains("items[2] repeats items[0]"), "{message}");
    let (status, added) = api
        .post(
            &format!("/products/{id}/stock"),
            &t.operator,
            json!({"items": ["C"]}),
        )
        .await;
    assert_eq!((status, added["available"].as_i64()), (200, Some(3)));

    let (_, list) = api
        .get(
            &format!("/products?category={}&limit=1", cat["id"]),
            &t.service,
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    for bad in [
        "limit=0",
        "limit=201",
        "offset=-1",
        "limit=abc",
        "category=x",
    ] {
        let (status, err) = api.get(&format!("/products?{bad}"), &t.service).await;
        assert_eq!(status, 422, "{bad}: {err}");
    }
    // listings are cached in memory; every change shows at once on this instance
    let listed = |token: String, query: &'static str| {
        let api = &api;
        async move {
            let (_, list) = api.get(&format!("/products{query}"), &token).await;
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["id"] == id)
        }
    };
    assert!(listed(t.service.clone(), "").await);
    let mut hidden = body.clone();
    hidden["hidden"] = json!(true);
    let (status, _) = api
        .put(&format!("/products/{id}"), &t.operator, hidden)
        .await;
    assert_eq!(status, 200);
    assert!(
        !listed(t.service.clone(), "").await,
        "hidden from the listing at once"
    );
    assert!(listed(t.operator.clone(), "?include_hidden=true").await);
    assert_eq!(
        api.get(&format!("/products/{id}"), &t.service).await.0,
        404,
        "hidden from services"
    );
    assert_eq!(
        api.get("/products?include_hidden=true", &t.service).await.0,
        403
    );
    assert_eq!(
        api.get(&format!("/products/{id}"), &t.operator).await.0,
        200
    );
    assert_eq!(
        api.call(
            Method::DELETE,
            &format!("/products/{id}"),
            Some(&t.operator),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        api.get(&format!("/products/{id}"), &t.operator).await.0,
        404
    );
    assert!(!listed(t.operator.clone(), "?include_hidden=true").await);
    assert_eq!(api.get("/products/abc", &t.operator).await.0, 422);
    assert_eq!(api.get("/products/0", &t.operator).await.0, 422);
    // unknown routes, methods and query parameters answer in the same error shape
    let (status, body) = api.get("/nowhere", &t.operator).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/api/v1/nowhere"),
        "{body}"
    );
    let (status, body) = api
        .call(Method::PATCH, "/products", Some(&t.operator), None)
        .await;
    assert_eq!(status, 405);
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    let (status, body) = api.get("/products?categroy=1", &t.operator).await;
    assert_eq!(status, 422, "a misspelt filter is refused, not ignored");
    assert_eq!(body["error"]["code"], "invalid_query", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("categroy"),
        "{body}"
    );
    app.shutdown().await;
}

async fn orders_follow_the_state_machine_and_notify(db: &TestDb) {
    let app = start_app(&db.url, &[]).await;
    let api = Api::new(app.http_addr);
    let t = tokens(db).await;
    let (status, user) = api
        .post(
            "/users",
            &t.service,
            json!({"telegram_id": 4242, "first_name": "Cat", "language": "zh"}),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["language"], "zh");
    // saving again updates the profile; the language stays unless given
    let (status, again) = api
        .post(
            "/users",
            &t.service,
            json!({"telegram_id": 4242, "first_name": "Catherine", "username": "cat_99"}),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], user["id"]);
    assert_eq!(again["first_name"], "Catherine");
    assert_eq!(again["language"], "zh", "kept when not given");
    let (_, english) = api
        .post(
            "/users",
            &t.service,
            json!({"telegram_id": 4242, "first_name": "Catherine", "language": "en"}),
        )
        .await;
    assert_eq!(english["language"], "en");
    let (_, trail) = api
        .get(
            &format!("/audit?entity=user&entity_id={}", user["id"]),
            &t.admin,
        )
        .await;
    let actions: Vec<&str> = trail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["user.updated", "user.updated", "user.created"],
        "{trail}"
    );
    let (status, product) = api
        .post(
            "/products",
            &t.operator,
            product_body("Course", "service", "20"),
        )
        .await;
    assert_eq!(status, 201);

    let (status, order) = api
        .post(
            "/orders",
            &t.service,
            json!({"user_id": user["id"], "product_id": product["id"], "request_text": "Teach me"}),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["payable_amount"], "20.001000");
    assert_eq!(order["status"], "pending_payment");
    let id = order["id"].as_i64().unwrap();
    let (status, err) = api
        .put(
            &format!("/orders/{id}"),
            &t.operator,
            json!({"status": "completed"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("illegal_transition"))
    );
    let (status, _) = api
        .put(
            &format!("/orders/{id}"),
            &t.operator,
            json!({"status": "cancelled"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .put(
            &format!("/orders/{id}"),
            &t.operator,
            json!({"status": "paid"}),
        )
        .await;
    assert_eq!(status, 409);

    let (_, topup) = api
        .post(
            "/orders",
            &t.service,
            json!({"user_id": user["id"], "topup_amount": "15"}),
        )
        .await;
    assert_eq!(topup["kind"], "topup");
    let (status, _) = api
        .post(
            "/orders",
            &t.service,
            json!({"user_id": user["id"], "topup_amount": "15", "product_id": product["id"]}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = api
        .post(
            "/orders",
            &t.service,
            json!({"user_id": 999999, "topup_amount": "15"}),
        )
        .await;
    assert_eq!(status, 422);

    // pay a service order, then move it along as operators do
    let (_, order) = api
        .post(
            "/orders",
            &t.service,
            json!({"user_id": user["id"], "product_id": product["id"]}),
        )
        .await;
    let id = order["id"].as_i64().unwrap();
    let demo = app.app.demo_chain.clone().unwrap();
    demo.pay(
        order["wallet"].as_str().unwrap(),
        Money::parse(order["payable_amount"].as_str().unwrap()).unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    crate::common::wait_status(&db.store, id, telebot::domain::OrderStatus::InProgress).await;
    let (status, done) = api
        .put(
            &format!("/orders/{id}"),
            &t.operator,
            json!({"status": "completed"}),
        )
        .await;
    assert_eq!((status, done["status"].as_str()), (200, Some("completed")));
    let (status, refunded) = api
        .put(
            &format!("/orders/{id}"),
            &t.operator,
            json!({"status": "refunded"}),
        )
        .await;
    assert_eq!(
        (status, refunded["status"].as_str()),
        (200, Some("refunded"))
    );
    let balance = db
        .store
        .user(user["id"].as_i64().unwrap())
        .await
        .unwrap()
        .balance;
    assert_eq!(
        balance.to_string(),
        order["payable_amount"].as_str().unwrap(),
        "the refund went to the balance"
    );
    let notices = db.store.outbox_by_kind("customer", 100).await.unwrap();
    assert!(
        notices
            .iter()
            .any(|n| n.payload.contains("order_status") && n.payload.contains("refunded"))
    );

    let (_, pending) = api.get("/orders?status=pending_payment", &t.operator).await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 1);
    let (status, _) = api.get("/orders?status=lost", &t.operator).await;
    assert_eq!(status, 422);
    let (_, pay) = api.get(&format!("/payments/{id}"), &t.operator).await;
    assert_eq!(pay["state"], "refunded");
    app.shutdown().await;
}

async fn agents_earn_commissions_and_request_payouts(db: &TestDb) {
    let app = start_app(&db.url, &[("TELEBOT__PAYMENTS__COMMISSION_HOLD", "0s")]).await;
    let api = Api::new(app.http_addr);
    let t = tokens(db).await;
    let (status, agent) = api
        .post("/agents", &t.operator, json!({"name": "Lin", "commission_bps": 1500, "payout_address": "TUoHaVjx7n5xz8LwPRDckgFrDWhMhuSuJM"}))
        .await;
    assert_eq!(status, 201, "{agent}");
    let code = agent["code"].as_str().unwrap();
    assert_eq!(
        agent["referral_link"],
        format!("https://t.me/telebot_demo_bot?start=ref_{code}")
    );
    let agent_id = agent["id"].as_i64().unwrap();
    let (_, created) = api
        .post(
            "/tokens",
            &t.admin,
            json!({"name": "lin", "role": "agent", "agent_id": agent_id}),
        )
        .await;
    let lin = created["token"].as_str().unwrap().to_owned();

    let (_, product) = crate::common::shop(&db.store, 9, "100", 3).await;
    let buyer = db.store.user_by_telegram_id(9).await.unwrap().unwrap();
    db.store.bind_referral(buyer.id, agent_id).await.unwrap();
    let order = crate::common::order_for(&app.app, buyer.id, &product, 1).await;
    assert_eq!(order.agent_id, Some(agent_id));
    let demo = app.app.demo_chain.clone().unwrap();
    demo.pay(order.wallet.as_deref().unwrap(), order.payable_amount)
        .await
        .unwrap()
        .unwrap();
    crate::common::wait_status(&db.store, order.id, telebot::domain::OrderStatus::Delivered).await;

    let (_, me) = api.get(&format!("/agents/{agent_id}"), &lin).await;
    assert_eq!(me["stats"]["referred_users"], 1);
    assert_eq!(me["stats"]["paid_orders"], 1);
    assert_eq!(me["stats"]["sales"], "100.000000");
    let available = wait_for("commission available", Duration::from_secs(5), || async {
        let (_, me) = api.get(&format!("/agents/{agent_id}"), &lin).await;
        (me["stats"]["available"] == "15.000000").then_some(me)
    })
    .await;
    assert_eq!(available["stats"]["pending"], "0.000000");
    let (_, orders) = api.get("/orders", &lin).await;
    assert_eq!(
        orders["items"].as_array().unwrap().len(),
        1,
        "the agent sees its referral's order"
    );
    // ... but never what was delivered to the customer, in the list or alone
    assert!(orders["items"][0]["delivery"].is_null(), "{orders}");
    let (status, one) = api.get(&format!("/orders/{}", order.id), &lin).await;
    assert_eq!(status, 200);
    assert!(one["delivery"].is_null(), "{one}");
    assert_eq!(one["status"], "delivered");
    let (_, seen_by_operator) = api.get(&format!("/orders/{}", order.id), &t.operator).await;
    assert!(
        seen_by_operator["delivery"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{seen_by_operator}"
    );
    let (_, users) = api.get("/users", &lin).await;
    assert_eq!(users["items"].as_array().unwrap().len(), 1);
    // by Telegram id: the one customer, or nobody
    let tg = users["items"][0]["telegram_id"].as_i64().unwrap();
    let (_, found) = api
        .get(&format!("/users?telegram_id={tg}"), &t.operator)
        .await;
    assert_eq!(
        found["items"][0]["telegram_id"].as_i64(),
        Some(tg),
        "{found}"
    );
    let (_, none) = api.get("/users?telegram_id=1", &t.operator).await;
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0), "{none}");

    // a token's last use is recorded, to the minute: a second call soon after writes nothing
    let last_used = || async {
        let (_, tokens) = api.get("/tokens", &t.admin).await;
        tokens
            .as_array()
            .or_else(|| tokens["items"].as_array())
            .unwrap()
            .iter()
            .find(|k| k["name"] == "lin")
            .unwrap()["last_used_at"]
            .as_i64()
    };
    let first_use = wait_for("last use recorded", Duration::from_secs(5), last_used).await;
    api.get("/orders", &lin).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(last_used().await, Some(first_use));

    let (status, err) = api
        .post(
            &format!("/agents/{agent_id}/payouts"),
            &lin,
            json!({"address": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("address"))
    );
    let (status, payout) = api
        .post(&format!("/agents/{agent_id}/payouts"), &lin, json!({}))
        .await;
    assert_eq!(status, 201, "{payout}");
    assert_eq!(payout["amount"], "15.000000");
    assert_eq!(payout["address"], "TUoHaVjx7n5xz8LwPRDckgFrDWhMhuSuJM");
    assert_eq!(
        api.post(&format!("/agents/{agent_id}/payouts"), &lin, json!({}))
            .await
            .0,
        409,
        "nothing left to request"
    );
    let pid = payout["id"].as_i64().unwrap();
    assert_eq!(
        api.put(&format!("/payouts/{pid}"), &lin, json!({"status": "paid"}))
            .await
            .0,
        403,
        "agents do not approve themselves"
    );
    let (status, paid) = api
        .put(
            &format!("/payouts/{pid}"),
            &t.operator,
            json!({"status": "paid"}),
        )
        .await;
    assert_eq!((status, paid["status"].as_str()), (200, Some("paid")));
    assert_eq!(
        api.put(
            &format!("/payouts/{pid}"),
            &t.operator,
            json!({"status": "rejected"})
        )
        .await
        .0,
        409
    );
    let (_, commissions) = api
        .get(&format!("/agents/{agent_id}/commissions"), &lin)
        .await;
    assert_eq!(commissions["items"][0]["status"], "paid");

    // narrowing permissions and suspending take effect at once
    let set_agent = |body: Value| {
        let api = &api;
        let operator = t.operator.clone();
        async move {
            api.put(&format!("/agents/{agent_id}"), &operator, body)
                .await
                .0
        }
    };
    assert_eq!(
        set_agent(json!({"permissions": ["view_referrals"]})).await,
        200
    );
    assert_eq!(api.get("/orders", &lin).await.0, 403);
    assert_eq!(set_agent(json!({"permissions": ["fly"]})).await, 422);
    assert_eq!(set_agent(json!({"status": "suspended"})).await, 200);
    // a suspended agent's token stops working everywhere, not only where permissions apply
    for path in [
        "/users".to_owned(),
        "/orders".to_owned(),
        format!("/orders/{}", order.id),
        format!("/agents/{agent_id}"),
        format!("/agents/{agent_id}/commissions"),
        "/agents".to_owned(),
        "/products".to_owned(),
    ] {
        let (status, err) = api.get(&path, &lin).await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (403, Some("agent_inactive")),
            "{path}: {err}"
        );
    }
    assert_eq!(
        api.post(&format!("/agents/{agent_id}/payouts"), &lin, json!({}))
            .await
            .0,
        403
    );
    assert_eq!(
        set_agent(json!({"status": "active", "permissions": ["view_referrals", "view_orders"]}))
            .await,
        200
    );
    assert_eq!(api.get(&format!("/agents/{agent_id}"), &lin).await.0, 200);
    assert_eq!(set_agent(json!({"status": "suspended"})).await, 200);
    assert_eq!(set_agent(json!({"status": "pending"})).await, 409);
    assert_eq!(
        set_agent(json!({"status": "flying"})).await,
        422,
        "not a status at all"
    );
    let (_, active) = api.get("/agents?status=active", &t.operator).await;
    assert!(
        active["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "active")
    );
    app.shutdown().await;
}

async fn operators_assign_unmatched_transfers(db: &TestDb) {
    let app = start_app(&db.url, &[]).await;
    let api = Api::new(app.http_addr);
    let t = tokens(db).await;
    let (_, product) = crate::common::shop(&db.store, 11, "8", 2).await;
    let buyer = db.store.user_by_telegram_id(11).await.unwrap().unwrap();
    let order = crate::common::order_for(&app.app, buyer.id, &product, 1).await;
    let demo = app.app.demo_chain.clone().unwrap();
    // the customer sends a rounded amount: it matches nothing
    demo.pay(order.wallet.as_deref().unwrap(), Money::parse("8").unwrap())
        .await
        .unwrap()
        .unwrap();
    let transfer = wait_for("unmatched transfer", Duration::from_secs(10), || async {
        let (_, list) = api
            .get("/payments/transfers?outcome=unmatched", &t.operator)
            .await;
        list["items"].as_array().and_then(|a| a.first().cloned())
    })
    .await;
    let tid = transfer["id"].as_i64().unwrap();
    let (status, paid) = api
        .post(
            &format!("/payments/transfers/{tid}/assign"),
            &t.operator,
            json!({"order_id": order.id}),
        )
        .await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["status"], "delivered");
    let (status, _) = api
        .post(
            &format!("/payments/transfers/{tid}/assign"),
            &t.operator,
            json!({"order_id": order.id}),
        )
        .await;
    assert_eq!(status, 409, "a transfer is assigned once");
    let (status, _) = api
        .post(
            "/payments/transfers/999999/assign",
            &t.operator,
            json!({"order_id": order.id}),
        )
        .await;
    assert_eq!(status, 404);
    let (_, assigned) = api
        .get("/payments/transfers?outcome=assigned", &t.operator)
        .await;
    assert_eq!(assigned["items"][0]["order_id"], order.id);
    app.shutdown().await;
}

async fn malformed_input_never_causes_a_server_error(db: &TestDb) {
    let app = start_app(&db.url, &[]).await;
    let api = Api::new(app.http_addr);
    let t = tokens(db).await;
    let posts = [
        "/users",
        "/categories",
        "/products",
        "/orders",
        "/agents",
        "/tokens",
        "/admin/broadcasts",
        "/products/1/stock",
        "/agents/1/payouts",
        "/payments/transfers/1/assign",
    ];
    let puts = ["/products/1", "/orders/1", "/agents/1", "/payouts/1"];
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    // not a JSON object at all: 400, whatever the endpoint
    let broken = [
        "null".to_owned(),
        "[]".to_owned(),
        "\"text\"".to_owned(),
        "\u{feff}{}".to_owned(),
        deep,
        "{\"a\":".to_owned(),
    ];
    // objects with odd or hostile fields: refused or accepted, never a server error
    let odd = [
        "{}".to_owned(),
        "{\"telegram_id\": 1e400}".to_owned(),
        "{\"price\": \"9223372036854775808\"}".to_owned(),
        "{\"user_id\": -1, \"topup_amount\": \"0\"}".to_owned(),
        "{\"name\": \"\\u0000\", \"commission_bps\": 4294967296}".to_owned(),
        "{\"items\": [null]}".to_owned(),
        "{\"status\": \"\\ud800\"}".to_owned(),
    ];
    for (method, paths) in [(Method::POST, &posts[..]), (Method::PUT, &puts[..])] {
        for path in paths {
            for (body, expect_400) in broken
                .iter()
                .map(|b| (b, true))
                .chain(odd.iter().map(|b| (b, false)))
            {
                let r = api
                    .client
                    .request(method.clone(), format!("{}{path}", api.base))
                    .bearer_auth(&t.admin)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                if expect_400 {
                    assert_eq!(status, 400, "{method} {path} with {:.40}", body);
                } else {
                    assert!(status < 500, "{method} {path} with {:.40}: {status}", body);
                }
            }
        }
    }
    for path in [
        "/orders/99999999999999999999",
        "/users/-5",
        "/agents/1e3",
        "/payments/%00",
        "/products/%F0%9F%98%80",
    ] {
        let (status, _) = api.get(path, &t.admin).await;
        assert!((400..500).contains(&status), "{path}: {status}");
    }
    // a malformed parameter is named, in words: never Rust's parse text
    for (path, field, words) in [
        ("/audit?since=yesterday", "since", "must be a whole number"),
        ("/orders?user_id=12ab", "user_id", "must be a whole number"),
        (
            "/orders?limit=99999999999999999999",
            "limit",
            "out of range",
        ),
        (
            "/products?include_hidden=perhaps",
            "include_hidden",
            "true or false",
        ),
    ] {
        let (status, err) = api.get(path, &t.admin).await;
        assert_eq!(status, 422, "{path}: {err}");
        assert_eq!(err["error"]["field"].as_str(), Some(field), "{path}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{path}: {message}");
        assert!(!message.contains("invalid digit"), "{path}: {message}");
    }
    app.shutdown().await;
}

async fn the_audit_trail_records_who_did_what(db: &TestDb) {
    let app = start_app(&db.url, &[]).await;
    let api = Api::new(app.http_addr);
    let t = tokens(db).await;
    let (_, p) = api
        .post(
            "/products",
            &t.operator,
            product_body("Map", "service", "3"),
        )
        .await;
    let id = p["id"].as_i64().unwrap();
    api.put(
        &format!("/products/{id}"),
        &t.operator,
        product_body("Map 2", "service", "4"),
    )
    .await;
    let (_, entries) = api
        .get(&format!("/audit?entity=product&entity_id={id}"), &t.admin)
        .await;
    let items = entries["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{entries}");
    let update = &items[0];
    assert_eq!(update["action"], "product.updated");
    let operator_token_id = db
        .store
        .list_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.role == Role::Operator)
        .unwrap()
        .id;
    assert_eq!(update["actor"], format!("token:{operator_token_id}"));
    let before: Value = serde_json::from_str(update["before"].as_str().unwrap()).unwrap();
    let after: Value = serde_json::from_str(update["after"].as_str().unwrap()).unwrap();
    assert_eq!(
        (before["price"].as_str(), after["price"].as_str()),
        (Some("3.000000"), Some("4.000000"))
    );
    let (_, by_actor) = api
        .get(
            &format!("/audit?actor=token:{operator_token_id}&action=product.created"),
            &t.operator,
        )
        .await;
    assert_eq!(by_actor["items"].as_array().unwrap().len(), 1);
    assert!(
        db.store
            .try_tamper_audit(update["id"].as_i64().unwrap())
            .await
            .is_err(),
        "append-only"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_served_routes() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    let doc: Value = reqwest::get(format!("http://{}/api/v1/openapi.json", app.http_addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{} paths", paths.len());
    let client = reqwest::Client::new();
    let mut operations = 0;
    for (path, item) in paths {
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let concrete = path
                .replace("{id}", "1")
                .replace("{order_id}", "1")
                .replace("{name}", "payments");
            let url = format!("http://{}/api/v1{concrete}", app.http_addr);
            let status = client
                .request(method.to_uppercase().parse().unwrap(), &url)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            assert_eq!(
                status, 401,
                "{method} {path} is documented and served (asks for a token)"
            );
        }
    }
    assert!(operations >= 29, "{operations} operations");
    // and an undocumented route is not served
    let status = client
        .get(format!("http://{}/api/v1/secret", app.http_addr))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    app.shutdown().await;
    db.finish().await;
}

async fn a_refund_takes_the_commission_back_and_top_ups_are_not_refunded(db: &TestDb) {
    let app = start_app(&db.url, &[("TELEBOT__PAYMENTS__COMMISSION_HOLD", "0s")]).await;
    let api = Api::new(app.http_addr);
    let t = tokens(db).await;
    let (_, product) = crate::common::shop(&db.store, 31, "50", 2).await;
    let buyer = db.store.user_by_telegram_id(31).await.unwrap().unwrap();
    db.store.bind_referral(buyer.id, t.agent_id).await.unwrap();
    let order = crate::common::order_for(&app.app, buyer.id, &product, 1).await;
    let demo = app.app.demo_chain.clone().unwrap();
    demo.pay(order.wallet.as_deref().unwrap(), order.payable_amount)
        .await
        .unwrap()
        .unwrap();
    crate::common::wait_status(&db.store, order.id, telebot::domain::OrderStatus::Delivered).await;
    let (status, payout) = api
        .post(
            &format!("/agents/{}/payouts", t.agent_id),
            &t.operator,
            json!({"address": "TUoHaVjx7n5xz8LwPRDckgFrDWhMhuSuJM"}),
        )
        .await;
    assert_eq!(status, 201, "{payout}");
    assert_eq!(payout["amount"], "5.000000");
    let (status, _) = api
        .put(
            &format!("/orders/{}", order.id),
            &t.operator,
            json!({"status": "refunded"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, payouts) = api
        .get(&format!("/agents/{}/payouts", t.agent_id), &t.operator)
        .await;
    assert_eq!(
        payouts["items"][0]["status"], "rejected",
        "the payout lost its only commission"
    );
    let (_, commissions) = api
        .get(&format!("/agents/{}/commissions", t.agent_id), &t.operator)
        .await;
    assert!(commissions["items"].as_array().unwrap().is_empty());

    // a top-up is completed by crediting the balance: refunding it would credit it twice
    let (_, topup) = api
        .post(
            "/orders",
            &t.service,
            json!({"user_id": buyer.id, "topup_amount": "3"}),
        )
        .await;
    let tid = topup["id"].as_i64().unwrap();
    demo.pay(
        topup["wallet"].as_str().unwrap(),
        Money::parse(topup["payable_amount"].as_str().unwrap()).unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    crate::common::wait_status(&db.store, tid, telebot::domain::OrderStatus::Completed).await;
    let (status, err) = api
        .put(
            &format!("/orders/{tid}"),
            &t.operator,
            json!({"status": "refunded"}),
        )
        .await;
    assert_eq!(status, 409, "{err}");
    let (status, _) = api
        .post(
            "/orders",
            &t.service,
            json!({"user_id": buyer.id, "product_id": product.id, "quantity": 0}),
        )
        .await;
    assert_eq!(status, 422);
    // the same order rules as the bot's (src/domain/order.rs), each refusal naming its field
    let service = crate::common::product(
        &db.store,
        telebot::domain::ProductKind::Service,
        "Design",
        "",
        "9",
    )
    .await;
    for (body, field) in [
        (
            json!({"user_id": buyer.id, "product_id": service.id, "quantity": 7}),
            "quantity",
        ),
        (
            json!({"user_id": buyer.id, "product_id": product.id, "quantity": 101}),
            "quantity",
        ),
        (
            json!({"user_id": buyer.id, "topup_amount": "0.5"}),
            "topup_amount",
        ),
        (
            json!({"user_id": buyer.id, "topup_amount": "10000.000001"}),
            "topup_amount",
        ),
    ] {
        let (status, err) = api.post("/orders", &t.service, body.clone()).await;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}: {err}"
        );
    }
    // a broadcast Telegram could not parse is refused up front, naming the fault
    let (status, refused) = api
        .post(
            "/admin/broadcasts",
            &t.operator,
            json!({"text": "Tom & Jerry <b>sale"}),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["field"], "text");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("&amp;"),
        "{refused}"
    );
    // broadcasts can be cancelled while running, not after
    let (_, b) = api
        .post("/admin/broadcasts", &t.operator, json!({"text": "hello"}))
        .await;
    let bid = b["id"].as_i64().unwrap();
    let (status, cancelled) = api
        .post(
            &format!("/admin/broadcasts/{bid}/cancel"),
            &t.operator,
            json!({}),
        )
        .await;
    assert!(
        status == 200 && cancelled["status"] == "cancelled" || status == 409,
        "{status} {cancelled}"
    );
    if status == 200 {
        let (_, trail) = api
            .get(
                &format!("/audit?entity=broadcast&entity_id={bid}&action=broadcast.cancelled"),
                &t.admin,
            )
            .await;
        assert_eq!(trail["items"].as_array().unwrap().len(), 1, "{trail}");
    }
    assert_eq!(
        api.post(
            &format!("/admin/broadcasts/{bid}/cancel"),
            &t.operator,
            json!({})
        )
        .await
        .0,
        409
    );
    app.shutdown().await;
}
