//! `Idempotency-Key`: replay, reuse with another body, and the same request fired twice at once.

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::helpers::{assert_error, Backend, TestApp};

both!(
    replay_returns_the_first_answer_and_repeats_nothing,
    reuse_with_another_body_is_422,
    same_request_twice_at_once_has_one_effect,
    keys_are_scoped_to_the_credential,
    payment_key_replays_the_payment,
    answers_are_forgotten_after_a_day_in_batches
);

fn order_body(qty: i64) -> serde_json::Value {
    json!({"items": [{"sku": "TEE-1", "qty": qty}]})
}

async fn replay_returns_the_first_answer_and_repeats_nothing(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 100, 10).await;
    let post = || {
        app.request(Method::POST, "/v1/orders")
            .header("Idempotency-Key", "order-1")
            .json(&order_body(2))
    };
    let first = post().send().await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();
    let second = post().send().await.unwrap();
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers().get("idempotent-replayed").unwrap(), "true");
    let second: serde_json::Value = second.json().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(app.inventory("TEE-1").await["locked"], 2);
    // A stored 4xx replays too.
    let oos = || {
        app.request(Method::POST, "/v1/orders")
            .header("Idempotency-Key", "order-2")
            .json(&order_body(50))
    };
    assert_error(&app.send(oos()).await, 409, "out_of_stock");
    assert_eq!(app.set_stock("TEE-1", "blr-1", 100).await.0, 200);
    assert_error(&app.send(oos()).await, 409, "out_of_stock");
    app.finish().await;
}

async fn reuse_with_another_body_is_422(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 100, 10).await;
    let post = |qty| {
        app.request(Method::POST, "/v1/orders")
            .header("Idempotency-Key", "k")
            .json(&order_body(qty))
    };
    assert_eq!(app.send(post(1)).await.0, 201);
    assert_error(&app.send(post(2)).await, 422, "idempotency_key_reused");
    assert_eq!(app.inventory("TEE-1").await["locked"], 1);
    app.finish().await;
}

async fn same_request_twice_at_once_has_one_effect(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 100, 100).await;
    let post = || {
        app.send(
            app.request(Method::POST, "/v1/orders")
                .header("Idempotency-Key", "race")
                .json(&order_body(1)),
        )
    };
    let results = futures::future::join_all((0..8).map(|_| post())).await;
    let mut ids = std::collections::HashSet::new();
    for (status, body) in &results {
        match status.as_u16() {
            201 => {
                ids.insert(body["id"].as_str().unwrap().to_string());
            }
            409 => assert_eq!(body["error"]["code"], "idempotency_key_in_use"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ids.len(), 1, "{results:?}");
    assert_eq!(app.inventory("TEE-1").await["locked"], 1);
    app.finish().await;
}

async fn keys_are_scoped_to_the_credential(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 100, 10).await;
    let order = app.order_of("TEE-1", 1).await;
    let id = order["id"].as_str().unwrap();
    let secret = order["client_secret"].as_str().unwrap();
    // The merchant used "shared" for an order; the customer's "shared" is a different key.
    assert_eq!(
        app.send(
            app.request(Method::POST, "/v1/orders")
                .header("Idempotency-Key", "shared")
                .json(&order_body(1))
        )
        .await
        .0,
        201
    );
    let pay = app
        .http
        .post(format!("{}/v1/orders/{id}/payments", app.url))
        .bearer_auth(secret)
        .header("Idempotency-Key", "shared")
        .json(&json!({"method": "card", "source": "pm_card_visa"}));
    assert_eq!(app.send(pay).await.0, 201);
    app.finish().await;
}

async fn payment_key_replays_the_payment(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 100, 10).await;
    let id = app.new_order("TEE-1", 1).await;
    let pay = || {
        app.request(Method::POST, &format!("/v1/orders/{id}/payments"))
            .header("Idempotency-Key", "pay-1")
            .json(&json!({"method": "card", "source": "pm_card_visa"}))
    };
    let (results_a, results_b) = tokio::join!(app.send(pay()), app.send(pay()));
    let mut statuses = [results_a.0.as_u16(), results_b.0.as_u16()];
    statuses.sort();
    assert!(
        statuses == [201, 201] || statuses == [201, 409],
        "{results_a:?} {results_b:?}"
    );
    let (status, replay) = app.send(pay()).await;
    assert_eq!(status, 201);
    assert_eq!(replay["status"], "succeeded");
    let order = app.order(&id).await;
    assert_eq!(order["payments"].as_array().unwrap().len(), 1);
    assert_eq!(order["status"], "confirmed");
    app.finish().await;
}

both!(order_answer_is_stored_with_the_order);

/// The answer to an order created under a key is written in the order's own transaction:
/// were the process to die right after that commit, a retry still replays it rather than
/// creating a second order.
async fn order_answer_is_stored_with_the_order(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 100, 10).await;
    let key = format!("crash-{}", till::ids::random_token(8));
    let create = || {
        app.request(Method::POST, "/v1/orders")
            .header("Idempotency-Key", &key)
            .json(&order_body(2))
    };
    // The process dies right after the order's commit, before the edge stores an answer.
    till::failpoint::arm(till::failpoint::ANSWER_LOST, &key);
    let (status, created) = app.send(create()).await;
    assert_eq!(status, 201, "{created}");
    let replay = create().send().await.unwrap();
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers().get("idempotent-replayed").unwrap(), "true");
    let replayed: serde_json::Value = replay.json().await.unwrap();
    assert_eq!(replayed["id"], created["id"]);
    assert_eq!(replayed["client_secret"], created["client_secret"]);
    assert_eq!(app.inventory("TEE-1").await["locked"], 2);
    app.finish().await;
}

both!(payment_retry_after_a_crash_answers_with_the_first_attempt);

/// How long a claim must be untouched before another request takes it over (60 s), plus
/// a second.
const STALE_CLAIM_MS: i64 = 61_000;

/// A payment request whose process died after committing its attempt (the key still
/// `running`, no answer stored): once the claim is stale, the retry answers with that
/// attempt instead of starting a second one.
async fn payment_retry_after_a_crash_answers_with_the_first_attempt(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 100, 10).await;
    let id = app.new_order("TEE-1", 1).await;
    let key = format!("pay-crash-{}", till::ids::random_token(8));
    let pay = || {
        app.request(Method::POST, &format!("/v1/orders/{id}/payments"))
            .header("Idempotency-Key", &key)
            .json(&json!({"method": "upi", "source": "success@razorpay"}))
    };
    // The process dies after the attempt's commit: the key stays claimed, with no answer.
    till::failpoint::arm(till::failpoint::ANSWER_LOST, &key);
    let (status, first) = app.send(pay()).await;
    assert_eq!(status, 201, "{first}");
    let (status, busy) = app.send(pay()).await;
    assert_eq!(status, 409, "a live claim is not taken over: {busy}");
    app.state().clock.advance_ms(STALE_CLAIM_MS);
    let (status, again) = app.send(pay()).await;
    assert_eq!(
        (status.as_u16(), again["id"].clone()),
        (201, first["id"].clone()),
        "{again}"
    );
    app.wait_for_status(&id, "confirmed").await;
    assert_eq!(
        app.order(&id).await["payments"].as_array().unwrap().len(),
        1
    );
    app.finish().await;
}

both!(refund_retry_after_a_crash_answers_with_the_first_refund);

async fn refund_retry_after_a_crash_answers_with_the_first_refund(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("TEE-1", 1000, 10).await;
    let id = app.new_order("TEE-1", 2).await;
    assert_eq!(
        app.pay(&id, "card", "pm_card_visa").await.1["status"],
        "succeeded"
    );
    let key = format!("refund-crash-{}", till::ids::random_token(8));
    let refund = || {
        app.request(Method::POST, &format!("/v1/orders/{id}/refunds"))
            .header("Idempotency-Key", &key)
            .json(&json!({"amount": 500}))
    };
    till::failpoint::arm(till::failpoint::ANSWER_LOST, &key);
    let (status, first) = app.send(refund()).await;
    assert_eq!(status, 201, "{first}");
    app.state().clock.advance_ms(STALE_CLAIM_MS);
    let (status, again) = app.send(refund()).await;
    assert_eq!(
        (status.as_u16(), again["id"].clone()),
        (201, first["id"].clone()),
        "{again}"
    );
    assert_eq!(app.order(&id).await["refunds"].as_array().unwrap().len(), 1);
    app.finish().await;
}

/// Answered keys older than the 24 h retention are forgotten by the worker, a batch at a time
/// (2,500 keys: three statements in one pass); younger and running keys stay.
async fn answers_are_forgotten_after_a_day_in_batches(b: Backend) {
    use till::idempotency::store;
    let app = TestApp::spawn_with(b, till::Workers::Manual, |_| {}).await;
    let day_ago = app.clock.now_ms();
    {
        let mut tx = app.state().db.pool.begin().await.unwrap();
        for i in 0..2_500 {
            let key = format!("old-{i}");
            store::insert_claim(&mut tx, "merchant", &key, "fp", None, day_ago)
                .await
                .unwrap();
            store::set_answer(&mut tx, "merchant", &key, 201, "{}")
                .await
                .unwrap();
        }
        store::insert_claim(&mut tx, "merchant", "still-running", "fp", None, day_ago)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    app.clock.advance_ms(24 * 3600 * 1000 - 60_000);
    let mut conn = app.state().db.pool.acquire().await.unwrap();
    store::insert_claim(
        &mut conn,
        "merchant",
        "young",
        "fp",
        None,
        app.clock.now_ms(),
    )
    .await
    .unwrap();
    store::set_answer(&mut conn, "merchant", "young", 201, "{}")
        .await
        .unwrap();
    drop(conn);
    // A minute short of a day, all are kept.
    assert_eq!(
        till::idempotency::purge_expired(app.state()).await.unwrap(),
        0
    );
    app.clock.advance_ms(61_000);
    assert_eq!(
        till::idempotency::purge_expired(app.state()).await.unwrap(),
        2_500
    );
    let mut conn = app.state().db.pool.acquire().await.unwrap();
    for (key, kept) in [
        ("old-0", false),
        ("old-2499", false),
        ("still-running", true),
        ("young", true),
    ] {
        let found = store::get(&mut conn, "merchant", key).await.unwrap();
        assert_eq!(found.is_some(), kept, "{key}");
    }
    drop(conn);
    assert_eq!(
        till::idempotency::purge_expired(app.state()).await.unwrap(),
        0
    );
    app.finish().await;
}
