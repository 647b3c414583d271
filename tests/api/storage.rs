//! The storage conformance suite: the guarded statements the saga relies on behave the same
//! on SQLite and PostgreSQL, and the database itself refuses to break a stock invariant.

use sqlx::Connection;
use till::ids::Sku;
use till::inventory::{self, LockEnd};
use till::Workers;

use crate::both;
use crate::helpers::{Backend, TestApp};

both!(
    settling_a_lock_twice_changes_nothing,
    releasing_after_commit_changes_nothing,
    shortfall_reports_every_short_sku,
    database_refuses_negative_or_overlocked_stock,
    verify_reports_broken_invariants
);

fn sku(s: &str) -> Sku {
    Sku::try_from(s).unwrap()
}

async fn settling_a_lock_twice_changes_nothing(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("A", 100, 10).await;
    let id = app.new_order("A", 4).await;
    let mut conn = app.state().db.pool.acquire().await.unwrap();
    let now = app.state().now_ms();
    assert_eq!(
        inventory::store::settle_locks(&mut conn, &id.as_str().into(), LockEnd::Released, now)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        inventory::store::settle_locks(&mut conn, &id.as_str().into(), LockEnd::Released, now)
            .await
            .unwrap(),
        0
    );
    drop(conn);
    assert_eq!(app.stock("A").await, (10, 0));
    // The order still says pending; end it so the invariants hold.
    let mut conn = app.state().db.pool.acquire().await.unwrap();
    till::orders::store::transition(
        &mut conn,
        &id.as_str().into(),
        &[till::orders::Status::Pending],
        till::orders::Status::Cancelled,
        Some(till::orders::CancelReason::Customer),
        now,
    )
    .await
    .unwrap();
    // With its step, as every order's end is written.
    let step = serde_json::json!({"reason": "customer"});
    let kind = till::timeline::Kind::OrderCancelled;
    till::timeline::record(&mut conn, &id.as_str().into(), kind, &step, now)
        .await
        .unwrap();
    drop(conn);
    app.finish().await;
}

async fn releasing_after_commit_changes_nothing(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("A", 100, 10).await;
    let id = app.new_order("A", 4).await;
    assert_eq!(
        app.pay(&id, "card", "pm_card_visa").await.1["status"],
        "succeeded"
    );
    let mut conn = app.state().db.pool.acquire().await.unwrap();
    let now = app.state().now_ms();
    assert_eq!(
        inventory::store::settle_locks(&mut conn, &id.as_str().into(), LockEnd::Released, now)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        inventory::store::settle_locks(&mut conn, &id.as_str().into(), LockEnd::Committed, now)
            .await
            .unwrap(),
        0
    );
    drop(conn);
    assert_eq!(app.stock("A").await, (6, 0));
    app.finish().await;
}

async fn shortfall_reports_every_short_sku(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("A", 100, 1).await;
    app.stocked("B", 100, 5).await;
    app.stocked("C", 100, 0).await;
    let mut conn = app.state().db.pool.acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let lines = vec![(sku("A"), 2), (sku("B"), 5), (sku("C"), 1)];
    let locking = inventory::store::lock_lines(&mut tx, &"ord_probe".into(), &lines, 0)
        .await
        .unwrap();
    assert_eq!(locking.short, vec!["A".to_string(), "C".to_string()]);
    tx.rollback().await.unwrap();
    drop(conn);
    assert_eq!(app.stock("B").await, (5, 0));
    app.finish().await;
}

async fn database_refuses_negative_or_overlocked_stock(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("A", 100, 3).await;
    let pool = &app.state().db.pool;
    for sql in [
        "UPDATE inventory SET locked = 4 WHERE sku = 'A'",
        "UPDATE inventory SET locked = -1 WHERE sku = 'A'",
        "UPDATE inventory SET on_hand = -1 WHERE sku = 'A'",
    ] {
        let err = sqlx::query(sql).execute(pool).await.expect_err(sql);
        assert!(till::db::is_check_violation(&err), "{sql}: {err}");
    }
    assert_eq!(app.stock("A").await, (3, 0));
    app.finish().await;
}

async fn verify_reports_broken_invariants(b: Backend) {
    let app = TestApp::spawn_with(b, Workers::Manual, |_| {}).await;
    app.stocked("A", 100, 5).await;
    let db = &app.state().db;
    assert!(till::verify::check(db).await.unwrap().is_clean());
    // Stock appears from nowhere: on_hand no longer matches the ledger.
    sqlx::query("UPDATE inventory SET on_hand = 7 WHERE sku = 'A'")
        .execute(&db.pool)
        .await
        .unwrap();
    let report = till::verify::check(db).await.unwrap();
    assert!(!report.is_clean());
    let text = report.render();
    assert!(text.contains("FAIL stock is conserved"), "{text}");
    assert!(text.contains("A/blr-1 on_hand=7 ledger=5"), "{text}");
    // The binary says the same, with exit status 1.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_till"))
        .arg("verify")
        .env("TILL_DATABASE_URL", &app.db.url)
        .env("TILL_MAIL_DIR", &app.db.mail_dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL stock is conserved"));
    sqlx::query("UPDATE inventory SET on_hand = 5 WHERE sku = 'A'")
        .execute(&db.pool)
        .await
        .unwrap();
    app.finish().await;
}
