//! Sending one leased delivery: the event's JSON, signed, POSTed to its endpoint within the
//! timeout; the attempt recorded and the delivery delivered, scheduled again or given up.

use std::time::{Duration, Instant};

use rand::Rng;

use super::store::{self, AttemptRow, DeliveryRow};
use super::{endpoint, signature, Status};
use crate::error::{corrupt, Result};
use crate::state::AppState;
use crate::timeline;

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
    if let (Status::Delivered, Some(order_id), Some(code)) = (status, event.order_id(), status_code)
    {
        let now = state.now_ms();
        timeline::webhook_delivered(&mut tx, &order_id, &event.id, &endpoint.id, code, now).await?;
    }
    tx.commit().await?;
    if status == Status::Delivered {
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

/// How deliveries are sent and retried (`TILL_WEBHOOK_*`).
#[derive(Clone)]
pub struct Settings {
    /// The client every delivery goes through, with `timeout` for the whole request.
    pub client: reqwest::Client,
    pub timeout: Duration,
    /// The first retry waits up to `2 · retry_base_ms`, doubling per attempt...
    pub retry_base_ms: i64,
    /// ...but never more than this.
    pub retry_cap_ms: i64,
    /// A delivery not made within this since it was queued is given up.
    pub retry_window_ms: i64,
}

impl Settings {
    pub fn new(timeout: Duration, retry_base_ms: i64, retry_cap_ms: i64, window_ms: i64) -> Self {
        Settings {
            client: crate::tls::client(timeout),
            timeout,
            retry_base_ms: retry_base_ms.max(1),
            retry_cap_ms: retry_cap_ms.max(1),
            retry_window_ms: window_ms.max(0),
        }
    }

    /// The longest wait after `attempts` failed attempts: `min(cap, base·2^attempts)`.
    pub fn backoff_ceiling_ms(&self, attempts: i64) -> i64 {
        let doubling = 1i64 << attempts.clamp(0, 40);
        self.retry_base_ms
            .saturating_mul(doubling)
            .min(self.retry_cap_ms)
    }

    /// When a delivery queued at `queued_at` tries again after `attempts` failed ones, with
    /// `delay_ms` drawn from `0..=backoff_ceiling_ms(attempts)`; `None` once that falls past
    /// the retry window (give up).
    pub fn next_attempt_at(&self, queued_at: i64, now: i64, delay_ms: i64) -> Option<i64> {
        let at = now.saturating_add(delay_ms);
        (at <= queued_at.saturating_add(self.retry_window_ms)).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_gives_up_after_the_window() {
        let s = Settings::new(Duration::from_secs(10), 1_000, 60_000, 3_600_000);
        let ceilings: Vec<i64> = (0..8).map(|a| s.backoff_ceiling_ms(a)).collect();
        assert_eq!(
            ceilings,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]
        );
        assert_eq!(s.backoff_ceiling_ms(10_000), 60_000);
        assert_eq!(s.next_attempt_at(0, 1_000, 500), Some(1_500));
        assert_eq!(s.next_attempt_at(0, 3_600_000, 0), Some(3_600_000));
        assert_eq!(s.next_attempt_at(0, 3_599_999, 2), None);
    }
}
