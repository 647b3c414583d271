//! Merchant webhooks against real HTTP receivers started by the tests: every delivery's
//! signature checked with the secret from the 201 answer and its body against `GET
//! /v1/events`, retries after 500s and timeouts, a slow endpoint that does not delay a
//! healthy one, the deliveries log, redelivery, deletion and bad input.
//!
//! Over 400 lines: the receiver the tests run and the seven tests that drive it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use till::Workers;

use crate::both;
use crate::helpers::{assert_error, Backend, TestApp};

both!(
    signed_deliveries_carry_the_events_and_retry_until_answered,
    a_slow_endpoint_times_out_without_delaying_another,
    a_delivery_is_given_up_after_the_retry_window,
    endpoints_are_checked_listed_and_deleted,
    redelivery_sends_an_event_again,
    the_secret_is_shown_once_and_replayed_under_the_same_key,
    a_leased_delivery_is_sent_by_one_sender_only
);

/// One request a receiver got.
#[derive(Clone)]
struct Received {
    event_id: String,
    signature: String,
    content_type: String,
    body: String,
    at: Instant,
}

/// How a receiver answers, changed as a test goes.
#[derive(Default)]
struct Behaviour {
    /// Answer 500 to this many requests first.
    fail_first: AtomicUsize,
    /// Wait this long before answering.
    delay_ms: AtomicU64,
    /// Answer 500 to everything.
    always_fail: std::sync::atomic::AtomicBool,
}

#[derive(Clone, Default)]
struct Shared {
    got: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Behaviour>,
}

/// A merchant's webhook receiver on 127.0.0.1, recording every request as it arrives.
struct Receiver {
    url: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let shared = Shared::default();
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url,
            shared,
            server,
        }
    }

    fn got(&self) -> Vec<Received> {
        self.shared.got.lock().unwrap().clone()
    }

    fn behave(&self) -> &Behaviour {
        &self.shared.behaviour
    }

    /// Waits (up to `within`) until this receiver has `n` requests.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        while self.got().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.got()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    shared.got.lock().unwrap().push(Received {
        event_id: header("till-event-id"),
        signature: header("till-signature"),
        content_type: header("content-type"),
        body: String::from_utf8(body.to_vec()).unwrap(),
        at: Instant::now(),
    });
    let b = &shared.behaviour;
    let delay = b.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let failing = b
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing || b.always_fail.load(Ordering::SeqCst) {
        AxumStatus::INTERNAL_SERVER_ERROR
    } else {
        AxumStatus::OK
    }
}

/// Checks `Till-Signature` as a merchant would: `t=<secs>,v1=<hex HMAC-SHA256(secret,
/// "{t}.{raw body}")>`, computed here independently of Till.
fn assert_signed(got: &Received, secret: &str) {
    let (t, v1) = got
        .signature
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("malformed signature {:?}", got.signature));
    let t: i64 = t.parse().unwrap();
    assert!(
        (t - till::clock::system_now_ms() / 1000).abs() < 3 * 3600,
        "t={t}"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", got.body).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "signature of {}", got.body);
    assert_eq!(got.content_type, "application/json");
    let body: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(body["id"], got.event_id.as_str());
}

/// Registers an endpoint; returns (id, secret).
async fn register(app: &TestApp, url: &str, events: Value) -> (String, String) {
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/webhook_endpoints",
            Some(json!({"url": url, "events": events})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["url"], url);
    assert_eq!(body["events"], events);
    let id = body["id"].as_str().unwrap().to_string();
    let secret = body["secret"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("we_") && secret.starts_with("whsec_"),
        "{body}"
    );
    (id, secret)
}

/// Every event as `GET /v1/events` lists it.
async fn events(app: &TestApp) -> Vec<Value> {
    let (status, page) = app.call(Method::GET, "/v1/events?limit=1000", None).await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().unwrap().clone()
}

async fn deliveries(app: &TestApp, endpoint: &str) -> Vec<Value> {
    let path = format!("/v1/webhook_endpoints/{endpoint}/deliveries");
    let (status, body) = app.call(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().unwrap().clone()
}

/// Drives the relay and the sender (one delivery per endpoint per pass), moving the clock
/// past any retry, until `done` holds.
async fn drive_until(app: &TestApp, mut done: impl FnMut() -> bool) {
    for _ in 0..40 {
        till::relay::run_once(app.state()).await.unwrap();
        if done() {
            return;
        }
        app.clock.advance_ms(60_000);
    }
    panic!("deliveries never arrived");
}

/// Short timings for the tests: a retry after at most 2 s of (test clock) time, capped at
/// 60 s, a request timeout of `timeout_ms` real time.
fn quick(cfg: &mut till::Config, timeout_ms: u64) {
    cfg.webhook_retry_base_ms = 1_000;
    cfg.webhook_retry_cap_ms = 60_000;
    cfg.webhook_timeout_ms = timeout_ms;
}

fn pending(app_metrics: &str, state: &str) -> i64 {
    let line = format!("till_webhook_deliveries{{state=\"{state}\"}} ");
    app_metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {line} in {app_metrics}"))
        .parse()
        .unwrap()
}

async fn signed_deliveries_carry_the_events_and_retry_until_answered(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |c| quick(c, 5_000)).await;
    let all = Receiver::start().await;
    let confirmed = Receiver::start().await;
    all.behave().fail_first.store(2, Ordering::SeqCst);
    let (all_id, all_secret) = register(&app, &all.url, json!(["*"])).await;
    let (confirmed_id, confirmed_secret) =
        register(&app, &confirmed.url, json!(["order.confirmed"])).await;
    app.clock.advance_ms(1);

    app.stocked("TEE-1", 49_900, 10).await;
    let order = app.new_order("TEE-1", 1).await;
    assert_eq!(app.pay(&order, "card", "pm_card_visa").await.0, 201);
    let stream = events(&app).await;
    assert_eq!(stream.len(), 4, "{stream:?}");
    // Four events (the order created, its payment, its confirmation and its invoice), the
    // first two attempts answered 500: six requests to `all`.
    drive_until(&app, || all.got().len() == 6 && confirmed.got().len() == 1).await;

    for got in all.got() {
        assert_signed(&got, &all_secret);
    }
    let got = confirmed.got();
    assert_signed(&got[0], &confirmed_secret);
    // Only the type it subscribed to, the body exactly the event as GET showed it.
    let confirmed_event = stream.iter().find(|e| e["type"] == "order.confirmed");
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(Some(&body), confirmed_event);
    let arrived: Vec<Value> = all
        .got()
        .iter()
        .map(|g| serde_json::from_str(&g.body).unwrap())
        .collect();
    for event in &stream {
        assert!(arrived.contains(event), "{event} never arrived");
    }

    // Each delivery is on its order's timeline: four to `all`, one to `confirmed`.
    let (status, timeline) = app
        .call(Method::GET, &format!("/v1/orders/{order}/timeline"), None)
        .await;
    assert_eq!(status, 200, "{timeline}");
    let delivered: Vec<&Value> = timeline
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["kind"] == "webhook.delivered")
        .collect();
    assert_eq!(delivered.len(), 5, "{timeline}");
    assert!(delivered
        .iter()
        .all(|step| step["detail"]["status_code"] == 200));
    assert_eq!(
        delivered
            .iter()
            .filter(|step| step["detail"]["endpoint_id"] == confirmed_id.as_str())
            .count(),
        1
    );

    // The log: one delivery per event, six attempts in all, the two answered 500 retried.
    let log = deliveries(&app, &all_id).await;
    assert_eq!(log.len(), 4);
    assert!(log.iter().all(|d| d["status"] == "delivered"), "{log:?}");
    assert!(log.iter().all(|d| d["next_retry_at"].is_null()), "{log:?}");
    assert!(log
        .iter()
        .all(|d| d["status_code"] == 200 && d["error"].is_null()));
    let tries: Vec<&Value> = log
        .iter()
        .flat_map(|d| d["attempts"].as_array().unwrap())
        .collect();
    assert_eq!(tries.len(), 6, "{log:?}");
    let failed: Vec<&&Value> = tries.iter().filter(|a| a["status_code"] == 500).collect();
    assert_eq!(failed.len(), 2, "{log:?}");
    assert!(failed.iter().all(|a| a["error"] == "answered 500"));
    let retried = log
        .iter()
        .find(|d| d["attempt"].as_i64() > Some(1))
        .unwrap();
    let first_try = &retried["attempts"][0];
    assert_eq!(
        (
            first_try["attempt"].as_i64(),
            first_try["status_code"].as_i64()
        ),
        (Some(1), Some(500))
    );
    assert_eq!(deliveries(&app, &confirmed_id).await.len(), 1);
    let metrics = app.metrics_text().await;
    assert_eq!(pending(&metrics, "pending"), 0);
    assert_eq!(pending(&metrics, "failed"), 0);
    app.finish().await;
}

async fn a_slow_endpoint_times_out_without_delaying_another(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Run, |c| {
        c.webhook_timeout_ms = 2_000;
        c.webhook_retry_base_ms = 20;
        c.webhook_retry_cap_ms = 100;
    })
    .await;
    let slow = Receiver::start().await;
    let healthy = Receiver::start().await;
    slow.behave().delay_ms.store(4_000, Ordering::SeqCst);
    let (slow_id, _) = register(&app, &slow.url, json!(["*"])).await;
    let (healthy_id, healthy_secret) = register(&app, &healthy.url, json!(["*"])).await;
    app.clock.advance_ms(1);

    app.stocked("TEE-1", 1_000, 10).await;
    let started = Instant::now();
    for _ in 0..3 {
        app.new_order("TEE-1", 1).await;
    }
    // The healthy endpoint gets all three while the slow one still waits on its first.
    let got = healthy.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 3);
    assert!(
        got[2].at - started < Duration::from_millis(1_800),
        "the healthy endpoint waited {:?}",
        got[2].at - started
    );
    assert_eq!(
        slow.got().len(),
        1,
        "one request in flight to the slow endpoint"
    );
    for g in &got {
        assert_signed(g, &healthy_secret);
    }

    // The slow one's attempt times out and is retried; once it answers in time, all arrive.
    let deadline = Instant::now() + Duration::from_secs(10);
    let timed_out = loop {
        let log = deliveries(&app, &slow_id).await;
        let errors: Vec<Value> = log
            .iter()
            .flat_map(|d| d["attempts"].as_array().unwrap().clone())
            .filter(|a| a["status_code"].is_null())
            .collect();
        if let Some(first) = errors.first() {
            break first.clone();
        }
        assert!(Instant::now() < deadline, "no timeout recorded: {log:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(timed_out["error"], "no answer within 2000 ms");
    assert!(timed_out["duration_ms"].as_i64().unwrap() >= 2_000);
    slow.behave().delay_ms.store(0, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    while deliveries(&app, &slow_id)
        .await
        .iter()
        .any(|d| d["status"] != "delivered")
    {
        assert!(
            Instant::now() < deadline,
            "the slow endpoint never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let healthy_log = deliveries(&app, &healthy_id).await;
    assert!(
        healthy_log.iter().all(|d| d["attempt"] == 1),
        "{healthy_log:?}"
    );
    app.finish().await;
}

async fn a_delivery_is_given_up_after_the_retry_window(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |c| {
        quick(c, 5_000);
        c.webhook_retry_hours = 1;
    })
    .await;
    let down = Receiver::start().await;
    down.behave().always_fail.store(true, Ordering::SeqCst);
    let (id, _) = register(&app, &down.url, json!(["order.created"])).await;
    app.clock.advance_ms(1);
    app.stocked("TEE-1", 1_000, 10).await;
    app.new_order("TEE-1", 1).await;
    till::relay::run_once(app.state()).await.unwrap();
    let log = deliveries(&app, &id).await;
    assert_eq!(log[0]["status"], "pending", "{log:?}");
    assert!(log[0]["next_retry_at"].is_string());
    assert_eq!(pending(&app.metrics_text().await, "pending"), 1);
    // Past the hour: the next failure is the last.
    app.clock.advance_ms(2 * 3_600_000);
    till::relay::run_once(app.state()).await.unwrap();
    let log = deliveries(&app, &id).await;
    assert_eq!(log[0]["status"], "failed", "{log:?}");
    assert_eq!(log[0]["attempt"], 2);
    assert!(log[0]["next_retry_at"].is_null());
    let metrics = app.metrics_text().await;
    assert_eq!(pending(&metrics, "pending"), 0);
    assert_eq!(pending(&metrics, "failed"), 1);
    app.clock.advance_ms(2 * 3_600_000);
    till::relay::run_once(app.state()).await.unwrap();
    assert_eq!(down.got().len(), 2, "a failed delivery is not tried again");
    app.finish().await;
}

async fn endpoints_are_checked_listed_and_deleted(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |c| quick(c, 5_000)).await;
    let path = "/v1/webhook_endpoints";
    let long = format!("https://shop.example/{}", "a".repeat(2048));
    for body in [
        r#"{"url": "https://shop.example/hooks", "events": ["*"], "extra": 1}"#.to_string(),
        r#"{"url": "http://shop.example/hooks", "events": ["*"]}"#.to_string(),
        r#"{"url": "shop.example/hooks", "events": ["*"]}"#.to_string(),
        r#"{"url": "https://shop.example/hooks", "events": []}"#.to_string(),
        r#"{"url": "https://shop.example/hooks", "events": ["order.shipped"]}"#.to_string(),
        r#"{"url": "https://shop.example/hooks", "events": ["*", "order.created"]}"#.to_string(),
        r#"{"url": "https://shop.example/hooks", "events": null}"#.to_string(),
        r#"{"url": "https://shop.example/hooks"}"#.to_string(),
        r#"{"url": 7, "events": ["*"]}"#.to_string(),
        r#"["https://shop.example/hooks", ["*"]]"#.to_string(),
        format!(r#"{{"url": "{long}", "events": ["*"]}}"#),
        String::new(),
    ] {
        let got = app.send(app.raw_json(Method::POST, path, &body)).await;
        assert_error(&got, 400, "invalid_request");
    }
    let unauthorized = app.send(app.http.get(format!("{}{path}", app.url))).await;
    assert_error(&unauthorized, 401, "unauthorized");
    let (status, list) = app.call(Method::GET, path, None).await;
    assert_eq!((status.as_u16(), list), (200, json!({"data": []})));

    // An endpoint hears of what happens after it was registered, not before.
    app.stocked("TEE-1", 1_000, 10).await;
    app.new_order("TEE-1", 1).await;
    app.clock.advance_ms(1);
    let receiver = Receiver::start().await;
    receiver.behave().always_fail.store(true, Ordering::SeqCst);
    let (id, _) = register(&app, &receiver.url, json!(["order.created"])).await;
    app.clock.advance_ms(1);
    app.new_order("TEE-1", 1).await;
    till::relay::run_once(app.state()).await.unwrap();
    assert_eq!(receiver.got().len(), 1);
    assert_eq!(deliveries(&app, &id).await[0]["status"], "pending");

    // Up to 16 endpoints.
    for n in 1..16 {
        let url = format!("https://shop.example/{n}");
        register(&app, &url, json!(["order.expired"])).await;
    }
    let over = app
        .call(
            Method::POST,
            path,
            Some(json!({"url": "https://shop.example/17", "events": ["*"]})),
        )
        .await;
    assert_error(&over, 409, "too_many_webhook_endpoints");
    let (_, list) = app.call(Method::GET, path, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 16);

    // Deleted: gone from the list, its pending delivery dropped, nothing more sent to it.
    let gone = app
        .call(Method::DELETE, &format!("{path}/{id}"), None)
        .await;
    assert_eq!(
        gone,
        (reqwest::StatusCode::OK, json!({"id": id, "deleted": true}))
    );
    let again = app
        .call(Method::DELETE, &format!("{path}/{id}"), None)
        .await;
    assert_error(&again, 404, "not_found");
    let log = app
        .call(Method::GET, &format!("{path}/{id}/deliveries"), None)
        .await;
    assert_error(&log, 404, "not_found");
    let unknown = app
        .call(Method::DELETE, &format!("{path}/we_nope"), None)
        .await;
    assert_error(&unknown, 404, "not_found");
    let (_, list) = app.call(Method::GET, path, None).await;
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["id"] != id.as_str()));
    assert_eq!(pending(&app.metrics_text().await, "pending"), 0);
    app.new_order("TEE-1", 1).await;
    app.clock.advance_ms(3_600_000);
    till::relay::run_once(app.state()).await.unwrap();
    assert_eq!(receiver.got().len(), 1);
    app.finish().await;
}

async fn redelivery_sends_an_event_again(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |c| quick(c, 5_000)).await;
    let first = Receiver::start().await;
    let second = Receiver::start().await;
    let (first_id, first_secret) = register(&app, &first.url, json!(["order.created"])).await;
    let (second_id, _) = register(&app, &second.url, json!(["*"])).await;
    let (_, other_secret) =
        register(&app, "https://shop.example/x", json!(["order.expired"])).await;
    assert_ne!(first_secret, other_secret);
    app.clock.advance_ms(1);
    app.stocked("TEE-1", 1_000, 10).await;
    app.new_order("TEE-1", 1).await;
    drive_until(&app, || first.got().len() == 1 && second.got().len() == 1).await;
    let event = events(&app).await[0].clone();
    let event_id = event["id"].as_str().unwrap();
    let path = format!("/v1/events/{event_id}/redeliver");

    // No body: every endpoint subscribed to its type.
    let sent = app.send(app.request(Method::POST, &path)).await;
    assert_eq!(sent.0, 202, "{}", sent.1);
    let queued = sent.1["data"].as_array().unwrap();
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert!(queued
        .iter()
        .all(|d| d["status"] == "pending" && d["event"] == event_id));
    drive_until(&app, || first.got().len() == 2 && second.got().len() == 2).await;
    let again = &first.got()[1];
    assert_eq!(again.event_id, event_id);
    assert_signed(again, &first_secret);
    assert_eq!(serde_json::from_str::<Value>(&again.body).unwrap(), event);

    // One endpoint, under an idempotency key: sent once however often it is asked.
    let one = || {
        app.request(Method::POST, &path)
            .header("Idempotency-Key", "redeliver-1")
            .json(&json!({"endpoint": second_id}))
    };
    let (status, body) = app.send(one()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"][0]["endpoint"], second_id.as_str());
    assert_eq!(app.send(one()).await, (status, body));
    drive_until(&app, || second.got().len() == 3).await;
    till::relay::run_once(app.state()).await.unwrap();
    assert_eq!((first.got().len(), second.got().len()), (2, 3));
    assert_eq!(deliveries(&app, &first_id).await.len(), 2);

    let bad = |body: Value| app.call(Method::POST, &path, Some(body));
    assert_error(&bad(json!({"endpoint": "we_nope"})).await, 404, "not_found");
    assert_error(
        &bad(json!({"endpoint": null})).await,
        400,
        "invalid_request",
    );
    assert_error(&bad(json!({"other": 1})).await, 400, "invalid_request");
    let unknown = app
        .call(Method::POST, "/v1/events/evt_nope/redeliver", None)
        .await;
    assert_error(&unknown, 404, "not_found");
    app.finish().await;
}

async fn the_secret_is_shown_once_and_replayed_under_the_same_key(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    let create = || {
        app.request(Method::POST, "/v1/webhook_endpoints")
            .header("Idempotency-Key", "endpoint-1")
            .json(&json!({"url": "https://shop.example/hooks", "events": ["order.confirmed"]}))
    };
    let (status, created) = app.send(create()).await;
    assert_eq!(status, 201, "{created}");
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    // The same key answers the same endpoint and secret; nothing new is registered.
    assert_eq!(app.send(create()).await, (status, created.clone()));
    let (_, list) = app.call(Method::GET, "/v1/webhook_endpoints", None).await;
    let listed = list["data"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], created["id"]);
    assert!(listed[0].get("secret").is_none(), "{list}");
    assert!(!list.to_string().contains("whsec_"), "{list}");

    // Two requests under one new key at once: one endpoint.
    let twice = || {
        app.request(Method::POST, "/v1/webhook_endpoints")
            .header("Idempotency-Key", "endpoint-2")
            .json(&json!({"url": "https://shop.example/other", "events": ["*"]}))
    };
    let (one, two) = tokio::join!(app.send(twice()), app.send(twice()));
    let answered: Vec<u16> = [&one, &two].iter().map(|r| r.0.as_u16()).collect();
    assert!(answered.contains(&201), "{one:?} {two:?}");
    for other in [&one, &two].into_iter().filter(|r| r.0 != 201) {
        assert_error(other, 409, "idempotency_key_in_use");
    }
    if one.0 == two.0 {
        assert_eq!(one.1, two.1);
    }
    let (_, list) = app.call(Method::GET, "/v1/webhook_endpoints", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");
    app.finish().await;
}

async fn a_leased_delivery_is_sent_by_one_sender_only(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |c| quick(c, 5_000)).await;
    let receiver = Receiver::start().await;
    let (id, secret) = register(&app, &receiver.url, json!(["order.created"])).await;
    app.clock.advance_ms(1);
    app.stocked("TEE-1", 1_000, 10).await;
    app.new_order("TEE-1", 1).await;
    let mut sink = till::relay::Sink::Webhooks;
    assert_eq!(till::relay::pass(app.state(), &mut sink).await.unwrap(), 1);
    // A sender leased it and died: while its lease holds, no other sends it.
    let leased = till::notify::webhooks::send::lease(app.state(), 8)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    let (one, two) = tokio::join!(
        till::relay::run_once(app.state()),
        till::relay::run_once(app.state())
    );
    one.unwrap();
    two.unwrap();
    assert!(receiver.got().is_empty());
    // Past the lease (timeout and margin), two senders racing send it once.
    app.clock.advance_ms(5_000 + 30_000 + 1);
    let (one, two) = tokio::join!(
        till::relay::run_once(app.state()),
        till::relay::run_once(app.state())
    );
    one.unwrap();
    two.unwrap();
    let got = receiver.got();
    assert_eq!(got.len(), 1);
    assert_signed(&got[0], &secret);
    let log = deliveries(&app, &id).await;
    assert_eq!(
        (log[0]["status"].as_str(), log[0]["attempt"].as_i64()),
        (Some("delivered"), Some(1))
    );
    app.finish().await;
}
