//! Several instances on one database: the roles (`TILL_ROLE`), draining on shutdown, and
//! worker passes run by two instances at once doing each piece of work once. The
//! three-process run behind a load balancer is `tests/scale/run.sh`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use till::{Role, Running, Workers};

use crate::both;
use crate::helpers::{test_config, Backend, TestApp};

both!(
    roles_split_api_and_workers,
    shutdown_drains_and_answers_the_request_in_flight,
    sigterm_drains_a_real_process,
    two_sweepers_compensate_once,
    two_relays_hand_each_event_on_once,
);

/// A second Till on `app`'s database and clock (its own pool, its own simulator).
async fn second_instance(app: &TestApp, workers: Workers, role: Role) -> Running {
    let mut cfg = test_config(&app.db);
    cfg.role = role;
    till::start(&cfg, app.clock.clone(), workers)
        .await
        .expect("start a second till")
}

/// The state a second worker works with: another instance's on PostgreSQL; on SQLite (one
/// process per database file) the same instance's, its two passes then run side by side.
async fn second_worker(app: &TestApp, b: Backend) -> (till::AppState, Option<Running>) {
    match b {
        Backend::Postgres => {
            let other = second_instance(app, Workers::Manual, Role::Worker).await;
            (other.state.clone(), Some(other))
        }
        Backend::Sqlite => (app.state().clone(), None),
    }
}

async fn stop(other: Option<Running>) {
    if let Some(other) = other {
        other.state.db.pool.close().await;
        other.abort();
    }
}

async fn get(url: &str) -> (StatusCode, Value) {
    let resp = reqwest::get(url).await.expect("request sent");
    let status = resp.status();
    let text = resp.text().await.expect("body read");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn roles_split_api_and_workers(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Run, |cfg| cfg.role = Role::Api).await;
    app.stocked("TEE-1", 1000, 5).await;
    let id = app.new_order("TEE-1", 2).await;
    app.clock.advance_ms(16 * 60 * 1000);
    // Many worker ticks: an API instance runs no sweeper, so the hold outlives its TTL.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(app.order(&id).await["status"], "pending");

    let worker = second_instance(&app, Workers::Run, Role::Worker).await;
    let order = app.wait_for_status(&id, "expired").await;
    assert_eq!(order["status"], "expired");
    assert_eq!(app.stock("TEE-1").await, (5, 0));

    // A worker instance serves the service endpoints and nothing of the API.
    let url = worker.url();
    assert_eq!(get(&format!("{url}/healthz")).await.0, StatusCode::OK);
    let (status, ready) = get(&format!("{url}/readyz")).await;
    assert_eq!(
        (status, ready["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
    assert_eq!(get(&format!("{url}/metrics")).await.0, StatusCode::OK);
    for path in [
        "/v1/orders",
        &format!("/v1/orders/{id}"),
        "/v1/products/TEE-1",
        "/openapi.json",
        "/shop",
    ] {
        let (status, body) = get(&format!("{url}{path}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
    }
    stop(Some(worker)).await;
    app.finish().await;
}

async fn shutdown_drains_and_answers_the_request_in_flight(b: Backend) {
    let mut app = TestApp::spawn_with(b, Workers::Run, |cfg| {
        cfg.sim_faults = Some("latency_ms=1200".into());
    })
    .await;
    app.stocked("TEE-1", 1000, 5).await;
    let id = app.new_order("TEE-1", 1).await;
    let paying = {
        let req = app
            .request(Method::POST, &format!("/v1/orders/{id}/payments"))
            .header("Idempotency-Key", "drain-1")
            .json(&serde_json::json!({"method": "card", "source": "pm_card_visa"}));
        tokio::spawn(async move { req.send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = app.url.clone();
    let running = app.take_running();
    let stopping =
        tokio::spawn(running.shutdown(Duration::from_millis(500), Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, ready) = get(&format!("{url}/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["status"], "draining");

    let paid = paying
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(paid.status(), StatusCode::CREATED);
    let payment: Value = paid.json().await.unwrap();
    assert_eq!(payment["status"], "succeeded", "{payment}");
    assert!(stopping.await.unwrap(), "drained within the drain time");
    assert!(
        reqwest::get(format!("{url}/healthz")).await.is_err(),
        "a stopped instance accepts no connection"
    );

    app.restart(Workers::Manual, |_| {}).await;
    assert_eq!(app.order(&id).await["status"], "confirmed");
    app.finish().await;
}

/// `till serve` as a process: SIGTERM while a slow payment is in flight answers it, says
/// `draining` meanwhile, and exits 0.
async fn sigterm_drains_a_real_process(b: Backend) {
    let mut app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 1000, 5).await;
    let id = app.new_order("TEE-1", 1).await;
    app.stop().await;
    let log = std::env::temp_dir().join(format!("till-drain-{}.log", till::ids::random_token(6)));
    let env = [
        ("TILL_SIM_FAULTS", "latency_ms=1500"),
        ("TILL_DRAIN_NOTICE_MS", "500"),
        ("RUST_LOG", "warn,till=info"),
    ];
    let mut till = crate::crash::spawn_till(&app.db, "", &log, &env).await;
    let http = reqwest::Client::new();
    let paying = http
        .post(format!("{}/v1/orders/{id}/payments", till.url))
        .bearer_auth(crate::helpers::API_KEY)
        .header("Idempotency-Key", "drain-2")
        .json(&serde_json::json!({"method": "card", "source": "pm_card_visa"}))
        .send();
    let paying = tokio::spawn(paying);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &till.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (status, ready) = get(&format!("{}/readyz", till.url)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["status"], "draining");
    let paid = paying
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(paid.status(), StatusCode::CREATED);
    let exited = tokio::task::spawn_blocking(move || till.child.wait())
        .await
        .unwrap()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(exited.success(), "till exited {exited}: {text}");
    assert!(text.contains("drained; stopped"), "{text}");

    app.restart(Workers::Manual, |_| {}).await;
    assert_eq!(app.order(&id).await["status"], "confirmed");
    let _ = std::fs::remove_file(&log);
    app.finish().await;
}

/// How many rows of `sql` (a `SELECT COUNT(*) …`) there are.
async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut conn = app.state().db.pool.acquire().await.unwrap();
    sqlx::query_scalar(sql).fetch_one(&mut *conn).await.unwrap()
}

async fn two_sweepers_compensate_once(b: Backend) {
    const ORDERS: usize = 12;
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 1000, 100).await;
    let mut ids = Vec::new();
    for i in 0..ORDERS {
        let id = app.new_order("TEE-1", 1).await;
        // Half of them with an attempt in flight (a 3-D Secure challenge nobody finishes),
        // so expiry also decides and carries out a void.
        if i % 2 == 0 {
            let (status, body) = app.pay(&id, "card", "pm_card_authenticationRequired").await;
            assert!(status.is_success(), "{body}");
        }
        ids.push(id);
    }
    let ledger_before = count(&app, "SELECT COUNT(*) FROM stock_ledger").await;
    let (other, instance) = second_worker(&app, b).await;
    app.clock.advance_ms(16 * 60 * 1000);

    let (one, two) = tokio::join!(
        till::checkout::workers::expire_due(app.state()),
        till::checkout::workers::expire_due(&other),
    );
    one.unwrap();
    two.unwrap();
    for id in &ids {
        assert_eq!(app.order(id).await["status"], "expired");
    }
    // Each compensation's effects, once each: each order's lock released once (`locked` back
    // to 0, never below; a release writes no ledger row, on hand is untouched), one timeline
    // step of each kind, one event; each attempt in flight voided once.
    let sql = "SELECT COUNT(*) FROM locks WHERE state = 'released'";
    assert_eq!(count(&app, sql).await, ORDERS as i64);
    let locked = count(
        &app,
        "SELECT CAST(COALESCE(SUM(locked), 0) AS BIGINT) FROM inventory",
    )
    .await;
    assert_eq!(locked, 0);
    let ledger = count(&app, "SELECT COUNT(*) FROM stock_ledger").await;
    assert_eq!(ledger, ledger_before);
    for step in ["order.expired", "stock.released"] {
        let sql = format!("SELECT COUNT(*) FROM timeline WHERE kind = '{step}'");
        assert_eq!(count(&app, &sql).await, ORDERS as i64, "{step}");
    }
    let events = count(
        &app,
        "SELECT COUNT(*) FROM events WHERE type = 'order.expired'",
    )
    .await;
    assert_eq!(events, ORDERS as i64);
    let voids = count(
        &app,
        "SELECT COUNT(*) FROM timeline WHERE kind = 'payment.voided'",
    )
    .await;
    assert_eq!(voids, ORDERS.div_ceil(2) as i64);
    assert_eq!(app.stock("TEE-1").await, (100, 0));

    // Another round on both finds nothing to do.
    let (one, two) = tokio::join!(
        till::checkout::workers::run_once(app.state()),
        till::checkout::workers::run_once(&other),
    );
    assert_eq!((one.unwrap(), two.unwrap()), (0, 0));
    stop(instance).await;
    app.finish().await;
}

async fn two_relays_hand_each_event_on_once(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 1000, 100).await;
    for _ in 0..40 {
        app.new_order("TEE-1", 1).await;
    }
    let events = count(&app, "SELECT COUNT(*) FROM events").await;
    assert!(events >= 40);
    let (other, instance) = second_worker(&app, b).await;
    let relay = |state: till::AppState| async move {
        let mut sink = till::relay::Sink::Log;
        let mut taken = 0;
        for _ in 0..20 {
            taken += till::relay::pass(&state, &mut sink).await.unwrap();
            tokio::task::yield_now().await;
        }
        taken
    };
    let (one, two) = tokio::join!(
        tokio::spawn(relay(app.state().clone())),
        tokio::spawn(relay(other.clone())),
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    // Every event handed on by exactly one of the two.
    assert_eq!(one + two, events as usize, "{one} + {two}");
    let delivered = |state: &till::AppState| {
        state
            .metrics
            .events_delivered
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let delivered = match &instance {
        Some(_) => delivered(app.state()) + delivered(&other),
        None => delivered(app.state()),
    };
    assert_eq!(delivered, events as u64);
    stop(instance).await;
    app.finish().await;
}
