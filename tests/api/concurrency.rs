//! Flash sales: many buyers, little stock. Exactly the stock is sold, nobody is turned away
//! while stock remains, and stock never goes negative.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use crate::both;
use crate::helpers::{Backend, TestApp};

both!(flash_sale_sells_out_exactly);
both!(flash_sale_of_mixed_quantities_turns_nobody_away_wrongly);
both!(flash_sale_over_two_warehouses_takes_from_both);
both!(a_sold_out_sku_is_refused_before_pricing_but_bad_input_still_first);

const BUYERS: usize = 200;
const UNITS: i64 = 20;

async fn flash_sale_sells_out_exactly(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("HOT-1", 1999, UNITS).await;
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (pool, watching) = (app.state().db.pool.clone(), watching.clone());
        tokio::spawn(async move {
            let mut samples = 0;
            while watching.load(Ordering::Relaxed) {
                let row: (i64, i64) =
                    sqlx::query_as("SELECT on_hand, locked FROM inventory WHERE sku = 'HOT-1'")
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                assert!(
                    row.1 >= 0 && row.1 <= row.0 && row.0 >= 0,
                    "stock out of bounds: {row:?}"
                );
                samples += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            samples
        })
    };
    let started = Instant::now();
    let buyers = (0..BUYERS).map(|_| app.create_order(json!([{"sku": "HOT-1", "qty": 1}])));
    let results = futures::future::join_all(buyers).await;
    let lock_elapsed = started.elapsed();
    let mut sold = Vec::new();
    let mut refused = 0;
    for (status, body) in &results {
        match status.as_u16() {
            201 => sold.push(body["id"].as_str().unwrap().to_string()),
            409 if body["error"]["code"] == "out_of_stock" => refused += 1,
            other => panic!("a buyer got {other}: {body}"),
        }
    }
    assert_eq!(
        (sold.len(), refused),
        (UNITS as usize, BUYERS - UNITS as usize)
    );
    assert_eq!(app.stock("HOT-1").await, (UNITS, UNITS));
    let started_pay = Instant::now();
    let payments =
        futures::future::join_all(sold.iter().map(|id| app.pay(id, "card", "pm_card_visa"))).await;
    for (status, body) in &payments {
        assert_eq!(
            (status.as_u16(), body["status"].as_str()),
            (201, Some("succeeded")),
            "{body}"
        );
    }
    let pay_elapsed = started_pay.elapsed();
    for id in &sold {
        assert_eq!(app.order(id).await["status"], "confirmed");
    }
    watching.store(false, Ordering::Relaxed);
    let samples = watcher.await.unwrap();
    assert_eq!(app.stock("HOT-1").await, (0, 0));
    println!(
        "flash sale on {b:?}: {BUYERS} buyers for {UNITS} units -> {} orders, {refused} out_of_stock in {:?}; {} paid and confirmed in {:?}; {samples} stock samples in bounds",
        sold.len(),
        lock_elapsed,
        sold.len(),
        pay_elapsed
    );
    app.finish().await;
}

/// Buyers of 1, 2 and 3 units at once (orders created in the SKU's batches): the units sold
/// and the units left add up to the stock, and a buyer was turned away only when fewer
/// units than it asked for were left (stock only falls here, so what is left at the end is
/// at most what was left then).
async fn flash_sale_of_mixed_quantities_turns_nobody_away_wrongly(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.stocked("HOT-2", 1999, UNITS).await;
    let asks: Vec<i64> = (0..60).map(|n| 1 + n % 3).collect();
    let buyers = asks
        .iter()
        .map(|qty| app.create_order(json!([{"sku": "HOT-2", "qty": qty}])));
    let results = futures::future::join_all(buyers).await;
    let (mut sold, mut smallest_refused) = (0, i64::MAX);
    for ((status, body), qty) in results.iter().zip(&asks) {
        match status.as_u16() {
            201 => {
                assert_eq!(body["items"][0]["qty"], *qty, "{body}");
                sold += qty;
            }
            409 if body["error"]["code"] == "out_of_stock" => {
                smallest_refused = smallest_refused.min(*qty)
            }
            other => panic!("a buyer got {other}: {body}"),
        }
    }
    let (on_hand, locked) = app.stock("HOT-2").await;
    assert_eq!((on_hand, locked), (UNITS, sold));
    assert!(
        UNITS - sold < smallest_refused,
        "{} units left, yet a buyer of {smallest_refused} was turned away",
        UNITS - sold
    );
    app.finish().await;
}

/// Buyers of 2 units at once for stock split over two warehouses (3 units and 4): a buyer
/// is given units from both when the first runs short, each warehouse's locks add up to
/// what was taken from it, and the unit left over is refused to everyone asking 2.
async fn flash_sale_over_two_warehouses_takes_from_both(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.put_product("HOT-4", 1999).await;
    assert_eq!(app.set_stock("HOT-4", "blr-1", 3).await.0, 200);
    assert_eq!(app.set_stock("HOT-4", "del-1", 4).await.0, 200);
    let buyers = (0..12).map(|_| app.create_order(json!([{"sku": "HOT-4", "qty": 2}])));
    let results = futures::future::join_all(buyers).await;
    let mut sold = 0;
    for (status, body) in &results {
        match status.as_u16() {
            201 => sold += 1,
            409 if body["error"]["code"] == "out_of_stock" => {}
            other => panic!("a buyer got {other}: {body}"),
        }
    }
    assert_eq!(sold, 3, "7 units sell three orders of 2");
    let inv = app.inventory("HOT-4").await;
    assert_eq!(
        inv["warehouses"],
        json!([
            {"warehouse": "blr-1", "on_hand": 3, "locked": 3, "available": 0},
            {"warehouse": "del-1", "on_hand": 4, "locked": 3, "available": 1}
        ])
    );
    let report = till::verify::check(&app.state().db).await.unwrap();
    assert!(report.is_clean(), "{}", report.render());
    app.finish().await;
}

/// A flash-sale buyer is told `out_of_stock` from one read of the SKU before its cart is
/// priced; a SKU the catalog lacks and an address that is not one are still 400s, stock
/// or none.
async fn a_sold_out_sku_is_refused_before_pricing_but_bad_input_still_first(b: Backend) {
    use crate::helpers::assert_error;
    let app = TestApp::spawn(b).await;
    app.stocked("HOT-5", 1999, 0).await;
    let order = |body: serde_json::Value| app.call(reqwest::Method::POST, "/v1/orders", Some(body));
    assert_error(
        &order(json!({"items": [{"sku": "HOT-5", "qty": 1}]})).await,
        409,
        "out_of_stock",
    );
    assert_error(
        &order(json!({"items": [{"sku": "NOPE-5", "qty": 1}]})).await,
        400,
        "invalid_request",
    );
    let bad_address =
        json!({"items": [{"sku": "HOT-5", "qty": 1}], "ship_to": {"country": "not a code"}});
    assert_error(&order(bad_address).await, 400, "invalid_request");
    assert_eq!(app.stock("HOT-5").await, (0, 0));
    app.finish().await;
}

both!(a_batch_that_fails_part_way_is_tried_again_in_halves);

/// A batch holding one buyer's order fails part-way (a failpoint: it errs after the
/// batch's orders and the rest were written in its transaction, before its commit). The batch is tried again in halves
/// and, the failure not recurring, every buyer gets an order: each exactly once, none left
/// over from the attempt that failed.
async fn a_batch_that_fails_part_way_is_tried_again_in_halves(b: Backend) {
    const ASKING: usize = 40;
    let app = TestApp::spawn(b).await;
    app.stocked("HOT-3", 1999, 100).await;
    let email = |n: usize| format!("buyer-{n}@example.com");
    // A buyer in the middle, who finds the first buyer's batch running and waits in the
    // next one with the others: the SKU's stock row is held (on SQLite, the one writer with
    // it) until every buyer has queued, so the first batch holds only the first buyer.
    let failing = email(ASKING / 2);
    till::failpoint::arm(till::failpoint::BATCH_WRITE_FAILS, &failing);
    let mut holder = app.state().db.pool.begin().await.unwrap();
    sqlx::query("UPDATE inventory SET locked = locked WHERE sku = 'HOT-3'")
        .execute(&mut *holder)
        .await
        .unwrap();
    let shop = &app;
    let buyers = (0..ASKING).map(|n| {
        let body = json!({"customer": {"email": email(n)}, "items": [{"sku": "HOT-3", "qty": 1}]});
        async move {
            if n > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            shop.call(reqwest::Method::POST, "/v1/orders", Some(body))
                .await
        }
    });
    let release = async {
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        holder.commit().await.unwrap();
    };
    let (results, ()) = futures::future::join(futures::future::join_all(buyers), release).await;
    let mut ids = std::collections::BTreeSet::new();
    for (status, body) in &results {
        assert_eq!(status.as_u16(), 201, "{body}");
        ids.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), ASKING, "every buyer has an order of its own");
    assert!(
        !till::failpoint::armed(till::failpoint::BATCH_WRITE_FAILS, &failing),
        "the failing buyer's order was written in a batch of several, and failed there"
    );
    assert_eq!(app.stock("HOT-3").await, (100, ASKING as i64));
    let report = till::verify::check(&app.state().db).await.unwrap();
    assert!(report.is_clean(), "{}", report.render());
    app.finish().await;
}
