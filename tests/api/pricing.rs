//! Pricing over HTTP (docs/api.md, "Pricing: coupons and tax"): coupons and their uses under
//! concurrency, GST and named rates, tax-inclusive prices, quotes, and what a refund gives
//! back of each tax.
//!
//! Over 400 lines: one test per rule of the pricing contract, on both backends.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use till::Workers;

use crate::both;
use crate::helpers::{assert_error, Backend, TestApp};

both!(
    the_worked_example_of_the_contract,
    a_quote_has_the_order_figures_and_writes_nothing,
    other_states_exports_and_inclusive_prices,
    an_invalid_coupon_says_why_and_changes_nothing,
    a_use_is_reserved_kept_and_released_with_its_order,
    a_thousand_buyers_share_a_hundred_uses,
    one_use_per_customer_under_twenty_parallel_orders,
    bad_pricing_settings_are_refused,
    refunds_record_their_share_of_each_tax,
);

async fn put(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::PUT, path, Some(body)).await
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    app.call(Method::GET, path, None).await
}

/// The seller in Karnataka, tax exclusive (or inclusive), with `apparel` at `rate_bps`
/// in India and 7.25% in California.
async fn seller(app: &TestApp, inclusive: bool, rate_bps: i64) {
    let (status, body) = put(
        app,
        "/v1/settings/tax",
        json!({"origin": {"country": "IN", "region": "KA"}, "prices_include_tax": inclusive,
               "gstin": "29ABCDE1234F1ZW", "legal_name": "Asha Textiles Pvt Ltd",
               "address": "12 MG Road, Bengaluru 560001"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = put(
        app,
        "/v1/tax_codes/apparel",
        json!({"hsn": "6109", "rates": [
            {"country": "IN", "rate_bps": rate_bps},
            {"country": "US", "region": "CA", "rate_bps": 725, "name": "CA sales tax"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn taxed_product(app: &TestApp, sku: &str, amount: i64, on_hand: i64) {
    let (status, body) = put(
        app,
        &format!("/v1/products/{sku}"),
        json!({"name": sku, "price": {"amount": amount, "currency": "INR"}, "tax_code": "apparel"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.set_stock(sku, "blr-1", on_hand).await;
    assert_eq!(status, 200, "{body}");
}

async fn coupon(app: &TestApp, code: &str, terms: Value) {
    let (status, body) = put(app, &format!("/v1/coupons/{code}"), terms).await;
    assert_eq!(status, 200, "{body}");
}

fn order_body(sku: &str, qty: i64, coupon: Option<&str>, customer: &str, region: &str) -> Value {
    let mut body = json!({"customer": {"id": customer}, "items": [{"sku": sku, "qty": qty}],
                          "ship_to": {"country": "IN", "region": region, "postal_code": "560001"}});
    if let Some(code) = coupon {
        body["coupon"] = json!(code);
    }
    body
}

async fn order(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, "/v1/orders", Some(body)).await
}

async fn uses(app: &TestApp, code: &str) -> (i64, i64) {
    let (status, c) = get(app, &format!("/v1/coupons/{code}")).await;
    assert_eq!(status, 200, "{c}");
    (
        c["uses"]["confirmed"].as_i64().unwrap(),
        c["uses"]["reserved"].as_i64().unwrap(),
    )
}

fn figures(v: &Value) -> (i64, i64, i64, i64) {
    let n = |k: &str| v[k].as_i64().unwrap_or_else(|| panic!("{k} in {v}"));
    (n("subtotal"), n("discount"), n("tax"), n("total"))
}

/// docs/api.md's figures: one TEE-1 at 10000, KA to KA, 18%, tax exclusive, 10% coupon.
async fn the_worked_example_of_the_contract(b: Backend) {
    let app = TestApp::spawn(b).await;
    seller(&app, false, 1800).await;
    taxed_product(&app, "TEE-1", 10_000, 10).await;
    coupon(
        &app,
        "save10",
        json!({"kind": "percent", "percent_off": 10}),
    )
    .await;
    let (status, o) = order(&app, order_body("TEE-1", 1, Some("Save10"), "u_1", "KA")).await;
    assert_eq!(status, 201, "{o}");
    let cgst = json!({"name": "CGST", "rate_bps": 900, "amount": 810});
    let sgst = json!({"name": "SGST", "rate_bps": 900, "amount": 810});
    let item = &o["items"][0];
    assert_eq!(
        (
            &item["amount"],
            &item["discount"],
            &item["hsn"],
            &item["tax"]
        ),
        (&json!(10_000), &json!(1_000), &json!("6109"), &json!(1_620)),
        "{o}"
    );
    assert_eq!(item["tax_lines"], json!([cgst, sgst]));
    assert_eq!(figures(&o), (10_000, 1_000, 1_620, 10_620));
    assert_eq!(o["tax_lines"], json!([cgst, sgst]));
    assert_eq!(o["coupon"], "SAVE10");
    // What GET shows is what the create answered; the payment takes the total.
    let id = o["id"].as_str().unwrap();
    let again = app.order(id).await;
    assert_eq!(again["items"], o["items"]);
    assert_eq!(figures(&again), figures(&o));
    let (status, paid) = app.pay(id, "card", "pm_card_visa").await;
    assert_eq!(
        (status.as_u16(), &paid["amount"]),
        (201, &json!(10_620)),
        "{paid}"
    );
    app.wait_for_status(id, "confirmed").await;
    assert_eq!(uses(&app, "SAVE10").await, (1, 0));
    app.finish().await;
}

async fn a_quote_has_the_order_figures_and_writes_nothing(b: Backend) {
    let app = TestApp::spawn(b).await;
    seller(&app, false, 1200).await;
    taxed_product(&app, "TEE-1", 49_900, 5).await;
    coupon(
        &app,
        "FLAT",
        json!({"kind": "fixed", "amount_off": {"amount": 20_000, "currency": "INR"}, "max_uses": 1}),
    )
    .await;
    let body = order_body("TEE-1", 2, Some("FLAT"), "u_1", "MH");
    let (status, q) = app
        .call(Method::POST, "/v1/quotes", Some(body.clone()))
        .await;
    assert_eq!(status, 200, "{q}");
    assert_eq!(q["object"], "quote");
    assert!(q.get("id").is_none(), "{q}");
    assert_eq!(app.stock("TEE-1").await, (5, 0));
    assert_eq!(uses(&app, "FLAT").await, (0, 0));
    let (status, o) = order(&app, body).await;
    assert_eq!(status, 201, "{o}");
    for field in [
        "items",
        "subtotal",
        "discount",
        "tax",
        "tax_lines",
        "total",
        "coupon",
    ] {
        assert_eq!(q[field], o[field], "{field}");
    }
    // 99800 less 20000 = 79800 at 12% IGST (another state).
    assert_eq!(figures(&o), (99_800, 20_000, 9_576, 89_376));
    assert_eq!(
        o["tax_lines"],
        json!([{"name": "IGST", "rate_bps": 1200, "amount": 9_576}])
    );
    // A quote for a coupon with no use left still prices; only an order reserves.
    let (status, q) = app
        .call(
            Method::POST,
            "/v1/quotes",
            Some(order_body("TEE-1", 1, Some("FLAT"), "u_2", "KA")),
        )
        .await;
    assert_eq!(status, 200, "{q}");
    app.finish().await;
}

async fn other_states_exports_and_inclusive_prices(b: Backend) {
    let app = TestApp::spawn(b).await;
    seller(&app, true, 1200).await;
    taxed_product(&app, "TEE-1", 11_200, 10).await;
    // Inclusive: 11200 holds 12%: 10000 taxable, 1200 tax; the total is the price.
    let (status, o) = order(&app, order_body("TEE-1", 1, None, "u_1", "KA")).await;
    assert_eq!(status, 201, "{o}");
    assert_eq!(figures(&o), (11_200, 0, 1_200, 11_200));
    assert_eq!(
        o["tax_lines"],
        json!([{"name": "CGST", "rate_bps": 600, "amount": 600}, {"name": "SGST", "rate_bps": 600, "amount": 600}])
    );
    // Chandigarh to Chandigarh: a union territory without a legislature pays UTGST.
    seller(&app, false, 1200).await;
    put(
        &app,
        "/v1/settings/tax",
        json!({"origin": {"country": "IN", "region": "CH"}}),
    )
    .await;
    let (status, o) = order(&app, order_body("TEE-1", 1, None, "u_2", "CH")).await;
    assert_eq!(status, 201, "{o}");
    assert_eq!(o["tax_lines"][1]["name"], "UTGST", "{o}");
    // Shipped abroad from India: an export, untaxed.
    let mut abroad = order_body("TEE-1", 1, None, "u_3", "KA");
    abroad["ship_to"] = json!({"country": "US", "region": "CA"});
    let (status, o) = order(&app, abroad).await;
    assert_eq!(status, 201, "{o}");
    assert_eq!(figures(&o), (11_200, 0, 0, 11_200));
    assert_eq!(o["tax_lines"], json!([]));
    // A seller in California: the named rate of the most specific match.
    put(
        &app,
        "/v1/settings/tax",
        json!({"origin": {"country": "US", "region": "NY"}}),
    )
    .await;
    let mut ca = order_body("TEE-1", 1, None, "u_4", "CA");
    ca["ship_to"] = json!({"country": "US", "region": "CA"});
    let (status, o) = order(&app, ca).await;
    assert_eq!(status, 201, "{o}");
    // 7.25% of 11200 = 812.
    assert_eq!(
        o["tax_lines"],
        json!([{"name": "CA sales tax", "rate_bps": 725, "amount": 812}])
    );
    app.finish().await;
}

async fn an_invalid_coupon_says_why_and_changes_nothing(b: Backend) {
    let app = TestApp::spawn(b).await;
    taxed_product(&app, "TEE-1", 10_000, 10).await;
    taxed_product(&app, "CAP-1", 500, 10).await;
    coupon(
        &app,
        "OFF",
        json!({"kind": "percent", "percent_off": 10, "active": false}),
    )
    .await;
    coupon(
        &app,
        "LATER",
        json!({"kind": "percent", "percent_off": 10, "starts_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    coupon(
        &app,
        "GONE",
        json!({"kind": "percent", "percent_off": 10, "ends_at": "2001-01-01T00:00:00Z"}),
    )
    .await;
    coupon(
        &app,
        "BIG",
        json!({"kind": "percent", "percent_off": 10, "min_subtotal": 100_000}),
    )
    .await;
    coupon(
        &app,
        "CAPS",
        json!({"kind": "percent", "percent_off": 10, "skus": ["CAP-1"]}),
    )
    .await;
    for (code, reason) in [
        ("NOPE", "unknown"),
        ("OFF", "inactive"),
        ("LATER", "not_started"),
        ("GONE", "ended"),
        ("BIG", "below_min_subtotal"),
        ("CAPS", "covers_no_line"),
        ("bad code!", "unknown"),
    ] {
        for path in ["/v1/orders", "/v1/quotes"] {
            let got = app
                .call(
                    Method::POST,
                    path,
                    Some(order_body("TEE-1", 1, Some(code), "u_1", "KA")),
                )
                .await;
            assert_error(&got, 422, "coupon_invalid");
            assert_eq!(got.1["error"]["reason"], reason, "{code}: {}", got.1);
        }
    }
    assert_eq!(app.stock("TEE-1").await, (10, 0));
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&app.state().db.pool)
        .await
        .unwrap();
    assert_eq!(orders, 0);
    // Exhausted: 409, nothing locked either.
    coupon(
        &app,
        "ONCE",
        json!({"kind": "percent", "percent_off": 10, "max_uses": 1}),
    )
    .await;
    let (status, _) = order(&app, order_body("TEE-1", 1, Some("ONCE"), "u_1", "KA")).await;
    assert_eq!(status, 201);
    let got = order(&app, order_body("TEE-1", 2, Some("ONCE"), "u_2", "KA")).await;
    assert_error(&got, 409, "coupon_exhausted");
    assert_eq!(app.stock("TEE-1").await, (10, 1));
    app.finish().await;
}

async fn a_use_is_reserved_kept_and_released_with_its_order(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    taxed_product(&app, "TEE-1", 10_000, 10).await;
    coupon(
        &app,
        "SAVE",
        json!({"kind": "percent", "percent_off": 10, "max_uses": 3}),
    )
    .await;
    let mut ids = Vec::new();
    for customer in ["u_1", "u_2", "u_3"] {
        let (status, o) = order(&app, order_body("TEE-1", 1, Some("SAVE"), customer, "KA")).await;
        assert_eq!(status, 201, "{o}");
        ids.push(o["id"].as_str().unwrap().to_string());
    }
    assert_eq!(uses(&app, "SAVE").await, (0, 3));
    // Paid: kept. Cancelled: released, once however often it is cancelled.
    let (status, p) = app.pay(&ids[0], "card", "pm_card_visa").await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(uses(&app, "SAVE").await, (1, 2));
    for _ in 0..2 {
        let (status, c) = app
            .call(Method::POST, &format!("/v1/orders/{}/cancel", ids[1]), None)
            .await;
        assert_eq!(status, 200, "{c}");
    }
    assert_eq!(uses(&app, "SAVE").await, (1, 1));
    // Expired: released.
    app.clock.advance_ms(901_000);
    app.run_workers().await;
    assert_eq!(app.order(&ids[2]).await["status"], "expired");
    assert_eq!(uses(&app, "SAVE").await, (1, 0));
    app.finish().await;
}

/// Creates `n` orders at once with `code`; returns how many were created and how many
/// were refused `coupon_exhausted` (anything else fails the test).
async fn buyers(
    app: &TestApp,
    n: usize,
    code: &str,
    customer: impl Fn(usize) -> String,
) -> (usize, usize) {
    let answers = join_all((0..n).map(|i| {
        let body = order_body("TEE-1", 1, Some(code), &customer(i), "KA");
        async move { order(app, body).await }
    }))
    .await;
    let mut created = 0;
    let mut exhausted = 0;
    for (status, body) in answers {
        match status.as_u16() {
            201 => created += 1,
            409 if body["error"]["code"] == "coupon_exhausted" => exhausted += 1,
            _ => panic!("unexpected answer {status}: {body}"),
        }
    }
    (created, exhausted)
}

async fn a_thousand_buyers_share_a_hundred_uses(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |c| c.max_pending_per_customer = 0).await;
    taxed_product(&app, "TEE-1", 10_000, 5_000).await;
    coupon(
        &app,
        "FLASH",
        json!({"kind": "percent", "percent_off": 50, "max_uses": 100}),
    )
    .await;
    let started = std::time::Instant::now();
    let (created, exhausted) = buyers(&app, 1000, "FLASH", |i| format!("u_{i}")).await;
    eprintln!(
        "{b:?}: 1000 buyers, coupon max_uses 100: {created} orders, {exhausted} coupon_exhausted in {:?}",
        started.elapsed()
    );
    assert_eq!((created, exhausted), (100, 900));
    assert_eq!(uses(&app, "FLASH").await, (0, 100));
    assert_eq!(app.stock("TEE-1").await, (5_000, 100));
    // Half of them pay; the other half's holds run out, giving their uses back.
    let pending: Vec<String> = sqlx::query_scalar(
        "SELECT order_id FROM coupon_uses WHERE code = 'FLASH' ORDER BY order_id",
    )
    .fetch_all(&app.state().db.pool)
    .await
    .unwrap();
    for id in &pending[..50] {
        let (status, p) = app.pay(id, "card", "pm_card_visa").await;
        assert_eq!(status, 201, "{p}");
    }
    assert_eq!(uses(&app, "FLASH").await, (50, 50));
    app.clock.advance_ms(901_000);
    while expire_pass(&app).await > 0 {}
    assert_eq!(uses(&app, "FLASH").await, (50, 0));
    let (created, exhausted) = buyers(&app, 200, "FLASH", |i| format!("v_{i}")).await;
    assert_eq!((created, exhausted), (50, 150));
    assert_eq!(uses(&app, "FLASH").await, (50, 50));
    app.finish().await;
}

/// One worker pass; how many items it handled.
async fn expire_pass(app: &TestApp) -> usize {
    till::checkout::workers::run_once(app.state())
        .await
        .expect("worker pass")
}

async fn one_use_per_customer_under_twenty_parallel_orders(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |c| c.max_pending_per_customer = 0).await;
    taxed_product(&app, "TEE-1", 10_000, 100).await;
    coupon(
        &app,
        "WELCOME",
        json!({"kind": "percent", "percent_off": 20, "max_uses_per_customer": 1}),
    )
    .await;
    let (created, exhausted) = buyers(&app, 20, "WELCOME", |_| "u_42".to_string()).await;
    assert_eq!((created, exhausted), (1, 19));
    // Other customers are not held back by u_42's use.
    let (created, _) = buyers(&app, 5, "WELCOME", |i| format!("w_{i}")).await;
    assert_eq!(created, 5);
    assert_eq!(uses(&app, "WELCOME").await, (0, 6));
    app.finish().await;
}

async fn bad_pricing_settings_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    for (path, body) in [
        ("/v1/coupons/SAVE", json!({"kind": "percent"})),
        (
            "/v1/coupons/SAVE",
            json!({"kind": "percent", "percent_off": 101}),
        ),
        (
            "/v1/coupons/SAVE",
            json!({"kind": "percent", "percent_off": 10, "amount_off": {"amount": 1, "currency": "INR"}}),
        ),
        (
            "/v1/coupons/SAVE",
            json!({"kind": "fixed", "amount_off": {"amount": 100, "currency": "USD"}}),
        ),
        (
            "/v1/coupons/SAVE",
            json!({"kind": "fixed", "amount_off": {"amount": -1, "currency": "INR"}}),
        ),
        ("/v1/coupons/SAVE", json!({"kind": "bogo"})),
        (
            "/v1/coupons/SAVE",
            json!({"kind": "percent", "percent_off": 10, "max_uses": 0}),
        ),
        (
            "/v1/coupons/SAVE",
            json!({"kind": "percent", "percent_off": 10, "starts_at": "tomorrow"}),
        ),
        (
            "/v1/coupons/SAVE",
            json!({"kind": "percent", "percent_off": 10, "starts_at": "2027-01-02T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z"}),
        ),
        (
            "/v1/coupons/SAVE",
            json!({"kind": "percent", "percent_off": 10, "skus": ["no spaces"]}),
        ),
        (
            "/v1/coupons/SAVE",
            json!({"kind": "percent", "percent_off": 10, "colour": "red"}),
        ),
        (
            "/v1/coupons/SAVE",
            json!({"kind": "percent", "percent_off": null}),
        ),
        (
            "/v1/coupons/THIRTY-THREE-CHARACTERS-LONG-CODE",
            json!({"kind": "percent", "percent_off": 10}),
        ),
        (
            "/v1/settings/tax",
            json!({"origin": {"country": "IN", "region": "KA"}, "gstin": "29ABCDE1234F1ZX"}),
        ),
        ("/v1/settings/tax", json!({"origin": {"country": "India"}})),
        ("/v1/settings/tax", json!({"prices_include_tax": true})),
        (
            "/v1/tax_codes/apparel",
            json!({"rates": [{"country": "IN", "rate_bps": 10_001}]}),
        ),
        (
            "/v1/tax_codes/apparel",
            json!({"rates": [{"country": "IN", "rate_bps": 1800}, {"country": "IN", "rate_bps": 500}]}),
        ),
        ("/v1/tax_codes/apparel", json!({"hsn": "61O9", "rates": []})),
        ("/v1/tax_codes/bad%20code", json!({"rates": []})),
    ] {
        let got = put(&app, path, body).await;
        assert_error(&got, 400, "invalid_request");
    }
    assert_error(&get(&app, "/v1/coupons/SAVE").await, 404, "not_found");
    assert_error(&get(&app, "/v1/settings/tax").await, 404, "not_found");
    assert_error(&get(&app, "/v1/tax_codes/apparel").await, 404, "not_found");
    // What is accepted reads back as it was written, the code upper case.
    coupon(
        &app,
        "save",
        json!({"kind": "percent", "percent_off": 10, "max_discount": 5_000,
        "min_subtotal": 100_000, "max_uses": 100, "max_uses_per_customer": 1, "skus": ["TEE-1"],
        "starts_at": "2026-12-01T00:00:00Z", "ends_at": "2026-12-31T23:59:59Z", "active": true}),
    )
    .await;
    let (_, c) = get(&app, "/v1/coupons/Save").await;
    assert_eq!(c["code"], "SAVE");
    assert_eq!(c["ends_at"], "2026-12-31T23:59:59Z");
    assert_eq!(c["uses"], json!({"confirmed": 0, "reserved": 0}));
    app.finish().await;
}

async fn refunds_record_their_share_of_each_tax(b: Backend) {
    let app = TestApp::spawn(b).await;
    seller(&app, false, 1800).await;
    taxed_product(&app, "TEE-1", 10_000, 10).await;
    let (status, o) = order(&app, order_body("TEE-1", 1, None, "u_1", "KA")).await;
    assert_eq!(status, 201, "{o}");
    let id = o["id"].as_str().unwrap();
    app.pay(id, "card", "pm_card_visa").await;
    app.wait_for_status(id, "confirmed").await;
    let mut shares = Vec::new();
    for amount in [Some(3_541), None] {
        let body = amount.map_or(json!({}), |a| json!({"amount": a}));
        let (status, r) = app
            .call(
                Method::POST,
                &format!("/v1/orders/{id}/refunds"),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{r}");
        let refund_id = till::ids::RefundId::from(r["id"].as_str().unwrap());
        let mut conn = app.state().db.pool.acquire().await.unwrap();
        let stored = till::payments::store::get_refund(&mut conn, &refund_id)
            .await
            .unwrap()
            .unwrap();
        let share = stored
            .share
            .expect("a refund of a paid order records its share");
        let tax: i64 = share.tax_lines.iter().map(|t| t.amount).sum();
        assert_eq!(share.taxable + tax, stored.amount.minor);
        shares.push(share);
    }
    // 11800 = 10000 taxable + 900 CGST + 900 SGST; a third back first, then the rest.
    assert_eq!(shares[0].taxable, 3_001);
    assert_eq!(shares[0].taxable + shares[1].taxable, 10_000);
    for k in 0..2 {
        assert_eq!(
            shares[0].tax_lines[k].amount + shares[1].tax_lines[k].amount,
            900
        );
    }
    app.finish().await;
}
