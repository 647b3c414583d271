//! Orders: the order record, its items, its state machine and its JSON view.
//!
//! Status changes only through `transition`, a compare-and-set on the current status, so
//! a webhook and the expiry sweeper racing on one order cannot both win.

use serde_json::Value;
use sqlx::{AnyConnection, Row};

use crate::error::Result;

mod view;
pub use view::{record_view, Address, Customer, OrderRecord};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pending,
    Confirmed,
    Cancelled,
    Expired,
    Refunded,
    PartiallyRefunded,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Confirmed,
        Status::Cancelled,
        Status::Expired,
        Status::Refunded,
        Status::PartiallyRefunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
            Status::Expired => "expired",
            Status::Refunded => "refunded",
            Status::PartiallyRefunded => "partially_refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The legal moves. A cancelled order stays cancelled (a customer's cancel and a failed
    /// payment are final); an expired one may still be confirmed, by money captured for an
    /// attempt that was in flight when its hold ran out (see `checkout::pay::keep_money`).
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Pending, Confirmed | Cancelled | Expired)
                | (Expired, Confirmed)
                | (Confirmed | PartiallyRefunded, PartiallyRefunded | Refunded)
        )
    }

    /// Paid for: the order's stock has left the warehouse.
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            Status::Confirmed | Status::Refunded | Status::PartiallyRefunded
        )
    }
}

/// Why an order stopped before it was paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    PaymentFailed,
    Customer,
    Expired,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::PaymentFailed => "payment_failed",
            CancelReason::Customer => "customer",
            CancelReason::Expired => "expired",
        }
    }
}

/// The columns other modules need to decide what to do with an order.
#[derive(Clone, Debug)]
pub struct OrderHead {
    pub id: String,
    pub status: Status,
    pub currency: String,
    pub total: i64,
    pub expires_at: i64,
    pub secret_hash: String,
    pub fingerprint: Option<String>,
    /// The payment the order was confirmed with; the only one of its payments Till keeps.
    pub paid_by: Option<String>,
}

/// A new order, priced, before it is written.
pub struct NewOrder<'a> {
    pub id: &'a str,
    pub currency: &'a str,
    pub lines: &'a [Line],
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub total: i64,
    pub customer: Option<Value>,
    /// `customer.id`: what `TILL_MAX_PENDING_PER_CUSTOMER` counts by.
    pub customer_id: Option<&'a str>,
    pub ship_to: Option<Value>,
    pub secret_hash: &'a str,
    pub fingerprint: Option<&'a str>,
    pub expires_at: i64,
}

#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = OrderItem)]
pub struct Line {
    pub sku: String,
    pub qty: i64,
    pub unit_amount: i64,
    pub amount: i64,
}

/// Writes the order and its lines. Fails with a unique violation if the id is taken.
pub async fn insert(
    conn: &mut AnyConnection,
    o: &NewOrder<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO orders (id, status, currency, subtotal, discount, tax, total, customer, ship_to,
           secret_hash, fingerprint, expires_at, created_at, updated_at, customer_id)
         VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13)",
    )
    .bind(o.id)
    .bind(o.currency)
    .bind(o.subtotal)
    .bind(o.discount)
    .bind(o.tax)
    .bind(o.total)
    .bind(o.customer.as_ref().map(Value::to_string))
    .bind(o.ship_to.as_ref().map(Value::to_string))
    .bind(o.secret_hash)
    .bind(o.fingerprint)
    .bind(o.expires_at)
    .bind(now)
    .bind(o.customer_id)
    .execute(&mut *conn)
    .await?;
    for (n, line) in o.lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO order_items (order_id, line, sku, qty, unit_amount, amount) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(o.id)
        .bind(n as i64)
        .bind(&line.sku)
        .bind(line.qty)
        .bind(line.unit_amount)
        .bind(line.amount)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn head(conn: &mut AnyConnection, id: &str) -> Result<Option<OrderHead>> {
    let row = sqlx::query(
        "SELECT id, status, currency, total, expires_at, secret_hash, fingerprint, paid_by FROM orders WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    let status: String = r.get("status");
    Ok(Some(OrderHead {
        id: r.get("id"),
        status: Status::parse(&status)
            .ok_or_else(|| crate::error::corrupt("orders.status", &status))?,
        currency: r.get("currency"),
        total: r.get("total"),
        expires_at: r.get("expires_at"),
        secret_hash: r.get("secret_hash"),
        fingerprint: r.get("fingerprint"),
        paid_by: r.get("paid_by"),
    }))
}

pub async fn lines(conn: &mut AnyConnection, id: &str) -> Result<Vec<Line>> {
    let rows = sqlx::query(
        "SELECT sku, qty, unit_amount, amount FROM order_items WHERE order_id = $1 ORDER BY line",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Line {
            sku: r.get("sku"),
            qty: r.get("qty"),
            unit_amount: r.get("unit_amount"),
            amount: r.get("amount"),
        })
        .collect())
}

/// The customer's pending orders, counted after taking the customer's row lock (an upsert
/// of its `customer_checkouts` row, held to the end of the transaction): concurrent
/// checkouts of one customer count one after another, each seeing the orders the others
/// committed. On SQLite the single writer serializes them anyway.
pub async fn pending_of_customer(
    conn: &mut AnyConnection,
    customer_id: &str,
    now: i64,
) -> Result<i64> {
    sqlx::query(
        "INSERT INTO customer_checkouts (customer_id, last_checkout_at) VALUES ($1, $2)
         ON CONFLICT (customer_id) DO UPDATE SET last_checkout_at = excluded.last_checkout_at",
    )
    .bind(customer_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let pending: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM orders WHERE customer_id = $1 AND status = 'pending'",
    )
    .bind(customer_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(pending)
}

/// Compare-and-set of the status: moves the order to `to` only if it is in one of `from`.
/// Returns whether this call made the move.
pub async fn transition(
    conn: &mut AnyConnection,
    id: &str,
    from: &[Status],
    to: Status,
    reason: Option<CancelReason>,
    now: i64,
) -> Result<bool> {
    assert!(
        from.iter().all(|f| f.can_become(to)),
        "illegal order transition {from:?} -> {to:?}"
    );
    let placeholders: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 5)).collect();
    let sql = format!(
        "UPDATE orders SET status = $1, cancel_reason = $2, updated_at = $3
         WHERE id = $4 AND status IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .bind(to.as_str())
        .bind(reason.map(CancelReason::as_str))
        .bind(now)
        .bind(id);
    for status in from {
        query = query.bind(status.as_str());
    }
    Ok(query.execute(&mut *conn).await?.rows_affected() == 1)
}

/// Takes the row lock on a pending order (PostgreSQL) so decisions about it serialize;
/// on SQLite the single writer already serializes. Returns false if it is not pending.
pub async fn lock_pending(conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool> {
    let n = sqlx::query("UPDATE orders SET updated_at = $1 WHERE id = $2 AND status = 'pending'")
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Same as `lock_pending`, for any status: serializes refunds on one order.
pub async fn lock_row(conn: &mut AnyConnection, id: &str) -> Result<()> {
    sqlx::query("UPDATE orders SET updated_at = updated_at WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records which payment paid for the order, and gives it its invoice number.
pub async fn record_paid(
    conn: &mut AnyConnection,
    id: &str,
    payment_id: &str,
    now: i64,
) -> Result<String> {
    sqlx::query("UPDATE orders SET paid_by = $1 WHERE id = $2")
        .bind(payment_id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    set_invoice_number(conn, id, now).await
}

async fn set_invoice_number(conn: &mut AnyConnection, id: &str, now: i64) -> Result<String> {
    let n: i64 = sqlx::query_scalar(
        "INSERT INTO counters (name, value) VALUES ('invoice', 1)
         ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
    )
    .fetch_one(&mut *conn)
    .await?;
    let number = format!("INV-{n:08}");
    sqlx::query("UPDATE orders SET invoice_number = $1, updated_at = $2 WHERE id = $3")
        .bind(&number)
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(number)
}

#[cfg(test)]
mod tests {
    use super::Status::{self, *};

    #[test]
    fn terminal_states_are_final() {
        for to in Status::ALL {
            assert!(!Refunded.can_become(to), "refunded -> {to:?}");
        }
        assert!(!Confirmed.can_become(Pending));
        assert!(!Confirmed.can_become(Cancelled));
        assert!(!Cancelled.can_become(Expired));
        assert!(!Expired.can_become(Pending));
        for to in Status::ALL {
            assert!(
                !Cancelled.can_become(to),
                "a cancel is final: cancelled -> {to:?}"
            );
        }
    }

    /// Every move, legal or not, against the table of the rules: exhaustive, so a change to
    /// `can_become` that the table does not share fails here.
    #[test]
    fn every_move_is_as_the_rules_say() {
        let legal = [
            (Pending, Confirmed),
            (Pending, Cancelled),
            (Pending, Expired),
            // Captured money for an attempt in flight when the hold ran out.
            (Expired, Confirmed),
            (Confirmed, PartiallyRefunded),
            (Confirmed, Refunded),
            (PartiallyRefunded, PartiallyRefunded),
            (PartiallyRefunded, Refunded),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(
                    from.can_become(to),
                    legal.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn legal_moves() {
        assert!(Pending.can_become(Confirmed));
        assert!(Pending.can_become(Expired));
        assert!(Expired.can_become(Confirmed));
        assert!(Confirmed.can_become(PartiallyRefunded));
        assert!(PartiallyRefunded.can_become(Refunded));
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }
}
