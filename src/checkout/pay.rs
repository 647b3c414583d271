//! Step 2 and 3, pay and finalize. The attempt is committed `processing` before the gateway
//! is called; whatever the gateway answers (now or by webhook) goes through `apply_outcome`,
//! which finalizes the order in the same transaction as the payment's success.

use std::time::Instant;

use serde_json::json;
use sqlx::{AnyConnection, Connection};

use crate::db::is_unique_violation;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::idempotency::{record_resource, KeyRef, Resource};
use crate::ids::new_id;
use crate::inventory::{self, LockEnd};
use crate::metrics::Metrics;
use crate::notify;
use crate::orders::{self, CancelReason, Status as OrderStatus};
use crate::payments::gateway::{GatewayError, GatewayPayment, Outcome};
use crate::payments::{self, Fate, Method, Payment, PaymentView, Status};
use crate::state::AppState;

pub struct PaymentInput {
    /// The request's idempotency key: the attempt is recorded against it in the attempt's
    /// own transaction.
    pub key: Option<KeyRef>,
    pub order_id: String,
    pub method: Method,
    pub source: String,
    /// The seed's `/payment/initiate` states the amount; it must equal the order's total.
    pub expected_amount_minor: Option<i64>,
}

/// Starts a payment attempt on a pending order and returns the payment's view.
pub async fn start_payment(state: &AppState, input: PaymentInput) -> Result<PaymentView> {
    let gateway = state.gateway_for(input.method)?;
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
        gateway_ref: None,
        fate: Fate::Open,
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
    if let Some(key) = &input.key {
        record_resource(&mut tx, key, Resource::Payment(&payment.id)).await?;
    }
    tx.commit().await?;
    drop(conn);
    Metrics::inc(&state.metrics.payments_started);
    failpoint::hit("after_attempt_commit");

    let charge = payment.charge();
    let answer = timed(state, gateway.create(&charge)).await;
    failpoint::hit("after_gateway_answer");
    let stripe_js = match &answer {
        Ok(GatewayPayment {
            outcome:
                Outcome::RequiresAction {
                    redirect_url,
                    client_secret: Some(secret),
                },
            ..
        }) => Some(payments::stripe_js_action(redirect_url, secret)),
        _ => None,
    };
    settle_answer(state, &payment.id, answer, Call::Create).await?;
    let mut conn = state.db.pool.acquire().await?;
    let mut view = payments::view(&mut conn, &payment.id)
        .await?
        .ok_or(Error::NotFound("payment"))?;
    if let Some(action) = stripe_js.filter(|_| view.status == "requires_action") {
        view.next_action = Some(action);
    }
    Ok(view)
}

/// Applies a gateway's answer to a call. An unknown outcome (no answer, 5xx) leaves the
/// attempt `processing` for the recovery worker; a rejection fails it.
pub async fn settle_answer(
    state: &AppState,
    payment_id: &str,
    answer: Result<GatewayPayment, GatewayError>,
    call: Call,
) -> Result<()> {
    match answer {
        Ok(gp) => apply_outcome(state, payment_id, &gp).await,
        // A refused capture or void says nothing about the money: the payment stays as it is,
        // recovery asks again, and reconciliation flags a capture that never happens.
        Err(GatewayError::Rejected(reason)) if call == Call::FollowUp => {
            tracing::error!(payment_id, %reason, "gateway refused a capture or void");
            Ok(())
        }
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

/// Which call an answer belongs to: the payment's creation (a refusal fails the payment) or
/// a capture or void that follows it (a refusal changes nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Create,
    FollowUp,
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
///
/// The order row is locked first and the payment read under it, so what the transaction
/// that ended the order decided for this attempt (`Fate::Void`) is seen, and carried out:
/// such money is voided or refunded, never kept. The payment an order was paid with never
/// moves to `canceled` or `failed`: a gateway saying so is recorded and flagged instead.
pub async fn apply_outcome(state: &AppState, payment_id: &str, gp: &GatewayPayment) -> Result<()> {
    let now = state.now_ms();
    let mut conn = state.db.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let order_id = payments::get(&mut tx, payment_id)
        .await?
        .ok_or(Error::NotFound("payment"))?
        .order_id;
    orders::lock_row(&mut tx, &order_id).await?;
    let payment = payments::get(&mut tx, payment_id)
        .await?
        .ok_or(Error::NotFound("payment"))?;
    let head = orders::head(&mut tx, &order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    let paid_by_this = head.paid_by.as_deref() == Some(payment.id.as_str());
    let to = Status::from_outcome(&gp.outcome);
    if payment.status == to || !payment.status.can_become(to) {
        if payment.status.in_flight() {
            // Nothing moved, but the gateway's id for the payment may be news.
            payments::touch(&mut tx, payment_id, &gp.gateway_ref, now).await?;
            tx.commit().await?;
        }
        return Ok(());
    }
    if paid_by_this && matches!(to, Status::Canceled | Status::Failed) {
        Metrics::inc(&state.metrics.payments_contradicted);
        tracing::error!(
            payment_id,
            order_id,
            reported = to.as_str(),
            "the gateway reports the money of a confirmed order as gone; not applied, flagged"
        );
        let what = format!(
            "gateway reported {} for the payment the order was paid with",
            to.as_str()
        );
        payments::record_contradiction(&mut tx, payment_id, &what, now).await?;
        tx.commit().await?;
        return Ok(());
    }
    if !payments::record_outcome(&mut tx, payment_id, payment.status, gp, now).await? {
        return Ok(()); // another writer moved it first; its transaction did the work
    }
    let mut next = Next::Nothing;
    match to {
        // An authorization that confirmed the order settled it then; its capture changes
        // nothing more. (An authorization that was not kept, captured anyway, is handled like
        // any capture.)
        Status::Succeeded if payment.status == Status::Authorized && paid_by_this => {}
        Status::Succeeded | Status::Authorized => {
            let kept = keep_money(state, &mut tx, &payment, &head, to, now).await?;
            next = match (kept, to) {
                (true, Status::Authorized) => Next::Capture,
                (true, _) => Next::Nothing,
                // An authorization that cannot be kept is voided: no money ever moved.
                (false, Status::Authorized) => Next::Void,
                (false, _) => Next::Refund(queue_refund(state, &mut tx, &payment, now).await?),
            };
        }
        Status::Failed => {
            let decided = end_in_tx(
                state,
                &mut tx,
                &order_id,
                OrderStatus::Cancelled,
                CancelReason::PaymentFailed,
                now,
            )
            .await?;
            if let Some(others) = decided.filter(|ids| !ids.is_empty()) {
                next = Next::VoidDecided(others);
            }
        }
        Status::Processing | Status::RequiresAction | Status::Canceled | Status::Refunded => {}
    }
    tx.commit().await?;
    drop(conn);
    let mut charge = payment.charge();
    charge.gateway_ref = Some(gp.gateway_ref.clone())
        .filter(|r| !r.is_empty())
        .or(charge.gateway_ref);
    match next {
        Next::Nothing => Ok(()),
        Next::Refund(refund_id) => super::process_refund(state, &refund_id).await,
        Next::VoidDecided(ids) => Box::pin(super::compensate::void_decided(state, &ids)).await,
        Next::Capture => {
            let gateway = state.gateway(&payment.gateway)?;
            let answer = timed(state, gateway.capture(&charge)).await;
            Box::pin(settle_answer(state, payment_id, answer, Call::FollowUp)).await
        }
        Next::Void => {
            let gateway = state.gateway(&payment.gateway)?;
            let answer = timed(state, gateway.cancel(&charge)).await;
            Box::pin(settle_answer(state, payment_id, answer, Call::FollowUp)).await
        }
    }
}

/// Ends a pending order inside the caller's transaction, which holds its row lock: status
/// (compare-and-set), stock released, every attempt still in flight decided `void`, the
/// event. Returns the attempts to void once the transaction has committed; `None` when the
/// order was not pending, so this call decided nothing.
pub async fn end_in_tx(
    state: &AppState,
    tx: &mut AnyConnection,
    order_id: &str,
    to: OrderStatus,
    reason: CancelReason,
    now: i64,
) -> Result<Option<Vec<String>>> {
    if !orders::transition(tx, order_id, &[OrderStatus::Pending], to, Some(reason), now).await? {
        return Ok(None);
    }
    inventory::settle_locks(tx, order_id, LockEnd::Released, now).await?;
    let to_void = payments::decide_void_in_flight(tx, order_id, now).await?;
    notify::enqueue(
        tx,
        &format!("order.{}", to.as_str()),
        json!({"order_id": order_id, "reason": reason.as_str()}),
        now,
    )
    .await?;
    Metrics::inc(match to {
        OrderStatus::Expired => &state.metrics.orders_expired,
        _ => &state.metrics.orders_cancelled,
    });
    Ok(Some(to_void))
}

/// What a payment's new state asks for once its transaction has committed.
enum Next {
    Nothing,
    /// The order is paid for: take the authorized money.
    Capture,
    /// The authorization cannot be kept: release it.
    Void,
    /// Captured money that cannot be kept: give it back.
    Refund(String),
    /// The order ended: the attempts it decided to void.
    VoidDecided(Vec<String>),
}

/// The payment's money is secured (authorized or captured); the caller holds the order's
/// row lock and read `head` under it. A pending order is finalized. An order that ended
/// keeps its end — a customer's cancel or a failed payment is final, and an authorization
/// that arrives after the hold expired is voided — with one exception: money already
/// captured for an attempt that was in flight when the hold expired (the customer was still
/// paying, and the void came too late) locks the stock again and confirms the order if the
/// stock is still there. Returns whether the money is kept.
async fn keep_money(
    state: &AppState,
    tx: &mut AnyConnection,
    payment: &Payment,
    head: &orders::OrderHead,
    to: Status,
    now: i64,
) -> Result<bool> {
    let order_id = payment.order_id.as_str();
    let confirmed = match head.status {
        // A void decision is only taken when the order ends, so an open order's attempt is
        // never `Fate::Void`; checked all the same, since it decides money.
        OrderStatus::Pending if payment.fate == Fate::Open => {
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
        OrderStatus::Expired if to == Status::Succeeded => {
            relock(tx, order_id, head.status, now).await?
        }
        OrderStatus::Pending
        | OrderStatus::Expired
        | OrderStatus::Cancelled
        | OrderStatus::Confirmed
        | OrderStatus::Refunded
        | OrderStatus::PartiallyRefunded => false,
    };
    if !confirmed {
        tracing::warn!(order_id, payment_id = %payment.id, order_status = head.status.as_str(), "payment cannot be kept; giving it back");
        return Ok(false);
    }
    inventory::settle_locks(tx, order_id, LockEnd::Committed, now).await?;
    failpoint::hit("mid_finalize");
    let invoice = orders::record_paid(tx, order_id, &payment.id, now).await?;
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
    Ok(true)
}

/// Queues a full refund of captured money that cannot be kept, in the caller's transaction.
async fn queue_refund(
    state: &AppState,
    tx: &mut AnyConnection,
    payment: &Payment,
    now: i64,
) -> Result<String> {
    let head = orders::head(tx, &payment.order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    let refund_id = new_id("re");
    let reason = if head.status.is_paid() {
        "duplicate_payment"
    } else {
        "order_ended"
    };
    payments::insert_refund(
        tx,
        &refund_id,
        &payment.order_id,
        &payment.id,
        payment.amount_minor,
        reason,
        now,
    )
    .await?;
    Metrics::inc(&state.metrics.late_payments_refunded);
    Ok(refund_id)
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
