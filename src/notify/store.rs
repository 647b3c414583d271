//! The outbox store: every statement on `outbox`.

use serde_json::Value;
use sqlx::AnyConnection;

use crate::db::Db;
use crate::error::Result;
use crate::ids::new_id;

/// An event waiting for the relay.
pub struct Event {
    pub id: String,
    pub topic: String,
    pub payload: String,
}

/// Writes an event in the caller's transaction.
pub async fn insert(
    conn: &mut AnyConnection,
    topic: &str,
    payload: &Value,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO outbox (id, topic, payload, created_at) VALUES ($1, $2, $3, $4)")
        .bind(new_id("evt"))
        .bind(topic)
        .bind(payload.to_string())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Up to `limit` undelivered events, oldest first, locked for the caller's transaction (on
/// PostgreSQL another relay skips them).
pub async fn undelivered(conn: &mut AnyConnection, db: &Db, limit: i64) -> Result<Vec<Event>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(&format!(
        "SELECT id, topic, payload FROM outbox WHERE delivered_at IS NULL ORDER BY created_at, id LIMIT $1{}",
        db.skip_locked()
    ))
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, topic, payload)| Event { id, topic, payload })
        .collect())
}

pub async fn mark_delivered(conn: &mut AnyConnection, id: &str, now: i64) -> Result<()> {
    sqlx::query("UPDATE outbox SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// How many events wait for the relay.
pub async fn undelivered_count(conn: &mut AnyConnection) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
            .fetch_one(&mut *conn)
            .await?,
    )
}
