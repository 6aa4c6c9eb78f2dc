//! The service as a whole: the binary starts on the embedded default, answers /healthz, /readyz
//! and /metrics, stops cleanly on SIGTERM, and refuses bad configuration with exit code 2.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_telebot");

fn telebot(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .env("TELEBOT__LOG__FORMAT", "json");
    for (k, _) in std::env::vars() {
        if k.starts_with("TELEBOT__") && k != "TELEBOT__LOG__FORMAT" {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn an_invalid_value_stops_start_up_with_exit_code_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, key) in [
        (
            "TELEBOT__PAYMENTS__AMOUNT_STEP",
            "0.0000001",
            "payments.amount_step",
        ),
        ("TELEBOT__HTTP__ADDR", "not-an-address", "http.addr"),
        ("TELEBOT__PAYMENTS__MAX_SLOTS", "-1", "payments.max_slots"),
        ("TELEBOT__DATABASE__URLL", "x", "database.urll"),
        ("TELEBOT__LOG__LEVEL", "loud", "log.level"),
        (
            "TELEBOT__TRON__TRONGRID_URL",
            "ftp://user:SECRET@host/x",
            "tron.trongrid_url",
        ),
    ] {
        let out = telebot(dir.path())
            .env(var, value)
            .arg("check-config")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{var}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stderr.contains("SECRET"), "{var}: {stderr}");
    }
    let out = telebot(dir.path())
        .args(["--config", "missing.toml", "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn check_config_prints_where_things_run_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("custom.toml"),
        "[security]\nwebhook_secret = \"s3cr3t-value\"\n[database]\nurl = \"postgres://bot:pa55@db/telebot\"\n",
    )
    .unwrap();
    let out = telebot(dir.path())
        .args(["--config", "custom.toml", "check-config"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("PostgreSQL"), "{stdout}");
    assert!(
        !stdout.contains("pa55") && !stdout.contains("s3cr3t"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("warning"),
        "the demo's bot name is right for the demo: {stdout}"
    );

    // a real token with the demo's bot name: valid, but said
    let out = telebot(dir.path())
        .env("TELEBOT__TELEGRAM__TOKEN", "123456:ABCdef")
        .env("TELEBOT__TRON__SOURCE", "trongrid")
        .env(
            "TELEBOT__PAYMENTS__WALLETS",
            "TJmmqjb1DK9TTZbQXzRQ2AuA94z4gKAPFh",
        )
        .arg("check-config")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("warning: telegram.bot_username is still the demo's"),
        "{stdout}"
    );
    let out = telebot(dir.path())
        .env("TELEBOT__TELEGRAM__TOKEN", "123456:ABCdef")
        .env("TELEBOT__TELEGRAM__BOT_USERNAME", "my_shop_bot")
        .env("TELEBOT__TRON__SOURCE", "trongrid")
        .env(
            "TELEBOT__PAYMENTS__WALLETS",
            "TJmmqjb1DK9TTZbQXzRQ2AuA94z4gKAPFh",
        )
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("warning"));
}

#[test]
fn migrate_creates_the_sqlite_file_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = telebot(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/telebot.db").exists());
}

/// Starts `telebot` (serve, the default) in `dir`, returns the child and its HTTP address.
fn spawn_serving(dir: &Path) -> (std::process::Child, String, mpsc::Receiver<String>) {
    let mut child = telebot(dir)
        .env("TELEBOT__HTTP__ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let Ok(line) =
            rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no start-up line; saw: {seen:#?}");
        };
        if let Some(rest) = line.split("telebot is up: http://").nth(1) {
            let addr = rest.split('/').next().unwrap().to_owned();
            return (child, addr, rx);
        }
        seen.push(line);
    }
}

fn get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let code = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (code, body)
}

#[test]
fn serves_on_the_embedded_default_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, logs) = spawn_serving(dir.path());
    assert!(
        dir.path().join("data/telebot.db").exists(),
        "SQLite file under ./data/"
    );

    let (code, body) = get(&addr, "/healthz");
    assert_eq!(code, 200, "{body}");
    let (code, body) = get(&addr, "/readyz");
    assert_eq!(code, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_else(|_| {
        // chunked encoding: the JSON is on the second line
        serde_json::from_str(body.lines().nth(1).unwrap_or("")).unwrap()
    });
    assert_eq!(ready["status"], "ready");
    let paths: Vec<&str> = ready["subsystems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    for expected in ["bot", "notifier", "orders", "payments", "payments/matcher"] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
    let (code, metrics) = get(&addr, "/metrics");
    assert_eq!(code, 200);
    // a fresh instance exports every documented family, at zero for its known label values,
    // so rate() and absent() alerts work from the first scrape
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/OPERATIONS.md"))
        .unwrap();
    let families: Vec<&str> = docs
        .lines()
        .filter(|l| {
            l.contains("| counter |") || l.contains("| gauge |") || l.contains("| histogram |")
        })
        .filter_map(|l| l.split('`').nth(1))
        .collect();
    assert!(families.len() >= 20, "{families:?}");
    for family in &families {
        assert!(
            metrics.lines().any(|l| !l.starts_with('#')
                && (l.starts_with(&format!("{family} "))
                    || l.starts_with(&format!("{family}{{"))
                    || l.starts_with(&format!("{family}_count")))),
            "{family} has no series on a fresh instance"
        );
    }
    for series in [
        "bot_updates_total{kind=\"callback\"} 0",
        "scanner_errors_total{chain=\"tron\",kind=\"timeout\"} 0",
        "actor_restarts_total{subsystem=\"payments/matcher\"} 0",
        "actor_restarts_total{subsystem=\"bot/session\"} 0",
        "callbacks_total{outcome=\"given_up\"} 0",
        "rate_limit_errors_total 0",
        "orders_created_total 0",
    ] {
        assert!(metrics.contains(series), "{series} missing");
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = common_wait(&mut child, Duration::from_secs(30));
    assert_eq!(exit, Some(0), "graceful shutdown exits 0");
    let rest: Vec<String> = logs.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("stopped cleanly")),
        "{rest:#?}"
    );
}

/// SIGTERM sent while the service is still starting (right after its first start-up line) and
/// SIGTERM sent the moment it reports it is up both end in a graceful stop with exit code 0,
/// never in the default action of the signal (killed, exit status 143).
#[test]
fn sigterm_during_start_up_or_right_after_it_still_stops_cleanly() {
    for wait_for in ["database: SQLite at", "telebot is up"] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = telebot(dir.path())
            .env("TELEBOT__HTTP__ADDR", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut lines = stdout.lines().map_while(Result::ok);
        let seen = lines.by_ref().find(|l| l.contains(wait_for));
        assert!(seen.is_some(), "no {wait_for:?} line");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let rest: Vec<String> = lines.collect();
        let exit = common_wait(&mut child, Duration::from_secs(30));
        assert_eq!(exit, Some(0), "SIGTERM after {wait_for:?}: {rest:#?}");
        assert!(
            rest.iter().any(|l| l.contains("stopped cleanly")),
            "SIGTERM after {wait_for:?}: {rest:#?}"
        );
    }
}

/// Real wallets without a Telegram token run the bot against the built-in simulator, whose user
/// side has no login: the start-up log says so plainly.
#[test]
fn real_wallets_with_the_simulator_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = telebot(dir.path())
        .env("TELEBOT__HTTP__ADDR", "127.0.0.1:0")
        .env("TELEBOT__TRON__SOURCE", "trongrid")
        .env("TELEBOT__TRON__TRONGRID_URL", "http://127.0.0.1:9")
        .env("TELEBOT__PAYMENTS__WALLETS", crate::common::WALLET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let before_up: Vec<String> = stdout
        .lines()
        .map_while(Result::ok)
        .take_while(|l| !l.contains("telebot is up"))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    let warning = before_up
        .iter()
        .find(|l| l.contains("no telegram.token"))
        .unwrap_or_else(|| panic!("no warning in {before_up:#?}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains("/sim"), "{warning}");
}

fn common_wait(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The account and token commands as an operator types them: a password change keeps the
/// role, wrong input names the flag to fix and exits 2, `token list` lines up, and a failure is
/// said once, without colour codes in a pipe.
#[test]
fn the_cli_names_what_to_fix_and_keeps_what_it_was_not_asked_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], password: Option<&str>| {
        let mut cmd = telebot(dir.path());
        cmd.args(args).env_remove("TELEBOT_PASSWORD");
        if let Some(p) = password {
            cmd.env("TELEBOT_PASSWORD", p);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let set = ["account", "set", "--username", "boss"];
    let (code, _, err) = run(
        &[&set[..], &["--role", "admin"]].concat(),
        Some("first password"),
    );
    assert_eq!(code, Some(0), "{err}");
    // a new password without --role: still an admin
    let (code, _, err) = run(&set, Some("second password"));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("account boss (admin) saved"), "{err}");
    // a new account without --role is an operator
    let (_, _, err) = run(
        &["account", "set", "--username", "ops"],
        Some("a long password"),
    );
    assert!(err.contains("account ops (operator) saved"), "{err}");

    for (args, password, names) in [
        (&set[..], Some("short"), "the password (TELEBOT_PASSWORD"),
        (
            &["account", "set", "--username", "x y"][..],
            Some("a long password"),
            "--username: must be",
        ),
        (
            &["account", "set", "--username", "boss", "--role", "agent"][..],
            Some("a long password"),
            "--role: must be admin or operator",
        ),
        (
            &["token", "create", "--role", "agent", "--name", "a"][..],
            None,
            "pass --agent-id",
        ),
        (
            &["token", "create", "--role", "boss", "--name", "a"][..],
            None,
            "--role: unknown role \"boss\"",
        ),
        (
            &[
                "ctl",
                "--token",
                "t",
                "--url",
                "127.0.0.1:8080",
                "subsystems",
            ][..],
            None,
            "give the scheme too",
        ),
    ] {
        let (code, _, err) = run(args, password);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(names), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "said once: {err}");
        assert!(
            !err.contains('\u{1b}'),
            "no colour codes in a pipe: {err:?}"
        );
    }

    for name in ["first", "a much longer token name"] {
        let (code, _, err) = run(
            &["token", "create", "--role", "service", "--name", name],
            None,
        );
        assert_eq!(code, Some(0), "{err}");
    }
    let (_, out, _) = run(&["token", "list"], None);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let name_column = lines[0].find("NAME").unwrap();
    for line in &lines[1..] {
        assert!(
            line[name_column..].starts_with("first") || line[name_column..].starts_with("a much"),
            "columns line up:\n{out}"
        );
    }
}

/// A port already taken: the service says so once, in its log, and exits 1.
#[test]
fn a_taken_port_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = telebot(dir.path())
        .env("TELEBOT__HTTP__ADDR", &addr)
        .env("TELEBOT__LOG__FORMAT", "text")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(all.matches("Address already in use").count(), 1, "{all}");
    assert!(all.contains(&format!("cannot listen on {addr}")), "{all}");
    assert!(!all.contains('\u{1b}'), "no colour codes in a pipe");
}
