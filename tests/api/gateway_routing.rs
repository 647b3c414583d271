//! Which gateway takes which method, and the simulator only where it is used: beside a
//! real gateway a method left on the simulator by default is turned off, the simulator's
//! routes answer 404 once nothing is routed to it, and it never answers to real keys.

use reqwest::Method;
use serde_json::json;
use till::{Config, Workers};

use crate::both;
use crate::helpers::{assert_error, Backend, TestApp};

/// The "real" Stripe of these tests: an address where nothing answers (only the routing is
/// under test, and no payment reaches it).
const REAL_STRIPE: &str = "http://127.0.0.1:9/v1-unreachable";
const REAL_SK: &str = "sk_live_routing";
const REAL_WHSEC: &str = "whsec_live_routing";

fn real_stripe(cfg: &mut Config) {
    cfg.card_gateway = Some("stripe".into());
    cfg.stripe_url = Some(REAL_STRIPE.into());
    cfg.stripe_secret_key = Some(REAL_SK.into());
    cfg.stripe_webhook_secret = Some(REAL_WHSEC.into());
}

both!(
    a_method_left_on_the_simulator_by_default_is_off_beside_a_real_gateway,
    naming_the_simulator_keeps_it_beside_a_real_gateway,
    the_simulator_is_not_served_when_no_method_uses_it,
    the_simulator_pages_sit_behind_the_body_limit,
);

async fn a_method_left_on_the_simulator_by_default_is_off_beside_a_real_gateway(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, real_stripe).await;
    app.stocked("TEE-1", 1000, 5).await;
    let id = app.new_order("TEE-1", 1).await;
    for (method, source) in [("upi", "success@razorpay"), ("wallet", "paytm")] {
        assert_error(
            &app.pay(&id, method, source).await,
            400,
            "payment_method_unavailable",
        );
    }
    let order = app.order(&id).await;
    assert_eq!(
        (
            order["status"].as_str(),
            order["payments"].as_array().map(Vec::len)
        ),
        (Some("pending"), Some(0)),
        "{order}"
    );
    app.finish().await;
}

async fn naming_the_simulator_keeps_it_beside_a_real_gateway(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |cfg| {
        real_stripe(cfg);
        cfg.upi_gateway = Some("sim".into());
    })
    .await;
    app.stocked("TEE-1", 1000, 5).await;
    let id = app.new_order("TEE-1", 1).await;
    let (status, payment) = app.pay(&id, "upi", "success@razorpay").await;
    assert_eq!(
        (status.as_u16(), payment["gateway"].as_str()),
        (201, Some("sim")),
        "{payment}"
    );
    // Served again, the simulator answers neither to the real secret key nor with its
    // webhook secret: it has keys of its own.
    let (status, _) = app
        .send(
            app.http
                .get(format!("{}/sim/stripe/v1/payment_intents", app.url))
                .bearer_auth(REAL_SK),
        )
        .await;
    assert_eq!(status, 401);
    app.finish().await;
}

async fn the_simulator_is_not_served_when_no_method_uses_it(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |cfg| {
        real_stripe(cfg);
        cfg.razorpay_url = Some("http://127.0.0.1:9/rzp-unreachable".into());
        cfg.razorpay_key_id = Some("rzp_live_routing".into());
        cfg.razorpay_key_secret = Some("rzp_secret_routing".into());
        cfg.razorpay_webhook_secret = Some("rzp_whsec_routing".into());
        cfg.upi_gateway = Some("razorpay".into());
        cfg.wallet_gateway = Some("razorpay".into());
    })
    .await;
    for path in [
        "/sim/stripe/v1/payment_intents",
        "/sim/razorpay/v1/payments",
        "/sim/3ds/simpay_1",
        "/sim/razorpay/upi/pay_1/approve",
    ] {
        let got = app.send(app.http.get(format!("{}{path}", app.url))).await;
        assert_error(&got, 404, "not_found");
    }
    let got = app
        .send(
            app.http
                .post(format!("{}/sim/stripe/v1/payment_intents", app.url))
                .bearer_auth(REAL_SK)
                .form(&[("amount", "100"), ("currency", "inr")]),
        )
        .await;
    assert_error(&got, 404, "not_found");
    app.finish().await;
}

async fn the_simulator_pages_sit_behind_the_body_limit(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |cfg| {
        cfg.card_gateway = Some("stripe".into());
    })
    .await;
    let big = "a".repeat(1_900_000);
    let (status, _) = app
        .send(
            app.http
                .post(format!("{}/sim/stripe/v1/payment_intents", app.url))
                .body(format!("amount=100&metadata[x]={big}")),
        )
        .await;
    assert_eq!(status, 413);
    let (status, ready) = app.send(app.request(Method::GET, "/readyz")).await;
    assert_eq!((status.as_u16(), &ready["gateways"]), (200, &json!({})));
    app.finish().await;
}
