//! Catalog and multi-warehouse inventory.

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::helpers::{assert_error, Backend, TestApp};

both!(
    product_put_returns_the_product,
    stock_adds_up_over_warehouses,
    stock_cannot_go_below_locked,
    unknown_product_has_no_inventory
);

async fn product_put_returns_the_product(b: Backend) {
    let app = TestApp::spawn(b).await;
    let body = json!({"name": "Tee", "price": {"amount": 49900, "currency": "INR"}, "tax_code": "apparel"});
    let (status, product) = app
        .call(Method::PUT, "/v1/products/TEE-1", Some(body))
        .await;
    assert_eq!(status, 200);
    assert_eq!(product["sku"], "TEE-1");
    assert_eq!(
        product["price"],
        json!({"amount": 49900, "currency": "INR"})
    );
    let (status, again) = app
        .call(
            Method::PUT,
            "/v1/products/TEE-1",
            Some(json!({"name": "Tee v2", "price": {"amount": 100, "currency": "INR"}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["name"], "Tee v2");
    app.finish().await;
}

async fn stock_adds_up_over_warehouses(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.put_product("TEE-1", 49900).await;
    assert_eq!(app.set_stock("TEE-1", "blr-1", 60).await.0, 200);
    let (status, inv) = app.set_stock("TEE-1", "del-1", 40).await;
    assert_eq!(status, 200);
    assert_eq!(inv["on_hand"], 100);
    assert_eq!(inv["available"], 100);
    assert_eq!(inv["warehouses"].as_array().unwrap().len(), 2);
    // An order bigger than one warehouse takes from both.
    let order = app.order_of("TEE-1", 70).await;
    let inv = app.inventory("TEE-1").await;
    assert_eq!(
        (
            inv["on_hand"].as_i64(),
            inv["locked"].as_i64(),
            inv["available"].as_i64()
        ),
        (Some(100), Some(70), Some(30))
    );
    assert_eq!(
        inv["warehouses"][0],
        json!({"warehouse": "blr-1", "on_hand": 60, "locked": 60, "available": 0})
    );
    assert_eq!(
        inv["warehouses"][1],
        json!({"warehouse": "del-1", "on_hand": 40, "locked": 10, "available": 30})
    );
    let (status, _) = app
        .pay(order["id"].as_str().unwrap(), "card", "pm_card_visa")
        .await;
    assert_eq!(status, 201);
    assert_eq!(app.stock("TEE-1").await, (30, 0));
    app.finish().await;
}

async fn stock_cannot_go_below_locked(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 100, 10).await;
    app.order_of("TEE-1", 6).await;
    let got = app.set_stock("TEE-1", "blr-1", 5).await;
    assert_eq!(got.0, 409, "{}", got.1);
    assert_eq!(app.stock("TEE-1").await, (10, 6));
    assert_eq!(app.set_stock("TEE-1", "blr-1", 6).await.0, 200);
    app.finish().await;
}

async fn unknown_product_has_no_inventory(b: Backend) {
    let app = TestApp::spawn(b).await;
    assert_error(
        &app.call(Method::GET, "/v1/inventory/NOPE", None).await,
        404,
        "not_found",
    );
    assert_error(&app.set_stock("NOPE", "blr-1", 5).await, 404, "not_found");
    app.finish().await;
}
