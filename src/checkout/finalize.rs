//! Step 3, the end of an order, always inside the transaction that holds its row lock:
//! confirmed when its money is secured (`keep_money`: stock committed, invoice number,
//! event), or ended (`end_in_tx`: cancelled or expired, stock released, every attempt in
//! flight decided `void`). Money that cannot be kept is queued for a refund here.

use serde_json::json;
use sqlx::{AnyConnection, Connection};

use super::emit;
use super::trail::{self, Gathered, Settled};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::ids::{OrderId, PaymentId, RefundId};
use crate::inventory::{self, LockEnd};
use crate::metrics::Metrics;
use crate::notify::Type;
use crate::orders::{self, CancelReason, Status as OrderStatus};
use crate::payments::store::PaymentRecord;
use crate::payments::{self, Fate, Payment, Status};
use crate::pricing::{self, store::UseEnd};
use crate::state::AppState;
use crate::timeline::{self, Kind, Steps};

/// Ends a pending order inside the caller's transaction, which holds its row lock: status
/// (compare-and-set), stock released, every attempt still in flight decided `void`, the
/// event. Returns the attempts to void once the transaction has committed; `None` when the
/// order was not pending, so this call decided nothing.
pub async fn end_in_tx(
    state: &AppState,
    tx: &mut AnyConnection,
    order_id: &OrderId,
    to: OrderStatus,
    reason: CancelReason,
    now: i64,
) -> Result<Option<Vec<PaymentId>>> {
    if !orders::store::transition(tx, order_id, &[OrderStatus::Pending], to, Some(reason), now)
        .await?
    {
        return Ok(None);
    }
    // The coupon's row before any stock: the order every transaction takes its locks in.
    let coupon = pricing::store::settle_use(tx, order_id, UseEnd::Released, now).await?;
    let locks = inventory::store::settle_locks(tx, order_id, LockEnd::Released, now).await?;
    let to_void = payments::store::decide_void_in_flight(tx, order_id, now).await?;
    let (kind, step) = match to {
        OrderStatus::Expired => (Type::OrderExpired, Kind::OrderExpired),
        _ => (Type::OrderCancelled, Kind::OrderCancelled),
    };
    let ended = Settled {
        order: (step, json!({"reason": reason.as_str(), "voiding": to_void})),
        coupon: coupon.then_some(Kind::CouponReleased),
        stock: (Kind::StockReleased, locks),
    };
    let mut steps = Steps::new(order_id, now);
    trail::settled(&mut steps, ended);
    steps.write(tx).await?;
    emit::order(tx, kind, order_id, now).await?;
    Metrics::inc(match to {
        OrderStatus::Expired => &state.metrics.orders_expired,
        _ => &state.metrics.orders_cancelled,
    });
    Ok(Some(to_void))
}

/// The payment's money is secured (authorized or captured); the caller holds the order's
/// row lock and read `head` under it. A pending order is finalized. An order that ended
/// keeps its end — a customer's cancel or a failed payment is final, and an authorization
/// that arrives after the hold expired is voided — with one exception: money already
/// captured for an attempt that was in flight when the hold expired (the customer was still
/// paying, and the void came too late) locks the stock again and confirms the order if the
/// stock is still there. Returns whether the money is kept. The confirmation's timeline
/// steps and events join `gathered`, which the caller writes before it commits. `attempts`
/// are the order's attempts as this transaction leaves them (`payment` among them), read
/// under the order's lock: the confirmed order's view shows them.
pub(super) async fn keep_money(
    state: &AppState,
    tx: &mut AnyConnection,
    (payment, attempts): (&Payment, Vec<PaymentRecord>),
    head: &orders::OrderHead,
    to: Status,
    gathered: &mut Gathered,
    now: i64,
) -> Result<bool> {
    let order_id = &payment.order_id;
    let confirmed = match head.status {
        // A void decision is only taken when the order ends, so an open order's attempt is
        // never `Fate::Void`; checked all the same, since it decides money.
        OrderStatus::Pending if payment.fate == Fate::Open => {
            orders::store::transition(
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
            // The steps so far come before the re-lock's own.
            gathered.flush(tx).await?;
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
        tracing::warn!(%order_id, payment_id = %payment.id, order_status = head.status.as_str(), "payment cannot be kept; giving it back");
        return Ok(false);
    }
    // Only an order priced with a coupon holds a use of one.
    let coupon = head.coupon.is_some()
        && pricing::store::settle_use(tx, order_id, UseEnd::Confirmed, now).await?;
    let locks = inventory::store::settle_locks(tx, order_id, LockEnd::Committed, now).await?;
    failpoint::hit("mid_finalize");
    let confirmed_step = Settled {
        order: (
            Kind::OrderConfirmed,
            json!({"payment_id": payment.id, "total": head.total.minor}),
        ),
        coupon: coupon.then_some(Kind::CouponSettled),
        stock: (Kind::StockCommitted, locks),
    };
    trail::settled(&mut gathered.steps, confirmed_step);
    // The invoice and the confirmed order's view are drawn up before the number is taken:
    // the series' counter row, which every confirmation waits for, is then held only for
    // the number and four inserts (the document, its timeline step and the two events).
    let record = orders::record_view(tx, order_id.as_str())
        .await?
        .ok_or(Error::NotFound("order"))?;
    let draft = super::documents::draft_invoice(tx, record.clone(), now).await?;
    // A pending order was never paid for, so it has no refund to read.
    let mut confirmed = if head.status == OrderStatus::Pending {
        super::OrderView {
            payments: attempts.into_iter().map(payments::payment_view).collect(),
            record,
            client_secret: None,
            refunds: Vec::new(),
        }
    } else {
        super::views::with_money(tx, record).await?
    };
    let number =
        orders::store::record_paid(tx, &mut gathered.writes, order_id, &payment.id, now).await?;
    // All `record_paid` changed that the order's view shows.
    confirmed.record.invoice_number = Some(number.clone());
    gathered
        .steps
        .add(Kind::InvoiceIssued, json!({"number": number}));
    let invoice = super::documents::issue_invoice(&mut gathered.writes, draft, number, now)?;
    gathered.events.add(Type::OrderConfirmed, &confirmed)?;
    gathered.events.add(Type::InvoiceIssued, &invoice)?;
    Metrics::inc(&state.metrics.orders_confirmed);
    if head.status != OrderStatus::Pending {
        Metrics::inc(&state.metrics.late_payments_relocked);
        tracing::info!(
            %order_id,
            "late payment: stock re-locked and order confirmed"
        );
    }
    Ok(true)
}

/// Queues a full refund of captured money that cannot be kept, in the caller's transaction.
pub(super) async fn queue_refund(
    state: &AppState,
    tx: &mut AnyConnection,
    payment: &Payment,
    now: i64,
) -> Result<RefundId> {
    let head = orders::store::head(tx, &payment.order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    let reason = if head.status.is_paid() {
        "duplicate_payment"
    } else {
        "order_ended"
    };
    let refund = payments::Refund::pending(payment, payment.amount.minor, reason);
    payments::store::insert_refund(tx, &refund, now).await?;
    trail::refund_step(tx, &refund, Kind::RefundRequested, now).await?;
    Metrics::inc(&state.metrics.late_payments_refunded);
    Ok(refund.id)
}

/// Re-locks an ended order's lines inside a savepoint; keeps the locks and confirms only if
/// every line could be had.
async fn relock(
    tx: &mut AnyConnection,
    order_id: &OrderId,
    from: OrderStatus,
    now: i64,
) -> Result<bool> {
    let mut lines: Vec<(crate::ids::Sku, i64)> = orders::store::lines(tx, order_id)
        .await?
        .into_iter()
        .map(|line| (line.sku, line.qty))
        .collect();
    lines.sort();
    let mut savepoint = tx.begin().await?;
    // The coupon's use too: the price paid counted on it.
    if !pricing::store::retake_use(&mut savepoint, order_id, now).await? {
        savepoint.rollback().await?;
        return Ok(false);
    }
    let locking = inventory::store::lock_lines(&mut savepoint, order_id, &lines, now).await?;
    if !locking.short.is_empty() {
        savepoint.rollback().await?;
        return Ok(false);
    }
    let moved = orders::store::transition(
        &mut savepoint,
        order_id,
        &[from],
        OrderStatus::Confirmed,
        None,
        now,
    )
    .await?;
    if moved {
        let relocked = json!({"locks": locking.held, "from": from.as_str()});
        timeline::record(
            &mut savepoint,
            order_id,
            Kind::StockRelocked,
            &relocked,
            now,
        )
        .await?;
        savepoint.commit().await?;
    } else {
        savepoint.rollback().await?;
    }
    Ok(moved)
}
