//! Notifications: the transactional outbox and its relay.
//!
//! An event is written in the same commit as the state change it reports, so it exists if
//! and only if the change happened. The relay hands events to the sinks at least once
//! (today: the structured log, which in-process subscribers and log shippers read);
//! consumers dedupe by the event id.

use serde_json::Value;
use sqlx::{AnyConnection, Row};

use crate::error::Result;
use crate::ids::new_id;
use crate::metrics::Metrics;
use crate::state::AppState;

/// Events handed to the sinks per relay pass.
const RELAY_BATCH: i64 = 100;

pub async fn enqueue(
    conn: &mut AnyConnection,
    topic: &str,
    payload: Value,
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

/// One relay pass; returns how many events were delivered.
pub async fn relay_once(state: &AppState) -> Result<usize> {
    let mut tx = state.db.pool.begin().await?;
    let rows = sqlx::query(&format!(
        "SELECT id, topic, payload FROM outbox WHERE delivered_at IS NULL ORDER BY created_at, id LIMIT $1{}",
        state.db.skip_locked()
    ))
    .bind(RELAY_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let now = state.now_ms();
    for row in &rows {
        let (id, topic, payload): (String, String, String) =
            (row.get("id"), row.get("topic"), row.get("payload"));
        tracing::info!(event_id = %id, topic = %topic, payload = %payload, "event");
        sqlx::query("UPDATE outbox SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2")
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        Metrics::inc(&state.metrics.outbox_delivered);
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// Undelivered events, for the `/metrics` lag gauge.
pub async fn lag(state: &AppState) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
            .fetch_one(&state.db.pool)
            .await?,
    )
}
