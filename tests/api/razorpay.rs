//! The Razorpay adapter against the simulator's Razorpay endpoints: UPI collect and intent,
//! wallets and cards, authorize then capture, refunds, webhook signatures and event-id
//! dedupe, and calls that repeat safely without an idempotency key.
//!
//! Over 400 lines: one scenario per behaviour of the adapter, each reading as a story.

use reqwest::Method;
use serde_json::{json, Value};
use till::payments::signature::hmac_hex;
use till::Workers;

use crate::both;
use crate::helpers::{assert_error, Backend, TestApp};

const KEY_ID: &str = "rzp_test_contract";
const KEY_SECRET: &str = "rzp_secret_contract";
const WHSEC: &str = "rzp_whsec_new";
const WHSEC_OLD: &str = "rzp_whsec_old";

async fn razorpay_app(b: Backend, workers: Workers) -> TestApp {
    TestApp::spawn_with(b, workers, |cfg| {
        cfg.card_gateway = Some("razorpay".into());
        cfg.upi_gateway = Some("razorpay".into());
        cfg.wallet_gateway = Some("razorpay".into());
        cfg.razorpay_key_id = Some(KEY_ID.into());
        cfg.razorpay_key_secret = Some(KEY_SECRET.into());
        cfg.razorpay_webhook_secret = Some(format!("{WHSEC},{WHSEC_OLD}"));
    })
    .await
}

async fn rzp_payment(app: &TestApp, till_payment_id: &str) -> Value {
    let id: String = sqlx::query_scalar("SELECT gateway_ref FROM payments WHERE id = $1")
        .bind(till_payment_id)
        .fetch_one(&app.state().db.pool)
        .await
        .unwrap();
    let url = format!("{}/sim/razorpay/v1/payments/{id}", app.url);
    app.send(app.http.get(url).basic_auth(KEY_ID, Some(KEY_SECRET)))
        .await
        .1
}

/// Waits until the order's first payment reaches `status`.
async fn wait_payment(app: &TestApp, order_id: &str, status: &str) -> Value {
    for _ in 0..200 {
        let order = app.order(order_id).await;
        if order["payments"][0]["status"] == status {
            return order;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!(
        "payment of {order_id} never became {status}: {}",
        app.order(order_id).await
    );
}

both!(
    razorpay_upi_collect_and_wallets,
    razorpay_upi_intent_completes_in_the_upi_app,
    razorpay_card_and_refund,
    razorpay_late_authorization_is_not_captured,
    razorpay_webhook_signatures_and_event_ids,
    razorpay_calls_repeat_without_a_second_payment,
);

async fn razorpay_upi_collect_and_wallets(b: Backend) {
    let app = razorpay_app(b, Workers::Run).await;
    app.stocked("TEE-1", 10000, 20).await;
    let cases = [
        ("upi", "success@razorpay", "confirmed", "captured"),
        ("upi", "failure@razorpay", "cancelled", "failed"),
        ("wallet", "paytm", "confirmed", "captured"),
        ("wallet", "wallet_declined", "cancelled", "failed"),
    ];
    for (method, source, end, rzp_status) in cases {
        let id = app.new_order("TEE-1", 1).await;
        let (status, payment) = app.pay(&id, method, source).await;
        assert_eq!(
            (
                status.as_u16(),
                payment["status"].as_str(),
                payment["gateway"].as_str()
            ),
            (201, Some("processing"), Some("razorpay")),
            "{payment}"
        );
        app.wait_for_status(&id, end).await;
        let order = wait_payment(
            &app,
            &id,
            if end == "confirmed" {
                "succeeded"
            } else {
                "failed"
            },
        )
        .await;
        assert_eq!(
            rzp_payment(&app, order["payments"][0]["id"].as_str().unwrap()).await["status"],
            rzp_status,
            "{method} {source}"
        );
    }
    assert_eq!(app.stock("TEE-1").await, (18, 0));
    app.finish().await;
}

async fn razorpay_upi_intent_completes_in_the_upi_app(b: Backend) {
    let app = razorpay_app(b, Workers::Run).await;
    app.stocked("TEE-1", 49900, 2).await;
    let id = app.new_order("TEE-1", 1).await;
    let (_, payment) = app.pay(&id, "upi", "upi_intent").await;
    assert_eq!(payment["status"], "requires_action", "{payment}");
    assert_eq!(payment["next_action"]["type"], "upi_intent");
    let link = payment["next_action"]["upi_url"].as_str().unwrap();
    assert!(
        link.starts_with("upi://pay?") && link.contains("am=499.00") && link.contains("cu=INR"),
        "{link}"
    );
    let rzp = rzp_payment(&app, payment["id"].as_str().unwrap()).await;
    let approve = format!(
        "{}/sim/razorpay/upi/{}/approve",
        app.url,
        rzp["id"].as_str().unwrap()
    );
    assert_eq!(app.http.get(approve).send().await.unwrap().status(), 200);
    app.wait_for_status(&id, "confirmed").await;
    wait_payment(&app, &id, "succeeded").await;
    assert_eq!(
        rzp_payment(&app, payment["id"].as_str().unwrap()).await["status"],
        "captured"
    );
    app.finish().await;
}

async fn razorpay_card_and_refund(b: Backend) {
    let app = razorpay_app(b, Workers::Run).await;
    app.stocked("TEE-1", 1000, 5).await;
    let id = app.new_order("TEE-1", 3).await;
    let (_, payment) = app.pay(&id, "card", "pm_card_visa").await;
    // Authorized at once; the capture lands now or a moment later (a webhook may race it).
    assert!(
        matches!(payment["status"].as_str(), Some("succeeded" | "authorized")),
        "{payment}"
    );
    wait_payment(&app, &id, "succeeded").await;
    let declined = app.new_order("TEE-1", 1).await;
    let (_, failed) = app
        .pay(&declined, "card", "pm_card_chargeDeclinedInsufficientFunds")
        .await;
    assert_eq!(
        (failed["status"].as_str(), failed["failure_code"].as_str()),
        (Some("failed"), Some("insufficient_funds"))
    );
    let path = format!("/v1/orders/{id}/refunds");
    let (status, refund) = app
        .call(Method::POST, &path, Some(json!({"amount": 500})))
        .await;
    assert_eq!(
        (status.as_u16(), refund["status"].as_str()),
        (201, Some("succeeded")),
        "{refund}"
    );
    assert_eq!(
        rzp_payment(&app, payment["id"].as_str().unwrap()).await["amount_refunded"],
        500
    );
    let (status, _) = app.call(Method::POST, &path, None).await;
    assert_eq!(status, 201);
    assert_eq!(app.order(&id).await["status"], "refunded");
    assert_eq!(
        rzp_payment(&app, payment["id"].as_str().unwrap()).await["amount_refunded"],
        3000
    );
    app.finish().await;
}

async fn razorpay_late_authorization_is_not_captured(b: Backend) {
    let app = razorpay_app(b, Workers::Manual).await;
    app.stocked("TEE-1", 1000, 1).await;
    let id = app.new_order("TEE-1", 1).await;
    let (_, payment) = app.pay(&id, "upi", "success@razorpay").await;
    app.expire_without_voiding(&id).await;
    let buyer = app.new_order("TEE-1", 1).await;
    assert_eq!(
        app.pay(&buyer, "card", "pm_card_visa").await.1["status"],
        "succeeded"
    );
    app.clock.advance_ms(1_000);
    app.sim().deliver_due().await.unwrap();
    let order = app.order(&id).await;
    assert_eq!(
        (
            order["status"].as_str(),
            order["payments"][0]["status"].as_str()
        ),
        (Some("expired"), Some("canceled")),
        "{order}"
    );
    assert_eq!(order["refunds"], json!([]));
    // Never captured: Razorpay gives an uncaptured authorization back by itself.
    assert_eq!(
        rzp_payment(&app, payment["id"].as_str().unwrap()).await["status"],
        "authorized"
    );
    app.finish().await;
}

async fn razorpay_webhook_signatures_and_event_ids(b: Backend) {
    let app = razorpay_app(b, Workers::Manual).await;
    app.stocked("TEE-1", 1000, 5).await;
    let id = app.new_order("TEE-1", 1).await;
    let (_, payment) = app.pay(&id, "upi", "failure@razorpay").await;
    let entity = rzp_payment(&app, payment["id"].as_str().unwrap()).await;
    let mut failed = entity.clone();
    failed["status"] = json!("failed");
    failed["error_reason"] = json!("payment_failed");
    let body = json!({"entity": "event", "event": "payment.failed", "contains": ["payment"], "payload": {"payment": {"entity": failed}}}).to_string();
    let post = |signature: Option<String>, body: String| {
        let mut req = app
            .http
            .post(format!("{}/v1/webhooks/razorpay", app.url))
            .header("x-razorpay-event-id", "evt_rzp_1")
            .body(body);
        if let Some(sig) = signature {
            req = req.header("x-razorpay-signature", sig);
        }
        req
    };
    assert_error(
        &app.send(post(
            Some(hmac_hex(WHSEC, body.as_bytes())),
            body.replace("payment_failed", "payment_faile"),
        ))
        .await,
        400,
        "invalid_request",
    );
    assert_error(
        &app.send(post(Some(hmac_hex("wrong", body.as_bytes())), body.clone()))
            .await,
        400,
        "invalid_request",
    );
    assert_error(
        &app.send(post(None, body.clone())).await,
        400,
        "invalid_request",
    );
    assert_eq!(app.order(&id).await["status"], "pending");
    // Signed with the secret being rotated out: still accepted.
    assert_eq!(
        app.send(post(
            Some(hmac_hex(WHSEC_OLD, body.as_bytes())),
            body.clone()
        ))
        .await
        .0,
        200
    );
    assert_eq!(app.order(&id).await["status"], "cancelled");
    let (status, again) = app
        .send(post(Some(hmac_hex(WHSEC, body.as_bytes())), body.clone()))
        .await;
    assert_eq!(
        (status.as_u16(), again["duplicate"].as_bool()),
        (200, Some(true))
    );
    // The event id header is not signed: the same signed body under new ids is the same event.
    for event_id in ["evt_rzp_2", "evt_rzp_3", "evt_rzp_4"] {
        let req = app
            .http
            .post(format!("{}/v1/webhooks/razorpay", app.url))
            .header("x-razorpay-event-id", event_id)
            .header("x-razorpay-signature", hmac_hex(WHSEC, body.as_bytes()))
            .body(body.clone());
        let (status, again) = app.send(req).await;
        assert_eq!(
            (status.as_u16(), again["duplicate"].as_bool()),
            (200, Some(true)),
            "{event_id}: {again}"
        );
    }
    app.finish().await;
}

both!(
    razorpay_a_cancelled_order_never_keeps_a_late_authorization,
    razorpay_webhook_for_another_amount_changes_nothing
);

/// The customer cancels while a UPI collect is out, and the authorization lands before the
/// cancel's void is carried out. A customer's cancel is final: the stock stays released and
/// the money is never captured (Razorpay gives an uncaptured authorization back itself).
async fn razorpay_a_cancelled_order_never_keeps_a_late_authorization(b: Backend) {
    let app = razorpay_app(b, Workers::Manual).await;
    app.stocked("TEE-1", 1000, 5).await;
    let id = app.new_order("TEE-1", 2).await;
    let (_, payment) = app.pay(&id, "upi", "success@razorpay").await;
    app.cancel_without_voiding(&id).await;
    app.clock.advance_ms(1_000);
    app.sim().deliver_due().await.unwrap();
    // Then the void, as recovery carries it out.
    app.clock.advance_ms(120_000);
    app.run_workers().await;
    let order = app.order(&id).await;
    assert_eq!(
        (
            order["status"].as_str(),
            order["cancel_reason"].as_str(),
            order["payments"][0]["status"].as_str()
        ),
        (Some("cancelled"), Some("customer"), Some("canceled")),
        "{order}"
    );
    assert_eq!(order["refunds"], json!([]));
    assert_eq!(app.stock("TEE-1").await, (5, 0));
    let at_gateway = rzp_payment(&app, payment["id"].as_str().unwrap()).await;
    assert_eq!(at_gateway["status"], "authorized", "{at_gateway}");
    app.finish().await;
}

/// A correctly signed event that names a payment but carries another amount (or another
/// gateway payment) is not about that payment's money: it changes nothing.
async fn razorpay_webhook_for_another_amount_changes_nothing(b: Backend) {
    let app = razorpay_app(b, Workers::Manual).await;
    app.stocked("TEE-1", 49_900, 5).await;
    let id = app.new_order("TEE-1", 1).await;
    let (_, payment) = app.pay(&id, "upi", "success@razorpay").await;
    let entity = rzp_payment(&app, payment["id"].as_str().unwrap()).await;
    let forged = |field: &str, value: Value| {
        let mut captured = entity.clone();
        captured["status"] = json!("authorized");
        captured[field] = value;
        json!({"entity": "event", "event": "payment.authorized", "contains": ["payment"],
               "payload": {"payment": {"entity": captured}}})
        .to_string()
    };
    for body in [
        forged("amount", json!(50)),
        forged("currency", json!("USD")),
        forged("id", json!("pay_attacker")),
    ] {
        let req = app
            .http
            .post(format!("{}/v1/webhooks/razorpay", app.url))
            .header("x-razorpay-signature", hmac_hex(WHSEC, body.as_bytes()))
            .body(body);
        let (status, answer) = app.send(req).await;
        assert_eq!(
            (status.as_u16(), answer["ignored"].as_bool()),
            (200, Some(true)),
            "{answer}"
        );
    }
    let order = app.order(&id).await;
    assert_eq!(
        (
            order["status"].as_str(),
            order["payments"][0]["status"].as_str()
        ),
        (Some("pending"), Some("processing")),
        "{order}"
    );
    app.finish().await;
}

async fn razorpay_calls_repeat_without_a_second_payment(b: Backend) {
    let app = razorpay_app(b, Workers::Manual).await;
    let gateway = app.state().gateway("razorpay").unwrap();
    let charge = till::payments::gateway::Charge {
        key: "pay_repeat_1".into(),
        gateway_ref: None,
        amount_minor: 49900,
        currency: "INR".into(),
        method: till::payments::Method::Upi,
        source: "success@razorpay".into(),
    };
    let first = gateway.create(&charge).await.unwrap();
    let second = gateway.create(&charge).await.unwrap();
    assert_eq!(first.gateway_ref, second.gateway_ref);
    // The gateway's books: one order, one payment.
    let listed = |what: &str| {
        let url = format!("{}/sim/razorpay/v1/{what}", app.url);
        app.send(app.http.get(url).basic_auth(KEY_ID, Some(KEY_SECRET)))
    };
    let (orders, payments) = (listed("orders").await.1, listed("payments").await.1);
    assert_eq!(
        (orders["count"].as_i64(), payments["count"].as_i64()),
        (Some(1), Some(1))
    );
    // The customer approves in their UPI app a moment later, and the payment is captured.
    app.clock.advance_ms(1_000);
    app.sim().deliver_due().await.unwrap();
    let captured = gateway.capture(&charge).await.unwrap();
    assert_eq!(
        captured.outcome,
        till::payments::gateway::Outcome::Succeeded
    );
    // A refund repeated with its idempotency key refunds once.
    gateway.refund(&charge, "re_once", 100).await.unwrap();
    gateway.refund(&charge, "re_once", 100).await.unwrap();
    let url = format!("{}/sim/razorpay/v1/payments/{}", app.url, first.gateway_ref);
    let (_, payment) = app
        .send(app.http.get(url).basic_auth(KEY_ID, Some(KEY_SECRET)))
        .await;
    assert_eq!(payment["amount_refunded"], 100, "{payment}");
    app.finish().await;
}
