//! The Stripe adapter against the simulator's Stripe endpoints (`TILL_CARD_GATEWAY=stripe`):
//! authorize then capture, declines, 3-D Secure, voids, refunds, webhook signatures, and the
//! simulator's Stripe idempotency semantics.
//!
//! Over 400 lines: one scenario per behaviour, kept together so the file reads as the
//! list of what is covered.

use reqwest::Method;
use serde_json::{json, Value};
use till::payments::signature::sign;
use till::Workers;

use crate::both;
use crate::gateway_sim::{spawn_with_gateway_sim, SimSpec};
use crate::helpers::{assert_error, Backend, TestApp};

const SK: &str = "sk_test_contract";
const WHSEC: &str = "whsec_new";
const WHSEC_OLD: &str = "whsec_old";

async fn stripe_app(b: Backend, workers: Workers) -> TestApp {
    TestApp::spawn_with(b, workers, |cfg| {
        cfg.card_gateway = Some("stripe".into());
        cfg.stripe_secret_key = Some(SK.into());
        cfg.stripe_webhook_secret = Some(format!("{WHSEC},{WHSEC_OLD}"));
    })
    .await
}

/// The PaymentIntent as the simulated Stripe holds it, its charge expanded.
async fn intent(app: &TestApp, id: &str) -> Value {
    let url = format!(
        "{}/sim/stripe/v1/payment_intents/{id}?expand[]=latest_charge",
        app.url
    );
    app.send(app.http.get(url).bearer_auth(SK)).await.1
}

/// Pays `order_id` by card, and the process dies once the authorization has confirmed the
/// order, before the capture is sent: the order is paid with money the gateway still only
/// holds (`requires_capture`), and Till's payment is `authorized`.
async fn pay_without_capture(app: &TestApp, order_id: &str) -> (reqwest::StatusCode, Value) {
    till::failpoint::arm(till::failpoint::CAPTURE_NOT_SENT, order_id);
    let answer = app.pay(order_id, "card", "pm_card_visa").await;
    assert_eq!(answer.1["status"], "authorized", "{}", answer.1);
    answer
}

/// Someone other than Till acts on a PaymentIntent through the simulated Stripe API with
/// the secret key (`capture` or `cancel`), as a capture or void made by hand in the
/// dashboard would; returns the status it answers.
async fn act_on_intent(app: &TestApp, pi_id: &str, action: &str) -> String {
    let url = format!("{}/sim/stripe/v1/payment_intents/{pi_id}/{action}", app.url);
    let (status, pi) = app.send(app.http.post(url).bearer_auth(SK)).await;
    assert_eq!(status, 200, "{pi}");
    pi["status"].as_str().unwrap_or_default().to_string()
}

/// The customer pays again, with a good card, on a PaymentIntent whose card was declined:
/// Stripe lets such an intent be confirmed again (Stripe.js does it with the client
/// secret), and Till hears nothing of it here (no webhook is delivered).
async fn confirm_again(app: &TestApp, pi_id: &str) -> String {
    let url = format!("{}/sim/stripe/v1/payment_intents/{pi_id}/confirm", app.url);
    let form = [("payment_method", "pm_card_visa")];
    let (status, pi) = app
        .send(app.http.post(url).bearer_auth(SK).form(&form))
        .await;
    assert_eq!(status, 200, "{pi}");
    pi["status"].as_str().unwrap_or_default().to_string()
}

/// Waits until the order's first payment is captured.
async fn wait_payment(app: &TestApp, order_id: &str) {
    for _ in 0..200 {
        if app.order(order_id).await["payments"][0]["status"] == "succeeded" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!(
        "payment of {order_id} was never captured: {}",
        app.order(order_id).await
    );
}

async fn gateway_ref(app: &TestApp, payment_id: &str) -> String {
    sqlx::query_scalar("SELECT gateway_ref FROM payments WHERE id = $1")
        .bind(payment_id)
        .fetch_one(&app.state().db.pool)
        .await
        .unwrap()
}

both!(
    stripe_card_is_authorized_then_captured,
    stripe_declines_cancel_the_order,
    stripe_three_d_secure_completes_by_webhook,
    stripe_authorization_that_cannot_be_kept_is_voided,
    stripe_partial_refund,
    stripe_webhook_signatures,
    stripe_simulator_idempotency,
);

async fn stripe_card_is_authorized_then_captured(b: Backend) {
    let app = stripe_app(b, Workers::Run).await;
    app.stocked("TEE-1", 49900, 5).await;
    let id = app.new_order("TEE-1", 2).await;
    let (status, payment) = app.pay(&id, "card", "pm_card_visa").await;
    assert_eq!(status, 201, "{payment}");
    // Authorized at once; the capture lands now or a moment later (a webhook may race it).
    assert!(
        matches!(payment["status"].as_str(), Some("succeeded" | "authorized")),
        "{payment}"
    );
    assert_eq!(payment["gateway"], "stripe");
    wait_payment(&app, &id).await;
    let order = app.order(&id).await;
    assert_eq!(order["status"], "confirmed");
    let pi = intent(
        &app,
        &gateway_ref(&app, payment["id"].as_str().unwrap()).await,
    )
    .await;
    assert_eq!(
        (
            pi["status"].as_str(),
            pi["amount_received"].as_i64(),
            pi["capture_method"].as_str()
        ),
        (Some("succeeded"), Some(99800), Some("manual"))
    );
    assert_eq!(pi["metadata"]["till_payment"], payment["id"]);
    assert_eq!(app.stock("TEE-1").await, (3, 0));
    // Stripe takes cards only.
    let other = app.new_order("TEE-1", 1).await;
    assert_eq!(
        app.pay(&other, "upi", "success@razorpay").await.1["gateway"],
        "sim"
    );
    app.wait_for_status(&other, "confirmed").await;
    app.finish().await;
}

async fn stripe_declines_cancel_the_order(b: Backend) {
    let app = stripe_app(b, Workers::Run).await;
    app.stocked("TEE-1", 100, 5).await;
    for (source, code) in [
        ("pm_card_chargeDeclined", "card_declined"),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "insufficient_funds",
        ),
    ] {
        let id = app.new_order("TEE-1", 1).await;
        let (status, payment) = app.pay(&id, "card", source).await;
        assert_eq!(status, 201, "{payment}");
        assert_eq!(
            (payment["status"].as_str(), payment["failure_code"].as_str()),
            (Some("failed"), Some(code))
        );
        assert_eq!(app.order(&id).await["cancel_reason"], "payment_failed");
    }
    let id = app.new_order("TEE-1", 1).await;
    assert_error(
        &app.pay(&id, "card", "4242 4242").await,
        400,
        "invalid_request",
    );
    assert_eq!(app.stock("TEE-1").await, (5, 1));
    app.finish().await;
}

async fn stripe_three_d_secure_completes_by_webhook(b: Backend) {
    let app = stripe_app(b, Workers::Run).await;
    app.stocked("TEE-1", 100, 5).await;
    let id = app.new_order("TEE-1", 1).await;
    let (_, payment) = app.pay(&id, "card", "pm_card_authenticationRequired").await;
    assert_eq!(payment["status"], "requires_action", "{payment}");
    let url = payment["next_action"]["redirect_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 200);
    let order = app.wait_for_status(&id, "confirmed").await;
    for _ in 0..100 {
        if app.order(&id).await["payments"][0]["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The authorization arrived by webhook; Till then captured it (after confirming, so
    // the capture is awaited above rather than raced).
    let pi = intent(
        &app,
        &gateway_ref(&app, payment["id"].as_str().unwrap()).await,
    )
    .await;
    assert_eq!(pi["status"], "succeeded");
    assert_eq!(
        app.order(&id).await["payments"][0]["status"],
        "succeeded",
        "{order}"
    );
    app.finish().await;
}

async fn stripe_authorization_that_cannot_be_kept_is_voided(b: Backend) {
    let app = stripe_app(b, Workers::Manual).await;
    app.stocked("TEE-1", 100, 2).await;
    let id = app.new_order("TEE-1", 2).await;
    let (_, payment) = app.pay(&id, "card", "pm_card_authenticationRequired").await;
    let payment_id = payment["id"].as_str().unwrap().to_string();
    // The hold runs out and the stock is sold, then the customer finishes 3-D Secure.
    app.expire_without_voiding(&id).await;
    let buyer = app.new_order("TEE-1", 2).await;
    assert_eq!(
        app.pay(&buyer, "card", "pm_card_visa").await.1["status"],
        "succeeded"
    );
    let url = payment["next_action"]["redirect_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 200);
    app.sim().deliver_due().await.unwrap();
    let order = app.order(&id).await;
    assert_eq!(order["status"], "expired");
    assert_eq!(order["payments"][0]["status"], "canceled", "{order}");
    assert_eq!(
        order["refunds"],
        json!([]),
        "an authorization is voided, not refunded"
    );
    let pi = intent(&app, &gateway_ref(&app, &payment_id).await).await;
    assert_eq!(
        (pi["status"].as_str(), pi["amount_received"].as_i64()),
        (Some("canceled"), Some(0))
    );
    app.finish().await;
}

async fn stripe_partial_refund(b: Backend) {
    let app = stripe_app(b, Workers::Run).await;
    app.stocked("TEE-1", 1000, 5).await;
    let id = app.new_order("TEE-1", 3).await;
    app.pay(&id, "card", "pm_card_visa").await;
    wait_payment(&app, &id).await;
    let (status, refund) = app
        .call(
            Method::POST,
            &format!("/v1/orders/{id}/refunds"),
            Some(json!({"amount": 1000})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), refund["status"].as_str()),
        (201, Some("succeeded")),
        "{refund}"
    );
    let order = app.order(&id).await;
    assert_eq!(order["status"], "partially_refunded");
    let payment_id = order["payments"][0]["id"].as_str().unwrap().to_string();
    let pi = intent(&app, &gateway_ref(&app, &payment_id).await).await;
    assert_eq!(pi["latest_charge"]["amount_refunded"], 1000, "{pi}");
    app.finish().await;
}

async fn stripe_webhook_signatures(b: Backend) {
    let app = stripe_app(b, Workers::Manual).await;
    app.stocked("TEE-1", 100, 5).await;
    let id = app.new_order("TEE-1", 1).await;
    let (_, payment) = app.pay(&id, "card", "pm_card_authenticationRequired").await;
    let pi_id = gateway_ref(&app, payment["id"].as_str().unwrap()).await;
    let body = json!({"id": "evt_sig", "object": "event", "type": "payment_intent.payment_failed", "data": {"object": {
        "id": pi_id, "object": "payment_intent", "status": "requires_payment_method", "amount": 100,
        "currency": "inr", "metadata": {"till_payment": payment["id"]},
        "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline"}}}})
    .to_string();
    let now = till::clock::system_now_ms() / 1000;
    let post = |header: &'static str, signature: String, body: String| {
        app.http
            .post(format!("{}/v1/webhooks/stripe", app.url))
            .header(header, signature)
            .body(body)
    };
    let tampered = body.replace("card_declined", "card_declinee");
    assert_error(
        &app.send(post(
            "stripe-signature",
            sign(WHSEC, now, body.as_bytes()),
            tampered,
        ))
        .await,
        400,
        "invalid_request",
    );
    assert_error(
        &app.send(post(
            "stripe-signature",
            sign(WHSEC, now - 301, body.as_bytes()),
            body.clone(),
        ))
        .await,
        400,
        "invalid_request",
    );
    assert_error(
        &app.send(post(
            "stripe-signature",
            sign("whsec_wrong", now, body.as_bytes()),
            body.clone(),
        ))
        .await,
        400,
        "invalid_request",
    );
    assert_error(
        &app.send(post(
            "till-sim-signature",
            sign(WHSEC, now, body.as_bytes()),
            body.clone(),
        ))
        .await,
        400,
        "invalid_request",
    );
    assert_eq!(app.order(&id).await["status"], "pending");
    // During a rotation the event carries a signature per secret; the old one still verifies.
    let rotated = format!(
        "{},v1={}",
        sign(WHSEC_OLD, now, body.as_bytes()),
        "00".repeat(32)
    );
    let (status, _) = app
        .send(post("stripe-signature", rotated, body.clone()))
        .await;
    assert_eq!(status, 200);
    let order = app.order(&id).await;
    assert_eq!(
        (order["status"].as_str(), order["cancel_reason"].as_str()),
        (Some("cancelled"), Some("payment_failed"))
    );
    // The same event again: 200, no effect.
    assert_eq!(
        app.send(post(
            "stripe-signature",
            sign(WHSEC, now, body.as_bytes()),
            body
        ))
        .await
        .0,
        200
    );
    app.finish().await;
}

async fn stripe_simulator_idempotency(b: Backend) {
    let app = stripe_app(b, Workers::Manual).await;
    let create = |key: &str, amount: i64, sk: &str| {
        app.http
            .post(format!("{}/sim/stripe/v1/payment_intents", app.url))
            .bearer_auth(sk)
            .header("Idempotency-Key", key)
            .form(&[
                ("amount", amount.to_string()),
                ("currency", "inr".into()),
                ("payment_method", "pm_card_visa".into()),
                ("capture_method", "manual".into()),
                ("confirm", "true".into()),
            ])
    };
    let first = create("k1", 500, SK).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["status"], "requires_capture");
    let again = create("k1", 500, SK).send().await.unwrap();
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    let (status, body) = app.send(create("k1", 600, SK)).await;
    assert_eq!(
        (status.as_u16(), body["error"]["type"].as_str()),
        (400, Some("idempotency_error"))
    );
    let (status, body) = app.send(create("k2", 500, "sk_test_wrong")).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (401, Some("api_key_invalid"))
    );
    let declined = app
        .http
        .post(format!("{}/sim/stripe/v1/payment_intents", app.url))
        .bearer_auth(SK)
        .form(&[
            ("amount", "500"),
            ("currency", "inr"),
            ("payment_method", "pm_card_chargeDeclined"),
            ("confirm", "true"),
        ]);
    let (status, body) = app.send(declined).await;
    assert_eq!(
        (
            status.as_u16(),
            body["error"]["type"].as_str(),
            body["error"]["payment_intent"]["status"].as_str()
        ),
        (402, Some("card_error"), Some("requires_payment_method"))
    );
    // Capturing twice: the second answers Stripe's unexpected-state error.
    let capture = || {
        app.http
            .post(format!(
                "{}/sim/stripe/v1/payment_intents/{}/capture",
                app.url,
                first["id"].as_str().unwrap()
            ))
            .bearer_auth(SK)
    };
    assert_eq!(app.send(capture()).await.1["status"], "succeeded");
    let (status, body) = app.send(capture()).await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (400, Some("payment_intent_unexpected_state"))
    );
    app.finish().await;
}

both!(reconcile_refunds_orphan_captures_and_captures_missing_ones);

async fn reconcile_refunds_orphan_captures_and_captures_missing_ones(b: Backend) {
    let app = stripe_app(b, Workers::Manual).await;
    app.stocked("TEE-1", 1000, 5).await;
    // 1. A capture Till never asked for (say, a payment made by hand in the dashboard).
    let form = |pm: &str| {
        vec![
            ("amount", "700".to_string()),
            ("currency", "inr".into()),
            ("payment_method", pm.to_string()),
            ("confirm", "true".into()),
            ("metadata[till_payment]", "pay_unknown".into()),
        ]
    };
    let stray = app
        .http
        .post(format!("{}/sim/stripe/v1/payment_intents", app.url))
        .bearer_auth(SK)
        .form(&form("pm_card_visa"));
    let stray_pi = app.send(stray).await.1;
    assert_eq!(stray_pi["status"], "succeeded");
    // 2. A confirmed order whose capture never happened (Till stopped after authorizing).
    let id = app.new_order("TEE-1", 1).await;
    let (_, payment) = pay_without_capture(&app, &id).await;
    let pi_id = gateway_ref(&app, payment["id"].as_str().unwrap()).await;
    // 3. A payment Till gave up on (declined, the order cancelled) that the gateway captured
    // anyway: the customer paid again on the same PaymentIntent, out of Till's sight.
    let gave_up = app.new_order("TEE-1", 1).await;
    let (_, lost) = app.pay(&gave_up, "card", "pm_card_chargeDeclined").await;
    assert_eq!(lost["status"], "failed", "{lost}");
    let lost_id = lost["id"].as_str().unwrap().to_string();
    let lost_pi = gateway_ref(&app, &lost_id).await;
    assert_eq!(confirm_again(&app, &lost_pi).await, "requires_capture");
    assert_eq!(act_on_intent(&app, &lost_pi, "capture").await, "succeeded");
    assert_eq!(app.order(&gave_up).await["status"], "cancelled");

    let findings = till::checkout::reconcile::reconcile(
        app.state(),
        till::checkout::reconcile::Scope::Everything,
    )
    .await
    .unwrap();
    let report = findings.render();
    assert_eq!((findings.repaired, findings.flagged), (3, 0), "{report}");
    assert_eq!(
        intent(&app, stray_pi["id"].as_str().unwrap()).await["latest_charge"]["amount_refunded"],
        700,
        "{report}"
    );
    assert_eq!(
        intent(&app, &pi_id).await["status"],
        "succeeded",
        "{report}"
    );
    assert_eq!(app.order(&id).await["payments"][0]["status"], "succeeded");
    assert_eq!(
        intent(&app, &lost_pi).await["latest_charge"]["amount_refunded"],
        1000,
        "{report}"
    );
    // Nothing is left to repair, and a second run repeats no refund.
    let again = till::checkout::reconcile::reconcile(
        app.state(),
        till::checkout::reconcile::Scope::Everything,
    )
    .await
    .unwrap();
    assert_eq!(
        (again.repaired, again.flagged),
        (0, 0),
        "{}",
        again.render()
    );
    // The CLI prints what it found.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_till"))
        .arg("reconcile")
        .env("TILL_DATABASE_URL", &app.db.url)
        .env("TILL_MAIL_DIR", &app.db.mail_dir)
        .env("TILL_API_KEY", crate::helpers::API_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("repaired, 0 flagged"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    app.finish().await;
}

both!(adapters_work_against_a_separate_gateway_sim_process);

/// The same adapters, pointed at `till gateway-sim` running as its own process: only the
/// base URLs and keys change, as they would for the real gateways.
async fn adapters_work_against_a_separate_gateway_sim_process(b: Backend) {
    let (app, sim) = spawn_with_gateway_sim(b, &SimSpec::latency(0), |_| {}).await;
    app.stocked("TEE-1", 1000, 5).await;
    let card = app.new_order("TEE-1", 1).await;
    let (status, payment) = app.pay(&card, "card", "pm_card_visa").await;
    assert_eq!(status, 201, "{payment}");
    wait_payment(&app, &card).await;
    let upi = app.new_order("TEE-1", 1).await;
    assert_eq!(
        app.pay(&upi, "upi", "success@razorpay").await.1["gateway"],
        "razorpay"
    );
    app.wait_for_status(&upi, "confirmed").await;
    wait_payment(&app, &upi).await;
    // Till's own database holds none of the simulator's tables, let alone its records.
    let sim_rows = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM sim_payments")
        .fetch_one(&app.state().db.pool)
        .await;
    assert!(sim_rows.is_err(), "sim_payments in Till's database");
    assert!(app.state().sim.is_none());
    drop(sim);
    app.finish().await;
}

both!(cancelling_a_paid_order_leaves_its_authorization_alone);

/// An order confirmed with an authorization whose capture has not happened yet: a customer's
/// cancel (409, the order is paid) must not void that authorization.
async fn cancelling_a_paid_order_leaves_its_authorization_alone(b: Backend) {
    let app = stripe_app(b, Workers::Manual).await;
    app.stocked("TEE-1", 1000, 5).await;
    let id = app.new_order("TEE-1", 1).await;
    let (_, payment) = pay_without_capture(&app, &id).await;
    let pi_id = gateway_ref(&app, payment["id"].as_str().unwrap()).await;
    assert_error(
        &app.call(Method::POST, &format!("/v1/orders/{id}/cancel"), None)
            .await,
        409,
        "order_not_payable",
    );
    assert_eq!(intent(&app, &pi_id).await["status"], "requires_capture");
    assert_eq!(app.order(&id).await["payments"][0]["status"], "authorized");
    // Recovery then takes the money the order was confirmed with.
    app.clock.advance_ms(120_000);
    app.run_workers().await;
    assert_eq!(intent(&app, &pi_id).await["status"], "succeeded");
    assert_eq!(app.order(&id).await["payments"][0]["status"], "succeeded");
    app.finish().await;
}

both!(
    stripe_forged_event_for_another_payment_changes_nothing,
    stripe_the_payment_an_order_was_paid_with_is_never_canceled
);

fn signed_event(app: &TestApp, kind: &str, intent: Value) -> reqwest::RequestBuilder {
    let body = json!({"id": format!("evt_{}", till::ids::random_token(10)), "object": "event",
        "type": kind, "data": {"object": intent}})
    .to_string();
    let now = till::clock::system_now_ms() / 1000;
    app.http
        .post(format!("{}/v1/webhooks/stripe", app.url))
        .header("stripe-signature", sign(WHSEC, now, body.as_bytes()))
        .body(body)
}

/// Events signed with the right secret but about other money — another PaymentIntent naming
/// the victim's payment, or the victim's own with another amount — change nothing and do
/// not re-point the payment at another PaymentIntent.
async fn stripe_forged_event_for_another_payment_changes_nothing(b: Backend) {
    let app = stripe_app(b, Workers::Manual).await;
    app.stocked("TEE-1", 49_900, 5).await;
    let id = app.new_order("TEE-1", 1).await;
    let (_, payment) = app.pay(&id, "card", "pm_card_authenticationRequired").await;
    let pay_id = payment["id"].as_str().unwrap().to_string();
    let pi_id = gateway_ref(&app, &pay_id).await;
    let forged = |pi: &str, amount: i64, currency: &str| {
        json!({"id": pi, "object": "payment_intent", "status": "requires_capture",
               "amount": amount, "currency": currency, "metadata": {"till_payment": pay_id}})
    };
    for intent in [
        forged("pi_attacker", 50, "inr"),
        forged("pi_attacker", 49_900, "inr"),
        forged(&pi_id, 50, "inr"),
        forged(&pi_id, 49_900, "usd"),
    ] {
        let (status, answer) = app
            .send(signed_event(
                &app,
                "payment_intent.amount_capturable_updated",
                intent,
            ))
            .await;
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
        (Some("pending"), Some("requires_action")),
        "{order}"
    );
    assert_eq!(gateway_ref(&app, &pay_id).await, pi_id);
    app.finish().await;
}

/// The order was confirmed with an authorization; the gateway then says it is canceled.
/// Till does not contradict its decision: the payment stays authorized, the contradiction is
/// recorded and counted, and the order stays confirmed.
async fn stripe_the_payment_an_order_was_paid_with_is_never_canceled(b: Backend) {
    let app = stripe_app(b, Workers::Manual).await;
    app.stocked("TEE-1", 1000, 5).await;
    let id = app.new_order("TEE-1", 1).await;
    let (_, payment) = pay_without_capture(&app, &id).await;
    let pay_id = payment["id"].as_str().unwrap().to_string();
    let pi_id = gateway_ref(&app, &pay_id).await;
    let canceled = json!({"id": pi_id, "object": "payment_intent", "status": "canceled",
        "amount": 1000, "currency": "inr", "metadata": {"till_payment": pay_id}});
    let (status, _) = app
        .send(signed_event(&app, "payment_intent.canceled", canceled))
        .await;
    assert_eq!(status, 200);
    let order = app.order(&id).await;
    assert_eq!(
        (
            order["status"].as_str(),
            order["payments"][0]["status"].as_str()
        ),
        (Some("confirmed"), Some("authorized")),
        "{order}"
    );
    let contradiction: Option<String> =
        sqlx::query_scalar("SELECT contradiction FROM payments WHERE id = $1")
            .bind(&pay_id)
            .fetch_one(&app.state().db.pool)
            .await
            .unwrap();
    assert!(
        contradiction.is_some_and(|c| c.contains("canceled")),
        "the contradiction is recorded"
    );
    let text = app.metrics_text().await;
    assert!(
        text.contains("till_payments_contradicted_total 1"),
        "{text}"
    );
    app.finish().await;
}

both!(reconcile_voids_held_authorizations_and_flags_what_it_cannot_repair);

/// An authorization the gateway holds for an order that ended is voided: here the
/// customer paid again, an hour after the decline that cancelled the order, on the
/// PaymentIntent Till had given up on. A paid order whose money the gateway says is gone is
/// flagged, and `till reconcile` then exits non-zero.
async fn reconcile_voids_held_authorizations_and_flags_what_it_cannot_repair(b: Backend) {
    use till::checkout::reconcile::{reconcile, Scope};
    let app = stripe_app(b, Workers::Manual).await;
    app.stocked("TEE-1", 1000, 5).await;
    let ended = app.new_order("TEE-1", 1).await;
    let (_, declined) = app.pay(&ended, "card", "pm_card_chargeDeclined").await;
    assert_eq!(declined["status"], "failed", "{declined}");
    let held_pi = gateway_ref(&app, declined["id"].as_str().unwrap()).await;
    let first = reconcile(app.state(), Scope::SinceLastPass).await.unwrap();
    assert_eq!(
        (first.repaired, first.flagged),
        (0, 0),
        "{}",
        first.render()
    );
    // An hour on, the order long cancelled in Till, the gateway holds money for it.
    app.clock.advance_ms(3_600_000);
    assert_eq!(confirm_again(&app, &held_pi).await, "requires_capture");
    let second = reconcile(app.state(), Scope::SinceLastPass).await.unwrap();
    assert_eq!(
        (second.repaired, second.flagged),
        (1, 0),
        "{}",
        second.render()
    );
    assert_eq!(intent(&app, &held_pi).await["status"], "canceled");
    // A confirmed order whose authorization was voided at the gateway (by hand, in the
    // dashboard) before Till captured it: nothing Till can repair.
    let paid = app.new_order("TEE-1", 1).await;
    let (_, payment) = pay_without_capture(&app, &paid).await;
    let paid_pi = gateway_ref(&app, payment["id"].as_str().unwrap()).await;
    assert_eq!(act_on_intent(&app, &paid_pi, "cancel").await, "canceled");
    let third = reconcile(app.state(), Scope::SinceLastPass).await.unwrap();
    assert!(third.flagged >= 1, "{}", third.render());
    assert!(third.render().contains(&paid), "{}", third.render());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_till"))
        .arg("reconcile")
        .env("TILL_DATABASE_URL", &app.db.url)
        .env("TILL_MAIL_DIR", &app.db.mail_dir)
        .env("TILL_API_KEY", crate::helpers::API_KEY)
        .env("TILL_CARD_GATEWAY", "stripe")
        .env("TILL_STRIPE_SECRET_KEY", SK)
        .env("TILL_STRIPE_WEBHOOK_SECRET", WHSEC)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Till's books still say what Till decided: the order is confirmed with that payment.
    let order = app.order(&paid).await;
    assert_eq!(
        (
            order["status"].as_str(),
            order["payments"][0]["status"].as_str()
        ),
        (Some("confirmed"), Some("authorized")),
        "{order}"
    );
    app.finish().await;
}

both!(stripe_three_d_secure_through_stripe_js);

/// With no return URL Stripe leaves 3-D Secure to Stripe.js: the payment hands the client
/// what Stripe.js needs (`use_stripe_sdk` and the PaymentIntent's client secret), and the
/// challenge completed there confirms the order as a redirect would.
async fn stripe_three_d_secure_through_stripe_js(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Run, |cfg| {
        cfg.card_gateway = Some("stripe".into());
        cfg.stripe_secret_key = Some(SK.into());
        cfg.stripe_webhook_secret = Some(WHSEC.into());
        cfg.stripe_return_url = Some(String::new());
    })
    .await;
    app.stocked("TEE-1", 1000, 5).await;
    let id = app.new_order("TEE-1", 1).await;
    let pay = || {
        app.request(Method::POST, &format!("/v1/orders/{id}/payments"))
            .header("Idempotency-Key", "stripe-js-1")
            .json(&json!({"method": "card", "source": "pm_card_authenticationRequired"}))
    };
    let (_, payment) = app.send(pay()).await;
    let action = &payment["next_action"];
    assert_eq!(action["type"], "use_stripe_sdk", "{payment}");
    let pi_id = gateway_ref(&app, payment["id"].as_str().unwrap()).await;
    let secret = action["client_secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(secret.starts_with(&format!("{pi_id}_secret_")), "{payment}");
    // A retry of the request gets it again; nothing else shows it, and Till keeps it nowhere
    // in clear (Stripe asks that it go to the customer only).
    assert_eq!(app.send(pay()).await.1, payment);
    let order = app.order(&id).await;
    assert_eq!(
        order["payments"][0]["next_action"]["type"], "redirect_to_url",
        "{order}"
    );
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT body FROM idempotency_keys UNION ALL SELECT COALESCE(redirect_url, '') FROM payments",
    )
    .fetch_all(&app.state().db.pool)
    .await
    .unwrap();
    assert!(
        stored.iter().all(|text| !text.contains(&secret)),
        "{stored:?}"
    );
    let page = action["redirect_url"].as_str().unwrap().to_string();
    assert_eq!(app.http.get(&page).send().await.unwrap().status(), 200);
    app.wait_for_status(&id, "confirmed").await;
    wait_payment(&app, &id).await;
    app.finish().await;
}

both!(money_given_in_time_confirms_the_order_at_expiry);

/// The customer's card was authorized in time but Till never heard (the customer finished
/// 3-D Secure, and the webhook saying so has not come): when the hold runs out, the sweeper
/// asks the gateway first and confirms the order with that money instead of voiding it.
async fn money_given_in_time_confirms_the_order_at_expiry(b: Backend) {
    let app = stripe_app(b, Workers::Manual).await;
    app.stocked("TEE-1", 1000, 5).await;
    let id = app.new_order("TEE-1", 1).await;
    let (_, payment) = app.pay(&id, "card", "pm_card_authenticationRequired").await;
    let pay_id = payment["id"].as_str().unwrap().to_string();
    let page = payment["next_action"]["redirect_url"].as_str().unwrap();
    assert_eq!(app.http.get(page).send().await.unwrap().status(), 200);
    // No worker runs, so the simulator's webhook waits in its queue.
    assert_eq!(
        app.order(&id).await["payments"][0]["status"],
        "requires_action"
    );
    app.clock.advance_ms(16 * 60 * 1000);
    till::checkout::workers::expire_due(app.state())
        .await
        .unwrap();
    let order = app.order(&id).await;
    assert_eq!(
        (
            order["status"].as_str(),
            order["payments"][0]["status"].as_str()
        ),
        (Some("confirmed"), Some("succeeded")),
        "{order}"
    );
    let pi_id = gateway_ref(&app, &pay_id).await;
    assert_eq!(intent(&app, &pi_id).await["status"], "succeeded");
    app.finish().await;
}
