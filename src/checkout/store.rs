//! The saga's own reads across orders and payments (reconciliation's questions about paid
//! orders), kept apart from the capabilities' stores, which never join each other's tables.

use sqlx::AnyConnection;

use crate::error::Result;
use crate::ids::{OrderId, PaymentId};

/// A paid order whose money Till does not hold by its own records.
pub struct UnheldPaidOrder {
    pub order_id: OrderId,
    /// Empty when the order names no payment.
    pub paid_by: String,
    /// The payment's status, or `none` when there is no such payment.
    pub payment_status: String,
    /// What a gateway said that Till did not apply, if anything.
    pub contradiction: String,
}

/// Paid orders whose paid-by payment is missing, not authorized, succeeded or refunded, or
/// contradicted by its gateway.
pub async fn unheld_paid_orders(conn: &mut AnyConnection) -> Result<Vec<UnheldPaidOrder>> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT o.id, COALESCE(o.paid_by, ''), COALESCE(p.status, 'none'), COALESCE(p.contradiction, '')
         FROM orders o LEFT JOIN payments p ON p.id = o.paid_by
         WHERE o.status IN ('confirmed', 'refunded', 'partially_refunded')
           AND (p.id IS NULL OR p.status NOT IN ('authorized', 'succeeded', 'refunded') OR p.contradiction IS NOT NULL)",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(order_id, paid_by, payment_status, contradiction)| UnheldPaidOrder {
                order_id: order_id.into(),
                paid_by,
                payment_status,
                contradiction,
            },
        )
        .collect())
}

/// Paid orders whose paid-by payment is still only authorized (and not contradicted).
pub async fn paid_awaiting_capture(conn: &mut AnyConnection) -> Result<Vec<(OrderId, PaymentId)>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT o.id, o.paid_by FROM orders o JOIN payments p ON p.id = o.paid_by
         WHERE o.status IN ('confirmed', 'refunded', 'partially_refunded') AND p.status = 'authorized'
           AND p.contradiction IS NULL",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(order, payment)| (order.into(), payment.into()))
        .collect())
}
