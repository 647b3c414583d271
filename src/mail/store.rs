//! The mail store: every statement on `mail_outbox`.
//!
//! A row is queued once per event (the event id is its key) and then moves only forward:
//! `pending` → `sent`, or `pending` → `failed` (`record_try`). A sender leases due rows first, so two
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
    Ok(found.map(|t| Row {
        id: t.0,
        kind: t.1,
        order_id: t.2,
        refund_id: t.3,
        recipient: t.4,
        subject: t.5,
        body_text: t.6,
        body_html: t.7,
        state: t.8,
        attempts: t.9,
        last_error: t.10,
        created_at: t.11,
    }))
}

/// What came of one try to send a message.
pub enum Tried<'a> {
    /// The server took it: `sent`, for good.
    Sent,
    /// A temporary failure: tried again from the given time (unix ms).
    RetryAt(&'a str, i64),
    /// A permanent failure, or the retries used up: `failed`, never tried again.
    Failed(&'a str),
}

/// Records a try of a pending message and lets its lease go; false if it was no longer
/// pending (it was settled already, and stays as it was).
pub async fn record_try(
    conn: &mut AnyConnection,
    id: &str,
    tried: &Tried<'_>,
    now: i64,
) -> Result<bool> {
    let (state, error, next_attempt_at, sent_at) = match *tried {
        Tried::Sent => ("sent", None, None, Some(now)),
        Tried::RetryAt(error, at) => ("pending", Some(error), Some(at), None),
        Tried::Failed(error) => ("failed", Some(error), None, None),
    };
    let moved = sqlx::query(
        "UPDATE mail_outbox SET state = $1, attempts = attempts + 1, last_error = $2, \
         next_attempt_at = COALESCE($3, next_attempt_at), sent_at = $4, leased_until = 0, \
         updated_at = $5 WHERE id = $6 AND state = 'pending'",
    )
    .bind(state)
    .bind(error)
    .bind(next_attempt_at)
    .bind(sent_at)
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
