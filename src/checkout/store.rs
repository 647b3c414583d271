//! The saga's own reads across orders and payments (reconciliation's questions about paid
//! orders), kept apart from the capabilities' stores, which never join each other's tables.

use sqlx::AnyConnection;

use crate::error::Result;
use crate::ids::{OrderId, PaymentId};
use crate::payments::Method;

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

/// What the console's orders list asks for; every field narrows it, `None` does not.
#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    pub status: Option<String>,
    /// Created at or after (unix ms).
    pub from: Option<i64>,
    /// Created before (unix ms).
    pub to: Option<i64>,
    /// Part of the customer's id, email, name or phone, or of the order id (any case).
    pub customer: Option<String>,
    /// Orders with a payment attempt by this method (`card`, `upi`, `wallet`).
    pub method: Option<String>,
}

/// One order in a list: its figures, its customer as stored, and the methods it was paid
/// or tried with.
#[derive(Clone, Debug)]
pub struct OrderSummary {
    pub id: OrderId,
    pub status: String,
    pub currency: String,
    pub total: i64,
    /// The customer as stored (JSON), if any.
    pub customer: Option<String>,
    /// The payment methods tried, comma-separated.
    pub methods: String,
    pub created_at: i64,
}

/// Orders matching `filter`, newest first, `limit` of them after skipping `offset`.
pub async fn search_orders(
    conn: &mut AnyConnection,
    filter: &OrderFilter,
    limit: i64,
    offset: i64,
) -> Result<Vec<OrderSummary>> {
    enum Param {
        Text(String),
        Number(i64),
    }
    // Only the conditions asked for are in the statement, each with its own parameter.
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    let mut condition = |sql: &str, param: Param| {
        params.push(param);
        conditions.push(sql.replace('?', &format!("${}", params.len())));
    };
    if let Some(status) = &filter.status {
        condition("o.status = ?", Param::Text(status.clone()));
    }
    if let Some(from) = filter.from {
        condition("o.created_at >= ?", Param::Number(from));
    }
    if let Some(to) = filter.to {
        condition("o.created_at < ?", Param::Number(to));
    }
    if let Some(customer) = &filter.customer {
        // The user's own `%`, `_` and `\` match themselves.
        let escaped = customer
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        condition(
            "(LOWER(COALESCE(o.customer, '')) LIKE ? ESCAPE '\\' OR LOWER(o.id) LIKE ? ESCAPE '\\')",
            Param::Text(format!("%{escaped}%")),
        );
    }
    if let Some(method) = &filter.method {
        condition(
            "EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.method = ?)",
            Param::Text(method.clone()),
        );
    }
    let methods: Vec<String> = Method::ALL
        .iter()
        .map(|m| {
            format!(
                "CASE WHEN EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.method = '{}') THEN 1 ELSE 0 END",
                m.as_str()
            )
        })
        .collect();
    let sql = format!(
        "SELECT o.id, o.status, o.currency, o.total, o.customer, o.created_at, {}
         FROM orders o {} ORDER BY o.created_at DESC, o.id DESC LIMIT {limit} OFFSET {offset}",
        methods.join(", "),
        if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        },
        limit = limit.max(0),
        offset = offset.max(0),
    );
    let mut query = sqlx::query_as::<_, SummaryRow>(&sql);
    for param in params {
        query = match param {
            Param::Text(text) => query.bind(text),
            Param::Number(n) => query.bind(n),
        };
    }
    let rows = query.fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, status, currency, total, customer, created_at, card, upi, wallet)| {
                let methods = Method::ALL
                    .iter()
                    .zip([card, upi, wallet])
                    .filter(|(_, used)| *used == 1)
                    .map(|(m, _)| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                OrderSummary {
                    id: id.into(),
                    status,
                    currency,
                    total,
                    customer,
                    methods,
                    created_at,
                }
            },
        )
        .collect())
}

/// An order row as the list reads it, with whether each method of `Method::ALL` was tried.
type SummaryRow = (
    String,
    String,
    String,
    i64,
    Option<String>,
    i64,
    i64,
    i64,
    i64,
);
