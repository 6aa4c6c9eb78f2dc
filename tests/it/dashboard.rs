//! The operator dashboard: sessions, CSRF and cookies over HTTP, and the whole demo in headless
//! Chromium (log in, create a product, buy it in the Telegram simulator, simulate the payment,
//! see it paid and delivered, restart the payments subsystem), with screenshots of every panel
//! under target/screenshots/.

use crate::common::webdriver::Browser;
use crate::common::{TestDb, start_app, token};
use serde_json::{Value, json};
use telebot::domain::Role;

const PASSWORD: &str = "correct horse battery";

async fn account(db: &TestDb, name: &str, role: Role) {
    telebot::accounts::set_account(&db.store, name, PASSWORD, Some(role), "test")
        .await
        .unwrap();
}

/// The newest 500 entries of the audit log.
async fn audit_entries(db: &TestDb) -> Vec<telebot::store::AuditEntry> {
    db.store
        .list_audit(
            &telebot::store::AuditFilter::default(),
            telebot::store::Page {
                limit: 500,
                offset: 0,
            },
        )
        .await
        .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn login(base: &str, name: &str) -> (String, String) {
    let r = client()
        .post(format!("{base}/admin/api/login"))
        .json(&json!({"username": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let me: Value = r.json().await.unwrap();
    let session = cookie.split(';').next().unwrap().to_owned();
    (session, me["csrf"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn sessions_are_httponly_strict_and_every_change_needs_the_csrf_token() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    account(&db, "boss", Role::Admin).await;
    account(&db, "clerk", Role::Operator).await;
    let base = format!("http://{}", app.http_addr);

    let r = client()
        .post(format!("{base}/admin/api/login"))
        .json(&json!({"username": "boss", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Max-Age=28800", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing from {cookie}");
    }
    let (session, csrf) = login(&base, "boss").await;
    let c = client();
    let me: Value = c
        .get(format!("{base}/admin/api/me"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["role"].as_str(), me["demo"].as_bool()),
        (Some("admin"), Some(true))
    );

    let create = |csrf: Option<&str>| {
        let mut r = c
            .post(format!("{base}/api/v1/products"))
            .header("cookie", &session)
            .json(&json!({"kind": "service", "name_en": "Audit", "name_zh": "审计", "price": "5"}));
        if let Some(t) = csrf {
            r = r.header("x-csrf-token", t);
        }
        r.send()
    };
    assert_eq!(create(None).await.unwrap().status(), 403, "no CSRF token");
    assert_eq!(
        create(Some("0000")).await.unwrap().status(),
        403,
        "wrong CSRF token"
    );
    assert_eq!(create(Some(&csrf)).await.unwrap().status(), 201);
    let audit: Value = c
        .get(format!("{base}/api/v1/audit?action=product.created"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        audit["items"][0]["actor"], "dashboard:boss",
        "the audit log names the person"
    );

    // an operator's session cannot do what only admins may
    let (clerk, clerk_csrf) = login(&base, "clerk").await;
    let tokens = c
        .get(format!("{base}/api/v1/tokens"))
        .header("cookie", &clerk)
        .send()
        .await
        .unwrap();
    assert_eq!(tokens.status(), 403);
    let restart = c
        .post(format!("{base}/api/v1/admin/subsystems/payments/restart"))
        .header("cookie", &clerk)
        .header("x-csrf-token", &clerk_csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(restart.status(), 403);

    // logging out ends the session
    let out = c
        .post(format!("{base}/admin/api/logout"))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let after = c
        .get(format!("{base}/admin/api/me"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);

    // an API token logs in too, with its own role
    let t = token(&db.store, Role::Service, None).await;
    let r = c
        .post(format!("{base}/admin/api/login"))
        .json(&json!({"token": t}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["role"], "service");

    // revoking a token ends the dashboard sessions opened with it
    let token_id = db
        .store
        .token_by_hash(&telebot::http::auth::hash_token(&t))
        .await
        .unwrap()
        .unwrap()
        .id;
    let token_cookie = r_cookie(&base, &t).await;
    assert_eq!(
        c.get(format!("{base}/admin/api/me"))
            .header("cookie", &token_cookie)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    db.store.revoke_token(token_id, "test").await.unwrap();
    db.store
        .end_sessions_of(&format!("token:{token_id}"))
        .await
        .unwrap();
    assert_eq!(
        c.get(format!("{base}/admin/api/me"))
            .header("cookie", &token_cookie)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // a new password ends the sessions opened with the old one
    let (clerk_again, _) = login(&base, "clerk").await;
    account(&db, "clerk", Role::Operator).await;
    assert_eq!(
        c.get(format!("{base}/admin/api/me"))
            .header("cookie", &clerk_again)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // the page carries a strict policy
    let page = c.get(format!("{base}/admin")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(
        !page.text().await.unwrap().contains("<script>"),
        "no inline script"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_name() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    account(&db, "boss", Role::Admin).await;
    let base = format!("http://{}", app.http_addr);
    let c = client();
    for _ in 0..10 {
        let r = c
            .post(format!("{base}/admin/api/login"))
            .json(&json!({"username": "boss", "password": "guess"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = c
        .post(format!("{base}/admin/api/login"))
        .json(&json!({"username": "boss", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "locked even with the right password");
    let r = c
        .post(format!("{base}/admin/api/login"))
        .json(&json!({"username": "boss"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    app.shutdown().await;
}

/// 60 parallel guesses get at most 10 password checks; one address is throttled across names
/// while another is not; what was typed as a username is never kept when it is not an account.
#[tokio::test]
async fn a_login_flood_is_counted_before_checking_and_keeps_no_secret() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    account(&db, "boss", Role::Admin).await;
    let base = format!("http://{}", app.http_addr);
    let login = |c: reqwest::Client, body: Value| {
        let url = format!("{base}/admin/api/login");
        async move {
            let r = c.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").cloned();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, retry, body)
        }
    };
    let c = client();
    let guesses = futures_util::future::join_all((0..60).map(|i| {
        login(
            c.clone(),
            json!({"username": "boss", "password": format!("guess{i}")}),
        )
    }))
    .await;
    let checked = guesses.iter().filter(|(s, _, _)| *s == 401).count();
    assert!(
        checked <= 10,
        "{checked} of 60 parallel guesses were checked"
    );
    for (status, retry, body) in &guesses {
        assert!(*status == 401 || *status == 429, "{status} {body}");
        if *status == 429 {
            assert!(retry.is_some(), "429 says when to retry: {body}");
            assert!(["locked", "busy"].contains(&body["error"]["code"].as_str().unwrap()));
        }
    }
    let failed_for_boss = audit_entries(&db)
        .await
        .iter()
        .filter(|e| e.action == "login.failed" && e.entity_id == "boss")
        .count();
    assert!(failed_for_boss <= 10, "{failed_for_boss} checks audited");

    // a password typed into the username field is not kept
    let (status, _, _) = login(
        c.clone(),
        json!({"username": "Tr0ub4dor&3-secret", "password": "x"}),
    )
    .await;
    assert_eq!(status, 401);
    let all = audit_entries(&db).await;
    assert!(all.iter().all(|e| !e.entity_id.contains("Tr0ub4dor")));
    assert!(all.iter().any(|e| e.entity_id.starts_with("unknown#")));
    // an over-long name is refused before anything is stored
    let before = all.len();
    let (status, _, body) = login(
        c.clone(),
        json!({"username": "x".repeat(30_000), "password": "x"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("username"))
    );
    let after = audit_entries(&db).await.len();
    assert_eq!(after, before);

    // the same address is throttled across names (50 per 15 minutes) ...
    let mut locked = false;
    for i in 0..60 {
        let (status, _, body) = login(
            c.clone(),
            json!({"username": format!("nobody{i}"), "password": "x"}),
        )
        .await;
        if status == 429 && body["error"]["code"] == "locked" {
            locked = true;
            break;
        }
    }
    assert!(locked, "one address cannot try names without end");
    // ... while another address still logs in
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let (status, _, body) = login(
        elsewhere,
        json!({"username": "nobody-else", "password": "x"}),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    app.shutdown().await;
}

/// Behind a proxy the client address comes from the configured header (its last entry, the one
/// the proxy wrote), so one client is throttled without locking out everyone behind the proxy.
#[tokio::test]
async fn behind_a_proxy_logins_are_throttled_by_the_forwarded_address() {
    let db = TestDb::sqlite().await;
    let app = start_app(
        &db.url,
        &[(
            "TELEBOT__SECURITY__CLIENT_ADDRESS_HEADER",
            "x-forwarded-for",
        )],
    )
    .await;
    let base = format!("http://{}", app.http_addr);
    let c = client();
    let attempt = |forwarded: &'static str, i: usize| {
        let c = c.clone();
        let url = format!("{base}/admin/api/login");
        async move {
            c.post(url)
                .header("x-forwarded-for", forwarded)
                .json(&json!({"username": format!("name{i}"), "password": "x"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for i in 0..50 {
        assert_eq!(attempt("10.0.0.1", i).await, 401);
    }
    assert_eq!(attempt("10.0.0.1", 99).await, 429);
    assert_eq!(
        attempt("10.0.0.7, 10.0.0.1", 98).await,
        429,
        "a client cannot pick its address by prepending one"
    );
    assert_eq!(
        attempt("10.0.0.2", 97).await,
        401,
        "another client still logs in"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_demo_end_to_end_in_a_real_browser() {
    if !crate::common::webdriver::available() {
        return;
    }
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    telebot::demo::seed_catalog(&db.store).await.unwrap();
    account(&db, "admin", Role::Admin).await;
    let base = format!("http://{}", app.http_addr);
    let b = Browser::start().await;

    // a fresh load, logged out: no request fails (no 401 from asking who is logged in, no 404)
    b.goto(&format!("{base}/admin")).await;
    b.wait_until("the login form", "!document.querySelector('#login').hidden")
        .await;
    assert_eq!(
        b.eval("return performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation')).filter(e => e.responseStatus >= 400).map(e => e.name + ' ' + e.responseStatus);").await,
        json!([]),
        "failed requests on a fresh load"
    );

    // log in
    b.type_into("#login-username", "admin").await;
    b.type_into("#login-password", PASSWORD).await;
    let timed = std::time::Instant::now();
    b.click("#login-submit").await;
    b.wait_until("the overview", "document.querySelector('#panel-title') && document.querySelector('#panel-title').textContent === 'Overview' && document.querySelector('.cards')").await;
    b.wait_until(
        "the demo banner",
        "!document.querySelector('#demo-banner').hidden",
    )
    .await;
    let mut timings = vec![("log in to the overview", timed.elapsed())];
    // no sales yet: the charts say so instead of drawing empty frames
    b.wait_until(
        "empty charts",
        "document.querySelectorAll('#charts .empty').length === 4",
    )
    .await;
    b.screenshot("overview").await;

    // create a product whose name tries to inject markup
    let hostile = "Key <img src=x onerror=alert(1)>";
    b.click("button[data-panel=products]").await;
    b.click("#p-new").await;
    b.type_into("#p-name-en", hostile).await;
    b.type_into("#p-name-zh", "钥匙").await;
    b.type_into("#p-price", "7").await;
    let timed = std::time::Instant::now();
    b.click("#p-save").await;
    b.wait_until(
        "the new product in the table",
        &format!(
            "[...document.querySelectorAll('#panel td')].some(td => td.textContent === {})",
            json!(hostile)
        ),
    )
    .await;
    timings.push(("save a product until it is listed", timed.elapsed()));
    assert_eq!(
        b.eval("return document.querySelectorAll('#panel img').length;")
            .await,
        json!(0),
        "the name stays text"
    );
    // prices read naturally, the top-up is not a zero price, and stock is counted
    b.wait_until("prices and stock", "(() => { const t = document.querySelector('#panel table').textContent; return t.includes('7 USDT') && t.includes('any amount') && !t.includes('0.000000') && t.includes('In stock'); })()").await;
    // an invalid price is refused next to its field, in plain words
    b.click("#p-new").await;
    b.type_into("#p-name-en", "Broken").await;
    b.type_into("#p-price", "seven").await;
    b.click("#p-save").await;
    b.wait_until("the price error next to the field", "(() => { const e = document.querySelector('[data-field=price] .field-error'); return e && !/line \\d+ column/.test(e.textContent); })()").await;
    b.eval("[...document.querySelectorAll('#panel tr')].find(tr => tr.textContent.includes('Key <img')).querySelectorAll('button')[2].click(); return 1;").await;
    b.type_into("#stock-items", "KEY-AAA\nKEY-BBB").await;
    b.click("#stock-save").await;
    b.wait_until(
        "the stock upload",
        "![...document.querySelectorAll('#stock-form textarea')].length",
    )
    .await;
    b.screenshot("products").await;

    // buy it as a customer in the Telegram simulator
    b.click("button[data-panel=simulator]").await;
    // sending before a chat is chosen says why instead of doing nothing
    b.type_into("#sim-text", "hello").await;
    b.click("#sim-send").await;
    b.wait_until("the no-chat notice", "(() => { const e = document.querySelector('[data-field=sim-text] .field-error'); return e && e.textContent.includes('Pick a customer'); })()").await;
    b.type_into("#sim-name", "Dana").await;
    let timed = std::time::Instant::now();
    b.click("#sim-add").await;
    b.wait_until("the welcome message", "[...document.querySelectorAll('#sim-chat .bubble')].some(x => x.textContent.includes('Welcome'))").await;
    timings.push(("start a chat until the bot's welcome", timed.elapsed()));
    // the chat names the bot, bubbles carry times, and the command menu is the bot's own
    b.wait_until(
        "the bot's name",
        "document.querySelector('#sim-title').textContent.includes('@')",
    )
    .await;
    b.wait_until("bubble times", "[...document.querySelectorAll('#sim-chat .bubble .meta')].some(x => /\\d/.test(x.textContent))").await;
    b.click("#sim-commands").await;
    b.wait_until(
        "the command menu",
        "document.querySelector('#sim-menu button[data-command=help]')",
    )
    .await;
    b.click("#sim-commands").await;
    b.eval("document.querySelector('#sim-chat button[data-callback=\"c:0\"]').click(); return 1;")
        .await;
    b.wait_until("the catalog", "[...document.querySelectorAll('#sim-chat button')].some(x => x.textContent.startsWith('Key <img'))").await;
    b.eval("[...document.querySelectorAll('#sim-chat button')].find(x => x.textContent.startsWith('Key <img')).click(); return 1;").await;
    b.wait_until(
        "the product",
        "document.querySelector('#sim-chat button[data-callback^=\"b:\"]')",
    )
    .await;
    b.eval("document.querySelector('#sim-chat button[data-callback^=\"b:\"]').click(); return 1;")
        .await;
    b.wait_until(
        "the quantity buttons",
        "document.querySelector('#sim-chat button[data-callback^=\"q:\"]')",
    )
    .await;
    b.eval("document.querySelector('#sim-chat button[data-callback^=\"q:\"]').click(); return 1;")
        .await;
    b.wait_until("the payment instructions with a QR code", "document.querySelector('#sim-chat .simulate-payment') && document.querySelector('#sim-chat img')").await;
    // "Check payment" before paying: the bot's answer shows over the chat, as in Telegram
    let timed = std::time::Instant::now();
    b.eval("[...document.querySelectorAll('#sim-chat button[data-callback^=\"ck:\"]')].pop().click(); return 1;").await;
    b.wait_until("the button's answer", "(() => { const n = document.querySelector('#sim-notice'); const a = document.querySelector('#sim-alert'); return (n && n.textContent.length > 0) || a; })()").await;
    timings.push((
        "press a button until the bot's answer shows",
        timed.elapsed(),
    ));
    b.eval("const ok = document.querySelector('#sim-alert-ok'); if (ok) ok.click(); return 1;")
        .await;
    assert_eq!(b.eval("return document.querySelectorAll('#sim-chat img[src^=\"/sim/api/files/\"]').length > 0;").await, json!(true));
    b.screenshot("simulator-instructions").await;
    let timed = std::time::Instant::now();
    b.click("#sim-chat .simulate-payment").await;
    b.wait_until("the delivery in the chat", "[...document.querySelectorAll('#sim-chat .bubble')].some(x => x.textContent.includes('KEY-AAA'))").await;
    timings.push(("simulate a payment until the delivery", timed.elapsed()));
    b.screenshot("simulator").await;

    // the order is paid in Orders
    b.click("button[data-panel=orders]").await;
    b.wait_until("the delivered order", "[...document.querySelectorAll('#orders-list .badge')].some(x => x.textContent === 'delivered')").await;
    // the list names the customer and the product with its quantity
    b.wait_until("customer and product", "(() => { const t = document.querySelector('#orders-list tbody tr').textContent; return t.includes('Dana') && t.includes('× 1') && t.includes('tg '); })()").await;
    let timed = std::time::Instant::now();
    b.eval("document.querySelector('#orders-list tbody tr').click(); return 1;")
        .await;
    b.wait_until("the order timeline", "(() => { const li = document.querySelector('#order-timeline li[data-action=\"order.paid\"]'); return li && li.textContent.includes('order paid by'); })()").await;
    timings.push(("open an order until its timeline", timed.elapsed()));
    // the timeline is sentences, not JSON, and the page does not grow sideways
    assert_eq!(
        b.eval("return document.querySelector('#order-timeline').textContent.includes('{\"');")
            .await,
        json!(false)
    );
    assert_eq!(
        b.eval("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
            .await,
        json!(true)
    );
    // the order has its own address: a reload shows it again
    let url = b.eval("return location.href;").await;
    assert!(url.as_str().unwrap().contains("#/orders/"), "{url}");
    b.goto(url.as_str().unwrap()).await;
    b.wait_until(
        "the order after a reload",
        "document.querySelector('#order-timeline li[data-action=\"order.paid\"]')",
    )
    .await;
    // an impossible filter says so in words
    b.type_into("#o-user", "12ab").await;
    b.click("#o-filter").await;
    b.wait_until("the filter error", "(() => { const e = document.querySelector('[data-field=customer] .field-error'); return e && e.textContent.includes('Telegram id') && !e.textContent.includes('invalid digit'); })()").await;
    b.screenshot("orders").await;
    // another panel, then back: the order again
    b.click("button[data-panel=payments]").await;
    b.wait_until("the payments panel", "document.querySelector('#scanners')")
        .await;
    b.eval("history.back(); return 1;").await;
    b.wait_until(
        "back at the order",
        "document.querySelector('#order-timeline li[data-action=\"order.paid\"]')",
    )
    .await;

    for (panel, ready) in [
        // a sale today: revenue and orders are drawn, with the library's axes and legend
        (
            "overview",
            "document.querySelectorAll('#charts .uplot').length >= 2",
        ),
        ("payments", "document.querySelector('#scanners table')"),
        (
            "agents",
            "document.querySelector('#panel table, #panel .empty')",
        ),
        ("security", "document.querySelector('#audit table')"),
        (
            "bot",
            "document.querySelector('#broadcasts table, #broadcasts .empty')",
        ),
    ] {
        b.click(&format!("button[data-panel={panel}]")).await;
        b.wait_until(panel, ready).await;
        b.screenshot(panel).await;
    }

    // an operator assigns a transfer that matched nothing to a pending order
    let (customer, item) = crate::common::shop(&db.store, 777, "3", 1).await;
    let pending = crate::common::order_for(&app.app, customer.id, &item, 1).await;
    let wallet = pending.wallet.clone().unwrap();
    app.app
        .demo_chain
        .as_ref()
        .unwrap()
        .pay(&wallet, "2.5".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    b.click("button[data-panel=payments]").await;
    b.wait_until("the unmatched transfer", "[...document.querySelectorAll('#panel tbody tr')].some(tr => tr.textContent.includes('2.5 USDT') && tr.textContent.includes('unmatched'))").await;
    let row = "[...document.querySelectorAll('#panel tbody tr')].find(tr => tr.textContent.includes('2.5 USDT') && tr.textContent.includes('unmatched'))";
    b.eval(&format!("const r = {row}; r.querySelector('input').value = '{}'; r.querySelector('button').click(); return 1;", pending.id)).await;
    b.wait_until("the transfer assigned", "[...document.querySelectorAll('#panel tbody tr')].some(tr => tr.textContent.includes('2.5 USDT') && tr.textContent.includes('assigned'))").await;
    crate::common::wait_status(
        &db.store,
        pending.id,
        telebot::domain::OrderStatus::Delivered,
    )
    .await;

    // a token: shown once with a copy button, listed at once, revoked after a confirmation
    b.click("button[data-panel=security]").await;
    b.type_into("#tk-name", "ci-bot").await;
    b.click("#tk-create").await;
    b.wait_until("the new token", "(() => { const s = document.querySelector('#new-token .secret'); return s && s.textContent.startsWith('tb_') && document.querySelector('#new-token button.copy') && [...document.querySelectorAll('#tokens tr')].some(tr => tr.textContent.includes('ci-bot') && tr.textContent.includes('live')); })()").await;
    b.eval("[...document.querySelectorAll('#tokens tr')].find(tr => tr.textContent.includes('ci-bot')).querySelector('button.danger').click(); return 1;").await;
    b.wait_until(
        "the revoke question",
        "document.querySelector('#confirm-yes')",
    )
    .await;
    b.click("#confirm-yes").await;
    b.wait_until("the token revoked", "[...document.querySelectorAll('#tokens tr')].some(tr => tr.textContent.includes('ci-bot') && tr.textContent.includes('revoked'))").await;
    b.screenshot("security").await;

    // a broadcast: sent to the one customer, listed with its progress
    b.click("button[data-panel=bot]").await;
    b.type_into("#bc-text", "<b>Sale</b> today").await;
    b.click("#bc-send").await;
    b.wait_until("the broadcast listed", "[...document.querySelectorAll('#broadcasts tr')].some(tr => tr.textContent.includes('Sale'))").await;
    b.screenshot("bot").await;

    // an agent: the commission in percent, the referral link with a copy button, the figures
    b.click("button[data-panel=agents]").await;
    b.type_into("#ag-name", "Rita").await;
    b.eval("document.getElementById('ag-rate').value = '7.5'; return 1;")
        .await;
    b.eval("document.querySelector('#ag-name').form.requestSubmit(); return 1;")
        .await;
    b.wait_until("the new agent", "(() => { const r = [...document.querySelectorAll('#panel tbody tr')].find(tr => tr.textContent.includes('Rita')); return r && r.textContent.includes('7.5 %') && r.querySelector('.link code').textContent.includes('?start=ref_') && r.querySelector('button.copy') && r.textContent.includes('0 USDT / 0 USDT / 0 USDT'); })()").await;
    b.screenshot("agents").await;

    // restart the payments subsystem and see it come back
    b.click("button[data-panel=subsystems]").await;
    b.wait_until(
        "the tree",
        "document.querySelector('tr[data-path=\"payments\"]')",
    )
    .await;
    b.click("button[data-restart=\"payments\"]").await;
    // a restart asks first
    b.wait_until("the confirmation", "document.querySelector('#confirm-yes')")
        .await;
    b.click("#confirm-yes").await;
    b.wait_until(
        "payments running again after one restart",
        "(() => { const r = document.querySelector('tr[data-path=\"payments\"]'); return r && r.querySelector('.restarts').textContent === '1' && r.querySelector('.badge').textContent === 'running'; })()",
    )
    .await;
    assert_eq!(b.eval("return /\\d+ (s|min|h|d)/.test(document.querySelector('tr[data-path=\"payments\"]').textContent);").await, json!(true), "uptime in human units");
    b.screenshot("subsystems").await;

    // a phone: the navigation folds behind the menu button and nothing widens the page
    b.emulate_phone(390, 844).await;
    b.goto(&format!("{base}/admin#/orders")).await;
    b.wait_until(
        "orders on a phone",
        "document.querySelector('#orders-list tbody tr')",
    )
    .await;
    assert_eq!(
        b.eval("return getComputedStyle(document.querySelector('#nav')).display;")
            .await,
        json!("none")
    );
    assert_eq!(
        b.eval("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
            .await,
        json!(true)
    );
    b.screenshot("orders-phone").await;
    b.click("#menu").await;
    b.wait_until(
        "the folded navigation",
        "getComputedStyle(document.querySelector('#nav')).display !== 'none'",
    )
    .await;
    b.click("button[data-panel=simulator]").await;
    b.wait_until(
        "the simulator on a phone",
        "document.querySelector('#sim-users')",
    )
    .await;
    b.screenshot("simulator-phone").await;
    b.quit().await;
    for (what, took) in &timings {
        eprintln!("click to visible: {what}: {} ms", took.as_millis());
    }
    assert_eq!(app.app.registry.status("payments").unwrap().restarts, 1);
    app.shutdown().await;
}

async fn r_cookie(base: &str, token: &str) -> String {
    let r = client()
        .post(format!("{base}/admin/api/login"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The demo shows a fresh admin password at each start, until an operator sets one: from then
/// on the operator's password stays, and the start says to use it.
#[tokio::test]
async fn the_demo_keeps_a_password_an_operator_set() {
    let db = TestDb::sqlite().await;
    let first = telebot::demo::demo_admin(&db.store).await.unwrap();
    let second = telebot::demo::demo_admin(&db.store).await.unwrap();
    assert!(
        first.is_some() && second.is_some() && first != second,
        "a fresh one each start"
    );
    telebot::accounts::set_account(&db.store, "admin", PASSWORD, None, "cli")
        .await
        .unwrap();
    assert_eq!(telebot::demo::demo_admin(&db.store).await.unwrap(), None);
    let admin = db.store.dashboard_user("admin").await.unwrap().unwrap();
    assert_eq!(admin.role, Role::Admin, "a password change keeps the role");
    assert!(telebot::accounts::verify_password(
        PASSWORD,
        &admin.password_hash
    ));
    db.finish().await;
}

/// The Stars side of the demo in a browser: a customer pays an invoice with simulated Stars
/// from the chat window, Overview shows Stars revenue beside USDT, and an operator refunds the
/// order from Orders and sees the payment refunded in Payments.
#[tokio::test]
async fn stars_are_bought_and_refunded_from_the_dashboard_in_a_real_browser() {
    if !crate::common::webdriver::available() {
        return;
    }
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    telebot::demo::seed_catalog(&db.store).await.unwrap();
    account(&db, "admin", Role::Admin).await;
    let vpn = db
        .store
        .list_products(
            &telebot::store::ProductFilter {
                category_id: None,
                include_hidden: false,
            },
            telebot::store::Page::new(50, 0),
        )
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.stars_price.is_some() && p.kind == telebot::domain::ProductKind::Digital)
        .expect("the demo sells a digital good for Stars");
    let base = format!("http://{}", app.http_addr);
    let b = Browser::start().await;
    b.goto(&format!("{base}/admin")).await;
    b.type_into("#login-username", "admin").await;
    b.type_into("#login-password", PASSWORD).await;
    b.click("#login-submit").await;
    b.wait_until("the overview", "document.querySelector('.cards')")
        .await;

    b.click("button[data-panel=simulator]").await;
    b.type_into("#sim-name", "Mei").await;
    b.type_into("#sim-payload", &format!("p_{}", vpn.id)).await;
    b.click("#sim-add").await;
    b.wait_until(
        "Pay with Stars on the product",
        "document.querySelector('#sim-chat button[data-callback^=\"bs:\"]')",
    )
    .await;
    b.eval("document.querySelector('#sim-chat button[data-callback^=\"bs:\"]').click(); return 1;")
        .await;
    b.wait_until(
        "the Stars quantity buttons",
        "document.querySelector('#sim-chat button[data-callback^=\"sq:\"]')",
    )
    .await;
    b.eval("document.querySelector('#sim-chat button[data-callback^=\"sq:\"]').click(); return 1;")
        .await;
    b.wait_until(
        "the invoice with its simulated Pay button",
        "(() => { const p = document.querySelector('#sim-chat .pay-invoice'); return p && p.textContent.includes('simulated'); })()",
    )
    .await;
    b.screenshot("simulator-stars-invoice").await;
    b.click("#sim-chat .pay-invoice").await;
    b.wait_until("the key delivered after the Stars payment", "[...document.querySelectorAll('#sim-chat .bubble')].some(x => x.textContent.includes('Your item'))").await;
    b.wait_until(
        "the payment shown in the chat",
        "[...document.querySelectorAll('#sim-chat .bubble.service')].some(x => x.textContent.includes('You paid'))",
    )
    .await;
    b.screenshot("simulator-stars-paid").await;
    // the customer asks for help with the payment
    b.type_into("#sim-text", "/paysupport").await;
    // (the payment's toast sits over the Send button for a moment)
    b.eval("document.getElementById('sim-composer').requestSubmit(); return 1;")
        .await;
    b.wait_until("the support answer", "[...document.querySelectorAll('#sim-chat .bubble')].some(x => x.textContent.includes('Payment support'))").await;
    b.click("button[data-panel=bot]").await;
    b.wait_until(
        "the support request",
        "document.querySelector('#support-requests button[data-close-support]')",
    )
    .await;
    b.screenshot("bot-support").await;
    b.click("#support-requests button[data-close-support]")
        .await;
    b.wait_until("the request answered", "(() => { const t = document.querySelector('#support-requests'); return t && t.textContent.includes('closed') && !t.querySelector('button[data-close-support]'); })()").await;

    // Overview: Stars revenue beside the USDT revenue, not added to it
    let stars = vpn.stars_price.unwrap();
    b.click("button[data-panel=overview]").await;
    b.wait_until("the Stars revenue card", &format!("[...document.querySelectorAll('.card')].some(c => c.textContent.includes('Stars revenue today') && c.textContent.includes('{stars} ⭐'))")).await;
    b.wait_until("USDT revenue untouched", "[...document.querySelectorAll('.card')].some(c => c.textContent.startsWith('0 USDT') && c.textContent.includes('Revenue today'))").await;
    b.screenshot("overview-stars").await;

    // refund from the order
    b.click("button[data-panel=orders]").await;
    b.wait_until("the Stars order", &format!("[...document.querySelectorAll('#orders-list tbody tr')].some(tr => tr.textContent.includes('{stars} ⭐'))")).await;
    b.eval("document.querySelector('#orders-list tbody tr').click(); return 1;")
        .await;
    b.wait_until(
        "the refund button",
        "document.querySelector('#order-refund')",
    )
    .await;
    b.click("#order-refund").await;
    b.wait_until("the confirmation", "document.querySelector('#confirm-yes')")
        .await;
    b.click("#confirm-yes").await;
    b.wait_until(
        "the order refunded",
        "[...document.querySelectorAll('#order-detail .badge')].some(x => x.textContent === 'refunded')",
    )
    .await;
    b.click("button[data-panel=payments]").await;
    b.wait_until("the Stars payment refunded", "(() => { const t = document.querySelector('#stars-payments'); return t && t.textContent.includes('credited') && t.textContent.includes('refunded'); })()").await;
    b.wait_until("revenue per currency", "(() => { const t = document.querySelector('#revenue-split').textContent; return t.includes('USDT revenue, 30 days') && t.includes('Stars revenue, 30 days'); })()").await;
    b.screenshot("payments-stars").await;
    b.quit().await;
    app.shutdown().await;
}
