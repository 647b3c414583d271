//! Money that must not move on a word that does not bind it: a void that reaches the gateway
//! before the create it voids, events correctly signed but naming another payment (another
//! gateway id, amount, currency or gateway), and a Razorpay body sent again under new event
//! ids (the id header is not signed).

use serde_json::{json, Value};
use till::payments::gateway::{Charge, Outcome};
use till::payments::Method;

use super::audit::{books, settle_and_audit, Figures, Race, Report};
use super::webhooks::{intent, rzp_payment, Webhook, SIM_WEBHOOK_SECRET};
use crate::both;
use crate::gateway_sim::{spawn_with_gateway_sim, GatewaySim, SimSpec};
use crate::helpers::{Backend, TestApp};

const PRICE: i64 = 49_900;

both!(
    a_void_that_beats_the_create_leaves_no_money,
    signed_events_for_another_payment_change_nothing,
    a_razorpay_body_sent_again_under_new_event_ids_changes_nothing,
);

/// A slow create overtaken by its void (the customer cancelled meanwhile): the gateway must
/// not take money on the create that arrives after the void.
async fn a_void_that_beats_the_create_leaves_no_money(b: Backend) {
    // Wallets on the embedded simulator, so its own protocol is served too ("sim" below).
    let (app, sim) = spawn_with_gateway_sim(b, &SimSpec::latency(0), |cfg| {
        cfg.wallet_gateway = Some("sim".into());
    })
    .await;
    let mut figures = Figures::new(format!("void before create, every gateway, on {b:?}"));
    for (gateway, method, source) in [
        ("sim", Method::Card, "pm_card_visa"),
        ("stripe", Method::Card, "pm_card_visa"),
        ("razorpay", Method::Card, "pm_card_visa"),
        ("razorpay", Method::Upi, "success@razorpay"),
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
        figures.count(outcome);
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

/// The victims: a Stripe 3-D Secure payment, a Razorpay UPI intent and an embedded-simulator wallet
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
    for (method, source, waits_as) in [
        ("card", "pm_card_authenticationRequired", "requires_action"),
        ("upi", "upi_intent", "requires_action"),
        ("wallet", "paytm", "processing"),
    ] {
        let id = app.new_order("TEE-1", 1).await;
        let (status, payment) = app.pay(&id, method, source).await;
        assert_eq!(status, 201, "{payment}");
        let pay_id = payment["id"].as_str().unwrap().to_string();
        v.refs.push(waiting(app, &id, waits_as).await);
        v.orders.push(id);
        v.payments.push(pay_id);
    }
    v
}

/// Waits (bounded) until the order's payment waits for its customer as `status`, with the
/// gateway's id recorded (a slow answer lands a moment after the request); returns that id.
async fn waiting(app: &TestApp, order_id: &str, status: &str) -> String {
    let mut last = Value::Null;
    for _ in 0..400 {
        last = app.order(order_id).await["payments"][0].clone();
        let id = gateway_ref(app, last["id"].as_str().unwrap_or_default()).await;
        if last["status"] == status && !id.is_empty() {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the payment of {order_id} never waited as {status}: {last}");
}

async fn gateway_ref(app: &TestApp, payment_id: &str) -> String {
    sqlx::query_scalar::<_, Option<String>>("SELECT gateway_ref FROM payments WHERE id = $1")
        .bind(payment_id)
        .fetch_optional(&app.state().db.pool)
        .await
        .unwrap()
        .flatten()
        .unwrap_or_default()
}

/// Everything a forged event could move: the orders as Till shows them, the gateway ids Till
/// recorded, and the stock.
async fn snapshot(app: &TestApp, v: &Victims) -> Value {
    let mut orders = Vec::new();
    for id in &v.orders {
        orders.push(unstamped(app.order(id).await));
    }
    let mut refs = Vec::new();
    for p in &v.payments {
        refs.push(gateway_ref(app, p).await);
    }
    json!({"orders": orders, "refs": refs, "stock": app.inventory("TEE-1").await})
}

/// Correctly signed events that name a victim's payment but another gateway id, amount,
/// currency or gateway: each is answered (200 or 400) and changes nothing; afterwards the
/// victims pay for real and the books agree.
async fn signed_events_for_another_payment_change_nothing(b: Backend) {
    let started = std::time::Instant::now();
    let (app, sim) = spawn_with_gateway_sim(b, &SimSpec::latency(0), |cfg| {
        cfg.wallet_gateway = Some("sim".into());
        cfg.sim_webhook_secret = Some(SIM_WEBHOOK_SECRET.into());
        // The embedded simulator's wallet stays with the customer for the whole test.
        cfg.sim_delay_ms = 600_000;
        cfg.hold_ttl_secs = 600;
    })
    .await;
    app.stocked("TEE-1", PRICE, 100).await;
    let v = victims(&app).await;
    let mut figures = Figures::new(format!("forged but signed events on {b:?}"));
    for (name, event) in forged_events(&v) {
        let before = snapshot(&app, &v).await;
        let (status, answer) = event.post(&app).await;
        let after = snapshot(&app, &v).await;
        figures.races += 1;
        figures.count(format!("answered {status}"));
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
    let races = victims_finish(&app, &sim, &v).await;
    let books = settle_and_audit(
        &app,
        Some(&sim.ledger),
        &races,
        super::QUIET,
        String::new(),
        started,
    )
    .await;
    figures.absorb("victims afterwards: ", books);
    let mut report = Report::default();
    report.add(figures);
    drop(sim);
    app.close().await;
    report.assert_clean();
}

/// Signed events naming a victim's payment (`p1` Stripe, `p2` Razorpay, `p3` the simulator's
/// own protocol) with another gateway id, amount, currency or gateway.
fn forged_events(v: &Victims) -> Vec<(&'static str, Webhook)> {
    let (p1, p2, p3) = (&v.payments[0], &v.payments[1], &v.payments[2]);
    let (pi, rzp) = (&v.refs[0], &v.refs[1]);
    let authorized = |entity| Webhook::razorpay("payment.authorized", entity);
    vec![
        (
            "stripe: another intent for 50",
            Webhook::stripe(intent("pi_attacker", 50, "inr", "requires_capture", p1)),
        ),
        (
            "stripe: another intent for the full amount",
            Webhook::stripe(intent("pi_attacker", PRICE, "inr", "requires_capture", p1)),
        ),
        (
            "stripe: another intent captured",
            Webhook::stripe(intent("pi_attacker", PRICE, "inr", "succeeded", p1)),
        ),
        (
            "stripe: the intent for 50",
            Webhook::stripe(intent(pi, 50, "inr", "requires_capture", p1)),
        ),
        (
            "stripe: the intent in USD",
            Webhook::stripe(intent(pi, PRICE, "usd", "requires_capture", p1)),
        ),
        (
            "stripe: naming a Razorpay payment",
            Webhook::stripe(intent(rzp, PRICE, "inr", "requires_capture", p2)),
        ),
        (
            "razorpay: another payment for 50",
            authorized(rzp_payment("pay_attacker", 50, "INR", "authorized", p2)),
        ),
        (
            "razorpay: another payment for the full amount",
            authorized(rzp_payment("pay_attacker", PRICE, "INR", "authorized", p2)),
        ),
        (
            "razorpay: another payment captured",
            Webhook::razorpay(
                "payment.captured",
                rzp_payment("pay_attacker", PRICE, "INR", "captured", p2),
            ),
        ),
        (
            "razorpay: the payment for 50",
            authorized(rzp_payment(rzp, 50, "INR", "authorized", p2)),
        ),
        (
            "razorpay: the payment in USD",
            authorized(rzp_payment(rzp, PRICE, "USD", "authorized", p2)),
        ),
        (
            "razorpay: naming a Stripe payment",
            authorized(rzp_payment(pi, PRICE, "INR", "authorized", p1)),
        ),
        ("sim: naming a Stripe payment", Webhook::sim(pi, p1)),
        ("sim: naming a Razorpay payment", Webhook::sim(rzp, p2)),
        ("sim: another payment", Webhook::sim("simpay_attacker", p3)),
    ]
}

/// The customers finish for real: 3-D Secure, the UPI app, and a cancel of the wallet.
async fn victims_finish(app: &TestApp, sim: &GatewaySim, v: &Victims) -> Vec<Race> {
    let payment = app.order(&v.orders[0]).await["payments"][0].clone();
    super::complete_3ds(app, &payment).await;
    let approve = format!("{}/sim/razorpay/upi/{}/approve", sim.url, v.refs[1]);
    let approved = app.http.get(approve).send().await.expect("UPI app answers");
    assert!(approved.status().is_success(), "{}", approved.status());
    let cancelled = super::cancel(app, &v.orders[2]).await;
    vec![
        Race::new(v.orders[0].clone()),
        Race::new(v.orders[1].clone()),
        Race {
            order_id: v.orders[2].clone(),
            cancelled_by_customer: cancelled,
        },
    ]
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
    // The capture that follows the confirmation lands too, so the snapshots below see only
    // what the resent bodies do.
    let captured = std::time::Instant::now();
    while app.order(&id).await["payments"][0]["status"] != "succeeded" {
        assert!(
            captured.elapsed() < std::time::Duration::from_secs(10),
            "the payment of {id} was never captured"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let rzp = gateway_ref(&app, &pay_id).await;
    let event = Webhook::razorpay(
        "payment.authorized",
        rzp_payment(&rzp, PRICE, "INR", "authorized", &pay_id),
    );
    let mut figures = Figures::new(format!(
        "razorpay body sent again under new event ids on {b:?}"
    ));
    figures.count(format!("first answered {}", event.post(&app).await.0));
    let before = unstamped(app.order(&id).await);
    for n in 0..3 {
        figures.races += 1;
        let (status, answer) = event
            .clone()
            .with_event_id(format!("evt_again_{n}"))
            .post(&app)
            .await;
        let duplicate = answer["duplicate"] == true;
        figures.count(format!(
            "again answered {status}{}",
            if duplicate { " duplicate" } else { "" }
        ));
        if status != 400 && !duplicate {
            figures.violation(
                "same_body_accepted_as_a_new_event",
                format!("evt_again_{n}: {status} {answer}"),
            );
        }
    }
    let after = unstamped(app.order(&id).await);
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

/// An order's view without the time it was last touched.
fn unstamped(mut order: Value) -> Value {
    order["updated_at"] = Value::Null;
    order
}
