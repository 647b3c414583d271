//! The orders store: every statement on `orders`, `order_items`, `customer_checkouts` and
//! the invoice counter. Rows come back typed; a stored status Till does not know is an
//! error, never a default.

use serde_json::Value;
use sqlx::AnyConnection;

use super::{financial_year, invoice_number, CancelReason, Line, NewOrder, OrderHead, Status};
use crate::db::{Bind, Script};
use crate::error::{corrupt, Result};
use crate::ids::{OrderId, PaymentId, Sku};
use crate::money::{Currency, Money, TaxLine};
use crate::multirow;

/// Writes the order and its lines. Fails with a unique violation if the id is taken.
pub async fn insert(
    conn: &mut AnyConnection,
    o: &NewOrder<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    insert_all(conn, std::slice::from_ref(o), now).await
}

/// Writes the orders and their lines, with one statement for each run of orders and one for
/// each run of lines (`multirow::runs`). Fails with a unique violation if an id is taken.
pub async fn insert_all(
    conn: &mut AnyConnection,
    orders: &[NewOrder<'_>],
    now: i64,
) -> Result<(), sqlx::Error> {
    Script::of(|s| insert_all_into(s, orders, now))
        .run(conn)
        .await
}

/// `insert_all`'s statements, added to `script` for the caller to run with its other writes.
pub fn insert_all_into(script: &mut Script, orders: &[NewOrder<'_>], now: i64) {
    for run in multirow::runs(orders.len()) {
        let sql = format!(
            "INSERT INTO orders (id, status, currency, subtotal, discount, tax, total, customer, ship_to,
               secret_hash, fingerprint, expires_at, created_at, updated_at, customer_id, tax_lines, coupon)
             VALUES {}",
            multirow::values("(?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, $1, $1, ?, ?, ?)", run.len(), 2)
        );
        let mut binds = Vec::with_capacity(1 + 15 * run.len());
        binds.push(Bind::from(now));
        for o in &orders[run] {
            binds.extend([
                o.id.as_str().into(),
                o.currency.code().into(),
                o.subtotal.into(),
                o.discount.into(),
                o.tax.into(),
                o.total.into(),
                o.customer.as_ref().map(Value::to_string).into(),
                o.ship_to.as_ref().map(Value::to_string).into(),
                o.secret_hash.into(),
                o.fingerprint.into(),
                o.expires_at.into(),
                o.customer_id.into(),
                tax_lines_json(o.tax_lines).into(),
                o.coupon.into(),
            ]);
        }
        script.push(sql, binds);
    }
    let lines: Vec<(&OrderId, usize, &Line)> = orders
        .iter()
        .flat_map(|o| {
            o.lines
                .iter()
                .enumerate()
                .map(move |(n, line)| (o.id, n, line))
        })
        .collect();
    for run in multirow::runs(lines.len()) {
        let sql = format!(
            "INSERT INTO order_items (order_id, line, sku, qty, unit_amount, amount, discount, hsn, tax, tax_lines)
             VALUES {}",
            multirow::values("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", run.len(), 1)
        );
        let mut binds = Vec::with_capacity(10 * run.len());
        for (order_id, n, line) in &lines[run] {
            binds.extend([
                order_id.as_str().into(),
                (*n as i64).into(),
                line.sku.as_str().into(),
                line.qty.into(),
                line.unit_amount.into(),
                line.amount.into(),
                line.discount.into(),
                line.hsn.clone().into(),
                line.tax.into(),
                tax_lines_json(&line.tax_lines).into(),
            ]);
        }
        script.push(sql, binds);
    }
}

/// The columns `OrderHead` is read from.
const HEAD_COLUMNS: &str =
    "id, status, currency, total, expires_at, secret_hash, fingerprint, paid_by, coupon";

type HeadRow = (
    String,
    String,
    String,
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn head_of(row: HeadRow) -> Result<OrderHead> {
    let (id, status, currency, total, expires_at, secret_hash, fingerprint, paid_by, coupon) = row;
    let currency =
        Currency::parse(&currency).ok_or_else(|| corrupt("orders.currency", &currency))?;
    Ok(OrderHead {
        id: id.into(),
        status: Status::try_from(status.as_str())?,
        total: Money::new(total, currency),
        expires_at,
        secret_hash,
        fingerprint,
        paid_by: paid_by.map(PaymentId::from),
        coupon,
    })
}

/// What the saga needs to decide about an order; `None` if there is none.
pub async fn head(conn: &mut AnyConnection, id: &OrderId) -> Result<Option<OrderHead>> {
    let row: Option<HeadRow> =
        sqlx::query_as(&format!("SELECT {HEAD_COLUMNS} FROM orders WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    row.map(head_of).transpose()
}

/// Takes the row lock on the order of `payment_id` (as `lock_row`) and reads its head under
/// it, in one statement; `None` if there is no such payment.
pub async fn lock_head_of_payment(
    conn: &mut AnyConnection,
    payment_id: &PaymentId,
) -> Result<Option<OrderHead>> {
    let row: Option<HeadRow> = sqlx::query_as(&format!(
        "UPDATE orders SET updated_at = updated_at
         WHERE id = (SELECT order_id FROM payments WHERE id = $1) RETURNING {HEAD_COLUMNS}"
    ))
    .bind(payment_id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(head_of).transpose()
}

/// The order's lines, in the order they were written.
pub async fn lines(conn: &mut AnyConnection, id: &OrderId) -> Result<Vec<Line>> {
    let rows: Vec<LineRow> = sqlx::query_as(
        "SELECT sku, qty, unit_amount, amount, discount, hsn, tax, tax_lines
         FROM order_items WHERE order_id = $1 ORDER BY line",
    )
    .bind(id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter().map(line_of).collect()
}

/// A line's row: sku, qty, unit amount, amount, discount, HSN code, tax, tax lines.
type LineRow = (
    String,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    i64,
    Option<String>,
);

fn line_of(
    (sku, qty, unit_amount, amount, discount, hsn, tax, tax_lines): LineRow,
) -> Result<Line> {
    Ok(Line {
        sku: Sku::try_from(sku.as_str()).map_err(|_| corrupt("order_items.sku", &sku))?,
        qty,
        unit_amount,
        amount,
        discount,
        hsn,
        tax,
        tax_lines: stored_tax_lines("order_items.tax_lines", tax_lines)?,
    })
}

/// An order's record as stored, for its view.
pub struct StoredOrder {
    pub id: String,
    pub status: Status,
    pub cancel_reason: Option<String>,
    pub currency: String,
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub total: i64,
    /// JSON as the order was created with it.
    pub customer: Option<String>,
    pub ship_to: Option<String>,
    pub invoice_number: Option<String>,
    pub tax_lines: Vec<TaxLine>,
    pub coupon: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An order's record as stored and its lines in the order they were written, read in one
/// statement (the order's columns repeat on each line's row).
pub async fn record(
    conn: &mut AnyConnection,
    id: &OrderId,
) -> Result<Option<(StoredOrder, Vec<Line>)>> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT o.id, o.status, o.cancel_reason, o.currency, o.subtotal, o.discount, o.tax, o.total,
           o.customer, o.ship_to, o.invoice_number, o.tax_lines, o.coupon, o.expires_at,
           o.created_at, o.updated_at,
           i.sku, i.qty, i.unit_amount, i.amount, i.discount, i.hsn, i.tax, i.tax_lines
         FROM orders o LEFT JOIN order_items i ON i.order_id = o.id
         WHERE o.id = $1 ORDER BY i.line",
    )
    .bind(id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let status: String = first.try_get(1)?;
    let stored = StoredOrder {
        id: first.try_get(0)?,
        status: Status::try_from(status.as_str())?,
        cancel_reason: first.try_get(2)?,
        currency: first.try_get(3)?,
        subtotal: first.try_get(4)?,
        discount: first.try_get(5)?,
        tax: first.try_get(6)?,
        total: first.try_get(7)?,
        customer: first.try_get(8)?,
        ship_to: first.try_get(9)?,
        invoice_number: first.try_get(10)?,
        tax_lines: stored_tax_lines("orders.tax_lines", first.try_get(11)?)?,
        coupon: first.try_get(12)?,
        expires_at: first.try_get(13)?,
        created_at: first.try_get(14)?,
        updated_at: first.try_get(15)?,
    };
    let mut lines = Vec::with_capacity(rows.len());
    for row in &rows {
        // An order without lines has one row, its lines' columns NULL.
        let Some(sku) = row.try_get::<Option<String>, _>(16)? else {
            continue;
        };
        lines.push(line_of((
            sku,
            row.try_get(17)?,
            row.try_get(18)?,
            row.try_get(19)?,
            row.try_get(20)?,
            row.try_get(21)?,
            row.try_get(22)?,
            row.try_get(23)?,
        ))?);
    }
    Ok(Some((stored, lines)))
}

/// The order's own tax lines and coupon code.
pub async fn pricing(
    conn: &mut AnyConnection,
    id: &OrderId,
) -> Result<Option<(Vec<TaxLine>, Option<String>)>> {
    let row: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT tax_lines, coupon FROM orders WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    row.map(|(tax_lines, coupon)| Ok((stored_tax_lines("orders.tax_lines", tax_lines)?, coupon)))
        .transpose()
}

fn tax_lines_json(lines: &[TaxLine]) -> String {
    serde_json::to_string(lines).unwrap_or_else(|_| "[]".into())
}

/// Tax lines as stored: JSON, or nothing for rows written before pricing.
fn stored_tax_lines(column: &str, text: Option<String>) -> Result<Vec<TaxLine>> {
    match text {
        None => Ok(vec![]),
        Some(text) => serde_json::from_str(&text).map_err(|_| corrupt(column, &text)),
    }
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
    id: &OrderId,
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
        .bind(id.as_str());
    for status in from {
        query = query.bind(status.as_str());
    }
    Ok(query.execute(&mut *conn).await?.rows_affected() == 1)
}

/// Takes the row lock on a pending order (PostgreSQL) so decisions about it serialize;
/// on SQLite the single writer already serializes. Returns false if it is not pending.
pub async fn lock_pending(conn: &mut AnyConnection, id: &OrderId, now: i64) -> Result<bool> {
    let n = sqlx::query("UPDATE orders SET updated_at = $1 WHERE id = $2 AND status = 'pending'")
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Same as `lock_pending`, for any status: serializes refunds on one order.
pub async fn lock_row(conn: &mut AnyConnection, id: &OrderId) -> Result<()> {
    sqlx::query("UPDATE orders SET updated_at = updated_at WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records which payment paid for the order, and gives it the next number of the financial
/// year's invoice series, taken in the confirming transaction: the counter row is held to
/// its end, so numbers are consecutive — no gap (a rolled-back confirmation gives its number
/// back) and no duplicate. One update of the order for both, which reads nothing back: it
/// joins `writes`, for the caller to run before it commits.
pub async fn record_paid(
    conn: &mut AnyConnection,
    writes: &mut Script,
    id: &OrderId,
    payment_id: &PaymentId,
    now: i64,
) -> Result<String> {
    let year = financial_year(now);
    let n = crate::db::next_in_series(conn, &format!("invoice/{year}")).await?;
    let number = invoice_number(&year, n);
    writes.push(
        "UPDATE orders SET paid_by = $1, invoice_number = $2, updated_at = $3 WHERE id = $4",
        vec![
            payment_id.as_str().into(),
            number.as_str().into(),
            now.into(),
            id.as_str().into(),
        ],
    );
    Ok(number)
}

/// Pending orders whose hold ran out by `now`, soonest first.
pub async fn due_to_expire(conn: &mut AnyConnection, now: i64, limit: i64) -> Result<Vec<OrderId>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids.into_iter().map(OrderId::from).collect())
}

/// Orders created since `since` (unix ms), counted per minute (unix ms / 60,000) and by
/// their status now, oldest minute first.
pub async fn created_per_minute(
    conn: &mut AnyConnection,
    since: i64,
) -> Result<Vec<(i64, Status, i64)>> {
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT CAST(created_at / 60000 AS BIGINT) AS minute, status, CAST(COUNT(*) AS BIGINT)
         FROM orders WHERE created_at >= $1 GROUP BY minute, status ORDER BY minute, status",
    )
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(minute, status, count)| {
            let status = Status::parse(&status).ok_or_else(|| corrupt("orders.status", &status))?;
            Ok((minute, status, count))
        })
        .collect()
}
