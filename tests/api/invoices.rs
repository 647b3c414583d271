//! Invoice numbers: the n-th confirmation of India's financial year gets `INV/<year>/n`,
//! consecutive — no gap, no duplicate — however many confirm at once, and a new year starts a
//! new series. CI confirms 200 orders at once per backend;
//! `TILL_INVOICE_CONFIRMATIONS=2000 cargo test --release --test api invoices -- --nocapture`
//! runs the long check by hand.

use std::collections::BTreeSet;

use futures::future::join_all;
use till::Workers;

use crate::both;
use crate::helpers::{Backend, TestApp};

both!(concurrent_confirmations_number_without_gap_or_duplicate);

async fn concurrent_confirmations_number_without_gap_or_duplicate(b: Backend) {
    let n: usize = std::env::var("TILL_INVOICE_CONFIRMATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let app = TestApp::spawn_with(b, Workers::Manual, |c| c.max_pending_per_customer = 0).await;
    app.stocked("TEE-1", 100, 10 * n as i64).await;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(app.new_order("TEE-1", 1).await);
    }
    // Every order paid at once: each confirmation takes its number in its own transaction.
    let started = std::time::Instant::now();
    let paid = join_all(ids.iter().map(|id| app.pay(id, "card", "pm_card_visa"))).await;
    let elapsed = started.elapsed();
    for (status, body) in &paid {
        assert_eq!(status.as_u16(), 201, "{body}");
    }
    let year = till::orders::financial_year(app.state().now_ms());
    let mut numbers = BTreeSet::new();
    for id in &ids {
        let order = app.order(id).await;
        assert_eq!(order["status"], "confirmed", "{order}");
        let number = order["invoice_number"].as_str().unwrap().to_string();
        assert!(numbers.insert(number.clone()), "duplicate {number}");
    }
    let expected: BTreeSet<String> = (1..=n as i64)
        .map(|k| till::orders::invoice_number(&year, k))
        .collect();
    assert_eq!(numbers, expected, "gaps or strays in the series");
    eprintln!(
        "{b:?}: {n} concurrent confirmations numbered 1..{n} without gap or duplicate in {elapsed:?} ({:.0}/s)",
        n as f64 / elapsed.as_secs_f64()
    );
    // A year later, the next confirmation opens the next year's series at 1.
    app.clock.advance_ms(366 * 24 * 3600 * 1000);
    let id = app.new_order("TEE-1", 1).await;
    let (status, body) = app.pay(&id, "card", "pm_card_visa").await;
    assert_eq!(status, 201, "{body}");
    let next_year = till::orders::financial_year(app.state().now_ms());
    assert_ne!(next_year, year);
    assert_eq!(
        app.order(&id).await["invoice_number"],
        till::orders::invoice_number(&next_year, 1)
    );
    app.finish().await;
}
