//! The mail store: every statement on `mail_outbox`.
//!
//! A row is queued once per event (the event id is its key) and then moves only forward:
//! `pending` → `sent`, or `pending` → `failed`. A sender leases due rows first, so two
//! senders (or two Tills) never send one message at the same time.

use sqlx::AnyConnection;

use crate::db::Db;
use crate::error::Result;

/// A message to queue: the event it reports, who gets it and what it says.
pub struct NewMail<'a> {
    /// The event's id: the row's key and the message's `Message-ID`.
    pub id: &'a str,
    /// The event's type (`order.confirmed`, …).
    pub kind: &'a str,
    pub order_id: &'a str,
    /// The refund, for `refund.succeeded` (its credit note is attached).
    pub refund_id: Option<&'a str>,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body_text: &'a str,
    pub body_html: &'a str,
}

/// A queued message as stored; `kind` and `state` are checked by the caller.
pub struct Row {
    pub id: String,
    pub kind: String,
    pub order_id: String,
    pub refund_id: Option<String>,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
}

type RowTuple = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    i64,
);

/// Queues a message in the caller's transaction; false if this event's message was queued
/// already (the row is left as it was).
pub async fn queue(conn: &mut AnyConnection, mail: &NewMail<'_>, now: i64) -> Result<bool> {
    let queued = sqlx::query(
        "INSERT INTO mail_outbox (id, kind, order_id, refund_id, recipient, subject, body_text, \
         body_html, state, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $9, $9) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(mail.id)
    .bind(mail.kind)
    .bind(mail.order_id)
    .bind(mail.refund_id)
    .bind(mail.recipient)
    .bind(mail.subject)
    .bind(mail.body_text)
    .bind(mail.body_html)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(queued == 1)
}

/// Leases up to `limit` pending messages that are due and not leased, until `until`; returns
/// their ids, oldest due first. On PostgreSQL rows another sender is leasing are skipped.
pub async fn lease(db: &Db, now: i64, until: i64, limit: i64) -> Result<Vec<String>> {
    let sql = format!(
        "UPDATE mail_outbox SET leased_until = $1 WHERE id IN (
           SELECT id FROM mail_outbox
           WHERE state = 'pending' AND next_attempt_at <= $2 AND leased_until <= $2
           ORDER BY next_attempt_at LIMIT $3{skip}
         ) RETURNING id",
        skip = db.skip_locked()
    );
    Ok(sqlx::query_scalar(&sql)
        .bind(until)
        .bind(now)
        .bind(limit)
        .fetch_all(&db.pool)
        .await?)
}

/// One queued message by its event id.
pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<Row>> {
    let found: Option<RowTuple> = sqlx::query_as(
        "SELECT id, kind, order_id, refund_id, recipient, subject, body_text, body_html, state, \
         attempts, last_error, created_at FROM mail_outbox WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.map(
        |(
            id,
            kind,
            order_id,
            refund_id,
            recipient,
            subject,
            body_text,
            body_html,
            state,
            attempts,
            last_error,
            created_at,
        )| Row {
            id,
            kind,
            order_id,
            refund_id,
            recipient,
            subject,
            body_text,
            body_html,
            state,
            attempts,
            last_error,
            created_at,
        },
    ))
}

/// The server took the message: `sent`, for good. False if it was no longer pending.
pub async fn mark_sent(conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool> {
    let moved = sqlx::query(
        "UPDATE mail_outbox SET state = 'sent', attempts = attempts + 1, sent_at = $1, \
         leased_until = 0, last_error = NULL, updated_at = $1 WHERE id = $2 AND state = 'pending'",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(moved == 1)
}

/// A temporary failure: tried again from `next_attempt_at`. False if no longer pending.
pub async fn retry_later(
    conn: &mut AnyConnection,
    id: &str,
    error: &str,
    next_attempt_at: i64,
    now: i64,
) -> Result<bool> {
    let moved = sqlx::query(
        "UPDATE mail_outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, \
         leased_until = 0, updated_at = $3 WHERE id = $4 AND state = 'pending'",
    )
    .bind(error)
    .bind(next_attempt_at)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(moved == 1)
}

/// A permanent failure (or retries used up): `failed`, never tried again. False if no
/// longer pending.
pub async fn mark_failed(
    conn: &mut AnyConnection,
    id: &str,
    error: &str,
    now: i64,
) -> Result<bool> {
    let moved = sqlx::query(
        "UPDATE mail_outbox SET state = 'failed', attempts = attempts + 1, last_error = $1, \
         leased_until = 0, updated_at = $2 WHERE id = $3 AND state = 'pending'",
    )
    .bind(error)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(moved == 1)
}

/// How many messages are in each state (states with none are absent).
pub async fn counts(conn: &mut AnyConnection) -> Result<Vec<(String, i64)>> {
    Ok(
        sqlx::query_as("SELECT state, COUNT(*) FROM mail_outbox GROUP BY state ORDER BY state")
            .fetch_all(&mut *conn)
            .await?,
    )
}
