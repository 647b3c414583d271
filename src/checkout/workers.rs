//! The workers that finish what requests started: the expiry sweeper, payment recovery,
//! refund retries, the simulator's webhook sender and idempotency-key cleanup (the relay that
//! feeds events to their sinks runs beside them: `relay`). Each is a step function (tests call them directly) run in a loop by `spawn`.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::recover::recheck_payment;
use super::trail::{gateway_call, Op};
use super::{expire_order, process_refund};
use crate::error::Result;
use crate::idempotency;
use crate::ids::OrderId;
use crate::orders;
use crate::payments::{self, gateway::GatewayPayment, gateway::Outcome};
use crate::state::AppState;

/// Rows a step takes per pass; the rest wait for the next tick, so one pass stays short.
const BATCH: i64 = 100;

/// Runs every step once. Returns how many items were handled (0 when idle).
pub async fn run_once(state: &AppState) -> Result<usize> {
    let mut handled = expire_due(state).await?;
    handled += recover_payments(state).await?;
    handled += retry_refunds(state).await?;
    if let Some(sim) = &state.sim {
        handled += sim
            .deliver_due()
            .await
            .map_err(crate::error::Error::Internal)?;
    }
    idempotency::purge_expired(state).await?;
    Ok(handled)
}

/// Starts the worker loop; a failed pass is logged and retried on the next tick. The loop
/// ends after its current pass once the instance stops (`Stopping`).
pub fn spawn(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let tick = Duration::from_millis(state.worker_tick_ms);
        let mut last_reconcile = std::time::Instant::now();
        loop {
            if let Err(err) = run_once(&state).await {
                tracing::warn!(error = %err, "worker pass failed");
            }
            let every = state.reconcile_every_ms;
            if every > 0 && last_reconcile.elapsed() >= Duration::from_millis(every) {
                last_reconcile = std::time::Instant::now();
                match super::reconcile::reconcile(&state, super::reconcile::Scope::SinceLastPass)
                    .await
                {
                    Ok(findings) if findings.repaired + findings.flagged > 0 => {
                        tracing::warn!(report = %findings.render(), "reconciliation repaired or flagged payments")
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "reconciliation failed"),
                }
            }
            if !state.stopping.pause(tick).await {
                return;
            }
        }
    })
}

/// Expires pending orders whose hold TTL has passed.
pub async fn expire_due(state: &AppState) -> Result<usize> {
    let ids = {
        let mut conn = state.db.pool.acquire().await?;
        orders::store::due_to_expire(&mut conn, state.now_ms(), BATCH).await?
    };
    let n = ids.len();
    each_concurrently(state, ids, |state, id| async move {
        ask_before_expiry(&state, &id).await?;
        expire_order(&state, &id).await.map(|_| ())
    })
    .await?;
    Ok(n)
}

/// Before a hold is let go, the gateway is asked (a read, never a new charge) about each
/// attempt still in flight: money the customer gave in time (its answer lost, its webhook
/// late) confirms the order now, instead of being voided by the expiry that would otherwise
/// decide its fate. A gateway that does not answer changes nothing: the order expires.
async fn ask_before_expiry(state: &AppState, order_id: &OrderId) -> Result<()> {
    let in_flight: Vec<payments::Payment> = {
        let mut conn = state.db.pool.acquire().await?;
        payments::store::for_order(&mut conn, order_id)
            .await?
            .into_iter()
            .filter(|p| p.status.in_flight() && p.fate == payments::Fate::Open)
            .collect()
    };
    for payment in in_flight {
        let gateway = state.gateway(&payment.gateway)?;
        let charge = payment.charge();
        let fetch = gateway.fetch(&charge);
        let Ok(Some(record)) = gateway_call(state, &payment, Op::Status, fetch).await else {
            continue;
        };
        if matches!(record.outcome, Outcome::Authorized | Outcome::Succeeded) {
            let gp = GatewayPayment {
                gateway_ref: record.gateway_ref,
                outcome: record.outcome,
            };
            super::pay::apply_outcome(state, &payment.id, &gp).await?;
        }
    }
    Ok(())
}

/// Gateway calls wait on the network; this many items of one pass are worked at once so a
/// slow or retried call does not hold up the rest.
const CONCURRENCY: usize = 8;

/// Runs `work` for every id, `CONCURRENCY` at a time; the first error is returned after all
/// have finished (each item is independent and idempotent).
async fn each_concurrently<Id, F, Fut>(state: &AppState, ids: Vec<Id>, work: F) -> Result<()>
where
    F: Fn(AppState, Id) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut first_error = None;
    let mut note = |joined: std::result::Result<Result<()>, tokio::task::JoinError>| {
        let failed = match joined {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err),
            Err(join) => Some(crate::error::Error::Internal(anyhow::anyhow!(
                "worker task failed: {join}"
            ))),
        };
        if first_error.is_none() {
            first_error = failed;
        }
    };
    for id in ids {
        while set.len() >= CONCURRENCY {
            if let Some(joined) = set.join_next().await {
                note(joined);
            }
        }
        set.spawn(work(state.clone(), id));
    }
    while let Some(joined) = set.join_next().await {
        note(joined);
    }
    first_error.map_or(Ok(()), Err)
}

/// Asks the gateway again about attempts that have been in flight for a while, with the
/// attempt's own idempotency key: a crash between committing the attempt and calling the
/// gateway, a lost answer or a lost webhook all end here. An attempt on an order that is no
/// longer pending is voided instead.
pub async fn recover_payments(state: &AppState) -> Result<usize> {
    let now = state.now_ms();
    let ids =
        payments::store::lease_due_attempts(&state.db, now - state.recovery_after_ms, now, BATCH)
            .await?;
    let n = ids.len();
    each_concurrently(state, ids, |state, id| async move {
        recheck_payment(&state, &id).await
    })
    .await?;
    Ok(n)
}

/// Retries refunds the gateway has not yet confirmed.
pub async fn retry_refunds(state: &AppState) -> Result<usize> {
    let now = state.now_ms();
    let ids =
        payments::store::lease_due_refunds(&state.db, now - state.recovery_after_ms, now, BATCH)
            .await?;
    let n = ids.len();
    each_concurrently(state, ids, |state, id| async move {
        process_refund(&state, &id).await
    })
    .await?;
    Ok(n)
}
