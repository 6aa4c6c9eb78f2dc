//! The bot end to end: teloxide talks to the built-in Bot API simulator on loopback exactly as to
//! Telegram, simulated users type and press buttons, and payments arrive at a loopback TronGrid.

use std::time::Duration;

use crate::common::chain::{TronGrid, transfer_to};
use crate::common::sim::SimUser;
use crate::common::{TestDb, WALLET, pass_deadline, shop, start_app, wait_for};
use telebot::domain::{Money, OrderStatus, ProductKind, now_ms};
use telebot::store::{OrderFilter, Page};

const LIMIT: Duration = Duration::from_secs(15);

fn chain_vars(tg: &TronGrid) -> Vec<(&str, &str)> {
    vec![
        ("TELEBOT__TRON__SOURCE", "trongrid"),
        ("TELEBOT__PAYMENTS__WALLETS", WALLET),
        ("TELEBOT__TRON__TRONGRID_URL", tg.url.as_str()),
        ("TELEBOT__TRON__POLL_INTERVAL", "50ms"),
        ("TELEBOT__TRON__CONFIRMATIONS", "seen"),
    ]
}

#[tokio::test]
async fn a_customer_buys_pays_and_receives_the_item() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let app = start_app(&db.url, &chain_vars(&tg)).await;
    let (_, product) = shop(&db.store, 1, "12.5", 2).await;
    let ann = SimUser::new(app.http_addr, 501);

    ann.say_as("/start", "Ann", "en").await;
    let menu = ann.expect(0, "Welcome to").await;
    let v = ann.version().await;
    ann.press(menu.message_id, &menu.button("Catalog")).await;
    let catalog = ann.expect(v, "Catalog").await;
    assert_eq!(
        catalog.message_id, menu.message_id,
        "screens edit the message, not flood the chat"
    );
    let v = ann.version().await;
    ann.press(catalog.message_id, &catalog.button("Licence key"))
        .await;
    let detail = ann.expect(v, "12.500000 USDT").await;
    assert!(detail.text.contains("In stock: 2"), "{}", detail.text);
    let v = ann.version().await;
    ann.press(detail.message_id, &detail.button("Buy")).await;
    let quantity = ann.expect(v, "How many").await;
    let v = ann.version().await;
    ann.press(quantity.message_id, &quantity.button("1")).await;

    let instructions = ann.expect(v, "Send <b>exactly</b>").await;
    assert!(
        instructions.photo.is_some(),
        "the instructions come with a QR code"
    );
    assert!(
        instructions
            .text
            .contains(&format!("<code>{WALLET}</code>")),
        "tap-to-copy address"
    );
    assert!(
        instructions.text.contains("<code>12.501000</code>"),
        "{}",
        instructions.text
    );
    instructions.button("Check payment");
    instructions.button("Cancel order");
    let png = reqwest::get(format!(
        "http://{}/sim/api/files/{}",
        app.http_addr,
        instructions.photo.unwrap()
    ))
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap();
    assert_eq!(&png[..4], b"\x89PNG");

    let order = db
        .store
        .list_orders(&OrderFilter::default(), Page::default())
        .await
        .unwrap()
        .remove(0);
    let q = ann
        .press(instructions.message_id, &format!("ck:{}", order.id))
        .await;
    let answer = ann.callback_answer(&q).await;
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .contains("No payment seen yet"),
        "{answer}"
    );

    let v = ann.version().await;
    tg.push(transfer_to(order.payable_amount, true));
    // one message says it is paid and carries the item
    let delivered = ann.expect(v, &format!("Order #{} is paid", order.id)).await;
    assert!(
        delivered.text.contains(&format!("KEY-{}-0", product.id)),
        "{}",
        delivered.text
    );
    let told: Vec<_> = ann
        .chat()
        .await
        .into_iter()
        .filter(|m| m.from_bot && m.version > v && m.text.contains(&format!("#{}", order.id)))
        // the payment message itself changes too (its buttons go)
        .filter(|m| !m.text.contains("🧾"))
        .collect();
    assert_eq!(told.len(), 1, "one message about the payment: {told:?}");

    // the order list shows it delivered
    ann.say("/orders").await;
    ann.expect(delivered.version, "delivered").await;
    app.shutdown().await;
}

#[tokio::test]
async fn chinese_users_get_chinese_and_anyone_can_switch() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    let li = SimUser::new(app.http_addr, 502);
    li.say_as("/start", "李", "zh-hans").await;
    let menu = li.expect(0, "欢迎来到").await;
    let v = li.version().await;
    li.press(menu.message_id, &menu.button("语言")).await;
    let choose = li.expect(v, "请选择语言").await;
    let v = li.version().await;
    li.press(choose.message_id, "l:en").await;
    li.expect(v, "Welcome to").await;
    li.say("/help").await;
    li.expect(v, "How it works").await;
    let user = db.store.user_by_telegram_id(502).await.unwrap().unwrap();
    assert_eq!(user.language, "en", "the choice is saved");

    let sim = app.app.simulator.clone().unwrap();
    wait_for("command menus registered", LIMIT, || async {
        (sim.commands("").is_some() && sim.commands("zh").is_some()).then_some(())
    })
    .await;
    assert!(
        sim.commands("zh")
            .unwrap()
            .to_string()
            .contains("浏览商品目录")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_referral_link_binds_the_agent_on_first_contact_only() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    let mk = |code: &str| telebot::store::NewAgent {
        user_id: None,
        name: code.to_owned(),
        code: code.to_owned(),
        commission_bps: 1_000,
        status: telebot::domain::AgentStatus::Active,
    };
    let alice = db.store.create_agent(&mk("alice"), "test").await.unwrap();
    db.store.create_agent(&mk("bob"), "test").await.unwrap();
    let u = SimUser::new(app.http_addr, 503);
    u.say("/start ref_alice").await;
    u.expect(0, "Welcome").await;
    let v = u.version().await;
    u.say("/start ref_bob").await;
    u.expect(v, "Welcome").await;
    let user = db.store.user_by_telegram_id(503).await.unwrap().unwrap();
    assert_eq!(user.referred_by_agent_id, Some(alice.id));
    // a link to a product opens it
    let p = crate::common::product(
        &db.store,
        ProductKind::Service,
        "Audit",
        "A careful look",
        "30",
    )
    .await;
    let v = u.version().await;
    u.say(&format!("/start p_{}", p.id)).await;
    u.expect(v, "A careful look").await;
    app.shutdown().await;
}

#[tokio::test]
async fn over_the_rate_limit_one_notice_and_other_users_are_unaffected() {
    let db = TestDb::sqlite().await;
    let app = start_app(
        &db.url,
        &[("TELEBOT__SECURITY__RATE_LIMIT_PER_MINUTE", "5")],
    )
    .await;
    let flood = SimUser::new(app.http_addr, 504);
    for i in 0..12 {
        flood.say(&format!("spam {i}")).await;
    }
    flood.expect(0, "too fast").await;
    let calm = SimUser::new(app.http_addr, 505);
    calm.say("/start").await;
    calm.expect(0, "Welcome").await;
    // the flood's session has worked through its mailbox once it refused all seven over the
    // limit (the notice included); everything it answers was sent before it got there
    wait_for("the flood refused", Duration::from_secs(10), || async {
        (app.app.limiter.refused() >= 7).then_some(())
    })
    .await;
    let replies = wait_for("the flood's replies", Duration::from_secs(10), || async {
        let replies = flood.bot_messages().await;
        (replies.len() >= 6).then_some(replies)
    })
    .await;
    let notices = replies
        .iter()
        .filter(|m| m.text.contains("too fast"))
        .count();
    assert_eq!(notices, 1, "one notice, then silence");
    assert_eq!(replies.len(), 6, "five answered updates and the notice");
    app.shutdown().await;
}

#[tokio::test]
async fn a_forged_callback_for_another_users_order_does_nothing() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    let (_, product) = shop(&db.store, 506, "5", 1).await;
    let owner = db.store.user_by_telegram_id(506).await.unwrap().unwrap();
    let order = crate::common::order_for(&app.app, owner.id, &product, 1).await;

    let mallory = SimUser::new(app.http_addr, 507);
    mallory.say("/start").await;
    let menu = mallory.expect(0, "Welcome").await;
    // buttons that act on an order count only on the message that shows them
    for data in [
        format!("x:{}", order.id),
        format!("pb:{}", order.id),
        format!("ck:{}", order.id),
    ] {
        let q = mallory.press(menu.message_id, &data).await;
        let answer = mallory.callback_answer(&q).await;
        assert_eq!(answer["text"], "This button is no longer valid.", "{data}");
        assert_eq!(answer["show_alert"], true, "{data}");
    }
    // opening an order is checked against its owner
    let q = mallory
        .press(menu.message_id, &format!("o:{}", order.id))
        .await;
    assert_eq!(
        mallory.callback_answer(&q).await["text"],
        "Order not found."
    );
    let q = mallory.press(menu.message_id, "zz:not-a-button").await;
    assert_eq!(
        mallory.callback_answer(&q).await["text"],
        "This button is no longer valid."
    );
    assert_eq!(
        db.store.order(order.id).await.unwrap().status,
        OrderStatus::PendingPayment
    );
    app.shutdown().await;
}

#[tokio::test]
async fn names_and_requests_cannot_inject_markup() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    let p = crate::common::product(
        &db.store,
        ProductKind::Service,
        "Design <i>work</i>",
        "x",
        "1",
    )
    .await;
    let eve = SimUser::new(app.http_addr, 508);
    eve.say_as("/start", "<b>Boss</b> & co", "en").await;
    let menu = eve.expect(0, "Welcome").await;
    assert!(
        menu.text.contains("Hi &lt;b&gt;Boss&lt;/b&gt; &amp; co!"),
        "{}",
        menu.text
    );
    let v = eve.version().await;
    eve.press(menu.message_id, &format!("b:{}", p.id)).await;
    let ask = eve.expect(v, "Describe what you need").await;
    assert!(
        ask.text.contains("Design &lt;i&gt;work&lt;/i&gt;"),
        "{}",
        ask.text
    );
    let v = eve.version().await;
    eve.say(&"x".repeat(1001)).await;
    eve.expect(v, "please keep it under 1000").await;
    let v = eve.version().await;
    let hostile = "<a href=\"tg://x\">click</a> \u{202e}gnp.exe 👋 \u{0000}";
    eve.say(hostile).await;
    eve.expect(v, "Send <b>exactly</b>").await;
    let order = db
        .store
        .list_orders(&OrderFilter::default(), Page::default())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        order.request_text.as_deref(),
        Some("<a href=\"tg://x\">click</a> \u{202e}gnp.exe 👋")
    );
    let v = eve.version().await;
    eve.press(menu.message_id, &format!("o:{}", order.id)).await;
    let detail = eve.expect(v, "Your request").await;
    assert!(
        detail
            .text
            .contains("&lt;a href=&quot;tg://x&quot;&gt;click&lt;/a&gt;"),
        "{}",
        detail.text
    );
    app.shutdown().await;
}

#[tokio::test]
async fn unexpected_updates_never_break_the_bot() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    let sim = app.app.simulator.clone().unwrap();
    let chat = serde_json::json!({"id": -100123, "type": "channel", "title": "news"});
    sim.raw_update(
        "channel_post",
        serde_json::json!({"message_id": 1, "date": 1, "chat": chat, "text": "hi"}),
    );
    let user = serde_json::json!({"id": 509, "is_bot": false, "first_name": "S"});
    let private = serde_json::json!({"id": 509, "type": "private", "first_name": "S"});
    sim.raw_update(
        "message",
        serde_json::json!({"message_id": 2, "date": 1, "chat": private, "from": user,
            "sticker": {"file_id": "s", "file_unique_id": "s", "type": "regular", "width": 1, "height": 1, "is_animated": false, "is_video": false}}),
    );
    sim.raw_update("edited_message", serde_json::json!({"message_id": 3, "date": 1, "edit_date": 2, "chat": private, "from": user, "text": "edited"}));
    sim.raw_update("my_chat_member", serde_json::json!({"chat": private, "from": user, "date": 1,
        "old_chat_member": {"user": user, "status": "member"}, "new_chat_member": {"user": user, "status": "kicked", "until_date": 0}}));
    sim.raw_update(
        "message",
        serde_json::json!({"message_id": 4, "date": 1, "chat": private, "text": "no sender"}),
    );
    let s = SimUser::new(app.http_addr, 509);
    s.expect(0, "I can only read text").await;
    s.say("/start").await;
    s.expect(0, "Welcome").await;
    assert_eq!(app.app.registry.status("bot/router").unwrap().restarts, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn the_bot_subsystem_restarts_mid_conversation_and_the_conversation_goes_on() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    let p = crate::common::product(&db.store, ProductKind::Service, "Logo", "A logo", "40").await;
    let u = SimUser::new(app.http_addr, 510);
    u.say("/start").await;
    let menu = u.expect(0, "Welcome").await;
    let v = u.version().await;
    u.press(menu.message_id, &format!("b:{}", p.id)).await;
    u.expect(v, "Describe what you need").await;

    app.app.registry.restart("bot", LIMIT).await.unwrap();
    let v = u.version().await;
    u.say("A blue fox, please").await;
    u.expect(v, "Send <b>exactly</b>").await;
    let order = db
        .store
        .list_orders(&OrderFilter::default(), Page::default())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(order.request_text.as_deref(), Some("A blue fox, please"));
    assert_eq!(app.app.registry.status("bot").unwrap().restarts, 1);
    app.shutdown().await;
}

/// The router restarts (alone, while the Telegram intake keeps polling) in the middle of a burst
/// of messages from several users: every message is still answered, exactly once.
#[tokio::test]
async fn updates_arriving_while_the_router_restarts_are_all_answered_once() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    const EACH: usize = 4;
    let users: Vec<SimUser> = (530..535)
        .map(|id| SimUser::new(app.http_addr, id))
        .collect();
    for u in &users {
        u.say("/help").await;
    }
    let restart = {
        let registry = app.app.registry.clone();
        tokio::spawn(async move { registry.restart("bot/router", LIMIT).await })
    };
    for _ in 1..EACH {
        for u in &users {
            u.say("/help").await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    restart.await.unwrap().unwrap();
    assert_eq!(app.app.registry.status("bot/router").unwrap().restarts, 1);
    for u in &users {
        let answered = wait_for("every /help answered", Duration::from_secs(20), || async {
            let n = u
                .bot_messages()
                .await
                .iter()
                .filter(|m| m.text.contains("How it works"))
                .count();
            (n >= EACH).then_some(n)
        })
        .await;
        // one more message, answered after everything sent before it: once its answer is
        // there, no earlier /help can still be answered again
        u.say("/profile").await;
        wait_for("the marker answered", Duration::from_secs(20), || async {
            u.bot_messages()
                .await
                .iter()
                .any(|m| m.text.contains("Telegram ID"))
                .then_some(())
        })
        .await;
        let settled = u
            .bot_messages()
            .await
            .iter()
            .filter(|m| m.text.contains("How it works"))
            .count();
        assert_eq!(
            (answered, settled),
            (EACH, EACH),
            "user {}: each message answered once",
            u.id
        );
    }
    app.shutdown().await;
}

#[tokio::test]
async fn expiry_cancellation_and_paying_from_the_balance_are_told() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[("TELEBOT__PAYMENTS__WINDOW", "2s")]).await;
    let (_, product) = shop(&db.store, 511, "3", 3).await;
    let user = db.store.user_by_telegram_id(511).await.unwrap().unwrap();
    db.store
        .adjust_balance(
            user.id,
            Money::parse("5").unwrap(),
            telebot::store::LedgerReason::Adjustment,
            None,
            None,
        )
        .await
        .unwrap();
    let u = SimUser::new(app.http_addr, 511);
    u.say("/start").await;
    let menu = u.expect(0, "Welcome").await;

    // expires
    let keyboard = u.quantity_keyboard(menu.message_id, product.id).await;
    let first = u.press_quantity(&keyboard, product.id, 1).await;
    let v = u.version().await;
    u.expect(v, "expired without payment").await;

    // cancelled by the customer
    let second = u.press_quantity(&keyboard, product.id, 1).await;
    let cancel = second.button("Cancel order");
    let q = u.press(second.message_id, &cancel).await;
    assert!(
        u.callback_answer(&q).await["text"]
            .as_str()
            .unwrap()
            .contains("cancelled")
    );

    // paid from the balance
    let v = u.version().await;
    let third = u.press_quantity(&keyboard, product.id, 1).await;
    let q = u
        .press(third.message_id, &third.button("Pay from balance"))
        .await;
    assert!(
        u.callback_answer(&q).await["text"]
            .as_str()
            .unwrap()
            .contains("paid from your balance")
    );
    u.expect(v, "Your item").await;
    let user = db.store.user(user.id).await.unwrap();
    assert_eq!(user.balance.to_string(), "2.000000");
    assert_ne!(first.message_id, second.message_id);

    // none of the three payment messages still offers check, cancel or pay from balance
    for (what, m) in [
        ("expired", &first),
        ("cancelled", &second),
        ("paid", &third),
    ] {
        wait_for(
            &format!("the {what} order's buttons to go"),
            LIMIT,
            || async {
                let now = u.chat().await;
                let m = now.iter().find(|c| c.message_id == m.message_id).unwrap();
                m.buttons.is_empty().then_some(())
            },
        )
        .await;
    }
    // a button kept from before (an old client, a forged press) is refused and changes nothing
    let q = u
        .press(first.message_id, &first.button("Pay from balance"))
        .await;
    let answer = u.callback_answer(&q).await;
    assert_eq!(answer["text"], "This button is no longer valid.");
    assert_eq!(answer["show_alert"], true);
    assert_eq!(
        db.store.user(user.id).await.unwrap().balance.to_string(),
        "2.000000"
    );
    app.shutdown().await;
}

/// Past the window, while TronGrid may still list a transfer made in time, the order stays
/// payable and "Check payment" says the chain is being checked, not that the order expired.
#[tokio::test]
async fn past_the_window_the_bot_says_the_chain_is_being_checked() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let mut vars = chain_vars(&tg);
    vars.push(("TELEBOT__PAYMENTS__WINDOW", "2s"));
    vars.push(("TELEBOT__TRON__RESUME_OVERLAP", "30s"));
    let app = start_app(&db.url, &vars).await;
    let (_, product) = shop(&db.store, 514, "3", 2).await;
    let u = SimUser::new(app.http_addr, 514);
    u.say("/start").await;
    let menu = u.expect(0, "Welcome").await;
    let instructions = u.order_quantity(menu.message_id, product.id, 1).await;
    // the instructions name the quantity, and a two-second window is not rounded up to a minute
    assert!(instructions.text.contains("× 1"), "{}", instructions.text);
    assert!(
        instructions.text.contains(" s left)"),
        "{}",
        instructions.text
    );
    assert!(!instructions.text.contains("min"), "{}", instructions.text);
    let pending = db
        .store
        .list_orders(&OrderFilter::default(), Page::default())
        .await
        .unwrap()
        .remove(0);
    pass_deadline(pending.expires_at, 500).await;
    let q = u
        .press(
            instructions.message_id,
            &instructions.button("Check payment"),
        )
        .await;
    let answer = u.callback_answer(&q).await;
    let text = answer["text"].as_str().unwrap();
    assert!(text.contains("payment window"), "{text}");
    assert!(text.contains("checking the blockchain"), "{text}");
    let order = db
        .store
        .list_orders(&OrderFilter::default(), Page::default())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(order.status, OrderStatus::PendingPayment);
    app.shutdown().await;
}

/// Quantities and top-up amounts come only from buttons the bot showed, recently: forged
/// callback data and an old keyboard create no order.
#[tokio::test]
async fn forged_or_old_order_buttons_create_no_order() {
    let db = TestDb::sqlite().await;
    let app = start_app(
        &db.url,
        &[("TELEBOT__TELEGRAM__ORDER_BUTTON_LIFETIME", "2s")],
    )
    .await;
    let (_, digital) = shop(&db.store, 513, "2", 20).await;
    let service = crate::common::product(&db.store, ProductKind::Service, "Design", "", "9").await;
    let topup = crate::common::product(&db.store, ProductKind::Topup, "Top-up", "", "0").await;
    let u = SimUser::new(app.http_addr, 513);
    u.say("/start").await;
    let menu = u.expect(0, "Welcome").await;
    let keyboard = u.quantity_keyboard(menu.message_id, digital.id).await;
    let shown_by = now_ms();
    for (message, data) in [
        (menu.message_id, format!("q:{}:7", service.id)),
        (menu.message_id, format!("q:{}:3", topup.id)),
        (menu.message_id, "ta:500000".to_owned()),
        (keyboard.message_id, format!("q:{}:7", digital.id)),
        (keyboard.message_id, format!("q:{}:1", service.id)),
    ] {
        let q = u.press(message, &data).await;
        let answer = u.callback_answer(&q).await;
        assert_eq!(answer["text"], "This button is no longer valid.", "{data}");
        assert_eq!(answer["show_alert"], true, "{data}");
    }
    // the keyboard the bot showed, pressed after its lifetime: shown again instead of ordering
    pass_deadline(shown_by + 2_000, 500).await;
    let v = u.version().await;
    let q = u
        .press(keyboard.message_id, &format!("q:{}:1", digital.id))
        .await;
    assert_eq!(
        u.callback_answer(&q).await["text"],
        "This keyboard was out of date. Here it is again, with current stock and prices."
    );
    let fresh = u.expect(v, "How many").await;
    assert_ne!(fresh.message_id, keyboard.message_id);
    let orders = || async {
        db.store
            .list_orders(&OrderFilter::default(), Page::default())
            .await
            .unwrap()
    };
    assert!(orders().await.is_empty());
    // the fresh one orders
    u.press_quantity(&fresh, digital.id, 2).await;
    let made = orders().await;
    assert_eq!(made.len(), 1);
    assert_eq!(
        (made[0].product_id, made[0].quantity),
        (Some(digital.id), 2)
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_broadcast_reaches_everyone_once() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    let users: Vec<SimUser> = (0..5)
        .map(|i| SimUser::new(app.http_addr, 600 + i))
        .collect();
    for u in &users {
        u.say("/start").await;
        u.expect(0, "Welcome").await;
    }
    let b = db
        .store
        .create_broadcast("📣 Sale: <b>20% off</b> today", "token:1")
        .await
        .unwrap();
    for u in &users {
        u.expect(0, "Sale").await;
    }
    let done = wait_for("broadcast finished", LIMIT, || async {
        db.store
            .broadcast(b.id)
            .await
            .ok()
            .filter(|b| b.status == "done")
    })
    .await;
    // `done` is written after the last send: every message the broadcast makes is out
    assert_eq!((done.sent, done.failed), (5, 0));
    for u in &users {
        let count = u
            .bot_messages()
            .await
            .iter()
            .filter(|m| m.text.contains("Sale"))
            .count();
        assert_eq!(count, 1);
    }
    app.shutdown().await;
}

#[tokio::test]
async fn idle_sessions_stop_and_come_back_with_their_state() {
    let db = TestDb::sqlite().await;
    let app = start_app(
        &db.url,
        &[("TELEBOT__TELEGRAM__SESSION_IDLE_TIMEOUT", "300ms")],
    )
    .await;
    let p = crate::common::product(&db.store, ProductKind::Service, "Review", "x", "2").await;
    let u = SimUser::new(app.http_addr, 512);
    u.say("/start").await;
    let menu = u.expect(0, "Welcome").await;
    let v = u.version().await;
    u.press(menu.message_id, &format!("b:{}", p.id)).await;
    u.expect(v, "Describe what you need").await;
    assert_eq!(app.app.bot.sessions().await.unwrap(), 1);
    wait_for("the idle session to stop", LIMIT, || async {
        (app.app.bot.sessions().await.unwrap() == 0).then_some(())
    })
    .await;
    let v = u.version().await;
    u.say("Please review my contract").await;
    u.expect(v, "Send <b>exactly</b>").await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_customer_applies_as_an_agent_and_hears_when_approved() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    let u = SimUser::new(app.http_addr, 520);
    u.say("/agent").await;
    let offer = u.expect(0, "Resell our products").await;
    let q = u.press(offer.message_id, "ag").await;
    assert!(
        u.callback_answer(&q).await["text"]
            .as_str()
            .unwrap()
            .contains("Application sent")
    );
    let user = db.store.user_by_telegram_id(520).await.unwrap().unwrap();
    let agent = db.store.agent_by_user(user.id).await.unwrap().unwrap();
    assert_eq!(agent.status, telebot::domain::AgentStatus::Pending);
    let v = u.version().await;
    u.say("/agent").await;
    u.expect(v, "waiting for review").await;
    db.store
        .update_agent(
            agent.id,
            &telebot::store::AgentUpdate {
                status: Some(telebot::domain::AgentStatus::Active),
                commission_bps: Some(1_200),
                ..Default::default()
            },
            "token:1",
        )
        .await
        .unwrap();
    let welcome = u.expect(v, "You are now an agent").await;
    assert!(
        welcome.text.contains(&format!("start=ref_{}", agent.code)),
        "{}",
        welcome.text
    );
    let v = u.version().await;
    u.say("/agent").await;
    let info = u.expect(v, "Your referral link").await;
    assert!(info.text.contains("12.00%"), "{}", info.text);
    app.shutdown().await;
}

/// A web page an operator opens cannot post as the bot: the simulator's Bot API refuses GET and
/// browser requests for every method that changes state.
#[tokio::test]
async fn a_web_page_cannot_post_as_the_bot_through_the_simulator() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[]).await;
    let u = SimUser::new(app.http_addr, 515);
    u.say("/start").await;
    u.expect(0, "Welcome").await;
    let base = format!("http://{}/sim/bot0:simulator", app.http_addr);
    let client = reqwest::Client::new();

    let r = client
        .get(format!("{base}/sendMessage?chat_id=515&text=pwned-by-link"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["ok"], false);
    assert!(
        body["description"].as_str().unwrap().contains("POST"),
        "{body}"
    );
    let r = client
        .get(format!("{base}/getUpdates?offset=1000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405, "getUpdates confirms updates: not on GET");

    let r = client
        .post(format!("{base}/sendMessage"))
        .header("Origin", "https://evil.example")
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[("chat_id", "515"), ("text", "pwned-by-form")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let chat = u.chat().await;
    assert!(chat.iter().all(|m| !m.text.contains("pwned")), "{chat:?}");
    // reading stays possible, and the bot itself (POST, no browser headers) is served
    let r = client.get(format!("{base}/getMe")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(format!("{base}/sendMessage"))
        .json(&serde_json::json!({"chat_id": 515, "text": "from the bot"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    u.expect(0, "from the bot").await;
    app.shutdown().await;
}
