//! The store functions the console reads through, called directly on both backends (the
//! completeness check of `stores.rs` reads this file too): the orders search, per-minute
//! and per-route counts, the catalog and ledger pages, held stock, coupon and tax code
//! lists, and the console's sessions.

use serde_json::json;
use sqlx::Connection;
use till::checkout::store::OrderFilter;
use till::db::Db;
use till::ids::{OrderId, PaymentId, Sku};
use till::inventory::{self, Product};
use till::money::{Currency, Money};
use till::orders::{self, Line, NewOrder, Status as OrderStatus};
use till::payments::{self, Fate, Method, Payment, Status};
use till::pricing::coupon::{Coupon, Kind as CouponKind};
use till::pricing::{Rate, TaxCode};
use till::{checkout, pricing, web};

use crate::both;
use crate::helpers::{Backend, TestDb};

both!(console_reads_store, console_sessions_store);

async fn fresh(backend: Backend) -> (TestDb, Db) {
    let test_db = TestDb::new(backend).await;
    let db = Db::connect(&test_db.url, 4).await.expect("connect");
    db.migrate().await.expect("migrate");
    (test_db, db)
}

fn sku(s: &str) -> Sku {
    Sku::try_from(s).unwrap()
}

/// An order of one `A` created at `at`, for `customer`, locking its stock.
async fn order(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    at: i64,
    customer: serde_json::Value,
) -> OrderId {
    let id = OrderId::from(id);
    let lines = vec![Line {
        sku: sku("A"),
        qty: 1,
        unit_amount: 500,
        amount: 500,
        discount: 0,
        hsn: None,
        tax: 0,
        tax_lines: vec![],
    }];
    let new = NewOrder {
        id: &id,
        currency: Currency::parse("INR").unwrap(),
        lines: &lines,
        subtotal: 500,
        discount: 0,
        tax: 0,
        total: 500,
        customer: Some(customer),
        customer_id: None,
        ship_to: None,
        tax_lines: &[],
        coupon: None,
        secret_hash: "hash",
        fingerprint: None,
        expires_at: at + 60_000,
    };
    orders::store::insert(conn, &new, at).await.unwrap();
    let locking = inventory::store::lock_lines(conn, &id, &[(sku("A"), 1)], at)
        .await
        .unwrap();
    assert!(locking.short.is_empty());
    id
}

/// The ids of the orders `filter` finds, newest first.
async fn ids(conn: &mut sqlx::AnyConnection, filter: OrderFilter) -> Vec<String> {
    checkout::store::search_orders(conn, &filter, 10, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id.to_string())
        .collect()
}

async fn console_reads_store(b: Backend) {
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    for name in ["B", "A"] {
        let product = Product {
            sku: name.into(),
            name: format!("{name} product"),
            price_minor: 500,
            currency: "INR".into(),
            tax_code: None,
        };
        inventory::store::upsert_product(&mut conn, &product, 1)
            .await
            .unwrap();
    }
    inventory::store::set_on_hand(&mut conn, &sku("A"), "main", 10, 1, db.kind)
        .await
        .unwrap();
    inventory::store::set_on_hand(&mut conn, &sku("A"), "main", 7, 2, db.kind)
        .await
        .unwrap();
    let names: Vec<String> = inventory::store::list_products(&mut conn, "", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.sku)
        .collect();
    assert_eq!(names, ["A", "B"]);
    let after_a = inventory::store::list_products(&mut conn, "A", 10)
        .await
        .unwrap();
    assert_eq!(after_a.len(), 1);
    assert_eq!(after_a[0].sku, "B");
    let ledger = inventory::store::ledger(&mut conn, "A", 10).await.unwrap();
    assert_eq!(
        ledger.iter().map(|e| e.delta).collect::<Vec<_>>(),
        [-3, 10],
        "newest first"
    );
    assert!(ledger
        .iter()
        .all(|e| e.kind == "adjustment" && e.warehouse == "main"));

    let ada = order(
        &mut conn,
        "ord_ada",
        60_000,
        json!({"email": "ada@example.com"}),
    )
    .await;
    let bob = order(&mut conn, "ord_bob", 125_000, json!({"name": "Bob 100%_"})).await;
    assert_eq!(inventory::store::held_units(&mut conn).await.unwrap(), 2);
    let paid = Payment {
        id: PaymentId::generate(),
        order_id: ada.clone(),
        status: Status::Processing,
        amount: Money::new(500, Currency::parse("INR").unwrap()),
        method: Method::Upi,
        source: "success@razorpay".into(),
        gateway: "razorpay".into(),
        gateway_ref: None,
        fate: Fate::Open,
    };
    payments::store::insert_attempt(&mut conn, &paid, 61_000)
        .await
        .unwrap();
    assert!(orders::store::transition(
        &mut conn,
        &ada,
        &[OrderStatus::Pending],
        OrderStatus::Confirmed,
        None,
        62_000
    )
    .await
    .unwrap());

    assert_eq!(
        ids(&mut conn, OrderFilter::default()).await,
        ["ord_bob", "ord_ada"]
    );
    let by = |status: Option<&str>, customer: Option<&str>, method: Option<&str>| OrderFilter {
        status: status.map(Into::into),
        customer: customer.map(Into::into),
        method: method.map(Into::into),
        ..OrderFilter::default()
    };
    assert_eq!(
        ids(&mut conn, by(Some("confirmed"), None, None)).await,
        ["ord_ada"]
    );
    assert_eq!(
        ids(&mut conn, by(None, Some("ADA@"), None)).await,
        ["ord_ada"]
    );
    assert_eq!(
        ids(&mut conn, by(None, Some("100%_"), None)).await,
        ["ord_bob"]
    );
    assert!(ids(&mut conn, by(None, Some("%"), Some("card")))
        .await
        .is_empty());
    assert_eq!(
        ids(&mut conn, by(None, None, Some("upi"))).await,
        ["ord_ada"]
    );
    assert_eq!(
        ids(&mut conn, by(None, Some("ord_b"), None)).await,
        ["ord_bob"]
    );
    let window = OrderFilter {
        from: Some(100_000),
        to: Some(200_000),
        ..OrderFilter::default()
    };
    assert_eq!(ids(&mut conn, window).await, ["ord_bob"]);
    let listed = checkout::store::search_orders(&mut conn, &OrderFilter::default(), 1, 1)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, ada);
    assert_eq!(listed[0].methods, "upi");
    assert_eq!(listed[0].total, 500);
    assert_eq!(listed[0].status, "confirmed");

    let minutes = orders::store::created_per_minute(&mut conn, 0)
        .await
        .unwrap();
    assert_eq!(
        minutes,
        [(1, OrderStatus::Confirmed, 1), (2, OrderStatus::Pending, 1)]
    );
    assert!(orders::store::created_per_minute(&mut conn, 200_000)
        .await
        .unwrap()
        .is_empty());
    let attempts = payments::store::attempts_since(&mut conn, 0).await.unwrap();
    assert_eq!(
        attempts,
        [(Method::Upi, "razorpay".to_string(), Status::Processing, 1)]
    );
    let _ = bob;

    let coupon = Coupon {
        code: "SAVE10".into(),
        kind: CouponKind::Percent {
            percent_off: 10,
            max_discount: None,
        },
        min_subtotal: None,
        skus: vec![],
        starts_at: None,
        ends_at: None,
        active: true,
    };
    pricing::store::upsert_coupon(&mut conn, &coupon, None, None, 1)
        .await
        .unwrap();
    assert_eq!(
        pricing::store::coupon_codes(&mut conn, "", 10)
            .await
            .unwrap(),
        ["SAVE10"]
    );
    assert!(pricing::store::coupon_codes(&mut conn, "SAVE10", 10)
        .await
        .unwrap()
        .is_empty());
    let code = TaxCode {
        hsn: Some("6109".into()),
        rates: vec![Rate {
            country: "IN".into(),
            region: None,
            rate_bps: 1200,
            name: None,
        }],
    };
    pricing::store::put_tax_code(&mut conn, "apparel", &code, 1)
        .await
        .unwrap();
    assert_eq!(
        pricing::store::tax_code_names(&mut conn, "", 10)
            .await
            .unwrap(),
        ["apparel"]
    );
    drop(conn);
    db.pool.close().await;
    test_db.drop_db().await;
}

async fn console_sessions_store(b: Backend) {
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    web::admin::store::open_session(&mut tx, "old", "key", 0, 100)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        web::admin::store::session_key(&mut conn, "old", 99)
            .await
            .unwrap()
            .as_deref(),
        Some("key")
    );
    assert_eq!(
        web::admin::store::session_key(&mut conn, "old", 100)
            .await
            .unwrap(),
        None,
        "expired"
    );
    // Opening another forgets the expired ones.
    web::admin::store::open_session(&mut conn, "new", "key", 200, 300)
        .await
        .unwrap();
    assert_eq!(
        web::admin::store::session_key(&mut conn, "old", 0)
            .await
            .unwrap(),
        None,
        "forgotten"
    );
    assert!(web::admin::store::close_session(&mut conn, "new")
        .await
        .unwrap());
    assert!(!web::admin::store::close_session(&mut conn, "new")
        .await
        .unwrap());
    assert_eq!(
        web::admin::store::session_key(&mut conn, "new", 250)
            .await
            .unwrap(),
        None
    );
    drop(conn);
    db.pool.close().await;
    test_db.drop_db().await;
}
