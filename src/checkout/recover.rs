//! Asking a gateway again about an attempt still in flight, with the attempt's own
//! idempotency key: the recovery worker, reconciliation and the seed's `/checkout/confirm`
//! all come here, so a lost answer or webhook is settled the same way wherever it is found.

use super::pay::{settle_answer, Call};
use super::trail::{gateway_call, Op};
use crate::error::Result;
use crate::ids::PaymentId;
use crate::orders;
use crate::payments;
use crate::state::AppState;

/// Asks the gateway about one in-flight attempt and applies the answer: the same create
/// call with the same key while the order is pending, a void once it is not.
pub async fn recheck_payment(state: &AppState, payment_id: &PaymentId) -> Result<()> {
    let (payment, order) = {
        let mut conn = state.db.pool.acquire().await?;
        let Some(payment) = payments::store::get(&mut conn, payment_id).await? else {
            return Ok(());
        };
        let order = orders::store::head(&mut conn, &payment.order_id).await?;
        (payment, order)
    };
    if !payment.status.in_flight() {
        return Ok(());
    }
    let gateway = state.gateway(&payment.gateway)?;
    let charge = payment.charge();
    let paid_by_this = order
        .as_ref()
        .is_some_and(|o| o.paid_by.as_ref() == Some(&payment.id));
    let pending = order
        .as_ref()
        .is_some_and(|o| o.status == orders::Status::Pending);
    let (answer, call) = if payment.status == payments::Status::Authorized && paid_by_this {
        // The order was confirmed with this authorization; the capture is what is missing.
        (
            gateway_call(state, &payment, Op::Capture, gateway.capture(&charge)).await,
            Call::FollowUp,
        )
    } else if paid_by_this {
        // Already settled with the order; nothing to void.
        return Ok(());
    } else if pending && payment.fate == payments::Fate::Open {
        (
            gateway_call(state, &payment, Op::Create, gateway.create(&charge)).await,
            Call::Create,
        )
    } else {
        // The order ended with this attempt in flight (decided `void`), or never names it:
        // its money goes back.
        (
            gateway_call(state, &payment, Op::Void, gateway.cancel(&charge)).await,
            Call::FollowUp,
        )
    };
    tracing::info!(
        %payment_id,
        "asked the gateway again about a payment in flight"
    );
    settle_answer(state, payment_id, answer, call).await?;
    // Whatever the answer, wait a full recovery interval before asking again.
    let mut conn = state.db.pool.acquire().await?;
    if payments::store::get(&mut conn, payment_id)
        .await?
        .is_some_and(|p| p.status.in_flight())
    {
        payments::store::touch(&mut conn, payment_id, "", state.now_ms()).await?;
    }
    Ok(())
}

/// Claims one in-flight payment for a caller that wants to ask about it now (the seed's
/// `/checkout/confirm`), under the same lease as the recovery worker: false when a request
/// or worker touched it within the recovery interval.
pub async fn claim_payment(state: &AppState, payment_id: &PaymentId) -> Result<bool> {
    let now = state.now_ms();
    let mut conn = state.db.pool.acquire().await?;
    payments::store::lease_in_flight(&mut conn, payment_id, now - state.recovery_after_ms, now)
        .await
}
