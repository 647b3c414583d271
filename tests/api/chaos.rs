//! Chaos: 2,000 checkouts through the Stripe and Razorpay adapters against the simulator with
//! faults on (10% lost answers, 5% 5xx, 20% duplicate, 10% reordered and 5% dropped
//! webhooks, some late authorizations), then reconciliation. Afterwards: no double charge, no
//! capture without a confirmed order (or a refund), every order terminal, stock conserved.
//! `TILL_CHAOS_CHECKOUTS` changes the count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::json;
use till::Workers;

use crate::both;
use crate::helpers::{Backend, TestApp, API_KEY};

both!(chaos_checkouts_then_reconcile);

const FAULTS: &str = "error=0.05,timeout=0.1,webhook_drop=0.05,webhook_dup=0.2,webhook_reorder=0.1,late_auth=0.02,late_ms=3000,seed=7";
const SKUS: usize = 10;
const CLIENTS: usize = 16;

async fn count(app: &TestApp, sql: &str) -> i64 {
    count_in(&app.state().db.pool, sql).await
}

async fn count_in(pool: &sqlx::AnyPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn chaos_checkouts_then_reconcile(b: Backend) {
    let checkouts: usize = std::env::var("TILL_CHAOS_CHECKOUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let app = TestApp::spawn_with(b, Workers::Run, |cfg| {
        cfg.card_gateway = Some("stripe".into());
        cfg.upi_gateway = Some("razorpay".into());
        cfg.wallet_gateway = Some("razorpay".into());
        cfg.sim_faults = Some(FAULTS.into());
        cfg.sim_delay_ms = 30;
        cfg.hold_ttl_secs = 2;
        cfg.recovery_after_secs = 1;
        cfg.reconcile_every_secs = 0;
    })
    .await;
    for i in 0..SKUS {
        // Little stock on some SKUs, so late payments also meet sold-out stock.
        app.stocked(
            &format!("CH-{i}"),
            1000 + i as i64,
            if i < 3 { 40 } else { 100_000 },
        )
        .await;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (next, http, url) = (next.clone(), app.http.clone(), app.url.clone());
        clients.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < checkouts {
                let (sku, qty, method, source) = {
                    let mut rng = rand::thread_rng();
                    let sources = [
                        ("card", "pm_card_visa"),
                        ("card", "pm_card_visa"),
                        ("card", "pm_card_chargeDeclined"),
                        ("card", "pm_card_authenticationRequired"),
                        ("upi", "success@razorpay"),
                        ("upi", "failure@razorpay"),
                        ("wallet", "paytm"),
                        ("wallet", "wallet_declined"),
                    ];
                    let (m, s) = sources[rng.gen_range(0..sources.len())];
                    (
                        format!("CH-{}", rng.gen_range(0..SKUS)),
                        rng.gen_range(1..=2),
                        m,
                        s,
                    )
                };
                let resp = http
                    .post(format!("{url}/v1/orders"))
                    .bearer_auth(API_KEY)
                    .json(&json!({"items": [{"sku": sku, "qty": qty}]}))
                    .send()
                    .await
                    .unwrap();
                statuses.push(resp.status().as_u16());
                if resp.status() != 201 {
                    continue;
                }
                let order: serde_json::Value = resp.json().await.unwrap();
                let id = order["id"].as_str().unwrap();
                let pay = http
                    .post(format!("{url}/v1/orders/{id}/payments"))
                    .bearer_auth(API_KEY)
                    .header("Idempotency-Key", format!("chaos-{id}"))
                    .json(&json!({"method": method, "source": source}))
                    .send()
                    .await
                    .unwrap();
                statuses.push(pay.status().as_u16());
            }
            statuses
        }));
    }
    let mut statuses = Vec::new();
    for c in clients {
        statuses.extend(c.await.unwrap());
    }
    let load_secs = started.elapsed().as_secs_f64();
    assert!(
        statuses.iter().all(|s| *s < 500),
        "Till answered 5xx: {:?}",
        statuses.iter().filter(|s| **s >= 500).count()
    );

    // Everything in flight settles (holds expire, lost answers are asked about again).
    let settle = Instant::now();
    loop {
        let open = count(&app, "SELECT COUNT(*) FROM orders WHERE status = 'pending'").await
            + count(&app, "SELECT COUNT(*) FROM payments WHERE status IN ('processing', 'requires_action', 'authorized')").await
            + count(&app, "SELECT COUNT(*) FROM refunds WHERE status = 'pending'").await;
        if open == 0 {
            break;
        }
        assert!(
            settle.elapsed() < Duration::from_secs(90),
            "{open} orders, payments or refunds still open"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let settle_secs = settle.elapsed().as_secs_f64();
    let findings = till::checkout::reconcile::reconcile(
        app.state(),
        till::checkout::reconcile::Scope::Everything,
    )
    .await
    .unwrap();
    assert_eq!(findings.flagged, 0, "{}", findings.render());
    // A second pass finds nothing left to do.
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

    // The gateway's books are read from its tables (the embedded simulator's records), not
    // over its API: that API is under the very faults injected here.
    // No double charge: at most one capture kept per order.
    let books = app.db.books().await;
    let double = count_in(&books, "SELECT COUNT(*) FROM (SELECT p.order_id FROM payments p JOIN sim_payments s ON s.id = p.gateway_ref
        WHERE s.status IN ('succeeded', 'captured') AND s.refunded < s.amount GROUP BY p.order_id HAVING COUNT(*) > 1) d").await;
    // No capture without the confirmed order it paid for (or a full refund).
    let orphan = count_in(&books, "SELECT COUNT(*) FROM sim_payments s LEFT JOIN payments p ON p.gateway_ref = s.id LEFT JOIN orders o ON o.id = p.order_id
        WHERE s.protocol IN ('stripe', 'razorpay') AND s.status IN ('succeeded', 'captured') AND s.refunded < s.amount
          AND (o.id IS NULL OR o.paid_by IS NULL OR o.paid_by <> p.id OR o.status NOT IN ('confirmed', 'partially_refunded', 'refunded'))").await;
    let not_terminal = count(&app, "SELECT COUNT(*) FROM orders WHERE status = 'pending'").await;
    assert_eq!((double, orphan, not_terminal), (0, 0, 0));
    let outcome = |status: &'static str| {
        count(
            &app,
            Box::leak(
                format!("SELECT COUNT(*) FROM orders WHERE status = '{status}'").into_boxed_str(),
            ),
        )
    };
    let (confirmed, cancelled, expired) = (
        outcome("confirmed").await,
        outcome("cancelled").await,
        outcome("expired").await,
    );
    let late_refunds = count(
        &app,
        "SELECT COUNT(*) FROM refunds WHERE reason <> 'requested'",
    )
    .await;
    let relocked: u64 = app
        .state()
        .metrics
        .late_payments_relocked
        .load(Ordering::Relaxed);
    println!(
        "chaos on {b:?}: {checkouts} checkouts in {load_secs:.1}s, settled {settle_secs:.1}s later; faults: {}; orders: {confirmed} confirmed, {cancelled} cancelled, {expired} expired; {relocked} late payments re-locked, {late_refunds} automatic refunds; reconcile: {} checked, {} repaired; 0 double charges, 0 orphan captures",
        app.sim().fault_counts().summary(),
        findings.checked,
        findings.repaired,
    );
    app.finish().await;
}
