//! Sending one leased delivery: the event's JSON, signed, POSTed to its endpoint within the
//! timeout; the attempt recorded and the delivery delivered, scheduled again or given up.

use std::time::Instant;

use rand::Rng;

use super::store::{self, AttemptRow, DeliveryRow};
use super::{endpoint, signature, Status};
use crate::error::{corrupt, Result};
use crate::state::AppState;

/// How long a lease outlives the request's timeout: time to record the outcome. A sender that
/// dies holding one leaves its delivery (and its endpoint) to the next sender after this.
const LEASE_MARGIN_MS: i64 = 30_000;

/// Leases up to `limit` due deliveries, at most one per endpoint (see `store::lease_due`).
pub async fn lease(state: &AppState, limit: usize) -> Result<Vec<DeliveryRow>> {
    let now = state.now_ms();
    let timeout_ms = state.webhooks.timeout.as_millis() as i64;
    let until = now + timeout_ms + LEASE_MARGIN_MS;
    store::lease_due(&state.db, now, until, limit as i64).await
}

/// Sends one leased delivery and records the attempt; returns where the delivery stands.
pub async fn send(state: &AppState, delivery: DeliveryRow) -> Result<Status> {
    let settings = &state.webhooks;
    let (endpoint, event) = {
        let mut conn = state.db.pool.acquire().await?;
        let Some(endpoint) = endpoint(&mut conn, &delivery.endpoint_id).await? else {
            // Deleted after the lease: its deliveries are dropped already.
            return Ok(Status::Dropped);
        };
        let event = crate::notify::get(&mut conn, &delivery.event_id)
            .await?
            .ok_or_else(|| corrupt("webhook_deliveries.event_id", &delivery.event_id))?;
        (endpoint, event)
    };
    let body = event.to_json();
    let sent_at = state.now_ms();
    let started = Instant::now();
    let answer = settings
        .client
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header("till-event-id", &event.id)
        .header(
            "till-signature",
            signature(&endpoint.secret, sent_at.div_euclid(1000), body.as_bytes()),
        )
        .body(body)
        .send()
        .await;
    let duration_ms = started.elapsed().as_millis() as i64;
    let (status_code, error) = match answer {
        Ok(answer) if answer.status().is_success() => (Some(answer.status().as_u16()), None),
        Ok(answer) => {
            let code = answer.status().as_u16();
            (Some(code), Some(format!("answered {code}")))
        }
        Err(err) if err.is_timeout() => (
            None,
            Some(format!(
                "no answer within {} ms",
                settings.timeout.as_millis()
            )),
        ),
        Err(err) if err.is_connect() => (None, Some("could not connect".to_string())),
        Err(err) => (None, Some(format!("request failed: {err}"))),
    };
    let attempt = AttemptRow {
        delivery_id: delivery.id.clone(),
        attempt: delivery.attempts + 1,
        at: sent_at,
        status_code: status_code.map(i64::from),
        error,
        duration_ms,
    };
    let (status, next_attempt_at) = match attempt.error {
        None => (Status::Delivered, None),
        Some(_) => {
            let ceiling = settings.backoff_ceiling_ms(attempt.attempt);
            let delay = rand::thread_rng().gen_range(0..=ceiling);
            match settings.next_attempt_at(delivery.created_at, state.now_ms(), delay) {
                Some(at) => (Status::Pending, Some(at)),
                None => (Status::Failed, None),
            }
        }
    };
    let mut conn = state.db.pool.acquire().await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    store::record_attempt(&mut tx, &attempt, status.as_str(), next_attempt_at).await?;
    tx.commit().await?;
    if status == Status::Delivered {
        // Timeline: "webhook delivered" belongs to the order of `event.data` (its `id` for
        // order events, its `order_id` for payments and refunds) once `timeline::record` exists.
        tracing::debug!(delivery = %delivery.id, event_id = %event.id, endpoint = %endpoint.id, "webhook delivered");
    } else {
        tracing::info!(
            delivery = %delivery.id, endpoint = %endpoint.id, attempt = attempt.attempt,
            status = status.as_str(), error = attempt.error.as_deref().unwrap_or(""),
            "webhook attempt failed"
        );
    }
    Ok(status)
}
