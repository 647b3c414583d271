//! Step 2 and 3, pay and finalize. The attempt is committed `processing` before the gateway
//! is called; whatever the gateway answers (now or by webhook) goes through `apply_outcome`,
//! which finalizes the order in the same transaction as the payment's success.

use std::time::Instant;

use serde_json::{json, Value};
use sqlx::{AnyConnection, Connection};

use crate::db::is_unique_violation;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::ids::new_id;
use crate::inventory::{self, LockEnd};
use crate::metrics::Metrics;
use crate::notify;
use crate::orders::{self, CancelReason, Status as OrderStatus};
use crate::payments::gateway::{GatewayError, GatewayPayment, Outcome};
use crate::payments::{self, Method, Payment, Status};
use crate::state::{AppState, DEFAULT_GATEWAY};

pub struct PaymentInput {
    pub order_id: String,
    pub method: Method,
    pub source: String,
    /// The seed's `/payment/initiate` states the amount; it must equal the order's total.
    pub expected_amount_minor: Option<i64>,
}

/// Starts a payment attempt on a pending order and returns the payment's view.
pub async fn start_payment(state: &AppState, input: PaymentInput) -> Result<Value> {
    let gateway = state.gateway(DEFAULT_GATEWAY)?;
    gateway
        .check_source(input.method, &input.source)
        .map_err(Error::InvalidRequest)?;
    let now = state.now_ms();
    let mut conn = state.db.pool.acquire().await?;
    let head = orders::head(&mut conn, &input.order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    if let Some(amount) = input.expected_amount_minor {
        if amount != head.total {
            return Err(Error::AmountMismatch(format!(
                "amount {amount} does not match the order total {}",
                head.total
            )));
        }
    }
    let payment = Payment {
        id: new_id("pay"),
        order_id: head.id.clone(),
        status: Status::Processing,
        amount_minor: head.total,
        currency: head.currency.clone(),
        method: input.method,
        source: input.source,
        gateway: gateway.name().to_string(),
    };
    let mut tx = conn.begin().await?;
    if !orders::lock_pending(&mut tx, &head.id, now).await? {
        return Err(Error::NotPayable(format!(
            "order is {}",
            head.status.as_str()
        )));
    }
    if head.expires_at <= now {
        return Err(Error::NotPayable("the order's hold has expired".into()));
    }
    if payments::for_order(&mut tx, &head.id)
        .await?
        .iter()
        .any(|p| p.status.in_flight())
    {
        return Err(Error::NotPayable(
            "a payment for this order is already in progress".into(),
        ));
    }
    match payments::insert_attempt(&mut tx, &payment, now).await {
        Ok(()) => {}
        Err(err) if is_unique_violation(&err) => {
            return Err(Error::NotPayable(
                "a payment for this order is already in progress".into(),
            ))
        }
        Err(err) => return Err(err.into()),
    }
    tx.commit().await?;
    drop(conn);
    Metrics::inc(&state.metrics.payments_started);
    failpoint::hit("after_attempt_commit");

    let charge = payment.charge();
    let answer = timed(state, gateway.create(&charge)).await;
    failpoint::hit("after_gateway_answer");
    settle_answer(state, &payment.id, answer).await?;
    let mut conn = state.db.pool.acquire().await?;
    payments::view(&mut conn, &payment.id)
        .await?
        .ok_or(Error::NotFound("payment"))
}

/// Applies a gateway's answer to a call. An unknown outcome (no answer, 5xx) leaves the
/// attempt `processing` for the recovery worker; a rejection fails it.
pub async fn settle_answer(
    state: &AppState,
    payment_id: &str,
    answer: Result<GatewayPayment, GatewayError>,
) -> Result<()> {
    match answer {
        Ok(gp) => apply_outcome(state, payment_id, &gp).await,
        Err(GatewayError::Rejected(reason)) => {
            tracing::warn!(payment_id, %reason, "gateway rejected the payment");
            let gp = GatewayPayment {
                gateway_ref: String::new(),
                outcome: Outcome::Failed {
                    code: "gateway_rejected".into(),
                },
            };
            apply_outcome(state, payment_id, &gp).await
        }
        Err(GatewayError::Unavailable(reason)) => {
            Metrics::inc(&state.metrics.gateway_errors);
            tracing::warn!(payment_id, %reason, "gateway outcome unknown; recovery will ask again");
            Ok(())
        }
    }
}

/// Times a gateway call into the metrics.
pub async fn timed<T>(state: &AppState, call: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = call.await;
    Metrics::inc(&state.metrics.gateway_calls);
    state.metrics.gateway_latency_ms_sum.fetch_add(
        started.elapsed().as_millis() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    out
}

/// Moves a payment forward with what the gateway said, and the order with it, in one
/// transaction. Answers that would move backwards, or repeat the current state, change
/// nothing, so duplicate and out-of-order webhooks are harmless.
pub async fn apply_outcome(state: &AppState, payment_id: &str, gp: &GatewayPayment) -> Result<()> {
    let now = state.now_ms();
    let mut conn = state.db.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let payment = payments::get(&mut tx, payment_id)
        .await?
        .ok_or(Error::NotFound("payment"))?;
    let to = Status::from_outcome(&gp.outcome);
    if payment.status == to || !payment.status.can_become(to) {
        if payment.status.in_flight() {
            payments::touch(&mut tx, payment_id, now).await?;
            tx.commit().await?;
        }
        return Ok(());
    }
    if !payments::record_outcome(&mut tx, payment_id, payment.status, gp, now).await? {
        return Ok(()); // another writer moved it first; its transaction did the work
    }
    let mut refund_id = None;
    match to {
        Status::Succeeded => refund_id = on_succeeded(state, &mut tx, &payment, now).await?,
        Status::Failed => {
            if orders::transition(
                &mut tx,
                &payment.order_id,
                &[OrderStatus::Pending],
                OrderStatus::Cancelled,
                Some(CancelReason::PaymentFailed),
                now,
            )
            .await?
            {
                inventory::settle_locks(&mut tx, &payment.order_id, LockEnd::Released, now).await?;
                notify::enqueue(
                    &mut tx,
                    "order.cancelled",
                    json!({"order_id": payment.order_id, "reason": "payment_failed"}),
                    now,
                )
                .await?;
                Metrics::inc(&state.metrics.orders_cancelled);
            }
        }
        Status::Processing
        | Status::RequiresAction
        | Status::Authorized
        | Status::Canceled
        | Status::Refunded => {}
    }
    tx.commit().await?;
    drop(conn);
    if let Some(refund_id) = refund_id {
        super::process_refund(state, &refund_id).await?;
    }
    Ok(())
}

/// The payment succeeded. A pending order is finalized. An order that ended meanwhile
/// (expired, cancelled) gets its stock re-locked and is confirmed if the stock is still
/// there; otherwise — or if the order was already paid — the money goes back: a refund is
/// queued in this transaction and returned for the caller to run after commit.
async fn on_succeeded(
    state: &AppState,
    tx: &mut AnyConnection,
    payment: &Payment,
    now: i64,
) -> Result<Option<String>> {
    let order_id = payment.order_id.as_str();
    let head = orders::head(tx, order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    let confirmed = match head.status {
        OrderStatus::Pending => {
            orders::transition(
                tx,
                order_id,
                &[OrderStatus::Pending],
                OrderStatus::Confirmed,
                None,
                now,
            )
            .await?
        }
        OrderStatus::Cancelled | OrderStatus::Expired => {
            relock(tx, order_id, head.status, now).await?
        }
        OrderStatus::Confirmed | OrderStatus::Refunded | OrderStatus::PartiallyRefunded => false,
    };
    if confirmed {
        inventory::settle_locks(tx, order_id, LockEnd::Committed, now).await?;
        failpoint::hit("mid_finalize");
        let invoice = orders::set_invoice_number(tx, order_id, now).await?;
        notify::enqueue(
            tx,
            "order.confirmed",
            json!({"order_id": order_id, "payment_id": payment.id, "total": head.total, "currency": head.currency, "invoice_number": invoice}),
            now,
        )
        .await?;
        Metrics::inc(&state.metrics.orders_confirmed);
        if head.status != OrderStatus::Pending {
            Metrics::inc(&state.metrics.late_payments_relocked);
            tracing::info!(
                order_id,
                "late payment: stock re-locked and order confirmed"
            );
        }
        return Ok(None);
    }
    let refund_id = new_id("re");
    let reason = if head.status.is_paid() {
        "duplicate_payment"
    } else {
        "order_ended"
    };
    payments::insert_refund(
        tx,
        &refund_id,
        order_id,
        &payment.id,
        payment.amount_minor,
        reason,
        now,
    )
    .await?;
    Metrics::inc(&state.metrics.late_payments_refunded);
    tracing::warn!(order_id, payment_id = %payment.id, reason, "payment succeeded but cannot be kept; refunding");
    Ok(Some(refund_id))
}

/// Re-locks an ended order's lines inside a savepoint; keeps the locks and confirms only if
/// every line could be had.
async fn relock(
    tx: &mut AnyConnection,
    order_id: &str,
    from: OrderStatus,
    now: i64,
) -> Result<bool> {
    let mut lines: Vec<(crate::ids::Sku, i64)> = Vec::new();
    for line in orders::lines(tx, order_id).await? {
        let sku = crate::ids::Sku::try_from(line.sku.as_str())
            .map_err(|e| Error::Internal(anyhow::anyhow!(e)))?;
        lines.push((sku, line.qty));
    }
    lines.sort();
    let mut savepoint = tx.begin().await?;
    let short = inventory::lock_lines(&mut savepoint, order_id, &lines, now).await?;
    if !short.is_empty() {
        savepoint.rollback().await?;
        return Ok(false);
    }
    let moved = orders::transition(
        &mut savepoint,
        order_id,
        &[from],
        OrderStatus::Confirmed,
        None,
        now,
    )
    .await?;
    if moved {
        savepoint.commit().await?;
    } else {
        savepoint.rollback().await?;
    }
    Ok(moved)
}
