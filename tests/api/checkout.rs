//! Orders: creation, pricing from the catalog, holds, cancel and expiry.

use reqwest::Method;
use serde_json::json;
use till::Workers;

use crate::both;
use crate::helpers::{assert_error, Backend, TestApp};

both!(
    order_is_priced_from_the_catalog_and_locks_stock,
    out_of_stock_locks_and_writes_nothing,
    same_sku_twice_is_merged,
    cancel_releases_the_stock_and_is_repeatable,
    hold_expiry_releases_the_stock,
    client_secret_grants_one_order_only,
    refunds_partial_then_full,
);

async fn order_is_priced_from_the_catalog_and_locks_stock(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 49900, 100).await;
    let order = app.order_of("TEE-1", 2).await;
    assert_eq!(order["status"], "pending");
    assert!(order["id"].as_str().unwrap().starts_with("ord_"));
    assert!(order["client_secret"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}_secret_", order["id"].as_str().unwrap())));
    assert_eq!(order["currency"], "INR");
    assert_eq!(
        order["items"],
        json!([{"sku": "TEE-1", "qty": 2, "unit_amount": 49900, "amount": 99800}])
    );
    assert_eq!(
        (
            order["subtotal"].as_i64(),
            order["discount"].as_i64(),
            order["tax"].as_i64(),
            order["total"].as_i64()
        ),
        (Some(99800), Some(0), Some(0), Some(99800))
    );
    assert_eq!(order["payments"], json!([]));
    assert!(order["expires_at"].as_str().unwrap().ends_with('Z'));
    let inv = app.inventory("TEE-1").await;
    assert_eq!(
        (inv["locked"].as_i64(), inv["available"].as_i64()),
        (Some(2), Some(98))
    );
    let fetched = app.order(order["id"].as_str().unwrap()).await;
    assert_eq!(fetched["total"], 99800);
    app.finish().await;
}

async fn out_of_stock_locks_and_writes_nothing(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("A", 100, 5).await;
    app.stocked("B", 100, 1).await;
    let got = app
        .create_order(json!([{"sku": "A", "qty": 2}, {"sku": "B", "qty": 3}]))
        .await;
    assert_error(&got, 409, "out_of_stock");
    assert_eq!(got.1["error"]["skus"], json!(["B"]));
    for sku in ["A", "B"] {
        assert_eq!(
            app.inventory(sku).await["locked"],
            0,
            "{sku} stayed unlocked"
        );
    }
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&app.state().db.pool)
        .await
        .unwrap();
    assert_eq!(orders, 0);
    app.finish().await;
}

async fn same_sku_twice_is_merged(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 500, 10).await;
    let (status, order) = app
        .create_order(json!([{"sku": "TEE-1", "qty": 2}, {"sku": "TEE-1", "qty": 3}]))
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(
        order["items"],
        json!([{"sku": "TEE-1", "qty": 5, "unit_amount": 500, "amount": 2500}])
    );
    assert_eq!(app.inventory("TEE-1").await["locked"], 5);
    app.finish().await;
}

async fn cancel_releases_the_stock_and_is_repeatable(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 500, 10).await;
    let id = app.new_order("TEE-1", 4).await;
    let (status, order) = app
        .call(Method::POST, &format!("/v1/orders/{id}/cancel"), None)
        .await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["cancel_reason"], "customer");
    assert_eq!(app.inventory("TEE-1").await["locked"], 0);
    let (status, again) = app
        .call(Method::POST, &format!("/v1/orders/{id}/cancel"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["status"], "cancelled");
    assert_eq!(app.inventory("TEE-1").await["available"], 10);
    assert_error(
        &app.pay(&id, "card", "pm_card_visa").await,
        409,
        "order_not_payable",
    );
    app.finish().await;
}

async fn hold_expiry_releases_the_stock(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |cfg| cfg.hold_ttl_secs = 60).await;
    app.stocked("TEE-1", 500, 10).await;
    let id = app.new_order("TEE-1", 4).await;
    app.run_workers().await;
    assert_eq!(app.order(&id).await["status"], "pending");
    app.clock.advance_ms(61_000);
    app.run_workers().await;
    let order = app.order(&id).await;
    assert_eq!(order["status"], "expired");
    assert_eq!(order["cancel_reason"], "expired");
    assert_eq!(app.inventory("TEE-1").await["locked"], 0);
    assert_error(
        &app.pay(&id, "card", "pm_card_visa").await,
        409,
        "order_not_payable",
    );
    app.finish().await;
}

async fn client_secret_grants_one_order_only(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 500, 10).await;
    let mine = app.order_of("TEE-1", 1).await;
    let other = app.order_of("TEE-1", 1).await;
    let secret = mine["client_secret"].as_str().unwrap();
    let id = mine["id"].as_str().unwrap();
    let get = |path: String| {
        app.http
            .get(format!("{}{path}", app.url))
            .bearer_auth(secret)
    };
    let (status, body) = app.send(get(format!("/v1/orders/{id}"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("client_secret").is_none() || body["client_secret"].is_null());
    assert_error(
        &app.send(get(format!("/v1/orders/{}", other["id"].as_str().unwrap())))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &app.send(get("/v1/orders/ord_doesnotexist".into())).await,
        404,
        "not_found",
    );
    // Merchant calls are not open to a client secret.
    assert_error(
        &app.send(get("/v1/inventory/TEE-1".into())).await,
        401,
        "unauthorized",
    );
    // The customer pays with the secret.
    let pay = app
        .http
        .post(format!("{}/v1/orders/{id}/payments", app.url))
        .bearer_auth(secret)
        .header("Idempotency-Key", "k1")
        .json(&json!({"method": "card", "source": "pm_card_visa"}));
    let (status, payment) = app.send(pay).await;
    assert_eq!(status, 201, "{payment}");
    assert_eq!(payment["status"], "succeeded");
    // A wrong or missing credential is a 401.
    let bad = app
        .http
        .get(format!("{}/v1/orders/{id}", app.url))
        .bearer_auth(format!("{id}_secret_wrong"));
    assert_error(&app.send(bad).await, 401, "unauthorized");
    assert_error(
        &app.send(app.http.get(format!("{}/v1/orders/{id}", app.url)))
            .await,
        401,
        "unauthorized",
    );
    app.finish().await;
}

async fn refunds_partial_then_full(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 49900, 10).await;
    let id = app.new_order("TEE-1", 2).await;
    assert_eq!(
        app.pay(&id, "card", "pm_card_visa").await.1["status"],
        "succeeded"
    );
    let path = format!("/v1/orders/{id}/refunds");
    let (status, refund) = app
        .call(Method::POST, &path, Some(json!({"amount": 49900})))
        .await;
    assert_eq!(status, 201, "{refund}");
    assert_eq!(
        (refund["amount"].as_i64(), refund["status"].as_str()),
        (Some(49900), Some("succeeded"))
    );
    assert_eq!(app.order(&id).await["status"], "partially_refunded");
    assert_error(
        &app.call(Method::POST, &path, Some(json!({"amount": 49901})))
            .await,
        400,
        "invalid_request",
    );
    assert_error(
        &app.call(Method::POST, &path, Some(json!({"amount": 0})))
            .await,
        400,
        "invalid_request",
    );
    let (status, rest) = app.call(Method::POST, &path, None).await;
    assert_eq!(status, 201, "{rest}");
    assert_eq!(rest["amount"], 49900);
    let order = app.order(&id).await;
    assert_eq!(order["status"], "refunded");
    assert_eq!(order["refunds"].as_array().unwrap().len(), 2);
    assert_error(
        &app.call(Method::POST, &path, None).await,
        409,
        "order_not_payable",
    );
    // Refunding is a merchant call.
    let pending = app.order_of("TEE-1", 1).await;
    assert_error(
        &app.call(
            Method::POST,
            &format!("/v1/orders/{}/refunds", pending["id"].as_str().unwrap()),
            None,
        )
        .await,
        409,
        "order_not_payable",
    );
    app.finish().await;
}
