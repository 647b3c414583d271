//! The merchant webhooks sender. The relay's `webhooks` sink queues one delivery per event and
//! subscribed endpoint in the transaction that moves its cursor (so each event is queued
//! exactly once); this loop sends them, so a slow endpoint never holds up the event stream,
//! another sink, or another endpoint.

use std::time::Duration;

use tokio::task::{JoinError, JoinHandle, JoinSet};

use crate::error::Result;
use crate::notify::webhooks::{self, send};
use crate::state::AppState;

/// Deliveries one Till sends at once. Each endpoint has at most one in flight (the lease
/// allows one), so a dead endpoint takes one of these slots, never all of them.
const SENDS_MAX: usize = 8;

/// Sends the deliveries due now (at most `SENDS_MAX`, one per endpoint) side by side and
/// waits for them all: tests drive the sender with this.
pub async fn send_once(state: &AppState) -> Result<usize> {
    let mut sending = JoinSet::new();
    for delivery in send::lease(state, SENDS_MAX).await? {
        let state = state.clone();
        sending.spawn(async move { send::send(&state, delivery).await.map(|_| ()) });
    }
    let sent = sending.len();
    let mut first_error = None;
    while let Some(done) = sending.join_next().await {
        if let Err(err) = flatten(done) {
            first_error.get_or_insert(err);
        }
    }
    first_error.map_or(Ok(sent), Err)
}

fn flatten(done: std::result::Result<Result<()>, JoinError>) -> Result<()> {
    done.map_err(|e| crate::error::Error::Internal(e.into()))?
}

/// The sender loop: keeps up to `SENDS_MAX` deliveries in flight, leasing more as slots free
/// up, and looks again every worker tick.
pub fn spawn(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let tick = Duration::from_millis(state.worker_tick_ms);
        let mut sending: JoinSet<Result<()>> = JoinSet::new();
        loop {
            while let Some(done) = sending.try_join_next() {
                report(done);
            }
            if state.stopping.is_stopped() {
                // The deliveries under way finish; no more are leased.
                while let Some(done) = sending.join_next().await {
                    report(done);
                }
                return;
            }
            let free = SENDS_MAX - sending.len();
            let leased = match free {
                0 => Vec::new(),
                _ => send::lease(&state, free).await.unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "could not lease webhook deliveries");
                    Vec::new()
                }),
            };
            if leased.is_empty() {
                // Wait for a tick, or for a slot to free up when all are taken.
                tokio::select! {
                    _ = state.stopping.pause(tick) => {}
                    Some(done) = sending.join_next(), if free == 0 => report(done),
                }
            }
            for delivery in leased {
                let state = state.clone();
                sending.spawn(async move { send::send(&state, delivery).await.map(|_| ()) });
            }
        }
    })
}

fn report(done: std::result::Result<Result<()>, JoinError>) {
    if let Err(err) = flatten(done) {
        tracing::warn!(error = %err, "webhook delivery could not be recorded");
    }
}

/// For `/metrics`: deliveries waiting to be sent, and deliveries given up.
pub async fn counts(state: &AppState) -> Result<(i64, i64)> {
    let mut conn = state.db.pool.acquire().await?;
    webhooks::store::delivery_counts(&mut conn).await
}
