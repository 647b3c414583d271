//! Compensations: cancel, expire, refund. Each is idempotent — a lock leaves `held` at most
//! once, a status moves by compare-and-set — so repeating one, or racing two, changes
//! nothing twice.

use sqlx::Connection;

use super::emit;
use super::finalize::end_in_tx;
use super::pay::{settle_answer, Call};
use super::trail::{gateway_call, refund_step, Op};
use super::OrderView;
use crate::error::{Error, Result};
use crate::idempotency::{record_resource, KeyRef, Resource};
use crate::ids::{OrderId, PaymentId, RefundId};
use crate::metrics::Metrics;
use crate::money::TaxLine;
use crate::notify::{self, Type};
use crate::orders::{self, CancelReason, Status as OrderStatus};
use crate::payments::gateway::GatewayError;
use crate::payments::{self, Fate, RefundStatus, RefundView, Status};
use crate::pricing;
use crate::state::AppState;
use crate::timeline::Kind;

/// The reason of a refund the merchant asked for through the API.
const REASON_REQUESTED: &str = "requested";

/// A customer cancels a pending order: stock released, any payment in flight voided.
/// Cancelling a cancelled order returns it unchanged.
pub async fn cancel_order(state: &AppState, order_id: &OrderId) -> Result<OrderView> {
    end_order(
        state,
        order_id,
        OrderStatus::Cancelled,
        CancelReason::Customer,
    )
    .await?;
    let mut conn = state.db.pool.acquire().await?;
    let head = orders::store::head(&mut conn, order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    if head.status != OrderStatus::Cancelled {
        return Err(Error::NotPayable(format!(
            "order is {} and cannot be cancelled",
            head.status.as_str()
        )));
    }
    super::order_view(&mut conn, order_id.as_str())
        .await?
        .ok_or(Error::NotFound("order"))
}

/// The hold TTL passed: stock released, order `expired`, any payment in flight voided.
pub async fn expire_order(state: &AppState, order_id: &OrderId) -> Result<bool> {
    end_order(state, order_id, OrderStatus::Expired, CancelReason::Expired).await
}

/// Ends a pending order (one transaction that also decides to void every attempt still in
/// flight), then carries that decision out at the gateway. Returns whether this call ended it.
async fn end_order(
    state: &AppState,
    order_id: &OrderId,
    to: OrderStatus,
    reason: CancelReason,
) -> Result<bool> {
    let now = state.now_ms();
    let mut conn = state.db.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    orders::store::lock_row(&mut tx, order_id).await?;
    let decided = end_in_tx(state, &mut tx, order_id, to, reason, now).await?;
    tx.commit().await?;
    drop(conn);
    // Only the call that ended the order voids, and only what it decided: a payment that
    // confirmed the order first was never decided `void`, so it is never touched.
    match decided {
        Some(ids) => {
            void_decided(state, &ids).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Carries out a `void` decision: asks the gateway to void each attempt still in flight and
/// applies the answer — which may be money that beat the void, then given back (or, for an
/// expired order, kept if the stock is still there). An attempt the gateway has not seen yet
/// stays decided `void` in Till, so whatever the gateway answers for it later is undone too.
pub(super) async fn void_decided(state: &AppState, payment_ids: &[PaymentId]) -> Result<()> {
    for payment_id in payment_ids {
        let payment = {
            let mut conn = state.db.pool.acquire().await?;
            payments::store::get(&mut conn, payment_id).await?
        };
        let Some(payment) = payment.filter(|p| p.status.in_flight() && p.fate == Fate::Void) else {
            continue;
        };
        let gateway = state.gateway(&payment.gateway)?;
        let answer =
            gateway_call(state, &payment, Op::Void, gateway.cancel(&payment.charge())).await;
        settle_answer(state, payment_id, answer, Call::FollowUp).await?;
    }
    Ok(())
}

/// Refunds part (`amount`) or the rest (`None`) of a paid order's payment.
pub async fn refund_order(
    state: &AppState,
    order_id: &OrderId,
    amount: Option<i64>,
    key: Option<&KeyRef>,
) -> Result<RefundView> {
    let now = state.now_ms();
    let mut conn = state.db.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    orders::store::lock_row(&mut tx, order_id).await?;
    let head = orders::store::head(&mut tx, order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    if !matches!(
        head.status,
        OrderStatus::Confirmed | OrderStatus::PartiallyRefunded
    ) {
        return Err(Error::NotPayable(format!(
            "order is {} and cannot be refunded",
            head.status.as_str()
        )));
    }
    let payment = payments::store::for_order(&mut tx, order_id)
        .await?
        .into_iter()
        .find(|p| p.status == Status::Succeeded)
        .ok_or_else(|| Error::NotPayable("order has no refundable payment".into()))?;
    let refundable =
        payment.amount.minor - payments::store::refunded_or_pending(&mut tx, &payment.id).await?;
    let amount = amount.unwrap_or(refundable);
    if refundable <= 0 {
        return Err(Error::NotPayable("order is already fully refunded".into()));
    }
    if amount < 1 || amount > refundable {
        return Err(Error::invalid(format!("amount must be 1-{refundable}")));
    }
    let mut refund = payments::Refund::pending(&payment, amount, REASON_REQUESTED);
    refund.share = Some(refund_share(&mut tx, &payment, amount).await?);
    payments::store::insert_refund(&mut tx, &refund, now).await?;
    refund_step(&mut tx, &refund, Kind::RefundRequested, now).await?;
    if let Some(key) = key {
        record_resource(&mut tx, key, Resource::Refund(refund.id.as_str()), now).await?;
    }
    tx.commit().await?;
    drop(conn);
    process_refund(state, &refund.id).await?;
    let mut conn = state.db.pool.acquire().await?;
    payments::refund_view_by_id(&mut conn, refund.id.as_str())
        .await?
        .ok_or(Error::NotFound("refund"))
}

/// What a refund of `amount` of a paid order's payment gives back of the order's taxable
/// value and of each of its taxes, counting what earlier refunds gave back.
async fn refund_share(
    tx: &mut sqlx::AnyConnection,
    payment: &payments::Payment,
    amount: i64,
) -> Result<payments::RefundShare> {
    let (tax_lines, _) = orders::store::pricing(tx, &payment.order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    let tax: i64 = tax_lines.iter().map(|t| t.amount).sum();
    let mut parts = vec![payment.amount.minor - tax];
    parts.extend(tax_lines.iter().map(|t| t.amount));
    let taken = payments::store::shares_taken(tx, &payment.id).await?;
    let mut taken_parts = vec![taken.taxable];
    taken_parts.extend(tax_lines.iter().map(|t| {
        taken
            .tax_lines
            .iter()
            .find(|k| k.name == t.name && k.rate_bps == t.rate_bps)
            .map_or(0, |k| k.amount)
    }));
    let shares = pricing::refund::refund_shares(&parts, &taken_parts, amount);
    Ok(payments::RefundShare {
        taxable: shares[0],
        tax_lines: tax_lines
            .into_iter()
            .zip(&shares[1..])
            .map(|(t, share)| TaxLine {
                amount: *share,
                ..t
            })
            .collect(),
    })
}

/// Asks the gateway for a pending refund (idempotent by the refund's id) and records the
/// answer. A gateway that does not answer leaves it pending for the refund worker.
pub async fn process_refund(state: &AppState, refund_id: &RefundId) -> Result<()> {
    let (refund, payment) = {
        let mut conn = state.db.pool.acquire().await?;
        let Some(refund) = payments::store::get_refund(&mut conn, refund_id).await? else {
            return Ok(());
        };
        if refund.status != RefundStatus::Pending {
            return Ok(());
        }
        let payment = payments::store::get(&mut conn, &refund.payment_id)
            .await?
            .ok_or(Error::NotFound("payment"))?;
        (refund, payment)
    };
    let gateway = state.gateway(&payment.gateway)?;
    let answer = gateway_call(
        state,
        &payment,
        Op::Refund,
        gateway.refund(&payment.charge(), refund.id.as_str(), refund.amount.minor),
    )
    .await;
    let now = state.now_ms();
    let mut conn = state.db.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    match answer {
        Ok(()) => {
            if payments::store::finish_refund(&mut tx, &refund.id, RefundStatus::Succeeded, now)
                .await?
            {
                refund_step(&mut tx, &refund, Kind::RefundSucceeded, now).await?;
                after_refund(&mut tx, &refund, &payment, now).await?;
                Metrics::inc(&state.metrics.refunds_succeeded);
            }
        }
        Err(GatewayError::Rejected(reason)) => {
            tracing::error!(%refund_id, %reason, "gateway refused a refund");
            if payments::store::finish_refund(&mut tx, &refund.id, RefundStatus::Failed, now)
                .await?
            {
                refund_step(&mut tx, &refund, Kind::RefundFailed, now).await?;
            }
        }
        Err(GatewayError::Unavailable(reason)) => {
            Metrics::inc(&state.metrics.gateway_errors);
            tracing::warn!(%refund_id, %reason, "refund outcome unknown; the refund worker will retry");
        }
    }
    tx.commit().await?;
    Ok(())
}

/// After a refund succeeded: the payment is `refunded` once all of it is, and a paid order
/// becomes `partially_refunded` or `refunded`.
async fn after_refund(
    tx: &mut sqlx::AnyConnection,
    refund: &payments::Refund,
    payment: &payments::Payment,
    now: i64,
) -> Result<()> {
    // Serialize with concurrent refunds of the same order so the last one sees them all.
    orders::store::lock_row(tx, &refund.order_id).await?;
    let refunded = payments::store::refunded(tx, &payment.id).await?;
    assert!(
        refunded <= payment.amount.minor,
        "refunded {refunded} exceeds payment {}",
        payment.amount
    );
    if refunded == payment.amount.minor {
        payments::store::set_status(tx, &payment.id, Status::Succeeded, Status::Refunded, now)
            .await?;
    }
    let head = orders::store::head(tx, &refund.order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    // Refunds Till made on its own (a late or duplicate payment) leave the order as it is,
    // and have no credit note: the order they gave money back for has no invoice.
    let mut credit_note = None;
    if refund.reason == REASON_REQUESTED
        && matches!(
            head.status,
            OrderStatus::Confirmed | OrderStatus::PartiallyRefunded
        )
    {
        let to = if refunded == head.total.minor {
            OrderStatus::Refunded
        } else {
            OrderStatus::PartiallyRefunded
        };
        if head.status != to {
            orders::store::transition(tx, &refund.order_id, &[head.status], to, None, now).await?;
        }
        credit_note = super::documents::issue_credit_note(tx, refund, now).await?;
    }
    emit::refund(tx, &refund.id, now).await?;
    if let Some(note) = credit_note {
        notify::enqueue(tx, Type::CreditNoteIssued, &note, now).await?;
    }
    Ok(())
}
