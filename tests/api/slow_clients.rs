//! Clients that hold connections without finishing a request ("slowloris"): headers that
//! never end, a body that trickles, and more connections than Till serves at once.

use std::time::{Duration, Instant};

use till::Workers;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::both;
use crate::helpers::{Backend, TestApp, API_KEY};

/// The read timeout these tests give Till (the default is 10 s).
const READ_TIMEOUT_MS: u64 = 300;

async fn app(b: Backend, max_connections: usize) -> TestApp {
    TestApp::spawn_with(b, Workers::Manual, |cfg| {
        cfg.read_timeout_ms = READ_TIMEOUT_MS;
        cfg.max_connections = max_connections;
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Everything the server sends until it closes the connection, or `None` if it is still
/// open after `wait`.
async fn until_closed(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(wait, stream.read_to_end(&mut got)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&got).into_owned()),
        Err(_) => None,
    }
}

both!(
    headers_that_never_end_are_cut_off,
    a_trickled_body_is_answered_408,
    connections_past_the_cap_wait_for_a_slot,
);

async fn headers_that_never_end_are_cut_off(b: Backend) {
    let app = app(b, 1024).await;
    let mut idle = Vec::new();
    for i in 0..60 {
        let mut stream = connect(&app).await;
        // Some send half a request line, some a few headers, some nothing at all.
        let partial = match i % 3 {
            0 => "POST /v1/ord".to_string(),
            1 => format!(
                "POST /v1/orders HTTP/1.1\r\nHost: till\r\nAuthorization: Bearer {API_KEY}\r\n"
            ),
            _ => String::new(),
        };
        stream.write_all(partial.as_bytes()).await.unwrap();
        idle.push(stream);
    }
    let started = Instant::now();
    for stream in &mut idle {
        let closed = until_closed(stream, Duration::from_secs(5)).await;
        assert!(
            closed.is_some(),
            "a half-open connection is still open after 5 s"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // Till still serves everyone else.
    let (status, _) = app
        .send(app.request(reqwest::Method::GET, "/healthz"))
        .await;
    assert_eq!(status, 200);
    app.finish().await;
}

async fn a_trickled_body_is_answered_408(b: Backend) {
    let app = app(b, 1024).await;
    let mut stream = connect(&app).await;
    let head = format!(
        "POST /v1/orders HTTP/1.1\r\nHost: till\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"items\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("the connection is answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    // Nothing was created.
    assert!(app
        .metrics_text()
        .await
        .contains("till_checkouts_total{outcome=\"created\"} 0"));
    app.finish().await;
}

async fn connections_past_the_cap_wait_for_a_slot(b: Backend) {
    let app = app(b, 4).await;
    let mut holders = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&app).await;
        stream.write_all(b"GET /heal").await.unwrap();
        holders.push(stream);
    }
    // Give the server a moment to take all four slots.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let (status, _) = app
        .send(app.request(reqwest::Method::GET, "/healthz"))
        .await;
    let waited = started.elapsed();
    assert_eq!(status, 200);
    // Served only once the slow connections' time ran out and freed a slot.
    assert!(
        waited >= Duration::from_millis(READ_TIMEOUT_MS / 2),
        "served after {waited:?} with every slot taken"
    );
    app.finish().await;
}
