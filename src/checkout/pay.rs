//! Step 2, pay. The attempt is committed `processing` before the gateway is called;
//! whatever the gateway answers (now or by webhook) goes through `apply_outcome`, which
//! finalizes the order (`finalize.rs`) in the same transaction as the payment's success.

use std::time::Instant;

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::finalize;
use super::trail::{
    self, failure_code, gateway_call, gateway_call_step, payment_kind, Gathered, Op,
};
use crate::db::{is_unique_violation, Script};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::idempotency::{complete_into, record_resource, KeyRef, Resource};
use crate::ids::{OrderId, PaymentId, RefundId};
use crate::metrics::Metrics;
use crate::notify::Type;
use crate::orders::{self, CancelReason, Status as OrderStatus};
use crate::payments::gateway::{GatewayError, GatewayPayment, Outcome};
use crate::payments::{self, Fate, Method, NextAction, Payment, PaymentView, Status};
use crate::state::AppState;
use crate::timeline::{self, Kind};

pub struct PaymentInput {
    /// The request's idempotency key: the attempt is recorded against it in the attempt's
    /// own transaction.
    pub key: Option<KeyRef>,
    pub order_id: OrderId,
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
    // Read before the transaction, which takes the row lock only if the order is pending.
    let head = orders::store::head(&mut *state.db.reads.acquire().await?, &input.order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    if let Some(amount) = input.expected_amount_minor {
        if amount != head.total.minor {
            return Err(Error::AmountMismatch(format!(
                "amount {amount} does not match the order total {}",
                head.total.minor
            )));
        }
    }
    let payment = Payment {
        id: PaymentId::generate(),
        order_id: head.id.clone(),
        status: Status::Processing,
        amount: head.total,
        method: input.method,
        source: input.source,
        gateway: gateway.name().to_string(),
        gateway_ref: None,
        fate: Fate::Open,
    };
    let mut tx = state.db.write().await?;
    // The key first, before any row lock: a request that claims it here waits for one that
    // holds it, and holds nothing meanwhile.
    if let Some(key) = &input.key {
        record_resource(&mut tx, key, Resource::Payment(payment.id.as_str()), now).await?;
    }
    if !orders::store::lock_pending(&mut tx, &head.id, now).await? {
        return Err(Error::NotPayable(format!(
            "order is {}",
            head.status.as_str()
        )));
    }
    if head.expires_at <= now {
        return Err(Error::NotPayable("the order's hold has expired".into()));
    }
    // The attempt and its step, together. A second attempt in flight for the order is a
    // unique violation (`payments_one_in_flight` indexes exactly `Status::IN_FLIGHT`), so
    // there is nothing to read first.
    let mut writes = Script::new();
    payments::store::insert_attempt_into(&mut writes, &payment, now);
    let attempted = json!({"payment_id": payment.id, "method": payment.method.as_str(), "gateway": payment.gateway, "amount": payment.amount.minor, "currency": payment.amount.currency.code()});
    timeline::record_into(
        &mut writes,
        &head.id,
        Kind::PaymentAttempted,
        attempted,
        now,
    );
    match writes.run(&mut tx).await {
        Ok(()) => {}
        Err(err) if is_unique_violation(&err) => {
            return Err(Error::NotPayable(
                "a payment for this order is already in progress".into(),
            ))
        }
        Err(err) => return Err(err.into()),
    }
    tx.commit().await?;
    if let Some(key) = &input.key {
        key.mark_claimed();
    }
    Metrics::inc(&state.metrics.payments_started);
    failpoint::hit("after_attempt_commit");

    let charge = payment.charge();
    let (answer, call_step) =
        gateway_call_step(state, &payment, Op::Create, gateway.create(&charge)).await;
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
    let asker = Asker {
        call_step: Some((&payment.order_id, call_step)),
        answer: input.key.as_ref().map(|key| (key, stripe_js.clone())),
    };
    let settled = settle(state, &payment.id, answer, Call::Create, asker).await?;
    if let Some(view) = settled {
        // Stored under the request's key by the transaction that made it so.
        if let Some(key) = &input.key {
            key.mark_answered();
        }
        return Ok(view);
    }
    let mut conn = state.db.pool.acquire().await?;
    let mut view = payments::view(&mut conn, payment.id.as_str())
        .await?
        .ok_or(Error::NotFound("payment"))?;
    if let Some(action) = stripe_js.filter(|_| view.status == "requires_action") {
        view.next_action = Some(action);
    }
    Ok(view)
}

/// What the payment request adds to the transaction that applies its own gateway call's
/// answer: that call's timeline step, and — when nothing is left to do after it (no capture,
/// void or refund to follow) — its answer, the payment's view as the transaction leaves it
/// (with the answer's `next_action`), stored under the request's key. Two commits fewer.
#[derive(Default)]
pub struct Asker<'a> {
    pub call_step: Option<(&'a OrderId, Value)>,
    pub answer: Option<(&'a KeyRef, Option<NextAction>)>,
}

/// Applies a gateway's answer to a call. An unknown outcome (no answer, 5xx) leaves the
/// attempt `processing` for the recovery worker; a rejection fails it.
pub async fn settle_answer(
    state: &AppState,
    payment_id: &PaymentId,
    answer: Result<GatewayPayment, GatewayError>,
    call: Call,
) -> Result<()> {
    settle(state, payment_id, answer, call, Asker::default()).await?;
    Ok(())
}

/// `settle_answer` for the request that made the call (`asker`): returns the view it stored
/// as that request's answer, if it stored one.
async fn settle(
    state: &AppState,
    payment_id: &PaymentId,
    answer: Result<GatewayPayment, GatewayError>,
    call: Call,
    asker: Asker<'_>,
) -> Result<Option<PaymentView>> {
    match answer {
        Ok(gp) => apply_asked(state, payment_id, &gp, asker).await,
        // A refused capture or void says nothing about the money: the payment stays as it is,
        // recovery asks again, and reconciliation flags a capture that never happens.
        Err(GatewayError::Rejected(reason)) if call == Call::FollowUp => {
            tracing::error!(%payment_id, %reason, "gateway refused a capture or void");
            write_call_step(state, asker.call_step).await;
            Ok(None)
        }
        Err(GatewayError::Rejected(reason)) => {
            tracing::warn!(%payment_id, %reason, "gateway rejected the payment");
            let gp = GatewayPayment {
                gateway_ref: String::new(),
                outcome: Outcome::Failed {
                    code: "gateway_rejected".into(),
                },
            };
            apply_asked(state, payment_id, &gp, asker).await
        }
        Err(GatewayError::Unavailable(reason)) => {
            Metrics::inc(&state.metrics.gateway_errors);
            tracing::warn!(%payment_id, %reason, "gateway outcome unknown; recovery will ask again");
            write_call_step(state, asker.call_step).await;
            Ok(None)
        }
    }
}

/// `apply` for the asking request; should the transaction applying the answer fail, the
/// call's step is written on its own all the same.
async fn apply_asked(
    state: &AppState,
    payment_id: &PaymentId,
    gp: &GatewayPayment,
    asker: Asker<'_>,
) -> Result<Option<PaymentView>> {
    let step = asker.call_step.clone();
    let applied = apply(state, payment_id, gp, asker).await;
    if applied.is_err() {
        write_call_step(state, step).await;
    }
    applied
}

/// A gateway call's step whose answer applies nothing, written on its own.
async fn write_call_step(state: &AppState, step: Option<(&OrderId, Value)>) {
    if let Some((order_id, step)) = step {
        trail::write_call(state, order_id, &step).await;
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
pub async fn apply_outcome(
    state: &AppState,
    payment_id: &PaymentId,
    gp: &GatewayPayment,
) -> Result<()> {
    apply(state, payment_id, gp, Asker::default()).await?;
    Ok(())
}

/// `apply_outcome` with what the asking request adds (see `Asker`); returns the view stored
/// as its answer, if one was.
async fn apply(
    state: &AppState,
    payment_id: &PaymentId,
    gp: &GatewayPayment,
    asker: Asker<'_>,
) -> Result<Option<PaymentView>> {
    let now = state.now_ms();
    let mut tx = state.db.write().await?;
    let head = orders::store::lock_head_of_payment(&mut tx, payment_id)
        .await?
        .ok_or(Error::NotFound("payment"))?;
    // Every attempt of the order, read once under its lock: this one, and the rest for the
    // confirmed order's view.
    let mut attempts = payments::store::records_for_order(&mut tx, &head.id).await?;
    let payment = attempts
        .iter()
        .find(|r| &r.payment.id == payment_id)
        .map(|r| r.payment.clone())
        .ok_or(Error::NotFound("payment"))?;
    let order_id = head.id.clone();
    let mut gathered = Gathered::new(&order_id, now);
    if let Some((_, step)) = asker.call_step {
        gathered.steps.add(Kind::GatewayCall, step);
    }
    let paid_by_this = head.paid_by.as_ref() == Some(&payment.id);
    let to = Status::from_outcome(&gp.outcome);
    if payment.status == to || !payment.status.can_become(to) {
        let touched = payment.status.in_flight();
        if touched {
            // Nothing moved, but the gateway's id for the payment may be news.
            payments::store::touch(&mut tx, payment_id, &gp.gateway_ref, now).await?;
        }
        if touched || !gathered.is_empty() {
            gathered.flush(&mut tx).await?;
            tx.commit().await?;
        }
        return Ok(None);
    }
    if paid_by_this && matches!(to, Status::Canceled | Status::Failed) {
        Metrics::inc(&state.metrics.payments_contradicted);
        tracing::error!(
            %payment_id,
            %order_id,
            reported = to.as_str(),
            "the gateway reports the money of a confirmed order as gone; not applied, flagged"
        );
        let what = format!(
            "gateway reported {} for the payment the order was paid with",
            to.as_str()
        );
        payments::store::record_contradiction(&mut tx, payment_id, &what, now).await?;
        gathered.flush(&mut tx).await?;
        tx.commit().await?;
        return Ok(None);
    }
    let Some(moved_to) =
        payments::store::record_outcome(&mut tx, payment_id, payment.status, gp, now).await?
    else {
        // Another writer moved it first; its transaction did the work.
        if !gathered.is_empty() {
            gathered.flush(&mut tx).await?;
            tx.commit().await?;
        }
        return Ok(None);
    };
    if let Some(kind) = payment_kind(to) {
        let mut moved = json!({"payment_id": payment_id, "from": payment.status.as_str()});
        if let Some(code) = failure_code(&gp.outcome) {
            moved["code"] = json!(code);
        }
        gathered.steps.add(kind, moved);
    }
    let view = payments::payment_view(moved_to.clone());
    if let Some(slot) = attempts.iter_mut().find(|r| &r.payment.id == payment_id) {
        *slot = moved_to;
    }
    let event = match to {
        Status::Succeeded => Some(Type::PaymentSucceeded),
        Status::Failed => Some(Type::PaymentFailed),
        _ => None,
    };
    if let Some(kind) = event {
        gathered.events.add(kind, &view)?;
    }
    let mut next = Next::Nothing;
    match to {
        // An authorization that confirmed the order settled it then; its capture changes
        // nothing more. (An authorization that was not kept, captured anyway, is handled like
        // any capture.)
        Status::Succeeded if payment.status == Status::Authorized && paid_by_this => {}
        Status::Succeeded | Status::Authorized => {
            let kept = finalize::keep_money(
                state,
                &mut tx,
                (&payment, attempts),
                &head,
                to,
                &mut gathered,
                now,
            )
            .await?;
            next = match (kept, to) {
                (true, Status::Authorized) => Next::Capture,
                (true, _) => Next::Nothing,
                // An authorization that cannot be kept is voided: no money ever moved.
                (false, Status::Authorized) => Next::Void,
                (false, _) => {
                    Next::Refund(finalize::queue_refund(state, &mut tx, &payment, now).await?)
                }
            };
        }
        Status::Failed => {
            gathered.flush(&mut tx).await?;
            let decided = finalize::end_in_tx(
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
    // The transaction's last writes go together: what was gathered and, when this
    // transaction leaves the payment as it will be answered with (nothing follows it), the
    // asking request's answer.
    let mut writes = gathered.take();
    let answered = match (asker.answer, &next) {
        (Some((key, next_action)), Next::Nothing) => {
            let mut view = view;
            if let Some(action) = next_action.filter(|_| to == Status::RequiresAction) {
                view.next_action = Some(action);
            }
            complete_into(&mut writes, key, StatusCode::CREATED, &view)?;
            Some(view)
        }
        _ => None,
    };
    writes.run(&mut tx).await?;
    tx.commit().await?;
    let mut charge = payment.charge();
    charge.gateway_ref = Some(gp.gateway_ref.clone())
        .filter(|r| !r.is_empty())
        .or(charge.gateway_ref);
    match next {
        Next::Nothing => Ok(answered),
        Next::Refund(refund_id) => super::process_refund(state, &refund_id)
            .await
            .map(|()| None),
        Next::VoidDecided(ids) => Box::pin(super::compensate::void_decided(state, &ids))
            .await
            .map(|()| None),
        Next::Capture => {
            if failpoint::armed(failpoint::CAPTURE_NOT_SENT, order_id.as_str()) {
                return Ok(None);
            }
            let gateway = state.gateway(&payment.gateway)?;
            let answer = gateway_call(state, &payment, Op::Capture, gateway.capture(&charge)).await;
            Box::pin(settle_answer(state, payment_id, answer, Call::FollowUp))
                .await
                .map(|()| None)
        }
        Next::Void => {
            let gateway = state.gateway(&payment.gateway)?;
            let answer = gateway_call(state, &payment, Op::Void, gateway.cancel(&charge)).await;
            Box::pin(settle_answer(state, payment_id, answer, Call::FollowUp))
                .await
                .map(|()| None)
        }
    }
}

/// What a payment's new state asks for once its transaction has committed.
enum Next {
    Nothing,
    /// The order is paid for: take the authorized money.
    Capture,
    /// The authorization cannot be kept: release it.
    Void,
    /// Captured money that cannot be kept: give it back.
    Refund(RefundId),
    /// The order ended: the attempts it decided to void.
    VoidDecided(Vec<PaymentId>),
}
