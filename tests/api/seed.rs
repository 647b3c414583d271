//! The seed design's three endpoints, as the original design wrote them (docs/api.md).

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::helpers::{assert_error, Backend, TestApp};

both!(
    seed_flow_lock_initiate_confirm,
    seed_lock_is_idempotent_by_order_id,
    seed_initiate_checks_the_amount,
    seed_confirm_refuses_ended_orders
);

async fn lock(app: &TestApp, id: &str, qty: i64) -> (reqwest::StatusCode, serde_json::Value) {
    app.call(
        Method::POST,
        "/inventory/lock",
        Some(json!({"order_id": id, "items": [{"sku": "SKU123", "qty": qty}]})),
    )
    .await
}

async fn initiate(
    app: &TestApp,
    id: &str,
    amount: serde_json::Value,
    key: &str,
) -> (reqwest::StatusCode, serde_json::Value) {
    app.call(Method::POST, "/payment/initiate", Some(json!({"orderId": id, "amount": amount, "payment_method": "card", "idempotency_key": key}))).await
}

async fn seed_flow_lock_initiate_confirm(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("SKU123", 49950, 10).await;
    let (status, order) = lock(&app, "O123", 2).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(
        (
            order["id"].as_str(),
            order["status"].as_str(),
            order["total"].as_i64()
        ),
        (Some("O123"), Some("pending"), Some(99900))
    );
    let (status, payment) = initiate(&app, "O123", json!(999.0), "UUID-1").await;
    assert_eq!(status, 201, "{payment}");
    assert_eq!(
        (payment["status"].as_str(), payment["amount"].as_i64()),
        (Some("succeeded"), Some(99900))
    );
    let (status, confirmed) = app
        .call(
            Method::POST,
            "/checkout/confirm",
            Some(json!({"order_id": "O123"})),
        )
        .await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["status"], "confirmed");
    let (status, again) = app
        .call(
            Method::POST,
            "/checkout/confirm",
            Some(json!({"order_id": "O123"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), again["status"].as_str()),
        (200, Some("confirmed"))
    );
    // The same initiate key and body replays the payment; no second charge.
    let (status, replay) = initiate(&app, "O123", json!(999.0), "UUID-1").await;
    assert_eq!(
        (status.as_u16(), replay["id"].clone()),
        (201, payment["id"].clone())
    );
    assert_eq!(
        app.order("O123").await["payments"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(app.inventory("SKU123").await["on_hand"], 8);
    app.finish().await;
}

async fn seed_lock_is_idempotent_by_order_id(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("SKU123", 100, 10).await;
    assert_eq!(lock(&app, "O-1", 2).await.0, 201);
    let (status, again) = lock(&app, "O-1", 2).await;
    assert_eq!((status.as_u16(), again["id"].as_str()), (201, Some("O-1")));
    assert_eq!(app.inventory("SKU123").await["locked"], 2);
    let (status, body) = lock(&app, "O-1", 3).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(app.inventory("SKU123").await["locked"], 2);
    assert_error(&lock(&app, "bad id!", 1).await, 400, "invalid_request");
    assert_error(
        &lock(&app, &"x".repeat(65), 1).await,
        400,
        "invalid_request",
    );
    app.finish().await;
}

async fn seed_initiate_checks_the_amount(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("SKU123", 49950, 10).await;
    assert_eq!(lock(&app, "O9", 2).await.0, 201);
    assert_error(
        &initiate(&app, "O9", json!(998.0), "k1").await,
        409,
        "amount_mismatch",
    );
    assert_error(
        &initiate(&app, "O9", json!(999.001), "k2").await,
        400,
        "invalid_request",
    );
    assert_error(
        &initiate(&app, "O9", json!("999.00"), "k3").await,
        400,
        "invalid_request",
    );
    assert_error(
        &initiate(&app, "O9", json!(-999.0), "k4").await,
        400,
        "invalid_request",
    );
    assert_eq!(
        app.order("O9").await["payments"].as_array().unwrap().len(),
        0
    );
    let (status, payment) = app.call(Method::POST, "/payment/initiate", Some(json!({"orderId": "O9", "amount": 999, "payment_method": "upi", "idempotency_key": "k5"}))).await;
    assert_eq!(status, 201, "{payment}");
    assert_eq!(payment["method"], "upi");
    app.wait_for_status("O9", "confirmed").await;
    app.finish().await;
}

async fn seed_confirm_refuses_ended_orders(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("SKU123", 100, 10).await;
    assert_eq!(lock(&app, "C1", 1).await.0, 201);
    assert_error(
        &app.call(
            Method::POST,
            "/checkout/confirm",
            Some(json!({"order_id": "C1"})),
        )
        .await,
        409,
        "order_not_payable",
    );
    assert_eq!(
        app.call(Method::POST, "/v1/orders/C1/cancel", None).await.0,
        200
    );
    assert_error(
        &app.call(
            Method::POST,
            "/checkout/confirm",
            Some(json!({"order_id": "C1"})),
        )
        .await,
        409,
        "order_not_payable",
    );
    assert_error(
        &app.call(
            Method::POST,
            "/checkout/confirm",
            Some(json!({"order_id": "nope"})),
        )
        .await,
        404,
        "not_found",
    );
    app.finish().await;
}

both!(seed_calls_honour_the_idempotency_header);

async fn seed_calls_honour_the_idempotency_header(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("SKU123", 100, 10).await;
    assert_eq!(lock(&app, "H1", 1).await.0, 201);
    assert_eq!(lock(&app, "H2", 1).await.0, 201);
    let confirm = |id: &str| {
        app.request(Method::POST, "/checkout/confirm")
            .header("Idempotency-Key", "confirm-1")
            .json(&json!({"order_id": id}))
    };
    assert_error(&app.send(confirm("H1")).await, 409, "order_not_payable");
    assert_error(
        &app.send(confirm("H2")).await,
        422,
        "idempotency_key_reused",
    );
    // A header key on /payment/initiate takes precedence over the body's.
    let initiate = |body_key: &str| {
        app.request(Method::POST, "/payment/initiate")
            .header("Idempotency-Key", "initiate-1")
            .json(&json!({"orderId": "H1", "amount": 1, "payment_method": "card", "idempotency_key": body_key}))
    };
    let first = app.send(initiate("a")).await;
    assert_eq!(first.0, 201, "{}", first.1);
    assert_error(
        &app.send(initiate("b")).await,
        422,
        "idempotency_key_reused",
    );
    assert_eq!(
        app.order("H1").await["payments"].as_array().unwrap().len(),
        1
    );
    app.finish().await;
}
