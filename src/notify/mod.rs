//! Notifications: the transactional outbox and its relay.
//!
//! An event is written in the same commit as the state change it reports, so it exists if
//! and only if the change happened. The relay hands events to the sinks at least once
//! (today: the structured log, which in-process subscribers and log shippers read);
//! consumers dedupe by the event id.

pub mod store;

use serde_json::Value;
use sqlx::AnyConnection;

use crate::error::Result;
use crate::metrics::Metrics;
use crate::state::AppState;

/// Events handed to the sinks per relay pass.
const RELAY_BATCH: i64 = 100;

/// Writes an event in the caller's transaction: it exists if and only if that commits.
pub async fn enqueue(
    conn: &mut AnyConnection,
    topic: &str,
    payload: Value,
    now: i64,
) -> Result<()> {
    store::insert(conn, topic, &payload, now).await
}

/// One relay pass; returns how many events were delivered.
pub async fn relay_once(state: &AppState) -> Result<usize> {
    let mut tx = state.db.pool.begin().await?;
    let events = store::undelivered(&mut tx, &state.db, RELAY_BATCH).await?;
    let now = state.now_ms();
    for event in &events {
        tracing::info!(event_id = %event.id, topic = %event.topic, payload = %event.payload, "event");
        store::mark_delivered(&mut tx, &event.id, now).await?;
        Metrics::inc(&state.metrics.outbox_delivered);
    }
    tx.commit().await?;
    Ok(events.len())
}

/// Undelivered events, for the `/metrics` lag gauge.
pub async fn lag(state: &AppState) -> Result<i64> {
    let mut conn = state.db.pool.acquire().await?;
    store::undelivered_count(&mut conn).await
}
