//! Restart: stop Till abruptly with orders pending and payments in flight, start it again,
//! and every order reaches its right end with the stock adding up.

use till::payments::{self, Method, Payment, Status};
use till::timeline::Kind;
use till::Workers;

use crate::both;
use crate::helpers::{Backend, TestApp};

both!(restart_drives_everything_in_flight_to_its_end);

/// What the attempt's own transaction commits (the attempt and its timeline step), with no
/// gateway call after it: a crash right after the commit.
async fn attempt_committed(conn: &mut sqlx::AnyConnection, attempt: &Payment, now: i64) {
    payments::store::insert_attempt(conn, attempt, now)
        .await
        .unwrap();
    let step = serde_json::json!({"payment_id": attempt.id});
    till::timeline::record(conn, &attempt.order_id, Kind::PaymentAttempted, &step, now)
        .await
        .unwrap();
}

async fn restart_drives_everything_in_flight_to_its_end(b: Backend) {
    let slow = |cfg: &mut till::Config| {
        cfg.sim_delay_ms = 800;
        cfg.hold_ttl_secs = 60;
        cfg.recovery_after_secs = 1;
    };
    let mut app = TestApp::spawn_with(b, Workers::Run, slow).await;
    app.stocked("TEE-1", 100, 50).await;
    // Payments whose webhooks are still to come when Till stops.
    let mut paying = Vec::new();
    for source in ["success@razorpay", "success@razorpay", "failure@razorpay"] {
        let id = app.new_order("TEE-1", 2).await;
        assert_eq!(app.pay(&id, "upi", source).await.1["status"], "processing");
        paying.push((id, source));
    }
    // An attempt committed just before a crash, the gateway never called.
    let orphan = app.order_of("TEE-1", 3).await;
    let orphan_id = orphan["id"].as_str().unwrap().to_string();
    {
        let state = app.state();
        let mut conn = state.db.pool.acquire().await.unwrap();
        let attempt = Payment {
            id: till::ids::PaymentId::generate(),
            order_id: orphan_id.as_str().into(),
            status: Status::Processing,
            amount: till::money::Money::new(
                orphan["total"].as_i64().unwrap(),
                till::money::Currency::parse("INR").unwrap(),
            ),
            method: Method::Card,
            source: "pm_card_visa".into(),
            gateway: "sim".into(),
            gateway_ref: None,
            fate: payments::Fate::Open,
        };
        attempt_committed(&mut conn, &attempt, state.now_ms()).await;
    }
    // A pending order nobody pays for.
    let abandoned = app.new_order("TEE-1", 4).await;

    app.restart(Workers::Run, slow).await;

    for (id, source) in &paying {
        let end = if *source == "failure@razorpay" {
            "cancelled"
        } else {
            "confirmed"
        };
        app.wait_for_status(id, end).await;
    }
    app.wait_for_status(&orphan_id, "confirmed").await;
    assert_eq!(app.order(&abandoned).await["status"], "pending");
    app.clock.advance_ms(61_000);
    app.wait_for_status(&abandoned, "expired").await;
    let inv = app.inventory("TEE-1").await;
    // Sold: 2 + 2 (UPI) + 3 (orphan card).
    assert_eq!(
        (inv["on_hand"].as_i64(), inv["locked"].as_i64()),
        (Some(50 - 7), Some(0))
    );
    app.finish().await;
}

both!(two_workers_share_stuck_payments_without_doubling_calls);

/// Two recovery passes at once (two instances, say) each claim different stuck payments:
/// every payment is asked about once, and all of them end.
async fn two_workers_share_stuck_payments_without_doubling_calls(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |cfg| cfg.recovery_after_secs = 1).await;
    app.stocked("TEE-1", 100, 50).await;
    let state = app.state();
    let mut orders = Vec::new();
    for _ in 0..12 {
        let order = app.order_of("TEE-1", 1).await;
        let id = order["id"].as_str().unwrap().to_string();
        let attempt = Payment {
            id: till::ids::PaymentId::generate(),
            order_id: id.as_str().into(),
            status: Status::Processing,
            amount: till::money::Money::new(
                order["total"].as_i64().unwrap(),
                till::money::Currency::parse("INR").unwrap(),
            ),
            method: Method::Card,
            source: "pm_card_visa".into(),
            gateway: "sim".into(),
            gateway_ref: None,
            fate: payments::Fate::Open,
        };
        let mut conn = state.db.pool.acquire().await.unwrap();
        attempt_committed(&mut conn, &attempt, state.now_ms()).await;
        orders.push(id);
    }
    app.clock.advance_ms(2_000);
    let calls = || {
        state
            .metrics
            .gateway_calls
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = calls();
    let (a, b2) = tokio::join!(
        till::checkout::workers::recover_payments(state),
        till::checkout::workers::recover_payments(state)
    );
    assert_eq!(
        a.unwrap() + b2.unwrap(),
        12,
        "each stuck payment claimed once"
    );
    assert_eq!(calls() - before, 12, "one gateway call per payment");
    for id in &orders {
        assert_eq!(app.order(id).await["status"], "confirmed");
    }
    app.finish().await;
}

/// On SQLite the embedded simulator keeps its records in a file of its own beside Till's.
/// A Till file an earlier Till left with the simulator's records inside has them taken
/// over on the first start: the gateway still knows the payment it took (a refund of it
/// goes through), and Till's file is not written again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_tills_gateway_records_are_taken_over() {
    let mut app = TestApp::spawn(Backend::Sqlite).await;
    app.stocked("TEE-1", 49_900, 10).await;
    let paid = app.new_order("TEE-1", 1).await;
    assert_eq!(app.pay(&paid, "card", "pm_card_visa").await.0, 201);
    let till_file = till::db::sqlite_file(&app.db.url).unwrap().to_string();
    let own_file = till::state::embedded_simulator_file(&till_file);
    let in_tills = sqlx::query("SELECT 1 FROM sim_payments")
        .fetch_optional(&app.state().db.pool)
        .await;
    assert!(
        in_tills.is_err(),
        "the simulator's tables are in Till's file"
    );
    app.stop().await;

    // Put the records back where an earlier Till kept them, and take away the separate file.
    {
        let db = till::db::Db::connect(&app.db.url, 1).await.unwrap();
        till_gateway_sim::migrate(&db.pool).await.unwrap();
        let mut conn = db.pool.acquire().await.unwrap();
        sqlx::query("ATTACH DATABASE $1 AS gateway")
            .bind(&own_file)
            .execute(&mut *conn)
            .await
            .unwrap();
        for table in [
            "sim_payments",
            "sim_events",
            "sim_refunds",
            "sim_rzp_orders",
        ] {
            sqlx::query(&format!(
                "INSERT INTO main.{table} SELECT * FROM gateway.{table}"
            ))
            .execute(&mut *conn)
            .await
            .unwrap();
        }
        sqlx::query("DETACH DATABASE gateway")
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        db.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{own_file}{suffix}"));
        }
    }

    app.restart(Workers::Run, |_| {}).await;
    let (status, refund) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/orders/{paid}/refunds"),
            Some(serde_json::json!({"amount": 10_000})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), refund["status"].as_str()),
        (201, Some("succeeded")),
        "{refund}"
    );
    let books = app.db.books().await;
    let (payments, refunded): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), MAX(refunded) FROM gateway.sim_payments")
            .fetch_one(&books)
            .await
            .unwrap();
    assert_eq!((payments, refunded), (1, 10_000));
    books.close().await;
    app.finish().await;
}
