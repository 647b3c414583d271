//! The payments store: every statement on `payments` and `webhook_events` here, on
//! `refunds` in `refunds.rs`. Rows come back as typed values; a stored status, method or
//! currency Till does not know is an error (`error::corrupt`), never a default.

mod refunds;
pub use refunds::*;

use std::sync::LazyLock;

use sqlx::AnyConnection;

use super::gateway::{GatewayPayment, Outcome};
use super::{Fate, Method, Payment, Status};
use crate::db::{lease_due, Db, Script};
use crate::error::{corrupt, Result};
use crate::ids::{OrderId, PaymentId};
use crate::money::{Currency, Money};

/// `Status::IN_FLIGHT` as an SQL list, for the statements that look for attempts whose
/// money is not settled yet.
pub static IN_FLIGHT_SQL: LazyLock<String> = LazyLock::new(|| {
    let quoted: Vec<String> = Status::IN_FLIGHT
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("({})", quoted.join(", "))
});

const PAYMENT_COLUMNS: &str =
    "id, order_id, status, amount, currency, method, source, gateway, gateway_ref, fate";

/// A `payments` row as `PAYMENT_COLUMNS` reads it.
type PaymentRow = (
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

pub(crate) fn stored_currency(code: &str) -> Result<Currency> {
    Currency::parse(code).ok_or_else(|| corrupt("currency", code))
}

fn payment(row: PaymentRow) -> Result<Payment> {
    let (id, order_id, status, amount, currency, method, source, gateway, gateway_ref, fate) = row;
    Ok(Payment {
        id: id.into(),
        order_id: order_id.into(),
        status: Status::try_from(status.as_str())?,
        amount: Money::new(amount, stored_currency(&currency)?),
        method: Method::try_from(method.as_str())?,
        source,
        gateway,
        gateway_ref: gateway_ref.filter(|r| !r.is_empty()),
        fate: Fate::try_from(fate.as_deref())?,
    })
}

/// Records a new attempt as `processing`. A unique violation means another attempt on the
/// same order is already in flight.
pub async fn insert_attempt(
    conn: &mut AnyConnection,
    p: &Payment,
    now: i64,
) -> Result<(), sqlx::Error> {
    Script::of(|s| insert_attempt_into(s, p, now))
        .run(conn)
        .await
}

/// `insert_attempt`'s statement, added to `script` for the caller to run with its other
/// writes (a second attempt in flight for the order is still a unique violation).
pub fn insert_attempt_into(script: &mut Script, p: &Payment, now: i64) {
    script.push(
        "INSERT INTO payments (id, order_id, status, amount, currency, method, source, gateway, created_at, updated_at)
         VALUES ($1, $2, 'processing', $3, $4, $5, $6, $7, $8, $8)",
        vec![
            p.id.as_str().into(),
            p.order_id.as_str().into(),
            p.amount.minor.into(),
            p.amount.currency.code().into(),
            p.method.as_str().into(),
            p.source.as_str().into(),
            p.gateway.as_str().into(),
            now.into(),
        ],
    );
}

pub async fn get(conn: &mut AnyConnection, id: &PaymentId) -> Result<Option<Payment>> {
    Ok(record(conn, id).await?.map(|r| r.payment))
}

/// Payments changed at or after `since_ms`, and Razorpay payments Till released (voided by
/// not capturing) created at or after `released_since_ms`, for reconciliation.
pub async fn changed_since(
    conn: &mut AnyConnection,
    since_ms: i64,
    released_since_ms: i64,
) -> Result<Vec<Payment>> {
    sqlx::query_as::<_, PaymentRow>(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments
         WHERE updated_at >= $1 OR (gateway = 'razorpay' AND status = 'canceled' AND created_at >= $2)
         ORDER BY updated_at, id"
    ))
    .bind(since_ms)
    .bind(released_since_ms)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(payment)
    .collect()
}

/// An order's attempts, oldest first.
pub async fn for_order(conn: &mut AnyConnection, order_id: &OrderId) -> Result<Vec<Payment>> {
    sqlx::query_as::<_, PaymentRow>(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1 ORDER BY created_at, id"
    ))
    .bind(order_id.as_str())
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(payment)
    .collect()
}

/// Compare-and-set of an attempt's status with what the gateway said. Returns the attempt
/// as it now stands when this call made the move, `None` when another writer moved it
/// first. The gateway's id is set the first time and never replaced: an answer naming
/// another gateway payment does not re-point the attempt.
pub async fn record_outcome(
    conn: &mut AnyConnection,
    id: &PaymentId,
    from: Status,
    gp: &GatewayPayment,
    now: i64,
) -> Result<Option<PaymentRecord>> {
    let to = Status::from_outcome(&gp.outcome);
    assert!(
        from == to || from.can_become(to),
        "illegal payment transition {from:?} -> {to:?}"
    );
    // A Stripe.js client secret is never stored: Stripe asks that it go to the customer
    // only, so it is handed over once, in the answer to the payment request.
    let (failure_code, redirect_url) = match &gp.outcome {
        Outcome::Failed { code } => (Some(code.as_str()), None),
        Outcome::RequiresAction { redirect_url, .. } => (None, Some(redirect_url.as_str())),
        _ => (None, None),
    };
    sqlx::query_as::<_, PaymentRecordRow>(&format!(
        "UPDATE payments SET status = $1, gateway_ref = COALESCE(gateway_ref, NULLIF($2, '')), failure_code = $3, redirect_url = $4, updated_at = $5
         WHERE id = $6 AND status = $7
         RETURNING {PAYMENT_COLUMNS}, failure_code, redirect_url, created_at"
    ))
    .bind(to.as_str())
    .bind(&gp.gateway_ref)
    .bind(failure_code)
    .bind(redirect_url)
    .bind(now)
    .bind(id.as_str())
    .bind(from.as_str())
    .fetch_optional(&mut *conn)
    .await?
    .map(payment_record)
    .transpose()
}

/// Compare-and-set of an attempt's status along `Status::can_become`.
pub async fn set_status(
    conn: &mut AnyConnection,
    id: &PaymentId,
    from: Status,
    to: Status,
    now: i64,
) -> Result<bool> {
    assert!(
        from.can_become(to),
        "illegal payment transition {from:?} -> {to:?}"
    );
    let n = sqlx::query(
        "UPDATE payments SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(id.as_str())
    .bind(from.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// In the transaction that ends an order: every attempt still in flight is to be voided.
/// Returns their ids, for the caller to carry the decision out once it has committed.
pub async fn decide_void_in_flight(
    conn: &mut AnyConnection,
    order_id: &OrderId,
    now: i64,
) -> Result<Vec<PaymentId>> {
    let ids: Vec<String> = sqlx::query_scalar(&format!(
        "UPDATE payments SET fate = 'void', updated_at = $1
         WHERE order_id = $2 AND status IN {} RETURNING id",
        *IN_FLIGHT_SQL
    ))
    .bind(now)
    .bind(order_id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    Ok(ids.into_iter().map(PaymentId::from).collect())
}

/// Keeps what a gateway said that Till will not apply (the payment an order was paid with
/// reported canceled or failed) for reconciliation and for a person to look at.
pub async fn record_contradiction(
    conn: &mut AnyConnection,
    id: &PaymentId,
    what: &str,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE payments SET contradiction = $1, updated_at = $2 WHERE id = $3")
        .bind(what)
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks an attempt as looked at, so the recovery worker waits before asking about it
/// again, and keeps the gateway's id for it if it had none yet.
pub async fn touch(
    conn: &mut AnyConnection,
    id: &PaymentId,
    gateway_ref: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE payments SET updated_at = $1,
           gateway_ref = CASE WHEN gateway_ref IS NULL OR gateway_ref = '' THEN $2 ELSE gateway_ref END
         WHERE id = $3",
    )
    .bind(now)
    .bind(gateway_ref)
    .bind(id.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The recovery worker's lease on one attempt: taken only if it is still in flight and no
/// request or worker touched it since `untouched_since`. Returns whether it was taken.
pub async fn lease_in_flight(
    conn: &mut AnyConnection,
    id: &PaymentId,
    untouched_since: i64,
    now: i64,
) -> Result<bool> {
    let n = sqlx::query(&format!(
        "UPDATE payments SET updated_at = $1
         WHERE id = $2 AND status IN {} AND updated_at <= $3",
        *IN_FLIGHT_SQL
    ))
    .bind(now)
    .bind(id.as_str())
    .bind(untouched_since)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Whether a gateway's event was applied already (the dedupe of its webhooks).
pub async fn webhook_seen(conn: &mut AnyConnection, gateway: &str, event_id: &str) -> Result<bool> {
    let seen: Option<String> = sqlx::query_scalar(
        "SELECT event_id FROM webhook_events WHERE gateway = $1 AND event_id = $2",
    )
    .bind(gateway)
    .bind(event_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(seen.is_some())
}

/// Remembers an applied event so a repeat of it changes nothing.
pub async fn record_webhook(
    conn: &mut AnyConnection,
    gateway: &str,
    event_id: &str,
    now: i64,
) -> Result<()> {
    Ok(
        Script::of(|s| record_webhook_into(s, gateway, event_id, now))
            .run(conn)
            .await?,
    )
}

/// `record_webhook`'s statement, added to `script` for the caller to run with its other
/// writes.
pub fn record_webhook_into(script: &mut Script, gateway: &str, event_id: &str, now: i64) {
    script.push(
        "INSERT INTO webhook_events (gateway, event_id, received_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        vec![gateway.into(), event_id.into(), now.into()],
    );
}

/// The attempts the recovery worker leases: those in flight (served by the partial index
/// `payments_one_in_flight`, which holds only them).
pub fn attempts_due() -> String {
    format!("status IN {}", *IN_FLIGHT_SQL)
}

/// The recovery worker's leases: attempts in flight nobody touched since `untouched_since`.
pub async fn lease_due_attempts(
    db: &Db,
    untouched_since: i64,
    now: i64,
    limit: i64,
) -> Result<Vec<PaymentId>> {
    let ids = lease_due(db, "payments", &attempts_due(), untouched_since, now, limit).await?;
    Ok(ids.into_iter().map(PaymentId::from).collect())
}

/// An attempt with what the API shows of it beyond `Payment`.
#[derive(Clone)]
pub struct PaymentRecord {
    pub payment: Payment,
    pub failure_code: Option<String>,
    pub redirect_url: Option<String>,
    pub created_at: i64,
}

/// `PAYMENT_COLUMNS` and then `failure_code, redirect_url, created_at`.
type PaymentRecordRow = (
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
);

fn payment_record(row: PaymentRecordRow) -> Result<PaymentRecord> {
    let (a, b, c, d, e, f, g, h, i, j, failure_code, redirect_url, created_at) = row;
    Ok(PaymentRecord {
        payment: payment((a, b, c, d, e, f, g, h, i, j))?,
        failure_code,
        redirect_url,
        created_at,
    })
}

pub async fn record(conn: &mut AnyConnection, id: &PaymentId) -> Result<Option<PaymentRecord>> {
    sqlx::query_as::<_, PaymentRecordRow>(&format!(
        "SELECT {PAYMENT_COLUMNS}, failure_code, redirect_url, created_at FROM payments WHERE id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await?
    .map(payment_record)
    .transpose()
}

/// An order's attempts with what the API shows of them, oldest first.
pub async fn records_for_order(
    conn: &mut AnyConnection,
    order_id: &OrderId,
) -> Result<Vec<PaymentRecord>> {
    sqlx::query_as::<_, PaymentRecordRow>(&format!(
        "SELECT {PAYMENT_COLUMNS}, failure_code, redirect_url, created_at FROM payments
         WHERE order_id = $1 ORDER BY created_at, id"
    ))
    .bind(order_id.as_str())
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(payment_record)
    .collect()
}

/// Payment attempts created since `since` (unix ms), counted by method, gateway and status.
pub async fn attempts_since(
    conn: &mut AnyConnection,
    since: i64,
) -> Result<Vec<(Method, String, Status, i64)>> {
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT method, gateway, status, CAST(COUNT(*) AS BIGINT) FROM payments
         WHERE created_at >= $1 GROUP BY method, gateway, status ORDER BY method, gateway, status",
    )
    .bind(since)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(method, gateway, status, count)| {
            let method =
                Method::parse(&method).ok_or_else(|| corrupt("payments.method", &method))?;
            let status =
                Status::parse(&status).ok_or_else(|| corrupt("payments.status", &status))?;
            Ok((method, gateway, status, count))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second attempt in flight is refused by this index alone (nothing reads first), so
    /// it must cover exactly `Status::IN_FLIGHT`.
    #[test]
    fn the_one_in_flight_index_covers_exactly_the_in_flight_statuses() {
        let index = include_str!("../../db/0008_one_in_flight.sql");
        let wanted = format!(
            "ON payments (order_id)\n  WHERE status IN {};",
            *IN_FLIGHT_SQL
        );
        assert!(index.contains(&wanted), "{index}\nshould hold\n{wanted}");
    }
}
