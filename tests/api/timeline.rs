//! `GET /v1/orders/{id}/timeline`: every step of a checkout, oldest first — and only the
//! steps that happened.
//!
//! Over 400 lines: one test per way a checkout goes (paid, declined, expired, re-locked, by
//! webhook, with a coupon, refunded, rolled back), sharing the helpers that read a timeline.

use reqwest::Method;
use serde_json::{json, Value};
use till::Workers;

use crate::both;
use crate::helpers::{assert_error, Backend, TestApp};

both!(
    a_paid_card_order_shows_each_step_in_order,
    a_declined_card_shows_its_compensation,
    an_expired_order_shows_its_stock_released,
    a_capture_after_expiry_shows_the_stock_relocked,
    an_upi_payment_shows_the_webhook_that_confirmed_it,
    each_webhook_receipt_says_what_became_of_it,
    a_coupon_order_shows_its_coupon_reserved_and_settled,
    a_refund_shows_its_request_gateway_call_and_success,
    the_timeline_takes_the_api_key_and_a_known_order,
    an_order_that_rolled_back_left_no_step,
    verify_flags_a_committed_change_without_its_step,
);

async fn timeline(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, body) = app
        .call(Method::GET, &format!("/v1/orders/{id}/timeline"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let entries = body.as_array().expect("an array").clone();
    for entry in &entries {
        let at = entry["at"].as_str().expect("at is a string");
        assert!(
            at.len() == 20 && at.ends_with('Z'),
            "at as created_at: {at}"
        );
        assert!(entry["kind"].is_string(), "{entry}");
        assert!(entry["detail"].is_object(), "{entry}");
    }
    entries
}

/// An order of `qty` TEE-1 paid by card with `source`, which leaves it `status`: its id and
/// the payment.
async fn card_order(app: &TestApp, qty: i64, source: &str, status: &str) -> (String, Value) {
    let id = app.new_order("TEE-1", qty).await;
    let (code, payment) = app.pay(&id, "card", source).await;
    assert_eq!(code, 201, "{payment}");
    assert_eq!(app.order(&id).await["status"], status);
    (id, payment)
}

/// A 10% coupon, `SAVE10`.
async fn save10(app: &TestApp) {
    let terms = json!({"kind": "percent", "percent_off": 10});
    let (status, body) = app
        .call(Method::PUT, "/v1/coupons/SAVE10", Some(terms))
        .await;
    assert_eq!(status, 200, "{body}");
}

fn kinds(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect()
}

/// A card payment's first steps: the order, its stock, the attempt, the gateway's answer.
const UP_TO_THE_GATEWAY: &[&str] = &[
    "order.created",
    "stock.locked",
    "payment.attempted",
    "gateway.call",
];

/// `expected` appears in `entries` in this order (other steps may come between).
fn assert_in_order(entries: &[Value], expected: &[&str]) {
    let all = kinds(entries);
    let mut rest = all.iter();
    for kind in expected {
        assert!(
            rest.any(|k| k == kind),
            "{kind} missing or out of order in {all:?}"
        );
    }
}

/// The one entry of `kind` (there must be exactly one).
fn only<'a>(entries: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = entries.iter().filter(|e| e["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in {:?}", kinds(entries));
    found[0]
}

async fn a_paid_card_order_shows_each_step_in_order(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 49900, 10).await;
    let (id, payment) = card_order(&app, 2, "pm_card_visa", "confirmed").await;
    let entries = timeline(&app, &id).await;
    assert_eq!(entries[0]["kind"], "order.created", "{entries:?}");
    assert_in_order(
        &entries,
        &[
            UP_TO_THE_GATEWAY,
            &[
                "payment.succeeded",
                "order.confirmed",
                "stock.committed",
                "invoice.issued",
            ],
        ]
        .concat(),
    );
    assert_eq!(
        only(&entries, "stock.locked")["detail"]["locks"],
        json!([{"sku": "TEE-1", "warehouse": "blr-1", "qty": 2}])
    );
    let attempted = &only(&entries, "payment.attempted")["detail"];
    assert_eq!(
        (
            &attempted["payment_id"],
            &attempted["method"],
            &attempted["amount"]
        ),
        (&payment["id"], &json!("card"), &json!(99800)),
        "{attempted}"
    );
    let call = &only(&entries, "gateway.call")["detail"];
    assert_eq!(call["operation"], "create", "{call}");
    assert_eq!(call["outcome"], "succeeded", "{call}");
    assert_eq!(call["gateway"], payment_gateway(&app, &id).await, "{call}");
    assert!(call["ms"].as_i64().is_some_and(|ms| ms >= 0), "{call}");
    let invoice = app.order(&id).await["invoice_number"].clone();
    assert_eq!(
        only(&entries, "invoice.issued")["detail"]["number"],
        invoice
    );
    assert!(invoice.is_string(), "{invoice}");
    app.finish().await;
}

async fn payment_gateway(app: &TestApp, order_id: &str) -> String {
    sqlx::query_scalar::<_, String>("SELECT gateway FROM payments WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(&app.state().db.pool)
        .await
        .unwrap()
}

async fn a_declined_card_shows_its_compensation(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 500, 10).await;
    let (id, _) = card_order(&app, 3, "pm_card_chargeDeclined", "cancelled").await;
    let entries = timeline(&app, &id).await;
    let compensated = ["payment.failed", "order.cancelled", "stock.released"];
    assert_in_order(&entries, &[UP_TO_THE_GATEWAY, &compensated].concat());
    assert_eq!(
        only(&entries, "gateway.call")["detail"]["outcome"],
        "failed"
    );
    assert_eq!(
        only(&entries, "payment.failed")["detail"]["code"],
        "card_declined"
    );
    assert_eq!(
        only(&entries, "order.cancelled")["detail"]["reason"],
        "payment_failed"
    );
    assert_eq!(only(&entries, "stock.released")["detail"]["locks"], 1);
    for never in ["order.confirmed", "invoice.issued", "stock.committed"] {
        assert!(!kinds(&entries).contains(&never), "{never} in {entries:?}");
    }
    app.finish().await;
}

async fn an_expired_order_shows_its_stock_released(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |cfg| cfg.hold_ttl_secs = 60).await;
    app.stocked("TEE-1", 500, 10).await;
    let id = app.new_order("TEE-1", 4).await;
    app.clock.advance_ms(61_000);
    app.run_workers().await;
    assert_eq!(app.order(&id).await["status"], "expired");
    let entries = timeline(&app, &id).await;
    assert_eq!(
        kinds(&entries),
        [
            "order.created",
            "stock.locked",
            "order.expired",
            "stock.released",
            // The customer was told (the relay runs with the workers).
            "email.sent"
        ]
    );
    assert_eq!(entries[2]["detail"]["reason"], "expired");
    // A second sweep changes nothing, and writes nothing.
    app.run_workers().await;
    assert_eq!(timeline(&app, &id).await.len(), 5);
    app.finish().await;
}

async fn a_capture_after_expiry_shows_the_stock_relocked(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 100, 10).await;
    let id = app.new_order("TEE-1", 3).await;
    let (status, payment) = app.pay(&id, "upi", "success@razorpay").await;
    assert_eq!(
        (status.as_u16(), &payment["status"]),
        (201, &json!("processing"))
    );
    app.expire_without_voiding(&id).await;
    app.clock.advance_ms(1_000);
    assert_eq!(app.sim().deliver_due().await.unwrap(), 1);
    assert_eq!(app.order(&id).await["status"], "confirmed");
    let entries = timeline(&app, &id).await;
    assert_in_order(
        &entries,
        &[
            "gateway.call",
            "order.expired",
            "stock.released",
            "webhook.received",
            "payment.succeeded",
            "stock.relocked",
            "order.confirmed",
            "stock.committed",
            "invoice.issued",
        ],
    );
    let relocked = &only(&entries, "stock.relocked")["detail"];
    assert_eq!(relocked["from"], "expired", "{relocked}");
    assert_eq!(
        relocked["locks"],
        json!([{"sku": "TEE-1", "warehouse": "blr-1", "qty": 3}])
    );
    assert_eq!(
        only(&entries, "order.expired")["detail"]["voiding"],
        json!([payment["id"]])
    );
    app.finish().await;
}

async fn an_upi_payment_shows_the_webhook_that_confirmed_it(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 500, 10).await;
    let id = app.new_order("TEE-1", 1).await;
    let (status, payment) = app.pay(&id, "upi", "success@razorpay").await;
    assert_eq!(status, 201, "{payment}");
    assert_eq!(payment["status"], "processing", "{payment}");
    app.wait_for_status(&id, "confirmed").await;
    let entries = timeline(&app, &id).await;
    assert_in_order(
        &entries,
        &[
            "payment.attempted",
            "gateway.call",
            "webhook.received",
            "payment.succeeded",
            "order.confirmed",
            "invoice.issued",
        ],
    );
    let first_call = entries
        .iter()
        .find(|e| e["kind"] == "gateway.call")
        .unwrap();
    assert_eq!(
        first_call["detail"]["outcome"], "processing",
        "{first_call}"
    );
    let webhook = entries
        .iter()
        .find(|e| e["kind"] == "webhook.received")
        .unwrap();
    assert_eq!(
        (
            &webhook["detail"]["outcome"],
            &webhook["detail"]["reported"],
            &webhook["detail"]["payment_id"]
        ),
        (&json!("applied"), &json!("succeeded"), &payment["id"]),
        "{webhook}"
    );
    assert!(webhook["detail"]["event_id"].is_string(), "{webhook}");
    app.finish().await;
}

/// Events fed to the receiver directly, as the webhook route would after their signature
/// checked out: applied, then the same event again, then one about other money.
async fn each_webhook_receipt_says_what_became_of_it(b: Backend) {
    use till::payments::gateway::{GatewayPayment, Outcome, WebhookEvent};
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 500, 10).await;
    let id = app.new_order("TEE-1", 1).await;
    let (status, payment) = app.pay(&id, "upi", "success@razorpay").await;
    assert_eq!(status, 201, "{payment}");
    let (gateway, gateway_ref): (String, String) =
        sqlx::query_as("SELECT gateway, gateway_ref FROM payments WHERE order_id = $1")
            .bind(&id)
            .fetch_one(&app.state().db.pool)
            .await
            .unwrap();
    let event = |event_id: &str, amount_minor: i64| WebhookEvent {
        event_id: event_id.into(),
        payment_key: payment["id"].as_str().unwrap().into(),
        payment: GatewayPayment {
            gateway_ref: gateway_ref.clone(),
            outcome: Outcome::Succeeded,
        },
        amount_minor,
        currency: "INR".into(),
    };
    let receive = |ev: WebhookEvent| {
        let (state, gateway) = (app.state().clone(), gateway.clone());
        async move {
            till::checkout::events::receive(&state, &gateway, &ev)
                .await
                .unwrap()
        }
    };
    use till::checkout::events::Received;
    assert_eq!(receive(event("evt_a", 500)).await, Received::Applied);
    assert_eq!(receive(event("evt_a", 500)).await, Received::Duplicate);
    assert!(matches!(
        receive(event("evt_b", 1)).await,
        Received::Ignored(_)
    ));
    assert_eq!(app.order(&id).await["status"], "confirmed");
    let entries = timeline(&app, &id).await;
    let receipts: Vec<(&Value, &Value, bool)> = entries
        .iter()
        .filter(|e| e["kind"] == "webhook.received")
        .map(|e| {
            let d = &e["detail"];
            (&d["event_id"], &d["outcome"], d["reason"].is_string())
        })
        .collect();
    assert_eq!(
        receipts,
        [
            (&json!("evt_a"), &json!("applied"), false),
            (&json!("evt_a"), &json!("duplicate"), false),
            (&json!("evt_b"), &json!("ignored"), true),
        ]
    );
    assert_in_order(
        &entries,
        &["webhook.received", "payment.succeeded", "order.confirmed"],
    );
    app.finish().await;
}

async fn a_coupon_order_shows_its_coupon_reserved_and_settled(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 10_000, 10).await;
    save10(&app).await;
    let (status, order) = app
        .call(
            Method::POST,
            "/v1/orders",
            Some(json!({"items": [{"sku": "TEE-1", "qty": 1}], "coupon": "save10"})),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().unwrap();
    let entries = timeline(&app, id).await;
    assert_eq!(
        kinds(&entries),
        ["order.created", "coupon.reserved", "stock.locked"]
    );
    assert_eq!(
        entries[1]["detail"],
        json!({"code": "SAVE10", "discount": 1_000})
    );
    let (status, payment) = app.pay(id, "card", "pm_card_visa").await;
    assert_eq!(status, 201, "{payment}");
    assert_in_order(
        &timeline(&app, id).await,
        &["coupon.reserved", "order.confirmed", "coupon.settled"],
    );
    app.finish().await;
}

async fn a_refund_shows_its_request_gateway_call_and_success(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 500, 10).await;
    let (id, _) = card_order(&app, 2, "pm_card_visa", "confirmed").await;
    let (status, refund) = app
        .call(
            Method::POST,
            &format!("/v1/orders/{id}/refunds"),
            Some(json!({"amount": 300})),
        )
        .await;
    assert_eq!(status, 201, "{refund}");
    let entries = timeline(&app, &id).await;
    assert_in_order(
        &entries,
        &[
            "invoice.issued",
            "refund.requested",
            "gateway.call",
            "refund.succeeded",
        ],
    );
    let requested = &only(&entries, "refund.requested")["detail"];
    assert_eq!(
        (
            &requested["refund_id"],
            &requested["amount"],
            &requested["reason"]
        ),
        (&refund["id"], &json!(300), &json!("requested")),
        "{requested}"
    );
    let call = &entries
        .iter()
        .rev()
        .find(|e| e["kind"] == "gateway.call")
        .unwrap()["detail"];
    assert_eq!(
        (&call["operation"], &call["outcome"]),
        (&json!("refund"), &json!("ok"))
    );
    app.finish().await;
}

async fn the_timeline_takes_the_api_key_and_a_known_order(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 500, 10).await;
    let order = app.order_of("TEE-1", 1).await;
    let id = order["id"].as_str().unwrap();
    let path = format!("{}/v1/orders/{id}/timeline", app.url);
    let anonymous = app.send(app.http.get(&path)).await;
    assert_error(&anonymous, 401, "unauthorized");
    // The order's client secret reads the order, not its timeline.
    let secret = order["client_secret"].as_str().unwrap();
    let customer = app.send(app.http.get(&path).bearer_auth(secret)).await;
    assert_error(&customer, 401, "unauthorized");
    let unknown = app
        .call(Method::GET, "/v1/orders/ord_nosuchorder/timeline", None)
        .await;
    assert_error(&unknown, 404, "not_found");
    app.finish().await;
}

/// A crash-style check: a checkout whose transaction rolled back (out of stock after the
/// order row and a coupon were written) leaves no step behind.
async fn an_order_that_rolled_back_left_no_step(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("A", 100, 5).await;
    app.stocked("B", 100, 1).await;
    save10(&app).await;
    let got = app
        .call(
            Method::POST,
            "/v1/orders",
            Some(json!({"items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 3}], "coupon": "SAVE10"})),
        )
        .await;
    assert_error(&got, 409, "out_of_stock");
    let steps: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM timeline")
        .fetch_one(&app.state().db.pool)
        .await
        .unwrap();
    assert_eq!(steps, 0);
    app.finish().await;
}

/// `till verify` holds the timeline to its changes: a paid order without its confirmation
/// step, or an attempt without its step, is reported.
async fn verify_flags_a_committed_change_without_its_step(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("TEE-1", 500, 10).await;
    let (id, _) = card_order(&app, 1, "pm_card_visa", "confirmed").await;
    let failing = || async {
        let report = till::verify::check(&app.state().db).await.unwrap();
        let failing: Vec<&str> = report
            .results
            .iter()
            .filter(|(_, n, _)| *n > 0)
            .map(|(name, _, _)| *name)
            .collect::<Vec<_>>();
        failing.join("; ")
    };
    assert_eq!(failing().await, "");
    for (kind, invariant) in [
        ("order.confirmed", "an order's end is on its timeline once"),
        (
            "payment.attempted",
            "every payment attempt is on its order's timeline once",
        ),
    ] {
        sqlx::query("DELETE FROM timeline WHERE order_id = $1 AND kind = $2")
            .bind(&id)
            .bind(kind)
            .execute(&app.state().db.pool)
            .await
            .unwrap();
        let failing = failing().await;
        assert!(failing.contains(invariant), "{kind}: {failing}");
    }
    app.close().await;
}
