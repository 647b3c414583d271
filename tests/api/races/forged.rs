//! Money that must not move on a word that does not bind it: a void that reaches the gateway
//! before the create it voids, events correctly signed but naming another payment (another
//! gateway id, amount, currency or gateway), and a Razorpay body sent again under new event
//! ids (the id header is not signed).

use serde_json::{json, Value};
use till::payments::gateway::{Charge, Outcome};
use till::payments::signature::{hmac_hex, sign};

use super::audit::{self, books, Race, Report};
use crate::both;
use crate::gateway_sim::{
    spawn_with_gateway_sim, SimSpec, RAZORPAY_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET,
};
use crate::helpers::{Backend, TestApp};

const SIM_WEBHOOK_SECRET: &str = "sim_whsec_races";
const PRICE: i64 = 49_900;

both!(
    a_void_that_beats_the_create_leaves_no_money,
    signed_events_for_another_payment_change_nothing,
    a_razorpay_body_sent_again_under_new_event_ids_changes_nothing,
);

/// A slow create overtaken by its void (the customer cancelled meanwhile): the gateway must
/// not take money on the create that arrives after the void.
async fn a_void_that_beats_the_create_leaves_no_money(b: Backend) {
    let (app, sim) = spawn_with_gateway_sim(b, &SimSpec::latency(0), |_| {}).await;
    let mut figures = audit::Figures {
        title: format!("void before create, every gateway, on {b:?}"),
        ..Default::default()
    };
    for (gateway, method, source) in [
        ("sim", till::payments::Method::Card, "pm_card_visa"),
        ("stripe", till::payments::Method::Card, "pm_card_visa"),
        ("razorpay", till::payments::Method::Card, "pm_card_visa"),
        ("razorpay", till::payments::Method::Upi, "success@razorpay"),
    ] {
        let charge = Charge {
            key: format!("pay_void_first_{gateway}_{}", method.as_str()),
            gateway_ref: None,
            amount_minor: PRICE,
            currency: "INR".into(),
            method,
            source: source.into(),
        };
        let adapter = app.state().gateway(gateway).unwrap();
        let void = adapter.cancel(&charge).await;
        let create = adapter.create(&charge).await;
        figures.races += 1;
        let took = matches!(
            &create,
            Ok(gp) if matches!(gp.outcome, Outcome::Succeeded | Outcome::Authorized)
        );
        let held: Vec<_> = books(&app, Some(&sim.ledger))
            .await
            .into_iter()
            .filter(|m| m.key.as_deref() == Some(charge.key.as_str()) && m.held())
            .collect();
        let kept = held.iter().any(|m| !m.lapses());
        let outcome = if kept {
            "money_kept"
        } else if took {
            "authorization_lapses"
        } else {
            "nothing_taken"
        };
        *figures.outcomes.entry(outcome.into()).or_default() += 1;
        if kept {
            figures.violation(
                "create_after_its_void_took_money",
                format!("{gateway} {}: void answered {void:?}, create answered {create:?}; gateway holds {held:?}", method.as_str()),
            );
        }
    }
    let mut report = Report::default();
    report.add(figures);
    drop(sim);
    app.close().await;
    report.assert_clean();
}

/// The victims: a Stripe 3-D Secure payment, a Razorpay UPI intent and an in-process wallet
/// payment, all waiting for the customer.
struct Victims {
    orders: Vec<String>,
    payments: Vec<String>,
    refs: Vec<String>,
}

async fn victims(app: &TestApp) -> Victims {
    let mut v = Victims {
        orders: vec![],
        payments: vec![],
        refs: vec![],
    };
    for (method, source) in [
        ("card", "pm_card_authenticationRequired"),
        ("upi", "upi_intent"),
        ("wallet", "paytm"),
    ] {
        let id = app.new_order("TEE-1", 1).await;
        let (status, payment) = app.pay(&id, method, source).await;
        assert_eq!(status, 201, "{payment}");
        let pay_id = payment["id"].as_str().unwrap().to_string();
        v.refs.push(gateway_ref(app, &pay_id).await);
        v.orders.push(id);
        v.payments.push(pay_id);
    }
    v
}

async fn gateway_ref(app: &TestApp, payment_id: &str) -> String {
    sqlx::query_scalar::<_, Option<String>>("SELECT gateway_ref FROM payments WHERE id = $1")
        .bind(payment_id)
        .fetch_one(&app.state().db.pool)
        .await
        .unwrap()
        .unwrap_or_default()
}

/// Everything a forged event could move: the orders as Till shows them, the gateway ids Till
/// recorded, and the stock.
async fn snapshot(app: &TestApp, v: &Victims) -> Value {
    let mut orders = Vec::new();
    for id in &v.orders {
        let mut order = app.order(id).await;
        order["updated_at"] = Value::Null;
        orders.push(order);
    }
    let mut refs = Vec::new();
    for p in &v.payments {
        refs.push(gateway_ref(app, p).await);
    }
    json!({"orders": orders, "refs": refs, "stock": app.inventory("TEE-1").await})
}

fn stripe_event(intent: Value) -> (String, Vec<(&'static str, String)>, String) {
    let kind = match intent["status"].as_str() {
        Some("succeeded") => "payment_intent.succeeded",
        _ => "payment_intent.amount_capturable_updated",
    };
    let body = json!({"id": format!("evt_forged_{}", till::ids::random_token(8)), "object": "event", "type": kind,
        "created": now_secs(), "livemode": false, "data": {"object": intent}})
    .to_string();
    let signature = sign(STRIPE_WEBHOOK_SECRET, now_secs(), body.as_bytes());
    ("stripe".into(), vec![("stripe-signature", signature)], body)
}

fn razorpay_event(event: &str, entity: Value) -> (String, Vec<(&'static str, String)>, String) {
    let body = json!({"entity": "event", "account_id": "acc_forged", "event": event, "contains": ["payment"],
        "payload": {"payment": {"entity": entity}}, "created_at": now_secs()})
    .to_string();
    let headers = vec![
        (
            "x-razorpay-signature",
            hmac_hex(RAZORPAY_WEBHOOK_SECRET, body.as_bytes()),
        ),
        (
            "x-razorpay-event-id",
            format!("evt_forged_{}", till::ids::random_token(8)),
        ),
    ];
    ("razorpay".into(), headers, body)
}

fn sim_event(gateway_ref: &str, key: &str) -> (String, Vec<(&'static str, String)>, String) {
    let body = json!({"id": format!("evt_forged_{}", till::ids::random_token(8)), "type": "payment.succeeded", "created": now_secs(),
        "data": {"id": gateway_ref, "key": key, "status": "succeeded", "failure_code": null}})
    .to_string();
    let signature = sign(SIM_WEBHOOK_SECRET, now_secs(), body.as_bytes());
    ("sim".into(), vec![("till-sim-signature", signature)], body)
}

fn now_secs() -> i64 {
    till::clock::system_now_ms() / 1000
}

fn intent(id: &str, amount: i64, currency: &str, status: &str, key: &str) -> Value {
    json!({"id": id, "object": "payment_intent", "amount": amount, "amount_capturable": amount, "amount_received": 0,
        "currency": currency, "status": status, "capture_method": "manual", "payment_method": "pm_card_visa",
        "metadata": {"till_payment": key}, "next_action": null, "last_payment_error": null})
}

fn rzp_payment(id: &str, amount: i64, currency: &str, status: &str, key: &str) -> Value {
    json!({"id": id, "entity": "payment", "amount": amount, "currency": currency, "status": status,
        "method": "upi", "captured": status == "captured", "amount_refunded": 0, "notes": {"till_payment": key}})
}

async fn post(
    app: &TestApp,
    (gateway, headers, body): (String, Vec<(&'static str, String)>, String),
) -> (u16, Value) {
    let mut req = app
        .http
        .post(format!("{}/v1/webhooks/{gateway}", app.url))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let (status, body) = app.send(req).await;
    (status.as_u16(), body)
}

/// Correctly signed events that name a victim's payment but another gateway id, amount,
/// currency or gateway: each is answered (200 or 400) and changes nothing; afterwards the
/// victims pay for real and the books agree.
async fn signed_events_for_another_payment_change_nothing(b: Backend) {
    let started = std::time::Instant::now();
    let (app, sim) = spawn_with_gateway_sim(b, &SimSpec::latency(0), |cfg| {
        cfg.wallet_gateway = Some("sim".into());
        cfg.sim_webhook_secret = Some(SIM_WEBHOOK_SECRET.into());
        // The in-process wallet stays with the customer for the whole test.
        cfg.sim_delay_ms = 600_000;
        cfg.hold_ttl_secs = 600;
    })
    .await;
    app.stocked("TEE-1", PRICE, 100).await;
    let v = victims(&app).await;
    let (p1, p2, p3) = (&v.payments[0], &v.payments[1], &v.payments[2]);
    let (pi, rzp) = (&v.refs[0], &v.refs[1]);
    let forged = vec![
        (
            "stripe: another intent for 50",
            stripe_event(intent("pi_attacker", 50, "inr", "requires_capture", p1)),
        ),
        (
            "stripe: another intent for the full amount",
            stripe_event(intent("pi_attacker", PRICE, "inr", "requires_capture", p1)),
        ),
        (
            "stripe: another intent captured",
            stripe_event(intent("pi_attacker", PRICE, "inr", "succeeded", p1)),
        ),
        (
            "stripe: the intent for 50",
            stripe_event(intent(pi, 50, "inr", "requires_capture", p1)),
        ),
        (
            "stripe: the intent in USD",
            stripe_event(intent(pi, PRICE, "usd", "requires_capture", p1)),
        ),
        (
            "stripe: naming a Razorpay payment",
            stripe_event(intent(rzp, PRICE, "inr", "requires_capture", p2)),
        ),
        (
            "razorpay: another payment for 50",
            razorpay_event(
                "payment.authorized",
                rzp_payment("pay_attacker", 50, "INR", "authorized", p2),
            ),
        ),
        (
            "razorpay: another payment for the full amount",
            razorpay_event(
                "payment.authorized",
                rzp_payment("pay_attacker", PRICE, "INR", "authorized", p2),
            ),
        ),
        (
            "razorpay: another payment captured",
            razorpay_event(
                "payment.captured",
                rzp_payment("pay_attacker", PRICE, "INR", "captured", p2),
            ),
        ),
        (
            "razorpay: the payment for 50",
            razorpay_event(
                "payment.authorized",
                rzp_payment(rzp, 50, "INR", "authorized", p2),
            ),
        ),
        (
            "razorpay: the payment in USD",
            razorpay_event(
                "payment.authorized",
                rzp_payment(rzp, PRICE, "USD", "authorized", p2),
            ),
        ),
        (
            "razorpay: naming a Stripe payment",
            razorpay_event(
                "payment.authorized",
                rzp_payment(pi, PRICE, "INR", "authorized", p1),
            ),
        ),
        ("sim: naming a Stripe payment", sim_event(pi, p1)),
        ("sim: naming a Razorpay payment", sim_event(rzp, p2)),
        ("sim: another payment", sim_event("simpay_attacker", p3)),
    ];
    let mut figures = audit::Figures {
        title: format!("forged but signed events on {b:?}"),
        ..Default::default()
    };
    for (name, event) in forged {
        let before = snapshot(&app, &v).await;
        let (status, answer) = post(&app, event).await;
        let after = snapshot(&app, &v).await;
        figures.races += 1;
        *figures
            .outcomes
            .entry(format!("answered {status}"))
            .or_default() += 1;
        if before != after {
            figures.violation(
                "forged_event_changed_something",
                format!("{name}: answered {status} {answer}; before {before}; after {after}"),
            );
        } else if !matches!(status, 200 | 400) {
            figures.violation(
                "forged_event_answered_oddly",
                format!("{name}: {status} {answer}"),
            );
        }
    }
    // The customers finish for real: 3-D Secure, the UPI app, and a cancel of the wallet.
    let payment = app.order(&v.orders[0]).await["payments"][0].clone();
    super::complete_3ds(&app, &payment).await;
    let approve = format!("{}/sim/razorpay/upi/{rzp}/approve", sim.url);
    assert!(app
        .http
        .get(approve)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    let cancelled = super::cancel(&app, &v.orders[2]).await;
    let races = vec![
        Race::new(v.orders[0].clone()),
        Race::new(v.orders[1].clone()),
        Race {
            order_id: v.orders[2].clone(),
            cancelled_by_customer: cancelled,
        },
    ];
    let books = audit::settle_and_audit(
        &app,
        Some(&sim.ledger),
        &races,
        super::QUIET,
        String::new(),
        started,
    )
    .await;
    for (kind, n) in books.violations {
        *figures
            .violations
            .entry(format!("afterwards: {kind}"))
            .or_default() += n;
    }
    figures.examples.extend(books.examples);
    for (status, n) in books.outcomes {
        *figures
            .outcomes
            .entry(format!("victims {status}"))
            .or_default() += n;
    }
    let mut report = Report::default();
    report.add(figures);
    drop(sim);
    app.close().await;
    report.assert_clean();
}

/// A genuine Razorpay event sent once more under three new `X-Razorpay-Event-Id` values: the
/// header is not signed, so the body is what identifies the event; the copies are refused
/// (400) or answered as duplicates, and change nothing.
async fn a_razorpay_body_sent_again_under_new_event_ids_changes_nothing(b: Backend) {
    let (app, sim) = spawn_with_gateway_sim(b, &SimSpec::latency(0), |_| {}).await;
    app.stocked("TEE-1", PRICE, 10).await;
    let id = app.new_order("TEE-1", 1).await;
    let (_, payment) = app.pay(&id, "upi", "success@razorpay").await;
    let pay_id = payment["id"].as_str().unwrap().to_string();
    app.wait_for_status(&id, "confirmed").await;
    let rzp = gateway_ref(&app, &pay_id).await;
    let entity = rzp_payment(&rzp, PRICE, "INR", "authorized", &pay_id);
    let event = razorpay_event("payment.authorized", entity);
    let first = post(&app, event.clone()).await;
    let mut figures = audit::Figures {
        title: format!("razorpay body sent again under new event ids on {b:?}"),
        races: 3,
        ..Default::default()
    };
    *figures
        .outcomes
        .entry(format!("first answered {}", first.0))
        .or_default() += 1;
    let before = app.order(&id).await;
    for n in 0..3 {
        let (gateway, mut headers, body) = event.clone();
        headers[1].1 = format!("evt_again_{n}");
        let (status, answer) = post(&app, (gateway, headers, body)).await;
        let duplicate = status == 400 || answer["duplicate"] == true;
        *figures
            .outcomes
            .entry(format!(
                "again answered {status}{}",
                if answer["duplicate"] == true {
                    " duplicate"
                } else {
                    ""
                }
            ))
            .or_default() += 1;
        if !duplicate {
            figures.violation(
                "same_body_accepted_as_a_new_event",
                format!("evt_again_{n}: {status} {answer}"),
            );
        }
    }
    let mut after = app.order(&id).await;
    for o in [&mut after] {
        o["updated_at"] = before["updated_at"].clone();
    }
    if before != after {
        figures.violation(
            "same_body_changed_the_order",
            format!("before {before}; after {after}"),
        );
    }
    let mut report = Report::default();
    report.add(figures);
    drop(sim);
    app.close().await;
    report.assert_clean();
}
