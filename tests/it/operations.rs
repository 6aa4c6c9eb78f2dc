//! Operations: the Prometheus exposition (checked by promtool when it is installed, and always
//! when TELEBOT_TEST_PROMTOOL is set), readiness that names a stalled scanner, subsystem restarts
//! through the API and the CLI in the middle of a stream of payments, and JSON logs that carry
//! request and update ids.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::chain::{Fault, TronGrid, transfer_to};
use crate::common::sim::SimUser;
use crate::common::{
    TestDb, WALLET, order_for, shop, start_app, token, wait_for, wait_paid, wait_status,
};
use telebot::domain::{Money, OrderStatus, Role};

const REQUIRED: &[&str] = &[
    "bot_updates_total",
    "bot_update_duration_seconds",
    "bot_sessions_active",
    "rate_limited_total",
    "orders_created_total",
    "orders_paid_total",
    "orders_expired_total",
    "order_payment_duration_seconds",
    "payments_matched_total",
    "payments_dust_total",
    "payment_detection_latency_seconds",
    "scanner_lag_seconds",
    "scanner_errors_total",
    "matcher_allocations_active",
    "matcher_slots_exhausted_total",
    "actor_restarts_total",
    "http_requests_total",
    "http_request_duration_seconds",
    "outbox_pending",
    "telegram_send_retries_total",
];

fn promtool_check(exposition: &str) {
    let required = std::env::var("TELEBOT_TEST_PROMTOOL").is_ok_and(|v| !v.is_empty());
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if !required => {
            eprintln!("promtool not installed ({e}): exposition checked by this test only");
            return;
        }
        Err(e) => panic!("TELEBOT_TEST_PROMTOOL is set but promtool cannot run: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool exits non-zero for lint findings too; only hard errors fail the exposition
    let errors: Vec<&str> = report.lines().filter(|l| l.contains("error")).collect();
    assert!(errors.is_empty(), "promtool: {report}");
}

#[tokio::test]
async fn metrics_cover_every_subsystem_and_pass_promtool() {
    telebot::telemetry::metrics_handle();
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let app = start_app(
        &db.url,
        &[
            ("TELEBOT__TRON__SOURCE", "trongrid"),
            ("TELEBOT__PAYMENTS__WALLETS", WALLET),
            ("TELEBOT__TRON__TRONGRID_URL", tg.url.as_str()),
            ("TELEBOT__TRON__POLL_INTERVAL", "40ms"),
            ("TELEBOT__TRON__MAX_BACKOFF", "100ms"),
            ("TELEBOT__TRON__CONFIRMATIONS", "seen"),
        ],
    )
    .await;
    let (user, product) = shop(&db.store, 700, "4", 1).await;
    let order = order_for(&app.app, user.id, &product, 1).await;
    tg.fail_next(Fault::ServerError, 1);
    tg.push(transfer_to(order.payable_amount, true));
    wait_status(&db.store, order.id, OrderStatus::Delivered).await;
    let u = SimUser::new(app.http_addr, 701);
    u.say("/start").await;
    u.expect(0, "Welcome").await;
    app.app
        .registry
        .restart("notifier", Duration::from_secs(10))
        .await
        .unwrap();

    let body = reqwest::get(format!("http://{}/metrics", app.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in REQUIRED {
        assert!(
            body.lines().any(|l| l.starts_with(name)),
            "{name} missing from /metrics"
        );
    }
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "snake_case: {name}"
        );
    }
    assert!(
        body.contains("subsystem=\"notifier\""),
        "restarts are labelled by subsystem"
    );
    assert!(
        body.contains("route=\"/readyz\"") || body.contains("route=\"/sim/{bot_token}/{method}\""),
        "routes are templates"
    );
    assert!(
        !body.contains(&format!("/orders/{}", order.id)),
        "no raw paths in labels"
    );
    promtool_check(&body);
    app.shutdown().await;
}

#[tokio::test]
async fn metrics_can_be_served_on_their_own_address() {
    let db = TestDb::sqlite().await;
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap().to_string();
    drop(probe);
    let app = start_app(&db.url, &[("TELEBOT__METRICS__ADDR", addr.as_str())]).await;
    let main = reqwest::get(format!("http://{}/metrics", app.http_addr))
        .await
        .unwrap();
    assert_eq!(main.status(), 404, "not on the main address");
    let own = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert!(own.text().await.unwrap().contains("# TYPE"));
    app.shutdown().await;
}

#[tokio::test]
async fn readiness_names_a_stalled_scanner() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    tg.fail_next(Fault::TronGridError(403), 10_000);
    let app = start_app(
        &db.url,
        &[
            ("TELEBOT__TRON__SOURCE", "trongrid"),
            ("TELEBOT__PAYMENTS__WALLETS", WALLET),
            ("TELEBOT__TRON__TRONGRID_URL", tg.url.as_str()),
            ("TELEBOT__TRON__POLL_INTERVAL", "40ms"),
            ("TELEBOT__TRON__MAX_BACKOFF", "100ms"),
            ("TELEBOT__TRON__STALL_THRESHOLD", "500ms"),
        ],
    )
    .await;
    let url = format!("http://{}/readyz", app.http_addr);
    let body: serde_json::Value = wait_for(
        "readyz to report the stall",
        Duration::from_secs(10),
        || async {
            let r = reqwest::get(&url).await.ok()?;
            if r.status() != 503 {
                return None;
            }
            r.json().await.ok()
        },
    )
    .await;
    assert_eq!(body["status"], "not_ready");
    let problems = body["problems"].to_string();
    assert!(problems.contains("scanner trongrid stalled"), "{problems}");
    assert!(
        problems.contains("frequency limit"),
        "the last error is shown: {problems}"
    );
    assert_eq!(body["database"], "ok");
    app.shutdown().await;
}

#[tokio::test]
async fn restarting_payments_through_the_api_in_a_stream_of_payments_loses_none() {
    let db = TestDb::sqlite().await;
    let tg = TronGrid::start().await;
    let app = start_app(
        &db.url,
        &[
            ("TELEBOT__TRON__SOURCE", "trongrid"),
            ("TELEBOT__PAYMENTS__WALLETS", WALLET),
            ("TELEBOT__TRON__TRONGRID_URL", tg.url.as_str()),
            ("TELEBOT__TRON__POLL_INTERVAL", "40ms"),
            ("TELEBOT__TRON__CONFIRMATIONS", "seen"),
        ],
    )
    .await;
    let admin = token(&db.store, Role::Admin, None).await;
    let operator = token(&db.store, Role::Operator, None).await;
    let (user, product) = shop(&db.store, 702, "2", 30).await;
    let mut orders = Vec::new();
    for _ in 0..20 {
        orders.push(order_for(&app.app, user.id, &product, 1).await);
    }
    let amounts: Vec<Money> = orders.iter().map(|o| o.payable_amount).collect();
    let feed = {
        let tg = tg.clone();
        tokio::spawn(async move {
            for amount in amounts {
                tg.push(transfer_to(amount, true));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let client = reqwest::Client::new();
    let restart = format!(
        "http://{}/api/v1/admin/subsystems/payments/restart",
        app.http_addr
    );
    wait_paid(&db.store, &orders, 2).await;
    let denied = client
        .post(&restart)
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403, "restarts are for admins");
    let r = client
        .post(&restart)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let status: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (status["path"].as_str(), status["state"].as_str()),
        (Some("payments"), Some("running"))
    );
    wait_paid(&db.store, &orders, 6).await;
    let r = client
        .post(format!(
            "http://{}/api/v1/admin/subsystems/payments.matcher/restart",
            app.http_addr
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    feed.await.unwrap();
    for o in &orders {
        wait_status(&db.store, o.id, OrderStatus::Delivered).await;
    }
    let tree: serde_json::Value = client
        .get(format!("http://{}/api/v1/admin/subsystems", app.http_addr))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payments = tree
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == "payments")
        .unwrap();
    assert_eq!(payments["restarts"], 1);
    let missing = client
        .post(format!(
            "http://{}/api/v1/admin/subsystems/nothing/restart",
            app.http_addr
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    app.shutdown().await;
}

const BIN: &str = env!("CARGO_BIN_EXE_telebot");

fn telebot(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("TELEBOT__") || k == "TELEBOT_URL" || k == "TELEBOT_TOKEN" {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn the_cli_creates_tokens_and_drives_a_running_instance_with_json_logs() {
    let dir = tempfile::tempdir().unwrap();
    let out = telebot(dir.path())
        .args(["token", "create", "--role", "admin", "--name", "ops"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(admin.starts_with("tb_"), "{admin}");
    let bad = telebot(dir.path())
        .args(["token", "create", "--role", "boss", "--name", "x"])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    let mut child = telebot(dir.path())
        .env("TELEBOT__HTTP__ADDR", "127.0.0.1:0")
        .env("TELEBOT__LOG__FORMAT", "json")
        .env("TELEBOT__LOG__LEVEL", "info,telebot=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("start-up line");
        let parsed: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        lines.push(parsed.clone());
        if let Some(a) = parsed["addr"]
            .as_str()
            .filter(|_| parsed["message"].as_str().unwrap_or("").contains("is up"))
        {
            break a.to_owned();
        }
    };
    let base = format!("http://{addr}");
    let ctl = |args: &[&str]| {
        telebot(dir.path())
            .args(["ctl", "--url", &base, "--token", &admin])
            .args(args)
            .output()
            .unwrap()
    };
    let out = ctl(&["subsystems"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("payments/matcher") && table.contains("running"),
        "{table}"
    );
    let out = ctl(&["restart", "payments"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("payments restarted: running (restarts 1)")
    );
    let out = telebot(dir.path())
        .args(["ctl", "--url", &base, "--token", "tb_wrong", "subsystems"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    // a second admin token, listed, then revoked from the CLI while the instance runs: it stops
    // working there at once
    let out = telebot(dir.path())
        .args(["token", "create", "--role", "admin", "--name", "laptop"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let laptop = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let with_laptop = |args: &[&str]| {
        telebot(dir.path())
            .args(["ctl", "--url", &base, "--token", &laptop])
            .args(args)
            .output()
            .unwrap()
    };
    assert!(with_laptop(&["subsystems"]).status.success());
    let list = || {
        let out = telebot(dir.path())
            .args(["token", "list"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = list();
    let row = |name: &str, listed: &str| {
        listed
            .lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not in {listed}"))
            .to_owned()
    };
    assert!(row("laptop", &listed).contains("active"), "{listed}");
    assert!(
        !listed.contains(&laptop) && !listed.contains(&admin),
        "secrets are never listed"
    );
    let laptop_id = row("laptop", &listed)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let out = telebot(dir.path())
        .args(["token", "revoke", &laptop_id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = with_laptop(&["subsystems"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));
    let listed = list();
    assert!(row("laptop", &listed).contains("revoked"), "{listed}");
    assert!(row("ops", &listed).contains("active"), "{listed}");
    let again = telebot(dir.path())
        .args(["token", "revoke", &laptop_id])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already revoked"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // a bot update through the simulator, so its id shows up in the logs
    post_json(&addr, "/sim/api/users/55/messages", r#"{"text": "/start"}"#);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut saw_request_id = false;
    let mut saw_update_id = false;
    while std::time::Instant::now() < deadline && !(saw_request_id && saw_update_id) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let v: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
            let text = v.to_string();
            let target = v["target"].as_str().unwrap_or("");
            // logged by the supervisor while it restarts, not by the HTTP layer: the request id
            // travels with the message to the actor
            saw_request_id |= target.starts_with("telebot::supervision")
                && text.contains("request_id")
                && text.contains("/api/v1/admin/subsystems");
            // logged by the session actor the router handed the update to
            saw_update_id |= target == "telebot::actors::session" && text.contains("update_id");
            lines.push(v);
        }
    }
    assert!(
        saw_request_id,
        "an actor's log line carries the request id of the HTTP request it serves"
    );
    assert!(
        saw_update_id,
        "the session actor's log lines carry the update id"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// A minimal HTTP/1.1 POST, for tests that run without an async runtime.
fn post_json(addr: &str, path: &str, body: &str) -> u16 {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response[9..12].parse().unwrap()
}
