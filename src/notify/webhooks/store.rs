//! The webhook store: every statement on `webhook_endpoints`, `webhook_deliveries` and
//! `webhook_attempts`.
//!
//! A delivery is sent by whoever leases it: the lease (`leased_until`) is taken by a
//! compare-and-set, so two senders never hold the same one, and only while no other delivery
//! of its endpoint is leased, so one endpoint has one request in flight at a time and a dead
//! one cannot take every sending slot.

use sqlx::AnyConnection;

use crate::db::Db;
use crate::error::Result;

/// An endpoint as stored; its `events` are parsed by the caller.
pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub events: String,
    pub secret: String,
    pub created_at: i64,
}

type EndpointTuple = (String, String, String, String, i64);

fn endpoint_row((id, url, events, secret, created_at): EndpointTuple) -> EndpointRow {
    EndpointRow {
        id,
        url,
        events,
        secret,
        created_at,
    }
}

/// A delivery as stored; its `status` is parsed by the caller.
pub struct DeliveryRow {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub status: String,
    /// Attempts made so far.
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
}

type DeliveryTuple = (String, String, String, String, i64, Option<i64>, i64);

const DELIVERY_COLUMNS: &str =
    "id, endpoint_id, event_id, status, attempts, next_attempt_at, created_at";

fn delivery_row(t: DeliveryTuple) -> DeliveryRow {
    let (id, endpoint_id, event_id, status, attempts, next_attempt_at, created_at) = t;
    DeliveryRow {
        id,
        endpoint_id,
        event_id,
        status,
        attempts,
        next_attempt_at,
        created_at,
    }
}

/// One try of a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRow {
    pub delivery_id: String,
    /// 1 for the first try.
    pub attempt: i64,
    pub at: i64,
    /// The answer's status; `None` when there was no answer.
    pub status_code: Option<i64>,
    /// Why it failed without an answer (or what the answer was).
    pub error: Option<String>,
    pub duration_ms: i64,
}

pub async fn insert_endpoint(conn: &mut AnyConnection, row: &EndpointRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, url, events, secret, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&row.id)
    .bind(&row.url)
    .bind(&row.events)
    .bind(&row.secret)
    .bind(row.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every endpoint not deleted, oldest first.
pub async fn live_endpoints(conn: &mut AnyConnection) -> Result<Vec<EndpointRow>> {
    let rows: Vec<EndpointTuple> = sqlx::query_as(
        "SELECT id, url, events, secret, created_at FROM webhook_endpoints \
         WHERE deleted_at IS NULL ORDER BY created_at, id",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(endpoint_row).collect())
}

/// One endpoint, unless it was deleted.
pub async fn endpoint(conn: &mut AnyConnection, id: &str) -> Result<Option<EndpointRow>> {
    let row: Option<EndpointTuple> = sqlx::query_as(
        "SELECT id, url, events, secret, created_at FROM webhook_endpoints \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(endpoint_row))
}

/// Deletes an endpoint (false if there is none, or it was deleted already) and drops its
/// pending deliveries. Run both in one transaction.
pub async fn delete_endpoint(conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool> {
    let deleted = sqlx::query(
        "UPDATE webhook_endpoints SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'dropped', next_attempt_at = NULL, \
         updated_at = $1 WHERE endpoint_id = $2 AND status = 'pending'",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// Queues a delivery, due at once.
pub async fn insert_delivery(
    conn: &mut AnyConnection,
    id: &str,
    endpoint_id: &str,
    event_id: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, attempts, \
         next_attempt_at, leased_until, created_at, updated_at) \
         VALUES ($1, $2, $3, 'pending', 0, $4, 0, $4, $4)",
    )
    .bind(id)
    .bind(endpoint_id)
    .bind(event_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Leases up to `limit` due deliveries until `until`: the earliest due one of each endpoint
/// that has none leased now. The outer condition re-checks the lease on the row itself, so
/// of two senders racing for a row one gets it.
pub async fn lease_due(db: &Db, now: i64, until: i64, limit: i64) -> Result<Vec<DeliveryRow>> {
    let sql = format!(
        "UPDATE webhook_deliveries SET leased_until = $1, updated_at = $2 \
         WHERE status = 'pending' AND leased_until <= $2 AND id IN ( \
           SELECT id FROM ( \
             SELECT d.id, d.next_attempt_at, ROW_NUMBER() OVER ( \
               PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id) AS rank \
             FROM webhook_deliveries d \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $2 AND d.leased_until <= $2 \
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries busy \
                 WHERE busy.endpoint_id = d.endpoint_id AND busy.status = 'pending' \
                   AND busy.leased_until > $2) \
           ) AS due WHERE rank = 1 ORDER BY next_attempt_at LIMIT $3) \
         RETURNING {DELIVERY_COLUMNS}"
    );
    let rows: Vec<DeliveryTuple> = sqlx::query_as(&sql)
        .bind(until)
        .bind(now)
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    Ok(rows.into_iter().map(delivery_row).collect())
}

/// Records an attempt and where its delivery now stands, releasing its lease; a delivery
/// that is no longer pending (its endpoint deleted meanwhile) keeps its status. Run both in
/// one transaction.
pub async fn record_attempt(
    conn: &mut AnyConnection,
    attempt: &AttemptRow,
    status: &str,
    next_attempt_at: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&attempt.delivery_id)
    .bind(attempt.attempt)
    .bind(attempt.at)
    .bind(attempt.status_code)
    .bind(&attempt.error)
    .bind(attempt.duration_ms)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, \
         leased_until = 0, updated_at = $4 WHERE id = $5 AND status = 'pending'",
    )
    .bind(status)
    .bind(attempt.attempt)
    .bind(next_attempt_at)
    .bind(attempt.at)
    .bind(&attempt.delivery_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The latest `limit` deliveries to an endpoint, newest first.
pub async fn deliveries(
    conn: &mut AnyConnection,
    endpoint_id: &str,
    limit: i64,
) -> Result<Vec<DeliveryRow>> {
    let rows: Vec<DeliveryTuple> = sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(endpoint_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(delivery_row).collect())
}

/// Every attempt of a delivery, first first.
pub async fn attempts(conn: &mut AnyConnection, delivery_id: &str) -> Result<Vec<AttemptRow>> {
    type AttemptTuple = (i64, i64, Option<i64>, Option<String>, i64);
    let rows: Vec<AttemptTuple> = sqlx::query_as(
        "SELECT attempt, at, status_code, error, duration_ms FROM webhook_attempts \
         WHERE delivery_id = $1 ORDER BY attempt",
    )
    .bind(delivery_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(attempt, at, status_code, error, duration_ms)| AttemptRow {
                delivery_id: delivery_id.to_string(),
                attempt,
                at,
                status_code,
                error,
                duration_ms,
            },
        )
        .collect())
}

/// How many deliveries wait to be sent, and how many were given up.
pub async fn delivery_counts(conn: &mut AnyConnection) -> Result<(i64, i64)> {
    let counts: (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) \
         FROM webhook_deliveries",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(counts)
}
