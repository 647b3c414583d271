//! Payments through the simulator: its whole outcome table, 3-D Secure, webhooks, and late
//! payments after an order ended.

use reqwest::Method;
use serde_json::json;
use till::Workers;

use crate::both;
use crate::helpers::{assert_error, Backend, TestApp};

both!(
    card_success_confirms_and_deducts,
    declined_cards_cancel_and_release,
    upi_and_wallets_complete_by_webhook,
    three_d_secure_completes_by_redirect_and_webhook,
    one_payment_in_flight_at_a_time,
    bad_webhook_signature_changes_nothing,
    repeated_webhook_is_a_no_op,
    late_payment_after_expiry_relocks_when_stock_remains,
    late_payment_after_expiry_is_refunded_when_stock_is_gone,
    unknown_source_is_a_400_and_changes_nothing,
);

async fn card_success_confirms_and_deducts(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 49900, 10).await;
    let id = app.new_order("TEE-1", 2).await;
    for source in ["pm_card_visa"] {
        let (status, payment) = app.pay(&id, "card", source).await;
        assert_eq!(status, 201, "{payment}");
        assert!(payment["id"].as_str().unwrap().starts_with("pay_"));
        assert_eq!(payment["order_id"], id.as_str());
        assert_eq!(payment["status"], "succeeded");
        assert_eq!(
            (
                payment["amount"].as_i64(),
                payment["currency"].as_str(),
                payment["method"].as_str()
            ),
            (Some(99800), Some("INR"), Some("card"))
        );
        assert!(payment["next_action"].is_null());
    }
    let order = app.order(&id).await;
    assert_eq!(order["status"], "confirmed");
    assert!(order["invoice_number"]
        .as_str()
        .unwrap()
        .starts_with("INV/"));
    assert_eq!(app.stock("TEE-1").await, (8, 0));
    let second = app.new_order("TEE-1", 1).await;
    assert_eq!(
        app.pay(&second, "card", "pm_card_mastercard").await.1["status"],
        "succeeded"
    );
    assert_error(
        &app.pay(&id, "card", "pm_card_visa").await,
        409,
        "order_not_payable",
    );
    app.finish().await;
}

async fn declined_cards_cancel_and_release(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 100, 10).await;
    for (source, code) in [
        ("pm_card_chargeDeclined", "card_declined"),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "insufficient_funds",
        ),
    ] {
        let id = app.new_order("TEE-1", 3).await;
        let (status, payment) = app.pay(&id, "card", source).await;
        assert_eq!(status, 201, "{payment}");
        assert_eq!(payment["status"], "failed");
        assert_eq!(payment["failure_code"], code);
        let order = app.order(&id).await;
        assert_eq!(order["status"], "cancelled");
        assert_eq!(order["cancel_reason"], "payment_failed");
    }
    assert_eq!(app.stock("TEE-1").await, (10, 0));
    app.finish().await;
}

async fn upi_and_wallets_complete_by_webhook(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 100, 100).await;
    let cases = [
        ("upi", "success@razorpay", "confirmed"),
        ("upi", "failure@razorpay", "cancelled"),
        ("wallet", "paytm", "confirmed"),
        ("wallet", "phonepe", "confirmed"),
        ("wallet", "amazonpay", "confirmed"),
        ("wallet", "wallet_declined", "cancelled"),
    ];
    let mut ids = Vec::new();
    for (method, source, _) in cases {
        let id = app.new_order("TEE-1", 1).await;
        let (status, payment) = app.pay(&id, method, source).await;
        assert_eq!(status, 201, "{payment}");
        assert_eq!(payment["status"], "processing", "{method} {source}");
        ids.push(id);
    }
    for (id, (method, source, end)) in ids.iter().zip(cases) {
        let order = app.wait_for_status(id, end).await;
        let payment_status = if end == "confirmed" {
            "succeeded"
        } else {
            "failed"
        };
        assert_eq!(
            order["payments"][0]["status"], payment_status,
            "{method} {source}"
        );
    }
    assert_eq!(app.stock("TEE-1").await, (96, 0));
    app.finish().await;
}

async fn three_d_secure_completes_by_redirect_and_webhook(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 100, 10).await;
    let id = app.new_order("TEE-1", 1).await;
    let (status, payment) = app.pay(&id, "card", "pm_card_authenticationRequired").await;
    assert_eq!(status, 201, "{payment}");
    assert_eq!(payment["status"], "requires_action");
    let url = payment["next_action"]["redirect_url"]
        .as_str()
        .expect("redirect_url")
        .to_string();
    assert_eq!(app.order(&id).await["status"], "pending");
    let page = app.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let order = app.wait_for_status(&id, "confirmed").await;
    assert_eq!(order["payments"][0]["status"], "succeeded");
    app.finish().await;
}

async fn one_payment_in_flight_at_a_time(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 100, 10).await;
    let id = app.new_order("TEE-1", 1).await;
    assert_eq!(
        app.pay(&id, "upi", "success@razorpay").await.1["status"],
        "processing"
    );
    assert_error(
        &app.pay(&id, "card", "pm_card_visa").await,
        409,
        "order_not_payable",
    );
    // Fired together, at most one attempt starts.
    let other = app.new_order("TEE-1", 1).await;
    let (a, b2) = tokio::join!(
        app.pay(&other, "upi", "success@razorpay"),
        app.pay(&other, "wallet", "paytm")
    );
    let created = [a.0.as_u16(), b2.0.as_u16()]
        .iter()
        .filter(|s| **s == 201)
        .count();
    assert_eq!(created, 1, "{a:?} {b2:?}");
    app.finish().await;
}

async fn bad_webhook_signature_changes_nothing(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 100, 10).await;
    let id = app.new_order("TEE-1", 1).await;
    let payment = app.pay(&id, "upi", "success@razorpay").await.1;
    let body = json!({"id": "evt_forged", "type": "payment.succeeded", "created": 0,
        "data": {"id": "simpay_x", "key": payment["id"], "status": "succeeded", "failure_code": null}})
    .to_string();
    let now = till::clock::system_now_ms() / 1000;
    for signature in [
        None,
        Some(till::payments::signature::sign(
            "wrong-secret",
            now,
            body.as_bytes(),
        )),
        Some("t=1,v1=00".to_string()),
    ] {
        let mut req = app
            .http
            .post(format!("{}/v1/webhooks/sim", app.url))
            .body(body.clone());
        if let Some(sig) = signature {
            req = req.header(till::payments::simulated::SIGNATURE_HEADER, sig);
        }
        assert_error(&app.send(req).await, 400, "invalid_request");
    }
    assert_eq!(app.order(&id).await["status"], "pending");
    assert_error(
        &app.send(
            app.http
                .post(format!("{}/v1/webhooks/nope", app.url))
                .body("{}"),
        )
        .await,
        404,
        "not_found",
    );
    app.finish().await;
}

async fn repeated_webhook_is_a_no_op(b: Backend) {
    let secret = "whsec_test";
    let app = TestApp::spawn_with(b, Workers::Manual, |cfg| {
        cfg.sim_webhook_secret = Some(secret.into())
    })
    .await;
    app.stocked("TEE-1", 100, 10).await;
    let id = app.new_order("TEE-1", 1).await;
    let payment = app.pay(&id, "card", "pm_card_visa").await.1;
    assert_eq!(app.order(&id).await["status"], "confirmed");
    // A contradicting event (a failure after success) is ignored, however often it comes.
    let simpay: String = sqlx::query_scalar("SELECT gateway_ref FROM payments WHERE id = $1")
        .bind(payment["id"].as_str())
        .fetch_one(&app.state().db.pool)
        .await
        .unwrap();
    let body = json!({"id": "evt_dup", "type": "payment.failed", "created": 0,
        "data": {"id": simpay, "key": payment["id"], "status": "failed", "failure_code": "card_declined",
                 "amount": payment["amount"], "currency": "INR"}})
    .to_string();
    for _ in 0..2 {
        let sig = till::payments::signature::sign(
            secret,
            till::clock::system_now_ms() / 1000,
            body.as_bytes(),
        );
        let req = app
            .http
            .post(format!("{}/v1/webhooks/sim", app.url))
            .header(till::payments::simulated::SIGNATURE_HEADER, sig)
            .body(body.clone());
        assert_eq!(app.send(req).await.0, 200);
    }
    let order = app.order(&id).await;
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["payments"][0]["status"], "succeeded");
    assert_eq!(app.inventory("TEE-1").await["on_hand"], 9);
    app.finish().await;
}

async fn late_payment_after_expiry_relocks_when_stock_remains(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 100, 10).await;
    let id = app.new_order("TEE-1", 3).await;
    assert_eq!(
        app.pay(&id, "upi", "success@razorpay").await.1["status"],
        "processing"
    );
    app.expire_without_voiding(&id).await;
    assert_eq!(app.inventory("TEE-1").await["locked"], 0);
    app.clock.advance_ms(1_000);
    assert_eq!(app.sim().deliver_due().await.unwrap(), 1);
    let order = app.order(&id).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    assert!(order["cancel_reason"].is_null());
    assert_eq!(app.stock("TEE-1").await, (7, 0));
    app.finish().await;
}

async fn late_payment_after_expiry_is_refunded_when_stock_is_gone(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 100, 5).await;
    let late = app.new_order("TEE-1", 5).await;
    assert_eq!(
        app.pay(&late, "upi", "success@razorpay").await.1["status"],
        "processing"
    );
    app.expire_without_voiding(&late).await;
    // Someone else buys the released stock before the late success arrives.
    let buyer = app.new_order("TEE-1", 5).await;
    assert_eq!(
        app.pay(&buyer, "card", "pm_card_visa").await.1["status"],
        "succeeded"
    );
    app.clock.advance_ms(1_000);
    app.sim().deliver_due().await.unwrap();
    let order = app.order(&late).await;
    assert_eq!(order["status"], "expired", "{order}");
    assert_eq!(order["refunds"][0]["status"], "succeeded", "{order}");
    assert_eq!(order["refunds"][0]["amount"], order["total"]);
    assert_eq!(order["payments"][0]["status"], "refunded");
    assert_eq!(app.stock("TEE-1").await, (0, 0));
    app.finish().await;
}

async fn unknown_source_is_a_400_and_changes_nothing(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 100, 10).await;
    let id = app.new_order("TEE-1", 1).await;
    assert_error(
        &app.pay(&id, "card", "4242424242424242").await,
        400,
        "invalid_request",
    );
    assert_error(&app.pay(&id, "crypto", "btc").await, 400, "invalid_request");
    let order = app.order(&id).await;
    assert_eq!(
        (
            order["status"].as_str(),
            order["payments"].as_array().map(Vec::len)
        ),
        (Some("pending"), Some(0))
    );
    let no_key = app
        .request(Method::POST, &format!("/v1/orders/{id}/payments"))
        .json(&json!({"method": "card", "source": "pm_card_visa"}));
    assert_error(&app.send(no_key).await, 400, "invalid_request");
    assert_error(
        &app.pay("ord_missing", "card", "pm_card_visa").await,
        404,
        "not_found",
    );
    app.finish().await;
}

both!(
    a_cancelled_order_refunds_a_late_capture,
    a_void_before_the_create_leaves_a_tombstone,
    the_simulator_answers_a_repeated_create_with_the_first_payment
);

/// The customer cancels while a UPI payment is out, and the money is taken before the
/// cancel's void reaches the gateway. A customer's cancel is final: the stock stays
/// released and the money goes back.
async fn a_cancelled_order_refunds_a_late_capture(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 100, 10).await;
    let id = app.new_order("TEE-1", 3).await;
    assert_eq!(
        app.pay(&id, "upi", "success@razorpay").await.1["status"],
        "processing"
    );
    app.cancel_without_voiding(&id).await;
    app.clock.advance_ms(1_000);
    assert_eq!(app.sim().deliver_due().await.unwrap(), 1);
    let order = app.order(&id).await;
    assert_eq!(
        (order["status"].as_str(), order["cancel_reason"].as_str()),
        (Some("cancelled"), Some("customer")),
        "{order}"
    );
    assert_eq!(order["refunds"][0]["status"], "succeeded", "{order}");
    assert_eq!(order["refunds"][0]["amount"], order["total"]);
    assert_eq!(order["payments"][0]["status"], "refunded");
    assert_eq!(app.stock("TEE-1").await, (10, 0));
    app.finish().await;
}

/// A void for an attempt the gateway has not seen yet (Till's create still on its way)
/// leaves a tombstone: the create that arrives afterwards takes no money.
async fn a_void_before_the_create_leaves_a_tombstone(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    let gateway = app.state().gateway("sim").unwrap();
    let charge = till::payments::gateway::Charge {
        key: "pay_void_first".into(),
        gateway_ref: None,
        amount_minor: 49_900,
        currency: "INR".into(),
        method: till::payments::Method::Card,
        source: "pm_card_visa".into(),
    };
    let voided = gateway.cancel(&charge).await.unwrap();
    assert_eq!(voided.outcome, till::payments::gateway::Outcome::Canceled);
    let created = gateway.create(&charge).await.unwrap();
    assert_eq!(created.outcome, till::payments::gateway::Outcome::Canceled);
    assert_eq!(created.gateway_ref, voided.gateway_ref);
    // The gateway's own books hold no money for it.
    let books = app.sim().own_payments(0).await.unwrap();
    let taken = books.iter().filter(|p| p["status"] != "canceled").count();
    assert_eq!((books.len(), taken), (1, 0), "{books:?}");
    app.finish().await;
}

/// The simulator's create is idempotent by Till's key: a repeat answers with the payment the
/// first call made (even when it names a source the simulator would refuse), the books hold
/// one payment, and one webhook goes out for it.
async fn the_simulator_answers_a_repeated_create_with_the_first_payment(b: Backend) {
    const SIM_KEY: &str = "sim_key_repeated_create";
    let app = TestApp::spawn_with(b, Workers::Manual, |cfg| {
        cfg.sim_api_key = Some(SIM_KEY.into());
    })
    .await;
    let create = |key: &'static str, source: &'static str| {
        let request = app
            .http
            .post(format!("{}/sim/till/v1/payments", app.url))
            .bearer_auth(SIM_KEY)
            .json(&json!({"key": key, "amount": 49_900, "currency": "INR",
                          "method": "card", "source": source}));
        async move {
            let resp = request.send().await.expect("the simulator answers");
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, first) = create("pay_repeated", "pm_card_visa").await;
    assert_eq!(
        (status, first["status"].as_str()),
        (200, Some("succeeded")),
        "{first}"
    );
    for source in ["pm_card_visa", "pm_card_unknown"] {
        let (status, again) = create("pay_repeated", source).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again, first, "a repeat with {source}");
    }
    let (status, refused) = create("pay_never_seen", "pm_card_unknown").await;
    assert_eq!(status, 400, "{refused}");
    let books = app.sim().own_payments(0).await.unwrap();
    assert_eq!(books.len(), 1, "{books:?}");
    assert_eq!(app.sim().deliver_due().await.unwrap(), 1);
    assert_eq!(app.sim().due_webhooks().await.unwrap(), 0);
    app.finish().await;
}
