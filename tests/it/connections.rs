//! Connections cannot take the service down: idle and slow-header sockets are closed by the
//! server, and at the connection limit `/healthz` still answers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::{TestDb, start_app, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (EOF or reset); what was read.
async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// One request on a new connection: status and body.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let raw = tokio::time::timeout(Duration::from_secs(10), until_closed(&mut s))
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code = text.get(9..12)?.parse().ok()?;
    Some((code, text))
}

#[tokio::test]
async fn idle_and_slow_header_connections_are_closed_by_the_server() {
    let db = TestDb::sqlite().await;
    let app = start_app(
        &db.url,
        &[
            ("TELEBOT__HTTP__HEADER_READ_TIMEOUT", "1s"),
            ("TELEBOT__HTTP__IDLE_TIMEOUT", "2s"),
        ],
    )
    .await;
    let addr = app.http_addr;
    let started = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // headers that never end: a byte every 200 ms
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    let drip = tokio::spawn(async move {
        let mut closed = 0;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            closed = 0;
            for s in &mut slow {
                if s.write_all(b"X").await.is_err() {
                    closed += 1;
                }
            }
            if closed == slow.len() {
                break;
            }
        }
        (closed, slow)
    });
    // kept alive after one answered request
    let mut kept = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        kept.push(s);
    }
    for s in idle.iter_mut().chain(kept.iter_mut()) {
        let rest = tokio::time::timeout(Duration::from_secs(20), until_closed(s))
            .await
            .expect("the server closes an idle connection");
        assert!(
            rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
            "{rest:?}"
        );
    }
    let (closed, mut slow) = drip.await.unwrap();
    for s in &mut slow {
        tokio::time::timeout(Duration::from_secs(20), until_closed(s))
            .await
            .expect("the server closes a slow-header connection");
    }
    assert_eq!(closed, 20, "every slow-header connection was cut off");
    eprintln!("all 45 closed after {:?}", started.elapsed());
    assert_eq!(get(addr, "/healthz").await.map(|r| r.0), Some(200));
    app.shutdown().await;
}

/// 1,100 idle loopback connections, over the default limit of 1,024: /healthz answers every
/// time, other routes answer again once the crowd is gone, and the limit is counted.
#[tokio::test]
async fn at_the_connection_limit_healthz_still_answers() {
    telebot::telemetry::metrics_handle();
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[("TELEBOT__HTTP__IDLE_TIMEOUT", "5m")]).await;
    let addr = app.http_addr;
    let mut crowd = Vec::new();
    for _ in 0..1_100 {
        crowd.push(TcpStream::connect(addr).await.unwrap());
    }
    for i in 0..10 {
        let answer = get(addr, "/healthz").await;
        assert_eq!(
            answer.as_ref().map(|r| r.0),
            Some(200),
            "probe {i}: {answer:?}"
        );
    }
    drop(crowd);
    wait_for(
        "the API to answer again",
        Duration::from_secs(15),
        || async {
            get(addr, "/api/v1/products")
                .await
                .filter(|(code, _)| *code == 401)
        },
    )
    .await;
    let (_, metrics) = get(addr, "/metrics").await.unwrap();
    let over: f64 = metrics
        .lines()
        .find(|l| l.starts_with("http_connections_over_limit_total "))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        over >= 76.0,
        "connections past the limit are counted: {over}"
    );
    app.shutdown().await;
}

/// When every connection is busy answering, a new one is served in overflow mode: /healthz
/// answers, everything else 503 with Retry-After.
#[tokio::test]
async fn with_every_connection_busy_only_healthz_is_answered() {
    let db = TestDb::sqlite().await;
    let app = start_app(&db.url, &[("TELEBOT__HTTP__MAX_CONNECTIONS", "3")]).await;
    let addr = app.http_addr;
    // the bot's intake long-polls the simulator: keep every other slot busy the same way
    let mut busy = Vec::new();
    let body = r#"{"timeout":20}"#;
    let poll = format!(
        "POST /sim/bot0:simulator/getUpdates HTTP/1.1\r\nHost: t\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(poll.as_bytes()).await.unwrap();
        busy.push(s);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, text) = get(addr, "/api/v1/products").await.unwrap();
    assert_eq!(code, 503, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text}"
    );
    assert_eq!(get(addr, "/healthz").await.map(|r| r.0), Some(200));
    drop(busy);
    app.shutdown().await;
}
