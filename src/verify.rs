//! The invariants of ARCHITECTURE.md ("Invariants the code keeps"), checked against a live
//! database (read-only). Used by the tests after every test that changes stock, and by
//! `till verify`.

use std::fmt::Write;

use sqlx::Row;

use crate::db::Db;

/// Violating rows shown per invariant; the count is always complete.
const ROWS_SHOWN_MAX: usize = 20;

/// Each invariant: a name and a query returning one text column per violating row.
const INVARIANTS: &[(&str, &str)] = &[
    (
        "stock is conserved: ledger sum = on_hand per sku and warehouse",
        "SELECT i.sku || '/' || i.warehouse || ' on_hand=' || CAST(i.on_hand AS TEXT) || ' ledger=' || CAST(COALESCE(l.total, 0) AS TEXT)
         FROM inventory i LEFT JOIN (SELECT sku, warehouse, CAST(SUM(delta) AS BIGINT) AS total FROM stock_ledger GROUP BY sku, warehouse) l
           ON l.sku = i.sku AND l.warehouse = i.warehouse
         WHERE COALESCE(l.total, 0) <> i.on_hand",
    ),
    (
        "0 <= locked <= on_hand",
        "SELECT sku || '/' || warehouse || ' on_hand=' || CAST(on_hand AS TEXT) || ' locked=' || CAST(locked AS TEXT)
         FROM inventory WHERE locked < 0 OR locked > on_hand",
    ),
    (
        "locked = sum of held locks",
        "SELECT i.sku || '/' || i.warehouse || ' locked=' || CAST(i.locked AS TEXT) || ' held=' || CAST(COALESCE(h.total, 0) AS TEXT)
         FROM inventory i LEFT JOIN (SELECT sku, warehouse, CAST(SUM(qty) AS BIGINT) AS total FROM locks WHERE state = 'held' GROUP BY sku, warehouse) h
           ON h.sku = i.sku AND h.warehouse = i.warehouse
         WHERE COALESCE(h.total, 0) <> i.locked",
    ),
    (
        "no held lock on an order that is not pending",
        "SELECT l.id || ' order=' || o.id || ' status=' || o.status FROM locks l JOIN orders o ON o.id = l.order_id
         WHERE l.state = 'held' AND o.status <> 'pending'",
    ),
    (
        "a paid order's committed stock matches its items",
        "SELECT o.id || ' ' || oi.sku || ' qty=' || CAST(oi.qty AS TEXT) || ' committed=' || CAST(COALESCE(c.total, 0) AS TEXT)
         FROM orders o JOIN order_items oi ON oi.order_id = o.id
         LEFT JOIN (SELECT order_id, sku, CAST(SUM(qty) AS BIGINT) AS total FROM locks WHERE state = 'committed' GROUP BY order_id, sku) c
           ON c.order_id = o.id AND c.sku = oi.sku
         WHERE o.status IN ('confirmed', 'refunded', 'partially_refunded') AND COALESCE(c.total, 0) <> oi.qty",
    ),
    (
        "every paid order has exactly one kept payment for its total",
        "SELECT o.id || ' total=' || CAST(o.total AS TEXT) || ' kept=' || CAST(COUNT(p.id) AS TEXT)
         FROM orders o LEFT JOIN payments p ON p.order_id = o.id AND p.amount = o.total
           AND p.status IN ('authorized', 'succeeded', 'refunded')
           AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = p.id AND r.reason <> 'requested')
         WHERE o.status IN ('confirmed', 'refunded', 'partially_refunded')
         GROUP BY o.id, o.total HAVING COUNT(p.id) <> 1",
    ),
    (
        "a paid order names the payment it was paid with",
        "SELECT o.id || ' paid_by=' || COALESCE(o.paid_by, 'none') FROM orders o LEFT JOIN payments p ON p.id = o.paid_by
         WHERE o.status IN ('confirmed', 'refunded', 'partially_refunded')
           AND (p.id IS NULL OR p.order_id <> o.id OR p.status NOT IN ('authorized', 'succeeded', 'refunded'))",
    ),
    (
        "every succeeded payment belongs to a paid order or is being refunded",
        "SELECT p.id || ' order=' || o.id || ' status=' || o.status FROM payments p JOIN orders o ON o.id = p.order_id
         WHERE p.status = 'succeeded' AND o.status NOT IN ('confirmed', 'refunded', 'partially_refunded')
           AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = p.id AND r.status IN ('pending', 'succeeded'))",
    ),
    (
        "no refund over its payment",
        "SELECT p.id || ' amount=' || CAST(p.amount AS TEXT) || ' refunds=' || CAST(SUM(r.amount) AS TEXT)
         FROM payments p JOIN refunds r ON r.payment_id = p.id AND r.status IN ('pending', 'succeeded')
         GROUP BY p.id, p.amount HAVING SUM(r.amount) > p.amount",
    ),
    (
        "a coupon's counters are its uses: reserved and confirmed",
        "SELECT c.code || ' reserved=' || CAST(c.reserved AS TEXT) || '/' || CAST(COALESCE(u.reserved, 0) AS TEXT)
           || ' confirmed=' || CAST(c.confirmed AS TEXT) || '/' || CAST(COALESCE(u.confirmed, 0) AS TEXT)
         FROM coupons c LEFT JOIN (SELECT code,
             CAST(SUM(CASE WHEN state = 'reserved' THEN 1 ELSE 0 END) AS BIGINT) AS reserved,
             CAST(SUM(CASE WHEN state = 'confirmed' THEN 1 ELSE 0 END) AS BIGINT) AS confirmed
           FROM coupon_uses GROUP BY code) u ON u.code = c.code
         WHERE c.reserved <> COALESCE(u.reserved, 0) OR c.confirmed <> COALESCE(u.confirmed, 0)",
    ),
    (
        "a coupon is never used past its limits",
        "SELECT c.code || ' uses=' || CAST(c.reserved + c.confirmed AS TEXT) || ' max=' || CAST(c.max_uses AS TEXT)
         FROM coupons c WHERE c.max_uses IS NOT NULL AND c.reserved + c.confirmed > c.max_uses
         UNION ALL
         SELECT u.code || ' customer=' || u.customer_id || ' uses=' || CAST(COUNT(*) AS TEXT)
         FROM coupon_uses u JOIN coupons c ON c.code = u.code
         WHERE u.state IN ('reserved', 'confirmed') AND u.customer_id IS NOT NULL AND c.max_uses_per_customer IS NOT NULL
         GROUP BY u.code, u.customer_id, c.max_uses_per_customer HAVING COUNT(*) > c.max_uses_per_customer",
    ),
    (
        "a coupon use follows its order: reserved while pending, confirmed once paid, released once ended",
        "SELECT u.order_id || ' use=' || u.state || ' order=' || COALESCE(o.status, 'none')
         FROM coupon_uses u LEFT JOIN orders o ON o.id = u.order_id
         WHERE o.id IS NULL
            OR (u.state = 'reserved' AND o.status <> 'pending')
            OR (u.state = 'confirmed' AND o.status NOT IN ('confirmed', 'refunded', 'partially_refunded'))
            OR (u.state = 'released' AND o.status NOT IN ('cancelled', 'expired'))",
    ),
    (
        "an issued invoice is its order's: same number, a paid order",
        "SELECT d.number || ' order=' || d.order_id || ' invoice_number=' || COALESCE(o.invoice_number, 'none')
         FROM documents d LEFT JOIN orders o ON o.id = d.order_id
         WHERE d.kind = 'invoice' AND (o.id IS NULL OR o.invoice_number IS NULL OR o.invoice_number <> d.number
           OR o.status NOT IN ('confirmed', 'refunded', 'partially_refunded'))",
    ),
    (
        "a credit note belongs to a succeeded refund the merchant asked for, of an invoiced order",
        "SELECT d.number || ' refund=' || COALESCE(d.refund_id, 'none') || ' status=' || COALESCE(r.status, 'none')
         FROM documents d LEFT JOIN refunds r ON r.id = d.refund_id
         WHERE d.kind = 'credit_note' AND (r.id IS NULL OR r.status <> 'succeeded' OR r.reason <> 'requested'
           OR r.order_id <> d.order_id
           OR NOT EXISTS (SELECT 1 FROM documents i WHERE i.kind = 'invoice' AND i.order_id = d.order_id))",
    ),
    (
        "at most one payment in flight per order",
        "SELECT order_id || ' in_flight=' || CAST(COUNT(*) AS TEXT) FROM payments
         WHERE status IN ('processing', 'requires_action', 'authorized') GROUP BY order_id HAVING COUNT(*) > 1",
    ),
    // The timeline's steps are written in their change's transaction, so each change that
    // committed has its step exactly once. Orders from before the timeline (no
    // `order.created`) are not held to it.
    (
        "an order's end is on its timeline once: paid orders confirmed, ended orders ended",
        "SELECT o.id || ' status=' || o.status || ' steps=' || CAST(COUNT(t.id) AS TEXT)
         FROM orders o JOIN timeline c ON c.order_id = o.id AND c.kind = 'order.created'
         LEFT JOIN timeline t ON t.order_id = o.id AND t.kind = CASE
             WHEN o.status IN ('confirmed', 'refunded', 'partially_refunded') THEN 'order.confirmed'
             WHEN o.status = 'cancelled' THEN 'order.cancelled'
             WHEN o.status = 'expired' THEN 'order.expired' END
         WHERE o.status <> 'pending'
         GROUP BY o.id, o.status HAVING COUNT(t.id) <> 1",
    ),
    (
        "every payment attempt is on its order's timeline once",
        "SELECT p.id || ' order=' || p.order_id || ' steps=' || CAST(COUNT(t.id) AS TEXT)
         FROM payments p JOIN timeline c ON c.order_id = p.order_id AND c.kind = 'order.created'
         LEFT JOIN timeline t ON t.order_id = p.order_id AND t.kind = 'payment.attempted'
           AND t.detail LIKE '%\"payment_id\":\"' || p.id || '\"%'
         GROUP BY p.id, p.order_id HAVING COUNT(t.id) <> 1",
    ),
    (
        "a webhook delivery counts its attempts, is delivered only by a 2xx, and none waits for a deleted endpoint",
        "SELECT d.id || ' status=' || d.status || ' attempts=' || CAST(d.attempts AS TEXT) || ' recorded=' || CAST(COUNT(a.attempt) AS TEXT)
         FROM webhook_deliveries d LEFT JOIN webhook_attempts a ON a.delivery_id = d.id
         GROUP BY d.id, d.status, d.attempts
         HAVING (d.status <> 'dropped' AND d.attempts <> COUNT(a.attempt))
             OR (d.status = 'delivered' AND SUM(CASE WHEN a.status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END) <> 1)
         UNION ALL
         SELECT d.id || ' pending for deleted endpoint ' || e.id
         FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE d.status = 'pending' AND e.deleted_at IS NOT NULL",
    ),
];

pub struct Report {
    pub results: Vec<(&'static str, usize, Vec<String>)>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.results.iter().all(|(_, n, _)| *n == 0)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, count, rows) in &self.results {
            let mark = if *count == 0 { "ok  " } else { "FAIL" };
            let _ = writeln!(
                out,
                "{mark} {name}{}",
                if *count == 0 {
                    String::new()
                } else {
                    format!(" ({count} rows)")
                }
            );
            for row in rows {
                let _ = writeln!(out, "       {row}");
            }
        }
        out
    }
}

/// Runs every invariant query. Read-only: safe on a production database.
pub async fn check(db: &Db) -> anyhow::Result<Report> {
    let mut results = Vec::with_capacity(INVARIANTS.len());
    for (name, sql) in INVARIANTS {
        let rows = sqlx::query(sql).fetch_all(&db.pool).await?;
        let shown = rows
            .iter()
            .take(ROWS_SHOWN_MAX)
            .map(|r| r.get::<String, _>(0))
            .collect();
        results.push((*name, rows.len(), shown));
    }
    Ok(Report { results })
}
