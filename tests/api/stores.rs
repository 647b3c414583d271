//! The store conformance suite: every function of every store (`src/*/store.rs`) called
//! directly on a fresh, migrated database, on SQLite and on PostgreSQL, with what it must
//! return and what it must leave behind. `every_store_function_is_called_here` keeps the
//! suite whole: a new store function without a call here fails it.
//!
//! Over 400 lines: one test per store, in one file so the completeness check reads one file.

use serde_json::json;
use sqlx::{AnyConnection, Connection, Row};
use till::db::{Db, Kind};
use till::documents::store::NewDocument;
use till::documents::{self, CreditNoteDoc, InvoiceDoc};
use till::error::Error;
use till::ids::{OrderId, PaymentId, RefundId, Sku};
use till::inventory::{self, LockEnd, Product};
use till::money::{Currency, Money};
use till::orders::{self, Line, NewOrder, Status as OrderStatus};
use till::payments::gateway::{GatewayPayment, Outcome};
use till::payments::{self, Fate, Method, Payment, Refund, RefundShare, RefundStatus, Status};
use till::pricing::coupon::{Coupon, Kind as CouponKind};
use till::pricing::store::{TaxSettings, UseEnd};
use till::pricing::{Place, Rate, TaxCode, TaxLine};
use till::timeline::{self, Kind as TimelineKind};
use till::{checkout, idempotency, notify, pricing};

use crate::both;
use crate::helpers::{Backend, TestDb};

both!(
    inventory_store,
    orders_store,
    payments_store,
    refunds_and_webhooks_store,
    leases_store,
    idempotency_store,
    events_store,
    mail_store,
    webhook_endpoints_store,
    saga_reads_store,
    coupons_store,
    tax_store,
    documents_store,
    timeline_store,
    unknown_stored_values_are_errors,
    sweeps_find_their_rows_by_an_index,
);

/// A fresh database with Till's schema, and the database handle for it.
async fn fresh(backend: Backend) -> (TestDb, Db) {
    let test_db = TestDb::new(backend).await;
    let db = Db::connect(&test_db.url, 4).await.expect("connect");
    db.migrate().await.expect("migrate");
    (test_db, db)
}

async fn done(test_db: TestDb, db: Db) {
    db.pool.close().await;
    test_db.drop_db().await;
}

fn inr(minor: i64) -> Money {
    Money::new(minor, Currency::parse("INR").unwrap())
}

fn sku(s: &str) -> Sku {
    Sku::try_from(s).unwrap()
}

async fn stock_product(conn: &mut AnyConnection, kind: Kind, name: &str, on_hand: i64) {
    let product = Product {
        sku: name.into(),
        name: format!("{name} product"),
        price_minor: 500,
        currency: "INR".into(),
        tax_code: None,
    };
    inventory::store::upsert_product(conn, &product, 1)
        .await
        .unwrap();
    inventory::store::set_on_hand(conn, &sku(name), "main", on_hand, 1, kind)
        .await
        .unwrap();
}

/// A pending order of `qty` of `name` (stocked by the caller), with its stock locked.
async fn pending_order(
    conn: &mut AnyConnection,
    id: &str,
    name: &str,
    qty: i64,
    customer: Option<&str>,
) -> OrderId {
    let id = OrderId::from(id);
    let tax_lines = vec![TaxLine {
        name: "IGST".into(),
        rate_bps: 1200,
        amount: 60 * qty,
    }];
    let lines = vec![Line {
        sku: sku(name),
        qty,
        unit_amount: 500,
        amount: 500 * qty,
        discount: 0,
        hsn: Some("6109".into()),
        tax: 60 * qty,
        tax_lines: tax_lines.clone(),
    }];
    let order = NewOrder {
        id: &id,
        currency: Currency::parse("INR").unwrap(),
        lines: &lines,
        subtotal: 500 * qty,
        discount: 0,
        tax: 60 * qty,
        total: 560 * qty,
        customer: customer.map(|c| json!({"id": c})),
        customer_id: customer,
        ship_to: None,
        tax_lines: &tax_lines,
        coupon: Some("SAVE10"),
        secret_hash: "hash",
        fingerprint: Some("fp"),
        expires_at: 1_000,
    };
    orders::store::insert(conn, &order, 10).await.unwrap();
    let locking = inventory::store::lock_lines(conn, &id, &[(sku(name), qty)], 10)
        .await
        .unwrap();
    assert!(locking.short.is_empty(), "{:?}", locking.short);
    // The locks taken, warehouse by warehouse in name order, add up to the line.
    assert!(
        locking.held.iter().all(|h| h.sku == name),
        "{:?}",
        locking.held
    );
    assert!(locking
        .held
        .windows(2)
        .all(|w| w[0].warehouse < w[1].warehouse));
    assert_eq!(locking.held.iter().map(|h| h.qty).sum::<i64>(), qty);
    id
}

fn attempt(order_id: &OrderId, total: i64) -> Payment {
    Payment {
        id: PaymentId::generate(),
        order_id: order_id.clone(),
        status: Status::Processing,
        amount: inr(total),
        method: Method::Card,
        source: "pm_card_visa".into(),
        gateway: "stripe".into(),
        gateway_ref: None,
        fate: Fate::Open,
    }
}

fn answer(gateway_ref: &str, outcome: Outcome) -> GatewayPayment {
    GatewayPayment {
        gateway_ref: gateway_ref.into(),
        outcome,
    }
}

async fn inventory_store(b: Backend) {
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    assert!(inventory::store::get_product(&mut conn, "A")
        .await
        .unwrap()
        .is_none());
    stock_product(&mut conn, db.kind, "A", 5).await;
    stock_product(&mut conn, db.kind, "B", 1).await;
    let a = inventory::store::get_product(&mut conn, "A")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.price_minor, a.currency.as_str()), (500, "INR"));

    // Locks spread over warehouses in name order; a short SKU is reported, not half-taken
    // (the caller rolls back).
    inventory::store::set_on_hand(&mut conn, &sku("A"), "annex", 2, 2, db.kind)
        .await
        .unwrap();
    let order = pending_order(&mut conn, "ord_inv", "A", 6, None).await;
    let stock = inventory::store::get_stock(&mut conn, "A").await.unwrap();
    assert_eq!((stock.on_hand, stock.locked, stock.available), (7, 6, 1));
    // What is free to lock, over the warehouses, with the currency it sells in; nothing of
    // a SKU the catalog lacks.
    assert_eq!(
        inventory::store::available(&mut conn, "A").await.unwrap(),
        Some(("INR".to_string(), 1))
    );
    assert_eq!(
        inventory::store::available(&mut conn, "NONE")
            .await
            .unwrap(),
        None
    );
    let mut tx = conn.begin().await.unwrap();
    let locking = inventory::store::lock_lines(&mut tx, &"ord_probe".into(), &[(sku("B"), 2)], 3)
        .await
        .unwrap();
    assert_eq!(locking.short, vec!["B".to_string()]);
    tx.rollback().await.unwrap();

    // A batch's orders for one SKU: each, in the order given, gets its whole quantity,
    // spread over warehouses in name order, or nothing when less is left.
    let mut tx = conn.begin().await.unwrap();
    stock_product(&mut tx, db.kind, "C", 3).await;
    inventory::store::set_on_hand(&mut tx, &sku("C"), "annex", 2, 2, db.kind)
        .await
        .unwrap();
    let ids: Vec<OrderId> = ["ord_c1", "ord_c2", "ord_c3", "ord_c4"]
        .into_iter()
        .map(OrderId::from)
        .collect();
    let wants = [(&ids[0], 1), (&ids[1], 3), (&ids[2], 2), (&ids[3], 1)];
    // The locks join the caller's writes.
    let mut writes = till::db::Script::new();
    let grants =
        inventory::store::lock_for_orders(&mut tx, &mut writes, db.kind, &sku("C"), &wants, 3)
            .await
            .unwrap();
    writes.run(&mut tx).await.unwrap();
    let got: Vec<Vec<(&str, i64)>> = grants
        .iter()
        .map(|held| held.iter().map(|h| (h.warehouse.as_str(), h.qty)).collect())
        .collect();
    assert_eq!(
        got,
        vec![
            vec![("annex", 1)],
            vec![("annex", 1), ("main", 2)],
            vec![],
            vec![("main", 1)]
        ]
    );
    let stock = inventory::store::get_stock(&mut tx, "C").await.unwrap();
    assert_eq!((stock.on_hand, stock.locked), (5, 5));
    let written: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM locks WHERE sku = 'C' AND state = 'held'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(written, 4);
    tx.rollback().await.unwrap();

    // On-hand below what is locked is refused and changes nothing.
    let below = inventory::store::set_on_hand(&mut conn, &sku("A"), "main", 1, 4, db.kind).await;
    assert!(
        matches!(
            below,
            Err(Error::Conflict {
                code: "stock_below_locked",
                ..
            })
        ),
        "{below:?}"
    );

    // Committing takes stock out; a second settle moves nothing.
    let moved = inventory::store::settle_locks(&mut conn, &order, LockEnd::Committed, 5)
        .await
        .unwrap();
    assert_eq!(moved, 2);
    assert_eq!(
        inventory::store::settle_locks(&mut conn, &order, LockEnd::Released, 6)
            .await
            .unwrap(),
        0
    );
    let stock = inventory::store::get_stock(&mut conn, "A").await.unwrap();
    assert_eq!((stock.on_hand, stock.locked, stock.available), (1, 0, 1));

    // The shop's catalog: by name, each with what is available over its warehouses.
    inventory::store::set_on_hand(&mut conn, &sku("B"), "annex", 3, 7, db.kind)
        .await
        .unwrap();
    let catalog = inventory::store::catalog(&mut conn, 10).await.unwrap();
    let shown: Vec<(&str, i64)> = catalog.iter().map(|(p, n)| (p.sku.as_str(), *n)).collect();
    assert_eq!(shown, vec![("A", 1), ("B", 4)]);
    assert_eq!(
        inventory::store::catalog(&mut conn, 1).await.unwrap().len(),
        1
    );
    drop(conn);
    done(test_db, db).await;
}

async fn orders_store(b: Backend) {
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    stock_product(&mut conn, db.kind, "A", 10).await;
    let id = pending_order(&mut conn, "ord_1", "A", 2, Some("cus_1")).await;

    let head = orders::store::head(&mut conn, &id).await.unwrap().unwrap();
    assert_eq!(head.status, OrderStatus::Pending);
    assert_eq!(head.total, inr(1_120));
    assert_eq!((head.expires_at, head.paid_by), (1_000, None));
    assert!(orders::store::head(&mut conn, &"ord_none".into())
        .await
        .unwrap()
        .is_none());
    let lines = orders::store::lines(&mut conn, &id).await.unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].sku.as_str(), lines[0].qty), ("A", 2));
    assert_eq!((lines[0].tax, lines[0].hsn.as_deref()), (120, Some("6109")));
    assert_eq!(lines[0].tax_lines[0].amount, 120);
    let (tax_lines, coupon) = orders::store::pricing(&mut conn, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (tax_lines[0].amount, coupon.as_deref()),
        (120, Some("SAVE10"))
    );
    let (record, record_lines) = orders::store::record(&mut conn, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        format!("{record_lines:?}"),
        format!("{lines:?}"),
        "the record's lines are the order's"
    );
    assert_eq!(
        (
            record.status,
            record.total,
            record.tax,
            record.coupon.as_deref()
        ),
        (OrderStatus::Pending, 1_120, 120, Some("SAVE10"))
    );
    assert_eq!(record.tax_lines, tax_lines);
    assert!(orders::store::record(&mut conn, &"ord_none".into())
        .await
        .unwrap()
        .is_none());
    assert!(orders::store::pricing(&mut conn, &"ord_none".into())
        .await
        .unwrap()
        .is_none());

    // The same id again is a unique violation, for the caller to answer.
    let taken = NewOrder {
        id: &id,
        currency: Currency::parse("INR").unwrap(),
        lines: &lines,
        subtotal: 1,
        discount: 0,
        tax: 0,
        total: 1,
        customer: None,
        customer_id: None,
        ship_to: None,
        tax_lines: &[],
        coupon: None,
        secret_hash: "h",
        fingerprint: None,
        expires_at: 1,
    };
    let err = orders::store::insert(&mut conn, &taken, 11)
        .await
        .unwrap_err();
    assert!(till::db::is_unique_violation(&err), "{err}");

    assert_eq!(
        orders::store::pending_of_customer(&mut conn, "cus_1", 12)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        orders::store::due_to_expire(&mut conn, 999, 10)
            .await
            .unwrap(),
        Vec::<OrderId>::new()
    );
    assert_eq!(
        orders::store::due_to_expire(&mut conn, 1_000, 10)
            .await
            .unwrap(),
        vec![id.clone()]
    );

    orders::store::lock_row(&mut conn, &id).await.unwrap();
    assert!(orders::store::lock_pending(&mut conn, &id, 13)
        .await
        .unwrap());
    // Compare-and-set: only from a status the order is in.
    assert!(!orders::store::transition(
        &mut conn,
        &id,
        &[OrderStatus::Expired],
        OrderStatus::Confirmed,
        None,
        14
    )
    .await
    .unwrap());
    assert!(orders::store::transition(
        &mut conn,
        &id,
        &[OrderStatus::Pending],
        OrderStatus::Confirmed,
        None,
        14
    )
    .await
    .unwrap());
    assert!(!orders::store::lock_pending(&mut conn, &id, 15)
        .await
        .unwrap());
    let payment = attempt(&id, 1_000);
    payments::store::insert_attempt(&mut conn, &payment, 15)
        .await
        .unwrap();
    // The order's update joins the caller's writes.
    let mut writes = till::db::Script::new();
    let first = orders::store::record_paid(&mut conn, &mut writes, &id, &payment.id, 16)
        .await
        .unwrap();
    assert!(!writes.is_empty());
    writes.run(&mut conn).await.unwrap();
    assert!(first.starts_with("INV/"), "{first}");
    let head = orders::store::head(&mut conn, &id).await.unwrap().unwrap();
    assert_eq!(
        (head.status, head.paid_by),
        (OrderStatus::Confirmed, Some(payment.id.clone()))
    );
    // The head of a payment's order, read under the order's row lock in one statement.
    let locked = orders::store::lock_head_of_payment(&mut conn, &payment.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (locked.id, locked.status, locked.total, locked.coupon),
        (head.id, head.status, head.total, head.coupon)
    );
    assert_eq!(locked.paid_by, Some(payment.id.clone()));
    assert!(
        orders::store::lock_head_of_payment(&mut conn, &"pay_none".into())
            .await
            .unwrap()
            .is_none()
    );
    // Invoice numbers count up, one per paid order.
    let other = pending_order(&mut conn, "ord_2", "A", 1, None).await;
    let mut writes = till::db::Script::new();
    let second = orders::store::record_paid(&mut conn, &mut writes, &other, &payment.id, 17)
        .await
        .unwrap();
    writes.run(&mut conn).await.unwrap();
    assert!(second > first, "{second} after {first}");
    assert_eq!(
        orders::store::pending_of_customer(&mut conn, "cus_1", 18)
            .await
            .unwrap(),
        0
    );
    drop(conn);
    done(test_db, db).await;
}

async fn payments_store(b: Backend) {
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    stock_product(&mut conn, db.kind, "A", 10).await;
    let order = pending_order(&mut conn, "ord_1", "A", 1, None).await;
    let first = attempt(&order, 500);
    payments::store::insert_attempt(&mut conn, &first, 20)
        .await
        .unwrap();
    // One attempt in flight per order: a second is a unique violation.
    let err = payments::store::insert_attempt(&mut conn, &attempt(&order, 500), 21)
        .await
        .unwrap_err();
    assert!(till::db::is_unique_violation(&err), "{err}");

    let got = payments::store::get(&mut conn, &first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.status, got.amount, got.fate, got.gateway_ref),
        (Status::Processing, inr(500), Fate::Open, None)
    );
    assert!(payments::store::get(&mut conn, &"pay_none".into())
        .await
        .unwrap()
        .is_none());

    // The gateway's id is set once; a later answer naming another is not taken.
    payments::store::touch(&mut conn, &first.id, "pi_1", 22)
        .await
        .unwrap();
    payments::store::touch(&mut conn, &first.id, "pi_other", 23)
        .await
        .unwrap();
    assert!(payments::store::record_outcome(
        &mut conn,
        &first.id,
        Status::RequiresAction,
        &answer("pi_1", Outcome::Authorized),
        24
    )
    .await
    .unwrap()
    .is_none());
    // The move made returns the attempt as it now stands.
    let moved = payments::store::record_outcome(
        &mut conn,
        &first.id,
        Status::Processing,
        &answer("pi_2", Outcome::Authorized),
        24,
    )
    .await
    .unwrap()
    .expect("the move was made");
    assert_eq!(
        (moved.payment.status, moved.payment.gateway_ref.as_deref()),
        (Status::Authorized, Some("pi_1"))
    );
    let got = payments::store::get(&mut conn, &first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.status, got.gateway_ref.as_deref()),
        (Status::Authorized, Some("pi_1"))
    );
    assert!(payments::store::set_status(
        &mut conn,
        &first.id,
        Status::Authorized,
        Status::Succeeded,
        25
    )
    .await
    .unwrap());
    assert!(!payments::store::set_status(
        &mut conn,
        &first.id,
        Status::Authorized,
        Status::Canceled,
        26
    )
    .await
    .unwrap());
    payments::store::record_contradiction(&mut conn, &first.id, "reported canceled", 27)
        .await
        .unwrap();

    // Ending an order decides every attempt still in flight `void`, and only those.
    let second = attempt(&order, 500);
    payments::store::insert_attempt(&mut conn, &second, 28)
        .await
        .unwrap();
    let decided = payments::store::decide_void_in_flight(&mut conn, &order, 29)
        .await
        .unwrap();
    assert_eq!(decided, vec![second.id.clone()]);
    let all = payments::store::for_order(&mut conn, &order).await.unwrap();
    let fates: Vec<(PaymentId, Fate)> = all.iter().map(|p| (p.id.clone(), p.fate)).collect();
    assert_eq!(
        fates,
        vec![
            (first.id.clone(), Fate::Open),
            (second.id.clone(), Fate::Void)
        ]
    );
    let record = payments::store::record(&mut conn, &first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            record.payment.status,
            record.created_at,
            record.failure_code
        ),
        (Status::Succeeded, 20, None)
    );
    assert!(payments::store::record(&mut conn, &"pay_none".into())
        .await
        .unwrap()
        .is_none());
    let records = payments::store::records_for_order(&mut conn, &order)
        .await
        .unwrap();
    assert_eq!(
        records.iter().map(|r| &r.payment.id).collect::<Vec<_>>(),
        vec![&first.id, &second.id]
    );
    let changed = payments::store::changed_since(&mut conn, 29, i64::MAX)
        .await
        .unwrap();
    assert_eq!(
        changed.iter().map(|p| &p.id).collect::<Vec<_>>(),
        vec![&second.id]
    );
    drop(conn);
    done(test_db, db).await;
}

async fn refunds_and_webhooks_store(b: Backend) {
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    stock_product(&mut conn, db.kind, "A", 10).await;
    let order = pending_order(&mut conn, "ord_1", "A", 2, None).await;
    let payment = attempt(&order, 1_000);
    payments::store::insert_attempt(&mut conn, &payment, 30)
        .await
        .unwrap();
    let mut partial = Refund::pending(&payment, 300, "requested");
    partial.share = Some(RefundShare {
        taxable: 270,
        tax_lines: vec![TaxLine {
            name: "IGST".into(),
            rate_bps: 1200,
            amount: 30,
        }],
    });
    let rest = Refund::pending(&payment, 700, "requested");
    payments::store::insert_refund(&mut conn, &partial, 31)
        .await
        .unwrap();
    payments::store::insert_refund(&mut conn, &rest, 31)
        .await
        .unwrap();
    assert_eq!(
        payments::store::refunded_or_pending(&mut conn, &payment.id)
            .await
            .unwrap(),
        1_000
    );
    assert_eq!(
        payments::store::refunded(&mut conn, &payment.id)
            .await
            .unwrap(),
        0
    );
    assert!(
        payments::store::finish_refund(&mut conn, &partial.id, RefundStatus::Succeeded, 32)
            .await
            .unwrap()
    );
    // A refund leaves `pending` once.
    assert!(
        !payments::store::finish_refund(&mut conn, &partial.id, RefundStatus::Failed, 33)
            .await
            .unwrap()
    );
    assert!(
        payments::store::finish_refund(&mut conn, &rest.id, RefundStatus::Failed, 33)
            .await
            .unwrap()
    );
    assert_eq!(
        payments::store::refunded(&mut conn, &payment.id)
            .await
            .unwrap(),
        300
    );
    assert_eq!(
        payments::store::refunded_or_pending(&mut conn, &payment.id)
            .await
            .unwrap(),
        300
    );
    // Only refunds that are pending or succeeded count; one without a share adds nothing.
    let taken = payments::store::shares_taken(&mut conn, &payment.id)
        .await
        .unwrap();
    assert_eq!(taken, partial.share.clone().unwrap());
    let got = payments::store::get_refund(&mut conn, &partial.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.share, partial.share);
    let record = payments::store::refund_record_by_id(&mut conn, &partial.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.refund.id, record.created_at),
        (partial.id.clone(), 31)
    );
    let records = payments::store::refund_records_for_order(&mut conn, &order)
        .await
        .unwrap();
    assert_eq!(records.len(), 2);
    assert!(
        payments::store::refund_record_by_id(&mut conn, &"re_none".into())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        (got.status, got.amount, got.order_id),
        (RefundStatus::Succeeded, inr(300), order.clone())
    );
    assert!(payments::store::get_refund(&mut conn, &"re_none".into())
        .await
        .unwrap()
        .is_none());

    assert!(!payments::store::webhook_seen(&mut conn, "stripe", "evt_1")
        .await
        .unwrap());
    payments::store::record_webhook(&mut conn, "stripe", "evt_1", 34)
        .await
        .unwrap();
    payments::store::record_webhook(&mut conn, "stripe", "evt_1", 35)
        .await
        .unwrap();
    assert!(payments::store::webhook_seen(&mut conn, "stripe", "evt_1")
        .await
        .unwrap());
    assert!(
        !payments::store::webhook_seen(&mut conn, "razorpay", "evt_1")
            .await
            .unwrap()
    );
    drop(conn);
    done(test_db, db).await;
}

async fn leases_store(b: Backend) {
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    stock_product(&mut conn, db.kind, "A", 10).await;
    let order = pending_order(&mut conn, "ord_1", "A", 1, None).await;
    let payment = attempt(&order, 500);
    payments::store::insert_attempt(&mut conn, &payment, 100)
        .await
        .unwrap();
    let refund = Refund::pending(&payment, 100, "order_ended");
    payments::store::insert_refund(&mut conn, &refund, 100)
        .await
        .unwrap();

    // Touched at 100: not due for a lease that wants rows untouched since 99.
    assert!(
        !payments::store::lease_in_flight(&mut conn, &payment.id, 99, 200)
            .await
            .unwrap()
    );
    // The leases run on the pool (SQLite has one connection).
    drop(conn);
    assert!(payments::store::lease_due_attempts(&db, 99, 200, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        payments::store::lease_due_attempts(&db, 100, 200, 10)
            .await
            .unwrap(),
        vec![payment.id.clone()]
    );
    // The lease touched it: a second taker within the interval gets nothing.
    let mut conn = db.pool.acquire().await.unwrap();
    assert!(
        !payments::store::lease_in_flight(&mut conn, &payment.id, 150, 201)
            .await
            .unwrap()
    );
    assert!(
        payments::store::lease_in_flight(&mut conn, &payment.id, 200, 300)
            .await
            .unwrap()
    );
    drop(conn);
    assert_eq!(
        payments::store::lease_due_refunds(&db, 100, 200, 10)
            .await
            .unwrap(),
        vec![refund.id.clone()]
    );
    assert!(payments::store::lease_due_refunds(&db, 150, 201, 10)
        .await
        .unwrap()
        .is_empty());
    done(test_db, db).await;
}

async fn idempotency_store(b: Backend) {
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    use idempotency::store;
    assert!(
        store::insert_claim(&mut conn, "merchant", "k1", "fp1", None, 1_000)
            .await
            .unwrap()
    );
    assert!(
        !store::insert_claim(&mut conn, "merchant", "k1", "fp2", None, 1_001)
            .await
            .unwrap()
    );
    // Claimed with the resource it creates, in the transaction creating it.
    assert!(store::insert_claim(
        &mut conn,
        "ord_x",
        "k1",
        "fp1",
        Some(("payment", "pay_0")),
        1_001
    )
    .await
    .unwrap());
    let with_resource = store::get(&mut conn, "ord_x", "k1").await.unwrap().unwrap();
    assert_eq!(
        with_resource.resource,
        Some(("pay_0".to_string(), Some("payment".to_string())))
    );
    let running = store::get(&mut conn, "merchant", "k1")
        .await
        .unwrap()
        .unwrap();
    assert!(running.running && running.answer.is_none() && running.resource.is_none());
    assert_eq!(
        (running.fingerprint.as_str(), running.created_at),
        ("fp1", 1_000)
    );

    store::set_resource(&mut conn, "merchant", "k1", "payment", "pay_1")
        .await
        .unwrap();
    // A stale claim is taken over once, only as it was read.
    assert!(
        !store::take_over_stale(&mut conn, "merchant", "k1", 1_000, 999, 5_000)
            .await
            .unwrap()
    );
    assert!(
        store::take_over_stale(&mut conn, "merchant", "k1", 1_000, 1_000, 5_000)
            .await
            .unwrap()
    );
    assert!(
        !store::take_over_stale(&mut conn, "merchant", "k1", 1_000, 9_000, 6_000)
            .await
            .unwrap()
    );
    let taken = store::get(&mut conn, "merchant", "k1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.created_at, 5_000);
    assert_eq!(
        taken.resource,
        Some(("pay_1".to_string(), Some("payment".to_string())))
    );

    store::set_answer(&mut conn, "merchant", "k1", 201, r#"{"id":"pay_1"}"#)
        .await
        .unwrap();
    // A second answer does not replace the first.
    store::set_answer(&mut conn, "merchant", "k1", 500, r#"{"other":true}"#)
        .await
        .unwrap();
    let answered = store::get(&mut conn, "merchant", "k1")
        .await
        .unwrap()
        .unwrap();
    assert!(!answered.running);
    assert_eq!(
        answered.answer,
        Some((201, r#"{"id":"pay_1"}"#.to_string()))
    );
    // Only a running claim is released; an answered one stays.
    store::delete_running(&mut conn, "merchant", "k1")
        .await
        .unwrap();
    store::delete_running(&mut conn, "ord_x", "k1")
        .await
        .unwrap();
    assert!(store::get(&mut conn, "merchant", "k1")
        .await
        .unwrap()
        .is_some());
    assert!(store::get(&mut conn, "ord_x", "k1")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store::purge_done_before(&mut conn, 5_000, 10)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store::purge_done_before(&mut conn, 5_001, 10)
            .await
            .unwrap(),
        1
    );
    // A purge forgets at most its limit, oldest first, and only answered keys.
    for i in 0..5 {
        let key = format!("old{i}");
        store::insert_claim(&mut conn, "merchant", &key, "fp", None, 6_000 + i)
            .await
            .unwrap();
        store::set_answer(&mut conn, "merchant", &key, 201, "{}")
            .await
            .unwrap();
    }
    store::insert_claim(&mut conn, "merchant", "running", "fp", None, 6_000)
        .await
        .unwrap();
    assert_eq!(
        store::purge_done_before(&mut conn, 7_000, 2).await.unwrap(),
        2
    );
    for (key, kept) in [
        ("old0", false),
        ("old1", false),
        ("old2", true),
        ("running", true),
    ] {
        let found = store::get(&mut conn, "merchant", key).await.unwrap();
        assert_eq!(found.is_some(), kept, "{key}");
    }
    assert_eq!(
        store::purge_done_before(&mut conn, 7_000, 10)
            .await
            .unwrap(),
        3
    );
    drop(conn);
    done(test_db, db).await;
}

/// The workers' sweeps run every tick; each must find its rows through an index, or every
/// tick reads the whole table (a day of idempotency keys, every refund ever made). The plans
/// are asked of the database with sequential scans discouraged on PostgreSQL, whose planner
/// reads small tables whole whatever their indexes.
async fn sweeps_find_their_rows_by_an_index(b: Backend) {
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    if b == Backend::Postgres {
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    let sweeps = [
        (
            idempotency::store::PURGE_DONE_BEFORE.to_string(),
            "idempotency_keys_by_age",
        ),
        (
            till::db::lease_due_sql(&db, "refunds", till::payments::store::REFUNDS_DUE),
            "refunds_pending",
        ),
        (
            till::db::lease_due_sql(&db, "payments", &till::payments::store::attempts_due()),
            "payments_one_in_flight",
        ),
    ];
    for (sql, index) in sweeps {
        let (explain, column) = match b {
            Backend::Sqlite => ("EXPLAIN QUERY PLAN", 3),
            Backend::Postgres => ("EXPLAIN", 0),
        };
        let rows = sqlx::query(&format!("{explain} {sql}"))
            .bind(1_000_i64)
            .bind(1_000_i64)
            .bind(10_i64)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        let plan: Vec<String> = rows.iter().map(|row| row.get(column)).collect();
        assert!(
            plan.iter().any(|step| step.contains(index)),
            "{sql}\nis not served by {index}:\n{}",
            plan.join("\n")
        );
    }
    drop(conn);
    done(test_db, db).await;
}

async fn mail_store(b: Backend) {
    use till::mail::store::{self, NewMail, Tried};
    let (test_db, db) = fresh(b).await;
    let mail = |id: &'static str| NewMail {
        id,
        kind: "order.confirmed",
        order_id: "ord_1",
        refund_id: None,
        recipient: "asha@example.com",
        subject: "Order ord_1 confirmed",
        body_text: "text",
        body_html: "<p>html</p>",
    };
    let mut tx = db.pool.begin().await.unwrap();
    assert!(store::queue(&mut tx, &mail("evt_1"), 1_000).await.unwrap());
    assert!(
        !store::queue(&mut tx, &mail("evt_1"), 2_000).await.unwrap(),
        "an event is queued once"
    );
    assert!(store::queue(&mut tx, &mail("evt_2"), 1_000).await.unwrap());
    assert!(store::queue(&mut tx, &mail("evt_3"), 1_000).await.unwrap());
    tx.commit().await.unwrap();
    // Leased: nobody else gets them until the lease runs out.
    let mut leased = store::lease(&db, 1_000, 5_000, 10).await.unwrap();
    leased.sort();
    assert_eq!(leased, ["evt_1", "evt_2", "evt_3"]);
    assert!(store::lease(&db, 4_999, 9_000, 10)
        .await
        .unwrap()
        .is_empty());
    let mut conn = db.pool.acquire().await.unwrap();
    for (id, tried, now, recorded) in [
        ("evt_1", Tried::Sent, 1_100, true),
        ("evt_1", Tried::Sent, 1_200, false), // sent once
        ("evt_2", Tried::RetryAt("451 busy", 3_000), 1_100, true),
        ("evt_3", Tried::Failed("550 no such mailbox"), 1_100, true),
        ("evt_3", Tried::RetryAt("451", 3_000), 1_200, false),
        ("evt_1", Tried::Failed("late"), 1_200, false),
    ] {
        let got = store::record_try(&mut conn, id, &tried, now).await.unwrap();
        assert_eq!(got, recorded, "{id} at {now}");
    }
    // The retried one is due again at its time, not before; sent and failed never again.
    drop(conn); // SQLite's one connection, for the lease
    assert!(store::lease(&db, 2_999, 9_000, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store::lease(&db, 3_000, 9_000, 10).await.unwrap(),
        ["evt_2"]
    );
    let mut conn = db.pool.acquire().await.unwrap();
    let row = store::get(&mut conn, "evt_2").await.unwrap().unwrap();
    assert_eq!(
        (row.state.as_str(), row.attempts, row.last_error.as_deref()),
        ("pending", 1, Some("451 busy"))
    );
    assert_eq!(
        (row.recipient.as_str(), row.created_at),
        ("asha@example.com", 1_000)
    );
    let sent = store::get(&mut conn, "evt_1").await.unwrap().unwrap();
    assert_eq!(
        (sent.state.as_str(), sent.attempts, sent.last_error),
        ("sent", 1, None)
    );
    assert!(store::get(&mut conn, "evt_9").await.unwrap().is_none());
    assert_eq!(
        store::counts(&mut conn).await.unwrap(),
        [
            ("failed".to_string(), 1),
            ("pending".to_string(), 1),
            ("sent".to_string(), 1)
        ]
    );
    drop(conn);
    done(test_db, db).await;
}

async fn timeline_store(b: Backend) {
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let order: OrderId = "ord_1".into();
    // A step in a transaction that rolls back is not there; one that commits is.
    for commit in [false, true] {
        let mut tx = conn.begin().await.unwrap();
        let created = json!({"total": 1});
        timeline::store::insert(&mut tx, &order, TimelineKind::OrderCreated, &created, 5)
            .await
            .unwrap();
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
            let read = timeline::store::for_order(&mut conn, &order).await.unwrap();
            assert!(read.is_empty(), "{read:?}");
        }
    }
    let mut tx = conn.begin().await.unwrap();
    timeline::store::insert(
        &mut tx,
        &"ord_2".into(),
        TimelineKind::StockLocked,
        &json!({}),
        6,
    )
    .await
    .unwrap();
    // Written in this order, read in this order, whatever the clock said.
    timeline::record(
        &mut tx,
        &order,
        TimelineKind::StockLocked,
        &json!({"locks": []}),
        4,
    )
    .await
    .unwrap();
    // Several steps in one statement keep the order they were given in; none is no
    // statement at all.
    let steps = [
        (TimelineKind::PaymentSucceeded, json!({"n": 1})),
        (TimelineKind::OrderConfirmed, json!({"n": 2})),
        (TimelineKind::InvoiceIssued, json!({"n": 3})),
    ];
    let rows: Vec<_> = steps
        .iter()
        .map(|(kind, detail)| (order.clone(), *kind, detail.clone()))
        .collect();
    timeline::store::insert_all(&mut tx, &rows, 7)
        .await
        .unwrap();
    timeline::store::insert_all(&mut tx, &[], 8).await.unwrap();
    tx.commit().await.unwrap();
    let entries = timeline::store::for_order(&mut conn, &order).await.unwrap();
    let mut expected = vec![
        timeline::Entry {
            at: 5,
            kind: TimelineKind::OrderCreated,
            detail: json!({"total": 1}),
        },
        timeline::Entry {
            at: 4,
            kind: TimelineKind::StockLocked,
            detail: json!({"locks": []}),
        },
    ];
    expected.extend(steps.iter().map(|(kind, detail)| timeline::Entry {
        at: 7,
        kind: *kind,
        detail: detail.clone(),
    }));
    assert_eq!(entries, expected);
    // A kind or detail Till did not write is corrupt, never skipped.
    for statement in [
        "UPDATE timeline SET kind = 'order.teleported'",
        "UPDATE timeline SET detail = 'not json'",
    ] {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query(statement).execute(&mut *tx).await.unwrap();
        let err = timeline::store::for_order(&mut tx, &order)
            .await
            .unwrap_err();
        assert!(
            format!("{err:?}").contains("not a value Till knows"),
            "{statement}: {err:?}"
        );
        tx.rollback().await.unwrap();
    }
    drop(conn);
    done(test_db, db).await;
}

/// Each event's id and position, in the order given.
fn ids_at(events: &[notify::store::Row]) -> Vec<(&str, notify::Position)> {
    events.iter().map(|e| (e.id.as_str(), e.position)).collect()
}

async fn events_store(b: Backend) {
    use notify::store::{self, Position};
    let (test_db, db) = fresh(b).await;
    let mut tx = db.pool.begin().await.unwrap();
    store::insert(&mut tx, "evt_1", "order.confirmed", r#"{"id":"ord_1"}"#, 1)
        .await
        .unwrap();
    store::insert(&mut tx, "evt_2", "order.expired", r#"{"id":"ord_2"}"#, 2)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    match b {
        Backend::Postgres => {
            // Not yet sequenced: not visible, not addressable.
            assert!(store::after(&mut conn, Position::default(), None, 10)
                .await
                .unwrap()
                .is_empty());
            assert!(store::get(&mut conn, "evt_1").await.unwrap().is_none());
            assert!(!store::any_after(&mut conn, Position::default())
                .await
                .unwrap());
            assert!(store::unsequenced(&mut conn).await.unwrap());
            assert_eq!(store::sequence(&mut conn, db.kind, 1).await.unwrap(), 1);
            assert_eq!(store::sequence(&mut conn, db.kind, 10).await.unwrap(), 1);
        }
        // Numbered as they were written: nothing waits for the sequencer.
        Backend::Sqlite => assert!(!store::unsequenced(&mut conn).await.unwrap()),
    }
    assert_eq!(store::sequence(&mut conn, db.kind, 10).await.unwrap(), 0);
    assert!(!store::unsequenced(&mut conn).await.unwrap());
    let all = store::after(&mut conn, Position::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(
        ids_at(&all),
        [("evt_1", Position(1)), ("evt_2", Position(2))]
    );
    assert_eq!(all[1].data, r#"{"id":"ord_2"}"#);
    assert_eq!(all[1].created_at, 2);
    let rest = store::after(&mut conn, Position(1), None, 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert!(store::any_after(&mut conn, Position::default())
        .await
        .unwrap());
    assert!(store::any_after(&mut conn, Position(1)).await.unwrap());
    assert!(!store::any_after(&mut conn, Position(2)).await.unwrap());
    let typed = store::after(&mut conn, Position::default(), Some("order.expired"), 10)
        .await
        .unwrap();
    assert_eq!(typed.len(), 1);
    assert_eq!(typed[0].kind, "order.expired");
    let one = store::get(&mut conn, "evt_2").await.unwrap().unwrap();
    assert_eq!(one.position, Position(2));
    assert!(store::get(&mut conn, "evt_9").await.unwrap().is_none());

    // A sink starts before the first event and moves only from where it stands.
    assert_eq!(store::cursor(&mut conn, "log").await.unwrap(), None);
    let start = store::start_cursor(&mut conn, "log", 5).await.unwrap();
    assert_eq!(start, Position::default());
    assert_eq!(
        store::lags(&mut conn, 10).await.unwrap(),
        [("log".to_string(), 2, 9)]
    );
    assert!(store::advance(&mut conn, "log", start, Position(1), 6)
        .await
        .unwrap());
    assert!(!store::advance(&mut conn, "log", start, Position(2), 7)
        .await
        .unwrap());
    assert_eq!(
        store::cursor(&mut conn, "log").await.unwrap(),
        Some(Position(1))
    );
    // Starting a sink that has a cursor leaves it where it stands.
    assert_eq!(
        store::start_cursor(&mut conn, "log", 8).await.unwrap(),
        Position(1)
    );
    assert_eq!(
        store::lags(&mut conn, 10).await.unwrap(),
        [("log".to_string(), 1, 8)]
    );

    // One relay holds a sink until its lease runs out or it lets go.
    assert!(store::take(&mut conn, "log", "relay-a", 10, 40)
        .await
        .unwrap());
    assert!(!store::take(&mut conn, "log", "relay-b", 20, 50)
        .await
        .unwrap());
    assert!(store::take(&mut conn, "log", "relay-a", 30, 60)
        .await
        .unwrap());
    store::release(&mut conn, "log", "relay-b").await.unwrap();
    assert!(!store::take(&mut conn, "log", "relay-b", 40, 70)
        .await
        .unwrap());
    assert!(store::take(&mut conn, "log", "relay-b", 60, 90)
        .await
        .unwrap());
    store::release(&mut conn, "log", "relay-b").await.unwrap();
    assert!(store::take(&mut conn, "log", "relay-a", 61, 91)
        .await
        .unwrap());

    // Several events in one statement are numbered in the order given, after those before.
    let mut tx = conn.begin().await.unwrap();
    let batch = [
        ("evt_3", "payment.succeeded", r#"{"id":"pay_3"}"#),
        ("evt_4", "order.confirmed", r#"{"id":"ord_3"}"#),
    ];
    till::db::Script::of(|s| store::insert_all_into(s, &batch, 3))
        .run(&mut tx)
        .await
        .unwrap();
    till::db::Script::of(|s| store::insert_all_into(s, &[], 3))
        .run(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let sequenced = if b == Backend::Postgres { 2 } else { 0 };
    assert_eq!(
        store::sequence(&mut conn, db.kind, 10).await.unwrap(),
        sequenced
    );
    let added = store::after(&mut conn, Position(2), None, 10)
        .await
        .unwrap();
    assert_eq!(
        added
            .iter()
            .map(|e| (e.id.as_str(), e.kind.as_str(), e.position, e.created_at))
            .collect::<Vec<_>>(),
        [
            ("evt_3", "payment.succeeded", Position(3), 3),
            ("evt_4", "order.confirmed", Position(4), 3)
        ]
    );

    // An event without a position (on SQLite, one written before the counter row existed)
    // is numbered by the sequencer after those before it; the next event written after it.
    sqlx::query(
        "INSERT INTO events (id, type, data, created_at) VALUES ('evt_5', 'order.expired', '{}', 5)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    assert_eq!(store::sequence(&mut conn, db.kind, 10).await.unwrap(), 1);
    store::insert(&mut conn, "evt_6", "order.expired", "{}", 6)
        .await
        .unwrap();
    assert_eq!(
        store::sequence(&mut conn, db.kind, 10).await.unwrap(),
        u64::from(b == Backend::Postgres)
    );
    let last = store::after(&mut conn, Position(4), None, 10)
        .await
        .unwrap();
    assert_eq!(
        ids_at(&last),
        [("evt_5", Position(5)), ("evt_6", Position(6))]
    );
    drop(conn);
    done(test_db, db).await;
}

async fn webhook_endpoints_store(b: Backend) {
    use notify::webhooks::store::{self, AttemptRow, EndpointRow};
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    for (id, at) in [("we_a", 1), ("we_b", 2)] {
        let row = EndpointRow {
            id: id.into(),
            url: format!("https://shop.example/{id}"),
            events: "*".into(),
            secret: format!("whsec_{id}"),
            created_at: at,
        };
        store::insert_endpoint(&mut conn, &row).await.unwrap();
    }
    let live = store::live_endpoints(&mut conn).await.unwrap();
    assert_eq!(
        live.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["we_a", "we_b"]
    );
    assert_eq!(
        store::endpoint(&mut conn, "we_b")
            .await
            .unwrap()
            .unwrap()
            .secret,
        "whsec_we_b"
    );
    for (id, endpoint, at) in [
        ("whd_1", "we_a", 10),
        ("whd_2", "we_a", 11),
        ("whd_3", "we_b", 12),
    ] {
        store::insert_delivery(&mut conn, id, endpoint, "evt_1", at)
            .await
            .unwrap();
    }
    // One per endpoint, the earliest due; none of an endpoint with one leased. (SQLite's
    // pool has one connection: the lease takes it.)
    drop(conn);
    let leased = store::lease_due(&db, 20, 100, 10).await.unwrap();
    let mut ids: Vec<&str> = leased.iter().map(|d| d.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["whd_1", "whd_3"]);
    assert!(store::lease_due(&db, 21, 100, 10).await.unwrap().is_empty());
    // Not due yet: not leased.
    assert!(store::lease_due(&db, 5, 100, 10).await.unwrap().is_empty());
    let mut conn = db.pool.acquire().await.unwrap();
    let attempt = AttemptRow {
        delivery_id: "whd_1".into(),
        attempt: 1,
        at: 22,
        status_code: Some(500),
        error: Some("answered 500".into()),
        duration_ms: 7,
    };
    store::record_attempt(&mut conn, &attempt, "pending", Some(50))
        .await
        .unwrap();
    assert_eq!(
        store::attempts(&mut conn, "whd_1").await.unwrap(),
        [attempt]
    );
    // Released: the endpoint's next due delivery goes before the retry.
    drop(conn);
    let next = store::lease_due(&db, 30, 130, 10).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(
        next.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["whd_2"]
    );
    let log = store::deliveries(&mut conn, "we_a", 10).await.unwrap();
    assert_eq!(
        log.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["whd_2", "whd_1"]
    );
    assert_eq!((log[1].attempts, log[1].next_attempt_at), (1, Some(50)));
    assert_eq!(store::delivery_counts(&mut conn).await.unwrap(), (3, 0));
    // Deleted: gone, its pending deliveries dropped; an attempt recorded after keeps that.
    assert!(store::delete_endpoint(&mut conn, "we_a", 40).await.unwrap());
    assert!(!store::delete_endpoint(&mut conn, "we_a", 41).await.unwrap());
    assert!(store::endpoint(&mut conn, "we_a").await.unwrap().is_none());
    let late = AttemptRow {
        delivery_id: "whd_2".into(),
        attempt: 1,
        at: 42,
        status_code: Some(200),
        error: None,
        duration_ms: 3,
    };
    store::record_attempt(&mut conn, &late, "delivered", None)
        .await
        .unwrap();
    let log = store::deliveries(&mut conn, "we_a", 10).await.unwrap();
    assert!(log.iter().all(|d| d.status == "dropped"));
    let given_up = AttemptRow {
        delivery_id: "whd_3".into(),
        attempt: 1,
        at: 43,
        status_code: None,
        error: Some("could not connect".into()),
        duration_ms: 1,
    };
    store::record_attempt(&mut conn, &given_up, "failed", None)
        .await
        .unwrap();
    assert_eq!(store::delivery_counts(&mut conn).await.unwrap(), (0, 1));
    // `till verify` holds deliveries to their attempts.
    drop(conn);
    let report = till::verify::check(&db).await.unwrap();
    assert!(report.is_clean(), "{}", report.render());
    sqlx::query("UPDATE webhook_deliveries SET status = 'delivered' WHERE id = 'whd_3'")
        .execute(&db.pool)
        .await
        .unwrap();
    let report = till::verify::check(&db).await.unwrap();
    assert!(!report.is_clean() && report.render().contains("whd_3 status=delivered"));
    done(test_db, db).await;
}

async fn saga_reads_store(b: Backend) {
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    stock_product(&mut conn, db.kind, "A", 10).await;
    // Paid with an authorization not captured yet: awaiting capture, money held.
    let held = pending_order(&mut conn, "ord_held", "A", 1, None).await;
    let auth = attempt(&held, 500);
    payments::store::insert_attempt(&mut conn, &auth, 1)
        .await
        .unwrap();
    payments::store::record_outcome(
        &mut conn,
        &auth.id,
        Status::Processing,
        &answer("pi_a", Outcome::Authorized),
        2,
    )
    .await
    .unwrap();
    confirm_with(&mut conn, &held, &auth.id).await;
    // Paid, then the gateway contradicted it: flagged, not awaiting capture.
    let gone = pending_order(&mut conn, "ord_gone", "A", 1, None).await;
    let lost = attempt(&gone, 500);
    payments::store::insert_attempt(&mut conn, &lost, 3)
        .await
        .unwrap();
    payments::store::record_outcome(
        &mut conn,
        &lost.id,
        Status::Processing,
        &answer("pi_b", Outcome::Authorized),
        4,
    )
    .await
    .unwrap();
    confirm_with(&mut conn, &gone, &lost.id).await;
    payments::store::record_contradiction(&mut conn, &lost.id, "reported canceled", 5)
        .await
        .unwrap();

    let awaiting = checkout::store::paid_awaiting_capture(&mut conn)
        .await
        .unwrap();
    assert_eq!(awaiting, vec![(held.clone(), auth.id.clone())]);
    let unheld = checkout::store::unheld_paid_orders(&mut conn)
        .await
        .unwrap();
    assert_eq!(unheld.len(), 1);
    assert_eq!(unheld[0].order_id, gone);
    assert_eq!(unheld[0].paid_by, lost.id.as_str());
    assert_eq!(unheld[0].payment_status, "authorized");
    assert_eq!(unheld[0].contradiction, "reported canceled");
    drop(conn);
    done(test_db, db).await;
}

async fn confirm_with(conn: &mut AnyConnection, order: &OrderId, payment: &PaymentId) {
    assert!(orders::store::transition(
        conn,
        order,
        &[OrderStatus::Pending],
        OrderStatus::Confirmed,
        None,
        6
    )
    .await
    .unwrap());
    inventory::store::settle_locks(conn, order, LockEnd::Committed, 6)
        .await
        .unwrap();
    let mut writes = till::db::Script::new();
    orders::store::record_paid(conn, &mut writes, order, payment, 6)
        .await
        .unwrap();
    writes.run(conn).await.unwrap();
}

fn coupon(code: &str) -> Coupon {
    Coupon {
        code: code.into(),
        kind: CouponKind::Percent {
            percent_off: 10,
            max_discount: Some(5_000),
        },
        min_subtotal: Some(1_000),
        skus: vec![sku("A")],
        starts_at: Some(1),
        ends_at: None,
        active: true,
    }
}

async fn uses(conn: &mut AnyConnection, code: &str) -> (i64, i64) {
    let c = pricing::store::get_coupon(conn, code)
        .await
        .unwrap()
        .unwrap();
    (c.reserved, c.confirmed)
}

async fn coupons_store(b: Backend) {
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    assert!(pricing::store::get_coupon(&mut conn, "SAVE10")
        .await
        .unwrap()
        .is_none());
    pricing::store::upsert_coupon(&mut conn, &coupon("SAVE10"), Some(2), Some(1), 5)
        .await
        .unwrap();
    let got = pricing::store::get_coupon(&mut conn, "SAVE10")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.coupon, coupon("SAVE10"));
    assert_eq!(
        (
            got.max_uses,
            got.max_uses_per_customer,
            got.reserved,
            got.confirmed
        ),
        (Some(2), Some(1), 0, 0)
    );

    // One use per customer; two in all.
    let reserve = |order: &'static str, customer: Option<&'static str>| {
        let db = db.clone();
        async move {
            let mut tx = db.pool.begin().await.unwrap();
            let ok = pricing::store::reserve_use(&mut tx, "SAVE10", &order.into(), customer, 6)
                .await
                .unwrap();
            if ok {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            ok
        }
    };
    drop(conn);
    assert!(reserve("ord_1", Some("cus_1")).await);
    assert!(!reserve("ord_2", Some("cus_1")).await);
    assert!(reserve("ord_3", None).await);
    assert!(!reserve("ord_4", Some("cus_2")).await);
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(uses(&mut conn, "SAVE10").await, (2, 0));

    // Reserved → confirmed | released, once each; the counters follow.
    assert!(
        pricing::store::settle_use(&mut conn, &"ord_1".into(), UseEnd::Confirmed, 7)
            .await
            .unwrap()
    );
    assert!(
        !pricing::store::settle_use(&mut conn, &"ord_1".into(), UseEnd::Released, 8)
            .await
            .unwrap()
    );
    assert!(
        pricing::store::settle_use(&mut conn, &"ord_3".into(), UseEnd::Released, 8)
            .await
            .unwrap()
    );
    assert!(
        !pricing::store::settle_use(&mut conn, &"ord_none".into(), UseEnd::Released, 8)
            .await
            .unwrap()
    );
    assert_eq!(uses(&mut conn, "SAVE10").await, (0, 1));

    // A released use is taken back for a late confirmation while a use is left, once.
    assert!(pricing::store::retake_use(&mut conn, &"ord_3".into(), 9)
        .await
        .unwrap());
    assert!(pricing::store::retake_use(&mut conn, &"ord_3".into(), 9)
        .await
        .unwrap());
    assert_eq!(uses(&mut conn, "SAVE10").await, (0, 2));
    assert!(
        pricing::store::retake_use(&mut conn, &"ord_no_coupon".into(), 9)
            .await
            .unwrap()
    );
    drop(conn);
    assert!(!reserve("ord_5", None).await);

    // A customer who used the coupon again after a release keeps the late order from
    // taking its use back past the per-customer limit.
    let mut conn = db.pool.acquire().await.unwrap();
    pricing::store::upsert_coupon(&mut conn, &coupon("ONE"), None, Some(1), 5)
        .await
        .unwrap();
    assert!(
        pricing::store::reserve_use(&mut conn, "ONE", &"ord_a".into(), Some("cus_9"), 6)
            .await
            .unwrap()
    );
    assert!(
        pricing::store::settle_use(&mut conn, &"ord_a".into(), UseEnd::Released, 7)
            .await
            .unwrap()
    );
    assert!(
        pricing::store::reserve_use(&mut conn, "ONE", &"ord_b".into(), Some("cus_9"), 8)
            .await
            .unwrap()
    );
    let mut tx = conn.begin().await.unwrap();
    assert!(!pricing::store::retake_use(&mut tx, &"ord_a".into(), 9)
        .await
        .unwrap());
    tx.rollback().await.unwrap();
    assert_eq!(uses(&mut conn, "ONE").await, (1, 0));
    drop(conn);

    // New terms keep the counters.
    let mut conn = db.pool.acquire().await.unwrap();
    let mut fixed = coupon("SAVE10");
    fixed.kind = CouponKind::Fixed { amount_off: 20_000 };
    fixed.skus = vec![];
    pricing::store::upsert_coupon(&mut conn, &fixed, None, None, 10)
        .await
        .unwrap();
    let got = pricing::store::get_coupon(&mut conn, "SAVE10")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.coupon, got.max_uses, got.confirmed), (fixed, None, 2));
    drop(conn);
    done(test_db, db).await;
}

async fn tax_store(b: Backend) {
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    assert!(pricing::store::get_tax_settings(&mut conn)
        .await
        .unwrap()
        .is_none());
    let settings = TaxSettings {
        origin: Place {
            country: "IN".into(),
            region: Some("KA".into()),
        },
        prices_include_tax: false,
        gstin: Some("29ABCDE1234F1ZW".into()),
        legal_name: Some("Asha Textiles Pvt Ltd".into()),
        address: None,
    };
    pricing::store::put_tax_settings(&mut conn, &settings)
        .await
        .unwrap();
    assert_eq!(
        pricing::store::get_tax_settings(&mut conn).await.unwrap(),
        Some(settings)
    );
    let apparel = TaxCode {
        hsn: Some("6109".into()),
        rates: vec![
            Rate {
                country: "IN".into(),
                region: None,
                rate_bps: 1200,
                name: None,
            },
            Rate {
                country: "US".into(),
                region: Some("CA".into()),
                rate_bps: 725,
                name: Some("CA sales tax".into()),
            },
        ],
    };
    assert!(pricing::store::get_tax_code(&mut conn, "apparel")
        .await
        .unwrap()
        .is_none());
    pricing::store::put_tax_code(&mut conn, "apparel", &apparel, 1)
        .await
        .unwrap();
    assert_eq!(
        pricing::store::get_tax_code(&mut conn, "apparel")
            .await
            .unwrap(),
        Some(apparel)
    );
    drop(conn);
    done(test_db, db).await;
}

/// Data Till did not write (a hand edit, a newer version's status) is an error where it is
/// read, never a default that could move money.
/// A document as the API shows it, with the parties and lines left empty.
fn document(object: &str, number: &str, order: &str, refund: Option<&str>) -> serde_json::Value {
    let party =
        json!({"gstin": null, "legal_name": null, "address": null, "country": null, "state": null});
    let buyer = json!({"id": null, "name": null, "email": null, "phone": null, "gstin": null, "ship_to": null});
    let mut doc = json!({"object": object, "number": number, "issued_at": "2026-11-29T00:00:00Z",
        "order_id": order, "currency": "INR", "seller": party, "buyer": buyer, "place_of_supply": "KA",
        "prices_include_tax": false, "lines": [], "subtotal": 100, "discount": 0, "taxable_amount": 100,
        "tax": 0, "tax_lines": [], "total": 100, "total_in_words": "Rupees One Only"});
    if let Some(refund) = refund {
        doc["refund_id"] = json!(refund);
        doc["invoice_number"] = json!("INV/2026-27/000001");
        doc["invoice_issued_at"] = json!("2026-11-29T00:00:00Z");
    }
    doc
}

async fn documents_store(b: Backend) {
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let order = OrderId::from("ord_1");
    assert!(documents::store::invoice(&mut conn, &order)
        .await
        .unwrap()
        .is_none());
    let invoice: InvoiceDoc =
        serde_json::from_value(document("invoice", "INV/2026-27/000001", "ord_1", None)).unwrap();
    let new = |kind, number, refund_id, body| NewDocument {
        kind,
        number,
        order_id: &order,
        refund_id,
        issued_at: 1,
        body,
    };
    let body = serde_json::to_string(&invoice).unwrap();
    let first = new(
        documents::Kind::Invoice,
        "INV/2026-27/000001",
        None,
        body.clone(),
    );
    assert!(documents::store::insert(&mut conn, &first).await.unwrap());
    // One invoice per order: a second one is not stored.
    let again = new(documents::Kind::Invoice, "INV/2026-27/000002", None, body);
    assert!(!documents::store::insert(&mut conn, &again).await.unwrap());
    let read = documents::store::invoice(&mut conn, &order)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.number, "INV/2026-27/000001");
    // Credit notes: a series of their own, one per refund, oldest first.
    assert_eq!(
        documents::store::next_number(&mut conn, "credit_note/2026-27")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        documents::store::next_number(&mut conn, "credit_note/2026-27")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        documents::store::next_number(&mut conn, "credit_note/2027-28")
            .await
            .unwrap(),
        1
    );
    let refunds = [RefundId::from("re_1"), RefundId::from("re_2")];
    for (k, number) in ["CN/2026-27/000001", "CN/2026-27/000002"]
        .into_iter()
        .enumerate()
    {
        let note: CreditNoteDoc = serde_json::from_value(document(
            "credit_note",
            number,
            "ord_1",
            Some(refunds[k].as_str()),
        ))
        .unwrap();
        let doc = new(
            documents::Kind::CreditNote,
            number,
            Some(&refunds[k]),
            serde_json::to_string(&note).unwrap(),
        );
        assert!(documents::store::insert(&mut conn, &doc).await.unwrap());
        assert!(!documents::store::insert(&mut conn, &doc).await.unwrap());
    }
    let note = documents::store::credit_note(&mut conn, &refunds[1])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(note.number, "CN/2026-27/000002");
    assert!(
        documents::store::credit_note(&mut conn, &RefundId::from("re_3"))
            .await
            .unwrap()
            .is_none()
    );
    let notes = documents::store::credit_notes_of_order(&mut conn, &order)
        .await
        .unwrap();
    let numbers: Vec<&str> = notes.iter().map(|n| n.number.as_str()).collect();
    assert_eq!(numbers, ["CN/2026-27/000001", "CN/2026-27/000002"]);
    // A stored body Till cannot read is an error, never skipped.
    sqlx::query("UPDATE documents SET body = '{}' WHERE kind = 'invoice'")
        .execute(&mut *conn)
        .await
        .unwrap();
    let err = documents::store::invoice(&mut conn, &order)
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("not a value Till knows"),
        "{err:?}"
    );
    drop(conn);
    done(test_db, db).await;
}

async fn unknown_stored_values_are_errors(b: Backend) {
    let (test_db, db) = fresh(b).await;
    let mut conn = db.pool.acquire().await.unwrap();
    stock_product(&mut conn, db.kind, "A", 10).await;
    let order = pending_order(&mut conn, "ord_1", "A", 1, None).await;
    let payment = attempt(&order, 500);
    payments::store::insert_attempt(&mut conn, &payment, 1)
        .await
        .unwrap();
    let corrupt = [
        "UPDATE orders SET status = 'paid_maybe'",
        "UPDATE payments SET status = 'settling'",
        "UPDATE payments SET method = 'cash'",
        "UPDATE payments SET fate = 'keep'",
        "UPDATE payments SET currency = 'XXX'",
    ];
    for statement in corrupt {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query(statement).execute(&mut *tx).await.unwrap();
        let order_read = orders::store::head(&mut tx, &order).await;
        let payment_read = payments::store::get(&mut tx, &payment.id).await;
        let failed = order_read.is_err() || payment_read.is_err();
        assert!(failed, "{statement}: read back without an error");
        for err in [order_read.err(), payment_read.err()].into_iter().flatten() {
            let err = format!("{err:?}");
            assert!(err.contains("not a value Till knows"), "{statement}: {err}");
        }
        tx.rollback().await.unwrap();
    }
    drop(conn);
    done(test_db, db).await;
}

/// Every `pub async fn` of every store is called in this file, so the suite covers each
/// store function on both backends.
#[test]
fn every_store_function_is_called_here() {
    let root = env!("CARGO_MANIFEST_DIR");
    let suite = std::fs::read_to_string(format!("{root}/tests/api/stores.rs")).unwrap()
        + &std::fs::read_to_string(format!("{root}/tests/api/console_stores.rs")).unwrap();
    let mut missing = Vec::new();
    for module in [
        "inventory",
        "orders",
        "payments",
        "idempotency",
        "notify",
        "notify/webhooks",
        "checkout",
        "documents",
        "mail",
        "timeline",
        "pricing",
        "web/admin",
    ] {
        let file = format!("{root}/src/{module}/store.rs");
        let dir = format!("{root}/src/{module}/store");
        let mut text = std::fs::read_to_string(&file).unwrap_or_default();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries {
                text += &std::fs::read_to_string(entry.unwrap().path()).unwrap();
            }
        }
        assert!(!text.is_empty(), "no store for {module}");
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("pub async fn ") else {
                continue;
            };
            let name = rest.split(['(', '<']).next().unwrap();
            if !suite.contains(&format!("store::{name}(")) {
                missing.push(format!("{module}::store::{name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "store functions this suite never calls: {missing:?}"
    );
}
