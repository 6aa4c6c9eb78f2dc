//! Load harness for dashboard logins (not a criterion bench: it measures a whole process).
//!
//! Starts the release `telebot` binary on the embedded default (SQLite in a temporary folder)
//! with one dashboard account, then sends 1,000 failed logins from 200 concurrent clients, five
//! times over, while a probe on a thread of its own calls `/healthz` every 2 ms, and reports
//! the process's resident memory (sampled every 20 ms, and the kernel's high-water mark) and the
//! probe's latency percentiles. Two scenarios, each on a fresh instance:
//! all clients from one address, and each client from its own loopback address (127.0.0.x) with
//! its own usernames, so that no throttle but the password-check pool limits the hashing.
//!
//! Run: `cargo bench --bench login_flood`

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_telebot");
const CLIENTS: usize = 200;
const PER_CLIENT: usize = 5;
/// Floods of 1,000 logins per scenario, one after the other on the same instance.
const ROUNDS: usize = 5;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| scenario | 401 (checked) | 429 locked | 429 busy | other | RSS before | RSS peak (sampled) | VmHWM | RSS after | /healthz p50 | p99 | max | probes | duration |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for spread in [false, true] {
        rt.block_on(run(spread));
    }
}

fn telebot(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .env("TELEBOT__LOG__LEVEL", "warn");
    for (k, _) in std::env::vars() {
        if k.starts_with("TELEBOT__") {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn start(dir: &std::path::Path) -> (Child, String) {
    let status = telebot(dir)
        .args(["account", "set", "--username", "admin", "--role", "admin"])
        .env("TELEBOT_PASSWORD", "a long and correct password")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "account set failed");
    let mut child = telebot(dir)
        .env("TELEBOT__HTTP__ADDR", "127.0.0.1:0")
        .env("TELEBOT__LOG__LEVEL", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = out.lines();
    let addr = loop {
        let line = lines.next().expect("start-up line").unwrap();
        if let Some(rest) = line.split("telebot is up: http://").nth(1) {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// (VmRSS, VmHWM) in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

async fn run(spread: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = start(dir.path());
    let pid = child.id();
    let base = format!("http://{addr}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_before, _) = memory(pid);

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(memory(pid).0);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    // the probe runs on a thread and runtime of its own, so the flood's client tasks do not
    // delay it and what it measures is the service
    let probe = {
        let done = done.clone();
        let url = format!("{base}/healthz");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let c = reqwest::Client::new();
                let mut latencies = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = c
                        .get(&url)
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200);
                    latencies.push(if ok {
                        t.elapsed()
                    } else {
                        Duration::from_secs(5)
                    });
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                latencies
            })
        })
    };

    let started = Instant::now();
    let mut counts = std::collections::BTreeMap::new();
    for round in 0..ROUNDS {
        for s in flood(&base, spread, round).await {
            *counts.entry(s).or_insert(0u32) += 1;
        }
    }
    let duration = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    done.store(true, Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    let mut latencies = probe.join().unwrap();
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i]
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_after, hwm) = memory(pid);
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {} | {:.2} s |",
        if spread {
            "200 addresses, own names, 5 x 1,000"
        } else {
            "one address, one name, 5 x 1,000"
        },
        counts.get("401").unwrap_or(&0),
        counts.get("locked").unwrap_or(&0),
        counts.get("busy").unwrap_or(&0),
        counts.get("other").unwrap_or(&0),
        mib(rss_before),
        mib(peak),
        mib(hwm),
        mib(rss_after),
        pct(0.5).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        latencies.last().unwrap().as_secs_f64() * 1000.0,
        latencies.len(),
        duration.as_secs_f64(),
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
}

/// One flood: `CLIENTS` concurrent clients, `PER_CLIENT` failed logins each; the outcomes.
async fn flood(base: &str, spread: bool, round: usize) -> Vec<&'static str> {
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let local: IpAddr = if spread {
            IpAddr::from([127, 0, (2 + i / 250) as u8, (2 + i % 250) as u8])
        } else {
            IpAddr::from([127, 0, 0, 1])
        };
        let c = reqwest::Client::builder()
            .local_address(local)
            .build()
            .unwrap();
        let url = format!("{base}/admin/api/login");
        clients.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for j in 0..PER_CLIENT {
                let name = if spread {
                    format!("user{round}x{i}x{j}")
                } else {
                    "admin".to_owned()
                };
                let body =
                    serde_json::json!({"username": name, "password": format!("guess {i} {j}")});
                let outcome = match c.post(&url).json(&body).send().await {
                    Ok(r) => {
                        let code = r.status().as_u16();
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        match (code, body["error"]["code"].as_str()) {
                            (401, _) => "401",
                            (429, Some("locked")) => "locked",
                            (429, Some("busy")) => "busy",
                            _ => "other",
                        }
                    }
                    Err(_) => "other",
                };
                outcomes.push(outcome);
            }
            outcomes
        }));
    }
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    all
}
