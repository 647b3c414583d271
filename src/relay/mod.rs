//! The relay: feeds the event stream (`notify`) to every sink, each on its own. It sits
//! above the saga (whose documents a sink may attach) and below the HTTP edge.
//!
//! A sink keeps its own cursor (`sink_cursors`) and its own task, so one that is down — a
//! broker restarting, a mail server refusing — falls behind alone while the others go on;
//! `/metrics` shows each one's lag. A sink that hands events on over the network moves its
//! cursor only after they were accepted, so an event is delivered at least once (consumers
//! dedupe by event id); a sink that queues work in Till's own tables does it in the
//! transaction that moves its cursor, so each event is queued exactly once.

pub mod amqp;
pub mod letters;
pub mod mail;
pub mod webhook_sender;

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::ids::random_token;
use crate::notify::{self, store, Event, Position};
use crate::state::AppState;

/// Events one pass of a sink takes.
const BATCH: i64 = 100;

/// The longest a failing sink waits before trying again.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Where events go.
pub enum Sink {
    /// The structured log: one line per event.
    Log,
    /// RabbitMQ (`TILL_AMQP_URL`), with publisher confirms (boxed: it holds a connection).
    Amqp(Box<amqp::Amqp>),
    /// Merchant webhooks: a delivery queued per (event, subscribed endpoint), sent by
    /// `webhook_sender`.
    Webhooks,
    /// Customer email: a message queued per mailed event (see `mail`), sent by its sender.
    Mail,
}

impl Sink {
    /// Every sink this Till feeds.
    pub fn configured(state: &AppState) -> Vec<Sink> {
        let mut sinks = vec![Sink::Log, Sink::Webhooks, Sink::Mail];
        if let Some(broker) = &state.amqp {
            let sink = amqp::Amqp::new(broker.clone(), state.metrics.clone());
            sinks.push(Sink::Amqp(Box::new(sink)));
        }
        sinks
    }

    /// The sink's name: its cursor's key and its `/metrics` label.
    pub fn name(&self) -> &'static str {
        match self {
            Sink::Log => "log",
            Sink::Amqp(_) => "amqp",
            Sink::Webhooks => "webhooks",
            Sink::Mail => "mail",
        }
    }

    /// Whether the sink queues work in Till's own tables (in the transaction that moves its
    /// cursor, see `queue`) rather than handing events on (`deliver`).
    fn queues(&self) -> bool {
        matches!(self, Sink::Webhooks | Sink::Mail)
    }

    /// Hands `events` on; returns how many of them, from the first, were taken.
    async fn deliver(&mut self, events: &[Event]) -> Result<usize> {
        match self {
            Sink::Log => {
                for event in events {
                    tracing::info!(event_id = %event.id, event_type = event.kind.as_str(), data = %event.data, "event");
                }
                Ok(events.len())
            }
            Sink::Amqp(sink) => sink.deliver(events).await,
            Sink::Webhooks | Sink::Mail => unreachable!("a queueing sink is fed by `queue`"),
        }
    }

    /// Queues the work `events` ask of a queueing sink, in the caller's transaction.
    async fn queue_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        events: &[Event],
        now: i64,
    ) -> Result<()> {
        match self {
            Sink::Webhooks => crate::notify::webhooks::queue(tx, events, now)
                .await
                .map(|_| ()),
            Sink::Mail => mail::queue_in(tx, events, now).await,
            Sink::Log | Sink::Amqp(_) => unreachable!("a sink that hands on is fed by `deliver`"),
        }
    }

    /// Lets go of what the sink holds open (a broker connection).
    pub async fn close(self) {
        match self {
            Sink::Log | Sink::Webhooks | Sink::Mail => {}
            Sink::Amqp(sink) => sink.close().await,
        }
    }
}

/// How long one pass holds a sink that hands events on (`store::take`). Its delivery is cut
/// off at half of it, so no other relay takes the sink while this one may still publish.
const LEASE: Duration = Duration::from_secs(30);

/// One pass of `sink`: the events after its cursor, handed on, the cursor moved past those
/// taken. Returns how many were taken. A sink that hands events on is held by one pass at a
/// time across every instance, so each event is published once per id (once more only if a
/// relay dies between publishing and moving the cursor).
pub async fn pass(state: &AppState, sink: &mut Sink) -> Result<usize> {
    if sink.queues() {
        let (from, events) = waiting(state, sink.name()).await?;
        if events.is_empty() {
            return Ok(0);
        }
        return queue(state, sink, from, &events).await;
    }
    // Taken only when something waits for it; its events are read once it is held.
    let from = cursor(state, sink.name()).await?;
    if !notify::any_after(&state.db, from).await? {
        return Ok(0);
    }
    let owner = random_token(16);
    let now = state.now_ms();
    let until = now.saturating_add(LEASE.as_millis() as i64);
    let mut tx = state.db.write().await?;
    if !store::take(&mut tx, sink.name(), &owner, now, until).await? {
        return Ok(0);
    }
    tx.commit().await?;
    let handed = hand_on(state, sink).await;
    // The cursor moves past what was taken and the sink is let go in one transaction.
    let mut tx = state.db.write().await?;
    if let Ok(Some(taken)) = &handed {
        if !store::advance(&mut tx, sink.name(), taken.from, taken.to, state.now_ms()).await? {
            tracing::info!(
                sink = sink.name(),
                "another relay moved this sink's cursor first"
            );
        }
        state
            .metrics
            .events_delivered
            .fetch_add(taken.count as u64, std::sync::atomic::Ordering::Relaxed);
    }
    store::release(&mut tx, sink.name(), &owner).await?;
    tx.commit().await?;
    handed.map(|taken| taken.map_or(0, |taken| taken.count))
}

/// Where `sink` stands; a sink seen for the first time gets its cursor, before the first
/// event.
async fn cursor(state: &AppState, sink: &str) -> Result<Position> {
    let known = store::cursor(&mut *state.db.reads.acquire().await?, sink).await?;
    match known {
        Some(at) => Ok(at),
        None => {
            let mut tx = state.db.write().await?;
            let at = store::start_cursor(&mut tx, sink, state.now_ms()).await?;
            tx.commit().await?;
            Ok(at)
        }
    }
}

/// The cursor of `sink` and the events after it.
async fn waiting(state: &AppState, sink: &str) -> Result<(Position, Vec<Event>)> {
    let from = cursor(state, sink).await?;
    let events = notify::after(&state.db, from, None, BATCH).await?;
    Ok((from, events))
}

/// Events a held sink took: how many, and where its cursor moves from and to.
struct Taken {
    count: usize,
    from: Position,
    to: Position,
}

/// Hands on the events after the cursor of a sink this pass holds; what it took, if any.
async fn hand_on(state: &AppState, sink: &mut Sink) -> Result<Option<Taken>> {
    // Read now that the sink is held: the relay that held it before may have moved it.
    let (from, events) = waiting(state, sink.name()).await?;
    if events.is_empty() {
        return Ok(None);
    }
    let count = tokio::time::timeout(LEASE / 2, sink.deliver(&events))
        .await
        .unwrap_or_else(|_| {
            Err(Error::Internal(anyhow::anyhow!(
                "sink {} did not take its events within {:?}",
                sink.name(),
                LEASE / 2
            )))
        })?;
    Ok(count.checked_sub(1).map(|last| Taken {
        count,
        from,
        to: events[last].position,
    }))
}

/// Queues the work of `events` (read after the cursor at `from`) and moves the cursor past
/// them, in one transaction, so each event is queued exactly once; another relay that moved
/// the cursor first leaves nothing queued here (it queued them). Returns how many were taken.
async fn queue(state: &AppState, sink: &Sink, from: Position, events: &[Event]) -> Result<usize> {
    let Some(last) = events.last() else {
        return Ok(0);
    };
    let now = state.now_ms();
    let mut tx = state.db.write().await?;
    sink.queue_in(&mut tx, events, now).await?;
    if !store::advance(&mut tx, sink.name(), from, last.position, now).await? {
        tx.rollback().await?;
        tracing::info!(
            sink = sink.name(),
            "another relay queued these events first"
        );
        return Ok(0);
    }
    tx.commit().await?;
    state
        .metrics
        .events_delivered
        .fetch_add(events.len() as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(events.len())
}

/// Runs one pass of every sink, then sends the webhook deliveries due (tests drive the relay
/// by hand with this); the first error is returned after all have had their pass.
pub async fn run_once(state: &AppState) -> Result<usize> {
    let mut handled = 0;
    let mut first_error = None;
    for mut sink in Sink::configured(state) {
        match pass(state, &mut sink).await {
            Ok(n) => handled += n,
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
        sink.close().await;
    }
    if let Err(err) = webhook_sender::send_once(state).await {
        first_error.get_or_insert(err);
    }
    if let Err(err) = mail::send_due(state).await {
        first_error.get_or_insert(err);
    }
    first_error.map_or(Ok(handled), Err)
}

/// Starts one task per sink, each draining its events and then waiting a tick; a failing
/// sink backs off (doubling, up to `BACKOFF_MAX`) without holding up the others. Beside them,
/// the webhook sender's loop and the mail sender's. Each ends after its current pass once
/// the instance stops.
///
/// Only a full batch is followed at once by the next pass: a sink that has caught up waits a
/// tick, so under a steady stream its passes (the cursor read, the sequencing, the cursor's
/// move: about ten statements) are paid once per tick's events, not once per checkout.
pub fn spawn(state: &AppState) -> Vec<JoinHandle<()>> {
    let sender = webhook_sender::spawn(state.clone());
    Sink::configured(state)
        .into_iter()
        .map(|mut sink| {
            let state = state.clone();
            tokio::spawn(async move {
                let tick = Duration::from_millis(state.worker_tick_ms);
                let mut backoff = tick;
                while !state.stopping.is_stopped() {
                    let wait = match pass(&state, &mut sink).await {
                        Ok(taken) => {
                            backoff = tick;
                            if taken as i64 >= BATCH {
                                Duration::ZERO
                            } else {
                                tick
                            }
                        }
                        Err(err) => {
                            tracing::warn!(sink = sink.name(), error = %err, "sink pass failed");
                            let wait = backoff;
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                            wait
                        }
                    };
                    if !wait.is_zero() && !state.stopping.pause(wait).await {
                        break;
                    }
                }
                sink.close().await;
            })
        })
        .chain([sender, mail::spawn(state.clone())])
        .collect()
}

/// Each sink's lag for `/metrics`: events waiting, and the age in seconds of the oldest.
pub async fn lags(state: &AppState) -> Result<Vec<(String, i64, i64)>> {
    let mut conn = state.db.pool.acquire().await?;
    Ok(store::lags(&mut conn, state.now_ms())
        .await?
        .into_iter()
        .map(|(sink, waiting, oldest_ms)| (sink, waiting, oldest_ms / 1000))
        .collect())
}
